//! `bedrock-batch run`: wires the stages together. A blocking thread reads and prepares
//! records into a bounded channel, the pool calls Bedrock, and this task alone writes
//! results, keeps the totals and drives the progress display; at the end it writes
//! summary.json and prints the human summary.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::bedrock::errors::ErrorKind;
use crate::bedrock::{self, Answer, Bedrock, Connection, EmbedOptions, Usage};
use crate::config::{Endpoint, Mode, RunConfig};
use crate::exit;
use crate::job::prepare::RecordMeta;
use crate::job::{self, InvalidRecord, JobError};
use crate::local_server::{LocalServer, ServerConfig};
use crate::model_id::base_model_id;
use crate::pool::feed::{Batcher, Fed, Feed};
use crate::pool::limiter::Limiter;
use crate::pool::pacer::Pacer;
use crate::pool::retry::RetryPolicy;
use crate::pool::{self, CallOutcome, Controls};
use crate::report::progress::Progress;
use crate::report::summary::{self, Aborted, Summary, Totals, thousands};
use crate::store::{self, LineError, ResultLine, ResultsWriter, StoreError};

/// How often buffered result lines are pushed to the file.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Invalid records listed by --dry-run.
const DRY_RUN_LISTED: usize = 20;

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
        return dry_run(config, records).await;
    }
    let results_path = config.out_dir.join(store::RESULTS_FILE);
    if std::fs::metadata(&results_path).is_ok_and(|m| m.len() > 0) {
        return Err(RunError::Usage(format!(
            "{} already holds results of an earlier run: choose a new --out directory",
            results_path.display()
        )));
    }
    let mut writer = ResultsWriter::create(&config.out_dir)?;

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
    let request = &config.request;
    let bedrock = Bedrock::new(
        client,
        EmbedOptions {
            dimensions: request.dimensions,
            normalize: request.normalize,
            input_type: request.input_type.clone(),
        },
    );

    let started = Instant::now();
    let mut progress = Progress::new(config.quiet);
    let (total_tx, mut total_rx) = oneshot::channel();
    {
        let (path, format, limit) = (config.job_path.clone(), config.format, config.limit);
        tokio::task::spawn_blocking(move || {
            if let Ok(n) = job::count(&path, format) {
                let _ = total_tx.send(limit.map_or(n, |limit| n.min(limit)));
            }
        });
    }

    let (task_tx, task_rx) = mpsc::channel(config.concurrency * 2 + 16);
    let (invalid_tx, mut invalid_rx) = mpsc::channel::<InvalidRecord>(1024);
    let (outcome_tx, mut outcome_rx) = mpsc::channel::<CallOutcome>(1024);
    let feeding = {
        let settings = request.clone();
        let limit = config.limit;
        tokio::task::spawn_blocking(move || -> Result<(), JobError> {
            let mut batcher = Batcher::new(&settings);
            for fed in Feed::new(records, settings, limit) {
                match fed? {
                    Fed::Ready(prepared) => {
                        for task in batcher.push(prepared) {
                            if task_tx.blocking_send(task).is_err() {
                                return Ok(());
                            }
                        }
                    }
                    Fed::Invalid(invalid) => {
                        if invalid_tx.blocking_send(invalid).is_err() {
                            return Ok(());
                        }
                    }
                }
            }
            for task in batcher.flush() {
                let _ = task_tx.blocking_send(task);
            }
            Ok(())
        })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let limiter = Limiter::new(
        config.concurrency,
        config.min_concurrency,
        config.max_concurrency,
    );
    let controls = Arc::new(Controls {
        limiter: limiter.clone(),
        pacer: Pacer::new(config.tpm, config.rpm),
        policy: RetryPolicy::new(config.max_attempts),
        timeout: config.timeout,
        stop: stop.clone(),
    });
    let pool = tokio::spawn(pool::run(
        bedrock,
        controls,
        config.max_concurrency * 2,
        task_rx,
        outcome_tx,
    ));

    let mut totals = Totals::new(
        &config.job_path.display().to_string(),
        &request.model,
        mode_name(request.mode),
    );
    let (mut invalid_open, mut outcomes_open) = (true, true);
    let mut total: Option<u64> = None;
    let mut aborted: Option<Aborted> = None;
    let mut flushed = Instant::now();
    while invalid_open || outcomes_open {
        tokio::select! {
            invalid = invalid_rx.recv(), if invalid_open => match invalid {
                Some(invalid) => write_invalid(&mut writer, &mut totals, &request.model, &invalid)?,
                None => invalid_open = false,
            },
            outcome = outcome_rx.recv(), if outcomes_open => match outcome {
                Some(outcome) => {
                    if let Err(err) = &outcome.result
                        && err.kind.fatal()
                        && aborted.is_none()
                    {
                        stop.store(true, Ordering::Relaxed);
                        aborted = Some(Aborted {
                            kind: err.kind.name().to_string(),
                            model: outcome.model.clone(),
                            message: err.message.clone(),
                            hint: hint(err.kind, &outcome.model, &region),
                        });
                    }
                    write_outcome(&mut writer, &mut totals, outcome)?
                }
                None => outcomes_open = false,
            },
            counted = &mut total_rx, if total.is_none() => {
                if let Ok(counted) = counted {
                    total = Some(counted);
                    progress.set_total(counted);
                }
            }
        }
        progress.update(&totals.summary, limiter.limit());
        if flushed.elapsed() >= FLUSH_EVERY {
            writer.flush()?;
            flushed = Instant::now();
        }
    }
    let _ = pool.await;
    let fed = feeding.await.unwrap_or(Ok(()));
    writer.finish()?;
    progress.finish();

    let mut summary = totals.snapshot(started.elapsed());
    summary.limiter = limiter.report();
    if aborted.is_some() {
        summary.records.pending = total.map(|t| t.saturating_sub(summary.records.total));
        summary.aborted = aborted;
    }
    store::write_json_atomically(&config.out_dir, store::SUMMARY_FILE, &summary)?;
    if let Some(server) = server {
        server.shutdown().await;
    }
    report(&config, &summary);
    fed?;
    Ok(if summary.aborted.is_some() {
        exit::FATAL
    } else if summary.records.failed == 0 {
        exit::OK
    } else {
        exit::SOME_FAILED
    })
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
        ErrorKind::Credentials => "No usable AWS credentials: run `aws configure` or `aws sso login`, choose a profile with --profile or AWS_PROFILE, or try --local.".to_string(),
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
        println!(
            "{}",
            serde_json::to_string_pretty(summary).unwrap_or_default()
        );
    }
}

