//! Learning a per-minute quota as a rate, from nothing but which attempts were admitted.
//!
//! Bedrock meters a quota with a bucket holding one minute of it, refilled continuously; a
//! call reserves its input plus its output ceiling and gets the unused part back when it
//! ends; a call that does not fit is turned away at once. A [`Gauge`] keeps a model of that
//! bucket on the client side: every attempt takes its reservation from the model, waits
//! when the model is short, and settles with the real usage, so that when the model's rate
//! is right, no attempt is ever turned away.
//!
//! The rate is learned from throttles, each of which says "the bucket was (nearly) empty
//! when this attempt arrived":
//! - the first one, on a run that started with a full bucket, gives the rate at once: what
//!   was consumed since the start is one minute's capacity plus the refill since then;
//! - each later one, measured against the previous one, gives the rate as what was
//!   consumed between two moments when the bucket was empty, divided by the time between;
//!   the shorter that stretch compared to one reservation, the less it is trusted.
//!
//! Between throttles the gauge paces a little under the learned rate, then probes upward:
//! slowly (a raised quota is found within minutes at the cost of about one throttle), or
//! quickly back towards the best rate it has seen when a quota that dropped may have come
//! back. [`Gauge`] is pure logic driven by explicit instants, so tests replay time.

use std::time::Duration;

use tokio::time::Instant;

/// Pace this much under the learned rate, so estimation noise does not become throttles.
const MARGIN: f64 = 0.01;
/// A bucket holds this many seconds of its rate.
const BUCKET_SECS: f64 = 60.0;
/// A throttle while pacing at the learned rate cuts it by this factor, as far as the
/// consumption since the last throttle allows.
const UNTRUSTED_CUT: f64 = 0.85;
/// After a throttle, hold the learned rate this long before probing upward...
const PROBE_HOLD: Duration = Duration::from_secs(60);
/// ...then grow the pace by this share of the rate per second.
const PROBE_SLOPE: f64 = 0.005;
/// Below this share of the best rate seen, the quota may have dropped for a while (another
/// job, a changed limit): probe back towards the best rate quickly.
const RECOVER_BELOW: f64 = 0.8;
/// Hold before a quick probe, growing with each quick probe that fails, up to the maximum:
/// a quota that comes back is found within the longest hold plus the ramp (6 s), at the
/// cost of about one throttle a probe while it stays down.
const RECOVER_HOLD: Duration = Duration::from_secs(2);
const RECOVER_HOLD_MAX: Duration = Duration::from_secs(4);
/// A quick probe ramps from the learned rate to the best rate in this time.
const RECOVER_RAMP: Duration = Duration::from_secs(2);
/// The best rate seen fades towards the current one with this half-life: slowly, since a
/// quick probe that finds the quota still down costs one throttle whatever it aims at.
const BEST_HALF_LIFE: Duration = Duration::from_secs(3600);
/// While the first throttle's estimate is only a floor (the bucket may not have been full
/// at the start), quick probes aim this many times above it, one after another, until a
/// throttle measures the rate between two empty buckets.
const SEARCH_STEP: f64 = 4.0;
/// The smallest rate learned: one unit a minute.
const MIN_RATE: f64 = 1.0 / 60.0;

/// What a gauge learned, for summary.json.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Learned {
    /// Units per minute, as a quota is written.
    pub per_minute: f64,
    /// How many times the rate was set from a throttle.
    pub updates: u64,
}

