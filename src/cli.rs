//! The command line, as clap derive structs: raw flags only. Nothing here opens a file or
//! a socket; turning flags into working configuration happens where they are used.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::engine::Via;
use crate::job::JobFormat;
use crate::store::run_dir::RetryFailed;
use crate::vocab::schema::SchemaMode;
use crate::vocab::{Mode, ServiceTier};

/// Batch runner for Amazon Bedrock: job files in, results and usage totals out.
#[derive(Debug, Parser)]
#[command(name = "bedrock-batch", version, about, long_about = None)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a job file through Bedrock: one result line per record in RUN_DIR/results.jsonl,
    /// totals in RUN_DIR/summary.json.
    ///
    /// Each JSONL object or CSV row is a record: `id` (or `recordId`; default the record
    /// number), `text` or any fields used by --prompt-template, and optionally `system`,
    /// `messages` (raw Converse messages), `images`, `documents`, `model`, `max_tokens`,
    /// `temperature`, `top_p`.
    /// With --mode invoke, `body` (or Bedrock Batch Inference's `modelInput`) is sent as-is.
    /// A record that cannot be read or sent becomes an error line; the run goes on.
    ///
    /// Examples:
    ///   bedrock-batch run jobs/summarize.jsonl --model anthropic.claude-3-haiku-20240307-v1:0 --out runs/demo --local
    ///   bedrock-batch run tickets.csv --model us.amazon.nova-lite-v1:0 --out runs/tickets \
    ///       --prompt-template $'Classify this ticket: {subject}\n\n{body}' --keep-fields ticket_id
    ///       (bash's $'...' turns \n into a newline; inside "..." it stays a backslash and an n)
    ///   bedrock-batch run docs.jsonl --model amazon.titan-embed-text-v2:0 --dimensions 512 --out runs/vectors
    ///   bedrock-batch run big.jsonl --model anthropic.claude-3-haiku-20240307-v1:0 --out runs/nightly \
    ///       --via batch --s3 s3://my-bucket/bedrock-batch --role-arn arn:aws:iam::123456789012:role/BedrockBatch
    ///
    /// Throttles, timeouts, 5xx answers and broken connections are retried with backoff; the
    /// number of calls in flight adapts to the quota. Access denied, an unknown model or
    /// missing credentials stop the run early (exit 3) with a hint.
    ///
    /// Rerunning the same command on the same RUN_DIR resumes: records already done are not
    /// sent again. Ctrl-C stops taking records, waits for calls in flight (--grace), saves
    /// state and prints the command that resumes.
    ///
    /// Exit codes: 0 all records ok; 1 some records failed (results still complete);
    /// 2 usage, config or input error; 3 aborted on a fatal service error; 4 stopped at
    /// --budget-usd; 130 interrupted.
    #[command(verbatim_doc_comment)]
    Run(Box<RunArgs>),
    /// Serve a Bedrock Runtime-compatible endpoint on 127.0.0.1 for trying bedrock-batch
    /// without an AWS account, for tests and for benchmarks.
    ///
    /// It answers Converse, ConverseStream, InvokeModel and InvokeModelWithResponseStream
    /// with a deterministic fake model (extractive summaries, hashed embeddings), meters
    /// per-model quotas the way Bedrock does and injects seeded faults. Point any AWS SDK at
    /// it with an endpoint URL and any credentials. `GET /_local/stats` shows what it saw;
    /// `POST /_local/reset` clears it. It also serves Batch Inference jobs
    /// (CreateModelInvocationJob and friends) that really run, and an S3 endpoint on a
    /// second port for their input and output.
    ///
    /// Example: bedrock-batch local-server --port 8787 --tpm 60000 --latency-ms 300 --tokens-per-sec 80
    LocalServer(Box<LocalServerArgs>),
    /// Show a run's progress from its RUN_DIR: done, failed and pending records, tokens,
    /// whether a run is active. Calls nothing.
    Status(StatusArgs),
    /// Write a run's results as one table, one row per record in record order.
    ///
    /// Columns: id, record, status, model, output, stop_reason, input_tokens,
    /// output_tokens, cache_read_input_tokens, cache_write_input_tokens, latency_ms,
    /// attempts, error_kind, error_message, then data.<name> for each field of the run's
    /// --schema, embedding, and with --with-input the job file's fields as input.<name>.
    ///
    /// Examples:
    ///   bedrock-batch export runs/tickets --format parquet --out tickets.parquet --with-input
    ///   bedrock-batch export runs/tickets --format csv --out -
    #[command(verbatim_doc_comment)]
    Export(ExportArgs),
    /// One table of requests, tokens and cost across run directories, by model (or by day
    /// or run): for nightly cost reports.
    ///
    /// Example: bedrock-batch report runs/* --by day --since 2026-11-01 --format markdown
    Report(ReportArgs),
    /// What a run will charge: the built-in price table (with --prices FILE applied), or
    /// the entries the given model ids resolve to, one line per pricing variant (on demand,
    /// global or regional, long context, batch), in USD per million tokens, with each
    /// entry's source and date. Exits 1 when a given id has no price.
    ///
    /// Examples:
    ///   bedrock-batch prices
    ///   bedrock-batch prices us.anthropic.claude-sonnet-4-5-20250929-v1:0 amazon.nova-lite-v1:0
    ///   bedrock-batch prices --prices prices.toml --format json
    #[command(verbatim_doc_comment)]
    Prices(PricesArgs),
    /// Join the run directories of a job's shards (`run --shard I/N` on N machines) into one
    /// run directory: one results.jsonl and summary.json, as if one machine had run it all.
    /// Every shard from 0 to N-1 must be given once, finished, of the same job file and
    /// parameters; anything else is refused (exit 2) with the directory named.
    ///
    /// Example: bedrock-batch merge runs/shard-* --out runs/all
    #[command(verbatim_doc_comment)]
    Merge(MergeArgs),
    /// Stop a `--via batch` run's Batch Inference jobs that have not ended
    /// (StopModelInvocationJob), in the region and endpoint the run used. What they answered
    /// before stopping is kept: rerun the run's command to collect it, and --retry-failed
    /// (with --via on-demand to finish now) sends the rest.
    ///
    /// Example: bedrock-batch cancel runs/nightly
    #[command(verbatim_doc_comment)]
    Cancel(CancelArgs),
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The run directory of a `run --via batch`.
    pub run_dir: PathBuf,
    /// The Bedrock endpoint, when it is not the one the run used.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// AWS profile from ~/.aws/config.
    #[arg(long)]
    pub profile: Option<String>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' run directories.
    #[arg(required = true, value_name = "SHARD_DIR")]
    pub shards: Vec<PathBuf>,
    /// The run directory to create.
    #[arg(long, value_name = "RUN_DIR")]
    pub out: PathBuf,
    /// Prices for the merged cost, as `run --prices` takes them.
    #[arg(long, value_name = "FILE")]
    pub prices: Vec<PathBuf>,
    /// Print summary.json to stdout.
    #[arg(long)]
    pub json: bool,
    /// No human summary on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct PricesArgs {
    /// Model ids, inference profile ids or ARNs, as `run --model` takes them (default: the
    /// whole table).
    #[arg(value_name = "MODEL")]
    pub models: Vec<String>,
    /// Prices that extend or override the built-in table, as `run --prices` takes them.
    #[arg(long, value_name = "FILE")]
    pub prices: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: crate::report::table::Format,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run directories (each holds a summary.json).
    #[arg(required = true)]
    pub run_dirs: Vec<PathBuf>,
    /// Rows by model (default), by day and model, by run and model, or by service tier
    /// (default, priority, flex, batch) and model: records, tokens and cost.
    #[arg(long, value_enum, default_value = "model")]
    pub by: crate::report::runs::GroupBy,
    #[arg(long, value_enum, default_value = "table")]
    pub format: crate::report::runs::Format,
    /// Only runs last written on or after this day (YYYY-MM-DD, UTC).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The run directory given to `run --out`.
    pub run_dir: PathBuf,
    /// csv, parquet (typed columns; embeddings as list<float32>) or jsonl (flat objects).
    #[arg(long, value_enum)]
    pub format: crate::export::ExportFormat,
    /// Where to write (default RUN_DIR/export.<format>; `-` is stdout for csv and jsonl).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Add the job file's fields as `input.<name>` columns, joined on the record number.
    #[arg(long)]
    pub with_input: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The run directory given to `run --out`.
    pub run_dir: PathBuf,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

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

#[cfg(test)]
pub(crate) mod tests {
    use super::{Cli, Command, RunArgs};
    use clap::Parser;

    /// `run job.jsonl --model m --out o` and `extra`, parsed as the binary parses them.
    pub fn run_args(extra: &[&str]) -> RunArgs {
        let mut argv = vec![
            "bedrock-batch",
            "run",
            "job.jsonl",
            "--model",
            "m",
            "--out",
            "o",
        ];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Run(args) => *args,
            _ => unreachable!(),
        }
    }
}
