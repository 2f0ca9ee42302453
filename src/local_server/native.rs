//! InvokeModel's native bodies, per model family: Anthropic Messages, Meta Llama, Titan
//! Text Embeddings v1/v2 and Cohere Embed v3. Requests are validated as the model would,
//! and responses are shaped the way Bedrock returns them for that family.

use serde_json::{Map, Value, json};

use super::api_error::ApiError;
use super::attachments::{Attachment, check_counts, check_image, decode_base64};
use super::embed::embed;
use super::text::{Generation, StopReason, count_tokens};
use crate::rules::model_id::Family;

pub const TITAN_V1_DIMENSIONS: usize = 1536;
pub const COHERE_DIMENSIONS: usize = 1024;
pub const COHERE_MAX_TEXTS: usize = 96;
/// What Llama generates when `max_gen_len` is not given.
const LLAMA_DEFAULT_MAX_GEN_LEN: u64 = 512;

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
        Family::Anthropic => parse_anthropic(&request),
        Family::Llama => parse_llama(&request),
        Family::TitanEmbedV1 | Family::TitanEmbedV2 => parse_titan(family, &request),
        Family::CohereEmbed => parse_cohere(&request),
        Family::OtherText => Err(ApiError::validation(
            "The local server simulates InvokeModel bodies for Anthropic, Meta Llama, Titan Text Embeddings and Cohere Embed models only; use the Converse API for this model.",
        )),
    }
}

fn parse_anthropic(request: &Map<String, Value>) -> Result<NativeRequest, ApiError> {
    match request.get("anthropic_version").and_then(Value::as_str) {
        Some(v) if v.starts_with("bedrock-") => {}
        _ => {
            return Err(malformed(
                "#: required key [anthropic_version] not found or not a bedrock version (use \"bedrock-2023-05-31\")",
            ));
        }
    }
    let max_tokens = request
        .get("max_tokens")
        .and_then(Value::as_u64)
        .filter(|n| *n >= 1)
        .ok_or_else(|| malformed("#: required key [max_tokens] not found or below 1"))?;
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| malformed("#/messages: expected minimum item count: 1"))?;
    let mut input_tokens = match request.get("system") {
        Some(Value::String(s)) => count_tokens(s),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .map(count_tokens)
            .sum(),
        _ => 0,
    };
    let mut prompt = String::new();
    let mut attachments = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        if i == 0 && role != "user" {
            return Err(ApiError::validation(
                "messages: first message must use the \"user\" role",
            ));
        }
        let mut texts = Vec::new();
        match message.get("content") {
            Some(Value::String(text)) => texts.push(text.clone()),
            Some(Value::Array(blocks)) => {
                for (j, block) in blocks.iter().enumerate() {
                    let path = format!("messages.{i}.content.{j}");
                    match block.get("type").and_then(Value::as_str) {
                        Some("text") => {
                            let text =
                                block.get("text").and_then(Value::as_str).ok_or_else(|| {
                                    malformed(format!("#/{path}: required key [text] not found"))
                                })?;
                            texts.push(text.to_string());
                        }
                        Some("image") => {
                            let source = block.get("source").cloned().unwrap_or(Value::Null);
                            let media_type = source
                                .get("media_type")
                                .and_then(Value::as_str)
                                .unwrap_or("");
                            let format = media_type.strip_prefix("image/").unwrap_or(media_type);
                            let data = source.get("data").and_then(Value::as_str).unwrap_or("");
                            let bytes = decode_base64(data, &format!("{path}.source.data"))?;
                            let image = check_image(format, &bytes, &path)?;
                            input_tokens += image.tokens;
                            attachments.push(image);
                        }
                        other => {
                            return Err(malformed(format!(
                                "#/{path}: unsupported content type {other:?}"
                            )));
                        }
                    }
                }
            }
            _ => {
                return Err(malformed(format!(
                    "#/messages/{i}: required key [content] not found"
                )));
            }
        }
        input_tokens += texts.iter().map(|t| count_tokens(t)).sum::<u64>();
        if role == "user" {
            prompt = texts.join("\n\n");
        }
    }
    check_counts(&attachments)?;
    let stop_sequences = request
        .get("stop_sequences")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(NativeRequest::Text {
        input_tokens,
        max_tokens,
        stop_sequences,
        prompt,
        attachments,
    })
}

