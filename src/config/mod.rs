//! The `run` flags -> a checked [`RunConfig`]: every problem found here is a usage error
//! (exit 2) whose message names the flag. Building it reads the files the flags name (a
//! prompt template file, `--schema`, `--document`s, `--prices` files) and the shard index
//! a scheduler sets in the environment; it sends nothing. The rooms: [`request_settings`] (model,
//! mode, template, schema, tier, documents), [`knowledge_base`], [`lanes`] (regions,
//! endpoints, the shard), [`batch_settings`] (`--via batch`), [`server_settings`] (`local-server`).

pub mod batch_settings;
pub mod knowledge_base;
pub mod lanes;
pub mod request_settings;
pub mod server_settings;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::RunArgs;
use crate::engine::Via;
use crate::fetch::FetchSettings;
use crate::job::JobFormat;
use crate::prices::{PriceTable, PricesError};
use crate::rules::model_id::could_be_bedrock_id;
use crate::store::run_dir::RetryFailed;
use crate::store::state::RunParams;
use crate::vocab::RequestSettings;
use crate::vocab::schema::SchemaError;
use crate::vocab::{Shard, ShardError};

pub use knowledge_base::{KnowledgeBaseSettings, LOCAL_KNOWLEDGE_BASE};
pub use lanes::LaneSpec;
pub use request_settings::mode_flag;
pub use server_settings::server_config;

/// Calls in flight at the start when --concurrency is not given.
const DEFAULT_CONCURRENCY: usize = 16;

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub job_path: PathBuf,
    pub format: JobFormat,
    pub out_dir: PathBuf,
    pub request: RequestSettings,
    pub concurrency: usize,
    pub min_concurrency: usize,
    pub max_concurrency: usize,
    pub tpm: Option<u64>,
    pub rpm: Option<u64>,
    pub max_attempts: u32,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub limit: Option<u64>,
    pub dry_run: bool,
    /// With `dry_run`: input tokens from CountTokens.
    pub count_tokens: bool,
    /// Where calls go: one lane per region or endpoint.
    pub lanes: Vec<LaneSpec>,
    /// The part of the job file this run takes, when the job runs on several machines.
    pub shard: Option<Shard>,
    pub profile: Option<String>,
    pub quiet: bool,
    pub json: bool,
    pub fresh: bool,
    pub retry_failed: Option<RetryFailed>,
    pub grace: Duration,
    pub stall_timeout: Duration,
    /// `--events` and what else watches the run.
    pub watch: crate::watch::WatchSettings,
    pub checkpoint_interval: Duration,
    pub prices: Arc<PriceTable>,
    pub budget_usd: Option<f64>,
    /// With --mode retrieve or rag: the knowledge base and how to query it.
    pub knowledge_base: Option<KnowledgeBaseSettings>,
    /// `--via`: on-demand calls, Batch Inference jobs, or the one that fits.
    pub via: Via,
    /// With `--via batch` or `auto`: where and how the jobs run.
    pub batch: Option<crate::batch::BatchSettings>,
    /// `--s3-endpoint-url`: S3 for batch input and output and for s3:// media.
    pub s3_endpoint_url: Option<String>,
    /// How media named by URL are fetched.
    pub fetch: FetchSettings,
}

