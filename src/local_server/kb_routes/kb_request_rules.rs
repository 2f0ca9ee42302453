//! What Retrieve and RetrieveAndGenerate send (bedrock-agent-runtime's restJson1 shapes,
//! the members the local server reads) and what Bedrock demands of them beyond the
//! service model's types and patterns, which `crate::rules` checked before the handler
//! ran: a `modelArn` naming a text model served in the signed region, a prompt template
//! holding `$search_results$`, and the defaults of `numberOfResults` and `maxTokens` (API
//! Reference: Retrieve, RetrieveAndGenerate).

use serde::Deserialize;

use crate::local_server::api_error::ApiError;
use crate::local_server::known;
use crate::rules::model_id::{Family, base_model_id};

/// Bedrock's default `numberOfResults`.
const DEFAULT_RESULTS: usize = 5;
/// What RetrieveAndGenerate generates at most when `maxTokens` is not set.
const DEFAULT_MAX_TOKENS: u64 = 2048;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Query {
    pub(super) text: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct RetrievalConfiguration {
    pub(super) vector_search_configuration: Option<VectorSearch>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct VectorSearch {
    pub(super) number_of_results: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RetrieveRequest {
    pub(super) retrieval_query: Query,
    pub(super) retrieval_configuration: Option<RetrievalConfiguration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RagRequest {
    pub(super) input: Query,
    pub(super) retrieve_and_generate_configuration: RagConfiguration,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RagConfiguration {
    pub(super) r#type: String,
    pub(super) knowledge_base_configuration: Option<RagKnowledgeBase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RagKnowledgeBase {
    pub(super) knowledge_base_id: String,
    pub(super) model_arn: String,
    pub(super) retrieval_configuration: Option<RetrievalConfiguration>,
    pub(super) generation_configuration: Option<GenerationConfiguration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerationConfiguration {
    pub(super) prompt_template: Option<PromptTemplate>,
    pub(super) inference_config: Option<InferenceConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PromptTemplate {
    pub(super) text_prompt_template: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct InferenceConfig {
    pub(super) text_inference_config: Option<TextInferenceConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TextInferenceConfig {
    pub(super) max_tokens: Option<u64>,
}

pub(super) fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|err| ApiError::validation(format!("The request body is not valid: {err}")))
}

/// `numberOfResults`, checked as Bedrock checks it.
pub(super) fn results_wanted(
    configuration: Option<&RetrievalConfiguration>,
) -> Result<usize, ApiError> {
    let wanted = configuration
        .and_then(|c| c.vector_search_configuration.as_ref())
        .and_then(|v| v.number_of_results);
    // The service model bounds it to 1..=100 before this handler runs.
    Ok(wanted.map_or(DEFAULT_RESULTS, |n| n as usize))
}

/// The knowledge-base configuration of a RetrieveAndGenerate request; the local server
/// answers no other type.
pub(super) fn knowledge_base_configuration(
    configuration: &RagConfiguration,
) -> Result<&RagKnowledgeBase, ApiError> {
    match (
        configuration.r#type.as_str(),
        &configuration.knowledge_base_configuration,
    ) {
        ("KNOWLEDGE_BASE", Some(c)) => Ok(c),
        _ => Err(ApiError::validation(
            "The local server answers RetrieveAndGenerate of type KNOWLEDGE_BASE with a knowledgeBaseConfiguration only.",
        )),
    }
}

/// A prompt template must leave a place for what was retrieved.
pub(super) fn check_prompt_template(
    generation: Option<&GenerationConfiguration>,
) -> Result<(), ApiError> {
    if let Some(template) = generation
        .and_then(|g| g.prompt_template.as_ref())
        .and_then(|t| t.text_prompt_template.as_deref())
        && !template.contains("$search_results$")
    {
        return Err(ApiError::validation(
            "The prompt template must contain the $search_results$ variable.",
        ));
    }
    Ok(())
}

/// The most tokens the answer may have: `textInferenceConfig.maxTokens`, or the default.
pub(super) fn max_tokens(generation: Option<&GenerationConfiguration>) -> u64 {
    generation
        .and_then(|g| g.inference_config.as_ref())
        .and_then(|i| i.text_inference_config.as_ref())
        .and_then(|t| t.max_tokens)
        .unwrap_or(DEFAULT_MAX_TOKENS)
}

/// The model a model ARN names (an inference profile's id for a profile ARN), when it is
/// one the server's fake models answer and Bedrock serves it in `region`: a
/// foundation-model ARN of a model served only through profiles is refused as on demand.
pub(super) fn model_of_arn<'a>(arn: &'a str, region: Option<&str>) -> Result<&'a str, ApiError> {
    let model = arn
        .strip_prefix("arn:aws:bedrock:")
        .and_then(|rest| rest.split_once(':'))
        .filter(|(region, _)| !region.is_empty())
        .and_then(|(_, rest)| {
            rest.strip_prefix(":foundation-model/").or_else(|| {
                let (account, resource) = rest.split_once(':')?;
                (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
                    .then_some(resource)?
                    .strip_prefix("inference-profile/")
            })
        })
        // The service model's pattern admitted it; an ARN naming no model is AWS's
        // unknown model.
        .ok_or_else(|| ApiError::validation(known::INVALID_MODEL))?;
    // A foundation-model ARN names a model id, a profile ARN a profile id.
    let names_profile = !arn.contains(":foundation-model/");
    if names_profile == (base_model_id(model) == model) {
        return Err(ApiError::validation(known::INVALID_MODEL));
    }
    known::check(model, region)?;
    match Family::of(model) {
        Some(family) if !family.is_embedding() => Ok(model),
        _ => Err(ApiError::validation(known::INVALID_MODEL)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_arns_and_ids_checked_as_bedrock_does() {
        let east = Some("us-east-1");
        let ok =
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0";
        assert_eq!(
            model_of_arn(ok, east).unwrap(),
            "anthropic.claude-3-haiku-20240307-v1:0"
        );
        let profile =
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-lite-v1:0";
        assert_eq!(
            model_of_arn(profile, east).unwrap(),
            "us.amazon.nova-lite-v1:0"
        );
        // A bare id passes the service model's pattern but names no ARN.
        let err = model_of_arn("anthropic.claude-3-haiku-20240307-v1:0", east).unwrap_err();
        assert_eq!(err.message, known::INVALID_MODEL);
        let err = model_of_arn(
            "arn:aws:bedrock:us-east-1::foundation-model/acme.nothing-v1",
            east,
        )
        .unwrap_err();
        assert_eq!(err.message, "The provided model identifier is invalid.");
        assert!(
            model_of_arn(
                "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0",
                east
            )
            .is_err()
        );
        // A profile id is no foundation model, nor a model id a profile.
        for crossed in [
            "arn:aws:bedrock:us-east-1::foundation-model/us.amazon.nova-lite-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/amazon.nova-lite-v1:0",
        ] {
            assert!(model_of_arn(crossed, east).is_err(), "{crossed}");
        }
        // A model served only through inference profiles, named by its foundation model.
        let err = model_of_arn(
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0",
            east,
        )
        .unwrap_err();
        assert!(
            err.message
                .contains("with on-demand throughput isn't supported"),
            "{}",
            err.message
        );
    }
}