/// Removes Llama's chat-template markup (`<|start_header_id|>user<|end_header_id|>` and
/// other `<|...|>` tokens) so only the prompt's words remain.
fn strip_llama_markup(prompt: &str) -> String {
    let mut out = String::with_capacity(prompt.len());
    let mut rest = prompt;
    while let Some(start) = rest.find("<|") {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let Some(end) = after.find("|>") else {
            rest = after;
            break;
        };
        let token = &after[..end + 2];
        rest = &after[end + 2..];
        if token == "<|start_header_id|>"
            && let Some(close) = rest.find("<|end_header_id|>")
        {
            rest = &rest[close + "<|end_header_id|>".len()..];
        }
        out.push(' ');
    }
    out.push_str(rest);
    out
}

fn parse_llama(request: &Map<String, Value>) -> Result<NativeRequest, ApiError> {
    let prompt = request
        .get("prompt")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| malformed("#: required key [prompt] not found"))?;
    let max_tokens = match request.get("max_gen_len") {
        None => LLAMA_DEFAULT_MAX_GEN_LEN,
        Some(v) => v.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
            malformed(format!(
                "#/max_gen_len: {v} is not an integer of at least 1"
            ))
        })?,
    };
    for field in ["temperature", "top_p"] {
        if let Some(v) = request.get(field)
            && !v.as_f64().is_some_and(|x| (0.0..=1.0).contains(&x))
        {
            return Err(malformed(format!("#/{field}: {v} is not between 0 and 1")));
        }
    }
    Ok(NativeRequest::Text {
        input_tokens: count_tokens(prompt),
        max_tokens,
        stop_sequences: Vec::new(),
        prompt: strip_llama_markup(prompt),
        attachments: Vec::new(),
    })
}

fn parse_titan(family: Family, request: &Map<String, Value>) -> Result<NativeRequest, ApiError> {
    let text = request
        .get("inputText")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("#: required key [inputText] not found"))?;
    if text.is_empty() {
        return Err(malformed("#/inputText: expected minLength: 1, actual: 0"));
    }
    let (dimensions, normalize) = if family == Family::TitanEmbedV2 {
        let dimensions = match request.get("dimensions") {
            None => 1024,
            Some(v) => match v.as_u64() {
                Some(d @ (256 | 512 | 1024)) => d as usize,
                _ => {
                    return Err(malformed(format!(
                        "#/dimensions: {v} is not a valid enum value (256, 512, 1024)"
                    )));
                }
            },
        };
        let normalize = match request.get("normalize") {
            None => true,
            Some(v) => v.as_bool().ok_or_else(|| {
                malformed(format!("#/normalize: expected type: Boolean, found: {v}"))
            })?,
        };
        (dimensions, normalize)
    } else {
        if let Some(key) = request.keys().find(|k| *k != "inputText") {
            return Err(malformed(format!(
                "extraneous key [{key}] is not permitted"
            )));
        }
        (TITAN_V1_DIMENSIONS, false)
    };
    let input_tokens = count_tokens(text);
    let embedding = embed(text, dimensions, normalize);
    let response = if family == Family::TitanEmbedV2 {
        json!({
            "embedding": embedding,
            "embeddingsByType": {"float": embedding},
            "inputTextTokenCount": input_tokens,
        })
    } else {
        json!({"embedding": embedding, "inputTextTokenCount": input_tokens})
    };
    Ok(NativeRequest::Embedding {
        input_tokens,
        response,
    })
}

