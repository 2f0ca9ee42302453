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
//! [`LimiterCore`] is the pure logic, driven by explicit instants so tests can replay time;
//! [`Limiter`] wraps it for async callers with permits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::vocab::LimiterReport;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Cut on congestion during slow start, which may have overshot by up to 2x.
const SLOW_START_CUT: f64 = 0.5;
/// Cut on congestion afterwards.
const AVOIDANCE_CUT: f64 = 0.8;
/// Near the level of the last congestion, the limit grows by 1 only every this many rounds.
const CAUTIOUS_ROUNDS: u32 = 8;
/// Round trips shorter than this count as this long (a zero-latency server would otherwise
/// make rounds of microseconds).
const MIN_ROUND: Duration = Duration::from_millis(20);
/// Slow start doubles at least this often while the limit is reached without a throttle.
const SLOW_START_ROUND: Duration = Duration::from_millis(250);
/// At most this many points of history are kept (older ones are thinned).
const HISTORY_POINTS: usize = 240;

/// How an attempt ended, as far as the limiter cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// An answer: the service keeps up.
    Success,
    /// The service is short of capacity: unavailable, not ready, timed out.
    Congestion,
    /// The quota is spent: the pacer slows down; slow start ends here.
    Throttle,
    /// Says nothing about load (a bad record, a random 500, a reset).
    Neutral,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    SlowStart,
    Avoidance,
}

#[derive(Debug, Clone)]
pub struct LimiterCore {
    limit: f64,
    min: f64,
    max: f64,
    in_flight: usize,
    phase: Phase,
    started: Instant,
    round_started: Instant,
    /// Smoothed round-trip time of successful attempts.
    rtt: Option<Duration>,
    reached: bool,
    succeeded: bool,
    /// An attempt ended this round with an error that says nothing about load.
    neutral: bool,
    congested: bool,
    /// The limit when congestion was last seen.
    last_congestion: Option<f64>,
    cautious_rounds: u32,
    report: LimiterReport,
}

impl LimiterCore {
    pub fn new(initial: usize, min: usize, max: usize, now: Instant) -> LimiterCore {
        let min = min.max(1);
        let max = max.max(min);
        let initial = initial.clamp(min, max);
        LimiterCore {
            limit: initial as f64,
            min: min as f64,
            max: max as f64,
            in_flight: 0,
            phase: Phase::SlowStart,
            started: now,
            round_started: now,
            rtt: None,
            reached: false,
            succeeded: false,
            neutral: false,
            congested: false,
            last_congestion: None,
            cautious_rounds: 0,
            report: LimiterReport {
                initial,
                min,
                max,
                final_limit: initial,
                peak: initial,
                decreases: 0,
                history: vec![(0.0, initial)],
            },
        }
    }

    /// The whole number of attempts allowed in flight.
    pub fn limit(&self) -> usize {
        self.limit.floor() as usize
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Lets time pass: slow start may grow without waiting for an attempt to end.
    pub fn tick(&mut self, now: Instant) {
        if self.phase == Phase::SlowStart {
            self.maybe_grow(now);
        }
    }

    /// Takes a slot if one is free.
    pub fn try_start(&mut self) -> bool {
        if self.in_flight >= self.limit() {
            return false;
        }
        self.in_flight += 1;
        if self.in_flight >= self.limit() {
            self.reached = true;
        }
        true
    }

    fn round(&self) -> Duration {
        self.rtt.unwrap_or(MIN_ROUND).max(MIN_ROUND)
    }

    fn set_limit(&mut self, limit: f64, now: Instant) {
        let limit = limit.clamp(self.min, self.max);
        let before = self.limit();
        self.limit = limit;
        let after = self.limit();
        if after != before {
            let seconds = (now - self.started).as_secs_f64();
            let seconds = (seconds * 10.0).round() / 10.0;
            let history = &mut self.report.history;
            match history.last_mut() {
                Some(last) if last.0 == seconds => last.1 = after,
                _ => history.push((seconds, after)),
            }
            if history.len() > HISTORY_POINTS {
                // Keep the first point and every other one after it.
                let thinned: Vec<(f64, usize)> = history
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % 2 == 0 || *i == history.len() - 1)
                    .map(|(_, p)| *p)
                    .collect();
                *history = thinned;
            }
            self.report.peak = self.report.peak.max(after);
            self.report.final_limit = after;
        }
    }

