//! The flags of `run`, grouped in `--help` by heading: the job and the request, pacing
//! and retries, where calls go, the run directory, structured output, media, knowledge
//! bases and Batch Inference.

use std::path::PathBuf;

use clap::Args;

use crate::engine::Via;
use crate::job::JobFormat;
use crate::store::run_dir::RetryFailed;
use crate::vocab::schema::SchemaMode;
use crate::vocab::{Mode, ServiceTier};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The job file: JSONL (one object a line) or CSV (header row first).
    pub job_file: PathBuf,
    /// Model id, inference profile id (us.anthropic...) or ARN. Records may override it.
    /// Not needed with --mode retrieve.
    #[arg(long, short = 'm')]
    pub model: Option<String>,
    /// The run directory: results.jsonl and summary.json land here.
    #[arg(long, short = 'o', value_name = "RUN_DIR")]
    pub out: PathBuf,
    /// converse (default), embed (default for embedding models), invoke, retrieve (a
    /// knowledge base's passages) or rag (a knowledge base's answer with citations).
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Job file format, when the extension does not say (.jsonl, .ndjson, .csv).
    #[arg(long, value_enum)]
    pub format: Option<JobFormat>,

    /// The field (CSV column) holding each record's id, as `ticket_id` (default: `id`, else
    /// `recordId`, else the record's number). Ids must be unique: a repeated one is an error
    /// line.
    #[arg(long, help_heading = "Prompt", value_name = "NAME")]
    pub id_field: Option<String>,
    /// The prompt, with {field} placeholders filled from each record (default "{text}").
    /// Every field it names must be in the records (a CSV's columns): a run that names one no
    /// record has is refused before it starts, naming the fields the file has.
    #[arg(long, help_heading = "Prompt", value_name = "TEXT")]
    pub prompt_template: Option<String>,
    /// Read the prompt template from a file.
    #[arg(long, help_heading = "Prompt", value_name = "FILE")]
    pub prompt_template_file: Option<PathBuf>,
    /// System prompt for every record (a record's `system` field overrides it).
    #[arg(long, help_heading = "Prompt")]
    pub system: Option<String>,
    /// Output ceiling per call (a record's `max_tokens` overrides it).
    #[arg(long, help_heading = "Prompt")]
    pub max_tokens: Option<i32>,
    /// Sampling temperature, 0 to 1 (a record's `temperature` overrides it).
    #[arg(long, help_heading = "Prompt")]
    pub temperature: Option<f32>,
    /// Nucleus sampling, 0 to 1 (a record's `top_p` overrides it).
    #[arg(long, help_heading = "Prompt")]
    pub top_p: Option<f32>,
    /// Stop sequence (repeatable).
    #[arg(long, help_heading = "Prompt", value_name = "TEXT")]
    pub stop: Vec<String>,

    /// The field (JSONL) or column (CSV) that names a record's images: paths relative to
    /// the job file, https:// URLs, data: URIs, or objects {"path"|"url"|"base64",
    /// "format"}; in CSV, paths or URLs separated by ";". Default "images".
    #[arg(long, help_heading = "Images and documents", value_name = "NAME")]
    pub image_column: Option<String>,
    /// Likewise for documents (pdf, csv, doc, docx, xls, xlsx, html, txt, md). Default
    /// "documents".
    #[arg(long, help_heading = "Images and documents", value_name = "NAME")]
    pub document_column: Option<String>,
    /// A document sent with every record, ahead of the record's own (repeatable).
    #[arg(long, help_heading = "Images and documents", value_name = "FILE")]
    pub document: Vec<PathBuf>,
    /// Images and documents named by URL (Bedrock takes bytes only) are fetched by the
    /// runner, at most this many at once, while calls go on. A URL named by many records
    /// is fetched once.
    #[arg(
        long,
        help_heading = "Images and documents",
        default_value_t = 16,
        value_name = "N"
    )]
    pub fetch_concurrency: usize,
    /// Seconds one URL may take (connection, redirects and body); past it, the records
    /// naming it get an error line (`fetch_failed`) and the run goes on.
    #[arg(
        long,
        help_heading = "Images and documents",
        default_value_t = 30.0,
        value_name = "SECONDS"
    )]
    pub fetch_timeout: f64,
    /// Bytes read from one URL at most: a larger body (by its Content-Length, or once
    /// that much has arrived) is a record error. Default: Bedrock's document limit, 4.5 MB
    /// (images are then held to their own 3.75 MB).
    #[arg(
        long,
        help_heading = "Images and documents",
        default_value_t = crate::rules::media::MAX_DOCUMENT_BYTES,
        value_name = "BYTES"
    )]
    pub max_media_bytes: usize,
    /// Put a cache point after the system prompt and the shared --document files, so the
    /// instructions repeated on every record are billed at the cache-read rate.
    #[arg(long, help_heading = "Prompt")]
    pub cache_prompt: bool,
    /// Use ConverseStream instead of Converse (long generations avoid model timeouts);
    /// results are the same, plus the time to first token.
    #[arg(long, help_heading = "Prompt")]
    pub stream: bool,
    /// Structured output: a JSON Schema (an object at the top); ok lines carry the answer,
    /// validated against it, as `data`. An answer that breaks it gets one more try, then is
    /// a `schema_mismatch` line.
    #[arg(long, help_heading = "Prompt", value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// How --schema reaches the model: `native`, Bedrock's structured output
    /// (`outputConfig.textFormat` with the JSON schema); `tool`, one tool with the schema
    /// as its input and a forced tool choice; `auto` (default), native where the model
    /// offers it, else the tool. Batch Inference takes no tools in Converse jobs, so
    /// `--via batch` always uses native (and refuses `tool`).
    #[arg(
        long,
        help_heading = "Prompt",
        value_enum,
        default_value = "auto",
        value_name = "MODE"
    )]
    pub schema_mode: SchemaMode,

    /// Titan Text Embeddings v2 output size: 256, 512 or 1024.
    #[arg(long, help_heading = "Embeddings")]
    pub dimensions: Option<u32>,
    /// Ask Titan v2 for unnormalized vectors (normalized by default).
    #[arg(long, help_heading = "Embeddings")]
    pub no_normalize: bool,
    /// Cohere Embed input_type: search_document, search_query, classification, clustering.
    #[arg(long, help_heading = "Embeddings", default_value = "search_document")]
    pub input_type: String,
    /// Records per Cohere Embed call (at most 96).
    #[arg(long, help_heading = "Embeddings", default_value_t = 96)]
    pub batch_size: usize,

    /// The knowledge base to query, with --mode retrieve or rag (`local` with --local).
    #[arg(long, help_heading = "Knowledge bases", value_name = "KB")]
    pub knowledge_base_id: Option<String>,
    /// Passages retrieved per query (Bedrock's numberOfResults, 1 to 100).
    #[arg(
        long,
        help_heading = "Knowledge bases",
        default_value_t = 5,
        value_name = "N"
    )]
    pub top_k: u32,
    /// With --mode rag, the generation prompt; it must contain $search_results$ (Bedrock's
    /// promptTemplate; default: the knowledge base's own).
    #[arg(long, help_heading = "Knowledge bases", value_name = "TEXT")]
    pub generation_template: Option<String>,
    /// The record field with the source URI (or list of URIs) a good answer retrieves or
    /// cites: result lines get `hit` and `rank`, summary.json `retrieval {k, hit_rate, mrr}`.
    #[arg(long, help_heading = "Knowledge bases", value_name = "NAME")]
    pub expected_field: Option<String>,
    /// With --local: serve a knowledge base built from DIR's .txt and .md files as KB id
    /// `local`.
    #[arg(long, help_heading = "Knowledge bases", value_name = "DIR")]
    pub knowledge_base_dir: Option<PathBuf>,

    /// Copy these input fields into each result line, under "fields" (comma-separated,
    /// repeatable), so results join back to the input.
    #[arg(long, help_heading = "Output", value_name = "A,B")]
    pub keep_fields: Vec<String>,
    /// No progress on stderr.
    #[arg(long, short = 'q', help_heading = "Output")]
    pub quiet: bool,
    /// Print summary.json to stdout at the end.
    #[arg(long, help_heading = "Output")]
    pub json: bool,

    /// Write the run's events to FILE as JSON Lines (`-`: stdout): run_started, progress
    /// every --events-every seconds (records, tokens, cost, calls, throttles, in flight,
    /// learned rate per region), quota changes, batch job states, stalls, and run_ended,
    /// whose totals are summary.json's. Schema: docs/events.md (schema_version 1). Every
    /// run also keeps its events in RUN_DIR/events.jsonl, which `report --format html` draws.
    #[arg(long, help_heading = "Watching", value_name = "FILE|-")]
    pub events: Option<String>,
    /// Seconds between plain progress lines on stderr when it is not a terminal (kubectl
    /// logs, a file, a pipe); a terminal gets a progress bar instead.
    #[arg(
        long,
        help_heading = "Watching",
        default_value_t = 10.0,
        value_name = "SECONDS"
    )]
    pub progress_every: f64,
    /// Seconds between progress events in --events.
    #[arg(
        long,
        help_heading = "Watching",
        default_value_t = 10.0,
        value_name = "SECONDS"
    )]
    pub events_every: f64,
    /// Serve the run's metrics for Prometheus while it goes: GET http://HOST:PORT/metrics
    /// answers OpenMetrics text (records by model and outcome, tokens, cost, calls,
    /// attempts and throttles by region, retries, errors, calls in flight, concurrency
    /// limits, learned quotas, Batch Inference jobs, call latency), every name starting
    /// `bedrock_batch_`, labeled with engine and shard. Counters count what this process
    /// did (a resumed run starts them at 0; summary.json counts the whole run). HOST is an
    /// IP address:
    /// `--metrics-addr 0.0.0.0:9464` in a container, 127.0.0.1:9464 for this machine only,
    /// port 0 for any free port (stderr says which). A port in use is refused before
    /// anything is sent.
    #[arg(
        long,
        help_heading = "Watching",
        value_name = "HOST:PORT",
        value_parser = parse_metrics_addr
    )]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// Calls in flight at the start. The limit then adapts: it doubles each round trip
    /// until the first throttle, then grows by one a round trip while it is reached, and is
    /// cut when the service runs short of capacity (503, model not ready, timeouts).
    /// Throttles slow the pace instead (see --tpm). [default: 16, within the bounds below]
    #[arg(long, short = 'c', help_heading = "Calls")]
    pub concurrency: Option<usize>,
    /// The adaptive limit never goes below this.
    #[arg(long, help_heading = "Calls", default_value_t = 1)]
    pub min_concurrency: usize,
    /// The adaptive limit never goes above this (set it to --concurrency for a fixed pool).
    #[arg(long, help_heading = "Calls", default_value_t = 1024)]
    pub max_concurrency: usize,
    /// Your tokens-per-minute quota, when you know it. Every attempt is paced, reserving
    /// input + max tokens as Bedrock does; without this the pace is learned from the first
    /// throttle on (what the quota admitted until then), and refined as the run goes.
    /// With --shard I/N each shard starts from 1/N of it (the shards share the quota).
    #[arg(long, help_heading = "Calls", value_name = "N")]
    pub tpm: Option<u64>,
    /// Your requests-per-minute quota, when you know it (embedding models are often
    /// limited by requests); learned from throttles otherwise.
    #[arg(long, help_heading = "Calls", value_name = "N")]
    pub rpm: Option<u64>,
    /// Attempts per call before a retryable error (5xx, timeout, broken connection...)
    /// becomes the record's outcome. Throttled attempts do not count: a throttle slows the
    /// whole pool and never fails a record.
    #[arg(long, help_heading = "Calls", default_value_t = 8)]
    pub max_attempts: u32,
    /// Stop the run (resumable, exit 3) when nothing at all succeeded for this long while
    /// every attempt was throttled: the quota is gone or far too small for one call.
    #[arg(
        long,
        help_heading = "Calls",
        default_value_t = 600.0,
        value_name = "SECONDS"
    )]
    pub stall_timeout: f64,
    /// Seconds one attempt may take.
    #[arg(
        long,
        help_heading = "Calls",
        default_value_t = 120.0,
        value_name = "SECONDS"
    )]
    pub timeout: f64,
    /// Seconds to wait for a connection to the endpoint.
    #[arg(
        long,
        help_heading = "Calls",
        default_value_t = 10.0,
        value_name = "SECONDS"
    )]
    pub connect_timeout: f64,
    /// Run one part of the job file on this machine: the records whose number minus one is
    /// I modulo N (0-based I). Each shard is its own run directory; `bedrock-batch merge`
    /// joins them. Example: --shard 0/4 on the first of four machines.
    #[arg(long, help_heading = "Calls", value_name = "I/N")]
    pub shard: Option<String>,
    /// Run shard JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) or AWS_BATCH_JOB_ARRAY_INDEX
    /// (an AWS Batch array job) of N. Inside an AWS Batch array job the shard is taken from
    /// AWS_BATCH_JOB_ARRAY_INDEX and AWS_BATCH_JOB_ARRAY_SIZE even without this flag.
    #[arg(long, help_heading = "Calls", value_name = "N")]
    pub shards: Option<u64>,
    /// Run only the first N records.
    #[arg(long, help_heading = "Calls")]
    pub limit: Option<u64>,
    /// Validate every record and estimate input tokens without calling anything.
    #[arg(long, help_heading = "Calls")]
    pub dry_run: bool,
    /// With --dry-run: ask Bedrock's CountTokens API for each record's exact input tokens
    /// (free, no model call), where the model offers it; the estimate elsewhere, marked
    /// as such. Needs the same access as a run (credentials, or --local).
    #[arg(long, help_heading = "Calls", requires = "dry_run")]
    pub count_tokens: bool,

    /// Start over: the earlier results and state in RUN_DIR are moved aside to
    /// RUN_DIR/previous-<time>/ (not deleted).
    #[arg(long, help_heading = "Resume")]
    pub fresh: bool,
    /// Run again the records whose outcome was a retryable error (throttled, timed out,
    /// 5xx...); with =all, every failed record. Their old lines are replaced.
    #[arg(long, help_heading = "Resume", value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "retryable", value_name = "WHICH")]
    pub retry_failed: Option<RetryFailed>,
    /// Seconds Ctrl-C waits for calls in flight before saving state and exiting.
    #[arg(
        long,
        help_heading = "Resume",
        default_value_t = 30.0,
        value_name = "SECONDS"
    )]
    pub grace: f64,
    /// Seconds between checkpoints: a crash re-sends at most the calls in flight plus one
    /// interval of work.
    #[arg(
        long,
        help_heading = "Resume",
        default_value_t = 1.0,
        value_name = "SECONDS"
    )]
    pub checkpoint_secs: f64,

    /// Prices (USD per million tokens) that extend or override the built-in table: our
    /// TOML or JSON file of [models."MODEL_ID"] tables (input, output and optionally
    /// cache_read, cache_write, cache_write_1h, batch_input, batch_output, priority_input,
    /// priority_output, flex_input, flex_output, regional_premium, geography_premium,
    /// long_context, source, date), LiteLLM's model_prices_and_context_window.json (its
    /// Bedrock entries) or genai-prices' data.json (its AWS Bedrock models). Repeat it:
    /// later files win field by field, so a file of ours can correct one number of a
    /// LiteLLM file. See what a run will charge with `bedrock-batch prices MODEL --prices FILE`.
    #[arg(long, help_heading = "Cost", value_name = "FILE")]
    pub prices: Vec<PathBuf>,
    /// Bedrock's service tier for on-demand calls: `flex` is discounted and slower (and
    /// shed first when capacity is short): for work that can wait, without Batch
    /// Inference's bucket, role and hours; `priority` costs more and answers faster;
    /// `default` is the standard tier. A record's `service_tier` field overrides it. Lines
    /// carry the tier that answered, and cost is at that tier's price. Not with --via batch.
    #[arg(long, help_heading = "Cost", value_enum, value_name = "TIER")]
    pub service_tier: Option<ServiceTier>,
    /// Stop taking records before this invocation's spend could pass X dollars (each call's
    /// worst case is reserved before it is sent); state is saved, exit 4, rerun to continue.
    #[arg(long, help_heading = "Cost", value_name = "X")]
    pub budget_usd: Option<f64>,

    /// Use the built-in local Bedrock server (no AWS account needed).
    #[arg(long, help_heading = "Connection")]
    pub local: bool,
    /// Any Bedrock Runtime-compatible endpoint. Repeat it to spread the records over several
    /// endpoints, each with its own concurrency and learned pace.
    #[arg(long, help_heading = "Connection", value_name = "URL")]
    pub endpoint_url: Vec<String>,
    /// AWS region (default: the standard chain, AWS_REGION, the profile). Several, comma
    /// separated (--region us-east-1,us-west-2), use each region's quota: every region gets
    /// its own client, concurrency and learned pace, and each record goes to whichever has
    /// room; a region where the model is denied or missing drops out with a warning.
    #[arg(long, help_heading = "Connection", value_delimiter = ',')]
    pub region: Vec<String>,
    /// AWS profile from ~/.aws/config.
    #[arg(long, help_heading = "Connection")]
    pub profile: Option<String>,
    /// S3 endpoint for --via batch and s3:// media (default: AWS_ENDPOINT_URL_S3, else AWS).
    /// Any custom S3 endpoint is addressed path-style. --local serves its own.
    #[arg(long, help_heading = "Connection", value_name = "URL")]
    pub s3_endpoint_url: Option<String>,

    /// How records reach Bedrock: `on-demand` calls (default); `batch`, Bedrock Batch
    /// Inference jobs (half the price, answers within hours, at least 100 records a job);
    /// `auto`, batch when at least 100 records are left to send, else on-demand. A batch
    /// run resumes like any other: rerun the same command to poll and collect its jobs.
    /// Given twice, the last one counts (append `--retry-failed --via on-demand` to the
    /// batch command to finish its leftovers now).
    #[arg(
        long,
        help_heading = "Batch Inference",
        value_enum,
        default_value = "on-demand",
        overrides_with = "via"
    )]
    pub via: Via,
    /// Where batch input and output go: s3://BUCKET/PREFIX (the run adds RUN_ID/input/ and
    /// RUN_ID/output/ under it). With --local, the built-in S3's bucket `bedrock-batch-local`.
    #[arg(long, help_heading = "Batch Inference", value_name = "S3_URI")]
    pub s3: Option<String>,
    /// The IAM service role Bedrock assumes to read the input and write the output
    /// (arn:aws:iam::ACCOUNT:role/NAME; it must trust bedrock.amazonaws.com).
    #[arg(long, help_heading = "Batch Inference", value_name = "ARN")]
    pub role_arn: Option<String>,
    // The three below have no clap default: an on-demand run names the ones it was given
    // when it says it ignores them.
    /// Records per job, 100 to 50,000 (Bedrock's limits; default 50,000); the last job is
    /// rebalanced so none falls below 100.
    #[arg(long, help_heading = "Batch Inference", value_name = "N")]
    pub records_per_job: Option<u64>,
    /// Seconds between two looks at the jobs' status (default 60).
    #[arg(long, help_heading = "Batch Inference", value_name = "S")]
    pub poll_secs: Option<f64>,
    /// Hours a job may run before it expires (24 to 168; default 24); records it did not
    /// answer become `batch_incomplete` lines that --retry-failed sends again.
    #[arg(long, help_heading = "Batch Inference", value_name = "H")]
    pub batch_timeout_hours: Option<i32>,
}

/// `--metrics-addr`: an IP address and a port, bound exactly as given.
fn parse_metrics_addr(text: &str) -> Result<std::net::SocketAddr, String> {
    text.parse().map_err(|_| {
        format!(
            "expected IP:PORT (such as 0.0.0.0:9464, 127.0.0.1:9464 or [::1]:9464; a host name like localhost is not resolved), got {text:?}"
        )
    })
}
