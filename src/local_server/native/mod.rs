//! InvokeModel's native bodies, per model family: Anthropic Messages, Meta Llama, Titan
//! Text Embeddings v1/v2 and Cohere Embed v3. Requests are validated as the model would
//! (the text models' in `text_requests`, the embedding models' in `embedding_requests`,
//! answered at once), and text responses are shaped here the way Bedrock returns them for
//! that family, whole or as stream chunks.

mod embedding_requests;
mod text_requests;

use serde_json::{Map, Value, json};

use super::api_error::ApiError;
use super::attachments::Attachment;
use super::text::{Generation, StopReason, count_tokens};
use crate::rules::model_id::Family;

/// A valid native request.
#[derive(Debug, Clone)]
pub enum NativeRequest {
    /// A text-generation model's request.
    Text {
        input_tokens: u64,
        max_tokens: u64,
        stop_sequences: Vec<String>,
        prompt: String,
        attachments: Vec<Attachment>,
    },
    /// An embedding model's request, already answered (embeddings cost no generation time).
    Embedding { input_tokens: u64, response: Value },
}

fn object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    serde_json::from_slice(body).map_err(|err| {
        ApiError::validation(format!(
            "Malformed input request: {err}, please reformat your input and try again."
        ))
    })
}

fn malformed(detail: impl std::fmt::Display) -> ApiError {
    ApiError::validation(format!(
        "Malformed input request: {detail}, please reformat your input and try again."
    ))
}

/// Parses an InvokeModel body for `family`.
pub fn parse(family: Family, body: &[u8]) -> Result<NativeRequest, ApiError> {
    let request = object(body)?;
    match family {
        Family::Anthropic => text_requests::parse_anthropic(&request),
        Family::Llama => text_requests::parse_llama(&request),
        Family::TitanEmbedV1 | Family::TitanEmbedV2 => {
            embedding_requests::parse_titan(family, &request)
        }
        Family::CohereEmbed => embedding_requests::parse_cohere(&request),
        Family::OtherText => Err(ApiError::validation(
            "The local server simulates InvokeModel bodies for Anthropic, Meta Llama, Titan Text Embeddings and Cohere Embed models only; use the Converse API for this model.",
        )),
    }
}

fn anthropic_stop(stop: &StopReason) -> (&'static str, Value) {
    match stop {
        StopReason::EndTurn => ("end_turn", Value::Null),
        StopReason::MaxTokens => ("max_tokens", Value::Null),
        StopReason::StopSequence(s) => ("stop_sequence", json!(s)),
    }
}

fn llama_stop(stop: &StopReason) -> &'static str {
    match stop {
        StopReason::MaxTokens => "length",
        _ => "stop",
    }
}

/// The model name Anthropic responses carry, e.g. `claude-3-haiku-20240307`.
fn anthropic_model_name(model_id: &str) -> String {
    let base = crate::rules::model_id::base_model_id(model_id);
    let name = base.strip_prefix("anthropic.").unwrap_or(base);
    name.split(['-', ':'])
        .take_while(|part| !part.starts_with('v') || part.len() > 3)
        .collect::<Vec<_>>()
        .join("-")
}

/// The non-streaming response body of a text model.
pub fn text_body(
    family: Family,
    model_id: &str,
    generation: &Generation,
    input_tokens: u64,
) -> Value {
    if family == Family::Anthropic {
        let (stop_reason, stop_sequence) = anthropic_stop(&generation.stop_reason);
        json!({
            "id": format!("msg_bdrk_{}", super::request_id().replace('-', "")),
            "type": "message",
            "role": "assistant",
            "model": anthropic_model_name(model_id),
            "content": [{"type": "text", "text": generation.text}],
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": {"input_tokens": input_tokens, "output_tokens": generation.output_tokens},
        })
    } else {
        json!({
            "generation": generation.text,
            "prompt_token_count": input_tokens,
            "generation_token_count": generation.output_tokens,
            "stop_reason": llama_stop(&generation.stop_reason),
        })
    }
}

