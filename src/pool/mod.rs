//! The scheduler: prepared records arrive through a bounded channel, at most `concurrency`
//! calls run at once, each call is retried by the [`RetryPolicy`], and every finished call
//! goes out as a [`CallOutcome`]. Nothing here waits for the whole file.

pub mod feed;
pub mod retry;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::bedrock::errors::{CallError, ErrorKind};
use crate::bedrock::{Answer, Bedrock};
use crate::job::prepare::{Payload, Prepared, RecordMeta};
use retry::RetryPolicy;

/// One call's worth of records: one record, or a batch of texts for Cohere Embed.
#[derive(Debug, Clone)]
pub struct Task {
    pub model: String,
    pub records: Vec<Prepared>,
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

/// Runs `task` to an outcome: attempts, classified errors, backoff between retries.
pub async fn execute(
    bedrock: &Bedrock,
    task: Task,
    policy: &RetryPolicy,
    timeout: Duration,
) -> CallOutcome {
    let payloads: Vec<&Payload> = task.records.iter().map(|r| &r.payload).collect();
    let mut backoff = policy.backoff();
    let mut retries = Vec::new();
    let mut attempts = 0;
    let (result, latency) = loop {
        attempts += 1;
        let started = Instant::now();
        let result = match tokio::time::timeout(timeout, bedrock.call(&task.model, &payloads)).await
        {
            Ok(result) => result,
            Err(_) => Err(CallError::new(
                ErrorKind::Timeout,
                format!(
                    "no answer within {:.0} s (--timeout)",
                    timeout.as_secs_f64()
                ),
            )),
        };
        let latency = started.elapsed();
        match result {
            Err(err) if err.kind.retryable() => match backoff.next() {
                Some(delay) => {
                    retries.push(err.kind);
                    tracing::debug!(model = %task.model, kind = err.kind.name(), ?delay, "retrying: {}", err.message);
                    tokio::time::sleep(delay).await;
                }
                None => break (Err(err), latency),
            },
            other => break (other, latency),
        }
    };
    CallOutcome {
        model: task.model,
        records: task.records.into_iter().map(|r| r.meta).collect(),
        result,
        attempts,
        retries,
        latency,
    }
}

/// Takes tasks until the channel closes, running at most `concurrency` at once, and sends
/// each outcome to `outcomes`. Returns when every call has finished.
pub async fn run(
    bedrock: Bedrock,
    policy: RetryPolicy,
    timeout: Duration,
    concurrency: usize,
    mut tasks: mpsc::Receiver<Task>,
    outcomes: mpsc::Sender<CallOutcome>,
) {
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut running = JoinSet::new();
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let Some(task) = tasks.recv().await else {
            break;
        };
        let (bedrock, outcomes) = (bedrock.clone(), outcomes.clone());
        running.spawn(async move {
            let outcome = execute(&bedrock, task, &policy, timeout).await;
            drop(permit);
            let _ = outcomes.send(outcome).await;
        });
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
}
