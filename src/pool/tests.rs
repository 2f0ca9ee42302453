//! The pool against a model of Bedrock's quota, in paused time: a bucket holding a minute
//! of tokens, refilled continuously; each call reserves its input plus `maxTokens` up front
//! and is turned away at once (or after a network delay) when the bucket is short; the
//! unused part comes back when the call ends. The service counts input tokens its own way
//! (not the pool's four-characters estimate), so the pool has to calibrate.

use std::sync::Mutex;

use serde_json::Value;

use super::*;
use crate::bucket::Bucket;
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
                stop_reason: "end_turn".into(),
                usage: Usage {
                    input_tokens: input,
                    output_tokens: output,
                    ..Usage::default()
                },
                ttft_ms: None,
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

fn controls() -> Arc<Controls> {
    Arc::new(Controls {
        limiter: Limiter::new(16, 1, 1024),
        pacer: Pacer::new(None, None),
        policy: RetryPolicy::new(8),
        timeout: Duration::from_secs(120),
        stall_timeout: Duration::from_secs(600),
        stops: Stops::default(),
        budget: None,
        over_budget: Arc::default(),
        stalled: Arc::default(),
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
    let pool = tokio::spawn(run(service.clone(), controls(), 2048, task_rx, outcome_tx));
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

#[tokio::test(start_paused = true)]
async fn tight_quota_from_a_cold_start() {
    // 60k TPM, 300 ms to first token, 80 tokens/s, ~1,100 characters, max tokens 200.
    let service = Bedrockish::new(60_000, 300, 80.0);
    let ran = drive(service, tasks(600, 220, 2000, 200), &[0, 120], &[]).await;
    assert_every_record_ok(&ran, 600);
    let [start, end] = &ran.checkpoints[..] else {
        panic!()
    };
    let goodput = goodput(start, end, 60_000.0, 120.0, true);
    let throttled = throttled(start, end);
    eprintln!("tight: goodput {goodput:.3}, throttled {throttled:.4} {end:?}");
    assert!(goodput >= 0.98, "goodput {goodput:.3}");
    assert!(throttled <= 0.01, "throttled {throttled:.4}");
}

#[tokio::test(start_paused = true)]
async fn large_quota_behind_a_slow_model() {
    // 1.2M TPM, 1.5 s to first token: a few hundred calls must be in flight.
    let service = Bedrockish::new(1_200_000, 1500, 80.0);
    let ran = drive(service, tasks(7000, 1500, 2500, 200), &[0, 90], &[]).await;
    assert_every_record_ok(&ran, 7000);
    let [start, end] = &ran.checkpoints[..] else {
        panic!()
    };
    let goodput = goodput(start, end, 1_200_000.0, 90.0, true);
    let throttled = throttled(start, end);
    eprintln!("large: goodput {goodput:.3}, throttled {throttled:.4} {end:?}");
    assert!(goodput >= 0.98, "goodput {goodput:.3}");
    assert!(throttled <= 0.01, "throttled {throttled:.4}");
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
    let ran = drive(service, tasks(600, 220, 2000, 200), &[0, 120], &[]).await;
    assert_every_record_ok(&ran, 600);
    let [start, end] = &ran.checkpoints[..] else {
        panic!()
    };
    let goodput = goodput(start, end, 60_000.0, 120.0, true);
    let throttled = throttled(start, end);
    eprintln!("slow throttles: goodput {goodput:.3}, throttled {throttled:.4} {end:?}");
    assert!(goodput >= 0.98, "goodput {goodput:.3}");
    assert!(throttled <= 0.015, "throttled {throttled:.4}");
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
        service.clone(),
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
        service.clone(),
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
