//! A call the pool holds, from the channel to its outcome: what it asks of the quota
//! ([`demand`]), the attempts it made and where, its backoff, its budget hold, and what it
//! was billed. A call that ends becomes one [`CallOutcome`] counting every attempt.

use std::sync::Arc;
use std::time::Duration;

use super::budget::Hold;
use super::pacer::Demand;
use super::retry::RetryPolicy;
use crate::vocab::{Answer, CallError, CallOutcome, DEFAULT_OUTPUT_RESERVE, ErrorKind, Payload};
use crate::vocab::{RegionTries, Task, Usage};

/// Output tokens Bedrock reserves from the quota when a Converse call sets no `maxTokens`.
const DEFAULT_QUOTA_RESERVE: u64 = 4096;

/// What this call asks of the model's quota: Bedrock reserves the input plus the
/// output ceiling.
pub(super) fn demand(task: &Task) -> Demand {
    let mut demand = Demand::default();
    for record in &task.records {
        demand.estimated_input += record.estimated_input_tokens;
        demand.output_ceiling += match &record.payload {
            Payload::Converse(input) => input
                .max_tokens
                .map_or(DEFAULT_QUOTA_RESERVE, |m| m.max(0) as u64),
            // A retrieval is limited by requests: it generates nothing.
            Payload::Embed { .. } | Payload::Retrieve { .. } => 0,
            Payload::Invoke { .. } | Payload::Rag { .. } => DEFAULT_OUTPUT_RESERVE,
        };
    }
    demand
}

/// A model error or an answer that breaks `--schema` may be a fluke: one more try, then
/// it is the record's outcome.
pub(super) fn once_more(kind: ErrorKind, retries: &[ErrorKind]) -> bool {
    matches!(kind, ErrorKind::ModelError | ErrorKind::SchemaMismatch) && !retries.contains(&kind)
}

/// The usage of a call's answers.
pub(super) fn used(result: &Result<Vec<Answer>, CallError>) -> Usage {
    let mut usage = Usage::default();
    match result {
        Ok(answers) => {
            for answer in answers {
                usage.add(answer.usage());
            }
        }
        Err(err) => usage.add(&err.billed),
    }
    usage
}

/// The outcome of a call the run stopped before it finished.
pub(super) fn cancelled() -> CallError {
    CallError::new(
        ErrorKind::Cancelled,
        "the run stopped before this record was answered",
    )
}

/// A call the pool holds: between attempts, or with one in flight.
pub(super) struct Call {
    pub task: Arc<Task>,
    pub demand: Demand,
    pub attempts: u32,
    /// Attempts and throttles by lane.
    pub tries: Vec<RegionTries>,
    pub retries: Vec<ErrorKind>,
    pub backoff: Box<dyn Iterator<Item = Duration> + Send + Sync>,
    pub hold: Option<Hold>,
    pub latency: Duration,
    /// What earlier attempts were billed (answers that broke `--schema`).
    pub billed: Usage,
}

impl Call {
    /// A call of `task` before its first attempt, backing off as `policy` says.
    pub fn new(task: Task, policy: &RetryPolicy) -> Call {
        let demand = demand(&task);
        Call {
            task: Arc::new(task),
            demand,
            attempts: 0,
            tries: Vec::new(),
            retries: Vec::new(),
            backoff: Box::new(policy.backoff()),
            hold: None,
            latency: Duration::ZERO,
            billed: Usage::default(),
        }
    }

    /// Counts an attempt going to the lane `region`. The region of the latest attempt goes
    /// last: the one that answers names the line.
    pub fn attempt_in(&mut self, region: &str) {
        self.attempts += 1;
        let mut tries = match self.tries.iter().position(|t| *t.region == *region) {
            Some(at) => self.tries.remove(at),
            None => RegionTries {
                region: region.to_string(),
                attempts: 0,
                throttles: 0,
            },
        };
        tries.attempts += 1;
        self.tries.push(tries);
    }

    /// The call's outcome, ending with `result` (the budget hold is settled by the
    /// dispatcher, which owns the budget).
    pub fn outcome(self, result: Result<Vec<Answer>, CallError>) -> CallOutcome {
        let task = Arc::try_unwrap(self.task).unwrap_or_else(|shared| (*shared).clone());
        let service_tier = task.service_tier;
        let region = self
            .tries
            .last()
            .map(|tries| tries.region.clone())
            .unwrap_or_default();
        CallOutcome {
            region,
            regions: self.tries,
            model: task.model,
            records: task.records.into_iter().map(|r| r.meta).collect(),
            result,
            attempts: self.attempts,
            retries: self.retries,
            latency: self.latency,
            batch_job: None,
            service_tier,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_error_or_a_schema_mismatch_gets_one_more_try() {
        for kind in [ErrorKind::ModelError, ErrorKind::SchemaMismatch] {
            assert!(once_more(kind, &[]));
            assert!(once_more(kind, &[ErrorKind::Throttling]));
            assert!(!once_more(kind, &[kind]), "{kind:?} twice is the outcome");
        }
        assert!(once_more(
            ErrorKind::SchemaMismatch,
            &[ErrorKind::ModelError]
        ));
        assert!(!once_more(ErrorKind::Validation, &[]));
        assert!(!ErrorKind::SchemaMismatch.retryable());
    }
}
