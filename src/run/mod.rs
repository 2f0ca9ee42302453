//! `bedrock-batch run`: the composition of the stages. Open the run directory (resume or
//! start), build the engine, let the records flow through it into the ledger ([`drive`]),
//! then write summary.json, print the human summary and choose the exit code.

use crate::config::{KnowledgeBaseSettings, RunConfig};
use std::sync::Arc;

use crate::engine::{Engine, StopReason, Stops};
use crate::exit;
use crate::fetch::{Fetchers, S3Fetcher};
use crate::job::{self, JobError};
use crate::local_server::LocalServer;
use crate::prices::Route;
use crate::rules::model_id::base_model_id;
use crate::store::ledger::Ledger;
use crate::store::run_dir::{self, OpenRunDir, RunDirError};
use crate::store::{self, StoreError};
use crate::summary::{self, BudgetStop, StopReport, Summary, Totals, thousands};
use crate::vocab::ErrorKind;
use crate::watch::Watch;
use crate::watch::events::RunStarted;

mod batch_engine;
mod drive;
mod dry_run;
mod feed;
mod interrupt;
mod on_demand_engine;
mod resolve;
mod setup;

/// The engine, the names of its regions (or endpoints), the local servers it talks to
/// (with `--local`, to shut down at the end), and its S3 client when it has one.
pub struct Built {
    pub engine: Box<dyn Engine>,
    pub regions: Vec<String>,
    pub servers: Vec<LocalServer>,
    pub s3: Option<aws_sdk_s3::Client>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot start the local server: {0}")]
    LocalServer(std::io::Error),
    /// A stage of the run panicked or was lost: a fault of bedrock-batch, not of the input.
    #[error("the {stage} stage failed: {message}")]
    Stage {
        stage: &'static str,
        message: String,
    },
}

impl RunError {
    /// By kind: the user's input or flags (2), the local machine (74), ourselves (70).
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Usage(_) | RunError::Job(_) => exit::USAGE,
            RunError::Store(_) | RunError::LocalServer(_) => exit::LOCAL_IO,
            RunError::Stage { .. } => exit::INTERNAL,
        }
    }

    /// The error of a stage's task that panicked or was cancelled.
    pub fn lost(stage: &'static str, err: tokio::task::JoinError) -> RunError {
        let message = match err.try_into_panic() {
            Ok(payload) => match payload.downcast::<String>() {
                Ok(text) => format!("it panicked: {text}"),
                Err(payload) => match payload.downcast::<&'static str>() {
                    Ok(text) => format!("it panicked: {text}"),
                    Err(_) => "it panicked".to_string(),
                },
            },
            Err(_) => "its task was cancelled".to_string(),
        };
        RunError::Stage { stage, message }
    }
}

