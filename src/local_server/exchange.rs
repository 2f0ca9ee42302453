//! One request's life on the local server: access and model checks, parsing, the quota
//! reservation (a flex request leaves a reserve to the other tiers), the seeded fault, the
//! wait that stands for generation (longer in flex, shorter in priority), the answer (JSON
//! or paced event-stream frames, reporting the tier that served), then settling the quota
//! and counting what was delivered. CountTokens is answered here too, from the same
//! validation and the same input count, without quota.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::response::Response;
use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use super::api_error::{ApiError, ErrorKind};
use super::attachments::decode_base64;
use super::eventstream;
use super::faults::{Fault, glob_match};
use super::known;
use super::model::{self, Answer, Route, ToolUse, Work};
use super::native;
use super::request_id;
use super::state::{InFlight, Shared, body_hash};
use super::text::stream_pieces;
use super::tier;
use crate::rules::Service;
use crate::rules::catalogue::{self, Offer};
use crate::rules::model_id::base_model_id;
use crate::vocab::ServiceTier;

/// Output tokens per stream delta.
const STREAM_PIECE_TOKENS: usize = 4;
const GARBAGE_BODY: &[u8] = b"{\"output\": {\"message\": {\"role\": \"assistant\", \"content\": [{\"text\": \"The answer was cut";
const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

/// One call's quota reservation and how many tokens it will really use.
#[derive(Clone, Copy)]
struct Reservation {
    reserved: u64,
    used: u64,
}

pub async fn handle(
    shared: Arc<Shared>,
    route: Route,
    model_id: String,
    headers: http::HeaderMap,
    body: Bytes,
    abort: Option<ConnectionAbort>,
) -> Response {
    let request_id = request_id();
    shared.arrive(route.name(), &model_id);
    let in_flight = InFlight(shared.clone());
    let region = known::signed_region(&headers);
    let call = Call {
        shared: &shared,
        route,
        model_id: &model_id,
        region: region.as_deref(),
        request_id: &request_id,
        started: Instant::now(),
    };
    let tier_header = headers
        .get(tier::HEADER)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let checked = ApiError::check(
        Service::Runtime,
        route.operation(),
        &[("modelId", &model_id)],
        None,
        &headers,
        &body,
    );
    let outcome = match checked {
        Ok(()) => {
            call.respond(&body, tier_header.as_deref(), abort, in_flight)
                .await
        }
        Err(refused) => Err(refused),
    };
    match outcome {
        Ok(response) => response,
        Err(error) => {
            let throttle = error.kind == ErrorKind::Throttling;
            shared.record_error(&model_id, Some(error.kind.status().as_u16()), throttle);
            let mut response = error.into_response(&request_id);
            if let Some(after) = shared.config.retry_after.filter(|_| throttle)
                && let Ok(value) =
                    http::HeaderValue::from_str(&format!("{:.3}", after.as_secs_f64()))
            {
                response.headers_mut().insert("retry-after", value);
            }
            response
        }
    }
}

struct Call<'a> {
    shared: &'a Arc<Shared>,
    route: Route,
    model_id: &'a str,
    /// The region the request was signed for.
    region: Option<&'a str>,
    request_id: &'a str,
    started: Instant,
}

