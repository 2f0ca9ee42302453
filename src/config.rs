//! Validated, resolved run settings: what `run` flags mean once checked. Building a
//! [`RunConfig`] opens nothing; every problem found here is a usage error (exit 2) whose
//! message names the flag.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::bedrock::Endpoint;
use crate::cli::{LocalServerArgs, RunArgs};
use crate::fetch::FetchSettings;
use crate::job::JobFormat;
use crate::job::media::{MediaLoader, check_document_count};
use crate::job::prepare::RequestSettings;
use crate::job::template::Template;
use crate::local_server::{BatchFaults, FaultRates, ServerConfig};
use crate::prices::PriceTable;
use crate::rules::catalogue::{self, Offer};
use crate::rules::model_id::{Family, could_be_bedrock_id};
use crate::store::run_dir::RetryFailed;
use crate::store::state::RunParams;
use crate::vocab::schema::{OutputSchema, SchemaMode, SchemaRoute};
use crate::vocab::{Mode, Shard};

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
    pub checkpoint_interval: Duration,
    pub prices: Arc<PriceTable>,
    pub budget_usd: Option<f64>,
    /// With --mode retrieve or rag: the knowledge base and how to query it.
    pub knowledge_base: Option<KnowledgeBaseSettings>,
    /// `--via`: on-demand calls, Batch Inference jobs, or the one that fits.
    pub via: crate::cli::Via,
    /// With `--via batch` or `auto`: where and how the jobs run.
    pub batch: Option<crate::batch::BatchSettings>,
    /// `--s3-endpoint-url`: S3 for batch input and output and for s3:// media.
    pub s3_endpoint_url: Option<String>,
    /// How media named by URL are fetched.
    pub fetch: FetchSettings,
}

/// The knowledge base a retrieve or rag run queries.
#[derive(Debug, Clone, PartialEq)]
pub struct KnowledgeBaseSettings {
    pub id: String,
    /// Passages retrieved per query.
    pub top_k: u32,
    /// RetrieveAndGenerate's prompt template (with `$search_results$`).
    pub generation_template: Option<String>,
    /// With --local: the directory the local server builds KB `LOCALKBASE` from.
    pub local_dir: Option<PathBuf>,
}

/// The knowledge-base id `run --local --knowledge-base-dir DIR` serves (AWS's ids are ten
/// letters and digits).
pub const LOCAL_KNOWLEDGE_BASE: &str = "LOCALKBASE";

/// The knowledge-base settings of a retrieve or rag run (`None` for other modes), checked.
fn knowledge_base(args: &RunArgs, mode: Mode) -> Result<Option<KnowledgeBaseSettings>, String> {
    let kb_mode = matches!(mode, Mode::Retrieve | Mode::Rag);
    if !kb_mode {
        if args.knowledge_base_id.is_some() || args.knowledge_base_dir.is_some() {
            return Err(
                "--knowledge-base-id and --knowledge-base-dir apply to --mode retrieve or rag"
                    .into(),
            );
        }
        if args.generation_template.is_some() {
            return Err("--generation-template applies to --mode rag".into());
        }
        return Ok(None);
    }
    if mode == Mode::Retrieve && args.generation_template.is_some() {
        return Err("--generation-template applies to --mode rag, not retrieve".into());
    }
    if let Some(template) = &args.generation_template
        && !template.contains("$search_results$")
    {
        return Err(
            "--generation-template must contain $search_results$, where Bedrock puts the retrieved passages"
                .into(),
        );
    }
    if !(1..=100).contains(&args.top_k) {
        return Err(format!(
            "--top-k must be between 1 and 100, got {}",
            args.top_k
        ));
    }
    if args.system.is_some() {
        return Err(
            "--system does not apply to knowledge-base modes: RetrieveAndGenerate takes instructions in --generation-template".into(),
        );
    }
    if args.knowledge_base_dir.is_some() && !args.local {
        return Err("--knowledge-base-dir needs --local (the built-in server serves it)".into());
    }
    let id = match (&args.knowledge_base_id, &args.knowledge_base_dir) {
        (Some(id), _) => id.trim().to_string(),
        (None, Some(_)) => LOCAL_KNOWLEDGE_BASE.to_string(),
        (None, None) => {
            return Err(format!(
                "--mode {} needs --knowledge-base-id KB (or --local --knowledge-base-dir DIR)",
                if mode == Mode::Rag { "rag" } else { "retrieve" }
            ));
        }
    };
    if id.is_empty() {
        return Err("--knowledge-base-id is empty".into());
    }
    Ok(Some(KnowledgeBaseSettings {
        id,
        top_k: args.top_k,
        generation_template: args.generation_template.clone(),
        local_dir: args.knowledge_base_dir.clone(),
    }))
}

