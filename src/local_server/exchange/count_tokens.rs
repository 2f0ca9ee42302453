//! CountTokens (`POST /model/{modelId}/count-tokens`), answered from the same validation
//! and the same input count as the model routes, without quota and without faults.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{Value, json};

use super::check_access;
use crate::local_server::api_error::ApiError;
use crate::local_server::attachments::decode_base64;
use crate::local_server::fake_answer::{self, Route};
use crate::local_server::known;
use crate::local_server::request_id;
use crate::local_server::shared_state::Shared;
use crate::rules::Service;
use crate::rules::catalogue::{self, Offer};

/// The members of CountTokens' `input.converse`: what a Converse request may carry that
/// counts as input.
const CONVERSE_TOKENS_MEMBERS: &[&str] = &[
    "messages",
    "system",
    "toolConfig",
    "additionalModelRequestFields",
];

/// CountTokens (`POST /model/{modelId}/count-tokens`): the input tokens the same request
/// would be billed for on Converse or InvokeModel (cache reads and writes included), from
/// the same validation and count. It takes no quota and draws no fault.
pub async fn count_tokens(
    shared: Arc<Shared>,
    model_id: String,
    headers: http::HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = request_id();
    let region = known::signed_region(&headers);
    let counted = ApiError::check(
        Service::Runtime,
        "CountTokens",
        &[("modelId", &model_id)],
        None,
        &headers,
        &body,
    )
    .and_then(|()| count_input_tokens(&shared, &model_id, region.as_deref(), &body));
    match counted {
        Ok(input_tokens) => {
            shared.count_tokens_call(200);
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .header("x-amzn-requestid", &request_id)
                .body(Body::from(
                    serde_json::to_vec(&json!({ "inputTokens": input_tokens })).unwrap_or_default(),
                ))
                .unwrap_or_default()
        }
        Err(error) => {
            shared.count_tokens_call(error.kind.status().as_u16());
            error.into_response(&request_id)
        }
    }
}

fn count_input_tokens(
    shared: &Shared,
    model_id: &str,
    region: Option<&str>,
    body: &[u8],
) -> Result<u64, ApiError> {
    known::check_countable(model_id, region)?;
    check_access(shared, model_id)?;
    let request: Value = serde_json::from_slice(body)
        .map_err(|err| ApiError::validation(format!("Malformed request body: {err}")))?;
    let input = request
        .get("input")
        .ok_or_else(|| ApiError::missing("input"))?;
    let (kind, value) = input
        .as_object()
        .filter(|members| members.len() == 1)
        .and_then(|members| members.iter().next())
        .ok_or_else(|| {
            ApiError::validation("input must set exactly one member (converse, invokeModel)")
        })?;
    let (route, native) = match kind.as_str() {
        "converse" => {
            let members = value
                .as_object()
                .ok_or_else(|| ApiError::validation("input.converse must be an object"))?;
            let converse: serde_json::Map<String, Value> = members
                .iter()
                .filter(|(key, _)| CONVERSE_TOKENS_MEMBERS.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect();
            (
                Route::Converse,
                serde_json::to_vec(&converse).unwrap_or_default(),
            )
        }
        "invokeModel" => {
            let encoded = value
                .get("body")
                .ok_or_else(|| ApiError::missing("input.invokeModel.body"))?;
            let encoded = encoded.as_str().ok_or_else(|| {
                ApiError::validation("input.invokeModel.body must be a base64-encoded string")
            })?;
            (
                Route::Invoke,
                decode_base64(encoded, "input.invokeModel.body")?,
            )
        }
        other => {
            return Err(ApiError::validation(format!(
                "input.{other} is not a CountTokens input; use converse or invokeModel"
            )));
        }
    };
    if catalogue::count_tokens(model_id) == Offer::No {
        return Err(ApiError::validation(
            "The provided model doesn't support counting tokens.",
        ));
    }
    Ok(fake_answer::prepare(route, model_id, &native, None)?.input_tokens)
}