fn write_invalid(
    writer: &mut ResultsWriter,
    totals: &mut Totals,
    model: &str,
    invalid: &InvalidRecord,
) -> Result<(), StoreError> {
    let id = invalid.id.clone().unwrap_or(Value::from(invalid.number));
    totals.record(model, &Usage::default(), Some(invalid.kind));
    writer.write(&ResultLine {
        id: &id,
        status: "error",
        model,
        output: None,
        embedding: None,
        response: None,
        stop_reason: None,
        usage: Usage::default(),
        latency_ms: 0,
        attempts: 0,
        line: Some(invalid.line),
        error: Some(LineError {
            kind: invalid.kind,
            message: &invalid.message,
        }),
        fields: None,
    })
}

fn write_outcome(
    writer: &mut ResultsWriter,
    totals: &mut Totals,
    outcome: CallOutcome,
) -> Result<(), StoreError> {
    if let Err(err) = &outcome.result
        && (err.kind == ErrorKind::Cancelled || err.kind.fatal())
    {
        // Not the record's fault: no line, so a rerun sends it again.
        if err.kind.fatal() {
            totals.call(
                &outcome.model,
                outcome.attempts,
                &outcome.retries,
                outcome.latency,
            );
        }
        return Ok(());
    }
    totals.call(
        &outcome.model,
        outcome.attempts,
        &outcome.retries,
        outcome.latency,
    );
    let latency_ms = outcome.latency.as_millis() as u64;
    let base = |meta| ok_line(meta, &outcome.model, latency_ms, outcome.attempts);
    match &outcome.result {
        Ok(answers) => {
            for (meta, answer) in outcome.records.iter().zip(answers) {
                let usage = *answer.usage();
                totals.record(&outcome.model, &usage, None);
                let mut line = base(meta);
                line.usage = usage;
                match answer {
                    Answer::Text {
                        output,
                        stop_reason,
                        ..
                    } => {
                        line.output = Some(output);
                        line.stop_reason = Some(stop_reason);
                    }
                    Answer::Embedding { vector, .. } => line.embedding = Some(vector),
                    Answer::Invoke { response, .. } => line.response = Some(response),
                }
                writer.write(&line)?;
            }
        }
        Err(err) => {
            if err.kind == ErrorKind::Throttling {
                totals.final_throttle();
            }
            for meta in &outcome.records {
                totals.record(&outcome.model, &Usage::default(), Some(err.kind.name()));
                let mut line = base(meta);
                line.status = "error";
                line.line = Some(meta.line);
                line.error = Some(LineError {
                    kind: err.kind.name(),
                    message: &err.message,
                });
                writer.write(&line)?;
            }
        }
    }
    Ok(())
}

