//! The pool against a model of Bedrock's quota, in paused time: a bucket holding a minute
//! of tokens, refilled continuously; each call reserves its input plus `maxTokens` up front
//! and is turned away at once (or after a network delay) when the bucket is short; the
//! unused part comes back when the call ends. The service counts input tokens its own way
//! (not the pool's four-characters estimate), so the pool has to calibrate.

use std::sync::Mutex;

use serde_json::Value;

use super::*;
use crate::rules::bucket::Bucket;
use crate::vocab::{CallOutcome, Prepared, RecordMeta, Task};
use crate::vocab::{ConverseInput, Prompt};

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

/// The service's counters.
#[derive(Debug, Default, Clone)]
struct Seen {
    requests: u64,
    throttles: u64,
    /// Tokens of admitted calls (input + output), counted at admission.
    tokens: f64,
}

struct Quota {
    bucket: Bucket,
    seen: Seen,
}

#[derive(Clone)]
struct Bedrockish {
    quota: Arc<Mutex<Quota>>,
    first_token: Duration,
    tokens_per_sec: f64,
    /// How long a throttle takes to come back.
    throttle_delay: Duration,
    /// Real input tokens per four characters.
    input_factor: f64,
    /// Answer every call with AccessDeniedException (the model is not enabled here).
    deny: bool,
}

impl Bedrockish {
    fn new(tpm: u64, first_token_ms: u64, tokens_per_sec: f64) -> Bedrockish {
        let now = Instant::now().into_std();
        Bedrockish {
            quota: Arc::new(Mutex::new(Quota {
                bucket: Bucket::per_minute(tpm, now),
                seen: Seen::default(),
            })),
            first_token: Duration::from_millis(first_token_ms),
            tokens_per_sec,
            throttle_delay: Duration::ZERO,
            input_factor: 1.15,
            deny: false,
        }
    }

    fn seen(&self) -> Seen {
        self.quota.lock().unwrap().seen.clone()
    }

    fn set_tpm(&self, tpm: u64) {
        let now = Instant::now().into_std();
        self.quota.lock().unwrap().bucket.set_per_minute(tpm, now);
    }
}

impl Service for Bedrockish {
    fn call(
        &self,
        _model: &str,
        _tier: Option<crate::vocab::ServiceTier>,
        payloads: &[&Payload],
    ) -> impl Future<Output = Result<Vec<Answer>, CallError>> + Send {
        let (chars, max_tokens) = match payloads {
            [Payload::Converse(input)] => match &input.prompt {
                Prompt::Text(text) => (text.len(), input.max_tokens.unwrap_or(4096) as u64),
                Prompt::Messages(_) => (0, 0),
            },
            _ => (0, 0),
        };
        let input = (chars as f64 / 4.0 * self.input_factor).ceil() as u64;
        let output = (40 + (input * 7) % 150).min(max_tokens);
        let this = self.clone();
        async move {
            if this.deny {
                this.quota.lock().unwrap().seen.requests += 1;
                return Err(CallError::new(
                    ErrorKind::AccessDenied,
                    "You don't have access to the model with the specified model ID.",
                ));
            }
            let reserve = (input + max_tokens) as f64;
            let admitted = {
                let mut quota = this.quota.lock().unwrap();
                let now = Instant::now().into_std();
                quota.seen.requests += 1;
                let admitted = quota.bucket.has(reserve, now);
                if admitted {
                    quota.bucket.take(reserve, now);
                    quota.seen.tokens += (input + output) as f64;
                } else {
                    quota.seen.throttles += 1;
                }
                admitted
            };
            if !admitted {
                tokio::time::sleep(this.throttle_delay).await;
                return Err(CallError::new(
                    ErrorKind::Throttling,
                    "Too many tokens, please wait before trying again.",
                ));
            }
            let generating = Duration::from_secs_f64(output as f64 / this.tokens_per_sec);
            tokio::time::sleep(this.first_token + generating).await;
            {
                let mut quota = this.quota.lock().unwrap();
                let now = Instant::now().into_std();
                quota.bucket.refund((max_tokens - output) as f64, now);
            }
            Ok(vec![Answer::Text {
                output: "ok".into(),
                data: None,
                stop_reason: "end_turn".into(),
                usage: Usage {
                    input_tokens: input,
                    output_tokens: output,
                    ..Usage::default()
                },
                ttft_ms: None,
                service_tier: None,
            }])
        }
    }
}