/// One quota dimension (tokens or requests) of one model, as the client models it.
#[derive(Debug, Clone)]
pub struct Gauge {
    /// The learned rate in units a second; `None` until the first throttle.
    rate: Option<f64>,
    /// The model of the bucket's level (may go below zero while reservations are in flight
    /// that the service will turn away).
    level: f64,
    updated: Instant,
    started: Instant,
    /// Net units consumed since the start: reservations taken minus units given back.
    consumed: f64,
    /// The last moment the bucket was known empty, `consumed` then, and the attempt that
    /// found it so.
    sync: Option<(Instant, f64, f64)>,
    /// While the rate is the first throttle's estimate: the seconds of quota it divided by
    /// (a minute plus the time until the throttle), so late corrections can refine it.
    discovered_over: Option<f64>,
    /// When the rate was last set (the probe clock starts there).
    since: Instant,
    /// The best rate seen, and when.
    best: (f64, Instant),
    /// Quick probes that failed in a row.
    failed_recoveries: u32,
    updates: u64,
    /// Of a known quota's first bucket, not yet given to attempts.
    held_back: f64,
    /// The bucket may have been partly spent at the start (a run resumed moments after an
    /// earlier one used the same quota): the first throttle then gives a floor, not the
    /// rate.
    maybe_spent: bool,
    /// Searching upward from such a floor until the next throttle measures the rate.
    searching: bool,
}

impl Gauge {
    /// A gauge that knows nothing: it admits everything until the first throttle.
    pub fn unknown(now: Instant) -> Gauge {
        Gauge {
            rate: None,
            level: 0.0,
            updated: now,
            started: now,
            consumed: 0.0,
            sync: None,
            discovered_over: None,
            since: now,
            best: (0.0, now),
            failed_recoveries: 0,
            updates: 0,
            held_back: 0.0,
            maybe_spent: false,
            searching: false,
        }
    }

    /// A gauge that knows nothing and cannot count on a full bucket: a quota some other run
    /// has just used (this run's earlier invocation, moments ago). Its first throttle may
    /// come at once and say only that the bucket was empty; quick probes then search upward
    /// (each [`SEARCH_STEP`] times the last) until a second throttle measures the rate.
    pub fn unknown_maybe_spent(now: Instant) -> Gauge {
        Gauge {
            maybe_spent: true,
            ..Gauge::unknown(now)
        }
    }

    /// A gauge starting from a known quota (`--tpm`, `--rpm`) and a full bucket.
    pub fn known(per_minute: u64, now: Instant) -> Gauge {
        let rate = (per_minute as f64 / 60.0).max(MIN_RATE);
        Gauge {
            rate: Some(rate),
            level: rate * BUCKET_SECS,
            best: (rate, now),
            ..Gauge::unknown(now)
        }
    }

    /// Holds `share` of the full bucket back until [`Gauge::release`]: a known token quota's
    /// first bucketful goes out before any answer has calibrated the input estimate.
    pub fn holding_back(mut self, share: f64) -> Gauge {
        self.held_back = self.level * share;
        self.level -= self.held_back;
        self
    }

    /// Gives back what was held back, less what attempts in flight are known to have
    /// reserved too little for (`short`).
    pub fn release(&mut self, short: f64, now: Instant) {
        self.refill(now);
        self.level += self.held_back - short;
        self.held_back = 0.0;
    }

    /// Units consumed so far (reservations minus refunds); an attempt remembers it.
    pub fn consumed(&self) -> f64 {
        self.consumed
    }

    pub fn learned(&self) -> Option<Learned> {
        self.rate.map(|rate| Learned {
            per_minute: (rate * 60.0).round(),
            updates: self.updates,
        })
    }

    /// The best rate seen, faded towards the current one.
    fn best(&self, rate: f64, now: Instant) -> f64 {
        let (best, at) = self.best;
        if best <= rate {
            return rate;
        }
        let age = now.saturating_duration_since(at).as_secs_f64();
        rate + (best - rate) * 0.5f64.powf(age / BEST_HALF_LIFE.as_secs_f64())
    }