    /// Releases a slot with what the attempt said and how long it took.
    pub fn finish(&mut self, signal: Signal, rtt: Duration, now: Instant) {
        // Attempts in flight when the signal arrived, this one included.
        let flight = self.in_flight;
        self.in_flight = self.in_flight.saturating_sub(1);
        match signal {
            Signal::Success => {
                self.succeeded = true;
                self.rtt = Some(match self.rtt {
                    None => rtt,
                    Some(old) => old.mul_f64(0.8) + rtt.mul_f64(0.2),
                });
            }
            Signal::Congestion if !self.congested => {
                // Cut relative to what was really in flight: when fast throttles free their
                // permits at once, the nominal limit says little about what the service
                // carries. Once a round: the rest of the wave was sent before the cut.
                let cut = match self.phase {
                    Phase::SlowStart => SLOW_START_CUT,
                    Phase::Avoidance => AVOIDANCE_CUT,
                };
                let target = (flight as f64 * cut).max(self.min);
                if target < self.limit {
                    self.last_congestion = Some(self.limit.min(flight as f64).max(target));
                    self.report.decreases += 1;
                    self.set_limit(target, now);
                }
                self.phase = Phase::Avoidance;
                self.congested = true;
                self.cautious_rounds = 0;
                self.round_started = now;
                self.reached = false;
                self.succeeded = false;
            }
            Signal::Throttle if self.phase == Phase::SlowStart => {
                // Stop growing at what was in flight; the pacer drains the overshoot at the
                // rate the quota allows, so there is nothing to cut.
                let target = (flight as f64).max(self.min);
                if target < self.limit {
                    self.last_congestion = Some(target);
                    self.report.decreases += 1;
                    self.set_limit(target, now);
                }
                self.phase = Phase::Avoidance;
                self.congested = true;
                self.round_started = now;
                self.reached = false;
                self.succeeded = false;
            }
            Signal::Throttle => self.congested = true,
            Signal::Congestion => {}
            Signal::Neutral => self.neutral = true,
        }
        self.maybe_grow(now);
    }

    /// At the end of each round trip without congestion in which the limit was reached,
    /// grows the limit.
    fn maybe_grow(&mut self, now: Instant) {
        // Slow start does not wait for answers: a quota is spent at admission, and a throttle
        // comes back in milliseconds, so calls still out after a slow-start round were
        // admitted. A large quota behind a slow model is found in a second, not in minutes.
        let (round, evidence) = match self.phase {
            Phase::SlowStart => (
                self.round().min(SLOW_START_ROUND),
                self.succeeded || !self.neutral,
            ),
            Phase::Avoidance => (self.round(), self.succeeded),
        };
        if now - self.round_started < round {
            return;
        }
        if self.reached && evidence && !self.congested {
            match self.phase {
                Phase::SlowStart => self.set_limit(self.limit * 2.0, now),
                Phase::Avoidance => {
                    let near_last = self
                        .last_congestion
                        .is_some_and(|last| self.limit >= 0.9 * last && self.limit <= 1.1 * last);
                    if near_last {
                        self.cautious_rounds += 1;
                        if self.cautious_rounds >= CAUTIOUS_ROUNDS {
                            self.cautious_rounds = 0;
                            self.set_limit(self.limit + 1.0, now);
                        }
                    } else {
                        self.set_limit(self.limit + 1.0, now);
                    }
                }
            }
        }
        self.round_started = now;
        self.reached = self.in_flight >= self.limit();
        self.succeeded = false;
        self.neutral = false;
        self.congested = false;
    }

