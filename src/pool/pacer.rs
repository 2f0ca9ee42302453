//! Pacing every attempt, first tries and retries alike, to each model's quota as the
//! service admits it. Each model has a [`Gauge`] for tokens and one for requests: an
//! attempt reserves its input tokens plus its output ceiling (as Bedrock does) and one
//! request, waits while either gauge is short, and settles with the real usage when it
//! ends. The gauges learn their rates from throttles (see [`super::rate`]); `--tpm` and
//! `--rpm` only give them a starting point. A `Retry-After` from the service pauses the
//! whole pool.
//!
//! The token estimate of a record's input is calibrated against the usage the service
//! reports, so the model of the service's bucket reserves what the service reserves.
//! What answered calls reserved and used is kept beside, for `--max-tokens` advice
//! ([`super::reservations`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::rate::Gauge;
use super::reservations::Reservations;
use crate::vocab::LearnedQuota;

/// What one attempt asks of a model's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Demand {
    /// Input tokens as estimated from the request.
    pub estimated_input: u64,
    /// The output ceiling the service reserves.
    pub output_ceiling: u64,
}

/// Which quota turned an attempt away, as the service's message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortage {
    Tokens,
    Requests,
}

impl Shortage {
    /// Bedrock says "Too many requests" or "Too many tokens"; anything else is taken for
    /// tokens, the quota most calls run into.
    pub fn from_message(message: &str) -> Shortage {
        if message.to_ascii_lowercase().contains("request") {
            Shortage::Requests
        } else {
            Shortage::Tokens
        }
    }
}

/// An attempt's share of its model's quota, to settle when it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    model: Arc<str>,
    tokens: f64,
    /// The input estimate, as estimated and as reserved (times the calibration then).
    input: (f64, f64),
    sent: Instant,
    tokens_before: f64,
    requests_before: f64,
}

/// Real input tokens per estimated one starts at 1 and follows the answers: the mean of
/// the first ones, then a moving average with this weight.
const CALIBRATION_WEIGHT: f64 = 0.1;
/// With a known token quota (`--tpm`), this share of the first bucket waits until...
const HELD_BACK: f64 = 0.15;
/// ...this many answers have calibrated the input estimate.
const CALIBRATED_AFTER: u64 = 5;
/// Until a model's first throttle, attempts start at this many a second (shared by the
/// processes that share the quota: see [`Pacer::shared_by`])...
const RAMP_START: f64 = 16.0;
/// ...and the pace doubles every this many of the fastest round trips answered so far...
const RAMP_ROUND_TRIPS: f64 = 4.0;
/// ...but at least every two seconds (also before any answer) and at most every 10 ms.
/// The attempts a throttle meets when it comes back are the pace times the time it took:
/// on an endpoint that answers in seconds the pace grows gently, since what matters for the
/// quota is only that it passes the quota's refill, which it does long before the bucket
/// is empty.
const RAMP_DOUBLING_MAX: Duration = Duration::from_secs(2);
const RAMP_DOUBLING_MIN: Duration = Duration::from_millis(10);
/// Attempts the ramp lets go at once: what its pace allows in this long (at least one).
const RAMP_BURST: Duration = Duration::from_millis(10);

/// Discovery: until the first throttle nothing is known of the quota, so the pace of new
/// attempts grows exponentially from [`RAMP_START`] a second. The full bucket of a large
/// quota is reached in seconds, while the attempts that meet a bucket just gone empty, sent
/// in the time a throttle takes to come back, stay few. The pace grows only while it is
/// what holds attempts back (not while the concurrency limit or a lack of records does, so
/// it never runs ahead of what was really sent), and it grows faster where the answers say
/// the endpoint is fast: a throttle comes back no slower than an answer.
#[derive(Debug, Clone, Copy)]
struct Ramp {
    /// Attempts a second.
    pace: f64,
    /// Attempts that may go now: accrued at the pace, at most a short burst.
    credit: f64,
    updated: Instant,
    /// The fastest answer so far.
    fastest: Option<Duration>,
}

