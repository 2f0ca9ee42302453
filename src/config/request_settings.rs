//! The request flags -> the run's request settings: model and mode, the prompt template
//! (read from `--prompt-template-file`), `--schema` (read and compiled) and how it is sent,
//! the service tier, shared documents (read and checked), and the sampling parameters.

use super::ConfigError;
use std::sync::Arc;

use super::knowledge_base::{KnowledgeBaseSettings, knowledge_base};
use crate::cli::RunArgs;
use crate::engine::Via;
use crate::job::media::{MediaLoader, check_document_count};
use crate::prices::PriceTable;
use crate::rules::catalogue::{self, Offer};
use crate::rules::model_id::Family;
use crate::vocab::Mode;
use crate::vocab::RequestSettings;
use crate::vocab::schema::{OutputSchema, SchemaMode, SchemaRoute};
use crate::vocab::template::Template;

/// The model, the mode and the knowledge base the flags name, checked together.
pub(super) fn model_and_mode(
    args: &RunArgs,
) -> Result<(String, Mode, Option<KnowledgeBaseSettings>), ConfigError> {
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
        (None, _) => return Err(format!("--mode {} needs --model", mode_flag(mode)).into()),
    };
    if mode == Mode::Embed && !family.is_some_and(Family::is_embedding) {
        return Err(format!(
            "--mode embed needs an embedding model (amazon.titan-embed-text-v1, amazon.titan-embed-text-v2:0, cohere.embed-english-v3, cohere.embed-multilingual-v3); {model} is not one"
        ).into());
    }
    if matches!(mode, Mode::Converse | Mode::Rag) && family.is_some_and(Family::is_embedding) {
        return Err(format!(
            "{model} is an embedding model: use --mode embed (the default for embedding models)"
        )
        .into());
    }
    if args.expected_field.is_some() && knowledge_base.is_none() {
        return Err("--expected-field applies to --mode retrieve or rag".into());
    }
    Ok((model, mode, knowledge_base))
}

/// The request settings of a run of `model` in `mode`: reads the template file, the
/// schema and the shared documents the flags name.
pub(super) fn settings(
    args: &RunArgs,
    model: String,
    mode: Mode,
) -> Result<RequestSettings, ConfigError> {
    let template_text = match (&args.prompt_template, &args.prompt_template_file) {
        (Some(_), Some(_)) => {
            return Err("give --prompt-template or --prompt-template-file, not both".into());
        }
        (Some(text), None) => text.clone(),
        (None, Some(path)) => {
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                flag: "--prompt-template-file",
                path: path.clone(),
                source,
            })?
        }
        (None, None) => "{text}".to_string(),
    };
    let template =
        Template::parse(&template_text).map_err(|err| format!("--prompt-template: {err}"))?;
    let schema = match &args.schema {
        Some(_) if mode != Mode::Converse => {
            return Err(
                "--schema needs --mode converse (structured output is a Converse feature)".into(),
            );
        }
        Some(path) => Some(Arc::new(OutputSchema::read(path)?)),
        None => None,
    };
    if let Some(d) = args.dimensions
        && ![256, 512, 1024].contains(&d)
    {
        return Err(format!("--dimensions must be 256, 512 or 1024, got {d}").into());
    }
    if !(1..=96).contains(&args.batch_size) {
        return Err(format!(
            "--batch-size must be between 1 and 96 (Cohere Embed's limit), got {}",
            args.batch_size
        )
        .into());
    }
    if let Some(max) = args.max_tokens
        && max < 1
    {
        return Err(format!("--max-tokens must be at least 1, got {max}").into());
    }
    let schema_route = schema_route(args, &model, schema.as_deref())?;
    if let Some(tier) = args.service_tier {
        if args.via != Via::OnDemand {
            return Err(format!(
                "--service-tier {} is for on-demand calls: Batch Inference is not a service tier (it has its own price); drop --service-tier, or use --via on-demand",
                tier.as_str()
            ).into());
        }
        if matches!(mode, Mode::Retrieve | Mode::Rag) {
            return Err(
                "--service-tier applies to model calls, not to knowledge-base modes".into(),
            );
        }
        // AWS would answer every call ValidationException: say so before the first.
        if catalogue::tier(&model, tier) == Offer::No {
            return Err(format!(
                "{model} is not offered in the {} service tier (AWS's model cards list each model's tiers; src/rules/catalogue.rs has them): drop --service-tier, or use a model that offers it (gpt-oss, Qwen3, DeepSeek, Nova Pro / 2 Lite...); for Claude, Batch Inference (--via batch) is the discounted route",
                tier.as_str()
            ).into());
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
    Ok(RequestSettings {
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
    })
}

fn check_unit(flag: &str, value: Option<f32>) -> Result<Option<f32>, ConfigError> {
    match value {
        Some(x) if !(0.0..=1.0).contains(&x) => {
            Err(format!("{flag} must be between 0 and 1, got {x}").into())
        }
        other => Ok(other),
    }
}

/// Why `model` names nothing Bedrock serves, with the nearest names `prices` knows: a call
/// would only say "invalid model identifier" once the run has started.
pub(super) fn not_a_model_id(model: &str, prices: &PriceTable) -> String {
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
) -> Result<SchemaRoute, ConfigError> {
    let Some(schema) = schema else {
        return Ok(SchemaRoute::Tool);
    };
    let batch = args.via != crate::engine::Via::OnDemand;
    let obstacle = schema.native_obstacle();
    Ok(match (args.schema_mode, obstacle) {
        (SchemaMode::Tool, _) => SchemaRoute::Tool,
        (SchemaMode::Native, Some(obstacle)) => {
            return Err(format!(
                "--schema-mode native: Bedrock's structured output refuses this schema ({obstacle}: no numeric bounds, string lengths, additionalProperties other than false, minItems above 1 or external $ref); drop that keyword, or use --schema-mode tool"
            ).into());
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