    pub fn report(&self) -> LimiterReport {
        let mut report = self.report.clone();
        report.final_limit = self.limit();
        report
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `rounds` round trips of `rtt`, each filling every slot and ending them all with
    /// `signal(limit)`.
    fn run_rounds(
        core: &mut LimiterCore,
        now: &mut Instant,
        rounds: usize,
        rtt: Duration,
        signal: impl Fn(usize) -> Signal,
    ) -> Vec<usize> {
        let mut limits = Vec::new();
        for _ in 0..rounds {
            let mut started = 0;
            while core.try_start() {
                started += 1;
            }
            *now += rtt;
            let s = signal(started);
            for _ in 0..started {
                core.finish(s, rtt, *now);
            }
            limits.push(core.limit());
        }
        limits
    }

    #[test]
    fn slow_start_doubles_each_round_until_the_max() {
        let mut now = Instant::now();
        let mut core = LimiterCore::new(4, 1, 300, now);
        let limits = run_rounds(&mut core, &mut now, 8, Duration::from_millis(500), |_| {
            Signal::Success
        });
        assert_eq!(&limits[..6], &[8, 16, 32, 64, 128, 256]);
        assert_eq!(limits[7], 300);
        assert_eq!(core.phase(), Phase::SlowStart);
        assert_eq!(core.report().peak, 300);
    }

    #[test]
    fn does_not_grow_when_the_limit_is_not_reached() {
        let mut now = Instant::now();
        let mut core = LimiterCore::new(8, 1, 100, now);
        for _ in 0..20 {
            // Only two attempts at a time: the source is the bottleneck.
            assert!(core.try_start());
            assert!(core.try_start());
            now += Duration::from_millis(100);
            core.finish(Signal::Success, Duration::from_millis(100), now);
            core.finish(Signal::Success, Duration::from_millis(100), now);
        }
        assert_eq!(core.limit(), 8);
    }

    #[test]
    fn congestion_cuts_relative_to_what_is_in_flight() {
        let mut now = Instant::now();
        let mut core = LimiterCore::new(100, 1, 1000, now);
        // Only 10 in flight when the throttle comes back.
        for _ in 0..10 {
            assert!(core.try_start());
        }
        now += Duration::from_millis(5);
        core.finish(Signal::Congestion, Duration::from_millis(5), now);
        assert_eq!(
            core.limit(),
            5,
            "slow start exits at half of what was in flight"
        );
        assert_eq!(core.phase(), Phase::Avoidance);
        // A second throttle from the same wave does not cut below what is in flight x 0.8.
        core.finish(Signal::Congestion, Duration::from_millis(5), now);
        assert_eq!(core.limit(), 5);
        assert_eq!(core.report().decreases, 1);
    }

    #[test]
    fn avoidance_grows_by_one_a_round_then_cautiously_near_the_last_congestion() {
        let mut now = Instant::now();
        let mut core = LimiterCore::new(20, 1, 100, now);
        let rtt = Duration::from_millis(200);
        // Congestion with 20 in flight in slow start: 10.
        run_rounds(&mut core, &mut now, 1, rtt, |_| Signal::Congestion);
        assert_eq!(core.limit(), 10);
        // The round of the cut does not grow; then +1 a round up to 0.9 x 20 = 18.
        let limits = run_rounds(&mut core, &mut now, 9, rtt, |_| Signal::Success);
        assert_eq!(limits, vec![10, 11, 12, 13, 14, 15, 16, 17, 18]);
        // Then +1 every 8 rounds.
        let limits = run_rounds(&mut core, &mut now, 16, rtt, |_| Signal::Success);
        assert_eq!(limits[6], 18);
        assert_eq!(limits[7], 19);
        assert_eq!(limits[15], 20);
    }

    #[test]
    fn neutral_errors_change_nothing_and_bounds_hold() {
        let mut now = Instant::now();
        let mut core = LimiterCore::new(4, 2, 6, now);
        run_rounds(&mut core, &mut now, 3, Duration::from_millis(50), |_| {
            Signal::Neutral
        });
        assert_eq!(core.limit(), 4);
        run_rounds(&mut core, &mut now, 5, Duration::from_millis(50), |_| {
            Signal::Success
        });
        assert_eq!(core.limit(), 6, "capped by the max");
        for _ in 0..10 {
            run_rounds(&mut core, &mut now, 1, Duration::from_millis(50), |_| {
                Signal::Congestion
            });
        }
        assert_eq!(core.limit(), 2, "floored by the min");
    }

    /// A model of Bedrock's token bucket: does the limiter use the quota without drowning?
    #[test]
    fn converges_on_a_token_quota() {
        // 1,000 tokens/s, 60,000 capacity; calls reserve 250 tokens, use 80, last 675 ms.
        let mut now = Instant::now();
        let mut core = LimiterCore::new(32, 1, 1024, now);
        let (rate, capacity, reserve, used) = (1000.0, 60_000.0, 250.0, 80.0);
        let rtt = Duration::from_millis(675);
        let tick = Duration::from_millis(5);
        let mut level = capacity;
        let mut calls: Vec<Instant> = Vec::new();
        let (mut ok, mut throttled, mut consumed) = (0u64, 0u64, 0.0);
        let end = now + Duration::from_secs(600);
        let measure_from = now + Duration::from_secs(120);
        let mut window_tokens = 0.0;
        while now < end {
            now += tick;
            level = (level + rate * tick.as_secs_f64()).min(capacity);
            // Calls ending now refund their unused reservation.
            let (done, running): (Vec<Instant>, Vec<Instant>) =
                calls.into_iter().partition(|t| *t <= now);
            calls = running;
            for _ in done {
                level = (level + reserve - used).min(capacity);
                consumed += used;
                if now >= measure_from {
                    window_tokens += used;
                }
                ok += 1;
                core.finish(Signal::Success, rtt, now);
            }
            while core.try_start() {
                if level >= reserve {
                    level -= reserve;
                    calls.push(now + rtt);
                } else {
                    throttled += 1;
                    core.finish(Signal::Congestion, Duration::from_millis(1), now);
                }
            }
        }
        let window = (end - measure_from).as_secs_f64();
        let goodput = window_tokens / (rate * window);
        let throttle_share = throttled as f64 / (ok + throttled) as f64;
        eprintln!(
            "simulated: goodput {goodput:.3}, throttled {throttle_share:.4}, limit {}",
            core.limit()
        );
        assert!(
            goodput >= 0.95,
            "goodput {goodput:.3} (consumed {consumed})"
        );
        assert!(
            throttle_share <= 0.03,
            "throttled {throttle_share:.3} ({throttled} of {})",
            ok + throttled
        );
    }
}
