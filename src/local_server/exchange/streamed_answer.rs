//! The streamed answer of ConverseStream and InvokeModelWithResponseStream: the frames
//! built up front (a tool call streams as a block start naming the tool, then its input
//! as pieces of JSON text; InvokeModel's chunks in the family's native shape), then sent
//! paced by a task after the first-token latency, cut halfway by a throttling exception
//! under the stream-throttle fault, and the quota settled for what was sent.

use axum::body::{Body, Bytes};
use axum::response::Response;
use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{Call, EVENT_STREAM, Reservation};
use crate::local_server::api_error::{ApiError, ErrorKind};
use crate::local_server::eventstream;
use crate::local_server::fake_answer::{Answer, Route, ToolUse, Work};
use crate::local_server::native;
use crate::local_server::shared_state::InFlight;
use crate::local_server::text::stream_pieces;
use crate::local_server::tier_policy;

/// Output tokens per stream delta.
const STREAM_PIECE_TOKENS: usize = 4;

impl Call<'_> {
    /// Starts a paced event stream and returns its response at once.
    pub(super) fn stream(
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
            .mul_f64(tier_policy::pace(work.service_tier));
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
                .header(tier_policy::HEADER, service_tier.as_str());
        }
        response.body(Body::from_stream(frames)).unwrap_or_default()
    }
}

/// An InvokeModelWithResponseStream `chunk` event carrying `payload` as base64 bytes.
fn chunk_frame(payload: &Value) -> Bytes {
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(serde_json::to_vec(payload).unwrap_or_default());
    eventstream::event("chunk", &json!({ "bytes": encoded }))
}