/// A result line for `meta` with nothing filled in yet.
fn ok_line<'a>(
    meta: &'a RecordMeta,
    model: &'a str,
    latency_ms: u64,
    attempts: u32,
) -> ResultLine<'a> {
    ResultLine {
        id: &meta.id,
        status: "ok",
        model,
        output: None,
        embedding: None,
        response: None,
        stop_reason: None,
        usage: Usage::default(),
        latency_ms,
        attempts,
        line: None,
        error: None,
        fields: meta.kept.as_ref(),
    }
}

/// `--dry-run`: every record read and prepared, nothing called.
async fn dry_run(config: RunConfig, records: job::Records) -> Result<u8, RunError> {
    let settings = config.request.clone();
    let limit = config.limit;
    let default_max = settings.max_tokens;
    let result = tokio::task::spawn_blocking(move || -> Result<Value, JobError> {
        let (mut valid, mut invalid, mut input_tokens) = (0u64, 0u64, 0u64);
        let (mut output_ceiling, mut unbounded) = (0u64, 0u64);
        let mut errors = Vec::new();
        for fed in Feed::new(records, settings, limit) {
            match fed? {
                Fed::Ready(prepared) => {
                    valid += 1;
                    input_tokens += prepared.estimated_input_tokens;
                    if let job::prepare::Payload::Converse(input) = &prepared.payload {
                        match input.max_tokens.or(default_max) {
                            Some(max) => output_ceiling += max as u64,
                            None => unbounded += 1,
                        }
                    }
                }
                Fed::Invalid(record) => {
                    invalid += 1;
                    if errors.len() < DRY_RUN_LISTED {
                        errors.push(json!({"line": record.line, "id": record.id, "kind": record.kind, "message": record.message}));
                    }
                }
            }
        }
        Ok(json!({
            "records": valid + invalid,
            "valid": valid,
            "invalid": invalid,
            "estimated_input_tokens": input_tokens,
            "max_output_tokens": output_ceiling,
            "records_without_max_tokens": unbounded,
            "cost_usd": null,
            "errors": errors,
        }))
    })
    .await
    .map_err(|err| RunError::Usage(format!("the dry run stopped: {err}")))??;
    if !config.quiet {
        eprintln!(
            "dry run of {}: {} records, {} valid, {} invalid",
            config.job_path.display(),
            thousands(result["records"].as_u64().unwrap_or(0)),
            thousands(result["valid"].as_u64().unwrap_or(0)),
            thousands(result["invalid"].as_u64().unwrap_or(0)),
        );
        eprintln!(
            "estimated input tokens: {} (about 4 characters a token)",
            thousands(result["estimated_input_tokens"].as_u64().unwrap_or(0))
        );
        if config.request.mode == Mode::Converse {
            eprintln!(
                "output ceiling: {} tokens from max_tokens{}",
                thousands(result["max_output_tokens"].as_u64().unwrap_or(0)),
                match result["records_without_max_tokens"].as_u64().unwrap_or(0) {
                    0 => String::new(),
                    n => format!(
                        " ({} records set no max_tokens: the model's default applies)",
                        thousands(n)
                    ),
                }
            );
        }
        eprintln!("cost: unknown (no price for this model)");
        for error in result["errors"].as_array().into_iter().flatten() {
            eprintln!("  {}", error["message"].as_str().unwrap_or_default());
        }
    }
    if config.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&result).unwrap_or_default()
        );
    }
    Ok(if result["invalid"] == 0 {
        exit::OK
    } else {
        exit::SOME_FAILED
    })
}
