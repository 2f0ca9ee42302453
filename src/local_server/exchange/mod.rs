//! One request's life on the local server: access and model checks, parsing, the quota
//! reservation (a flex request leaves a reserve to the other tiers), the seeded fault, the
//! wait that stands for generation (longer in flex, shorter in priority), the answer (JSON
//! here, paced event-stream frames in `streamed_answer`, each reporting the tier that
//! served), then settling the quota and counting what was delivered. CountTokens
//! (`count_tokens`) shares the access check, the validation and the input count, without
//! quota.

mod count_tokens;
mod streamed_answer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::json;
use tokio::sync::Notify;

use super::api_error::{ApiError, ErrorKind};
use super::eventstream;
use super::fake_answer::{self, Route, Work};
use super::known;
use super::request_faults::{Fault, glob_match};
use super::request_id;
use super::shared_state::{InFlight, Shared, body_hash};
use super::tier_policy;
use crate::rules::Service;
use crate::rules::model_id::base_model_id;
use crate::vocab::ServiceTier;

pub use count_tokens::count_tokens;

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
        .get(tier_policy::HEADER)
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
        (config.latency + generating).mul_f64(tier_policy::pace(tier))
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
        let mut work = fake_answer::prepare(self.route, model_id, body, tier_header)?;
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
        let mut body = fake_answer::response_body(work, self.route, self.model_id, latency_ms);
        let mut response = self.response("application/json");
        if self.route == Route::Invoke {
            response = response
                .header("x-amzn-bedrock-input-token-count", work.input_tokens)
                .header("x-amzn-bedrock-output-token-count", work.output_tokens())
                .header("x-amzn-bedrock-invocation-latency", latency_ms)
                .header(tier_policy::HEADER, work.service_tier.as_str());
        } else {
            body["serviceTier"] = json!({"type": work.service_tier.as_str()});
        }
        response
            .body(Body::from(serde_json::to_vec(&body).unwrap_or_default()))
            .unwrap_or_default()
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
