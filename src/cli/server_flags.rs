//! The flags of `local-server`: quotas and latency, seeded faults, knowledge bases, and
//! the S3 endpoint and Batch Inference jobs it simulates.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct LocalServerArgs {
    /// Port on 127.0.0.1 (0 picks a free one; the URL is printed).
    #[arg(long, default_value_t = 8787)]
    pub port: u16,
    /// Tokens per minute per model: input tokens + maxTokens x burndown are reserved when a
    /// call starts, the unused part refunded when it ends (no limit when omitted).
    #[arg(long, value_name = "N")]
    pub tpm: Option<u64>,
    /// Requests per minute per model (no limit when omitted).
    #[arg(long, value_name = "N")]
    pub rpm: Option<u64>,
    /// How long a throttle takes to come back, in milliseconds: 0 answers at once, as on
    /// loopback; real networks take tens. (Quotas can also change while the server runs:
    /// POST /_local/quota with {"tpm": N, "rpm": N}, null for no limit.)
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub throttle_delay_ms: u64,
    /// Quota tokens burned per output token (some models burn 5).
    #[arg(long, default_value_t = 1.0, value_name = "X")]
    pub burndown: f64,
    /// Time to first token, in milliseconds.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub latency_ms: u64,
    /// Generation speed in output tokens per second (0: instant).
    #[arg(long, default_value_t = 0.0, value_name = "N")]
    pub tokens_per_sec: f64,
    /// Share of calls answered 500 InternalServerException or 503 ServiceUnavailableException.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub fail_rate: f64,
    /// Share of calls answered 408 ModelTimeoutException after --timeout-delay-ms.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub timeout_rate: f64,
    /// How long a ModelTimeoutException takes to arrive.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub timeout_delay_ms: u64,
    /// Share of calls whose connection is closed without a response.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub reset_rate: f64,
    /// Share of calls answered 200 with a body that is not valid JSON.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub garbage_rate: f64,
    /// Share of calls answered 424 ModelErrorException (the model failed on the input).
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub model_error_rate: f64,
    /// Share of streams cut halfway by a throttlingException frame.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub stream_throttle_rate: f64,
    /// Share of forced tool answers and structured-output (`outputConfig`) answers that
    /// break their schema.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub schema_violation_rate: f64,
    /// Answer AccessDeniedException for model ids matching PATTERN (`*` wildcards; matched
    /// against the id as sent and its base model). Repeatable.
    #[arg(long, value_name = "PATTERN")]
    pub deny_model: Vec<String>,
    /// Send a Retry-After header (seconds) with every throttle. Bedrock sends none; this
    /// checks that a client honors one.
    #[arg(long, value_name = "MS")]
    pub retry_after_ms: Option<u64>,
    /// Seed of the fault draws: the same seed gives the same faults to the same requests.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Serve a knowledge base with id ID built from DIR's .txt and .md files (Retrieve and
    /// RetrieveAndGenerate). Repeatable.
    #[arg(long, value_name = "ID=DIR", value_parser = parse_knowledge_base)]
    pub knowledge_base: Vec<(String, PathBuf)>,
    /// Port of the S3 endpoint on 127.0.0.1 (0 picks a free one; the URL is printed).
    /// Path-style addressing; Batch Inference jobs read and write through it.
    #[arg(long, default_value_t = 0, help_heading = "S3 and Batch Inference")]
    pub s3_port: u16,
    /// Directory holding the S3 objects, one subdirectory a bucket (default: a temporary
    /// directory removed at exit).
    #[arg(long, value_name = "DIR", help_heading = "S3 and Batch Inference")]
    pub s3_dir: Option<PathBuf>,
    /// Create this bucket at start. Repeatable.
    #[arg(long, value_name = "NAME", help_heading = "S3 and Batch Inference")]
    pub s3_bucket: Vec<String>,
    /// Time between two status changes of a batch job (Submitted, Validating, Scheduled,
    /// InProgress), in milliseconds.
    #[arg(
        long,
        default_value_t = 200,
        value_name = "MS",
        help_heading = "S3 and Batch Inference"
    )]
    pub batch_step_ms: u64,
    /// Records a second a running batch job answers (0: all at once).
    #[arg(
        long,
        default_value_t = 5000,
        value_name = "N",
        help_heading = "S3 and Batch Inference"
    )]
    pub batch_records_per_sec: u64,
    /// Fewest records a batch job accepts (Bedrock's minimum is 100).
    #[arg(
        long,
        default_value_t = 100,
        value_name = "N",
        help_heading = "S3 and Batch Inference"
    )]
    pub batch_min_records: u64,
    /// Batch jobs of one model that may be submitted or running at once; a create past it
    /// is refused with ServiceQuotaExceededException, like Bedrock's per-model quota.
    #[arg(
        long,
        default_value_t = 10,
        value_name = "N",
        help_heading = "S3 and Batch Inference"
    )]
    pub batch_max_jobs: u64,
    /// Share of batch jobs that end Failed, with no output.
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "P",
        help_heading = "S3 and Batch Inference"
    )]
    pub batch_fail_rate: f64,
    /// Share of batch jobs that end PartiallyCompleted, half of their records answered.
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "P",
        help_heading = "S3 and Batch Inference"
    )]
    pub batch_partial_rate: f64,
    /// Share of batch jobs that end Expired, half of their records answered.
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "P",
        help_heading = "S3 and Batch Inference"
    )]
    pub batch_expire_rate: f64,
    /// Share of batch records answered with a service error (errorCode 500 or 429).
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "P",
        help_heading = "S3 and Batch Inference"
    )]
    pub batch_record_error_rate: f64,
    /// Milliseconds CreateModelInvocationJob waits after making the job before it answers
    /// (a caller killed in that window has a job it never heard of).
    #[arg(
        long,
        default_value_t = 0,
        value_name = "MS",
        help_heading = "S3 and Batch Inference"
    )]
    pub batch_create_delay_ms: u64,
    /// Refuse StopModelInvocationJob with AccessDeniedException (a caller allowed to create
    /// jobs but not to stop them).
    #[arg(long, help_heading = "S3 and Batch Inference")]
    pub batch_deny_stop: bool,
}

/// `ID=DIR` of `--knowledge-base`.
fn parse_knowledge_base(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((id, dir)) if !id.trim().is_empty() && !dir.is_empty() => {
            Ok((id.trim().to_string(), PathBuf::from(dir)))
        }
        _ => Err(format!("expected ID=DIR, got {text:?}")),
    }
}
