//! The scheduler: prepared records arrive through a bounded channel and one dispatcher
//! decides when each attempt goes out. An attempt needs a permit from the adaptive
//! [`Limiter`] (how many may be in flight) and its quota from the [`Pacer`] (how fast they
//! may go, learned from what the service admits). Retries wait in one queue, oldest first,
//! ahead of new records and behind the same pacer: after a throttle the pool slows as a
//! whole, with no record racing the others on a private timer.
//!
//! A throttle is the pool's signal, never a record's outcome: it costs the record none of
//! its `--max-attempts`. Other failures are classified and retried by the [`RetryPolicy`]
//! after a backoff. Only when nothing at all succeeds for `--stall-timeout` does the pool
//! give up, and then the records are left for the next run rather than failed. Every
//! finished call, and every call the run stopped, goes out as a [`CallOutcome`] carrying
//! the attempts it made, so the totals count every attempt that was sent.

pub mod budget;

pub mod limiter;
pub mod pacer;
pub mod rate;
pub mod retry;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

use crate::bedrock::Bedrock;
use crate::engine::{Engine, EngineReport, Halt, Live, Stops};
use crate::vocab::Payload;
use crate::vocab::{Answer, ServiceTier, Usage};
use crate::vocab::{CallError, ErrorKind};
use crate::vocab::{CallOutcome, DEFAULT_OUTPUT_RESERVE, RegionTries, Task};
use budget::{Budget, Hold, HoldDecision};
use limiter::{Limiter, Permit, Signal};
use pacer::{Demand, Pacer, Reservation, Shortage};
use retry::RetryPolicy;

/// Output tokens Bedrock reserves from the quota when a Converse call sets no `maxTokens`.
const DEFAULT_QUOTA_RESERVE: u64 = 4096;
/// The dispatcher looks at the stop flag at least this often.
const TICK: Duration = Duration::from_millis(100);

/// What this call asks of the model's quota: Bedrock reserves the input plus the
/// output ceiling.
fn demand(task: &Task) -> Demand {
    let mut demand = Demand::default();
    for record in &task.records {
        demand.estimated_input += record.estimated_input_tokens;
        demand.output_ceiling += match &record.payload {
            Payload::Converse(input) => input
                .max_tokens
                .map_or(DEFAULT_QUOTA_RESERVE, |m| m.max(0) as u64),
            // A retrieval is limited by requests: it generates nothing.
            Payload::Embed { .. } | Payload::Retrieve { .. } => 0,
            Payload::Invoke { .. } | Payload::Rag { .. } => DEFAULT_OUTPUT_RESERVE,
        };
    }
    demand
}

/// The usage of a call's answers.
/// A model error or an answer that breaks `--schema` may be a fluke: one more try, then
/// it is the record's outcome.
fn once_more(kind: ErrorKind, retries: &[ErrorKind]) -> bool {
    matches!(kind, ErrorKind::ModelError | ErrorKind::SchemaMismatch) && !retries.contains(&kind)
}

fn used(result: &Result<Vec<Answer>, CallError>) -> Usage {
    let mut usage = Usage::default();
    match result {
        Ok(answers) => {
            for answer in answers {
                usage.add(answer.usage());
            }
        }
        Err(err) => usage.add(&err.billed),
    }
    usage
}

/// The service as the pool sees it: one call with a model and its payloads. [`Bedrock`] is
/// the real one; tests drive the pool against models of the service's quota.
pub trait Service: Clone + Send + Sync + 'static {
    fn call(
        &self,
        model: &str,
        tier: Option<ServiceTier>,
        payloads: &[&Payload],
    ) -> impl Future<Output = Result<Vec<Answer>, CallError>> + Send;
}

impl Service for Bedrock {
    fn call(
        &self,
        model: &str,
        tier: Option<ServiceTier>,
        payloads: &[&Payload],
    ) -> impl Future<Output = Result<Vec<Answer>, CallError>> + Send {
        Bedrock::call(self, model, tier, payloads)
    }
}

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

    fn live(&self) -> bool {
        !self.dropped.load(Ordering::Relaxed)
    }
}

/// What every call shares: the policy, the timeouts, the budget and the stop flags.
pub struct Controls {
    pub policy: RetryPolicy,
    pub timeout: Duration,
    /// Give up when nothing succeeds for this long while attempts keep being throttled.
    pub stall_timeout: Duration,
    /// The run's stop flags (Ctrl-C, a fatal error, the end of the grace period).
    pub stops: Stops,
    pub budget: Option<Budget>,
    /// Set when the budget stopped the run.
    pub over_budget: Arc<AtomicBool>,
    /// Set when the run stopped because nothing succeeded for `stall_timeout`.
    pub stalled: Arc<AtomicBool>,
    /// Attempts throttled so far, counted as they come back (the totals count a call's
    /// throttles when it ends).
    pub throttled: Arc<AtomicU64>,
}