/// Runs the job; returns the exit code.
pub async fn execute(config: RunConfig) -> Result<u8, RunError> {
    setup::check(&config)?;
    let records = job::read(&config.job_path, config.format)?;
    if config.dry_run {
        return dry_run::check(config, records).await;
    }
    // What a create call would refuse is refused before the run directory is touched.
    if config.via == crate::engine::Via::Batch {
        if let Some(refusal) = batch_engine::batch_refusal(&config) {
            return Err(RunError::Usage(refusal));
        }
        tiered_record(&config)?;
    }
    // A port in use is refused before the run directory is touched or anything is sent.
    let metrics_listener = match config.watch.metrics_addr {
        Some(addr) => Some(crate::watch::scrape::bind(addr).map_err(RunError::Usage)?),
        None => None,
    };
    let opened = open_run_dir(&config)?;
    let request = &config.request;
    let route = match config.via {
        crate::engine::Via::Batch => Route::Batch,
        _ => Route::on_demand(request.service_tier),
    };
    let mut ledger = Ledger::new(
        config.out_dir.clone(),
        &opened,
        (config.prices.clone(), route),
        || {
            let totals = Totals::new(
                &config.job_path.display().to_string(),
                &request.model,
                crate::config::mode_flag(request.mode),
            );
            match &config.knowledge_base {
                Some(kb) => totals.for_knowledge_base(kb.top_k, request.expected_field.is_some()),
                None => totals,
            }
        },
    )?;
    ledger.totals.summary.shard = config.shard;
    let stops = Stops::default();
    let batch = choose_batch(&config, &opened)?;
    let built = match batch {
        Some(settings) => {
            batch_engine::build(&config, settings, &stops, opened.retried_records.clone()).await?
        }
        None => on_demand_engine::build(&config, &stops, quota_recently_used(&opened)).await?,
    };
    let mut watch = open_watch(
        &config,
        &opened,
        &built,
        batch.is_some(),
        (&ledger, metrics_listener),
    )?;
    let ended = drive::drive(
        &config,
        records,
        opened.done.clone(),
        &built,
        &stops,
        &mut ledger,
        &mut watch,
    )
    .await?;
    let engine: &dyn Engine = built.engine.as_ref();

    let report_of_engine = engine.report();
    let mut summary = ledger.summary(report_of_engine.limiter);
    summary.learned_quota = report_of_engine.learned_quota;
    summary.max_tokens_advice = report_of_engine.max_tokens_advice;
    summary.batch = report_of_engine.batch;
    if let Ok(files) = &ended.fed {
        summary.files = files.clone();
    }
    let mut aborted = ended.aborted;
    if let Some(lost) = &ended.lost {
        aborted = Some(StopReport {
            kind: "internal".to_string(),
            model: request.model.clone(),
            message: lost.to_string(),
            hint: "A fault of bedrock-batch, not of your input or of Bedrock: the state holds every committed line, so rerunning the same command resumes. Please report the message.".to_string(),
        });
    }
    match engine.stop_reason() {
        Some(StopReason::Budget {
            limit_usd,
            spent_usd,
        }) => {
            summary.budget = Some(BudgetStop {
                limit_usd,
                spent_usd,
            })
        }
        Some(StopReason::Failed {
            kind,
            message,
            hint,
        }) if aborted.is_none() => {
            aborted = Some(StopReport {
                kind,
                model: request.model.clone(),
                message,
                hint,
            });
        }
        Some(StopReason::Stalled { after_secs }) if aborted.is_none() => {
            let stop = stalled(&request.model, &built.regions.join(", "), after_secs);
            watch.stalled(after_secs, stop.message.clone());
            aborted = Some(stop);
        }
        _ => {}
    }
    if aborted.is_some() || ended.interrupted || summary.budget.is_some() {
        summary.records.pending = ended.total.map(|t| t.saturating_sub(ledger.done()));
    }
    summary.aborted = aborted;
    store::write_json_atomically(&config.out_dir, crate::vocab::SUMMARY_FILE, &summary)?;
    for server in built.servers {
        server.shutdown().await;
    }
    report(&config, &summary);
    let result = match (ended.lost, ended.fed) {
        (Some(lost), _) => Err(lost),
        (None, Err(err)) => Err(RunError::Job(err)),
        (None, Ok(_)) => Ok(if summary.aborted.is_some() {
            exit::FATAL
        } else if summary.budget.is_some() {
            exit::BUDGET
        } else if ended.interrupted {
            eprintln!("resume with: {}", interrupt::resume_command());
            exit::INTERRUPTED
        } else if summary.records.failed == 0 {
            exit::OK
        } else {
            exit::SOME_FAILED
        }),
    };
    let code = result
        .as_ref()
        .map_or_else(RunError::exit_code, |code| *code);
    watch.ended(&summary, engine.live(), &engine.report(), code);
    result
}

/// Whether this run's earlier invocation wrote its checkpoint less than a bucket's minute
/// ago: its calls may have left the quota's buckets partly spent.
fn quota_recently_used(opened: &OpenRunDir) -> bool {
    opened
        .earlier
        .as_ref()
        .is_some_and(|earlier| crate::vocab::unix_now().saturating_sub(earlier.finished_unix) < 60)
}

