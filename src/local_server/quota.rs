//! Per-model quotas metered the way Bedrock meters them: continuously refilling buckets of
//! tokens per minute and requests per minute. A call reserves its input tokens plus
//! `maxTokens` x burndown up front, and the unused part is refunded when it ends. A call
//! may be told to leave part of each bucket untouched (flex requests leave a reserve for
//! the other tiers), so it is turned away while the others are still admitted.

use std::time::Instant;

use crate::rules::bucket::Bucket;

/// Which quota turned a call away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortage {
    Tokens,
    Requests,
}

impl Shortage {
    /// The message of the ThrottlingException Bedrock sends for it.
    pub fn message(self) -> &'static str {
        match self {
            Shortage::Tokens => "Too many tokens, please wait before trying again.",
            Shortage::Requests => "Too many requests, please wait before trying again.",
        }
    }
}

/// One model's quotas.
#[derive(Debug, Clone)]
pub struct Quota {
    tokens: Option<Bucket>,
    requests: Option<Bucket>,
}

impl Quota {
    pub fn new(tpm: Option<u64>, rpm: Option<u64>, now: Instant) -> Quota {
        Quota {
            tokens: tpm.map(|n| Bucket::per_minute(n, now)),
            requests: rpm.map(|n| Bucket::per_minute(n, now)),
        }
    }

    /// Admits a call reserving `tokens`, or says which quota is short. `keep` is the share
    /// of each bucket's ceiling the call must leave in it (0 for most calls). Nothing is
    /// taken from either bucket when the call is turned away.
    pub fn admit(&mut self, tokens: u64, keep: f64, now: Instant) -> Result<(), Shortage> {
        if let Some(requests) = &mut self.requests
            && !requests.has(1.0 + keep * requests.capacity(), now)
        {
            return Err(Shortage::Requests);
        }
        if let Some(bucket) = &mut self.tokens
            && !bucket.has(tokens as f64 + keep * bucket.capacity(), now)
        {
            return Err(Shortage::Tokens);
        }
        if let Some(requests) = &mut self.requests {
            requests.take(1.0, now);
        }
        if let Some(bucket) = &mut self.tokens {
            bucket.take(tokens as f64, now);
        }
        Ok(())
    }

    /// Changes the limits: a bucket kept keeps its level (capped), a new one starts full.
    pub fn set(&mut self, tpm: Option<u64>, rpm: Option<u64>, now: Instant) {
        let change =
            |bucket: &mut Option<Bucket>, limit: Option<u64>| match (bucket.as_mut(), limit) {
                (Some(b), Some(n)) => b.set_per_minute(n, now),
                (_, limit) => *bucket = limit.map(|n| Bucket::per_minute(n, now)),
            };
        change(&mut self.tokens, tpm);
        change(&mut self.requests, rpm);
    }

    /// Settles a call that reserved `reserved` tokens and used `used`.
    pub fn settle(&mut self, reserved: u64, used: u64, now: Instant) {
        if let Some(bucket) = &mut self.tokens
            && reserved > used
        {
            bucket.refund((reserved - used) as f64, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reserves_refunds_and_refills() {
        let t0 = Instant::now();
        let mut q = Quota::new(Some(600), None, t0);
        assert_eq!(q.admit(500, 0.0, t0), Ok(()));
        assert_eq!(q.admit(200, 0.0, t0), Err(Shortage::Tokens));
        // The first call used only 100 of its 500: 400 come back.
        q.settle(500, 100, t0);
        assert_eq!(q.admit(500, 0.0, t0), Ok(()));
        assert_eq!(q.admit(10, 0.0, t0), Err(Shortage::Tokens));
        // 600 a minute is 10 a second.
        assert_eq!(q.admit(10, 0.0, t0 + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn a_kept_share_turns_a_call_away_first() {
        let t0 = Instant::now();
        let mut q = Quota::new(Some(1_000), None, t0);
        assert_eq!(q.admit(600, 0.25, t0), Ok(()));
        // 400 left: 200 more would leave 200, below the 250 kept back.
        assert_eq!(q.admit(200, 0.25, t0), Err(Shortage::Tokens));
        assert_eq!(q.admit(150, 0.25, t0), Ok(()));
        // A call that keeps nothing back still gets the rest.
        assert_eq!(q.admit(250, 0.0, t0), Ok(()));
        assert_eq!(q.admit(1, 0.0, t0), Err(Shortage::Tokens));
        let mut q = Quota::new(None, Some(4), t0);
        for _ in 0..3 {
            assert_eq!(q.admit(1, 0.25, t0), Ok(()));
        }
        assert_eq!(q.admit(1, 0.25, t0), Err(Shortage::Requests));
        assert_eq!(q.admit(1, 0.0, t0), Ok(()));
    }

    #[test]
    fn requests_per_minute() {
        let t0 = Instant::now();
        let mut q = Quota::new(Some(1_000), Some(2), t0);
        assert_eq!(q.admit(1, 0.0, t0), Ok(()));
        assert_eq!(q.admit(1, 0.0, t0), Ok(()));
        assert_eq!(q.admit(1, 0.0, t0), Err(Shortage::Requests));
        assert_eq!(q.admit(1, 0.0, t0 + Duration::from_secs(30)), Ok(()));
    }

    #[test]
    fn refused_call_takes_nothing() {
        let t0 = Instant::now();
        let mut q = Quota::new(Some(100), Some(10), t0);
        assert_eq!(q.admit(1_000, 0.0, t0), Err(Shortage::Tokens));
        for _ in 0..10 {
            assert_eq!(q.admit(10, 0.0, t0), Ok(()));
        }
        assert_eq!(q.admit(1, 0.0, t0), Err(Shortage::Requests));
    }

    #[test]
    fn a_changed_quota_keeps_the_level() {
        let t0 = Instant::now();
        let mut q = Quota::new(Some(600), None, t0);
        assert_eq!(q.admit(500, 0.0, t0), Ok(()));
        // Halved: 100 left of at most 300, refilling at 5 a second.
        q.set(Some(300), None, t0);
        assert_eq!(q.admit(150, 0.0, t0), Err(Shortage::Tokens));
        assert_eq!(q.admit(150, 0.0, t0 + Duration::from_secs(10)), Ok(()));
        q.set(None, Some(1), t0);
        assert_eq!(q.admit(1_000_000, 0.0, t0), Ok(()));
        assert_eq!(q.admit(1, 0.0, t0), Err(Shortage::Requests));
    }

    #[test]
    fn no_quota_admits_everything() {
        let t0 = Instant::now();
        let mut q = Quota::new(None, None, t0);
        for _ in 0..1_000 {
            assert_eq!(q.admit(1_000_000, 0.0, t0), Ok(()));
        }
    }
}
