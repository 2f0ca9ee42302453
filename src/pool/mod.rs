//! The on-demand engine: prepared records arrive through a bounded channel and one
//! dispatcher ([`dispatcher`]) decides when each attempt goes out. An attempt needs a
//! permit from its lane's adaptive [`Limiter`](limiter::Limiter) (how many may be in
//! flight) and its quota from the lane's [`Pacer`](pacer::Pacer) (how fast they may go,
//! learned from what the service admits); a [`Lane`] is one region or endpoint. Calls
//! between attempts wait in the retry queue (`queue`): retries oldest first, ahead of new
//! records and behind the same pacer, so after a throttle the pool slows as a whole, with
//! no record racing the others on a private timer.
//!
//! A throttle is the pool's signal, never a record's outcome: it costs the record none of
//! its `--max-attempts`. Other failures are classified and retried by the
//! [`RetryPolicy`](retry::RetryPolicy) after a backoff. Only when nothing at all succeeds
//! for `--stall-timeout` does the pool give up, and then the records are left for the next
//! run rather than failed. Every finished call, and every call the run stopped, goes out as
//! a `CallOutcome` carrying the attempts it made, so the totals count every attempt that
//! was sent. The pool reaches the service through [`crate::engine::Service`] only.
//!
//! When the token quota holds calls back while their answers use little of the output
//! they reserve, the run says once per model which `--max-tokens` would fit
//! ([`reservations`]), and summary.json carries it.
//!
//! Here: the [`Controls`] every call shares and [`OnDemand`], the pool as an [`Engine`].

pub mod budget;
pub mod limiter;
pub mod pacer;
pub mod rate;
pub mod retry;

mod attempt;
mod call;
mod dispatcher;
mod lane;
mod queue;
mod reservations;

#[cfg(test)]
mod bucket_model;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::engine::{Engine, EngineReport, Live, Service, StopReason, Stops};
use crate::vocab::{CallOutcome, MaxTokensAdvice, Task};
use budget::Budget;
use reservations::Reservations;
use retry::RetryPolicy;

pub use dispatcher::run;
pub use lane::Lane;

/// What every call shares: the policy, the timeouts, the budget and the stop flags.
pub struct Controls {
    pub policy: RetryPolicy,
    pub timeout: Duration,
    /// Give up when nothing succeeds for this long while attempts keep being throttled.
    pub stall_timeout: Duration,
    /// The run's stop flags (Ctrl-C, a fatal error, the end of the grace period).
    pub stops: Stops,
    pub budget: Option<Budget>,
    /// Set when the budget stopped the run.
    pub over_budget: Arc<AtomicBool>,
    /// Set when the run stopped because nothing succeeded for `stall_timeout`.
    pub stalled: Arc<AtomicBool>,
    /// Attempts throttled so far, counted as they come back (the totals count a call's
    /// throttles when it ends).
    pub throttled: Arc<AtomicU64>,
    /// Whether `--max-tokens` sets what each call reserves for output (Converse calls),
    /// so the run may advise on it.
    pub max_tokens_advice: bool,
}

impl Controls {
    pub fn stopped(&self) -> bool {
        self.stops.stopped()
    }

    fn abandoned(&self) -> bool {
        self.stops.abandoned()
    }
}

/// The on-demand engine: the pool over a [`Service`] (bedrock-runtime in a real run).
pub struct OnDemand<S: Service> {
    /// One lane per region or endpoint.
    pub lanes: Arc<Vec<Lane<S>>>,
    pub controls: Arc<Controls>,
    /// Calls held at once (waiting, backing off or in flight).
    pub alive: usize,
}

impl<S: Service> Engine for OnDemand<S> {
    fn start(
        &self,
        tasks: mpsc::Receiver<Task>,
        outcomes: mpsc::Sender<CallOutcome>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(run(
            self.lanes.clone(),
            self.controls.clone(),
            self.alive,
            tasks,
            outcomes,
        ))
    }

    fn live(&self) -> Live {
        Live {
            limit: Some(
                self.lanes
                    .iter()
                    .filter(|l| l.live())
                    .map(|l| l.limiter.limit())
                    .sum(),
            ),
            in_flight: Some(self.lanes.iter().map(|l| l.limiter.in_flight()).sum()),
            throttles: self.controls.throttled.load(Ordering::Relaxed),
            answered: 0,
        }
    }

    fn report(&self) -> EngineReport {
        let several = self.lanes.len() > 1;
        let mut learned_quota = BTreeMap::new();
        for lane in self.lanes.iter() {
            for (model, quota) in lane.pacer.learned() {
                let key = if several {
                    format!("{model} @ {}", lane.name)
                } else {
                    model
                };
                learned_quota.insert(key, quota);
            }
        }
        let max_tokens_advice = if self.controls.max_tokens_advice {
            reservations_by_model(&self.lanes)
                .into_iter()
                .filter_map(|(model, seen)| Some((model, seen.advice()?)))
                .collect()
        } else {
            BTreeMap::new()
        };
        EngineReport {
            limiter: self.lanes[0].limiter.report(),
            learned_quota,
            max_tokens_advice,
            lanes: self
                .lanes
                .iter()
                .map(|l| (l.name.to_string(), l.limiter.limit(), l.live()))
                .collect(),
            batch: None,
        }
    }

    fn stop_reason(&self) -> Option<StopReason> {
        let controls = &self.controls;
        if controls.over_budget.load(Ordering::Relaxed)
            && let Some(budget) = &controls.budget
        {
            return Some(StopReason::Budget {
                limit_usd: budget.limit(),
                spent_usd: (budget.spent() * 1e6).round() / 1e6,
            });
        }
        controls
            .stalled
            .load(Ordering::Relaxed)
            .then(|| StopReason::Stalled {
                after_secs: controls.stall_timeout.as_secs_f64(),
            })
    }
}

/// What each model's calls reserved and used, over every lane: `--max-tokens` is one for
/// the run.
fn reservations_by_model<S>(lanes: &[Lane<S>]) -> BTreeMap<String, Reservations> {
    let mut all: BTreeMap<String, Reservations> = BTreeMap::new();
    for lane in lanes {
        for (model, seen) in lane.pacer.reservations() {
            all.entry(model).or_default().merge(&seen);
        }
    }
    all
}

/// The advice on `model` now, over every lane. The dispatcher asks after every answer
/// until the model is advised on, so this reads that one model, building no map.
fn max_tokens_advice<S>(lanes: &[Lane<S>], model: &str) -> Option<MaxTokensAdvice> {
    let mut all: Option<Reservations> = None;
    for seen in lanes.iter().filter_map(|l| l.pacer.reservations_of(model)) {
        all.get_or_insert_default().merge(&seen);
    }
    all?.advice()
}
