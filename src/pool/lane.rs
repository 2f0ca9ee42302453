//! Lanes: one region or endpoint each, with its client, how many calls it may have in
//! flight ([`Limiter`]) and the pace its quota was learned to admit ([`Pacer`]). Each lane
//! learns on its own, so a throttled region slows only itself. [`choose`] is where pacing
//! and concurrency meet: the first lane, from a rotating start, that both allow.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::limiter::{Limiter, Permit};
use super::pacer::{Demand, Pacer};

/// One region or endpoint: its client, how many calls it may have in flight, and the pace
/// its quota was learned to admit. Each lane learns on its own, so a throttled region slows
/// only itself.
pub struct Lane<S> {
    /// The region, or the endpoint URL.
    pub name: Arc<str>,
    pub service: S,
    pub limiter: Limiter,
    pub pacer: Pacer,
    /// Set when the model is denied or missing here: the other lanes go on.
    dropped: AtomicBool,
}

impl<S> Lane<S> {
    pub fn new(name: &str, service: S, limiter: Limiter, pacer: Pacer) -> Lane<S> {
        Lane {
            name: Arc::from(name),
            service,
            limiter,
            pacer,
            dropped: AtomicBool::new(false),
        }
    }

    pub(super) fn live(&self) -> bool {
        !self.dropped.load(Ordering::Relaxed)
    }

    /// Takes the lane out of the rotation.
    pub(super) fn drop_out(&self) {
        self.dropped.store(true, Ordering::Relaxed);
    }
}

/// The first lane, from `start` on, that the pacer and the limiter both allow a call of
/// `demand` on `model` now, with its permit; otherwise how long the pacer wants to wait
/// (`None`: wait for a permit).
pub(super) fn choose<S>(
    lanes: &[Lane<S>],
    start: usize,
    model: &str,
    demand: Demand,
    now: Instant,
) -> Result<(usize, Permit), Option<Duration>> {
    let count = lanes.len();
    let mut shortest: Option<Duration> = None;
    for offset in 0..count {
        let index = (start + offset) % count;
        let lane = &lanes[index];
        if !lane.live() {
            continue;
        }
        let wait = lane.pacer.wait(model, demand, now);
        if !wait.is_zero() {
            shortest = Some(shortest.map_or(wait, |s| s.min(wait)));
            continue;
        }
        if let Some(permit) = lane.limiter.try_acquire() {
            return Ok((index, permit));
        }
        // Room in the quota but not in flight: a finished call will wake us.
        return Err(None);
    }
    Err(shortest)
}