impl Ramp {
    fn new(start: f64, now: Instant) -> Ramp {
        Ramp {
            pace: start,
            credit: 1.0,
            updated: now,
            fastest: None,
        }
    }

    fn doubling(&self) -> f64 {
        self.fastest
            .map_or(RAMP_DOUBLING_MAX, |rtt| {
                rtt.mul_f64(RAMP_ROUND_TRIPS)
                    .clamp(RAMP_DOUBLING_MIN, RAMP_DOUBLING_MAX)
            })
            .as_secs_f64()
    }

    fn burst(pace: f64) -> f64 {
        (pace * RAMP_BURST.as_secs_f64()).max(1.0)
    }

    /// Brings pace and credit up to `now`: while the credit is short of a full burst the
    /// ramp is what holds attempts back, so the pace grows; a full credit stops growing.
    fn advance(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.updated = now.max(self.updated);
        if elapsed <= 0.0 || self.credit >= Ramp::burst(self.pace) {
            return;
        }
        let t = self.doubling();
        // The time until the credit is full again, the pace growing all along.
        let short = Ramp::burst(self.pace) - self.credit;
        let until_full = (short * std::f64::consts::LN_2 / (self.pace * t) + 1.0).log2() * t;
        if until_full <= elapsed {
            self.pace *= (until_full / t).exp2();
            self.credit = Ramp::burst(self.pace);
        } else {
            let accrued = self.pace * t / std::f64::consts::LN_2 * ((elapsed / t).exp2() - 1.0);
            self.pace *= (elapsed / t).exp2();
            self.credit += accrued;
        }
    }

    fn wait(&mut self, now: Instant) -> Duration {
        self.advance(now);
        // A hair under one counts as one: the credit is summed in floating point.
        if self.credit >= 1.0 - 1e-9 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(((1.0 - self.credit) / self.pace).max(0.001))
    }

    fn take(&mut self, now: Instant) {
        self.advance(now);
        self.credit -= 1.0;
    }

    fn answered(&mut self, rtt: Duration) {
        self.fastest = Some(self.fastest.map_or(rtt, |f| f.min(rtt)));
    }
}

struct ModelPace {
    tokens: Gauge,
    requests: Gauge,
    /// Until the first throttle.
    ramp: Option<Ramp>,
    /// Real input tokens per estimated input token.
    input_ratio: f64,
    /// Answers that calibrated it.
    calibrations: u64,
    /// Of the attempts in flight: input estimated, and reserved for it.
    in_flight_input: (f64, f64),
    /// What answered calls reserved and used, for `--max-tokens` advice.
    reservations: Reservations,
}

impl ModelPace {
    /// An attempt ended (answered, throttled or failed): its input is no longer in flight.
    fn landed(&mut self, reservation: &Reservation) {
        self.in_flight_input.0 -= reservation.input.0;
        self.in_flight_input.1 -= reservation.input.1;
    }

    /// What the attempts in flight reserved too little for their input, by the calibration
    /// now: the service's bucket is that much lower than modelled until they settle.
    fn undercounted_in_flight(&self) -> f64 {
        (self.in_flight_input.0 * self.input_ratio - self.in_flight_input.1).max(0.0)
    }
}

struct State {
    models: HashMap<Arc<str>, ModelPace>,
    paused_until: Option<Instant>,
}

#[derive(Clone)]
pub struct Pacer {
    state: Arc<Mutex<State>>,
    tpm: Option<u64>,
    rpm: Option<u64>,
    /// How many processes share the quota.
    sharers: u32,
    /// The quota was used moments before this run started (see [`Pacer::after_recent_use`]).
    recently_used: bool,
}

impl Pacer {
    /// A pacer starting from `tpm` / `rpm` when given, from nothing otherwise.
    pub fn new(tpm: Option<u64>, rpm: Option<u64>) -> Pacer {
        Pacer {
            state: Arc::new(Mutex::new(State {
                models: HashMap::new(),
                paused_until: None,
            })),
            tpm,
            rpm,
            sharers: 1,
            recently_used: false,
        }
    }

