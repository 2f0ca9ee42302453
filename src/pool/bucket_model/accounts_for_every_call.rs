//! Every call the pool takes is accounted for: each attempt it sends is counted once
//! (throttles spending none of `--max-attempts`), a quota that admits nothing stalls the
//! run and leaves the records for the next one instead of failing them, and an attempt
//! that panics ends its record with an error line instead of hanging the run.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{
    Answer, Bedrockish, CallError, ErrorKind, Lane, Limiter, Pacer, Payload, RetryPolicy, Service,
    ServiceTier, controls, lanes, run, tasks,
};

#[tokio::test(start_paused = true)]
async fn every_attempt_is_counted_and_throttles_spend_no_attempts() {
    // A quota so tight that most first attempts are throttled, and only 2 attempts a record.
    let service = Bedrockish::new(3_000, 100, 1000.0);
    let (task_tx, task_rx) = mpsc::channel(64);
    let (outcome_tx, mut outcome_rx) = mpsc::channel(1024);
    let mut controls = Arc::try_unwrap(controls()).ok().unwrap();
    controls.policy = RetryPolicy::new(2);
    let pool = tokio::spawn(run(
        lanes(vec![service.clone()]),
        Arc::new(controls),
        2048,
        task_rx,
        outcome_tx,
    ));
    for task in tasks(40, 400, 800, 100) {
        task_tx.send(task).await.unwrap();
    }
    drop(task_tx);
    let mut attempts = 0;
    let mut throttles = 0;
    let mut n = 0;
    while let Some(outcome) = outcome_rx.recv().await {
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);
        attempts += outcome.attempts as u64;
        throttles += outcome
            .retries
            .iter()
            .filter(|k| **k == ErrorKind::Throttling)
            .count() as u64;
        n += 1;
    }
    pool.await.unwrap();
    assert_eq!(n, 40);
    let seen = service.seen();
    assert!(seen.throttles > 0, "the quota was reached");
    assert_eq!(attempts, seen.requests);
    assert_eq!(throttles, seen.throttles);
}

#[tokio::test(start_paused = true)]
async fn a_quota_that_admits_nothing_stalls_the_run_without_failing_records() {
    let service = Bedrockish::new(3_000, 100, 1000.0);
    // Every call reserves more than the whole bucket: nothing can ever be admitted.
    let (task_tx, task_rx) = mpsc::channel(64);
    let (outcome_tx, mut outcome_rx) = mpsc::channel(1024);
    let mut controls = Arc::try_unwrap(controls()).ok().unwrap();
    controls.stall_timeout = Duration::from_secs(60);
    let controls = Arc::new(controls);
    let pool = tokio::spawn(run(
        lanes(vec![service.clone()]),
        controls.clone(),
        2048,
        task_rx,
        outcome_tx,
    ));
    for task in tasks(5, 400, 800, 4000) {
        task_tx.send(task).await.unwrap();
    }
    drop(task_tx);
    let start = Instant::now();
    let mut outcomes = Vec::new();
    while let Some(outcome) = outcome_rx.recv().await {
        outcomes.push(outcome);
    }
    pool.await.unwrap();
    assert!(controls.stalled.load(Ordering::Relaxed));
    assert!(Instant::now() - start >= Duration::from_secs(60));
    // Records still in the channel get no outcome at all: the next run sends them.
    assert!(!outcomes.is_empty());
    for outcome in &outcomes {
        let err = outcome.result.as_ref().unwrap_err();
        assert_eq!(err.kind, ErrorKind::Cancelled, "left for the next run");
    }
    let attempts: u64 = outcomes.iter().map(|o| o.attempts as u64).sum();
    assert_eq!(attempts, service.seen().requests);
}

/// A service with a bug: it panics on every call.
#[derive(Clone)]
struct Panicky;

impl Service for Panicky {
    async fn call(
        &self,
        _model: &str,
        _tier: Option<ServiceTier>,
        _payloads: &[&Payload],
    ) -> Result<Vec<Answer>, CallError> {
        panic!("a bug in the service")
    }
}

#[tokio::test(start_paused = true)]
async fn an_attempt_that_panics_ends_its_record_instead_of_hanging_the_run() {
    let lanes = Arc::new(vec![Lane::new(
        "region-0",
        Panicky,
        Limiter::new(4, 1, 4),
        Pacer::new(None, None),
    )]);
    let (task_tx, task_rx) = mpsc::channel(64);
    let (outcome_tx, mut outcome_rx) = mpsc::channel(64);
    let pool = tokio::spawn(run(lanes, controls(), 64, task_rx, outcome_tx));
    for task in tasks(3, 10, 20, 10) {
        task_tx.send(task).await.unwrap();
    }
    drop(task_tx);
    let mut outcomes = Vec::new();
    while let Some(outcome) = outcome_rx.recv().await {
        outcomes.push(outcome);
    }
    pool.await.unwrap();
    assert_eq!(outcomes.len(), 3);
    for outcome in outcomes {
        let err = outcome.result.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Other);
        assert!(
            err.message.contains("inside bedrock-batch"),
            "{}",
            err.message
        );
    }
}
