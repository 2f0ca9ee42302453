//! `bedrock-batch run`: wires the stages together. A blocking thread reads and prepares
//! records into a bounded channel, the pool calls Bedrock, and this task alone writes
//! results, keeps the totals and drives the progress display; at the end it writes
//! summary.json and prints the human summary.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{mpsc, oneshot};

use crate::bedrock::errors::ErrorKind;
use crate::bedrock::{self, Bedrock, CallOptions, Connection};
use crate::config::{Endpoint, Mode, RunConfig};
use crate::exit;
use crate::job::media::MediaLoader;
use crate::job::{self, InvalidRecord, JobError};
use crate::local_server::{LocalServer, ServerConfig};
use crate::model_id::base_model_id;
use crate::pool::budget::Budget;
use crate::pool::feed;
use crate::pool::limiter::Limiter;
use crate::pool::pacer::Pacer;
use crate::pool::retry::RetryPolicy;
use crate::pool::{self, CallOutcome, Controls};
use crate::report::progress::Progress;
use crate::report::summary::{self, Aborted, BudgetStop, FilesRead, Summary, Totals, thousands};

mod dry_run;
mod interrupt;
use crate::store::ledger::Ledger;
use crate::store::run_dir::{self, RunDirError};
use crate::store::{self, StoreError};

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
}

impl RunError {
    pub fn exit_code(&self) -> u8 {
        exit::USAGE
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Converse => "converse",
        Mode::Embed => "embed",
        Mode::Invoke => "invoke",
    }
}

