//! Validated, resolved run settings: what `run` flags mean once checked. Building a
//! [`RunConfig`] opens nothing; every problem found here is a usage error (exit 2) whose
//! message names the flag.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::bedrock::Endpoint;
use crate::cli::{LocalServerArgs, RunArgs};
use crate::job::JobFormat;
use crate::job::media::{MediaLoader, check_document_count};
use crate::job::prepare::RequestSettings;
use crate::job::template::Template;
use crate::local_server::{FaultRates, ServerConfig};
use crate::model_id::Family;
use crate::report::prices::PriceTable;
use crate::schema::OutputSchema;
use crate::store::run_dir::RetryFailed;
use crate::store::state::RunParams;
use crate::vocab::Mode;

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
    pub endpoint: Endpoint,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub quiet: bool,
    pub json: bool,
    pub fresh: bool,
    pub retry_failed: Option<RetryFailed>,
    pub grace: Duration,
    pub stall_timeout: Duration,
    pub checkpoint_interval: Duration,
    pub prices: Arc<PriceTable>,
    pub budget_usd: Option<f64>,
}

fn check_unit(flag: &str, value: Option<f32>) -> Result<Option<f32>, String> {
    match value {
        Some(x) if !(0.0..=1.0).contains(&x) => {
            Err(format!("{flag} must be between 0 and 1, got {x}"))
        }
        other => Ok(other),
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
            schema: r.schema.as_ref().map(|s| s.fingerprint()),
        }
    }

    pub fn from_args(args: &RunArgs) -> Result<RunConfig, String> {
        let format = match args.format {
            Some(format) => format,
            None => JobFormat::from_path(&args.job_file).ok_or_else(|| {
                format!(
                    "cannot tell the format of {} from its extension: name it .jsonl, .csv or .parquet, or pass --format jsonl|csv|parquet",
                    args.job_file.display()
                )
            })?,
        };
        let family = Family::of(&args.model);
        let mode = match args.mode {
            Some(mode) => mode,
            None if family.is_some_and(Family::is_embedding) => Mode::Embed,
            None => Mode::Converse,
        };
        if mode == Mode::Embed && !family.is_some_and(Family::is_embedding) {
            return Err(format!(
                "--mode embed needs an embedding model (amazon.titan-embed-text-v1, amazon.titan-embed-text-v2:0, cohere.embed-english-v3, cohere.embed-multilingual-v3); {} is not one",
                args.model
            ));
        }
        if mode == Mode::Converse && family.is_some_and(Family::is_embedding) {
            return Err(format!(
                "{} is an embedding model: use --mode embed (the default for embedding models)",
                args.model
            ));
        }
        let template_text = match (&args.prompt_template, &args.prompt_template_file) {
            (Some(_), Some(_)) => {
                return Err("give --prompt-template or --prompt-template-file, not both".into());
            }
            (Some(text), None) => text.clone(),
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|err| {
                format!(
                    "cannot read --prompt-template-file {}: {err}",
                    path.display()
                )
            })?,
            (None, None) => "{text}".to_string(),
        };
        let template =
            Template::parse(&template_text).map_err(|err| format!("--prompt-template: {err}"))?;
        let schema = match &args.schema {
            Some(_) if mode != Mode::Converse => {
                return Err("--schema needs --mode converse (structured output is a forced tool call on Converse)".into());
            }
            Some(path) => Some(Arc::new(
                OutputSchema::read(path).map_err(|err| format!("--schema: {err}"))?,
            )),
            None => None,
        };
        for (flag, value) in [
            ("--grace", args.grace),
            ("--stall-timeout", args.stall_timeout),
            ("--checkpoint-secs", args.checkpoint_secs),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(format!("{flag} must be a number of seconds, got {value}"));
            }
        }
        if let Some(d) = args.dimensions
            && ![256, 512, 1024].contains(&d)
        {
            return Err(format!("--dimensions must be 256, 512 or 1024, got {d}"));
        }
        if !(1..=96).contains(&args.batch_size) {
            return Err(format!(
                "--batch-size must be between 1 and 96 (Cohere Embed's limit), got {}",
                args.batch_size
            ));
        }
        if let Some(max) = args.max_tokens
            && max < 1
        {
            return Err(format!("--max-tokens must be at least 1, got {max}"));
        }
        if args.concurrency == Some(0) || args.min_concurrency == 0 {
            return Err("--concurrency and --min-concurrency must be at least 1".into());
        }
        if args.min_concurrency > args.max_concurrency {
            return Err(format!(
                "--min-concurrency ({}) is above --max-concurrency ({})",
                args.min_concurrency, args.max_concurrency
            ));
        }
        let concurrency = match args.concurrency {
            Some(c) if c < args.min_concurrency || c > args.max_concurrency => {
                return Err(format!(
                    "--concurrency ({c}) must be between --min-concurrency ({}) and --max-concurrency ({})",
                    args.min_concurrency, args.max_concurrency
                ));
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
            ));
        }
        if args.max_attempts == 0 {
            return Err("--max-attempts must be at least 1".into());
        }
        if args.timeout <= 0.0 || !args.timeout.is_finite() {
            return Err(format!(
                "--timeout must be a positive number of seconds, got {}",
                args.timeout
            ));
        }
        let endpoint = match (&args.endpoint_url, args.local) {
            (Some(_), true) => return Err("give --local or --endpoint-url, not both".into()),
            (Some(url), false) => Endpoint::Url(url.clone()),
            (None, true) => Endpoint::Local,
            (None, false) => Endpoint::Aws,
        };
        let prices = match &args.prices {
            Some(path) => PriceTable::with_file(path).map_err(|err| err.to_string())?,
            None => PriceTable::built_in(),
        };
        if let Some(budget) = args.budget_usd {
            if !(budget.is_finite() && budget > 0.0) {
                return Err(format!(
                    "--budget-usd must be a positive number of dollars, got {budget}"
                ));
            }
            if prices.price(&args.model).is_none() {
                return Err(format!(
                    "--budget-usd needs the price of {}, which is not in the built-in table: give it with --prices FILE",
                    args.model
                ));
            }
        }
        let shared_documents = if args.document.is_empty() {
            Vec::new()
        } else {
            let mut loader = MediaLoader::new(std::path::Path::new("."));
            let paths: Vec<serde_json::Value> = args
                .document
                .iter()
                .map(|p| serde_json::Value::String(p.display().to_string()))
                .collect();
            let mut warnings = Vec::new();
            let documents = loader
                .documents(&serde_json::Value::Array(paths), &mut warnings)
                .map_err(|err| format!("--document: {}", err.message))?;
            check_document_count(documents.len())
                .map_err(|err| format!("--document: {}", err.message))?;
            documents
        };
        if args.stream && mode != Mode::Converse {
            return Err("--stream applies to --mode converse only".into());
        }
        let keep_fields = args
            .keep_fields
            .iter()
            .flat_map(|list| list.split(','))
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_string)
            .collect();
        Ok(RunConfig {
            job_path: args.job_file.clone(),
            format,
            out_dir: args.out.clone(),
            request: RequestSettings {
                model: args.model.clone(),
                mode,
                template,
                template_text,
                system: args.system.clone(),
                max_tokens: args.max_tokens,
                temperature: check_unit("--temperature", args.temperature)?,
                top_p: check_unit("--top-p", args.top_p)?,
                stop: args.stop.clone(),
                dimensions: args.dimensions,
                normalize: !args.no_normalize,
                input_type: args.input_type.clone(),
                batch_size: args.batch_size,
                keep_fields,
                image_field: args.image_column.clone().unwrap_or_else(|| "images".into()),
                document_field: args
                    .document_column
                    .clone()
                    .unwrap_or_else(|| "documents".into()),
                shared_documents,
                shared_document_paths: args
                    .document
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect(),
                cache_prompt: args.cache_prompt,
                stream: args.stream,
                schema,
            },
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
            endpoint,
            region: args.region.clone(),
            profile: args.profile.clone(),
            quiet: args.quiet,
            json: args.json,
            fresh: args.fresh,
            retry_failed: args.retry_failed,
            grace: Duration::from_secs_f64(args.grace),
            stall_timeout: Duration::from_secs_f64(args.stall_timeout),
            checkpoint_interval: Duration::from_secs_f64(args.checkpoint_secs.max(0.05)),
            prices: Arc::new(prices),
            budget_usd: args.budget_usd,
        })
    }
}

