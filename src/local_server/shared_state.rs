//! The server's mutable state behind one lock: counters, per-model quotas, which request
//! bodies were seen (for seeded faults and duplicate detection) and the prompt cache; and
//! the Batch Inference jobs, which keep their own lock.
//! Every critical section is short and never awaits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use xxhash_rust::xxh3::{Xxh3, xxh3_64};

use super::ServerConfig;
use super::attachments::{Attachment, AttachmentKind};
use super::batch::Batch;
use super::converse::CachePrefix;
use super::corpus::KnowledgeBase;
use super::quota::{Quota, Shortage};
use super::request_faults::{self, Fault};
use super::stats::Stats;
use super::tier_policy;
use super::usage::{CacheUse, Delivered};
use crate::vocab::ServiceTier;

/// How long a cached prompt prefix lives after its last use, as on Bedrock.
const CACHE_TTL: Duration = Duration::from_secs(300);
/// Past this many cached prefixes, expired ones are swept.
const CACHE_SWEEP_AT: usize = 100_000;
const MAX_DOCUMENT_NAMES: usize = 1_000;

#[derive(Debug, Default, Clone, Copy)]
struct BodySeen {
    arrivals: u32,
    answered: bool,
}

#[derive(Default)]
struct State {
    stats: Stats,
    /// The quotas now, when changed since the start (`POST /_local/quota`).
    limits: Option<(Option<u64>, Option<u64>)>,
    quotas: HashMap<String, Quota>,
    bodies: HashMap<u64, BodySeen>,
    cache: HashMap<(u64, u128), Instant>,
}

pub struct Shared {
    pub config: ServerConfig,
    /// Built at start and never changed: read without the lock.
    pub knowledge_bases: HashMap<String, KnowledgeBase>,
    /// Batch Inference jobs (they keep their own lock).
    pub batch: Arc<Batch>,
    state: Mutex<State>,
}

/// Keeps the in-flight count honest however the request ends (answered, cancelled by the
/// client, or its connection closed by a reset fault).
pub struct InFlight(pub Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.depart();
    }
}

/// Identifies a request body for fault draws and duplicate detection.
pub fn body_hash(route: &str, model_id: &str, body: &[u8]) -> u64 {
    let mut hasher = Xxh3::new();
    hasher.update(route.as_bytes());
    hasher.update(&[0]);
    hasher.update(model_id.as_bytes());
    hasher.update(&[0]);
    hasher.update(body);
    hasher.digest()
}

