//! Counters fed from running totals. The run reports what it did as totals (summary.json's
//! numbers as of now), while a Prometheus counter only goes up: a [`Cumulative`] keeps the
//! last total it saw under each label set and adds the difference. A total that falls
//! (it should not) adds nothing, and the next rise counts from the highest total seen, so a
//! counter never goes down. Totals counted before this process (a resumed run's) are
//! `primed` in: they never reach the counter, which counts what this process saw.

use std::collections::HashMap;
use std::hash::Hash;

use prometheus_client::metrics::counter::{Atomic, Counter};
use prometheus_client::metrics::family::Family;

/// A number a counter counts in (`u64` for events and tokens, `f64` for dollars).
pub trait Amount: Copy + PartialOrd + Default + std::ops::Sub<Output = Self> {}

impl Amount for u64 {}

impl Amount for f64 {}

/// What a total fed to a [`Cumulative`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Counted before this process: later totals count from it.
    Prime,
    /// The total as of now.
    Advance,
}

/// A counter family and the last total behind each of its counters.
pub struct Cumulative<S, N = u64> {
    family: Family<S, Counter<N>>,
    last: HashMap<S, N>,
}

impl<S, N> Cumulative<S, N>
where
    S: Clone + Hash + Eq,
    N: Amount,
    std::sync::atomic::AtomicU64: Atomic<N>,
{
    pub fn new() -> Self {
        Cumulative {
            family: Family::default(),
            last: HashMap::new(),
        }
    }

    /// The family to register: it shares its counters with this.
    pub fn family(&self) -> Family<S, Counter<N>> {
        self.family.clone()
    }

    pub fn feed(&mut self, feed: Feed, labels: S, total: N) {
        match feed {
            Feed::Prime => self.prime(labels, total),
            Feed::Advance => self.advance(labels, total),
        }
    }

    /// What was counted before this process: later totals count from here.
    pub fn prime(&mut self, labels: S, total: N) {
        let last = self.last.entry(labels).or_default();
        if total > *last {
            *last = total;
        }
    }

    /// The total under `labels` is now `total`: the counter grows by what it gained.
    pub fn advance(&mut self, labels: S, total: N) {
        let counter = self.family.get_or_create(&labels);
        let last = self.last.entry(labels).or_default();
        if total > *last {
            counter.inc_by(total - *last);
            *last = total;
        }
    }
}

impl<S, N> Default for Cumulative<S, N>
where
    S: Clone + Hash + Eq,
    N: Amount,
    std::sync::atomic::AtomicU64: Atomic<N>,
{
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value<N: Amount>(c: &Cumulative<&'static str, N>, labels: &'static str) -> Option<N>
    where
        std::sync::atomic::AtomicU64: Atomic<N>,
    {
        c.family.get(&labels).map(|counter| counter.get())
    }

    #[test]
    fn adds_what_the_total_gained() {
        let mut c: Cumulative<&str> = Cumulative::new();
        c.advance("a", 3);
        c.advance("a", 3);
        c.advance("a", 10);
        assert_eq!(value(&c, "a"), Some(10));
    }

    #[test]
    fn never_goes_down_and_counts_from_the_highest_total() {
        let mut c: Cumulative<&str> = Cumulative::new();
        c.advance("a", 10);
        c.advance("a", 4);
        assert_eq!(value(&c, "a"), Some(10));
        c.advance("a", 12);
        assert_eq!(value(&c, "a"), Some(12));
    }

    #[test]
    fn counts_from_the_primed_total() {
        let mut c: Cumulative<&str> = Cumulative::new();
        c.prime("a", 100);
        assert_eq!(value(&c, "a"), None, "priming makes no sample");
        c.advance("a", 100);
        assert_eq!(value(&c, "a"), Some(0));
        c.advance("a", 105);
        assert_eq!(value(&c, "a"), Some(5));
    }

    #[test]
    fn label_sets_count_apart() {
        let mut c: Cumulative<&str> = Cumulative::new();
        c.advance("a", 1);
        c.advance("b", 7);
        assert_eq!((value(&c, "a"), value(&c, "b")), (Some(1), Some(7)));
    }

    #[test]
    fn dollars_count_too() {
        let mut c: Cumulative<&str, f64> = Cumulative::new();
        c.advance("m", 0.25);
        c.advance("m", 0.75);
        c.advance("m", 0.5);
        assert_eq!(value(&c, "m"), Some(0.75));
    }
}