/// Request settings for tests: `model`, `mode`, `template`, everything else plain.
#[cfg(test)]
pub(crate) fn test_settings(model: &str, mode: Mode, template: &str) -> RequestSettings {
    RequestSettings {
        model: model.into(),
        mode,
        template: Template::parse(template).expect("a valid test template"),
        template_text: template.into(),
        system: None,
        max_tokens: None,
        temperature: None,
        top_p: None,
        stop: vec![],
        dimensions: None,
        normalize: true,
        input_type: "search_document".into(),
        batch_size: 96,
        keep_fields: vec![],
        image_field: "images".into(),
        document_field: "documents".into(),
        shared_documents: vec![],
        shared_document_paths: vec![],
        cache_prompt: false,
        stream: false,
        schema: None,
    }
}

/// The local server's configuration the `local-server` flags describe (validated by the
/// server on start).
pub fn server_config(args: &LocalServerArgs) -> ServerConfig {
    ServerConfig {
        port: args.port,
        tpm: args.tpm,
        rpm: args.rpm,
        burndown: args.burndown,
        latency: Duration::from_millis(args.latency_ms),
        tokens_per_sec: args.tokens_per_sec,
        timeout_delay: Duration::from_millis(args.timeout_delay_ms),
        throttle_delay: Duration::from_millis(args.throttle_delay_ms),
        faults: FaultRates {
            fail: args.fail_rate,
            timeout: args.timeout_rate,
            reset: args.reset_rate,
            garbage: args.garbage_rate,
            model_error: args.model_error_rate,
            stream_throttle: args.stream_throttle_rate,
            schema_violation: args.schema_violation_rate,
        },
        deny_models: args.deny_model.clone(),
        retry_after: args.retry_after_ms.map(Duration::from_millis),
        seed: args.seed,
    }
}
