//! Bedrock's Batch Inference control plane, simulated: the jobs CreateModelInvocationJob
//! makes, what GetModelInvocationJob and ListModelInvocationJobs report, and
//! StopModelInvocationJob. `routes` speaks the wire protocol, `job_rules` holds what
//! Bedrock demands of jobs and records beyond the service model, `job` runs one job (a
//! tokio task reading its input from the local S3 endpoint and writing its output back),
//! `objects` is its S3 I/O and `job_fates` its seeded fates. This file holds the jobs
//! themselves, behind one lock that is never held across an await.

mod job;
mod job_fates;
mod job_rules;
mod objects;
pub mod routes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::stats::BatchStats;

pub use job_fates::{BatchFaults, BatchFaultsError};

/// How batch jobs behave: the settings of [`ServerConfig`](super::ServerConfig) they use.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchConfig {
    /// The wait between two status changes before a job runs.
    pub step: Duration,
    /// How fast a running job answers records; 0 answers them all at once.
    pub records_per_sec: u64,
    /// Fewer records than this and the job fails validation (Bedrock's minimum is 100).
    pub min_records: u64,
    pub faults: BatchFaults,
    /// Jobs of one model that may be submitted or running at once (Bedrock's quota is
    /// small, and a create past it is refused with ServiceQuotaExceededException).
    pub max_jobs_per_model: u64,
    pub seed: u64,
    /// The local S3 endpoint jobs read and write through.
    pub s3_url: String,
}

/// A job's status, named as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Submitted,
    Validating,
    Scheduled,
    InProgress,
    Stopping,
    Completed,
    PartiallyCompleted,
    Failed,
    Stopped,
    Expired,
}

impl Status {
    pub const ALL: [Status; 10] = [
        Status::Submitted,
        Status::Validating,
        Status::Scheduled,
        Status::InProgress,
        Status::Stopping,
        Status::Completed,
        Status::PartiallyCompleted,
        Status::Failed,
        Status::Stopped,
        Status::Expired,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Status::Submitted => "Submitted",
            Status::Validating => "Validating",
            Status::Scheduled => "Scheduled",
            Status::InProgress => "InProgress",
            Status::Stopping => "Stopping",
            Status::Completed => "Completed",
            Status::PartiallyCompleted => "PartiallyCompleted",
            Status::Failed => "Failed",
            Status::Stopped => "Stopped",
            Status::Expired => "Expired",
        }
    }

    pub fn parse(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The job has ended: nothing will change any more.
    pub fn ended(self) -> bool {
        matches!(
            self,
            Status::Completed
                | Status::PartiallyCompleted
                | Status::Failed
                | Status::Stopped
                | Status::Expired
        )
    }
}

/// `modelInvocationType`: which API each record's `modelInput` is a body of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationType {
    InvokeModel,
    Converse,
}

impl InvocationType {
    pub fn name(self) -> &'static str {
        match self {
            InvocationType::InvokeModel => "InvokeModel",
            InvocationType::Converse => "Converse",
        }
    }
}

/// Record counts as a job reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: Option<u64>,
    pub processed: u64,
    pub success: u64,
    pub error: u64,
}

/// One job: what it was created with and where it is now.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub arn: String,
    pub name: String,
    pub model_id: String,
    pub role_arn: String,
    pub client_request_token: Option<String>,
    pub invocation_type: InvocationType,
    /// `inputDataConfig` and `outputDataConfig` as sent, echoed back as they came.
    pub input_data_config: Value,
    pub output_data_config: Value,
    pub vpc_config: Option<Value>,
    pub input_uri: String,
    pub output_uri: String,
    pub timeout_hours: Option<u64>,
    pub status: Status,
    pub message: Option<String>,
    pub submit_time: SystemTime,
    pub last_modified_time: SystemTime,
    pub end_time: Option<SystemTime>,
    pub counts: Counts,
    /// StopModelInvocationJob was called.
    pub stop_requested: bool,
}

impl Job {
    /// When the job expires unanswered: submit time plus its timeout (24 hours by default).
    pub fn expiration_time(&self) -> SystemTime {
        self.submit_time + Duration::from_secs(3600 * self.timeout_hours.unwrap_or(24))
    }
}

#[derive(Default)]
struct Registry {
    /// By job id, with the order of creation in `order`.
    jobs: HashMap<String, Job>,
    order: Vec<String>,
    /// Job ids by client request token.
    tokens: HashMap<String, String>,
    stats: BatchStats,
    created: u64,
}

/// Every job the server knows, and the settings they run with.
pub struct Batch {
    pub config: BatchConfig,
    registry: Mutex<Registry>,
    /// The running jobs' tasks, aborted when the server shuts down.
    tasks: Mutex<tokio::task::JoinSet<()>>,
}