/// The watch of this invocation: its sinks opened (a `--events` file that cannot be
/// written is refused before anything is sent), the metrics served on the listener bound
/// for `--metrics-addr` (counting from the totals the ledger holds now), and `run_started`
/// said.
fn open_watch(
    config: &RunConfig,
    opened: &OpenRunDir,
    built: &Built,
    batch: bool,
    (ledger, metrics_listener): (&Ledger, Option<std::net::TcpListener>),
) -> Result<Watch, RunError> {
    let run_id = crate::store::state::read_manifest(&config.out_dir)?
        .map(|manifest| crate::store::state::run_id(&manifest))
        .unwrap_or_default();
    let mut watch =
        Watch::open(&config.watch, &config.out_dir, run_id).map_err(|source| StoreError {
            path: match &config.watch.events {
                Some(crate::watch::sink::Target::File(path)) => path.clone(),
                _ => config.out_dir.join(crate::watch::events::TIMELINE_FILE),
            },
            source,
        })?;
    let request = &config.request;
    let started = RunStarted {
        version: env!("CARGO_PKG_VERSION").to_string(),
        invocation: opened.runs + 1,
        engine: if batch { "batch" } else { "on_demand" }.to_string(),
        mode: crate::config::mode_flag(request.mode).to_string(),
        model: request.model.clone(),
        job_file: config.job_path.display().to_string(),
        out_dir: config.out_dir.display().to_string(),
        shard: config.shard,
        lanes: built.regions.clone(),
        concurrency: config.concurrency,
        max_concurrency: config.max_concurrency,
        tpm: config.tpm,
        rpm: config.rpm,
        service_tier: request.service_tier.map(|t| t.as_str().to_string()),
        records_done_before: opened.done.len(),
    };
    if let Some(listener) = metrics_listener {
        let before = ledger.summary(built.engine.report().limiter);
        let addr = config.watch.metrics_addr.map(|a| a.to_string());
        watch
            .serve_metrics(listener, &started, &before)
            .map_err(|err| {
                RunError::Usage(format!(
                    "--metrics-addr {}: cannot serve there: {err}",
                    addr.unwrap_or_default()
                ))
            })?;
    }
    watch.started(started);
    Ok(watch)
}

/// Refuses a `--via batch` run whose job file asks for a service tier on any record:
/// Batch Inference is not a tier, and finding out record by record would upload the rest.
/// One pass over the file, a record at a time.
fn tiered_record(config: &RunConfig) -> Result<(), RunError> {
    for record in job::read(&config.job_path, config.format)? {
        let Ok(record) = record? else { continue };
        let tier = record.fields.get("service_tier");
        if tier.is_some_and(|t| !t.is_null() && t.as_str() != Some("")) {
            return Err(RunError::Usage(format!(
                "{} line {}: the record asks for service_tier {}, and Batch Inference is not a service tier; drop the field, or run on demand (--via on-demand)",
                config.job_path.display(),
                record.line,
                tier.map(|t| t.to_string()).unwrap_or_default()
            )));
        }
    }
    Ok(())
}

/// The fetchers of media named by URL: http and https, and s3 with the run's S3 client
/// (the batch engine's, or one built like it for an on-demand run).
async fn media_fetchers(config: &RunConfig, built: &Built) -> Fetchers {
    let standard = Fetchers::standard(&config.fetch);
    let client = match &built.s3 {
        Some(client) => client.clone(),
        None => {
            let local = built.servers.first();
            let local_url = local.map(LocalServer::url);
            let connection =
                on_demand_engine::connection(config, &config.lanes[0], local_url.as_deref());
            let Ok((sdk, _)) = crate::bedrock::shared_config(connection).await else {
                return standard;
            };
            let endpoint = local
                .map(LocalServer::s3_url)
                .or_else(|| config.s3_endpoint_url.clone());
            crate::bedrock::s3::s3_client(&sdk, endpoint.as_deref())
        }
    };
    standard.with("s3", Arc::new(S3Fetcher::new(client)))
}