/// `n` records of `min..max` characters, spread by a fixed sequence.
fn tasks(n: usize, min: usize, max: usize, max_tokens: i32) -> Vec<Task> {
    let mut x: u64 = 12345;
    (0..n)
        .map(|i| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = min + (x >> 33) as usize % (max - min + 1);
            let text = "word ".repeat(len / 5 + 1)[..len].to_string();
            Task {
                model: MODEL.into(),
                service_tier: None,
                records: vec![Prepared {
                    meta: RecordMeta {
                        number: i as u64 + 1,
                        line: i as u64 + 1,
                        id: Value::from(i as u64 + 1),
                        kept: None,
                        warnings: Vec::new(),
                        expected: None,
                    },
                    model: MODEL.into(),
                    service_tier: None,
                    estimated_input_tokens: (len as u64).div_ceil(4),
                    payload: Payload::Converse(ConverseInput {
                        system: None,
                        prompt: Prompt::Text(text),
                        images: Vec::new(),
                        documents: Vec::new(),
                        max_tokens: Some(max_tokens),
                        temperature: None,
                        top_p: None,
                        stop: Vec::new(),
                    }),
                }],
            }
        })
        .collect()
}

/// One lane per service, each with the run's default limits and nothing known of its quota.
fn lanes(services: Vec<Bedrockish>) -> Arc<Vec<Lane<Bedrockish>>> {
    Arc::new(
        services
            .into_iter()
            .enumerate()
            .map(|(i, service)| {
                Lane::new(
                    &format!("region-{i}"),
                    service,
                    Limiter::new(16, 1, 1024),
                    Pacer::new(None, None),
                )
            })
            .collect(),
    )
}

fn controls() -> Arc<Controls> {
    Arc::new(Controls {
        policy: RetryPolicy::new(8),
        timeout: Duration::from_secs(120),
        stall_timeout: Duration::from_secs(600),
        stops: Stops::default(),
        budget: None,
        over_budget: Arc::default(),
        stalled: Arc::default(),
        throttled: Arc::default(),
    })
}

/// What the service saw at each checkpoint, and every outcome.
struct Ran {
    checkpoints: Vec<Seen>,
    outcomes: Vec<CallOutcome>,
}

/// Runs `tasks` through the pool against `service`, reading the service's counters at each
/// of `checkpoints` (seconds from the start) and applying `changes` (seconds, new TPM).
async fn drive(
    service: Bedrockish,
    tasks: Vec<Task>,
    checkpoints: &[u64],
    changes: &[(u64, u64)],
) -> Ran {
    let (task_tx, task_rx) = mpsc::channel(64);
    let (outcome_tx, mut outcome_rx) = mpsc::channel(1024);
    let pool = tokio::spawn(run(
        lanes(vec![service.clone()]),
        controls(),
        2048,
        task_rx,
        outcome_tx,
    ));
    tokio::spawn(async move {
        for task in tasks {
            if task_tx.send(task).await.is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    for (at, tpm) in changes.iter().copied() {
        let service = service.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(start + Duration::from_secs(at)).await;
            service.set_tpm(tpm);
        });
    }
    let readings = checkpoints
        .iter()
        .map(|at| {
            let service = service.clone();
            let at = start + Duration::from_secs(*at);
            tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                service.seen()
            })
        })
        .collect::<Vec<_>>();
    let mut outcomes = Vec::new();
    while let Some(outcome) = outcome_rx.recv().await {
        outcomes.push(outcome);
    }
    pool.await.unwrap();
    let mut checkpoints = Vec::new();
    for reading in readings {
        checkpoints.push(reading.await.unwrap());
    }
    Ran {
        checkpoints,
        outcomes,
    }
}

/// Goodput between two readings: tokens admitted / what the quota allowed, where the first
/// reading is the cold start (a full bucket: one more minute of quota).
fn goodput(from: &Seen, to: &Seen, tpm: f64, secs: f64, cold: bool) -> f64 {
    let allowed = tpm / 60.0 * secs + if cold { tpm } else { 0.0 };
    (to.tokens - from.tokens) / allowed
}

fn throttled(from: &Seen, to: &Seen) -> f64 {
    (to.throttles - from.throttles) as f64 / (to.requests - from.requests).max(1) as f64
}

