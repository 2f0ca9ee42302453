//! The retry policy as plain data, and its backoff as an iterator of delays: exponential
//! (backon) with full jitter, so retries after a throttle spread out instead of arriving
//! together.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// The first backoff ceiling; each retry doubles it.
    pub base: Duration,
    /// The largest backoff ceiling.
    pub max_delay: Duration,
}

impl RetryPolicy {
    pub fn new(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base: Duration::from_millis(250),
            max_delay: Duration::from_secs(20),
        }
    }

    /// Delays before the second, third... attempts: uniform in `[0, ceiling]` where the
    /// ceiling grows exponentially ("full jitter").
    pub fn backoff(&self) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::default()
            .with_min_delay(self.base)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
            .build()
            .map(|ceiling| ceiling.mul_f64(fastrand::f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_jittered_exponential() {
        let policy = RetryPolicy {
            max_attempts: 6,
            base: Duration::from_millis(100),
            max_delay: Duration::from_millis(800),
        };
        let ceilings = [100, 200, 400, 800, 800];
        for _ in 0..50 {
            let delays: Vec<Duration> = policy.backoff().collect();
            assert_eq!(delays.len(), 5);
            for (delay, ceiling) in delays.iter().zip(ceilings) {
                assert!(
                    *delay <= Duration::from_millis(ceiling),
                    "{delay:?} > {ceiling}"
                );
            }
        }
        let spread: std::collections::BTreeSet<Duration> =
            (0..20).filter_map(|_| policy.backoff().next()).collect();
        assert!(spread.len() > 10, "jitter spreads the first delay");
        assert_eq!(RetryPolicy::new(1).backoff().count(), 0);
    }
}
