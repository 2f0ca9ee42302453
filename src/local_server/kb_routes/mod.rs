//! Knowledge bases on the local server, answering Retrieve (`POST
//! /knowledgebases/{id}/retrieve`) and RetrieveAndGenerate (`POST /retrieveAndGenerate`)
//! from the knowledge bases of [`super::corpus`]. The requests' shapes and what Bedrock
//! demands of them are in `kb_request_rules`, the extractive answer in
//! `extractive_answer`; these handlers count, meter and throttle requests like model
//! calls: Retrieve under its knowledge base id, RetrieveAndGenerate under its model id.

mod extractive_answer;
mod kb_request_rules;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::api_error::{ApiError, ErrorKind};
use super::corpus::KnowledgeBase;
use super::known;
use super::request_faults::Fault;
use super::request_id;
use super::shared_state::{InFlight, Shared, body_hash};
use super::text::count_tokens;
use super::usage::Delivered;
use extractive_answer::{generate_answer, reference};
use kb_request_rules::{
    RagRequest, RetrieveRequest, check_prompt_template, knowledge_base_configuration, max_tokens,
    model_of_arn, parse, results_wanted,
};

/// A knowledge base id as the API admits it, then looked up.
fn knowledge_base<'a>(shared: &'a Shared, id: &str) -> Result<&'a KnowledgeBase, ApiError> {
    shared.knowledge_bases.get(id).ok_or_else(|| {
        ApiError::new(
            ErrorKind::ResourceNotFound,
            format!("Knowledge base with id {id} does not exist"),
        )
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
        let kb_configuration = knowledge_base_configuration(configuration)?;
        model_of_arn(&kb_configuration.model_arn, region.as_deref())?;
        let k = results_wanted(kb_configuration.retrieval_configuration.as_ref())?;
        let generation = kb_configuration.generation_configuration.as_ref();
        check_prompt_template(generation)?;
        let max_tokens = max_tokens(generation);
        let kb = knowledge_base(&shared, &kb_configuration.knowledge_base_id)?;
        let query = &request.input.text;
        let answer = generate_answer(kb, query, k, max_tokens);
        let output_tokens = count_tokens(answer["output"]["text"].as_str().unwrap_or_default());
        let tokens = (count_tokens(query), output_tokens);
        serve(
            &shared,
            "retrieve-and-generate",
            &key,
            &body,
            tokens,
            answer,
        )
        .await
    }
    .await;
    respond(&shared, &key, &request_id, result)
}