    /// The quota was in use until moments ago (this run's earlier invocation, stopped less
    /// than a bucket's minute ago): the buckets may be partly spent, so a quota learned from
    /// the first throttle is a floor to search upward from, not the rate
    /// (`Gauge::unknown_maybe_spent`). Without it a resume learned a tenth of its quota from
    /// a throttle at once, and kept to it.
    pub fn after_recent_use(mut self, recently_used: bool) -> Pacer {
        self.recently_used = recently_used;
        self
    }

    /// The quota is shared by `processes` started together (the shards of one job on one
    /// account and region), none of which sees the others: each starts from its share of
    /// `--tpm` / `--rpm` (each taking the whole would model `processes` full buckets where
    /// there is one), and without them each discovery ramp starts at its share of the pace,
    /// so that together they ramp as one process would from the first second. (The pace at
    /// the empty bucket, and so the attempts that meet it, depends on what was sent by then,
    /// not on where the ramp started: sharing the start does not shrink that first wave.)
    /// Each then learns its own rate from its own throttles, as usual.
    pub fn shared_by(mut self, processes: u32) -> Pacer {
        let processes = processes.max(1);
        self.sharers = processes;
        self.tpm = self.tpm.map(|n| (n / processes as u64).max(1));
        self.rpm = self.rpm.map(|n| (n / processes as u64).max(1));
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn model<'a>(&self, state: &'a mut State, model: &str, now: Instant) -> &'a mut ModelPace {
        if !state.models.contains_key(model) {
            let gauge = |quota: Option<u64>| match quota {
                Some(n) => Gauge::known(n, now),
                None if self.recently_used => Gauge::unknown_maybe_spent(now),
                None => Gauge::unknown(now),
            };
            state.models.insert(
                Arc::from(model),
                ModelPace {
                    tokens: gauge(self.tpm).holding_back(HELD_BACK),
                    requests: gauge(self.rpm),
                    ramp: (self.tpm.is_none() && self.rpm.is_none())
                        .then(|| Ramp::new(RAMP_START / self.sharers as f64, now)),
                    input_ratio: 1.0,
                    calibrations: 0,
                    in_flight_input: (0.0, 0.0),
                    reservations: Reservations::default(),
                },
            );
        }
        state.models.get_mut(model).expect("inserted above")
    }

    fn input(pace: &ModelPace, demand: Demand) -> f64 {
        (demand.estimated_input as f64 * pace.input_ratio).ceil()
    }

    fn tokens(pace: &ModelPace, demand: Demand) -> f64 {
        Pacer::input(pace, demand) + demand.output_ceiling as f64
    }

    /// How long until an attempt on `model` asking `demand` may be sent (zero: now).
    pub fn wait(&self, model: &str, demand: Demand, now: Instant) -> Duration {
        let mut state = self.lock();
        let paused = state
            .paused_until
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now));
        let pace = self.model(&mut state, model, now);
        let tokens = Pacer::tokens(pace, demand);
        let ramp = pace
            .ramp
            .as_mut()
            .map_or(Duration::ZERO, |ramp| ramp.wait(now));
        let tokens_wait = pace.tokens.wait_for(tokens, now);
        if !tokens_wait.is_zero() {
            pace.reservations.held_back();
        }
        let wait = tokens_wait.max(pace.requests.wait_for(1.0, now));
        wait.max(paused).max(ramp)
    }

    /// Takes the quota of an attempt about to be sent.
    pub fn take(&self, model: &str, demand: Demand, now: Instant) -> Reservation {
        let mut state = self.lock();
        let pace = self.model(&mut state, model, now);
        let (tokens_before, requests_before) = (pace.tokens.consumed(), pace.requests.consumed());
        let tokens = Pacer::tokens(pace, demand);
        let input = (demand.estimated_input as f64, Pacer::input(pace, demand));
        pace.in_flight_input.0 += input.0;
        pace.in_flight_input.1 += input.1;
        pace.tokens.take(tokens, now);
        pace.requests.take(1.0, now);
        if let Some(ramp) = &mut pace.ramp {
            ramp.take(now);
        }
        let key = state
            .models
            .get_key_value(model)
            .map_or_else(|| Arc::from(model), |(key, _)| key.clone());
        Reservation {
            model: key,
            tokens,
            input,
            sent: now,
            tokens_before,
            requests_before,
        }
    }

    /// Settles an attempt the service admitted and answered: `input` real input tokens
    /// (cache reads and writes included) and `total` tokens used in all. Calibrates the
    /// input estimate when the attempt had one.
    pub fn settle(
        &self,
        reservation: Reservation,
        demand: Demand,
        used: Option<(u64, u64)>,
        now: Instant,
    ) {
        let mut state = self.lock();
        let pace = self.model(&mut state, &reservation.model, now);
        pace.landed(&reservation);
        match used {
            Some((input, total)) => {
                if let Some(ramp) = &mut pace.ramp {
                    ramp.answered(now.saturating_duration_since(reservation.sent));
                }
                // The service reserved the real input plus the ceiling, not our estimate.
                let reserved = input as f64 + demand.output_ceiling as f64;
                pace.tokens
                    .correct(reserved - reservation.tokens, reservation.sent, now);
                pace.tokens.refund(reserved - total as f64, now);
                pace.reservations.answered(
                    input,
                    total.saturating_sub(input),
                    demand.output_ceiling,
                );
                if demand.estimated_input > 0 && input > 0 {
                    let ratio = (input as f64 / demand.estimated_input as f64).clamp(0.25, 4.0);
                    pace.calibrations += 1;
                    let weight = CALIBRATION_WEIGHT.max(1.0 / pace.calibrations as f64);
                    pace.input_ratio += weight * (ratio - pace.input_ratio);
                    if pace.calibrations == CALIBRATED_AFTER {
                        let short = pace.undercounted_in_flight();
                        pace.tokens.release(short, now);
                    }
                }
            }
            // Not answered: the service took nothing.
            None => pace.tokens.refund(reservation.tokens, now),
        }
    }

    /// An attempt was throttled: the service took nothing, and `shortage` taught a rate.
    pub fn throttled(&self, reservation: Reservation, shortage: Shortage, now: Instant) {
        let mut state = self.lock();
        let pace = self.model(&mut state, &reservation.model, now);
        pace.landed(&reservation);
        pace.ramp = None;
        match shortage {
            Shortage::Tokens => {
                pace.reservations.held_back();
                pace.tokens.throttled(
                    reservation.tokens,
                    reservation.sent,
                    reservation.tokens_before,
                    now,
                );
                pace.requests.refund(1.0, now);
            }
            Shortage::Requests => {
                pace.requests
                    .throttled(1.0, reservation.sent, reservation.requests_before, now);
                pace.tokens.refund(reservation.tokens, now);
            }
        }
    }

    /// Holds every attempt until `until` (the service asked for it with `Retry-After`).
    pub fn pause_until(&self, until: Instant) {
        let mut state = self.lock();
        state.paused_until = Some(state.paused_until.map_or(until, |p| p.max(until)));
    }

    /// What `model`'s answered calls reserved and used, if it was called here.
    pub fn reservations_of(&self, model: &str) -> Option<Reservations> {
        self.lock().models.get(model).map(|pace| pace.reservations)
    }

    /// What each model's answered calls reserved and used.
    pub fn reservations(&self) -> BTreeMap<String, Reservations> {
        let state = self.lock();
        state
            .models
            .iter()
            .map(|(model, pace)| (model.to_string(), pace.reservations))
            .collect()
    }

    /// What was learned of each model's quota.
    pub fn learned(&self) -> BTreeMap<String, LearnedQuota> {
        let state = self.lock();
        state
            .models
            .iter()
            .filter_map(|(model, pace)| {
                let tokens = pace.tokens.learned();
                let requests = pace.requests.learned();
                if tokens.is_none() && requests.is_none() {
                    return None;
                }
                Some((
                    model.to_string(),
                    LearnedQuota {
                        tokens_per_minute: tokens.map(|l| l.per_minute),
                        requests_per_minute: requests.map(|l| l.per_minute),
                        updates: tokens.map_or(0, |l| l.updates)
                            + requests.map_or(0, |l| l.updates),
                    },
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

    fn demand(input: u64, output: u64) -> Demand {
        Demand {
            estimated_input: input,
            output_ceiling: output,
        }
    }

    #[test]
    fn a_known_quota_paces_and_refunds() {
        // 600 tokens a minute: 10 a second; 15% of the first bucket (90) waits for answers.
        let pacer = Pacer::new(Some(600), None);
        let t0 = Instant::now();
        assert_eq!(pacer.wait(MODEL, demand(100, 400), t0), Duration::ZERO);
        let first = pacer.take(MODEL, demand(100, 400), t0);
        // 10 left: 400 more take 39 s of refill (at just under 10 a second)...
        let wait = pacer.wait(MODEL, demand(100, 300), t0);
        assert!(wait >= Duration::from_secs(30), "{wait:?}");
        // ...unless the call gives back what it did not use (350: 360 are there).
        pacer.settle(first, demand(100, 400), Some((100, 150)), t0);
        assert_eq!(pacer.wait(MODEL, demand(100, 250), t0), Duration::ZERO);
    }

    #[test]
    fn a_known_token_quota_holds_part_of_the_first_bucket_until_the_estimate_is_calibrated() {
        // 60,000 a minute; the service counts 1.2 input tokens per estimated one.
        let pacer = Pacer::new(Some(60_000), None);
        let t0 = Instant::now();
        let mut sent = Vec::new();
        while pacer.wait(MODEL, demand(500, 500), t0).is_zero() {
            sent.push(pacer.take(MODEL, demand(500, 500), t0));
        }
        // 85% of the bucket went out before any answer: 51 attempts of 1,000.
        assert_eq!(sent.len(), 51);
        // Five answers calibrate the estimate; the held-back 9,000 come back, less what
        // the 46 attempts still in flight reserved too little (100 each).
        for reservation in sent.drain(..5) {
            pacer.settle(reservation, demand(500, 500), Some((600, 700)), t0);
        }
        // 51,000 - 51,000 taken, 5 x 300 given back by the answers, 9,000 - 4,600 released.
        assert!(pacer.wait(MODEL, demand(0, 5_800), t0).is_zero());
        assert!(!pacer.wait(MODEL, demand(0, 6_000), t0).is_zero());
    }

    #[test]
    fn an_unknown_quota_admits_until_a_throttle_then_paces() {
        let pacer = Pacer::new(None, None);
        let t0 = Instant::now();
        let mut now = t0;
        // Only the discovery ramp holds attempts back: 16 a second, doubling each second.
        for _ in 0..100 {
            now += pacer.wait(MODEL, demand(100, 500), now);
            pacer.take(MODEL, demand(100, 500), now);
        }
        let ramped = (now - t0).as_secs_f64();
        assert!((2.0..3.5).contains(&ramped), "{ramped}");
        let at = t0 + Duration::from_secs(1);
        let last = pacer.take(MODEL, demand(100, 500), at);
        pacer.throttled(last, Shortage::Tokens, at);
        let learned = &pacer.learned()[MODEL];
        // 60,000 consumed by the first second: about 59,000 a minute.
        let tpm = learned.tokens_per_minute.unwrap();
        assert!((58_000.0..61_000.0).contains(&tpm), "{learned:?}");
        assert!(pacer.wait(MODEL, demand(100, 500), at) > Duration::ZERO);
        assert_eq!(learned.requests_per_minute, None);
    }

    #[test]
    fn the_input_estimate_is_calibrated_by_the_answers() {
        let pacer = Pacer::new(Some(60_000), None);
        let t0 = Instant::now();
        for _ in 0..50 {
            let r = pacer.take(MODEL, demand(100, 0), t0);
            // The service counts twice what was estimated.
            pacer.settle(r, demand(100, 0), Some((200, 200)), t0);
        }
        let r = pacer.take(MODEL, demand(100, 0), t0);
        assert!(r.tokens > 190.0 && r.tokens <= 201.0, "{}", r.tokens);
    }

    #[test]
    fn a_known_request_quota_paces_by_requests_alone() {
        // 60 requests a minute, tokens unlimited: a full bucket of 60, then one a second.
        let pacer = Pacer::new(None, Some(60));
        let t0 = Instant::now();
        for _ in 0..60 {
            assert_eq!(
                pacer.wait(MODEL, demand(100_000, 4_000), t0),
                Duration::ZERO
            );
            pacer.take(MODEL, demand(100_000, 4_000), t0);
        }
        let wait = pacer.wait(MODEL, demand(1, 1), t0);
        assert!(
            (Duration::from_millis(900)..Duration::from_millis(1100)).contains(&wait),
            "{wait:?}"
        );
        // No discovery ramp: with a quota given, the first second is not held back.
        let fresh = Pacer::new(None, Some(6_000));
        for _ in 0..100 {
            assert_eq!(fresh.wait(MODEL, demand(1, 1), t0), Duration::ZERO);
            fresh.take(MODEL, demand(1, 1), t0);
        }
    }

    #[test]
    fn a_request_throttle_teaches_the_request_rate_and_gives_the_tokens_back() {
        let pacer = Pacer::new(None, None);
        let t0 = Instant::now();
        let mut now = t0;
        for _ in 0..30 {
            now += pacer.wait(MODEL, demand(100, 500), now);
            pacer.take(MODEL, demand(100, 500), now);
        }
        let last = pacer.take(MODEL, demand(100, 500), now);
        let tokens_before = pacer.lock().models[MODEL].tokens.consumed();
        pacer.throttled(last, Shortage::Requests, now);
        let learned = &pacer.learned()[MODEL];
        assert!(learned.requests_per_minute.is_some(), "{learned:?}");
        assert_eq!(learned.tokens_per_minute, None, "{learned:?}");
        // The refused attempt's tokens went back; its request stays counted.
        let tokens_after = pacer.lock().models[MODEL].tokens.consumed();
        assert_eq!(tokens_before - tokens_after, 600.0);
        // The ramp is over and the learned request rate now holds the next attempt.
        assert!(pacer.lock().models[MODEL].ramp.is_none());
        assert!(pacer.wait(MODEL, demand(1, 1), now) > Duration::ZERO);
    }

    #[test]
    fn the_input_calibration_is_clamped_to_a_factor_of_four() {
        let t0 = Instant::now();
        // The service reports 100 times the estimate: the ratio stops at 4.
        let pacer = Pacer::new(Some(60_000_000), None);
        for _ in 0..200 {
            let r = pacer.take(MODEL, demand(100, 0), t0);
            pacer.settle(r, demand(100, 0), Some((10_000, 10_000)), t0);
        }
        let r = pacer.take(MODEL, demand(100, 0), t0);
        assert!(r.tokens > 395.0 && r.tokens <= 400.0, "{}", r.tokens);
        // And a hundredth of it: the ratio stops at a quarter.
        let pacer = Pacer::new(Some(60_000_000), None);
        for _ in 0..200 {
            let r = pacer.take(MODEL, demand(100, 0), t0);
            pacer.settle(r, demand(100, 0), Some((1, 1)), t0);
        }
        let r = pacer.take(MODEL, demand(100, 0), t0);
        assert!(r.tokens >= 25.0 && r.tokens < 27.0, "{}", r.tokens);
    }

    #[test]
    fn retry_after_pauses_every_model() {
        let pacer = Pacer::new(None, None);
        let t0 = Instant::now();
        pacer.pause_until(t0 + Duration::from_secs(2));
        assert_eq!(
            pacer.wait("amazon.nova-lite-v1:0", demand(1, 1), t0),
            Duration::from_secs(2)
        );
        assert_eq!(
            pacer.wait(MODEL, demand(1, 1), t0 + Duration::from_secs(3)),
            Duration::ZERO
        );
    }

    #[test]
    fn shortage_from_the_message() {
        assert_eq!(
            Shortage::from_message("Too many requests, please wait before trying again."),
            Shortage::Requests
        );
        assert_eq!(
            Shortage::from_message("Too many tokens, please wait before trying again."),
            Shortage::Tokens
        );
        assert_eq!(Shortage::from_message("Rate exceeded"), Shortage::Tokens);
    }
}
