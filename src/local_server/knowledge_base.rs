//! Knowledge bases on the local server, answering Retrieve (`POST
//! /knowledgebases/{id}/retrieve`) and RetrieveAndGenerate (`POST /retrieveAndGenerate`)
//! over bedrock-agent-runtime's restJson1 shapes, from the knowledge bases of
//! [`super::corpus`]. RetrieveAndGenerate answers extractively: the first sentence of each
//! of the best chunks, each cited with the chunk it comes from. Requests are counted, metered and throttled like model calls: Retrieve
//! under its knowledge base id, RetrieveAndGenerate under its model id.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api_error::{ApiError, ErrorKind};
use super::corpus::{Chunk, KnowledgeBase};
use super::faults::Fault;
use super::known;
use super::request_id;
use super::state::{InFlight, Shared, body_hash};
use super::text::count_tokens;
use super::usage::Delivered;
use crate::rules::model_id::{Family, base_model_id};

/// Bedrock's default `numberOfResults`.
const DEFAULT_RESULTS: usize = 5;
/// Chunks an extractive answer quotes from, at most.
const ANSWER_SOURCES: usize = 3;
/// What Bedrock answers when nothing relevant was retrieved.
const NO_ANSWER: &str = "Sorry, I am unable to assist you with this request.";

/// The first sentence of a chunk's first paragraph that is not a heading: a substring of
/// the chunk, so a citation's text is found in its source.
fn first_sentence(text: &str) -> &str {
    let start = text
        .split_inclusive('\n')
        .scan(0, |offset, line| {
            let at = *offset;
            *offset += line.len();
            Some((at, line))
        })
        .find(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .map_or(0, |(at, _)| at);
    let rest = &text[start..];
    let paragraph = rest.split("\n\n").next().unwrap_or(rest);
    let end = paragraph
        .char_indices()
        .find(|&(i, c)| {
            matches!(c, '.' | '!' | '?')
                && paragraph[i + 1..]
                    .chars()
                    .next()
                    .is_none_or(char::is_whitespace)
        })
        .map_or(paragraph.len(), |(i, _)| i + 1);
    paragraph[..end].trim()
}

/// A retrieved chunk in the API's shape (a result of Retrieve, a reference of a citation).
fn reference(chunk: &Chunk, score: Option<f32>) -> Value {
    let mut value = json!({
        "content": {"text": chunk.text, "type": "TEXT"},
        "location": {"type": "S3", "s3Location": {"uri": chunk.uri}},
        "metadata": {"x-amz-bedrock-kb-source-uri": chunk.uri},
    });
    if let Some(score) = score {
        value["score"] = json!(score);
    }
    value
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Query {
    text: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RetrievalConfiguration {
    vector_search_configuration: Option<VectorSearch>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VectorSearch {
    number_of_results: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RetrieveRequest {
    retrieval_query: Query,
    retrieval_configuration: Option<RetrievalConfiguration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RagRequest {
    input: Query,
    retrieve_and_generate_configuration: RagConfiguration,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RagConfiguration {
    r#type: String,
    knowledge_base_configuration: Option<RagKnowledgeBase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RagKnowledgeBase {
    knowledge_base_id: String,
    model_arn: String,
    retrieval_configuration: Option<RetrievalConfiguration>,
    generation_configuration: Option<GenerationConfiguration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfiguration {
    prompt_template: Option<PromptTemplate>,
    inference_config: Option<InferenceConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptTemplate {
    text_prompt_template: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InferenceConfig {
    text_inference_config: Option<TextInferenceConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TextInferenceConfig {
    max_tokens: Option<u64>,
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|err| ApiError::validation(format!("The request body is not valid: {err}")))
}

/// `numberOfResults`, checked as Bedrock checks it.
fn results_wanted(configuration: Option<&RetrievalConfiguration>) -> Result<usize, ApiError> {
    let wanted = configuration
        .and_then(|c| c.vector_search_configuration.as_ref())
        .and_then(|v| v.number_of_results);
    // The service model bounds it to 1..=100 before this handler runs.
    Ok(wanted.map_or(DEFAULT_RESULTS, |n| n as usize))
}

/// The model a model ARN names (an inference profile's id for a profile ARN), when it is
/// one the server's fake models answer and Bedrock serves it in `region`: a
/// foundation-model ARN of a model served only through profiles is refused as on demand.
fn model_of_arn<'a>(arn: &'a str, region: Option<&str>) -> Result<&'a str, ApiError> {
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

/// A knowledge base id as the API admits it, then looked up.
fn knowledge_base<'a>(shared: &'a Shared, id: &str) -> Result<&'a KnowledgeBase, ApiError> {
    shared.knowledge_bases.get(id).ok_or_else(|| {
        ApiError::new(
            ErrorKind::ResourceNotFound,
            format!("Knowledge base with id {id} does not exist"),
        )
    })
}

/// The extractive answer to `query`: the first sentence of each of the best chunks, and
/// each sentence's citation; no more than `max_tokens`.
fn generate_answer(kb: &KnowledgeBase, query: &str, k: usize, max_tokens: u64) -> Value {
    let mut output = String::new();
    let mut citations = Vec::new();
    for (chunk, score) in kb.search(query, k.min(ANSWER_SOURCES)) {
        if score <= 0.0 {
            break;
        }
        let sentence = first_sentence(&chunk.text);
        let separator = if output.is_empty() { "" } else { " " };
        if sentence.is_empty()
            || count_tokens(&output) + count_tokens(separator) + count_tokens(sentence) > max_tokens
        {
            break;
        }
        output.push_str(separator);
        output.push_str(sentence);
        citations.push(json!({
            "generatedResponsePart": {"textResponsePart": {"text": sentence}},
            "retrievedReferences": [reference(chunk, None)],
        }));
    }
    if output.is_empty() {
        output = NO_ANSWER.to_string();
    }
    json!({
        "sessionId": request_id(),
        "output": {"text": output},
        "citations": citations,
    })
}

/// Everything a knowledge-base request shares with a model call: stats, the quota under
/// `key`, the seeded 5xx faults, the first-token latency, then delivery.
async fn serve(
    shared: &Arc<Shared>,
    route: &str,
    key: &str,
    body: &[u8],
    tokens: (u64, u64),
    answer: Value,
) -> Result<Response, ApiError> {
    let (input_tokens, output_tokens) = tokens;
    let hash = body_hash(route, key, body);
    let burned = input_tokens + (output_tokens as f64 * shared.config.burndown).ceil() as u64;
    let (fault, _) = match shared.admit(key, hash, burned, burned, None) {
        Ok(admitted) => admitted,
        Err(shortage) => {
            tokio::time::sleep(shared.config.throttle_delay).await;
            return Err(ApiError::new(ErrorKind::Throttling, shortage.message()));
        }
    };
    // Of the seeded faults, the 5xx answers apply here; the others shape model answers.
    let failed = match fault {
        Fault::InternalServer => Some(ApiError::new(
            ErrorKind::InternalServer,
            "Internal server error",
        )),
        Fault::ServiceUnavailable => Some(ApiError::new(
            ErrorKind::ServiceUnavailable,
            "Service unavailable",
        )),
        _ => None,
    };
    if let Some(error) = failed {
        shared.record_fault(fault);
        shared.settle(key, burned, 0);
        return Err(error);
    }
    let generating = match shared.config.tokens_per_sec {
        rate if rate > 0.0 => Duration::from_secs_f64(output_tokens as f64 / rate),
        _ => Duration::ZERO,
    };
    tokio::time::sleep(shared.config.latency + generating).await;
    let delivered = Delivered {
        input_tokens,
        output_tokens,
        ..Delivered::default()
    };
    shared.deliver(key, hash, delivered, None, &[], &[]);
    Ok(Json(answer).into_response())
}

/// Sends `result` (or its error, counted under `key`) with a request id.
fn respond(
    shared: &Shared,
    key: &str,
    request_id: &str,
    result: Result<Response, ApiError>,
) -> Response {
    match result {
        Ok(mut response) => {
            if let Ok(value) = http::HeaderValue::from_str(request_id) {
                response.headers_mut().insert("x-amzn-requestid", value);
            }
            response
        }
        Err(error) => {
            let throttle = error.kind == ErrorKind::Throttling;
            shared.record_error(key, Some(error.kind.status().as_u16()), throttle);
            error.into_response(request_id)
        }
    }
}

/// `POST /knowledgebases/{id}/retrieve`.
pub async fn retrieve(shared: Arc<Shared>, id: String, body: Bytes) -> Response {
    let request_id = request_id();
    shared.arrive("retrieve", &id);
    let _in_flight = InFlight(shared.clone());
    let result = async {
        let request: RetrieveRequest = parse(&body)?;
        let k = results_wanted(request.retrieval_configuration.as_ref())?;
        let kb = knowledge_base(&shared, &id)?;
        let query = &request.retrieval_query.text;
        let results: Vec<Value> = kb
            .search(query, k)
            .into_iter()
            .map(|(chunk, score)| reference(chunk, Some(score)))
            .collect();
        let answer = json!({ "retrievalResults": results });
        serve(
            &shared,
            "retrieve",
            &id,
            &body,
            (count_tokens(query), 0),
            answer,
        )
        .await
    }
    .await;
    respond(&shared, &id, &request_id, result)
}

/// `POST /retrieveAndGenerate`.
pub async fn retrieve_and_generate(
    shared: Arc<Shared>,
    headers: http::HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = request_id();
    let region = known::signed_region(&headers);
    let request: Result<RagRequest, ApiError> = parse(&body);
    if let Some(c) = request.as_ref().ok().and_then(|r| {
        r.retrieve_and_generate_configuration
            .knowledge_base_configuration
            .as_ref()
    }) {
        shared.record_model_arn(&c.model_arn);
    }
    // Counted under the model, like the model call it stands for.
    let key = request
        .as_ref()
        .ok()
        .and_then(|r| {
            r.retrieve_and_generate_configuration
                .knowledge_base_configuration
                .as_ref()
        })
        .and_then(|c| model_of_arn(&c.model_arn, None).ok())
        .unwrap_or("retrieveAndGenerate")
        .to_string();
    shared.arrive("retrieve-and-generate", &key);
    let _in_flight = InFlight(shared.clone());
    let result = async {
        let request = request?;
        let configuration = &request.retrieve_and_generate_configuration;
        let kb_configuration = match (
            configuration.r#type.as_str(),
            &configuration.knowledge_base_configuration,
        ) {
            ("KNOWLEDGE_BASE", Some(c)) => c,
            _ => {
                return Err(ApiError::validation(
                    "The local server answers RetrieveAndGenerate of type KNOWLEDGE_BASE with a knowledgeBaseConfiguration only.",
                ));
            }
        };
        model_of_arn(&kb_configuration.model_arn, region.as_deref())?;
        let k = results_wanted(kb_configuration.retrieval_configuration.as_ref())?;
        let generation = kb_configuration.generation_configuration.as_ref();
        if let Some(template) = generation
            .and_then(|g| g.prompt_template.as_ref())
            .and_then(|t| t.text_prompt_template.as_deref())
            && !template.contains("$search_results$")
        {
            return Err(ApiError::validation(
                "The prompt template must contain the $search_results$ variable.",
            ));
        }
        let max_tokens = generation
            .and_then(|g| g.inference_config.as_ref())
            .and_then(|i| i.text_inference_config.as_ref())
            .and_then(|t| t.max_tokens)
            .unwrap_or(2048);
        let kb = knowledge_base(&shared, &kb_configuration.knowledge_base_id)?;
        let query = &request.input.text;
        let answer = generate_answer(kb, query, k, max_tokens);
        let output_tokens = count_tokens(answer["output"]["text"].as_str().unwrap_or_default());
        let tokens = (count_tokens(query), output_tokens);
        serve(&shared, "retrieve-and-generate", &key, &body, tokens, answer).await
    }
    .await;
    respond(&shared, &key, &request_id, result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local_server::corpus::load;

    fn corpus() -> KnowledgeBase {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("returns.md"),
            "# Returns\n\nRefunds reach the card within 5 business days. Keep the receipt.\n\nDamaged parcels are replaced for free.",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(
            dir.path().join("sub/shipping.txt"),
            "Orders ship from Lisbon on weekdays! Express delivery takes one day.",
        )
        .unwrap();
        std::fs::write(dir.path().join("ignored.pdf"), "not text").unwrap();
        load("KB1", dir.path()).unwrap()
    }

    #[test]
    fn chunks_rank_and_answer_with_citations() {
        let kb = corpus();
        assert_eq!(kb.chunks.len(), 2);
        assert_eq!(kb.chunks[0].uri, "s3://knowledge-base-kb1/returns.md");
        assert_eq!(kb.chunks[1].uri, "s3://knowledge-base-kb1/sub/shipping.txt");
        let found = kb.search("how many days until refunds reach my card", 5);
        assert_eq!(found[0].0.uri, "s3://knowledge-base-kb1/returns.md");
        assert!(found[0].1 > found[1].1);
        let answer = generate_answer(&kb, "when do orders ship from lisbon", 5, 2048);
        let citations = answer["citations"].as_array().unwrap();
        assert_eq!(
            citations[0]["generatedResponsePart"]["textResponsePart"]["text"],
            "Orders ship from Lisbon on weekdays!"
        );
        let cited = citations[0]["retrievedReferences"][0]["content"]["text"]
            .as_str()
            .unwrap();
        assert!(cited.contains("Orders ship from Lisbon on weekdays!"));
        assert_eq!(
            first_sentence(&kb.chunks[0].text),
            "Refunds reach the card within 5 business days."
        );
    }

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