impl Call<'_> {
    fn burn(&self, output_tokens: u64) -> u64 {
        (output_tokens as f64 * self.shared.config.burndown).ceil() as u64
    }

    /// The time a model takes to produce `output_tokens` in `tier`, first-token latency
    /// included.
    fn generation_time(&self, output_tokens: u64, tier: ServiceTier) -> Duration {
        let config = &self.shared.config;
        let generating = if config.tokens_per_sec > 0.0 {
            Duration::from_secs_f64(output_tokens as f64 / config.tokens_per_sec)
        } else {
            Duration::ZERO
        };
        (config.latency + generating).mul_f64(tier::pace(tier))
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    async fn respond(
        &self,
        body: &Bytes,
        tier_header: Option<&str>,
        abort: Option<ConnectionAbort>,
        in_flight: InFlight,
    ) -> Result<Response, ApiError> {
        let model_id = self.model_id;
        known::check(model_id, self.region)?;
        check_access(self.shared, model_id)?;
        let mut work = model::prepare(self.route, model_id, body, tier_header)?;
        work.cache = self.shared.cache_use(model_id, &work.cache_prefixes);

        let hash = body_hash(self.route.name(), model_id, body);
        let mut reservation = Reservation {
            reserved: work.input_tokens + self.burn(work.max_tokens),
            used: work.input_tokens + self.burn(work.output_tokens()),
        };
        let admitted = self.shared.admit(
            model_id,
            hash,
            reservation.reserved,
            reservation.used,
            Some(work.service_tier),
        );
        let (fault, arrival) = match admitted {
            Ok(admitted) => admitted,
            Err(shortage) => {
                // Over a network a throttle takes a round trip to come back.
                tokio::time::sleep(self.shared.config.throttle_delay).await;
                return Err(ApiError::new(ErrorKind::Throttling, shortage.message()));
            }
        };
        if self.shared.schema_violated(hash, arrival) {
            work.break_schema();
            reservation.used = work.input_tokens + self.burn(work.output_tokens());
        }
        if fault != Fault::None {
            return self
                .inject(fault, &work, reservation, abort, in_flight)
                .await;
        }
        if self.route.streaming() {
            let throttled = self.shared.stream_throttled(hash, arrival);
            return Ok(self.stream(work, reservation, hash, throttled, in_flight));
        }
        tokio::time::sleep(self.generation_time(work.output_tokens(), work.service_tier)).await;
        self.shared
            .settle(model_id, reservation.reserved, reservation.used);
        self.shared.deliver(
            model_id,
            hash,
            work.delivered(),
            Some(work.service_tier),
            &work.cache_prefixes,
            &work.attachments,
        );
        Ok(self.answer(&work))
    }

    /// Answers with the drawn fault instead of the model's answer.
    async fn inject(
        &self,
        fault: Fault,
        work: &Work,
        reservation: Reservation,
        abort: Option<ConnectionAbort>,
        in_flight: InFlight,
    ) -> Result<Response, ApiError> {
        let shared = self.shared;
        shared.record_fault(fault);
        let error = match fault {
            Fault::None => unreachable!("inject is called for faults only"),
            Fault::Reset => {
                shared.settle(self.model_id, reservation.reserved, 0);
                if let Some(abort) = abort {
                    drop(in_flight);
                    abort.close();
                    std::future::pending::<()>().await;
                }
                ApiError::new(ErrorKind::InternalServer, "connection reset")
            }
            Fault::InternalServer => ApiError::new(
                ErrorKind::InternalServer,
                "The server encountered an internal error while processing the request.",
            ),
            Fault::ServiceUnavailable => ApiError::new(
                ErrorKind::ServiceUnavailable,
                "The service is temporarily unable to handle the request. Try again later.",
            ),
            Fault::ModelError => ApiError::new(
                ErrorKind::ModelError,
                "The system encountered an unexpected error during processing. Try your request again.",
            ),
            Fault::Timeout => {
                tokio::time::sleep(shared.config.timeout_delay).await;
                ApiError::new(
                    ErrorKind::ModelTimeout,
                    "Model has timed out in processing the request. Try your request again.",
                )
            }
            Fault::Garbage => {
                tokio::time::sleep(self.generation_time(work.output_tokens(), work.service_tier))
                    .await;
                shared.settle(self.model_id, reservation.reserved, reservation.used);
                shared.record_garbage(self.model_id);
                return Ok(self.garbage());
            }
        };
        shared.settle(self.model_id, reservation.reserved, 0);
        Err(error)
    }

    fn response(&self, content_type: &str) -> http::response::Builder {
        Response::builder()
            .status(200)
            .header("content-type", content_type)
            .header("x-amzn-requestid", self.request_id)
    }

    fn garbage(&self) -> Response {
        let (content_type, body) = if self.route.streaming() {
            // A frame whose checksum does not match its bytes.
            let mut frame = eventstream::event("chunk", &json!({"bytes": ""})).to_vec();
            let last = frame.len() - 1;
            frame[last] ^= 0xff;
            (EVENT_STREAM, frame)
        } else {
            ("application/json", GARBAGE_BODY.to_vec())
        };
        self.response(content_type)
            .body(Body::from(body))
            .unwrap_or_default()
    }

    /// The non-streaming answer, reporting the tier that served it.
    fn answer(&self, work: &Work) -> Response {
        let latency_ms = self.elapsed_ms();
        let mut body = model::response_body(work, self.route, self.model_id, latency_ms);
        let mut response = self.response("application/json");
        if self.route == Route::Invoke {
            response = response
                .header("x-amzn-bedrock-input-token-count", work.input_tokens)
                .header("x-amzn-bedrock-output-token-count", work.output_tokens())
                .header("x-amzn-bedrock-invocation-latency", latency_ms)
                .header(tier::HEADER, work.service_tier.as_str());
        } else {
            body["serviceTier"] = json!({"type": work.service_tier.as_str()});
        }
        response
            .body(Body::from(serde_json::to_vec(&body).unwrap_or_default()))
            .unwrap_or_default()
    }

    /// Starts a paced event stream and returns its response at once.
    fn stream(
        &self,
        work: Work,
        reservation: Reservation,
        hash: u64,
        throttled: bool,
        in_flight: InFlight,
    ) -> Response {
        let (tx, rx) = mpsc::channel::<Bytes>(8);
        let shared = self.shared.clone();
        let model_id = self.model_id.to_string();
        let route = self.route;
        let started = self.started;
        let service_tier = work.service_tier;
        let first_token = self
            .shared
            .config
            .latency
            .mul_f64(tier::pace(work.service_tier));
        let generating = self
            .generation_time(work.output_tokens(), work.service_tier)
            .saturating_sub(first_token);
        let burn_partial = {
            let burndown = self.shared.config.burndown;
            move |tokens: f64| (tokens * burndown).ceil() as u64
        };
        tokio::spawn(async move {
            let _in_flight = in_flight;
            let Answer::Text(generation) = &work.answer else {
                return;
            };
            let pieces = stream_pieces(&generation.text, STREAM_PIECE_TOKENS);
            let tool_text = work.tool_use.as_ref().map(ToolUse::input_text);
            // InvokeModel streams carry the invocation metrics in their last chunk.
            let mut last_chunk = None;
            let (opening, body) = match (route, &work.tool_use, &tool_text) {
                // A tool call streams as Bedrock streams it: a block start naming the tool,
                // then its input as pieces of JSON text.
                (Route::ConverseStream, Some(tool), Some(text)) => (
                    vec![
                        eventstream::event("messageStart", &json!({"role": "assistant"})),
                        eventstream::event(
                            "contentBlockStart",
                            &json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": tool.id, "name": tool.name}}}),
                        ),
                    ],
                    stream_pieces(text, STREAM_PIECE_TOKENS)
                        .iter()
                        .map(|piece| {
                            eventstream::event(
                                "contentBlockDelta",
                                &json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": piece}}}),
                            )
                        })
                        .collect::<Vec<_>>(),
                ),
                (Route::ConverseStream, _, _) => (
                    vec![eventstream::event(
                        "messageStart",
                        &json!({"role": "assistant"}),
                    )],
                    pieces
                        .iter()
                        .map(|piece| {
                            eventstream::event(
                                "contentBlockDelta",
                                &json!({"contentBlockIndex": 0, "delta": {"text": piece}}),
                            )
                        })
                        .collect::<Vec<_>>(),
                ),
                _ => {
                    let mut chunks = native::text_chunks(
                        work.family,
                        &model_id,
                        &pieces,
                        generation,
                        work.input_tokens,
                    );
                    last_chunk = chunks.pop();
                    (Vec::new(), chunks.iter().map(chunk_frame).collect())
                }
            };
            tokio::time::sleep(first_token).await;
            let first_byte_ms = started.elapsed().as_millis() as u64;
            for frame in opening {
                if tx.send(frame).await.is_err() {
                    shared.settle(&model_id, reservation.reserved, 0);
                    return;
                }
            }
            let pause = generating / body.len().max(1) as u32;
            // A throttled stream is cut halfway through its deltas.
            let cut = throttled.then_some(body.len() / 2);
            let frames = body.len();
            for (i, frame) in body.into_iter().map(Some).chain([None]).enumerate() {
                let share = i.min(frames) as f64 / frames.max(1) as f64;
                let used_so_far =
                    work.input_tokens + burn_partial(share * generation.output_tokens as f64);
                if cut == Some(i) {
                    shared.settle(&model_id, reservation.reserved, used_so_far);
                    shared.record_stream_throttle();
                    shared.record_error(&model_id, None, true);
                    let error = ApiError::new(
                        ErrorKind::Throttling,
                        "Too many tokens, please wait before trying again.",
                    );
                    let _ = tx.send(eventstream::exception(&error)).await;
                    return;
                }
                let Some(frame) = frame else { break };
                tokio::time::sleep(pause).await;
                if tx.send(frame).await.is_err() {
                    shared.settle(&model_id, reservation.reserved, used_so_far);
                    return;
                }
            }
            let latency_ms = started.elapsed().as_millis() as u64;
            let closing = match route {
                Route::ConverseStream => vec![
                    eventstream::event("contentBlockStop", &json!({"contentBlockIndex": 0})),
                    eventstream::event(
                        "messageStop",
                        &json!({"stopReason": if work.tool_use.is_some() {
                            "tool_use"
                        } else {
                            generation.stop_reason.converse_name()
                        }}),
                    ),
                    eventstream::event(
                        "metadata",
                        &json!({
                            "usage": work.converse_usage(),
                            "metrics": {"latencyMs": latency_ms},
                            "serviceTier": {"type": work.service_tier.as_str()},
                        }),
                    ),
                ],
                _ => {
                    let metrics = json!({
                        "inputTokenCount": work.input_tokens,
                        "outputTokenCount": generation.output_tokens,
                        "invocationLatency": latency_ms,
                        "firstByteLatency": first_byte_ms,
                    });
                    let mut last = last_chunk.take().unwrap_or_else(|| json!({}));
                    last["amazon-bedrock-invocationMetrics"] = metrics;
                    vec![chunk_frame(&last)]
                }
            };
            shared.settle(&model_id, reservation.reserved, reservation.used);
            shared.deliver(
                &model_id,
                hash,
                work.delivered(),
                Some(work.service_tier),
                &work.cache_prefixes,
                &work.attachments,
            );
            for frame in closing {
                if tx.send(frame).await.is_err() {
                    return;
                }
            }
        });
        let frames = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|frame| (Ok::<_, std::convert::Infallible>(frame), rx))
        });
        let mut response = self.response(EVENT_STREAM);
        if route == Route::InvokeStream {
            // The type of the chunks' bytes, a required member of the response.
            response = response
                .header("x-amzn-bedrock-content-type", "application/json")
                .header(tier::HEADER, service_tier.as_str());
        }
        response.body(Body::from_stream(frames)).unwrap_or_default()
    }
}

