//! Optional pacing when the quota is known (`--tpm`, `--rpm`): before each attempt the
//! client reserves its estimated input tokens plus its output ceiling from its own bucket,
//! as Bedrock does, waiting if the bucket is short; afterwards it settles with the real
//! usage. The limiter still adapts; the pacer only keeps it from learning by throttles.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::bucket::Bucket;

#[derive(Clone)]
pub struct Pacer {
    buckets: Arc<Mutex<Buckets>>,
}

struct Buckets {
    tokens: Option<Bucket>,
    requests: Option<Bucket>,
}

/// Tokens reserved by one attempt, to settle when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub tokens: u64,
}

impl Pacer {
    /// A pacer for `tpm` tokens and `rpm` requests a minute; `None` when neither is set.
    pub fn new(tpm: Option<u64>, rpm: Option<u64>) -> Option<Pacer> {
        if tpm.is_none() && rpm.is_none() {
            return None;
        }
        let now = Instant::now().into_std();
        Some(Pacer {
            buckets: Arc::new(Mutex::new(Buckets {
                tokens: tpm.map(|n| Bucket::per_minute(n, now)),
                requests: rpm.map(|n| Bucket::per_minute(n, now)),
            })),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buckets> {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `tokens` (capped at the bucket's capacity) and one request are available,
    /// then takes them.
    pub async fn reserve(&self, tokens: u64) -> Reservation {
        loop {
            let wait = {
                let now = Instant::now().into_std();
                let mut buckets = self.lock();
                let tokens = buckets
                    .tokens
                    .as_ref()
                    .map_or(tokens as f64, |b| (tokens as f64).min(b.capacity()));
                let wait_tokens = buckets
                    .tokens
                    .as_mut()
                    .map_or(Duration::ZERO, |b| b.wait_for(tokens, now));
                let wait_request = buckets
                    .requests
                    .as_mut()
                    .map_or(Duration::ZERO, |b| b.wait_for(1.0, now));
                let wait = wait_tokens.max(wait_request);
                if wait.is_zero() {
                    if let Some(b) = buckets.tokens.as_mut() {
                        b.take(tokens, now);
                    }
                    if let Some(b) = buckets.requests.as_mut() {
                        b.take(1.0, now);
                    }
                    return Reservation {
                        tokens: tokens as u64,
                    };
                }
                wait
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Gives back what a reservation did not use (or takes what it used beyond it).
    pub fn settle(&self, reservation: Reservation, used: u64) {
        let now = Instant::now().into_std();
        let mut buckets = self.lock();
        if let Some(bucket) = buckets.tokens.as_mut() {
            if used < reservation.tokens {
                bucket.refund((reservation.tokens - used) as f64, now);
            } else {
                bucket.take((used - reservation.tokens) as f64, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_to_the_quota_and_refunds() {
        // 600 tokens a minute: 10 a second.
        let pacer = Pacer::new(Some(600), None).unwrap();
        let start = Instant::now();
        let first = pacer.reserve(500).await;
        assert_eq!(Instant::now(), start, "a full bucket admits at once");
        // 100 left: 300 more take 30 s of refill...
        let second = pacer.reserve(400).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(30));
        // ...unless a call gives back what it did not use.
        pacer.settle(first, 100);
        pacer.settle(second, 400);
        let t = Instant::now();
        pacer.reserve(400).await;
        assert_eq!(
            Instant::now(),
            t,
            "the 400 refunded tokens admit the next call at once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn requests_per_minute() {
        let pacer = Pacer::new(None, Some(60)).unwrap();
        let start = Instant::now();
        for _ in 0..60 {
            pacer.reserve(0).await;
        }
        assert_eq!(Instant::now(), start);
        pacer.reserve(0).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(1));
        assert!(Pacer::new(None, None).is_none());
    }
}