/// The chunks of a streaming text response, one per piece of generated text plus the
/// family's opening and closing chunks. The caller adds the invocation metrics to the last.
pub fn text_chunks(
    family: Family,
    model_id: &str,
    pieces: &[&str],
    generation: &Generation,
    input_tokens: u64,
) -> Vec<Value> {
    let mut chunks = Vec::new();
    if family == Family::Anthropic {
        let (stop_reason, stop_sequence) = anthropic_stop(&generation.stop_reason);
        chunks.push(json!({"type": "message_start", "message": {
            "id": format!("msg_bdrk_{}", super::request_id().replace('-', "")),
            "type": "message", "role": "assistant", "model": anthropic_model_name(model_id),
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}));
        chunks.push(json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}));
        for piece in pieces {
            chunks.push(json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": piece}}));
        }
        chunks.push(json!({"type": "content_block_stop", "index": 0}));
        chunks.push(json!({"type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
            "usage": {"output_tokens": generation.output_tokens}}));
        chunks.push(json!({"type": "message_stop"}));
    } else {
        let mut generated = 0;
        for (i, piece) in pieces.iter().enumerate() {
            generated += count_tokens(piece);
            chunks.push(json!({
                "generation": piece,
                "prompt_token_count": if i == 0 { json!(input_tokens) } else { Value::Null },
                "generation_token_count": generated,
                "stop_reason": Value::Null,
            }));
        }
        chunks.push(json!({
            "generation": "",
            "prompt_token_count": if pieces.is_empty() { json!(input_tokens) } else { Value::Null },
            "generation_token_count": generation.output_tokens,
            "stop_reason": llama_stop(&generation.stop_reason),
        }));
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local_server::text::generate;

    fn parse_json(family: Family, value: Value) -> Result<NativeRequest, ApiError> {
        parse(family, &serde_json::to_vec(&value).unwrap())
    }

    #[test]
    fn anthropic_body() {
        let request = parse_json(
            Family::Anthropic,
            json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5,
                   "system": "Be terse.",
                   "messages": [{"role": "user", "content": "Hello there. How are you today?"}]}),
        )
        .unwrap();
        let NativeRequest::Text {
            input_tokens,
            max_tokens,
            prompt,
            ..
        } = request
        else {
            panic!("text expected")
        };
        assert_eq!((input_tokens, max_tokens), (3 + 8, 5));
        let generation = generate(&prompt, max_tokens, &[]);
        let body = text_body(
            Family::Anthropic,
            "us.anthropic.claude-3-haiku-20240307-v1:0",
            &generation,
            input_tokens,
        );
        assert_eq!(body["model"], "claude-3-haiku-20240307");
        assert_eq!(body["stop_reason"], "max_tokens");
        assert_eq!(body["usage"]["output_tokens"], 5);
        assert_eq!(body["content"][0]["text"], "Hello there. How are");
        let err =
            parse_json(Family::Anthropic, json!({"max_tokens": 5, "messages": []})).unwrap_err();
        assert!(err.message.contains("anthropic_version"));
    }

    #[test]
    fn llama_chunks_count_up() {
        let generation = generate("One two three four five six. Seven.", 100, &[]);
        let pieces = crate::local_server::text::stream_pieces(&generation.text, 2);
        let chunks = text_chunks(Family::Llama, "meta.llama3", &pieces, &generation, 9);
        assert_eq!(chunks[0]["prompt_token_count"], 9);
        let last = chunks.last().unwrap();
        assert_eq!(last["stop_reason"], "stop");
        assert_eq!(last["generation_token_count"], generation.output_tokens);
        let text: String = chunks
            .iter()
            .map(|c| c["generation"].as_str().unwrap())
            .collect();
        assert_eq!(text, generation.text);
    }
}