/// `--deny-model`: the account has no access to the model.
fn check_access(shared: &Shared, model_id: &str) -> Result<(), ApiError> {
    let base = base_model_id(model_id);
    if shared
        .config
        .deny_models
        .iter()
        .any(|pattern| glob_match(pattern, model_id) || glob_match(pattern, base))
    {
        return Err(ApiError::new(
            ErrorKind::AccessDenied,
            "You don't have access to the model with the specified model ID.",
        ));
    }
    Ok(())
}

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
    Ok(model::prepare(route, model_id, &native, None)?.input_tokens)
}

/// An InvokeModelWithResponseStream `chunk` event carrying `payload` as base64 bytes.
fn chunk_frame(payload: &Value) -> Bytes {
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(serde_json::to_vec(payload).unwrap_or_default());
    eventstream::event("chunk", &json!({ "bytes": encoded }))
}

/// Closes the connection a request arrived on (the `--reset-rate` fault); the accept loop
/// in `server` puts one in each request's extensions.
#[derive(Clone, Default)]
pub struct ConnectionAbort(Arc<Notify>);

impl ConnectionAbort {
    pub fn close(&self) {
        self.0.notify_one();
    }

    /// Resolves once [`ConnectionAbort::close`] was called (before or after).
    pub async fn closed(&self) {
        self.0.notified().await
    }
}
