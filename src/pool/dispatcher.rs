//! The dispatcher: the one task that decides when each attempt goes out. It takes tasks
//! from the channel while it holds fewer than `alive` calls, sends the oldest ready call
//! (else the new one) to the first lane whose pacer and limiter allow it, and takes each
//! attempt's answer back: a throttle goes to the pacer and the call is ready again at once;
//! other failures go by the retry policy (backoff) or end the call; a model denied in one
//! region drops that lane while others serve it. It watches the stop flags, the budget and
//! the stall timeout, says once per model when a smaller `--max-tokens` would admit more
//! calls, and sends every call's outcome.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

use super::Controls;
use super::attempt::{Attempted, attempt};
use super::budget::HoldDecision;
use super::call::{Call, cancelled, once_more, used};
use super::lane::{Lane, choose};
use super::pacer::Shortage;
use super::queue::Waiting;
use super::reservations::Told;
use crate::engine::Service;
use crate::vocab::{Answer, CallError, CallOutcome, ErrorKind, Task, Usage};

/// The dispatcher looks at the stop flag at least this often.
const TICK: Duration = Duration::from_millis(100);

/// What to do with a call after an attempt.
enum Next {
    Done(Result<Vec<Answer>, CallError>),
    /// Send again as soon as the pacer allows.
    Again,
    /// Send again after this backoff.
    After(Duration),
}

/// The dispatcher's state: the calls it holds and where each one is.
struct Dispatcher<S: Service> {
    lanes: Arc<Vec<Lane<S>>>,
    controls: Arc<Controls>,
    outcomes: mpsc::Sender<CallOutcome>,
    /// Between attempts: fresh, ready or backing off.
    waiting: Waiting,
    /// With an attempt in flight.
    flying: HashMap<u64, Call>,
    attempts: JoinSet<Attempted>,
    /// The call each attempt task belongs to, to find it if the task fails.
    task_calls: HashMap<tokio::task::Id, u64>,
    next_seq: u64,
    /// The last answer that was not a throttle.
    last_progress: Instant,
    /// The lane tried first next time, so records spread over the lanes with room.
    next_lane: usize,
    /// Models already advised on `--max-tokens`.
    told: Told,
}

impl<S: Service> Dispatcher<S> {
    fn held(&self) -> usize {
        self.waiting.len() + self.flying.len()
    }

    async fn emit(&self, mut call: Call, mut result: Result<Vec<Answer>, CallError>) {
        // A record's line counts every attempt it was billed for.
        match &mut result {
            Ok(answers) => {
                if let Some(first) = answers.first_mut() {
                    first.add_billed(&call.billed);
                }
            }
            Err(err) => err.billed.add(&call.billed),
        }
        if let (Some(budget), Some(hold)) = (&self.controls.budget, call.hold.take()) {
            budget.settle(hold, &call.task.model, &used(&result));
        }
        let _ = self.outcomes.send(call.outcome(result)).await;
    }

