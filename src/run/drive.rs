//! The part of a run every engine shares while records flow: a blocking thread reads and
//! prepares records into a bounded channel, the engine turns them into outcomes, and this
//! task alone writes result lines, keeps the totals, takes checkpoints, drives the progress
//! display and handles Ctrl-C (stop taking records, wait `--grace` for calls in flight,
//! then abandon them, resumable).

use tokio::sync::{mpsc, oneshot};

use super::{Built, RunError, feed, hint, interrupt};
use crate::config::RunConfig;
use crate::engine::Stops;
use crate::fetch::RemoteMedia;
use crate::job::media::MediaLoader;
use crate::job::{self, JobError, Records};
use crate::report::progress::Progress;
use crate::store::ledger::Ledger;
use crate::store::state::RecordSet;
use crate::summary::StopReport;
use crate::vocab::{CallOutcome, FilesRead, InvalidRecord};
use crate::watch::Watch;

/// How the flow of records ended.
pub struct DriveOutcome {
    /// A fatal error stopped the run.
    pub aborted: Option<StopReport>,
    /// Ctrl-C (or SIGTERM) stopped the run.
    pub interrupted: bool,
    /// Records in the job file (within `--limit`), once counted.
    pub total: Option<u64>,
    /// What the reading stage read, or why the job file could not be read.
    pub fed: Result<FilesRead, JobError>,
    /// A stage that panicked or was lost (reading, preparing, the engine): the run must
    /// end non-zero, naming it, with only committed lines in its state.
    pub lost: Option<RunError>,
}

/// Runs `records` (minus those `done`) through `engine` into `ledger`, showing `watch` the
/// run as it goes.
pub async fn drive(
    config: &RunConfig,
    records: Records,
    done: RecordSet,
    built: &Built,
    stops: &Stops,
    ledger: &mut Ledger,
    watch: &mut Watch,
) -> Result<DriveOutcome, RunError> {
    let fetchers = super::media_fetchers(config, built).await;
    let engine = built.engine.as_ref();
    let region = &built.regions.join(", ");
    let request = &config.request;
    // Before anything is sent: a signal from then on stops the run gently.
    let mut interrupted = interrupt::watch(stops.stop.clone());
    let mut progress = Progress::new(config.quiet, config.watch.progress_every);
    let mut total_rx = count_records(config);
    let (task_tx, task_rx) = mpsc::channel(config.concurrency * 2 + 16);
    let (invalid_tx, mut invalid_rx) = mpsc::channel::<InvalidRecord>(1024);
    let (outcome_tx, mut outcome_rx) = mpsc::channel::<CallOutcome>(1024);
    let feeding = feed::spawn(
        records,
        request.clone(),
        feed::Selection {
            limit: config.limit,
            shard: config.shard,
            done,
        },
        MediaLoader::new(&config.job_path),
        RemoteMedia::new(fetchers, config.fetch.clone()),
        task_tx,
        invalid_tx,
    );
    let running = engine.start(task_rx, outcome_tx);

    let (mut invalid_open, mut outcomes_open) = (true, true);
    let mut total: Option<u64> = None;
    let mut aborted: Option<StopReport> = None;
    let mut grace_deadline: Option<tokio::time::Instant> = None;
    // Batch jobs send nothing for hours: the progress line still moves.
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while invalid_open || outcomes_open {
        tokio::select! {
            _ = ticker.tick() => {}
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
                        stops.stop();
                        if let Some(detail) = &err.detail {
                            tracing::info!("{} in detail: {detail}", err.kind.name());
                        }
                        aborted = Some(StopReport {
                            kind: err.kind.name().to_string(),
                            model: outcome.model.clone(),
                            message: err.message.clone(),
                            hint: hint(
                                err.kind,
                                &outcome.model,
                                region,
                                config.knowledge_base.as_ref(),
                            ),
                        });
                    }
                    watch.outcome(&outcome);
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
            _ = sleep_until_deadline(grace_deadline), if !stops.abandoned() => {
                // Calls still in flight are abandoned (their attempts still count): their
                // records are sent again on resume.
                stops.abandon();
            }
        }
        progress.set_note(engine.status_line());
        progress.update(&ledger.totals.summary, engine.live());
        if watch.due() {
            let report = engine.report();
            let mut summary = ledger.summary(report.limiter.clone());
            summary.records.pending = total.map(|t| t.saturating_sub(ledger.done()));
            watch.look(&summary, engine.live(), &report);
        }
        ledger.checkpoint_every(config.checkpoint_interval, || engine.report().limiter)?;
    }
    drop(outcome_rx);
    drop(invalid_rx);
    let engine_ended = running.await;
    let (fed, mut lost) = match feeding.await {
        Ok(Ok(files)) => (Ok(files), None),
        Ok(Err(RunError::Job(err))) => (Err(err), None),
        Ok(Err(other)) => (Ok(FilesRead::default()), Some(other)),
        Err(err) => (
            Ok(FilesRead::default()),
            Some(RunError::lost("reading", err)),
        ),
    };
    if let Err(err) = engine_ended {
        lost = lost.or(Some(RunError::lost("engine", err)));
    }
    ledger.checkpoint(engine.report().limiter)?;
    progress.finish();
    Ok(DriveOutcome {
        aborted,
        interrupted: grace_deadline.is_some(),
        total,
        fed,
        lost,
    })
}

/// Counts the job file's records in the background, for the progress total.
fn count_records(config: &RunConfig) -> oneshot::Receiver<u64> {
    let (total_tx, total_rx) = oneshot::channel();
    let (path, format, limit, shard) = (
        config.job_path.clone(),
        config.format,
        config.limit,
        config.shard,
    );
    tokio::task::spawn_blocking(move || {
        if let Ok(n) = job::count(&path, format) {
            let n = limit.map_or(n, |limit| n.min(limit));
            let _ = total_tx.send(shard.map_or(n, |shard| shard.records_of(n)));
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
