//! The scheduler: prepared records arrive through a bounded channel; every attempt takes a
//! permit from the adaptive [`Limiter`] (and tokens from the [`Pacer`] when the quota is
//! known); failed attempts are classified and retried by the [`RetryPolicy`], without
//! holding a permit while they back off; every finished call goes out as a [`CallOutcome`].
//! Nothing here waits for the whole file.

pub mod budget;
pub mod feed;
pub mod limiter;
pub mod pacer;
pub mod retry;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::bedrock::errors::{CallError, ErrorKind};
use crate::bedrock::{Answer, Bedrock, Usage};
use crate::job::prepare::{Payload, Prepared, RecordMeta};
use budget::{Budget, Hold};
use limiter::{Limiter, Permit, Signal};
use pacer::Pacer;
use retry::RetryPolicy;

/// Output tokens reserved for pacing when a record sets no `max_tokens`.
const DEFAULT_OUTPUT_RESERVE: u64 = 1024;

/// One call's worth of records: one record, or a batch of texts for Cohere Embed.
#[derive(Debug, Clone)]
pub struct Task {
    pub model: String,
    pub records: Vec<Prepared>,
}

impl Task {
    /// The most this call can use: estimated input plus the output ceiling.
    pub fn worst_case(&self) -> Usage {
        let mut usage = Usage::default();
        for record in &self.records {
            usage.input_tokens += record.estimated_input_tokens;
            usage.output_tokens += match &record.payload {
                Payload::Converse(input) => input
                    .max_tokens
                    .map_or(DEFAULT_OUTPUT_RESERVE, |m| m.max(0) as u64),
                Payload::Embed { .. } => 0,
                Payload::Invoke { .. } => DEFAULT_OUTPUT_RESERVE,
            };
        }
        usage
    }

    /// Tokens Bedrock will reserve for this call: input plus the output ceiling.
    fn reserve_tokens(&self) -> u64 {
        let worst = self.worst_case();
        worst.input_tokens + worst.output_tokens
    }
}

/// The usage of a call's answers.
fn used(result: &Result<Vec<Answer>, CallError>) -> Usage {
    let mut usage = Usage::default();
    if let Ok(answers) = result {
        for answer in answers {
            usage.add(answer.usage());
        }
    }
    usage
}

/// A finished call: its records and how it went.
#[derive(Debug)]
pub struct CallOutcome {
    pub model: String,
    pub records: Vec<RecordMeta>,
    /// One answer per record, or the error that ended the call.
    pub result: Result<Vec<Answer>, CallError>,
    pub attempts: u32,
    /// The reason of each retry, in order.
    pub retries: Vec<ErrorKind>,
    /// The last attempt's duration (backoff sleeps excluded).
    pub latency: Duration,
}

/// What every call shares: the limiter, the pacer, the policy, and the stop flag.
pub struct Controls {
    pub limiter: Limiter,
    pub pacer: Option<Pacer>,
    pub policy: RetryPolicy,
    pub timeout: Duration,
    /// Set when the run stops taking records: calls not yet attempted end as cancelled.
    pub stop: Arc<AtomicBool>,
    pub budget: Option<Budget>,
    /// Set when the budget stopped the run.
    pub over_budget: Arc<AtomicBool>,
}