/// Why a new job was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Another job already uses this name.
    NameInUse,
    /// The model has as many jobs submitted or running as the quota allows.
    TooMany(u64),
}

impl Batch {
    pub fn new(config: BatchConfig) -> Arc<Batch> {
        Arc::new(Batch {
            config,
            registry: Mutex::new(Registry::default()),
            tasks: Mutex::new(tokio::task::JoinSet::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn stats(&self) -> BatchStats {
        self.lock().stats.clone()
    }

    /// Clears the counters (the jobs stay).
    pub fn reset_stats(&self) {
        self.lock().stats = BatchStats::default();
    }

    /// Adds `job` unless its client request token was seen before (then the earlier job's
    /// ARN comes back and `false`: nothing was created) or its name is taken. `make` builds
    /// the job from the sequence number of creation, called only when one is created.
    /// Counts a StopModelInvocationJob call that named a job.
    pub fn stop_called(&self) {
        self.lock().stats.stop_calls += 1;
    }

    /// Forgets every client request token, as AWS does after a while: a create repeated
    /// days later meets its job's name, not its token.
    pub fn forget_tokens(&self) {
        self.lock().tokens.clear();
    }

    pub fn create(
        self: &Arc<Self>,
        token: Option<&str>,
        name: &str,
        make: impl FnOnce(u64) -> Job,
    ) -> Result<(String, bool), Refused> {
        let mut registry = self.lock();
        registry.stats.create_calls += 1;
        if let Some(token) = token
            && let Some(id) = registry.tokens.get(token)
            && let Some(job) = registry.jobs.get(id)
        {
            let arn = job.arn.clone();
            registry.stats.creates_by_token += 1;
            return Ok((arn, false));
        }
        if registry.jobs.values().any(|job| job.name == name) {
            registry.stats.creates_name_in_use += 1;
            return Err(Refused::NameInUse);
        }
        let job = make(registry.created);
        let limit = self.config.max_jobs_per_model;
        let open = registry
            .jobs
            .values()
            .filter(|other| other.model_id == job.model_id && !other.status.ended())
            .count() as u64;
        if !job_rules::within_job_quota(open, limit) {
            return Err(Refused::TooMany(limit));
        }
        registry.created += 1;
        registry.stats.jobs_created += 1;
        if let Some(token) = token {
            registry.tokens.insert(token.to_string(), job.id.clone());
        }
        let (id, arn) = (job.id.clone(), job.arn.clone());
        registry.order.push(id.clone());
        registry.jobs.insert(id.clone(), job);
        drop(registry);
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        // Reap the tasks of ended jobs so the set stays as small as the running jobs.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(job::live(self.clone(), id));
        Ok((arn, true))
    }

    /// Stops every running job where it is (the server is shutting down).
    pub fn abort_all(&self) {
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .abort_all();
    }

    /// The job named by `identifier`, its id or its ARN.
    pub fn get(&self, identifier: &str) -> Option<Job> {
        self.lock().jobs.get(job_id(identifier)).cloned()
    }

    /// Every job, oldest first.
    pub fn all(&self) -> Vec<Job> {
        let registry = self.lock();
        registry
            .order
            .iter()
            .filter_map(|id| registry.jobs.get(id).cloned())
            .collect()
    }

    /// Changes a job; `None` when there is no such job.
    pub fn update<T>(&self, id: &str, change: impl FnOnce(&mut Job) -> T) -> Option<T> {
        let mut registry = self.lock();
        let registry = &mut *registry;
        let job = registry.jobs.get_mut(id)?;
        let before = job.status;
        let out = change(job);
        job.last_modified_time = SystemTime::now();
        if job.status != before && job.status.ended() {
            job.end_time = Some(job.last_modified_time);
            *registry
                .stats
                .by_status
                .entry(job.status.name().to_string())
                .or_default() += 1;
            registry.stats.records_processed += job.counts.processed;
        }
        Some(out)
    }
}

/// The job id in a job identifier: the identifier itself, or the last part of an ARN.
pub fn job_id(identifier: &str) -> &str {
    identifier
        .rsplit_once("model-invocation-job/")
        .map_or(identifier, |(_, id)| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_come_from_ids_and_arns() {
        assert_eq!(job_id("abc123def456"), "abc123def456");
        assert_eq!(
            job_id("arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abc123def456"),
            "abc123def456"
        );
    }

    #[test]
    fn statuses_round_trip() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.name()), Some(status));
        }
        assert!(Status::Expired.ended() && !Status::Stopping.ended());
    }
}