    /// The pace at `now`: a little under the learned rate, then probing upward.
    pub fn pace(&self, now: Instant) -> Option<f64> {
        let rate = self.rate?;
        let start = rate * (1.0 - MARGIN);
        let mut tau = now.saturating_duration_since(self.since).as_secs_f64();
        let best = self.best(rate, now) * (1.0 - MARGIN);
        let mut from = start;
        if rate < RECOVER_BELOW * self.best(rate, now) {
            let hold = self.recover_hold().as_secs_f64();
            if tau < hold {
                return Some(start);
            }
            let ramp = (tau - hold) / RECOVER_RAMP.as_secs_f64();
            if ramp < 1.0 {
                return Some(start + (best - start) * ramp);
            }
            // Back at the best rate: from here on, probe as usual.
            tau -= hold + RECOVER_RAMP.as_secs_f64();
            from = best;
        }
        let hold = PROBE_HOLD.as_secs_f64();
        Some(if tau < hold {
            from
        } else {
            from * (1.0 + PROBE_SLOPE * (tau - hold))
        })
    }

    fn recover_hold(&self) -> Duration {
        RECOVER_HOLD
            .saturating_mul(1 << self.failed_recoveries.min(8))
            .min(RECOVER_HOLD_MAX)
    }

    /// Whether the pace at `now` is above the learned rate (a probe is under way).
    fn probing(&self, now: Instant) -> bool {
        match (self.rate, self.pace(now)) {
            (Some(rate), Some(pace)) => pace > rate * (1.0 - MARGIN) * 1.0001,
            _ => false,
        }
    }

    /// A quick probe that reached the best rate without a throttle found the quota back:
    /// from the end of its ramp the best rate is the learned one.
    fn recovered(&mut self, now: Instant) {
        let Some(rate) = self.rate else { return };
        let best = self.best(rate, now);
        let back = self.since + self.recover_hold() + RECOVER_RAMP;
        if rate < RECOVER_BELOW * best && now >= back {
            tracing::debug!(rate, best, "a quick probe found the quota back");
            self.rate = Some(best);
            self.since = back;
            self.failed_recoveries = 0;
            if self.searching {
                // Still no throttle: the quota is higher yet.
                self.best = (best * SEARCH_STEP, back);
            }
        }
    }

    fn refill(&mut self, now: Instant) {
        if now <= self.updated {
            return;
        }
        self.recovered(now);
        if let Some(pace) = self.pace(now) {
            let elapsed = (now - self.updated).as_secs_f64();
            let capacity = pace * BUCKET_SECS;
            self.level = (self.level + elapsed * pace).min(capacity.max(self.level));
        }
        self.updated = now;
    }

    /// How long until `amount` fits (zero when it does now, or while the rate is unknown).
    /// Amounts above a full bucket wait for a full bucket, never forever.
    pub fn wait_for(&mut self, amount: f64, now: Instant) -> Duration {
        self.refill(now);
        let Some(pace) = self.pace(now) else {
            return Duration::ZERO;
        };
        let amount = amount.min(pace * BUCKET_SECS);
        if self.level >= amount {
            Duration::ZERO
        } else {
            // At least a millisecond, so a caller woken a hair early does not spin.
            Duration::from_secs_f64(((amount - self.level) / pace).max(0.001))
        }
    }

    /// Takes `amount` for an attempt about to be sent.
    pub fn take(&mut self, amount: f64, now: Instant) {
        self.refill(now);
        self.level -= amount;
        self.consumed += amount;
    }

    /// Gives back `amount` taken earlier and not used (negative: used beyond it).
    pub fn refund(&mut self, amount: f64, now: Instant) {
        self.refill(now);
        self.level += amount;
        self.consumed -= amount;
    }

    /// An attempt sent at `sent` really reserved `extra` more than it took (negative: less),
    /// as its answer shows: the service's bucket was that much lower all along.
    pub fn correct(&mut self, extra: f64, sent: Instant, now: Instant) {
        self.refill(now);
        self.level -= extra;
        self.consumed += extra;
        if let Some((at, then, _)) = &mut self.sync
            && sent <= *at
        {
            // In flight at the last throttle: the consumption then was that much more.
            *then += extra;
            if let (Some(over), Some(rate)) = (self.discovered_over, &mut self.rate) {
                *rate = (*rate + extra / over).max(MIN_RATE);
            }
        }
    }