fn assert_every_record_ok(ran: &Ran, n: usize) {
    assert_eq!(ran.outcomes.len(), n);
    for outcome in &ran.outcomes {
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    }
}

/// Runs `tasks` against `service` from a cold start and checks, over the first `window`
/// seconds, that every record is ok and the quota of `tpm` was used as targeted.
async fn assert_cold_start(
    name: &str,
    service: Bedrockish,
    tasks: Vec<Task>,
    tpm: f64,
    window: u64,
    (min_goodput, max_throttled): (f64, f64),
) {
    let n = tasks.len();
    let ran = drive(service, tasks, &[0, window], &[]).await;
    assert_every_record_ok(&ran, n);
    let [start, end] = &ran.checkpoints[..] else {
        panic!("two readings")
    };
    let goodput = goodput(start, end, tpm, window as f64, true);
    let throttled = throttled(start, end);
    eprintln!("{name}: goodput {goodput:.3}, throttled {throttled:.4} {end:?}");
    assert!(goodput >= min_goodput, "{name}: goodput {goodput:.3}");
    assert!(
        throttled <= max_throttled,
        "{name}: throttled {throttled:.4}"
    );
}

#[tokio::test(start_paused = true)]
async fn tight_quota_from_a_cold_start() {
    // 60k TPM, 300 ms to first token, 80 tokens/s, ~1,100 characters, max tokens 200.
    let service = Bedrockish::new(60_000, 300, 80.0);
    let tasks = tasks(600, 220, 2000, 200);
    assert_cold_start("tight", service, tasks, 60_000.0, 120, (0.98, 0.01)).await;
}

#[tokio::test(start_paused = true)]
async fn large_quota_behind_a_slow_model() {
    // 1.2M TPM, 1.5 s to first token: a few hundred calls must be in flight.
    let service = Bedrockish::new(1_200_000, 1500, 80.0);
    let tasks = tasks(7000, 1500, 2500, 200);
    assert_cold_start("large", service, tasks, 1_200_000.0, 90, (0.98, 0.01)).await;
}

#[tokio::test(start_paused = true)]
async fn quota_that_drops_and_comes_back() {
    // 120k TPM, 40k from 40 s to 80 s, then 120k again.
    let service = Bedrockish::new(120_000, 300, 80.0);
    let ran = drive(
        service,
        tasks(1100, 220, 2000, 200),
        &[0, 40, 60, 80, 100, 140],
        &[(40, 40_000), (80, 120_000)],
    )
    .await;
    assert_every_record_ok(&ran, 1100);
    let c = &ran.checkpoints;
    let first = goodput(&c[0], &c[1], 120_000.0, 40.0, true);
    let low = goodput(&c[2], &c[3], 40_000.0, 20.0, false);
    let back = goodput(&c[4], &c[5], 120_000.0, 40.0, false);
    eprintln!(
        "drop: goodput {first:.3} / {low:.3} / {back:.3}, throttled {:.4} {:.4} {:.4}",
        throttled(&c[0], &c[1]),
        throttled(&c[1], &c[3]),
        throttled(&c[3], &c[5])
    );
    assert!(first >= 0.9, "first phase {first:.3}");
    assert!(low >= 0.9, "within 20 s of the drop {low:.3}");
    assert!(back >= 0.9, "within 20 s of the return {back:.3}");
}

#[tokio::test(start_paused = true)]
async fn slow_throttles_over_a_network() {
    // Like the tight quota, but throttles take 50 ms to come back.
    let mut service = Bedrockish::new(60_000, 300, 80.0);
    service.throttle_delay = Duration::from_millis(50);
    let tasks = tasks(600, 220, 2000, 200);
    assert_cold_start(
        "slow throttles",
        service,
        tasks,
        60_000.0,
        120,
        (0.98, 0.015),
    )
    .await;
}

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