impl Controls {
    pub fn stopped(&self) -> bool {
        self.stops.stopped()
    }

    fn abandoned(&self) -> bool {
        self.stops.abandoned()
    }
}

/// The outcome of a call the run stopped before it finished.
fn cancelled() -> CallError {
    CallError::new(
        ErrorKind::Cancelled,
        "the run stopped before this record was answered",
    )
}

/// A call the pool holds: between attempts, or with one in flight.
struct Call {
    task: Arc<Task>,
    demand: Demand,
    attempts: u32,
    /// Attempts and throttles by lane.
    tries: Vec<RegionTries>,
    retries: Vec<ErrorKind>,
    backoff: Box<dyn Iterator<Item = Duration> + Send + Sync>,
    hold: Option<Hold>,
    latency: Duration,
    /// What earlier attempts were billed (answers that broke `--schema`).
    billed: Usage,
}

/// One attempt's answer, back at the dispatcher.
struct Attempted {
    seq: u64,
    lane: usize,
    result: Result<Vec<Answer>, CallError>,
    latency: Duration,
    reservation: Reservation,
}

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
    /// Taken from the channel, waiting for its first attempt.
    fresh: Option<(u64, Call)>,
    /// Ready for another attempt, oldest first.
    ready: BTreeMap<u64, Call>,
    /// Backing off until the instant, then ready.
    backing_off: BTreeMap<(Instant, u64), Call>,
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
}

impl<S: Service> Dispatcher<S> {
    fn held(&self) -> usize {
        self.fresh.is_some() as usize
            + self.ready.len()
            + self.backing_off.len()
            + self.flying.len()
    }

    async fn emit(&self, call: Call, mut result: Result<Vec<Answer>, CallError>) {
        // A record's line counts every attempt it was billed for.
        match &mut result {
            Ok(answers) => {
                if let Some(first) = answers.first_mut() {
                    first.add_billed(&call.billed);
                }
            }
            Err(err) => err.billed.add(&call.billed),
        }
        if let (Some(budget), Some(hold)) = (&self.controls.budget, call.hold) {
            budget.settle(hold, &call.task.model, &used(&result));
        }
        let task = Arc::try_unwrap(call.task).unwrap_or_else(|shared| (*shared).clone());
        let service_tier = task.service_tier;
        let region = call
            .tries
            .last()
            .map(|tries| tries.region.clone())
            .unwrap_or_default();
        let outcome = CallOutcome {
            region,
            regions: call.tries,
            model: task.model,
            records: task.records.into_iter().map(|r| r.meta).collect(),
            result,
            attempts: call.attempts,
            retries: call.retries,
            latency: call.latency,
            batch_job: None,
            service_tier,
        };
        let _ = self.outcomes.send(outcome).await;
    }

