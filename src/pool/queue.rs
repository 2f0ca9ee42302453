//! The retry queue: the calls the dispatcher holds that have no attempt in flight. A new
//! call waits as `fresh` until its first attempt; a call to send again is `ready` (oldest
//! first, ahead of the fresh one) or backing off until its instant. Every call leaves
//! through the same lanes and pacers, so a retry never races the others on its own timer.

use std::collections::BTreeMap;

use tokio::time::Instant;

use super::call::Call;

/// Calls between attempts, by sequence number (the order they were taken in).
#[derive(Default)]
pub(super) struct Waiting {
    /// Taken from the channel, waiting for its first attempt.
    pub fresh: Option<(u64, Call)>,
    /// Ready for another attempt, oldest first.
    ready: BTreeMap<u64, Call>,
    /// Backing off until the instant, then ready.
    backing_off: BTreeMap<(Instant, u64), Call>,
}

impl Waiting {
    /// Calls waiting, fresh, ready or backing off.
    pub fn len(&self) -> usize {
        self.fresh.is_some() as usize + self.ready.len() + self.backing_off.len()
    }

    /// The oldest call ready to go again, if any.
    pub fn first_ready(&self) -> Option<&Call> {
        self.ready.first_key_value().map(|(_, call)| call)
    }

    /// Takes the oldest ready call, else the fresh one.
    pub fn take_next(&mut self) -> Option<(u64, Call)> {
        self.ready.pop_first().or_else(|| self.fresh.take())
    }

    /// Queues `call` to go again as soon as a lane allows.
    pub fn again(&mut self, seq: u64, call: Call) {
        self.ready.insert(seq, call);
    }

    /// Queues `call` to go again once `due` has passed.
    pub fn after(&mut self, due: Instant, seq: u64, call: Call) {
        self.backing_off.insert((due, seq), call);
    }

    /// Moves calls whose backoff is over to the ready queue; returns when the next is due.
    pub fn wake_backed_off(&mut self, now: Instant) -> Option<Instant> {
        while let Some(entry) = self.backing_off.first_entry() {
            let (due, seq) = *entry.key();
            if due > now {
                return Some(due);
            }
            let call = entry.remove();
            self.ready.insert(seq, call);
        }
        None
    }

    /// Every waiting call, the queue left empty: the fresh one, the ready ones, then those
    /// backing off.
    pub fn drain(&mut self) -> Vec<Call> {
        let mut waiting: Vec<Call> = self.fresh.take().into_iter().map(|(_, c)| c).collect();
        waiting.extend(std::mem::take(&mut self.ready).into_values());
        waiting.extend(std::mem::take(&mut self.backing_off).into_values());
        waiting
    }
}