impl Controls {
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

fn signal(result: &Result<Vec<Answer>, CallError>) -> Signal {
    match result {
        Ok(_) => Signal::Success,
        Err(err) if err.kind.congestion() => Signal::Congestion,
        Err(_) => Signal::Neutral,
    }
}

/// The outcome of a call the run stopped before sending.
fn cancelled() -> CallError {
    CallError::new(
        ErrorKind::Cancelled,
        "the run stopped before this record was sent",
    )
}

/// Runs `task` to an outcome: attempts, classified errors, backoff between retries. The
/// first attempt uses `permit` when given; each retry waits for a new one.
pub async fn execute(
    bedrock: &Bedrock,
    task: Task,
    controls: &Controls,
    mut permit: Option<Permit>,
    hold: Option<Hold>,
) -> CallOutcome {
    let payloads: Vec<&Payload> = task.records.iter().map(|r| &r.payload).collect();
    let reserve = task.reserve_tokens();
    let mut backoff = controls.policy.backoff();
    let mut retries = Vec::new();
    let mut attempts = 0;
    let mut latency = Duration::ZERO;
    let result = loop {
        if controls.stopped() {
            break Err(cancelled());
        }
        let permit = match permit.take() {
            Some(permit) => permit,
            None => controls.limiter.acquire().await,
        };
        let reservation = match &controls.pacer {
            Some(pacer) => Some(pacer.reserve(reserve).await),
            None => None,
        };
        if controls.stopped() {
            // Stopped while waiting for a slot: this attempt is not made.
            drop(permit);
            if let (Some(pacer), Some(reservation)) = (&controls.pacer, reservation) {
                pacer.settle(reservation, 0);
            }
            break Err(cancelled());
        }
        attempts += 1;
        let started = Instant::now();
        let result = match tokio::time::timeout(
            controls.timeout,
            bedrock.call(&task.model, &payloads),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(CallError::new(
                ErrorKind::Timeout,
                format!(
                    "no answer within {:.0} s (--timeout)",
                    controls.timeout.as_secs_f64()
                ),
            )),
        };
        latency = started.elapsed();
        permit.finish(signal(&result));
        if let (Some(pacer), Some(reservation)) = (&controls.pacer, reservation) {
            let used = used(&result);
            pacer.settle(reservation, used.input_tokens + used.output_tokens);
        }
        let err = match result {
            Err(err) if err.kind.fatal() => {
                // Every record would fail the same way: stop taking new ones at once.
                controls.stop.store(true, Ordering::Relaxed);
                break Err(err);
            }
            Err(err) if err.kind.retryable() => err,
            // A model error may be a fluke: one more try, then it is the record's outcome.
            Err(err)
                if err.kind == ErrorKind::ModelError
                    && !retries.contains(&ErrorKind::ModelError) =>
            {
                err
            }
            other => break other,
        };
        match backoff.next() {
            Some(delay) => {
                let delay = err.retry_after.map_or(delay, |hint| hint.max(delay));
                retries.push(err.kind);
                tracing::debug!(model = %task.model, kind = err.kind.name(), ?delay, "retrying: {}", err.message);
                tokio::time::sleep(delay).await;
            }
            None => break Err(err),
        }
    };
    if let (Some(budget), Some(hold)) = (&controls.budget, hold) {
        budget.settle(hold, &task.model, &used(&result));
    }
    CallOutcome {
        model: task.model,
        records: task.records.into_iter().map(|r| r.meta).collect(),
        result,
        attempts,
        retries,
        latency,
    }
}

/// Takes tasks until the channel closes or the run stops, and sends each outcome to
/// `outcomes`. At most `alive` calls exist at once (attempting or backing off). Returns
/// when every call has finished.
pub async fn run(
    bedrock: Bedrock,
    controls: Arc<Controls>,
    alive: usize,
    mut tasks: mpsc::Receiver<Task>,
    outcomes: mpsc::Sender<CallOutcome>,
) {
    let alive = Arc::new(Semaphore::new(alive.max(1)));
    let mut running = JoinSet::new();
    loop {
        let Ok(slot) = alive.clone().acquire_owned().await else {
            break;
        };
        // A record is taken only when it can be sent: nothing queues up behind the limiter.
        let permit = controls.limiter.acquire().await;
        let Some(task) = tasks.recv().await else {
            break;
        };
        if controls.stopped() {
            break;
        }
        let hold = match &controls.budget {
            Some(budget) => match budget.hold(&task.model, &task.worst_case()).await {
                Some(hold) => Some(hold),
                None => {
                    // Sending it could pass the budget: stop here, resumable.
                    controls.over_budget.store(true, Ordering::Relaxed);
                    controls.stop.store(true, Ordering::Relaxed);
                    break;
                }
            },
            None => None,
        };
        let (bedrock, outcomes, controls) = (bedrock.clone(), outcomes.clone(), controls.clone());
        running.spawn(async move {
            let outcome = execute(&bedrock, task, &controls, Some(permit), hold).await;
            drop(slot);
            let _ = outcomes.send(outcome).await;
        });
        while running.try_join_next().is_some() {}
    }
    drop(tasks);
    while running.join_next().await.is_some() {}
}
