//! What the stages report for summary.json beyond the results: media files read, the
//! concurrency limiter's story, each model's learned quota and `--max-tokens` advice, and
//! the run directory's file names and clock.

use serde::{Deserialize, Serialize};

/// Image and document files read by this run, and uses served from the cache; likewise
/// for media named by URL (fetched, and uses served by the cache or a fetch under way).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FilesRead {
    pub read: u64,
    pub reused: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub urls_fetched: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub urls_reused: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The limiter's story for summary.json.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LimiterReport {
    pub initial: usize,
    pub min: usize,
    pub max: usize,
    pub final_limit: usize,
    pub peak: usize,
    pub decreases: u64,
    /// `[seconds since start, limit]` at each change (thinned on long runs).
    pub history: Vec<(f64, usize)>,
}

/// What the quota of a model was learned to be, for summary.json.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LearnedQuota {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<f64>,
    /// How many times a rate was set from a throttle.
    pub updates: u64,
}

/// A smaller `--max-tokens` for a model whose calls held the token quota for output their
/// answers never used, for summary.json.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MaxTokensAdvice {
    /// Output tokens each call reserved (the largest ceiling when records differ).
    pub reserved_output: u64,
    /// The longest answer seen, in output tokens.
    pub largest_output: u64,
    /// Input tokens per call, on average.
    pub mean_input: f64,
    /// A ceiling above every answer seen.
    pub suggested_max_tokens: u64,
    /// How many times as many calls the same quota holds at once with the suggestion:
    /// (mean input + reserved output) / (mean input + suggested).
    pub admits_times: f64,
    /// Answered calls the advice rests on.
    pub calls: u64,
}

/// One Batch Inference job of a run, as summary.json, `status` and the progress line show it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchJobReport {
    /// The input file's name in S3 (`part-00001`).
    pub part: String,
    pub model: String,
    /// Empty until the job is created.
    #[serde(default)]
    pub job_arn: String,
    /// Bedrock's status (`InProgress`, `Completed`...), or `Prepared` before the job exists.
    pub status: String,
    pub records: u64,
    /// Records the service reports processed so far, while the job runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed: Option<u64>,
    /// Lines collected: answered, and failed (error lines and records left unanswered).
    pub ok: u64,
    pub failed: u64,
}

/// The Batch Inference side of a run, for summary.json: its jobs, and where this run's
/// time went (seconds): writing the input files, uploading them and creating the jobs,
/// waiting for the jobs, reading their output into results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchReport {
    pub jobs: Vec<BatchJobReport>,
    #[serde(default)]
    pub prepare_s: f64,
    #[serde(default)]
    pub submit_s: f64,
    #[serde(default)]
    pub wait_s: f64,
    #[serde(default)]
    pub collect_s: f64,
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl FilesRead {
    pub fn is_empty(&self) -> bool {
        self.read == 0 && self.reused == 0 && self.urls_fetched == 0 && self.urls_reused == 0
    }
}

pub const RESULTS_FILE: &str = "results.jsonl";

pub const SUMMARY_FILE: &str = "summary.json";

/// Every invocation's events (the timeline `report --format html` draws), in RUN_DIR.
pub const EVENTS_FILE: &str = "events.jsonl";

/// The `--schema` of a run, kept in RUN_DIR for `export`.
pub const SCHEMA_FILE: &str = "schema.json";

/// A Batch Inference run's local copies of its parts, in RUN_DIR.
pub const BATCH_DIR: &str = "batch";
