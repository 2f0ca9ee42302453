//! One attempt, run as its own task: the call to the [`Service`], bounded by `--timeout`;
//! the limiter's permit goes back with what the answer says about load, and the answer
//! goes back to the dispatcher with the pacer's reservation to settle.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::limiter::{Permit, Signal};
use super::pacer::Reservation;
use crate::engine::Service;
use crate::vocab::{Answer, CallError, ErrorKind, Payload, Task};

/// One attempt's answer, back at the dispatcher.
pub(super) struct Attempted {
    /// The call it belongs to.
    pub seq: u64,
    /// The lane it went to.
    pub lane: usize,
    pub result: Result<Vec<Answer>, CallError>,
    pub latency: Duration,
    pub reservation: Reservation,
}

/// One attempt: the call, bounded by the timeout; the permit goes back with its signal.
pub(super) async fn attempt<S: Service>(
    service: S,
    task: Arc<Task>,
    timeout: Duration,
    (seq, lane): (u64, usize),
    permit: Permit,
    reservation: Reservation,
) -> Attempted {
    let payloads: Vec<&Payload> = task.records.iter().map(|r| &r.payload).collect();
    let started = Instant::now();
    let call = service.call(&task.model, task.service_tier, &payloads);
    let result = match tokio::time::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(CallError::new(
            ErrorKind::Timeout,
            format!(
                "no answer within {:.0} s (--timeout)",
                timeout.as_secs_f64()
            ),
        )),
    };
    let latency = started.elapsed();
    permit.finish(match &result {
        Ok(_) => Signal::Success,
        Err(err) if err.kind == ErrorKind::Throttling => Signal::Throttle,
        Err(err) if err.kind.congestion() => Signal::Congestion,
        Err(_) => Signal::Neutral,
    });
    Attempted {
        seq,
        lane,
        result,
        latency,
        reservation,
    }
}