/// The batch settings when this run goes through Batch Inference: `--via batch`, or
/// `--via auto` with at least a job's minimum of records left to send (or earlier jobs
/// still to collect). Refuses `--via batch` below the minimum, and `--via on-demand` while
/// earlier jobs are not collected (their records would be paid twice).
fn choose_batch<'a>(
    config: &'a RunConfig,
    opened: &OpenRunDir,
) -> Result<Option<&'a crate::batch::BatchSettings>, RunError> {
    let earlier = crate::batch::job_state::read(&config.out_dir)?
        .map(|state| batch_engine::local_jobs_lost(config, state))
        .transpose()?;
    let unfinished = match &earlier {
        Some(state) => {
            batch_engine::parts_owing(config, state, &opened.done, &opened.retried_records)?
        }
        None => 0,
    };
    let Some(settings) = &config.batch else {
        if unfinished > 0 {
            return Err(RunError::Usage(format!(
                "{} has {unfinished} Batch Inference job(s) not collected yet: rerun with --via batch (and the same --s3 and --role-arn) to collect them, or `bedrock-batch cancel {}` first and then collect what they answered; sending their records on demand now would pay for them twice",
                config.out_dir.display(),
                config.out_dir.display()
            )));
        }
        return Ok(None);
    };
    if unfinished > 0 {
        return Ok(Some(settings));
    }
    let total = job::count(&config.job_path, config.format)?;
    let total = config.limit.map_or(total, |limit| total.min(limit));
    let total = config.shard.map_or(total, |shard| shard.records_of(total));
    let to_send = total.saturating_sub(opened.done.len());
    if to_send == 0 && earlier.is_some() {
        // Every line is committed (a run killed after its last line, or rerun when done):
        // nothing is sent, and the engine reports the earlier jobs in the summary again.
        return Ok(Some(settings));
    }
    let minimum = crate::batch::parts::MIN_RECORDS;
    if config.via == crate::engine::Via::Auto
        && let Some(refusal) = batch_engine::batch_refusal(config)
    {
        if !config.quiet {
            eprintln!("--via auto: calling on demand: {refusal}");
        }
        return Ok(None);
    }
    match config.via {
        // Nothing left to send (a finished run rerun): the batch engine has nothing to
        // create, and reports the jobs that answered.
        crate::engine::Via::Batch if to_send > 0 && to_send < minimum => {
            Err(RunError::Usage(format!(
                "{} records to send: a Batch Inference job takes at least {minimum}; use --via auto (on-demand below {minimum}) or --via on-demand",
                thousands(to_send)
            )))
        }
        crate::engine::Via::Auto if to_send < minimum => {
            if !config.quiet {
                eprintln!(
                    "--via auto: {} records to send, below Batch Inference's {minimum} a job: calling on demand",
                    thousands(to_send)
                );
            }
            Ok(None)
        }
        _ => Ok(Some(settings)),
    }
}

/// Opens (or resumes, or moves aside with `--fresh`) the run directory, and says so.
fn open_run_dir(config: &RunConfig) -> Result<OpenRunDir, RunError> {
    let params = config.run_params();
    let opened = run_dir::open(run_dir::Opening {
        out_dir: &config.out_dir,
        job_path: &config.job_path,
        params: &params,
        fresh: config.fresh,
        retry_failed: config.retry_failed,
        prices: &config.prices,
    })
    .map_err(|err| match err {
        RunDirError::Refused(message) => RunError::Usage(message),
        RunDirError::Store(err) => RunError::Store(err),
    })?;
    // `export` reads the schema back for its `data.<name>` columns.
    if let Some(schema) = &config.request.schema {
        store::write_atomically(&config.out_dir, crate::vocab::SCHEMA_FILE, schema.source())?;
    }
    if !config.quiet {
        if let Some(aside) = &opened.moved_aside {
            eprintln!("--fresh: the earlier run was moved to {}", aside.display());
            let unfinished = crate::batch::job_state::read(aside)
                .ok()
                .flatten()
                .map_or(0, |state| state.unfinished().len());
            if unfinished > 0 {
                eprintln!(
                    "--fresh: its {} Batch Inference job(s) may still be running (and billing): `bedrock-batch cancel {}` stops them",
                    unfinished,
                    aside.display()
                );
            }
        }
        if opened.earlier.is_some() {
            eprintln!(
                "resuming {}: {} {} already done{}",
                config.out_dir.display(),
                thousands(opened.done.len()),
                summary::plural(opened.done.len(), "record", "records"),
                match opened.retried {
                    0 => String::new(),
                    n => format!(", {} failed records to run again", thousands(n)),
                }
            );
        }
    }
    Ok(opened)
}