    /// Takes a new task, holding its worst case against the budget.
    fn admit(&mut self, task: Task) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let demand = demand(&task);
        self.fresh = Some((
            seq,
            Call {
                task: Arc::new(task),
                demand,
                attempts: 0,
                tries: Vec::new(),
                retries: Vec::new(),
                backoff: Box::new(self.controls.policy.backoff()),
                hold: None,
                latency: Duration::ZERO,
                billed: Usage::default(),
            },
        ));
    }

    /// Whether the fresh call may go: holds its budget share first.
    fn fresh_may_go(&mut self) -> bool {
        let Some((_, call)) = &mut self.fresh else {
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
        let from_ready = !self.ready.is_empty();
        if !from_ready && !self.fresh_may_go() {
            return Err(None);
        }
        let (model, demand) = match self.ready.first_key_value() {
            Some((_, call)) => (call.task.model.clone(), call.demand),
            None => match &self.fresh {
                Some((_, call)) => (call.task.model.clone(), call.demand),
                None => return Err(None),
            },
        };
        // The first lane, from a rotating start, that the pacer and the limiter both allow.
        let count = self.lanes.len();
        let mut shortest: Option<Duration> = None;
        let mut chosen = None;
        for offset in 0..count {
            let index = (self.next_lane + offset) % count;
            let lane = &self.lanes[index];
            if !lane.live() {
                continue;
            }
            let wait = lane.pacer.wait(&model, demand, now);
            if !wait.is_zero() {
                shortest = Some(shortest.map_or(wait, |s| s.min(wait)));
                continue;
            }
            if let Some(permit) = lane.limiter.try_acquire() {
                chosen = Some((index, permit));
                break;
            }
            // Room in the quota but not in flight: a finished call will wake us.
            shortest = None;
            break;
        }
        let Some((index, permit)) = chosen else {
            return Err(shortest);
        };
        self.next_lane = (index + 1) % count;
        let lane = &self.lanes[index];
        let (seq, mut call) = if from_ready {
            self.ready.pop_first().expect("checked above")
        } else {
            self.fresh.take().expect("checked above")
        };
        let reservation = lane.pacer.take(&model, demand, now);
        call.attempts += 1;
        // The region of the latest attempt goes last: the one that answers names the line.
        let mut tries = match call.tries.iter().position(|t| *t.region == *lane.name) {
            Some(at) => call.tries.remove(at),
            None => RegionTries {
                region: lane.name.to_string(),
                attempts: 0,
                throttles: 0,
            },
        };
        tries.attempts += 1;
        call.tries.push(tries);
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
            Next::Again => {
                self.ready.insert(attempted.seq, call);
            }
            Next::After(delay) => {
                self.backing_off.insert((now + delay, attempted.seq), call);
            }
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
        lane.dropped.store(true, Ordering::Relaxed);
        tracing::warn!(
            "{}: {} ({}); going on with the other {others} region(s)",
            lane.name,
            err.message,
            err.kind.name(),
        );
        true
    }

    /// Moves calls whose backoff is over to the ready queue; returns when the next is due.
    fn wake_backed_off(&mut self, now: Instant) -> Option<Instant> {
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

    /// Ends every call not in flight as cancelled (their attempts still count).
    async fn cancel_waiting(&mut self) {
        let mut waiting: Vec<Call> = self.fresh.take().into_iter().map(|(_, c)| c).collect();
        waiting.extend(std::mem::take(&mut self.ready).into_values());
        waiting.extend(std::mem::take(&mut self.backing_off).into_values());
        for call in waiting {
            self.emit(call, Err(cancelled())).await;
        }
    }
}

/// One attempt: the call, bounded by the timeout; the permit goes back with its signal.
async fn attempt<S: Service>(
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

/// The on-demand engine: the pool over a [`Service`] (bedrock-runtime in a real run).
pub struct OnDemand<S: Service> {
    /// One lane per region or endpoint.
    pub lanes: Arc<Vec<Lane<S>>>,
    pub controls: Arc<Controls>,
    /// Calls held at once (waiting, backing off or in flight).
    pub alive: usize,
}

impl<S: Service> Engine for OnDemand<S> {
    fn start(
        &self,
        tasks: mpsc::Receiver<Task>,
        outcomes: mpsc::Sender<CallOutcome>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(run(
            self.lanes.clone(),
            self.controls.clone(),
            self.alive,
            tasks,
            outcomes,
        ))
    }

    fn live(&self) -> Live {
        Live {
            limit: Some(
                self.lanes
                    .iter()
                    .filter(|l| l.live())
                    .map(|l| l.limiter.limit())
                    .sum(),
            ),
            throttles: self.controls.throttled.load(Ordering::Relaxed),
            answered: 0,
        }
    }

    fn report(&self) -> EngineReport {
        let several = self.lanes.len() > 1;
        let mut learned_quota = BTreeMap::new();
        for lane in self.lanes.iter() {
            for (model, quota) in lane.pacer.learned() {
                let key = if several {
                    format!("{model} @ {}", lane.name)
                } else {
                    model
                };
                learned_quota.insert(key, quota);
            }
        }
        EngineReport {
            limiter: self.lanes[0].limiter.report(),
            learned_quota,
            lanes: self
                .lanes
                .iter()
                .map(|l| (l.name.to_string(), l.limiter.limit(), l.live()))
                .collect(),
            batch: None,
        }
    }

    fn halted(&self) -> Option<Halt> {
        let controls = &self.controls;
        if controls.over_budget.load(Ordering::Relaxed)
            && let Some(budget) = &controls.budget
        {
            return Some(Halt::Budget {
                limit_usd: budget.limit(),
                spent_usd: (budget.spent() * 1e6).round() / 1e6,
            });
        }
        controls
            .stalled
            .load(Ordering::Relaxed)
            .then(|| Halt::Stalled {
                after_secs: controls.stall_timeout.as_secs_f64(),
            })
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
        fresh: None,
        ready: BTreeMap::new(),
        backing_off: BTreeMap::new(),
        flying: HashMap::new(),
        attempts: JoinSet::new(),
        task_calls: HashMap::new(),
        next_seq: 0,
        last_progress: Instant::now(),
        next_lane: 0,
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
        let mut wake = pool.wake_backed_off(now);
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
        let take = feeding && pool.fresh.is_none() && pool.held() < alive;
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

#[cfg(test)]
mod tests;
