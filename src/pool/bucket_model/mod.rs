//! The pool against a model of Bedrock's quota, in paused time: a bucket holding a minute
//! of tokens, refilled continuously; each call reserves its input plus `maxTokens` up front
//! and is turned away at once (or after a network delay) when the bucket is short; the
//! unused part comes back when the call ends. The service counts input tokens its own way
//! (not the pool's four-characters estimate), so the pool has to calibrate. Here: the model
//! ([`Bedrockish`]), the records and the drivers; the tests, by what they prove, are in
//! the files below.

mod accounts_for_every_call;
mod fills_the_quota;
mod shares_a_quota;
mod spreads_over_regions;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::limiter::Limiter;
use super::pacer::Pacer;
use super::retry::RetryPolicy;
use super::{Controls, Lane, run};
use crate::engine::{Service, Stops};
use crate::rules::bucket::Bucket;
use crate::vocab::{Answer, CallError, ErrorKind, Payload, ServiceTier, Usage};
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
    /// This client's own counters, when several share the quota (see [`Bedrockish::sharing`]).
    own: Arc<Mutex<Seen>>,
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
            own: Arc::default(),
        }
    }

    /// Another client of the same quota (another process), with counters of its own.
    fn sharing(&self) -> Bedrockish {
        Bedrockish {
            own: Arc::default(),
            ..self.clone()
        }
    }

    /// What this client alone was seen doing.
    fn own(&self) -> Seen {
        self.own.lock().unwrap().clone()
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
        _tier: Option<ServiceTier>,
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
                let mut own = this.own.lock().unwrap();
                own.requests += 1;
                if admitted {
                    quota.bucket.take(reserve, now);
                    quota.seen.tokens += (input + output) as f64;
                    own.tokens += (input + output) as f64;
                } else {
                    quota.seen.throttles += 1;
                    own.throttles += 1;
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
    lanes_pacing(services, || Pacer::new(None, None))
}

/// One lane per service, each with the run's default limits and a pacer from `pacer`.
fn lanes_pacing(
    services: Vec<Bedrockish>,
    pacer: impl Fn() -> Pacer,
) -> Arc<Vec<Lane<Bedrockish>>> {
    Arc::new(
        services
            .into_iter()
            .enumerate()
            .map(|(i, service)| {
                Lane::new(
                    &format!("region-{i}"),
                    service,
                    Limiter::new(16, 1, 1024),
                    pacer(),
                )
            })
            .collect(),
    )
}

/// Starts the pool over `lanes`, holding at most `alive` calls, and feeds it `tasks` as
/// fast as it takes them; returns the pool's task and its outcomes.
fn start(
    lanes: Arc<Vec<Lane<Bedrockish>>>,
    alive: usize,
    tasks: Vec<Task>,
) -> (JoinHandle<()>, mpsc::Receiver<CallOutcome>) {
    let (task_tx, task_rx) = mpsc::channel(64);
    let (outcome_tx, outcome_rx) = mpsc::channel(1024);
    let pool = tokio::spawn(run(lanes, controls(), alive, task_rx, outcome_tx));
    tokio::spawn(async move {
        for task in tasks {
            if task_tx.send(task).await.is_err() {
                break;
            }
        }
    });
    (pool, outcome_rx)
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
        max_tokens_advice: false,
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
    let (pool, mut outcome_rx) = start(lanes(vec![service.clone()]), 2048, tasks);
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