    /// Takes a new task, holding its worst case against the budget.
    fn admit(&mut self, task: Task) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.waiting.fresh = Some((seq, Call::new(task, &self.controls.policy)));
    }

    /// Whether the fresh call may go: holds its budget share first.
    fn fresh_may_go(&mut self) -> bool {
        let Some((_, call)) = &mut self.waiting.fresh else {
            return false;
        };
        let Some(budget) = &self.controls.budget else {
            return true;
        };
        if call.hold.is_some() {
            return true;
        }
        match budget.try_hold(&call.task.model, &call.task.worst_case()) {
            HoldDecision::Held(hold) => {
                call.hold = Some(hold);
                true
            }
            HoldDecision::Wait => false,
            HoldDecision::Never => {
                // Sending it could pass the budget: stop here, resumable.
                self.controls.over_budget.store(true, Ordering::Relaxed);
                self.controls.stops.stop();
                false
            }
        }
    }

    /// Sends the oldest ready call (else the fresh one) if the limiter and the pacer allow
    /// it now; otherwise says how long the pacer wants to wait (`None`: wait for a permit).
    fn try_send(&mut self, now: Instant) -> Result<(), Option<Duration>> {
        let from_ready = self.waiting.first_ready().is_some();
        if !from_ready && !self.fresh_may_go() {
            return Err(None);
        }
        let (model, demand) = match self.waiting.first_ready() {
            Some(call) => (call.task.model.clone(), call.demand),
            None => match &self.waiting.fresh {
                Some((_, call)) => (call.task.model.clone(), call.demand),
                None => return Err(None),
            },
        };
        let (index, permit) = choose(&self.lanes, self.next_lane, &model, demand, now)?;
        self.next_lane = (index + 1) % self.lanes.len();
        let lane = &self.lanes[index];
        let (seq, mut call) = self.waiting.take_next().expect("checked above");
        let reservation = lane.pacer.take(&model, demand, now);
        call.attempt_in(&lane.name);
        let task = call.task.clone();
        self.flying.insert(seq, call);
        let service = lane.service.clone();
        let timeout = self.controls.timeout;
        let handle = self.attempts.spawn(attempt(
            service,
            task,
            timeout,
            (seq, index),
            permit,
            reservation,
        ));
        self.task_calls.insert(handle.id(), seq);
        Ok(())
    }

    /// Takes a finished attempt task. A task that failed (a bug, not an answer) ends its
    /// call with an error line rather than leaving it held forever.
    async fn finished(&mut self, done: Result<(tokio::task::Id, Attempted), JoinError>) {
        match done {
            Ok((id, attempted)) => {
                self.task_calls.remove(&id);
                self.land(attempted).await;
            }
            Err(err) => {
                let call = self
                    .task_calls
                    .remove(&err.id())
                    .and_then(|seq| self.flying.remove(&seq));
                if let Some(call) = call {
                    let error = CallError::new(
                        ErrorKind::Other,
                        format!("the attempt failed inside bedrock-batch: {err}"),
                    );
                    self.emit(call, Err(error)).await;
                }
            }
        }
    }

    /// Takes an attempt's answer: settles the pacer and decides what comes next.
    async fn land(&mut self, attempted: Attempted) {
        let now = Instant::now();
        let Some(mut call) = self.flying.remove(&attempted.seq) else {
            return;
        };
        call.latency = attempted.latency;
        let lanes = self.lanes.clone();
        let lane = &lanes[attempted.lane];
        let pacer = &lane.pacer;
        let next = match attempted.result {
            Err(err) if err.kind == ErrorKind::Throttling => {
                self.controls.throttled.fetch_add(1, Ordering::Relaxed);
                pacer.throttled(
                    attempted.reservation,
                    Shortage::from_message(&err.message),
                    now,
                );
                if let Some(after) = err.retry_after {
                    pacer.pause_until(now + after);
                }
                if let Some(tries) = call.tries.iter_mut().find(|t| *t.region == *lane.name) {
                    tries.throttles += 1;
                }
                call.retries.push(err.kind);
                if now.saturating_duration_since(self.last_progress) >= self.controls.stall_timeout
                {
                    self.controls.stalled.store(true, Ordering::Relaxed);
                    self.controls.stops.stop();
                }
                Next::Again
            }
            result => {
                self.last_progress = now;
                let usage = used(&result);
                let input = usage.input_tokens
                    + usage.cache_read_input_tokens
                    + usage.cache_write_input_tokens;
                let consumed = result.is_ok() || usage != Usage::default();
                pacer.settle(
                    attempted.reservation,
                    call.demand,
                    consumed.then_some((input, input + usage.output_tokens)),
                    now,
                );
                if consumed {
                    self.advise(&call.task.model);
                }
                match result {
                    Err(err) if err.kind.lane_fatal() && self.drop_lane(attempted.lane, &err) => {
                        // Another lane may serve the model: this record goes on there.
                        Next::Again
                    }
                    Err(err) if err.kind.fatal() => {
                        // Every record would fail the same way: stop taking new ones at once.
                        self.controls.stops.stop();
                        Next::Done(Err(err))
                    }
                    Err(err) if err.kind.retryable() || once_more(err.kind, &call.retries) => {
                        match call.backoff.next() {
                            Some(delay) => {
                                let delay = err.retry_after.map_or(delay, |hint| hint.max(delay));
                                tracing::debug!(model = %call.task.model, kind = err.kind.name(), ?delay, "retrying: {}", err.message);
                                call.retries.push(err.kind);
                                call.billed.add(&err.billed);
                                Next::After(delay)
                            }
                            None => Next::Done(Err(err)),
                        }
                    }
                    other => Next::Done(other),
                }
            }
        };
        match next {
            Next::Done(result) => self.emit(call, result).await,
            Next::Again => self.waiting.again(attempted.seq, call),
            Next::After(delay) => self.waiting.after(now + delay, attempted.seq, call),
        }
    }

    /// Takes a lane where the model is denied or missing out of the rotation, unless it is
    /// the last one; says whether it did.
    fn drop_lane(&self, index: usize, err: &CallError) -> bool {
        let lane = &self.lanes[index];
        if !lane.live() {
            // Dropped already by another call: go on if any lane is left.
            return self.lanes.iter().any(|l| l.live());
        }
        let others = self.lanes.iter().filter(|l| l.live()).count() - 1;
        if others == 0 {
            return false;
        }
        lane.drop_out();
        tracing::warn!(
            "{}: {} ({}); going on with the other {others} region(s)",
            lane.name,
            err.message,
            err.kind.name(),
        );
        true
    }

    /// Says once, when it first holds, that calls on `model` reserve far more output than
    /// their answers use (see `reservations`).
    fn advise(&mut self, model: &str) {
        if !self.controls.max_tokens_advice || self.told.already(model) {
            return;
        }
        if let Some(advice) = super::max_tokens_advice(&self.lanes, model)
            && let Some(line) = self.told.first(model, &advice)
        {
            tracing::warn!("{line}");
        }
    }

    /// Ends every call not in flight as cancelled (their attempts still count).
    async fn cancel_waiting(&mut self) {
        for call in self.waiting.drain() {
            self.emit(call, Err(cancelled())).await;
        }
    }
}