/// Runs `tasks` over one lane per service; returns the outcomes and each service's counters
/// at `at` seconds.
async fn drive_lanes(
    services: Vec<Bedrockish>,
    tasks: Vec<Task>,
    at: u64,
) -> (Vec<CallOutcome>, Vec<Seen>) {
    let (task_tx, task_rx) = mpsc::channel(64);
    let (outcome_tx, mut outcome_rx) = mpsc::channel(1024);
    let pool = tokio::spawn(run(
        lanes(services.clone()),
        controls(),
        4096,
        task_rx,
        outcome_tx,
    ));
    tokio::spawn(async move {
        for task in tasks {
            if task_tx.send(task).await.is_err() {
                break;
            }
        }
    });
    let reading = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(at)).await;
        services.iter().map(Bedrockish::seen).collect::<Vec<_>>()
    });
    let mut outcomes = Vec::new();
    while let Some(outcome) = outcome_rx.recv().await {
        outcomes.push(outcome);
    }
    pool.await.unwrap();
    (outcomes, reading.await.unwrap())
}

#[tokio::test(start_paused = true)]
async fn three_regions_add_their_quotas_up() {
    let services: Vec<Bedrockish> = [30_000, 60_000, 90_000]
        .into_iter()
        .map(|tpm| Bedrockish::new(tpm, 300, 80.0))
        .collect();
    let (outcomes, seen) = drive_lanes(services.clone(), tasks(2500, 220, 2000, 200), 90).await;
    assert_eq!(outcomes.len(), 2500);
    assert!(outcomes.iter().all(|o| o.result.is_ok()));
    let tokens: f64 = seen.iter().map(|s| s.tokens).sum();
    let allowed = 180_000.0 * (1.0 + 90.0 / 60.0);
    let requests: u64 = seen.iter().map(|s| s.requests).sum();
    let throttles: u64 = seen.iter().map(|s| s.throttles).sum();
    let goodput = tokens / allowed;
    let throttled = throttles as f64 / requests as f64;
    eprintln!("three regions: goodput {goodput:.3}, throttled {throttled:.4} {seen:?}");
    assert!(goodput >= 0.95, "goodput {goodput:.3}");
    assert!(throttled <= 0.02, "throttled {throttled:.4}");
    // Every attempt is counted in the region it went to.
    for (i, service) in services.iter().enumerate() {
        let name = format!("region-{i}");
        let (attempts, throttles) = outcomes
            .iter()
            .flat_map(|o| &o.regions)
            .filter(|t| t.region == name)
            .fold((0, 0), |(a, t), r| {
                (a + r.attempts as u64, t + r.throttles as u64)
            });
        let all = service.seen();
        assert_eq!(
            (attempts, throttles),
            (all.requests, all.throttles),
            "{name}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_region_without_the_model_drops_out_and_the_others_go_on() {
    let mut denied = Bedrockish::new(60_000, 100, 1000.0);
    denied.deny = true;
    let open = Bedrockish::new(600_000, 100, 1000.0);
    let (outcomes, _) = drive_lanes(vec![denied.clone(), open], tasks(200, 200, 400, 100), 1).await;
    assert_eq!(outcomes.len(), 200);
    for outcome in &outcomes {
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);
        assert_eq!(outcome.region, "region-1");
    }
    assert!(
        denied.seen().requests <= 16,
        "dropped after the first answers: {}",
        denied.seen().requests
    );
}

#[tokio::test(start_paused = true)]
async fn when_every_region_denies_the_model_the_run_stops() {
    let mut first = Bedrockish::new(60_000, 100, 1000.0);
    first.deny = true;
    let mut second = first.clone();
    second.quota = Arc::new(Mutex::new(Quota {
        bucket: Bucket::per_minute(60_000, Instant::now().into_std()),
        seen: Seen::default(),
    }));
    let (outcomes, seen) = drive_lanes(vec![first, second], tasks(50, 200, 400, 100), 600).await;
    assert!(
        outcomes.iter().any(|o| o
            .result
            .as_ref()
            .is_err_and(|e| e.kind == ErrorKind::AccessDenied)),
        "the last region's denial is fatal"
    );
    // The run stops: records not yet sent are not sent (they stay for a rerun), so fewer
    // than the 50 come back and the regions saw only the calls before the stop.
    let requests: u64 = seen.iter().map(|s| s.requests).sum();
    assert!(
        outcomes.len() < 50 && requests < 50,
        "{} outcomes, {requests} requests after a fatal denial",
        outcomes.len()
    );
}

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

/// A service with a bug: it panics on every call.
#[derive(Clone)]
struct Panicky;

impl Service for Panicky {
    async fn call(
        &self,
        _model: &str,
        _tier: Option<crate::vocab::ServiceTier>,
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
