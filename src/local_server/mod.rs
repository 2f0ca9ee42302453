//! A Bedrock Runtime server that speaks the real restJson1 wire protocol, so the real
//! `aws-sdk-bedrockruntime` client (and boto3) talk to it unchanged. It answers Converse,
//! ConverseStream, InvokeModel and InvokeModelWithResponseStream with a deterministic fake
//! model (and, for knowledge bases built from local files, Retrieve and
//! RetrieveAndGenerate), and CountTokens with the count those calls bill. It meters
//! per-model quotas the way Bedrock does, serves the service tiers (flex slower and shed
//! first, priority faster) and native structured output to the models the catalogue says
//! offer them, injects seeded faults, and counts what it saw. It also serves Bedrock's
//! Batch Inference control plane, whose jobs really run, and an S3 endpoint on a second
//! port for their input and output. It backs `bedrock-batch local-server`, `run --local`,
//! every test and every benchmark. It imports nothing of the crate but `rules` (what
//! Bedrock accepts) and `vocab`.
//!
//! Where each behaviour lives:
//! - the wire: `accept` (the accept loop both ports use), `server` (the routes and the
//!   `/_local` ones), `api_error` (errors as Bedrock sends them), `eventstream` (frames);
//! - a model call: `exchange` (one request's life: checks, quota, fault, wait, answer;
//!   `exchange::streamed_answer`, `exchange::count_tokens`), `known` (which model ids a
//!   region serves), `tier_policy` (service tiers), `quota` (the buckets);
//! - the fake model: `fake_answer` (request to answer, shared with batch jobs),
//!   `converse`, `native` (InvokeModel bodies per family), `attachments`, `tools`,
//!   `structured`, `text` (tokens and the summary), `embed`, `usage`;
//! - state and faults: `shared_state` (counters, quotas, prompt cache behind one lock),
//!   `request_faults` (seeded request faults), `stats` (what `GET /_local/stats` shows);
//! - knowledge bases: `corpus` (the data), `kb_routes` (Retrieve, RetrieveAndGenerate);
//! - Batch Inference: `batch` (jobs; `routes`, `job_rules`, `job`, `objects`,
//!   `job_fates`), `s3_endpoint` (S3 on the second port), `sts` (GetCallerIdentity).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use bedrock_batch::local_server::{LocalServer, ServerConfig};
//! let server = LocalServer::start(ServerConfig { tpm: Some(60_000), ..ServerConfig::default() }).await?;
//! println!("endpoint: {}", server.url());
//! let seen = server.stats();
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod accept;
mod api_error;
mod attachments;
mod batch;
mod converse;
mod corpus;
mod embed;
mod eventstream;
mod exchange;
mod fake_answer;
mod kb_routes;
mod known;
mod native;
mod quota;
mod request_faults;
mod s3_endpoint;
mod server;
mod shared_state;
mod stats;
mod structured;
mod sts;
mod text;
mod tier_policy;
mod tools;
mod usage;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use batch::{BatchFaults, BatchFaultsError};
pub use request_faults::{FaultRates, FaultRatesError};
pub use s3_endpoint::{ACCESS_KEY as S3_ACCESS_KEY, SECRET_KEY as S3_SECRET_KEY};
pub use stats::{AttachmentStats, BatchStats, FaultCounts, ModelStats, Stats, TierStats};

use batch::{Batch, BatchConfig};
use s3_endpoint::S3Endpoint;
use shared_state::Shared;

/// How the local server behaves. The default is an instant, unlimited, faultless server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Tokens per minute per model (input + output x burndown), `None` for no limit.
    pub tpm: Option<u64>,
    /// Requests per minute per model, `None` for no limit.
    pub rpm: Option<u64>,
    /// How many quota tokens one output token burns (some models burn 5).
    pub burndown: f64,
    /// Time before the first output token.
    pub latency: Duration,
    /// Generation speed in output tokens per second; 0 means instant.
    pub tokens_per_sec: f64,
    /// How long a `ModelTimeoutException` takes to arrive.
    pub timeout_delay: Duration,
    /// How long a throttle takes to arrive (a network's round trip; zero on loopback).
    pub throttle_delay: Duration,
    pub faults: FaultRates,
    /// Model ids (`*` wildcards) answered with `AccessDeniedException`.
    pub deny_models: Vec<String>,
    /// Sent as a `Retry-After` header (seconds) with every throttle. Bedrock itself sends
    /// none; this lets tests check that clients honor one.
    pub retry_after: Option<Duration>,
    /// Seed of the fault draws.
    pub seed: u64,
    /// Knowledge bases to serve: id and the directory of .txt and .md files to build it from.
    pub knowledge_bases: Vec<(String, std::path::PathBuf)>,
    /// Port of the S3 endpoint on 127.0.0.1; 0 picks a free one.
    pub s3_port: u16,
    /// Where the S3 endpoint keeps its objects (a bucket a directory); `None`: a temporary
    /// directory removed when the server ends.
    pub s3_dir: Option<std::path::PathBuf>,
    /// Buckets created at start.
    pub s3_buckets: Vec<String>,
    /// The wait between two status changes of a batch job before it runs.
    pub batch_step: Duration,
    /// How many records a second a running batch job answers; 0 answers them at once.
    pub batch_records_per_sec: u64,
    /// A batch job with fewer records fails validation (Bedrock's minimum is 100).
    pub batch_min_records: u64,
    pub batch_faults: BatchFaults,
    /// Batch jobs of one model submitted or running at once; one more is refused with
    /// ServiceQuotaExceededException, as Bedrock's per-model quota does.
    pub batch_max_jobs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            port: 0,
            tpm: None,
            rpm: None,
            burndown: 1.0,
            latency: Duration::ZERO,
            tokens_per_sec: 0.0,
            timeout_delay: Duration::from_secs(2),
            throttle_delay: Duration::ZERO,
            faults: FaultRates::default(),
            deny_models: Vec::new(),
            retry_after: None,
            seed: 0,
            knowledge_bases: Vec::new(),
            s3_port: 0,
            s3_dir: None,
            s3_buckets: Vec::new(),
            batch_step: Duration::from_millis(200),
            batch_records_per_sec: 5000,
            batch_min_records: 100,
            batch_faults: BatchFaults::default(),
            batch_max_jobs: 10,
        }
    }
}

