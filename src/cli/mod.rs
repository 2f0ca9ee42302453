//! The command line, as clap derive structs: raw flags only. Nothing here opens a file or
//! a socket; `config` turns the flags of `run` and `local-server` into working settings,
//! and each command of `commands` reads its own. The subcommands and their help are here;
//! the flags of `run` in [`run_flags`], of `local-server` in [`server_flags`], of the others in
//! [`command_flags`].

mod command_flags;
mod run_flags;
mod server_flags;

use clap::{Parser, Subcommand};

pub use command_flags::{CancelArgs, ExportArgs, MergeArgs, PricesArgs, ReportArgs, StatusArgs};
pub use run_flags::RunArgs;
pub use server_flags::LocalServerArgs;

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
    /// or run): for nightly cost reports. Or, with --format html, one page comparing the
    /// runs side by side, with charts of each run over time: what happened last night.
    ///
    /// Examples:
    ///   bedrock-batch report runs/* --by day --since 2026-11-01 --format markdown
    ///   bedrock-batch report runs/night-2 runs/night-1 --format html --out report.html
    #[command(verbatim_doc_comment)]
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
