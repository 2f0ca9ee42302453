//! The seam between a run and what turns prepared records into outcomes. Everything common
//! to every engine (reading and preparing records, the done set and resume, result lines,
//! totals, checkpoints, progress, Ctrl-C, the exit code) lives in `run`; an [`Engine`] takes
//! [`Task`]s from a channel and sends back one [`CallOutcome`] per task, counting every
//! attempt it made, until the channel closes or the run stops it.
//!
//! The on-demand pool over bedrock-runtime (`pool::OnDemand`) is the first engine, and
//! Knowledge Bases run as a service of it; Bedrock Batch Inference (`batch::BatchInference`)
//! is the second. A [`Service`] is what an engine calls to reach Bedrock: the real clients
//! implement it (`bedrock::service`, `bedrock::agent_runtime`), tests implement models of
//! it; [`Via`] says which engine a run uses.
//!
//! Stopping has one vocabulary. The run asks engines to stop through [`Stops`] (`stop`:
//! take no more records; `abandon`: give up calls in flight too). An engine that stops by
//! itself says why with a [`StopReason`] (the budget, a stall, a failure). summary.json
//! records a run that stopped early as `aborted` (`summary::StopReport`: kind, message,
//! hint) and a budget stop as `budget` (`summary::BudgetStop`).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::vocab::{Answer, CallError, Payload, ServiceTier};
use crate::vocab::{BatchReport, CallOutcome, LearnedQuota, LimiterReport, MaxTokensAdvice, Task};

/// The service as an engine sees it: one call with a model and its payloads. `Bedrock`
/// (bedrock-runtime) is the real one and a knowledge base another; tests drive the pool
/// against models of the service's quota.
pub trait Service: Clone + Send + Sync + 'static {
    fn call(
        &self,
        model: &str,
        tier: Option<ServiceTier>,
        payloads: &[&Payload],
    ) -> impl Future<Output = Result<Vec<Answer>, CallError>> + Send;
}

/// How the run tells an engine to stop: shared flags, so a signal handler can set them.
#[derive(Debug, Clone, Default)]
pub struct Stops {
    /// Take no new records; calls not yet sent end as cancelled.
    pub stop: Arc<AtomicBool>,
    /// Give up on calls in flight too (the grace period is over).
    pub abandon: Arc<AtomicBool>,
}

impl Stops {
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub fn abandon(&self) {
        self.abandon.store(true, Ordering::Relaxed);
    }

    pub fn abandoned(&self) -> bool {
        self.abandon.load(Ordering::Relaxed)
    }
}

/// Why an engine stopped on its own, with records left (they stay for the next run).
#[derive(Debug, Clone, PartialEq)]
pub enum StopReason {
    /// Sending the next call could pass `--budget-usd`.
    Budget { limit_usd: f64, spent_usd: f64 },
    /// Nothing succeeded for `--stall-timeout` while every attempt was throttled.
    Stalled { after_secs: f64 },
    /// The engine cannot go on (a job the service refused, a bucket it cannot write):
    /// what happened and what to do. Records left stay for the next run.
    Failed {
        kind: String,
        message: String,
        hint: String,
    },
}

/// What an engine is doing right now, as the progress line shows it: the numbers of calls
/// still going, which the totals (counted as calls end) do not have yet.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Live {
    /// Calls allowed in flight now (`None` for an engine of jobs, not calls).
    pub limit: Option<usize>,
    /// Attempts in flight now (`None` for an engine of jobs).
    pub in_flight: Option<usize>,
    /// Attempts throttled so far, calls still going included.
    pub throttles: u64,
    /// Records a service has answered that have no line yet (a batch job's own count).
    pub answered: u64,
}

/// What an engine shows of itself while it runs and leaves in summary.json.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineReport {
    /// The (first) region's concurrency limiter.
    pub limiter: LimiterReport,
    pub learned_quota: BTreeMap<String, LearnedQuota>,
    /// A smaller `--max-tokens` for each model whose output ceiling held the run back.
    pub max_tokens_advice: BTreeMap<String, MaxTokensAdvice>,
    /// Each region or endpoint: its name, its concurrency limit now, whether it is in use.
    pub lanes: Vec<(String, usize, bool)>,
    /// Batch Inference jobs and timings, with `--via batch`.
    pub batch: Option<BatchReport>,
}

/// A test-only hook of debug builds: `BEDROCK_BATCH_TEST_PANIC=STAGE:N` (`reader`,
/// `preparer` or `engine`) panics that stage at its Nth record or task, so the end-to-end
/// tests can see a lost stage end the run non-zero and a rerun resume. Release builds have
/// no hook.
pub fn test_panic(stage: &str, n: u64) {
    if cfg!(debug_assertions)
        && let Ok(planted) = std::env::var("BEDROCK_BATCH_TEST_PANIC")
        && planted == format!("{stage}:{n}")
    {
        panic!("BEDROCK_BATCH_TEST_PANIC planted a panic in the {stage} at {n}");
    }
}

/// Turns tasks into outcomes.
pub trait Engine: Send + Sync {
    /// Starts taking tasks; the handle ends when every task taken has an outcome.
    fn start(
        &self,
        tasks: mpsc::Receiver<Task>,
        outcomes: mpsc::Sender<CallOutcome>,
    ) -> JoinHandle<()>;

    /// What the engine is doing right now, for the progress display.
    fn live(&self) -> Live;

    fn report(&self) -> EngineReport;

    /// Set when the engine stopped on its own.
    fn stop_reason(&self) -> Option<StopReason>;

    /// A short word on the engine's own state for the progress line, when it has one.
    fn status_line(&self) -> Option<String> {
        None
    }
}

/// How records reach Bedrock (`--via`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    OnDemand,
    Batch,
    Auto,
}
