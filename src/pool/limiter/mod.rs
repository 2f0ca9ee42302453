//! Adaptive concurrency: how many attempts may be in flight at once, learned from the
//! answers. It starts at `--concurrency` and doubles each round trip while calls succeed and
//! the limit is actually reached (slow start, so a large quota behind a slow model is found
//! in a few round trips). The first throttle ends slow start without a cut: the limit stops
//! at what was in flight, and the pacer (which learns the quota as a rate) lets the
//! overshoot drain. Later throttles are the pacer's business alone. Capacity signals (503,
//! model not ready, model timeout, no answer in time) settle it into AIMD: +1 per round
//! trip, slower near the level where they were last seen, and a cut to a fraction of the
//! attempts really in flight on each. Every attempt takes a permit from the same limiter.
//!
//! [`LimiterCore`] (in `aimd`) is the pure logic, driven by explicit instants so tests can
//! replay time; [`Limiter`] here wraps it for async callers with permits.

mod aimd;
#[cfg(test)]
mod rounds;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::vocab::LimiterReport;

pub use aimd::{LimiterCore, Phase, Signal};

/// The async limiter shared by every attempt.
#[derive(Clone)]
pub struct Limiter {
    core: Arc<Mutex<LimiterCore>>,
}

/// A slot for one attempt; give it back with [`Permit::finish`] (dropping it counts as
/// [`Signal::Neutral`]).
pub struct Permit {
    limiter: Limiter,
    started: Instant,
    done: bool,
}

impl Limiter {
    pub fn new(initial: usize, min: usize, max: usize) -> Limiter {
        Limiter {
            core: Arc::new(Mutex::new(LimiterCore::new(
                initial,
                min,
                max,
                Instant::now(),
            ))),
        }
    }

    fn core(&self) -> std::sync::MutexGuard<'_, LimiterCore> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a free slot, if there is one.
    pub fn try_acquire(&self) -> Option<Permit> {
        let mut core = self.core();
        core.tick(Instant::now());
        core.try_start().then(|| Permit {
            limiter: self.clone(),
            started: Instant::now(),
            done: false,
        })
    }

    pub fn limit(&self) -> usize {
        self.core().limit()
    }

    /// Attempts holding a permit now.
    pub fn in_flight(&self) -> usize {
        self.core().in_flight()
    }

    pub fn report(&self) -> LimiterReport {
        self.core().report()
    }

    fn release(&self, signal: Signal, rtt: Duration) {
        self.core().finish(signal, rtt, Instant::now());
    }
}

impl Permit {
    pub fn finish(mut self, signal: Signal) {
        self.done = true;
        self.limiter.release(signal, self.started.elapsed());
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done {
            self.limiter
                .release(Signal::Neutral, self.started.elapsed());
        }
    }
}
