//! The limiter's logic, pure and driven by explicit instants so tests can replay time:
//! slow start (the limit doubles each round trip while it is reached without a throttle),
//! the first throttle ending slow start at what was in flight, and AIMD after it (+1 a
//! round, slower near the level of the last congestion; a cut to a fraction of the
//! attempts really in flight on each capacity signal). Bounds, history and the report
//! summary.json shows are kept here.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::vocab::LimiterReport;

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