/// Why a [`ServerConfig`] was refused; the message names the flag.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Faults(#[from] FaultRatesError),
    #[error(transparent)]
    BatchFaults(#[from] BatchFaultsError),
    #[error("--burndown must be at least 1, got {0}")]
    Burndown(f64),
    #[error("--tokens-per-sec must be 0 (instant) or more, got {0}")]
    TokensPerSec(f64),
    #[error("--tpm and --rpm must be at least 1 (omit them for no limit)")]
    ZeroQuota,
}

impl ServerConfig {
    /// Checks the settings make sense; the message names the flag.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.faults.validate()?;
        self.batch_faults.validate()?;
        if !(self.burndown.is_finite() && self.burndown >= 1.0) {
            return Err(ConfigError::Burndown(self.burndown));
        }
        if !(self.tokens_per_sec.is_finite() && self.tokens_per_sec >= 0.0) {
            return Err(ConfigError::TokensPerSec(self.tokens_per_sec));
        }
        if self.tpm == Some(0) || self.rpm == Some(0) {
            return Err(ConfigError::ZeroQuota);
        }
        Ok(())
    }
}

/// A running local server. Dropping it without [`LocalServer::shutdown`] stops accepting
/// when the runtime ends.
pub struct LocalServer {
    addr: SocketAddr,
    s3: S3Endpoint,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl LocalServer {
    /// Binds 127.0.0.1:`config.port` (Bedrock) and 127.0.0.1:`config.s3_port` (S3) and
    /// starts serving in the background.
    pub async fn start(config: ServerConfig) -> std::io::Result<LocalServer> {
        config
            .validate()
            .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidInput, err))?;
        let knowledge_bases = corpus::load_all(&config.knowledge_bases)
            .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidInput, err))?;
        let s3 =
            S3Endpoint::start(config.s3_port, config.s3_dir.as_deref(), &config.s3_buckets).await?;
        let listener = TcpListener::bind(("127.0.0.1", config.port)).await?;
        let addr = listener.local_addr()?;
        let batch = Batch::new(BatchConfig {
            step: config.batch_step,
            records_per_sec: config.batch_records_per_sec,
            min_records: config.batch_min_records,
            faults: config.batch_faults,
            max_jobs_per_model: config.batch_max_jobs,
            seed: config.seed,
            s3_url: s3.url(),
        });
        let shared = Arc::new(Shared::new(config, knowledge_bases, batch));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(server::serve(listener, shared.clone(), stopped));
        Ok(LocalServer {
            addr,
            s3,
            shared,
            stop,
            task,
        })
    }

    /// The endpoint URL to give a client, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The S3 endpoint URL to give a client (path-style addressing), e.g.
    /// `http://127.0.0.1:41235`. It checks signatures made with [`S3_ACCESS_KEY`] /
    /// [`S3_SECRET_KEY`] and serves requests signed with any other key unchecked.
    pub fn s3_url(&self) -> String {
        self.s3.url()
    }

    /// What the server saw so far.
    /// Forgets the client request tokens of Batch Inference jobs (AWS keeps them for a
    /// while only): for tests of a create repeated long after.
    pub fn forget_batch_tokens(&self) {
        self.shared.batch.forget_tokens();
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Changes the quotas while running (`None`: no limit); the buckets keep their levels.
    pub fn set_quota(&self, tpm: Option<u64>, rpm: Option<u64>) {
        self.shared.set_quota(tpm, rpm)
    }

    /// Clears counters, quotas, fault history and the prompt cache.
    pub fn reset(&self) {
        self.shared.reset()
    }

    /// Stops accepting, closes open connections, stops running batch jobs and waits for the
    /// accept loops to end; a temporary S3 directory is removed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.shared.batch.abort_all();
        self.s3.shutdown().await;
    }
}

/// A request id shaped like Bedrock's (a UUID).
pub(crate) fn request_id() -> String {
    let n = fastrand::u128(..);
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