impl Shared {
    pub fn new(
        config: ServerConfig,
        knowledge_bases: HashMap<String, KnowledgeBase>,
        batch: Arc<Batch>,
    ) -> Shared {
        Shared {
            config,
            knowledge_bases,
            batch,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain counters behind: keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn stats(&self) -> Stats {
        let mut stats = self.lock().stats.clone();
        stats.batch = self.batch.stats();
        stats
    }

    pub fn reset(&self) {
        self.batch.reset_stats();
        let mut state = self.lock();
        let in_flight = state.stats.in_flight;
        *state = State::default();
        state.stats.in_flight = in_flight;
    }

    /// Changes every model's quotas now (and the quotas of models not seen yet).
    pub fn set_quota(&self, tpm: Option<u64>, rpm: Option<u64>) {
        let now = Instant::now();
        let mut state = self.lock();
        state.limits = Some((tpm, rpm));
        for quota in state.quotas.values_mut() {
            quota.set(tpm, rpm, now);
        }
    }

    /// Counts a request arriving on `route` for `model_id`.
    pub fn arrive(&self, route: &str, model_id: &str) {
        let mut state = self.lock();
        let stats = &mut state.stats;
        stats.requests += 1;
        *stats.by_route.entry(route.to_string()).or_default() += 1;
        stats
            .by_model
            .entry(model_id.to_string())
            .or_default()
            .requests += 1;
        stats.in_flight += 1;
        stats.max_in_flight = stats.max_in_flight.max(stats.in_flight);
    }

    /// Counts a CountTokens call and its answer's status (it uses no quota and delivers
    /// no tokens).
    /// A RetrieveAndGenerate request's `modelArn`, as sent.
    pub fn record_model_arn(&self, arn: &str) {
        *self
            .lock()
            .stats
            .model_arns
            .entry(arn.to_string())
            .or_default() += 1;
    }

    pub fn caller_identity_call(&self) {
        self.lock().stats.caller_identity_calls += 1;
    }

    pub fn count_tokens_call(&self, status: u16) {
        let mut state = self.lock();
        let stats = &mut state.stats;
        stats.requests += 1;
        *stats
            .by_route
            .entry("count-tokens".to_string())
            .or_default() += 1;
        *stats.by_status.entry(status).or_default() += 1;
    }

    pub fn depart(&self) {
        let mut state = self.lock();
        state.stats.in_flight = state.stats.in_flight.saturating_sub(1);
    }

    /// Counts an error response (or a mid-stream exception when `status` is `None`).
    pub fn record_error(&self, model_id: &str, status: Option<u16>, throttle: bool) {
        let mut state = self.lock();
        let stats = &mut state.stats;
        if let Some(status) = status {
            *stats.by_status.entry(status).or_default() += 1;
        }
        let model = stats.by_model.entry(model_id.to_string()).or_default();
        if throttle {
            model.throttled += 1;
            stats.throttles += 1;
        } else {
            model.errors += 1;
        }
    }

    pub fn record_fault(&self, fault: Fault) {
        let mut state = self.lock();
        let counts = &mut state.stats.faults;
        match fault {
            Fault::InternalServer => counts.internal_server += 1,
            Fault::ServiceUnavailable => counts.service_unavailable += 1,
            Fault::Timeout => counts.timeout += 1,
            Fault::Reset => counts.reset += 1,
            Fault::Garbage => counts.garbage += 1,
            Fault::ModelError => counts.model_error += 1,
            Fault::None => {}
        }
    }

    pub fn record_stream_throttle(&self) {
        self.lock().stats.faults.stream_throttle += 1;
    }

    /// Admits a call in `tier` reserving `reserve` tokens against the model's quota (a flex
    /// call must leave the tier's reserve in each bucket; knowledge-base calls have no
    /// tier and are served as default), then draws its fault. Returns
    /// the fault and the body's arrival number. `uses` is what the call will consume
    /// (input + output x burndown), counted as admitted tokens.
    pub fn admit(
        &self,
        model_id: &str,
        body_hash: u64,
        reserve: u64,
        uses: u64,
        tier: Option<ServiceTier>,
    ) -> Result<(Fault, u32), Shortage> {
        let now = Instant::now();
        let mut state = self.lock();
        let config = &self.config;
        let (tpm, rpm) = state.limits.unwrap_or((config.tpm, config.rpm));
        if let Some(tier) = tier {
            state
                .stats
                .by_tier
                .entry(tier.as_str().to_string())
                .or_default()
                .requests += 1;
        }
        if tpm.is_some() || rpm.is_some() {
            let keep = tier.map_or(0.0, tier_policy::reserve);
            let admitted = state
                .quotas
                .entry(model_id.to_string())
                .or_insert_with(|| Quota::new(tpm, rpm, now))
                .admit(reserve, keep, now);
            if let Err(shortage) = admitted {
                if let Some(stats) = tier.and_then(|t| state.stats.by_tier.get_mut(t.as_str())) {
                    stats.throttled += 1;
                }
                return Err(shortage);
            }
        }
        state.stats.admitted_tokens += uses;
        let seen = state.bodies.entry(body_hash).or_default();
        let arrival = seen.arrivals;
        seen.arrivals = seen.arrivals.saturating_add(1);
        Ok((
            request_faults::draw(&config.faults, config.seed, body_hash, arrival),
            arrival,
        ))
    }

    /// Returns the unused part of a reservation.
    pub fn settle(&self, model_id: &str, reserved: u64, used: u64) {
        let mut state = self.lock();
        if let Some(quota) = state.quotas.get_mut(model_id) {
            quota.settle(reserved, used, Instant::now());
        }
    }

    /// How a call with these cache prefixes uses the cache right now: the longest prefix
    /// already cached is read, the rest up to the last cache point is written.
    pub fn cache_use(&self, model_id: &str, prefixes: &[CachePrefix]) -> CacheUse {
        let Some(last) = prefixes.last() else {
            return CacheUse::default();
        };
        let model = xxh3_64(model_id.as_bytes());
        let now = Instant::now();
        let state = self.lock();
        let read = prefixes
            .iter()
            .rev()
            .find(|p| {
                state
                    .cache
                    .get(&(model, p.hash))
                    .is_some_and(|expires| *expires > now)
            })
            .map_or(0, |p| p.tokens);
        CacheUse {
            read,
            write: last.tokens - read,
        }
    }

    /// Records an answer delivered whole, served in `tier` (knowledge-base calls: none).
    pub fn deliver(
        &self,
        model_id: &str,
        body_hash: u64,
        usage: Delivered,
        tier: Option<ServiceTier>,
        prefixes: &[CachePrefix],
        attachments: &[Attachment],
    ) {
        let now = Instant::now();
        let mut state = self.lock();
        let state = &mut *state;
        if let Some(tier) = tier {
            state
                .stats
                .by_tier
                .entry(tier.as_str().to_string())
                .or_default()
                .ok += 1;
        }
        let seen = state.bodies.entry(body_hash).or_default();
        if seen.answered {
            state.stats.duplicate_successes += 1;
        }
        seen.answered = true;
        let stats = &mut state.stats;
        *stats.by_status.entry(200).or_default() += 1;
        stats.input_tokens += usage.input_tokens;
        stats.output_tokens += usage.output_tokens;
        stats.cache_read_input_tokens += usage.cache.read;
        stats.cache_write_input_tokens += usage.cache.write;
        let model = stats.by_model.entry(model_id.to_string()).or_default();
        model.ok += 1;
        model.input_tokens += usage.input_tokens + usage.cache.read + usage.cache.write;
        model.output_tokens += usage.output_tokens;
        if attachments.iter().any(|a| a.after_text) {
            stats.attachments_after_text += 1;
        }
        for attachment in attachments {
            let kind = match attachment.kind {
                AttachmentKind::Image => "image",
                AttachmentKind::Document => "document",
            };
            let entry = stats
                .attachments
                .entry(format!("{kind}/{}", attachment.format))
                .or_default();
            entry.count += 1;
            entry.bytes += attachment.bytes as u64;
            if let Some(name) = &attachment.name
                && entry.names.len() < MAX_DOCUMENT_NAMES
            {
                entry.names.push(name.clone());
            }
        }
        if !prefixes.is_empty() {
            let model = xxh3_64(model_id.as_bytes());
            if state.cache.len() >= CACHE_SWEEP_AT {
                state.cache.retain(|_, expires| *expires > now);
            }
            for prefix in prefixes {
                state.cache.insert((model, prefix.hash), now + CACHE_TTL);
            }
        }
    }

    /// Counts a 200 whose body was garbage (the work was done, the answer lost).
    pub fn record_garbage(&self, model_id: &str) {
        let mut state = self.lock();
        *state.stats.by_status.entry(200).or_default() += 1;
        state
            .stats
            .by_model
            .entry(model_id.to_string())
            .or_default()
            .errors += 1;
    }

    /// Whether a forced tool or structured-output answer for this body arrival breaks its
    /// schema.
    pub fn schema_violated(&self, body_hash: u64, arrival: u32) -> bool {
        request_faults::schema_violated(&self.config.faults, self.config.seed, body_hash, arrival)
    }

    /// Whether a stream for this body arrival is cut by a throttling frame.
    pub fn stream_throttled(&self, body_hash: u64, arrival: u32) -> bool {
        request_faults::stream_throttled(&self.config.faults, self.config.seed, body_hash, arrival)
    }
}
