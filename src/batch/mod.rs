//! Bedrock Batch Inference as an engine (`run --via batch`): the same prepared records an
//! on-demand run sends become input files in S3, one model invocation job per part, at half
//! the price and on AWS's own fleet. The engine spools the records into parts
//! ([`parts`]), saves them in RUN_DIR/state/batch.json ([`job_state`]), uploads each part and
//! creates its job with a request token derived from the run and the part's content (its
//! ARN saved at once), polls the jobs every `--poll-secs`, and turns each ended job's output
//! into the same outcomes an on-demand call gives ([`collect`]). A rerun after a crash or
//! Ctrl-C finds the parts and jobs in the state: records of an existing part are never
//! spooled again, and a part's job is never created twice.

mod collect;
mod flow;
pub mod job_state;
pub mod parts;
mod poll;
mod submit;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::bedrock::Clients;
use crate::bedrock::s3::S3Location;
use crate::engine::{Engine, EngineReport, Live, StopReason, Stops};
use crate::store::state::RecordSet;
use crate::summary::thousands;
use crate::vocab::RequestSettings;
use crate::vocab::{BatchReport, CallOutcome, Task};
use job_state::BatchState;

/// How the run uses Batch Inference.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchSettings {
    pub location: S3Location,
    pub role_arn: String,
    pub records_per_job: u64,
    pub poll: Duration,
    pub timeout_hours: i32,
}

/// The Batch Inference engine of one run.
pub struct BatchInference {
    inner: Arc<Inner>,
}

struct Inner {
    clients: Clients,
    settings: BatchSettings,
    options: Arc<RequestSettings>,
    run_dir: PathBuf,
    region: String,
    stops: Stops,
    state: Mutex<BatchState>,
    /// Records `--retry-failed` took out of results.jsonl for this run: they go into new
    /// parts even when an earlier part holds them.
    retried: RecordSet,
    stop_reason: Mutex<Option<StopReason>>,
    timings: Mutex<Timings>,
    /// Parts uploaded by this run (a part waiting for room under the jobs quota is not
    /// uploaded again at each try).
    uploaded: Mutex<std::collections::HashSet<u32>>,
}

/// Where this run's time went, in seconds.
#[derive(Debug, Default, Clone, Copy)]
struct Timings {
    prepare: f64,
    submit: f64,
    wait: f64,
    collect: f64,
}

/// Polls of one job that may fail in a row before the run stops (resumable).
const MAX_POLL_FAILURES: u32 = 10;

/// Why the engine stopped early.
enum Stopped {
    /// Ctrl-C: leave the jobs running, keep the state.
    Interrupted,
    Failed(StopReason),
}

fn failed(kind: &str, message: impl Into<String>, hint: impl Into<String>) -> Stopped {
    Stopped::Failed(StopReason::Failed {
        kind: kind.to_string(),
        message: message.into(),
        hint: hint.into(),
    })
}

fn local_files(err: std::io::Error) -> Stopped {
    failed(
        "batch_files",
        format!("cannot write the batch input files: {err}"),
        "Check the space and permissions of RUN_DIR/batch, then rerun to resume.",
    )
}

/// Everything the engine works with, built by the run.
pub struct Setup {
    pub clients: Clients,
    pub settings: BatchSettings,
    pub options: Arc<RequestSettings>,
    pub run_dir: PathBuf,
    pub region: String,
    pub stops: Stops,
    pub state: BatchState,
    /// Records `--retry-failed` took out of results.jsonl for this run.
    pub retried: RecordSet,
}

impl BatchInference {
    pub fn new(setup: Setup) -> BatchInference {
        BatchInference {
            inner: Arc::new(Inner {
                clients: setup.clients,
                settings: setup.settings,
                options: setup.options,
                run_dir: setup.run_dir,
                region: setup.region,
                stops: setup.stops,
                state: Mutex::new(setup.state),
                retried: setup.retried,
                stop_reason: Mutex::new(None),
                timings: Mutex::new(Timings::default()),
                uploaded: Mutex::new(std::collections::HashSet::new()),
            }),
        }
    }
}

impl Engine for BatchInference {
    fn start(
        &self,
        tasks: mpsc::Receiver<Task>,
        outcomes: mpsc::Sender<CallOutcome>,
    ) -> JoinHandle<()> {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            if let Err(Stopped::Failed(reason)) = inner.go(tasks, &outcomes).await {
                *inner.stop_reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
            }
        })
    }

    /// Jobs running now.
    fn live(&self) -> Live {
        let state = self.inner.state();
        Live {
            limit: None,
            in_flight: None,
            throttles: 0,
            answered: state
                .parts
                .iter()
                .filter(|p| !p.collected)
                .map(|p| p.processed.unwrap_or(0).min(p.records))
                .sum(),
        }
    }

    fn report(&self) -> EngineReport {
        let timings = *self.inner.timings();
        let round = |s: f64| (s * 1000.0).round() / 1000.0;
        EngineReport {
            batch: Some(BatchReport {
                jobs: self.inner.state().reports(),
                prepare_s: round(timings.prepare),
                submit_s: round(timings.submit),
                wait_s: round(timings.wait),
                collect_s: round(timings.collect),
            }),
            ..EngineReport::default()
        }
    }

    fn stop_reason(&self) -> Option<StopReason> {
        self.inner
            .stop_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn status_line(&self) -> Option<String> {
        let state = self.inner.state();
        if state.parts.is_empty() {
            return Some("batch: preparing input files".into());
        }
        let jobs: Vec<String> = state
            .parts
            .iter()
            .filter(|p| !p.collected)
            .take(4)
            .map(|p| {
                let processed = p
                    .processed
                    .map(|n| format!(" {}/{}", thousands(n), thousands(p.records)))
                    .unwrap_or_default();
                format!("{} {}{processed}", p.name(), p.status)
            })
            .collect();
        let collected = state.parts.iter().filter(|p| p.collected).count();
        Some(format!(
            "batch jobs: {} collected of {}{}{}",
            collected,
            state.parts.len(),
            if jobs.is_empty() { "" } else { "; " },
            jobs.join(", ")
        ))
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, BatchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn timings(&self) -> MutexGuard<'_, Timings> {
        self.timings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn uploaded(&self) -> MutexGuard<'_, std::collections::HashSet<u32>> {
        self.uploaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self) -> Result<(), Stopped> {
        let state = self.state().clone();
        job_state::write(&self.run_dir, &state).map_err(|err| {
            failed(
                "batch_state",
                err.to_string(),
                "The jobs already created keep running on AWS; fix the run directory and rerun to resume.",
            )
        })
    }

    fn parts_dir(&self) -> PathBuf {
        job_state::parts_dir(&self.run_dir)
    }
}
