//! The flags of the commands other than `run` and `local-server`: status, export, report,
//! prices, merge and cancel.

use std::path::PathBuf;

use clap::Args;

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
    pub format: crate::report::text_table::Format,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run directories (each holds a summary.json; with --format html also its events.jsonl
    /// and results.jsonl). With html, one column each, in the order given.
    #[arg(required = true)]
    pub run_dirs: Vec<PathBuf>,
    /// Rows by model (default), by day and model, by run and model, or by service tier
    /// (default, priority, flex, batch) and model: records, tokens and cost. For the table
    /// formats and json; the html page shows cost by model, tier, route and day at once.
    #[arg(long, value_enum, default_value = "model")]
    pub by: crate::report::runs::GroupBy,
    /// table, markdown, csv or json: the rows --by asks for. html: one self-contained page
    /// comparing the runs side by side (numbers, charts over time from each run's
    /// events.jsonl, latency, cost, errors with example records, Batch Inference jobs); it
    /// fetches nothing, so it opens offline and can be mailed or archived.
    #[arg(long, value_enum, default_value = "table")]
    pub format: crate::report::runs::Format,
    /// Only runs last written on or after this day (YYYY-MM-DD, UTC); html leaves the
    /// others out of the page.
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Write the report to FILE instead of stdout. `--format html` without --out writes
    /// the page to stdout only when stdout is not a terminal (`> report.html`).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
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