/// Runs the job; returns the exit code.
pub async fn run(config: RunConfig) -> Result<u8, RunError> {
    let records = job::read(&config.job_path, config.format)?;
    if config.dry_run {
        return dry_run::run(config, records).await;
    }
    let opened = run_dir::open(&config).map_err(|err| match err {
        RunDirError::Refused(message) => RunError::Usage(message),
        RunDirError::Store(err) => RunError::Store(err),
    })?;
    if !config.quiet {
        if let Some(aside) = &opened.moved_aside {
            eprintln!("--fresh: the earlier run was moved to {}", aside.display());
        }
        if opened.earlier.is_some() {
            eprintln!(
                "resuming {}: {} records already done{}",
                config.out_dir.display(),
                thousands(opened.done.len()),
                match opened.retried {
                    0 => String::new(),
                    n => format!(", {} failed records to run again", thousands(n)),
                }
            );
        }
    }
    let request = &config.request;
    let mut ledger = Ledger::new(
        config.out_dir.clone(),
        &opened,
        config.prices.clone(),
        || {
            Totals::new(
                &config.job_path.display().to_string(),
                &request.model,
                mode_name(request.mode),
            )
        },
    )?;

    let server = match config.endpoint {
        Endpoint::Local => Some(
            LocalServer::start(ServerConfig::default())
                .await
                .map_err(RunError::LocalServer)?,
        ),
        _ => None,
    };
    let local_url = server.as_ref().map(LocalServer::url);
    let (client, region) = bedrock::connect(Connection {
        endpoint: &config.endpoint,
        local_url: local_url.as_deref(),
        region: config.region.as_deref(),
        profile: config.profile.as_deref(),
        connect_timeout: config.connect_timeout,
    })
    .await
    .map_err(RunError::Usage)?;
    let bedrock = Bedrock::new(
        client,
        CallOptions {
            dimensions: request.dimensions,
            normalize: request.normalize,
            input_type: request.input_type.clone(),
            shared_documents: request.shared_documents.clone(),
            cache_prompt: request.cache_prompt,
            stream: request.stream,
        },
    );

    let mut progress = Progress::new(config.quiet);
    let mut total_rx = count_records(&config);
    let (task_tx, task_rx) = mpsc::channel(config.concurrency * 2 + 16);
    let (invalid_tx, mut invalid_rx) = mpsc::channel::<InvalidRecord>(1024);
    let (outcome_tx, mut outcome_rx) = mpsc::channel::<CallOutcome>(1024);
    let feeding = feed::spawn(
        records,
        request.clone(),
        config.limit,
        opened.done.clone(),
        MediaLoader::new(&config.job_path),
        task_tx,
        invalid_tx,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let abandon = Arc::new(AtomicBool::new(false));
    let over_budget = Arc::new(AtomicBool::new(false));
    let stalled = Arc::new(AtomicBool::new(false));
    let budget = config
        .budget_usd
        .map(|limit| Budget::new(limit, config.prices.clone()));
    let limiter = Limiter::new(
        config.concurrency,
        config.min_concurrency,
        config.max_concurrency,
    );
    let pacer = Pacer::new(config.tpm, config.rpm);
    let controls = Arc::new(Controls {
        limiter: limiter.clone(),
        pacer: pacer.clone(),
        policy: RetryPolicy::new(config.max_attempts),
        timeout: config.timeout,
        stall_timeout: config.stall_timeout,
        stop: stop.clone(),
        abandon: abandon.clone(),
        budget: budget.clone(),
        over_budget: over_budget.clone(),
        stalled: stalled.clone(),
    });
    let pool = tokio::spawn(pool::run(
        bedrock,
        controls,
        config.max_concurrency * 2,
        task_rx,
        outcome_tx,
    ));
    let mut interrupted = interrupt::watch(stop.clone());

    let (mut invalid_open, mut outcomes_open) = (true, true);
    let mut total: Option<u64> = None;
    let mut aborted: Option<Aborted> = None;
    let mut grace_deadline: Option<tokio::time::Instant> = None;
    while invalid_open || outcomes_open {
        tokio::select! {
            invalid = invalid_rx.recv(), if invalid_open => match invalid {
                Some(invalid) => ledger.invalid(&request.model, &invalid)?,
                None => invalid_open = false,
            },
            outcome = outcome_rx.recv(), if outcomes_open => match outcome {
                Some(outcome) => {
                    if let Err(err) = &outcome.result
                        && err.kind.fatal()
                        && aborted.is_none()
                    {
                        stop.store(true, Ordering::Relaxed);
                        if let Some(detail) = &err.detail {
                            tracing::info!("{} in detail: {detail}", err.kind.name());
                        }
                        aborted = Some(Aborted {
                            kind: err.kind.name().to_string(),
                            model: outcome.model.clone(),
                            message: err.message.clone(),
                            hint: hint(err.kind, &outcome.model, &region),
                        });
                    }
                    ledger.outcome(outcome)?
                }
                None => outcomes_open = false,
            },
            counted = &mut total_rx, if total.is_none() => {
                if let Ok(counted) = counted {
                    total = Some(counted);
                    progress.set_total(counted);
                }
            }
            _ = interrupted.changed(), if grace_deadline.is_none() => {
                grace_deadline = Some(tokio::time::Instant::now() + config.grace);
                progress.finish();
                if !config.quiet {
                    eprintln!(
                        "interrupted: no new records; waiting up to {:.0} s for calls in flight (Ctrl-C again to quit at once, still resumable)",
                        config.grace.as_secs_f64()
                    );
                }
            }
            _ = sleep_until_deadline(grace_deadline), if !abandon.load(Ordering::Relaxed) => {
                // Calls still in flight are abandoned (their attempts still count): their
                // records are sent again on resume.
                abandon.store(true, Ordering::Relaxed);
            }
        }
        progress.update(&ledger.totals.summary, limiter.limit());
        ledger.checkpoint_every(config.checkpoint_interval, || limiter.report())?;
    }
    drop(outcome_rx);
    drop(invalid_rx);
    let _ = pool.await;
    let fed = feeding.await.unwrap_or(Ok(FilesRead::default()));
    ledger.checkpoint(limiter.report())?;
    progress.finish();

    let mut summary = ledger.summary(limiter.report());
    summary.learned_quota = pacer.learned();
    if let Ok(files) = &fed {
        summary.files = files.clone();
    }
    if over_budget.load(Ordering::Relaxed)
        && let Some(budget) = &budget
    {
        summary.budget = Some(BudgetStop {
            limit_usd: budget.limit(),
            spent_usd: (budget.spent() * 1e6).round() / 1e6,
        });
    }
    let stopped = aborted.is_some() || grace_deadline.is_some() || summary.budget.is_some();
    if stopped {
        summary.records.pending = total.map(|t| t.saturating_sub(ledger.done()));
    }
    if aborted.is_none() && stalled.load(Ordering::Relaxed) {
        aborted = Some(Aborted {
            kind: "stalled".to_string(),
            model: request.model.clone(),
            message: format!(
                "nothing succeeded for {:.0} s: every attempt was throttled (--stall-timeout)",
                config.stall_timeout.as_secs_f64()
            ),
            hint: format!(
                "The quota of {} in {region} admits no call right now: check its tokens- and requests-per-minute quotas in Service Quotas, other jobs using the same quota, and that --max-tokens fits within one minute of quota; then rerun to resume.",
                request.model
            ),
        });
    }
    summary.aborted = aborted;
    store::write_json_atomically(&config.out_dir, store::SUMMARY_FILE, &summary)?;
    if let Some(server) = server {
        server.shutdown().await;
    }
    report(&config, &summary);
    fed?;
    Ok(if summary.aborted.is_some() {
        exit::FATAL
    } else if summary.budget.is_some() {
        exit::BUDGET
    } else if grace_deadline.is_some() {
        eprintln!("resume with: {}", interrupt::resume_command());
        exit::INTERRUPTED
    } else if summary.records.failed == 0 {
        exit::OK
    } else {
        exit::SOME_FAILED
    })
}

/// Counts the job file's records in the background, for the progress total.
fn count_records(config: &RunConfig) -> oneshot::Receiver<u64> {
    let (total_tx, total_rx) = oneshot::channel();
    let (path, format, limit) = (config.job_path.clone(), config.format, config.limit);
    tokio::task::spawn_blocking(move || {
        if let Ok(n) = job::count(&path, format) {
            let _ = total_tx.send(limit.map_or(n, |limit| n.min(limit)));
        }
    });
    total_rx
}

/// Waits until `deadline`, or forever when there is none.
async fn sleep_until_deadline(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What to do about a fatal error.
fn hint(kind: ErrorKind, model: &str, region: &str) -> String {
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
        eprint!("{}", summary::render(summary));
        eprintln!(
            "results: {}  summary: {}",
            config.out_dir.join(store::RESULTS_FILE).display(),
            config.out_dir.join(store::SUMMARY_FILE).display()
        );
    }
    if config.json {
        let _ = crate::report::print_stdout(
            &(serde_json::to_string_pretty(summary).unwrap_or_default() + "\n"),
        );
    }
}