/// Why the flags of a run cannot work. Its text is what the user reads, naming the flag.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A flag's value, or flags that cannot go together: the message names them.
    #[error("{0}")]
    Flag(String),
    /// A file a flag names that cannot be read.
    #[error("cannot read {flag} {}", path.display())]
    Read {
        flag: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--schema: {0}")]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Prices(#[from] PricesError),
    #[error(transparent)]
    Shard(#[from] ShardError),
}

impl From<String> for ConfigError {
    fn from(message: String) -> ConfigError {
        ConfigError::Flag(message)
    }
}

impl From<&str> for ConfigError {
    fn from(message: &str) -> ConfigError {
        ConfigError::Flag(message.to_string())
    }
}

impl RunConfig {
    /// The parameters that must match for a rerun to resume this run directory.
    pub fn run_params(&self) -> RunParams {
        let r = &self.request;
        let template = &r.template_text;
        RunParams {
            model: r.model.clone(),
            mode: format!("{:?}", r.mode).to_lowercase(),
            format: format!("{:?}", self.format).to_lowercase(),
            template: template.to_string(),
            system: r.system.clone(),
            max_tokens: r.max_tokens,
            temperature: r.temperature,
            top_p: r.top_p,
            stop: r.stop.clone(),
            dimensions: r.dimensions,
            normalize: r.normalize,
            input_type: r.input_type.clone(),
            shared_documents: r.shared_document_paths.clone(),
            shard: self.shard,
            schema: r.schema.as_ref().map(|s| s.fingerprint()),
            knowledge_base: self.knowledge_base.as_ref().map(|kb| kb.id.clone()),
            top_k: self.knowledge_base.as_ref().map(|kb| kb.top_k),
            generation_template: self
                .knowledge_base
                .as_ref()
                .and_then(|kb| kb.generation_template.clone()),
            id_field: r.id_field.clone(),
        }
    }

    pub fn from_args(args: &RunArgs) -> Result<RunConfig, ConfigError> {
        let format = match args.format {
            Some(format) => format,
            None => JobFormat::from_path(&args.job_file).ok_or_else(|| {
                format!(
                    "cannot tell the format of {} from its extension: name it .jsonl, .csv or .parquet, or pass --format jsonl|csv|parquet",
                    args.job_file.display()
                )
            })?,
        };
        let (model, mode, knowledge_base) = request_settings::model_and_mode(args)?;
        let request = request_settings::settings(args, model, mode)?;
        if args.fetch_concurrency == 0 {
            return Err("--fetch-concurrency must be at least 1".into());
        }
        if !(args.fetch_timeout.is_finite() && args.fetch_timeout > 0.0) {
            return Err(format!(
                "--fetch-timeout must be a positive number of seconds, got {}",
                args.fetch_timeout
            )
            .into());
        }
        for (flag, value) in [
            ("--grace", args.grace),
            ("--stall-timeout", args.stall_timeout),
            ("--checkpoint-secs", args.checkpoint_secs),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(format!("{flag} must be a number of seconds, got {value}").into());
            }
        }
        if args.concurrency == Some(0) || args.min_concurrency == 0 {
            return Err("--concurrency and --min-concurrency must be at least 1".into());
        }
        if args.min_concurrency > args.max_concurrency {
            return Err(format!(
                "--min-concurrency ({}) is above --max-concurrency ({})",
                args.min_concurrency, args.max_concurrency
            )
            .into());
        }
        let concurrency = match args.concurrency {
            Some(c) if c < args.min_concurrency || c > args.max_concurrency => {
                return Err(format!(
                    "--concurrency ({c}) must be between --min-concurrency ({}) and --max-concurrency ({})",
                    args.min_concurrency, args.max_concurrency
                ).into());
            }
            Some(c) => c,
            None => DEFAULT_CONCURRENCY.clamp(args.min_concurrency, args.max_concurrency),
        };
        if args.tpm == Some(0) || args.rpm == Some(0) {
            return Err(
                "--tpm and --rpm must be at least 1 (omit them when the quota is unknown)".into(),
            );
        }
        if args.connect_timeout <= 0.0 || !args.connect_timeout.is_finite() {
            return Err(format!(
                "--connect-timeout must be a positive number of seconds, got {}",
                args.connect_timeout
            )
            .into());
        }
        if args.max_attempts == 0 {
            return Err("--max-attempts must be at least 1".into());
        }
        if args.timeout <= 0.0 || !args.timeout.is_finite() {
            return Err(format!(
                "--timeout must be a positive number of seconds, got {}",
                args.timeout
            )
            .into());
        }
        let watch = watch_settings(args)?;
        let batch = batch_settings::settings(args, mode)?;
        let lanes = lanes::lanes(args)?;
        let shard = lanes::shard(args, |name| std::env::var(name).ok())?;
        let prices = PriceTable::with_files(&args.prices)?;
        if let Some(model) = &args.model
            && !could_be_bedrock_id(model)
        {
            return Err(request_settings::not_a_model_id(model, &prices).into());
        }
        if let Some(budget) = args.budget_usd {
            if !(budget.is_finite() && budget > 0.0) {
                return Err(format!(
                    "--budget-usd must be a positive number of dollars, got {budget}"
                )
                .into());
            }
            if knowledge_base.is_some() {
                return Err(
                    "--budget-usd cannot apply to knowledge-base modes: the service reports no token usage to price".into(),
                );
            }
            if prices.price(&request.model).is_none() {
                return Err(format!(
                    "--budget-usd needs the price of {}, which is not in the built-in table: give it with --prices FILE",
                    request.model
                )
                .into());
            }
        }
        Ok(RunConfig {
            job_path: args.job_file.clone(),
            format,
            out_dir: args.out.clone(),
            request,
            concurrency,
            min_concurrency: args.min_concurrency,
            max_concurrency: args.max_concurrency,
            tpm: args.tpm,
            rpm: args.rpm,
            max_attempts: args.max_attempts,
            timeout: Duration::from_secs_f64(args.timeout),
            connect_timeout: Duration::from_secs_f64(args.connect_timeout),
            limit: args.limit,
            dry_run: args.dry_run,
            count_tokens: args.count_tokens,
            lanes,
            shard,
            profile: args.profile.clone(),
            quiet: args.quiet,
            json: args.json,
            fresh: args.fresh,
            retry_failed: args.retry_failed,
            grace: Duration::from_secs_f64(args.grace),
            stall_timeout: Duration::from_secs_f64(args.stall_timeout),
            watch,
            checkpoint_interval: Duration::from_secs_f64(args.checkpoint_secs.max(0.05)),
            prices: Arc::new(prices),
            budget_usd: args.budget_usd,
            knowledge_base,
            via: args.via,
            batch,
            s3_endpoint_url: args.s3_endpoint_url.clone(),
            fetch: FetchSettings {
                concurrency: args.fetch_concurrency,
                max_bytes: args.max_media_bytes,
                timeout: Duration::from_secs_f64(args.fetch_timeout),
                connect_timeout: Duration::from_secs_f64(
                    args.connect_timeout.min(args.fetch_timeout),
                ),
                ..FetchSettings::default()
            },
        })
    }
}