/// Takes tasks until the channel closes or the run stops, and sends each outcome to
/// `outcomes`. At most `alive` calls are held at once (waiting, backing off or in flight).
/// Returns when every call has an outcome.
pub async fn run<S: Service>(
    lanes: Arc<Vec<Lane<S>>>,
    controls: Arc<Controls>,
    alive: usize,
    mut tasks: mpsc::Receiver<Task>,
    outcomes: mpsc::Sender<CallOutcome>,
) {
    let mut pool = Dispatcher {
        lanes,
        controls: controls.clone(),
        outcomes,
        waiting: Waiting::default(),
        flying: HashMap::new(),
        attempts: JoinSet::new(),
        task_calls: HashMap::new(),
        next_seq: 0,
        last_progress: Instant::now(),
        next_lane: 0,
        told: Told::default(),
    };
    let alive = alive.max(1);
    let mut feeding = true;
    let mut taken: u64 = 0;
    loop {
        if controls.abandoned() {
            // Calls in flight are abandoned: their records are sent again on resume.
            pool.attempts.abort_all();
            let flying: Vec<Call> = pool.flying.drain().map(|(_, c)| c).collect();
            for call in flying {
                pool.emit(call, Err(cancelled())).await;
            }
            pool.cancel_waiting().await;
            break;
        }
        if controls.stopped() {
            feeding = false;
            pool.cancel_waiting().await;
            if pool.flying.is_empty() {
                break;
            }
        }
        // Answers first: a throttle must reach the pacer before the next attempt goes out,
        // or a pacer that allows a burst would send all of it into an empty bucket.
        while let Some(done) = pool.attempts.try_join_next_with_id() {
            pool.finished(done).await;
        }
        let now = Instant::now();
        let mut wake = pool.waiting.wake_backed_off(now);
        if !controls.stopped() {
            match pool.try_send(now) {
                Ok(()) => continue,
                Err(Some(wait)) => wake = Some(wake.map_or(now + wait, |w| w.min(now + wait))),
                Err(None) => {}
            }
        }
        if !feeding && pool.held() == 0 {
            break;
        }
        let take = feeding && pool.waiting.fresh.is_none() && pool.held() < alive;
        let tick = now + TICK;
        let wake = wake.map_or(tick, |w| w.min(tick));
        tokio::select! {
            biased;
            Some(done) = pool.attempts.join_next_with_id(), if !pool.attempts.is_empty() => {
                pool.finished(done).await;
            }
            task = tasks.recv(), if take => match task {
                Some(task) => {
                    taken += 1;
                    crate::engine::test_panic("engine", taken);
                    pool.admit(task)
                }
                None => feeding = false,
            },
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
    drop(tasks);
}