fn parse_cohere(request: &Map<String, Value>) -> Result<NativeRequest, ApiError> {
    let texts = request
        .get("texts")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("#: required key [texts] not found"))?;
    if texts.is_empty() || texts.len() > COHERE_MAX_TEXTS {
        return Err(malformed(format!(
            "#/texts: expected between 1 and {COHERE_MAX_TEXTS} items, got {}",
            texts.len()
        )));
    }
    let texts: Vec<&str> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.as_str()
                .ok_or_else(|| malformed(format!("#/texts/{i}: expected type: String")))
        })
        .collect::<Result<_, _>>()?;
    match request.get("input_type").and_then(Value::as_str) {
        Some("search_document" | "search_query" | "classification" | "clustering") => {}
        _ => {
            return Err(malformed(
                "#/input_type: required, one of search_document, search_query, classification, clustering",
            ));
        }
    }
    let by_type = match request.get("embedding_types") {
        None => false,
        Some(v) if v == &json!(["float"]) => true,
        Some(v) => {
            return Err(malformed(format!(
                "#/embedding_types: {v} is not supported by the local server (use [\"float\"] or omit it)"
            )));
        }
    };
    let embeddings: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| embed(t, COHERE_DIMENSIONS, true))
        .collect();
    let input_tokens = texts.iter().map(|t| count_tokens(t)).sum();
    let response = json!({
        "id": super::request_id(),
        "texts": texts,
        "response_type": if by_type { "embeddings_by_type" } else { "embeddings_floats" },
        "embeddings": if by_type { json!({"float": embeddings}) } else { json!(embeddings) },
    });
    Ok(NativeRequest::Embedding {
        input_tokens,
        response,
    })
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
    fn llama_markup_is_stripped() {
        let request = parse_json(
            Family::Llama,
            json!({"prompt": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nSay hi. Then stop.<|eot_id|><|start_header_id|>assistant<|end_header_id|>"}),
        )
        .unwrap();
        let NativeRequest::Text {
            prompt, max_tokens, ..
        } = request
        else {
            panic!()
        };
        assert_eq!(
            prompt.split_whitespace().collect::<Vec<_>>().join(" "),
            "Say hi. Then stop."
        );
        assert_eq!(max_tokens, LLAMA_DEFAULT_MAX_GEN_LEN);
    }

    #[test]
    fn titan_and_cohere_embeddings() {
        let NativeRequest::Embedding {
            response,
            input_tokens,
        } = parse_json(
            Family::TitanEmbedV2,
            json!({"inputText": "hello world", "dimensions": 256, "normalize": true}),
        )
        .unwrap()
        else {
            panic!()
        };
        assert_eq!(input_tokens, 3);
        assert_eq!(response["embedding"].as_array().unwrap().len(), 256);
        assert_eq!(response["inputTextTokenCount"], 3);
        assert!(
            parse_json(
                Family::TitanEmbedV2,
                json!({"inputText": "x", "dimensions": 300})
            )
            .is_err()
        );
        let NativeRequest::Embedding { response, .. } =
            parse_json(Family::TitanEmbedV1, json!({"inputText": "hello"})).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            response["embedding"].as_array().unwrap().len(),
            TITAN_V1_DIMENSIONS
        );

        let NativeRequest::Embedding {
            response,
            input_tokens,
        } = parse_json(
            Family::CohereEmbed,
            json!({"texts": ["one", "two three"], "input_type": "search_document"}),
        )
        .unwrap()
        else {
            panic!()
        };
        assert_eq!(input_tokens, 1 + 3);
        assert_eq!(response["response_type"], "embeddings_floats");
        assert_eq!(response["embeddings"].as_array().unwrap().len(), 2);
        assert_eq!(
            response["embeddings"][1].as_array().unwrap().len(),
            COHERE_DIMENSIONS
        );
        let too_many: Vec<String> = (0..97).map(|i| format!("t{i}")).collect();
        let err = parse_json(
            Family::CohereEmbed,
            json!({"texts": too_many, "input_type": "clustering"}),
        )
        .unwrap_err();
        assert!(err.message.contains("between 1 and 96"));
        let err = parse_json(Family::CohereEmbed, json!({"texts": ["a"]})).unwrap_err();
        assert!(err.message.contains("input_type"));
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