/// The stop of a run in which nothing succeeded for `after_secs`.
fn stalled(model: &str, region: &str, after_secs: f64) -> StopReport {
    StopReport {
        kind: "stalled".to_string(),
        model: model.to_string(),
        message: format!(
            "nothing succeeded for {after_secs:.0} s: every attempt was throttled (--stall-timeout)"
        ),
        hint: format!(
            "The quota of {model} in {region} admits no call right now: check its tokens- and requests-per-minute quotas in Service Quotas, other jobs using the same quota, and that --max-tokens fits within one minute of quota; then rerun to resume."
        ),
    }
}

/// What to do about a fatal error.
fn hint(kind: ErrorKind, model: &str, region: &str, kb: Option<&KnowledgeBaseSettings>) -> String {
    if let Some(kb) = kb {
        return knowledge_base_hint(kind, model, region, &kb.id);
    }
    match kind {
        ErrorKind::AccessDenied => format!(
            "Enable access to {model} in the Bedrock console (Model access) for {region}, and check that your IAM policy allows bedrock:InvokeModel on it; then rerun."
        ),
        ErrorKind::ResourceNotFound => format!(
            "Check the model id {model} and the region {region}: the model may not be offered there, or may need an inference profile id (such as us.{}).",
            base_model_id(model)
        ),
        ErrorKind::Credentials => "No usable AWS credentials: run `aws configure` or `aws sso login`, choose a profile with --profile or AWS_PROFILE, or try --local. With -v, the SDK says what each credential source answered.".to_string(),
        _ => "Fix the cause and rerun.".to_string(),
    }
}

/// What to do about a fatal error of a knowledge-base run (`model` is the knowledge base
/// itself for retrieve).
fn knowledge_base_hint(kind: ErrorKind, model: &str, region: &str, kb: &str) -> String {
    let and_model = if model == kb {
        String::new()
    } else {
        format!(", and that the model {model} is offered and enabled there (Model access)")
    };
    match kind {
        ErrorKind::ResourceNotFound => format!(
            "Check the knowledge base id {kb} and the region {region} (`aws bedrock-agent list-knowledge-bases --region {region}` lists the ones there){and_model}; then rerun."
        ),
        ErrorKind::AccessDenied => format!(
            "Check that your IAM policy allows bedrock:Retrieve and bedrock:RetrieveAndGenerate on the knowledge base {kb} in {region}{and_model}; then rerun."
        ),
        ErrorKind::Credentials => "No usable AWS credentials: run `aws configure` or `aws sso login`, choose a profile with --profile or AWS_PROFILE, or try --local --knowledge-base-dir DIR.".to_string(),
        _ => format!("Fix the cause for the knowledge base {kb} and rerun."),
    }
}

fn report(config: &RunConfig, summary: &Summary) {
    if config.quiet
        && let Some(aborted) = &summary.aborted
    {
        eprintln!(
            "bedrock-batch: stopped early: {} for {}: {}\n{}",
            aborted.kind, aborted.model, aborted.message, aborted.hint
        );
    }
    if !config.quiet {
        eprint!("{}", crate::report::render(summary));
        eprintln!(
            "results: {}  summary: {}",
            config.out_dir.join(crate::vocab::RESULTS_FILE).display(),
            config.out_dir.join(crate::vocab::SUMMARY_FILE).display()
        );
    }
    if config.json {
        let _ = crate::report::print_stdout(
            &(serde_json::to_string_pretty(summary).unwrap_or_default() + "\n"),
        );
    }
}