/// `--events`, `--events-every` and `--metrics-addr`.
fn watch_settings(args: &RunArgs) -> Result<crate::watch::WatchSettings, ConfigError> {
    use crate::watch::sink::Target;
    if !(args.events_every.is_finite() && args.events_every >= 1.0) {
        return Err(format!(
            "--events-every must be a number of seconds of at least 1, got {}",
            args.events_every
        )
        .into());
    }
    let events = args.events.as_deref().map(Target::parse);
    if let Some(Target::File(path)) = &events
        && lexical_absolute(path).starts_with(lexical_absolute(&args.out))
    {
        return Err(format!(
                "--events {}: inside the run directory, where every run already keeps its events (in {}); give a path outside {}",
                path.display(),
                args.out.join(crate::vocab::EVENTS_FILE).display(),
                args.out.display()
            )
            .into());
    }
    if events == Some(Target::Stdout) && args.json {
        return Err(
            "--events - and --json both write to stdout: send the events to a file (--events FILE), or read summary.json from the run directory".into(),
        );
    }
    if !(args.progress_every.is_finite() && args.progress_every >= 1.0) {
        return Err(format!(
            "--progress-every must be a number of seconds of at least 1, got {}",
            args.progress_every
        )
        .into());
    }
    Ok(crate::watch::WatchSettings {
        events,
        events_every: args.events_every,
        progress_every: Duration::from_secs_f64(args.progress_every),
        stall_timeout_s: args.stall_timeout,
        quiet: args.quiet,
        metrics_addr: args.metrics_addr,
    })
}

/// `path` made absolute with `.` and `..` taken out, without touching the file system (the
/// run directory may not exist yet).
fn lexical_absolute(path: &std::path::Path) -> PathBuf {
    use std::path::Component;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut clean = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                clean.pop();
            }
            other => clean.push(other),
        }
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::tests::run_args;

    #[test]
    fn events_go_anywhere_but_into_the_run_directory_or_beside_json_on_stdout() {
        let refused = |extra: &[&str]| watch_settings(&run_args(extra)).unwrap_err().to_string();
        assert!(refused(&["--events", "o/events.jsonl"]).contains("inside the run directory"));
        assert!(refused(&["--events", "./o/x/e.jsonl"]).contains("give a path outside o"));
        assert!(refused(&["--events", "-", "--json"]).contains("both write to stdout"));
        assert!(refused(&["--events-every", "0.5"]).contains("at least 1"));
        assert!(refused(&["--progress-every", "0"]).contains("--progress-every"));
        for fine in [
            &["--events", "o/../e.jsonl"][..],
            &["--events", "other/e.jsonl"],
            &["--events", "-"],
        ] {
            assert!(watch_settings(&run_args(fine)).is_ok(), "{fine:?}");
        }
    }
}
