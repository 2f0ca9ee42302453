//! A token bucket holding up to one minute's allowance, refilled continuously: the way
//! Bedrock meters tokens and requests per minute. The local server enforces quotas with it
//! and the pool's tests model the service with it.

use std::time::{Duration, Instant};

/// A bucket holding up to one minute's allowance, refilled continuously.
#[derive(Debug, Clone)]
pub struct Bucket {
    capacity: f64,
    level: f64,
    per_sec: f64,
    updated: Instant,
}

impl Bucket {
    /// A full bucket allowing `per_minute` units a minute.
    pub fn per_minute(per_minute: u64, now: Instant) -> Bucket {
        let capacity = per_minute as f64;
        Bucket {
            capacity,
            level: capacity,
            per_sec: capacity / 60.0,
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.level = (self.level + elapsed * self.per_sec).min(self.capacity);
        self.updated = now;
    }

    /// Whether `amount` is available right now.
    pub fn has(&mut self, amount: f64, now: Instant) -> bool {
        self.refill(now);
        self.level >= amount
    }

    /// Takes `amount`; callers check [`Bucket::has`] first.
    pub fn take(&mut self, amount: f64, now: Instant) {
        self.refill(now);
        self.level -= amount;
    }

    /// How long until `amount` is available (zero if it is now). Amounts above the
    /// capacity are treated as the capacity, so a caller never waits forever.
    pub fn wait_for(&mut self, amount: f64, now: Instant) -> Duration {
        self.refill(now);
        let amount = amount.min(self.capacity);
        if self.level >= amount || self.per_sec <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((amount - self.level) / self.per_sec)
        }
    }

    /// Changes the allowance (a quota raised or lowered while running): the level carries
    /// over, capped at the new capacity.
    pub fn set_per_minute(&mut self, per_minute: u64, now: Instant) {
        self.refill(now);
        self.capacity = per_minute as f64;
        self.per_sec = self.capacity / 60.0;
        self.level = self.level.min(self.capacity);
    }

    pub fn capacity(&self) -> f64 {
        self.capacity
    }

    /// Returns `amount` taken earlier and not used.
    pub fn refund(&mut self, amount: f64, now: Instant) {
        self.refill(now);
        self.level = (self.level + amount).min(self.capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_the_refill() {
        let t0 = Instant::now();
        let mut bucket = Bucket::per_minute(600, t0);
        assert_eq!(bucket.wait_for(600.0, t0), Duration::ZERO);
        bucket.take(600.0, t0);
        // 10 a second.
        assert_eq!(bucket.wait_for(5.0, t0), Duration::from_millis(500));
        assert_eq!(
            bucket.wait_for(5.0, t0 + Duration::from_millis(500)),
            Duration::ZERO
        );
        // More than the capacity waits for a full bucket (5 of 600 are there), not forever.
        let later = t0 + Duration::from_millis(500);
        assert_eq!(
            bucket.wait_for(10_000.0, later),
            Duration::from_millis(59_500)
        );
    }
}