    /// An attempt that took `amount` when `consumed` stood at `consumed_before`, sent at
    /// `sent`, was throttled: the service took nothing, and its bucket was nearly empty.
    pub fn throttled(&mut self, amount: f64, sent: Instant, consumed_before: f64, now: Instant) {
        self.refund(amount, now);
        if self.sync.is_some() && sent <= self.since {
            // Sent before the last throttle was known: the same empty bucket, nothing new.
            tracing::debug!(
                amount,
                level = self.level,
                "throttle: of the wave already learned from"
            );
            return;
        }
        let elapsed = sent.saturating_duration_since(self.started).as_secs_f64();
        let probing = self.probing(sent);
        self.discovered_over = None;
        let rate = match self.rate {
            // The bucket was full at the start: what was consumed is a minute of quota plus
            // the refill since (give or take the part of a reservation left in it).
            None => {
                self.discovered_over = Some(BUCKET_SECS + elapsed);
                (consumed_before + amount / 2.0) / (BUCKET_SECS + elapsed)
            }
            Some(rate) => {
                if probing && rate < RECOVER_BELOW * self.best(rate, sent) {
                    self.failed_recoveries += 1;
                }
                // Without a probe, the learned rate itself was too high.
                let prior = if probing { rate } else { rate * UNTRUSTED_CUT };
                match self.sync {
                    // The bucket was nearly empty at both throttles (less than the attempt
                    // each time): what was consumed between them, give or take one
                    // reservation, is what refilled. Keep to the prior inside those bounds.
                    Some((at, then, then_amount)) => {
                        let between = (sent - at).as_secs_f64().max(1e-3);
                        let spent = consumed_before - then;
                        let slack = amount.max(then_amount);
                        if spent <= slack {
                            // Refunds of calls admitted before the last throttle outweigh
                            // what was sent since: the stretch says nothing of the rate.
                            prior
                        } else {
                            let lower = (spent - slack) / between;
                            let upper = (spent + slack) / between;
                            tracing::debug!(
                                rate,
                                prior,
                                lower,
                                upper,
                                spent,
                                between,
                                "throttle: the rate between two empty buckets"
                            );
                            // One throttle never takes more than half the rate away;
                            // a search's aim was a guess, not a rate, and gets no floor.
                            let floor = if self.searching { MIN_RATE } else { rate * 0.5 };
                            prior.clamp(lower, upper).max(floor)
                        }
                    }
                    // The first throttle on a rate the user gave (`--tpm`): the bucket was
                    // empty sooner than modelled (the service counts input its own way, or
                    // others share the quota); the next throttle measures the rate.
                    None if self.updates == 0 => rate,
                    None => prior,
                }
            }
        };
        let rate = rate.max(MIN_RATE);
        if !probing || rate >= RECOVER_BELOW * self.best(rate, sent) {
            self.failed_recoveries = 0;
        }
        self.rate = Some(rate);
        self.updates += 1;
        let best = self.best(rate, now);
        self.best = (best.max(rate), now);
        if self.searching {
            // The throttle that ends a search measured the rate: the aims above it were
            // guesses, not rates seen.
            self.searching = false;
            self.best = (rate, now);
            self.failed_recoveries = 0;
        } else if self.maybe_spent && self.updates == 1 {
            self.searching = true;
            self.best = (rate * SEARCH_STEP, now);
        }
        self.sync = Some((sent, consumed_before, amount));
        self.since = now;
        // The bucket was empty when the attempt arrived, which may be any time between its
        // sending and now: a loaded machine or network can hold a request for hundreds of
        // milliseconds. Counting the refill from the sending would credit tokens the service
        // never had, again at every throttle; count it from now. What was sent after the
        // attempt takes its share (and comes back if it is throttled too).
        self.level = -(self.consumed - consumed_before);
        self.updated = now;
        tracing::debug!(
            rate,
            level = self.level,
            probing,
            "throttle: the bucket was empty; pacing at the rate learned"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn admits_everything_until_the_first_throttle() {
        let t0 = Instant::now();
        let mut gauge = Gauge::unknown(t0);
        for _ in 0..1000 {
            assert_eq!(gauge.wait_for(1e9, t0), Duration::ZERO);
            gauge.take(1e9, t0);
        }
        assert!(gauge.learned().is_none());
    }

    #[test]
    fn a_bucket_spent_at_the_start_is_searched_upward_until_a_throttle_measures_it() {
        // 18,000 a minute (300/s), but the bucket is empty: an earlier run just used it.
        let t0 = Instant::now();
        let throttle = |gauge: &mut Gauge, at: Instant| {
            let before = gauge.consumed();
            gauge.take(500.0, at);
            gauge.throttled(500.0, at, before, at);
        };
        let mut plain = Gauge::unknown(t0);
        let mut spent = Gauge::unknown_maybe_spent(t0);
        for gauge in [&mut plain, &mut spent] {
            throttle(gauge, t0 + secs(0.01));
        }
        // The first throttle says only "empty": about 250 over a minute, a floor.
        let floor = spent.learned().unwrap().per_minute;
        assert!(floor < 300.0, "{floor}");
        // Without the hint the floor is the rate for the next minute.
        let later = t0 + secs(30.0);
        assert_eq!(plain.learned().unwrap().per_minute, floor);
        assert!(plain.pace(later).unwrap() < floor / 60.0 * 1.01);
        // With it, quick probes aim four times higher, again and again, while none is
        // throttled...
        let mut at = t0 + secs(0.01);
        let mut steps = 0;
        while spent.pace(at).unwrap() < 300.0 {
            at += secs(0.1);
            spent.wait_for(0.0, at);
            steps += 1;
            assert!(steps < 200, "the search stalls at {:?}", spent.learned());
        }
        // Three steps of 4 s (a 2 s hold and a 2 s ramp) from 4/s, the fourth aiming at
        // about 1,000/s.
        assert!(at < t0 + secs(16.0), "{:?}", at - t0);
        // ...until one is: what was consumed between the two empty buckets bounds the rate
        // (give or take a reservation; the rate probed last is kept within the bounds).
        let consumed = spent.consumed();
        spent.take(300.0 * (at - t0).as_secs_f64() - consumed, at);
        throttle(&mut spent, at);
        let learned = spent.learned().unwrap().per_minute;
        assert!((15_000.0..=20_000.0).contains(&learned), "{learned}");
        // The search is over: no quick probe aims at the guess it made last.
        let pace = spent.pace(at + secs(10.0)).unwrap();
        assert!(pace <= learned / 60.0, "{pace}");
    }

    #[test]
    fn the_first_throttle_gives_the_rate_of_a_bucket_that_started_full() {
        // 60,000 a minute (1,000/s); 66,000 consumed in 6 s, then a throttle.
        let t0 = Instant::now();
        let mut gauge = Gauge::unknown(t0);
        let at = t0 + secs(6.0);
        gauge.take(66_000.0, at);
        let before = gauge.consumed();
        gauge.take(500.0, at);
        gauge.throttled(500.0, at, before, at);
        let learned = gauge.learned().unwrap();
        assert!((learned.per_minute - 60_000.0).abs() < 600.0, "{learned:?}");
        // The bucket is empty: the next 500 wait for the refill at just under 1,000/s.
        let wait = gauge.wait_for(500.0, at);
        assert!(wait > secs(0.49) && wait < secs(0.52), "{wait:?}");
    }

    #[test]
    fn a_known_quota_starts_full_and_paces() {
        let t0 = Instant::now();
        let mut gauge = Gauge::known(600, t0);
        assert_eq!(gauge.wait_for(600.0, t0), Duration::ZERO);
        gauge.take(600.0, t0);
        let wait = gauge.wait_for(10.0, t0);
        assert!(wait > secs(0.99) && wait < secs(1.02), "{wait:?}");
        // A refund admits at once.
        gauge.refund(10.0, t0);
        assert_eq!(gauge.wait_for(10.0, t0), Duration::ZERO);
    }

    #[test]
    fn a_throttle_between_two_empty_moments_measures_the_rate() {
        let t0 = Instant::now();
        let mut gauge = Gauge::known(120_000, t0);
        // Empty at 10 s (a throttle), then 40,000 consumed until the next throttle at 30 s:
        // the real rate is 2,000/s... and we were pacing at 2,000/s, so the learned rate
        // stays; at 1,000/s of real refill instead, it drops to what was admitted.
        let first = t0 + secs(10.0);
        let before = gauge.consumed();
        gauge.take(500.0, first);
        gauge.throttled(500.0, first, before, first);
        let second = t0 + secs(30.0);
        gauge.take(20_000.0, second);
        let before = gauge.consumed();
        gauge.take(500.0, second);
        gauge.throttled(500.0, second, before, second);
        let learned = gauge.learned().unwrap();
        // Within one reservation over the 20 s between the throttles: 500 / 20 s a second.
        assert!(
            (learned.per_minute - 60_000.0).abs() <= 1_500.0,
            "{learned:?}"
        );
    }

    #[test]
    fn refunds_of_calls_in_flight_at_a_throttle_do_not_collapse_the_rate() {
        // A cold start: 125 calls of 480 in flight when the bucket runs dry at 3 s.
        let t0 = Instant::now();
        let mut gauge = Gauge::unknown(t0);
        let at = t0 + secs(3.0);
        gauge.take(125.0 * 480.0, at);
        let before = gauge.consumed();
        gauge.take(480.0, at);
        gauge.throttled(480.0, at, before, at);
        let learned = gauge.learned().unwrap().per_minute;
        // They end and give back 180 each; a second throttle comes before new sends
        // outweigh those refunds.
        let later = at + secs(2.0);
        gauge.refund(125.0 * 180.0, later);
        gauge.take(1_500.0, later);
        let before = gauge.consumed();
        gauge.take(480.0, later);
        gauge.throttled(480.0, later, before, later);
        let now = gauge.learned().unwrap().per_minute;
        assert!(now >= 0.5 * learned, "{now} after {learned}");
    }

    #[test]
    fn throttles_of_one_wave_count_once() {
        let t0 = Instant::now();
        let mut gauge = Gauge::known(60_000, t0);
        let at = t0 + secs(5.0);
        let mut sent = Vec::new();
        for _ in 0..5 {
            sent.push(gauge.consumed());
            gauge.take(500.0, at);
        }
        let later = at + secs(0.05);
        gauge.throttled(500.0, at, sent[0], later);
        let rate = gauge.learned().unwrap();
        for before in &sent[1..] {
            gauge.throttled(500.0, at, *before, later);
        }
        assert_eq!(gauge.learned().unwrap(), rate);
    }

    #[test]
    fn probes_slowly_near_the_best_rate_and_quickly_below_it() {
        let t0 = Instant::now();
        let mut gauge = Gauge::known(60_000, t0);
        let rate = 1000.0 * (1.0 - MARGIN);
        assert_eq!(gauge.pace(t0 + secs(30.0)), Some(rate));
        let pace = gauge.pace(t0 + secs(70.0)).unwrap();
        assert!((pace / rate - 1.05).abs() < 1e-9, "{pace}");
        // The quota drops to a third: a long stretch of throttles teaches the new rate.
        let mut now = t0 + secs(100.0);
        for _ in 0..40 {
            let before = gauge.consumed();
            gauge.take(500.0, now);
            gauge.throttled(500.0, now, before, now);
            now += secs(1.0);
            gauge.take(333.0, now);
        }
        let learned = gauge.learned().unwrap().per_minute / 60.0;
        assert!(learned < 600.0, "{learned}");
        // Below the best rate seen, the probe ramps back to it within seconds.
        let back = gauge.pace(now + RECOVER_HOLD_MAX + RECOVER_RAMP).unwrap();
        assert!(back > 0.9 * 1000.0, "{back}");
    }
}