fn check_unit(flag: &str, value: Option<f32>) -> Result<Option<f32>, String> {
    match value {
        Some(x) if !(0.0..=1.0).contains(&x) => {
            Err(format!("{flag} must be between 0 and 1, got {x}"))
        }
        other => Ok(other),
    }
}

/// Why `model` names nothing Bedrock serves, with the nearest names `prices` knows: a call
/// would only say "invalid model identifier" once the run has started.
fn not_a_model_id(model: &str, prices: &PriceTable) -> String {
    let near = prices.closest(model, 3);
    let suggestion = if near.is_empty() {
        String::new()
    } else {
        format!(
            " Closest known models: {} (a full id adds the model's date and version).",
            near.join(", ")
        )
    };
    format!(
        "--model {model} is not a Bedrock model id: ids start with the provider, as in anthropic.claude-3-haiku-20240307-v1:0, and inference profiles add a geography (us.anthropic...).{suggestion} `aws bedrock list-foundation-models` lists the ids of a region; `bedrock-batch prices` the models with a known price."
    )
}

/// How `--schema` goes to `model`: `--schema-mode`, and for `auto` what the catalogue says
/// the model offers. Batch Inference refuses tools in Converse jobs, so a run that may go
/// through batch tries native on models the catalogue does not know; the refusal of
/// `tool` with `--via batch` comes with the other batch checks, before anything is uploaded.
///
/// A schema native structured output refuses (a `minimum`, a `maxLength`...) goes as the
/// tool under `auto`, and is a usage error under `native`: AWS would answer every call 400.
fn schema_route(
    args: &RunArgs,
    model: &str,
    schema: Option<&OutputSchema>,
) -> Result<SchemaRoute, String> {
    let Some(schema) = schema else {
        return Ok(SchemaRoute::Tool);
    };
    let batch = args.via != crate::cli::Via::OnDemand;
    let obstacle = schema.native_obstacle();
    Ok(match (args.schema_mode, obstacle) {
        (SchemaMode::Tool, _) => SchemaRoute::Tool,
        (SchemaMode::Native, Some(obstacle)) => {
            return Err(format!(
                "--schema-mode native: Bedrock's structured output refuses this schema ({obstacle}: no numeric bounds, string lengths, additionalProperties other than false, minItems above 1 or external $ref); drop that keyword, or use --schema-mode tool"
            ));
        }
        (SchemaMode::Native, None) => SchemaRoute::Native,
        (SchemaMode::Auto, Some(_)) => SchemaRoute::Tool,
        (SchemaMode::Auto, None) => match catalogue::structured_output(model) {
            Offer::Yes => SchemaRoute::Native,
            Offer::No => SchemaRoute::Tool,
            Offer::Unknown if batch => SchemaRoute::Native,
            Offer::Unknown => SchemaRoute::Tool,
        },
    })
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
        let family = args.model.as_deref().and_then(Family::of);
        let mode = match args.mode {
            Some(mode) => mode,
            None if family.is_some_and(Family::is_embedding) => Mode::Embed,
            None => Mode::Converse,
        };
        let knowledge_base = knowledge_base(args, mode)?;
        // A retrieval calls no model: its calls are paced and counted under the knowledge base.
        let model = match (&args.model, &knowledge_base) {
            (Some(_), Some(_)) if mode == Mode::Retrieve => {
                return Err(
                    "--mode retrieve calls no model: drop --model (--mode rag generates with one)"
                        .into(),
                );
            }
            (None, Some(kb)) if mode == Mode::Retrieve => kb.id.clone(),
            (Some(model), _) => model.trim().to_string(),
            (None, _) => return Err(format!("--mode {} needs --model", mode_flag(mode))),
        };
        if mode == Mode::Embed && !family.is_some_and(Family::is_embedding) {
            return Err(format!(
                "--mode embed needs an embedding model (amazon.titan-embed-text-v1, amazon.titan-embed-text-v2:0, cohere.embed-english-v3, cohere.embed-multilingual-v3); {model} is not one"
            ));
        }
        if matches!(mode, Mode::Converse | Mode::Rag) && family.is_some_and(Family::is_embedding) {
            return Err(format!(
                "{model} is an embedding model: use --mode embed (the default for embedding models)"
            ));
        }
        if args.expected_field.is_some() && knowledge_base.is_none() {
            return Err("--expected-field applies to --mode retrieve or rag".into());
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
                return Err(
                    "--schema needs --mode converse (structured output is a Converse feature)"
                        .into(),
                );
            }
            Some(path) => Some(Arc::new(
                OutputSchema::read(path).map_err(|err| format!("--schema: {err}"))?,
            )),
            None => None,
        };
        if args.fetch_concurrency == 0 {
            return Err("--fetch-concurrency must be at least 1".into());
        }
        if !(args.fetch_timeout.is_finite() && args.fetch_timeout > 0.0) {
            return Err(format!(
                "--fetch-timeout must be a positive number of seconds, got {}",
                args.fetch_timeout
            ));
        }
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
        let batch = crate::batch::settings::from_args(args, mode)?;
        let schema_route = schema_route(args, &model, schema.as_deref())?;
        if let Some(tier) = args.service_tier {
            if args.via != crate::cli::Via::OnDemand {
                return Err(format!(
                    "--service-tier {} is for on-demand calls: Batch Inference is not a service tier (it has its own price); drop --service-tier, or use --via on-demand",
                    tier.as_str()
                ));
            }
            if matches!(mode, Mode::Retrieve | Mode::Rag) {
                return Err(
                    "--service-tier applies to model calls, not to knowledge-base modes".into(),
                );
            }
            // AWS would answer every call ValidationException: say so before the first.
            if catalogue::tier(&model, tier) == Offer::No {
                return Err(format!(
                    "{model} is not offered in the {} service tier (AWS's model cards list each model's tiers; src/catalogue.rs has them): drop --service-tier, or use a model that offers it (gpt-oss, Qwen3, DeepSeek, Nova Pro / 2 Lite...); for Claude, Batch Inference (--via batch) is the discounted route",
                    tier.as_str()
                ));
            }
        }
        let lanes = lanes(args)?;
        let shard = shard(args, |name| std::env::var(name).ok())?;
        let prices = PriceTable::with_files(&args.prices).map_err(|err| err.to_string())?;
        if let Some(model) = &args.model
            && !could_be_bedrock_id(model)
        {
            return Err(not_a_model_id(model, &prices));
        }
        if let Some(budget) = args.budget_usd {
            if !(budget.is_finite() && budget > 0.0) {
                return Err(format!(
                    "--budget-usd must be a positive number of dollars, got {budget}"
                ));
            }
            if knowledge_base.is_some() {
                return Err(
                    "--budget-usd cannot apply to knowledge-base modes: the service reports no token usage to price".into(),
                );
            }
            if prices.price(&model).is_none() {
                return Err(format!(
                    "--budget-usd needs the price of {model}, which is not in the built-in table: give it with --prices FILE"
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
                model,
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
                schema_route,
                service_tier: args.service_tier,
                id_field: args.id_field.clone(),
                expected_field: args.expected_field.clone(),
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

/// How `--mode` spells a mode.
pub fn mode_flag(mode: Mode) -> &'static str {
    match mode {
        Mode::Converse => "converse",
        Mode::Embed => "embed",
        Mode::Invoke => "invoke",
        Mode::Retrieve => "retrieve",
        Mode::Rag => "rag",
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
        schema_route: SchemaRoute::Tool,
        service_tier: None,
        id_field: None,
        expected_field: None,
    }
}

/// The shard `--shard I/N`, `--shards N` (index from JOB_COMPLETION_INDEX or
/// AWS_BATCH_JOB_ARRAY_INDEX) or an AWS Batch array job's environment names; `env` reads
/// environment variables.
fn shard(args: &RunArgs, env: impl Fn(&str) -> Option<String>) -> Result<Option<Shard>, String> {
    const K8S: &str = "JOB_COMPLETION_INDEX";
    const BATCH_INDEX: &str = "AWS_BATCH_JOB_ARRAY_INDEX";
    const BATCH_SIZE: &str = "AWS_BATCH_JOB_ARRAY_SIZE";
    let number = |name: &str, value: String| {
        value
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("{name} must be a whole number, got {value:?}"))
    };
    match (&args.shard, args.shards) {
        (Some(_), Some(_)) => Err("give --shard I/N or --shards N, not both".into()),
        (Some(spec), None) => Shard::parse(spec).map(Some),
        (None, Some(count)) => {
            let index = match (env(K8S), env(BATCH_INDEX)) {
                (Some(index), _) => number(K8S, index)?,
                (None, Some(index)) => number(BATCH_INDEX, index)?,
                (None, None) => {
                    return Err(format!(
                        "--shards {count} needs the shard index from {K8S} (Kubernetes Indexed Job) or {BATCH_INDEX} (AWS Batch array job); neither is set. Use --shard I/{count} to give it yourself."
                    ));
                }
            };
            Shard::new(index, count).map(Some)
        }
        (None, None) => match (env(BATCH_INDEX), env(BATCH_SIZE)) {
            (Some(index), Some(size)) => {
                Shard::new(number(BATCH_INDEX, index)?, number(BATCH_SIZE, size)?).map(Some)
            }
            _ => Ok(None),
        },
    }
}

/// One region or endpoint a run sends calls to.
#[derive(Debug, Clone, PartialEq)]
pub struct LaneSpec {
    pub endpoint: Endpoint,
    /// `None`: the standard chain's region.
    pub region: Option<String>,
}

/// The lanes `--local`, `--endpoint-url` (repeated) and `--region` (a list) describe.
fn lanes(args: &RunArgs) -> Result<Vec<LaneSpec>, String> {
    let mut regions: Vec<String> = Vec::new();
    for region in &args.region {
        let region = region.trim();
        if region.is_empty() {
            return Err("--region has an empty entry (use --region us-east-1,us-west-2)".into());
        }
        if regions.iter().any(|r| r == region) {
            return Err(format!("--region names {region} twice"));
        }
        regions.push(region.to_string());
    }
    let lane = |endpoint: Endpoint, region: Option<&String>| LaneSpec {
        endpoint,
        region: region.cloned(),
    };
    let urls = &args.endpoint_url;
    if args.local && !urls.is_empty() {
        return Err("give --local or --endpoint-url, not both".into());
    }
    Ok(if args.local {
        // One in-process server per region: several regions can be tried without AWS.
        match regions.len() {
            0 => vec![lane(Endpoint::Local, None)],
            _ => regions
                .iter()
                .map(|r| lane(Endpoint::Local, Some(r)))
                .collect(),
        }
    } else if !urls.is_empty() {
        match regions.len() {
            0 | 1 => urls
                .iter()
                .map(|url| lane(Endpoint::Url(url.clone()), regions.first()))
                .collect(),
            n if n == urls.len() => urls
                .iter()
                .zip(&regions)
                .map(|(url, r)| lane(Endpoint::Url(url.clone()), Some(r)))
                .collect(),
            n => {
                return Err(format!(
                    "{} --endpoint-url and {n} regions: give one region for all endpoints, or one per endpoint",
                    urls.len()
                ));
            }
        }
    } else if regions.is_empty() {
        vec![lane(Endpoint::Aws, None)]
    } else {
        regions
            .iter()
            .map(|r| lane(Endpoint::Aws, Some(r)))
            .collect()
    })
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
        knowledge_bases: args.knowledge_base.clone(),
        s3_port: args.s3_port,
        s3_dir: args.s3_dir.clone(),
        s3_buckets: args.s3_bucket.clone(),
        batch_step: Duration::from_millis(args.batch_step_ms),
        batch_records_per_sec: args.batch_records_per_sec,
        batch_min_records: args.batch_min_records,
        batch_faults: BatchFaults {
            fail: args.batch_fail_rate,
            partial: args.batch_partial_rate,
            expire: args.batch_expire_rate,
            record_error: args.batch_record_error_rate,
            create_answer_delay: Duration::from_millis(args.batch_create_delay_ms),
            deny_stop: args.batch_deny_stop,
        },
        batch_max_jobs: args.batch_max_jobs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cli::tests::run_args;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_shard_comes_from_the_flag_or_the_scheduler() {
        let none = env(&[]);
        assert_eq!(shard(&run_args(&[]), &none).unwrap(), None);
        assert_eq!(
            shard(&run_args(&["--shard", "2/5"]), &none).unwrap(),
            Some(Shard { index: 2, count: 5 })
        );
        let k8s = env(&[("JOB_COMPLETION_INDEX", "3")]);
        assert_eq!(
            shard(&run_args(&["--shards", "4"]), &k8s).unwrap(),
            Some(Shard { index: 3, count: 4 })
        );
        let batch = env(&[
            ("AWS_BATCH_JOB_ARRAY_INDEX", "1"),
            ("AWS_BATCH_JOB_ARRAY_SIZE", "8"),
        ]);
        assert_eq!(
            shard(&run_args(&[]), &batch).unwrap(),
            Some(Shard { index: 1, count: 8 })
        );
        let err = shard(&run_args(&["--shards", "4"]), &none).unwrap_err();
        assert!(err.contains("JOB_COMPLETION_INDEX"), "{err}");
        let err = shard(
            &run_args(&["--shards", "4"]),
            env(&[("JOB_COMPLETION_INDEX", "4")]),
        )
        .unwrap_err();
        assert!(err.contains("out of range"), "{err}");
        assert!(shard(&run_args(&["--shard", "1/2", "--shards", "2"]), &none).is_err());
    }

    #[test]
    fn regions_and_endpoints_become_lanes() {
        let lanes_of = |extra: &[&str]| lanes(&run_args(extra));
        assert_eq!(
            lanes_of(&["--region", "us-east-1,us-west-2"]).unwrap(),
            vec![
                LaneSpec {
                    endpoint: Endpoint::Aws,
                    region: Some("us-east-1".into())
                },
                LaneSpec {
                    endpoint: Endpoint::Aws,
                    region: Some("us-west-2".into())
                },
            ]
        );
        let urls = lanes_of(&["--endpoint-url", "http://a", "--endpoint-url", "http://b"]).unwrap();
        assert_eq!(urls.len(), 2);
        assert!(urls.iter().all(|l| l.region.is_none()));
        assert!(
            lanes_of(&[
                "--region",
                "a,b,c",
                "--endpoint-url",
                "http://a",
                "--endpoint-url",
                "http://b"
            ])
            .unwrap_err()
            .contains("one region for all endpoints")
        );
        assert!(
            lanes_of(&["--region", "a,a"])
                .unwrap_err()
                .contains("twice")
        );
        assert!(lanes_of(&["--local", "--endpoint-url", "http://a"]).is_err());
        assert_eq!(lanes_of(&["--local", "--region", "a,b"]).unwrap().len(), 2);
    }
}
