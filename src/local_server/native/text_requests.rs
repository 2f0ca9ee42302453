//! Text models' InvokeModel requests, validated as the model validates them: Anthropic
//! Messages (text and image blocks, the first message the user's) and Meta Llama (a
//! prompt whose chat-template markup is stripped before the fake model reads it).

use serde_json::{Map, Value};

use super::{NativeRequest, malformed};
use crate::local_server::api_error::ApiError;
use crate::local_server::attachments::{check_counts, check_image, decode_base64};
use crate::local_server::text::count_tokens;

/// What Llama generates when `max_gen_len` is not given.
const LLAMA_DEFAULT_MAX_GEN_LEN: u64 = 512;

pub(super) fn parse_anthropic(request: &Map<String, Value>) -> Result<NativeRequest, ApiError> {
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

pub(super) fn parse_llama(request: &Map<String, Value>) -> Result<NativeRequest, ApiError> {
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
#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::local_server::native::parse;
    use crate::rules::model_id::Family;

    fn parse_json(family: Family, value: Value) -> Result<NativeRequest, ApiError> {
        parse(family, &serde_json::to_vec(&value).unwrap())
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
}
