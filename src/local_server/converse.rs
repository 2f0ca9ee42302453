//! Converse and ConverseStream requests: validated like Bedrock validates them, with
//! messages that name the offending field, and reduced to what the fake model needs (the
//! prompt, the input-token count, `maxTokens`, stop sequences, the cache points, the
//! forced tool, the structured-output schema and the service tier asked for).

use serde_json::{Map, Value};
use xxhash_rust::xxh3::Xxh3;

use super::api_error::ApiError;
use super::attachments::{Attachment, check_counts, check_document, check_image, decode_base64};
use super::structured;
use super::text::count_tokens;
use super::tools::{self, ForcedTool};

/// A prefix of the request that ends at a `cachePoint` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePrefix {
    pub hash: u128,
    pub tokens: u64,
}

/// What a valid Converse request asks of the model.
#[derive(Debug, Clone)]
pub struct ConverseRequest {
    /// Every input token, cached or not.
    pub input_tokens: u64,
    pub max_tokens: Option<u64>,
    pub stop_sequences: Vec<String>,
    /// The text of the last user message: what the fake model summarizes.
    pub prompt: String,
    /// Prefixes ending at each `cachePoint`, in order.
    pub cache_prefixes: Vec<CachePrefix>,
    pub attachments: Vec<Attachment>,
    /// The tool the model must call (`toolChoice` `tool`, or `any` with the first tool).
    pub forced_tool: Option<ForcedTool>,
    /// The JSON Schema of `outputConfig.textFormat`: the answer's text must conform to it.
    pub output_schema: Option<Value>,
    /// `serviceTier.type` as sent, not yet checked against the tiers.
    pub service_tier: Option<String>,
}

/// Walks the request in order, counting tokens and hashing the content so far.
struct Walk {
    tokens: u64,
    /// A text block was seen earlier in the current message.
    text_seen: bool,
    hasher: Xxh3,
    cache_prefixes: Vec<CachePrefix>,
    attachments: Vec<Attachment>,
    /// A `toolUse` or `toolResult` block was seen (they need a `toolConfig`).
    tool_blocks: bool,
}

impl Walk {
    fn absorb(&mut self, block: &Value, tokens: u64) {
        self.tokens += tokens;
        self.hasher
            .update(&serde_json::to_vec(block).unwrap_or_default());
    }

    fn cache_point(&mut self) {
        self.cache_prefixes.push(CachePrefix {
            hash: self.hasher.digest128(),
            tokens: self.tokens,
        });
    }
}

const MESSAGE_BLOCKS: &[&str] = &[
    "text",
    "image",
    "document",
    "video",
    "toolUse",
    "toolResult",
    "guardContent",
    "cachePoint",
    "reasoningContent",
    "citationsContent",
];
const SYSTEM_BLOCKS: &[&str] = &["text", "guardContent", "cachePoint"];

/// The single member of a union-typed block, or a validation error naming `path`.
fn single_member<'a>(
    block: &'a Value,
    path: &str,
    allowed: &[&str],
) -> Result<(&'a str, &'a Value), ApiError> {
    let object = block
        .as_object()
        .ok_or_else(|| ApiError::validation(format!("{path} must be an object")))?;
    if object.len() != 1 {
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        return Err(ApiError::validation(format!(
            "{path} must set exactly one member ({}), found {}{}",
            allowed.join(", "),
            object.len(),
            if keys.is_empty() {
                String::new()
            } else {
                format!(": {}", keys.join(", "))
            }
        )));
    }
    let (key, value) = object.iter().next().expect("one member");
    if !allowed.contains(&key.as_str()) {
        return Err(ApiError::validation(format!(
            "{path}.{key} is not a supported content block; use one of {}",
            allowed.join(", ")
        )));
    }
    Ok((key.as_str(), value))
}

fn string_field<'a>(object: &'a Value, field: &str, path: &str) -> Result<&'a str, ApiError> {
    object.get(field).and_then(Value::as_str).ok_or_else(|| {
        ApiError::validation(format!("{path}.{field} is required and must be a string"))
    })
}

fn source_bytes(block: &Value, path: &str) -> Result<Vec<u8>, ApiError> {
    let encoded = block
        .get("source")
        .and_then(|s| s.get("bytes"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::validation(format!(
                "{path}.source.bytes is required (Bedrock takes image and document bytes only, not URLs)"
            ))
        })?;
    decode_base64(encoded, &format!("{path}.source.bytes"))
}

fn absorb_block(
    walk: &mut Walk,
    key: &str,
    value: &Value,
    block: &Value,
    path: &str,
) -> Result<Option<String>, ApiError> {
    let path = format!("{path}.{key}");
    match key {
        "text" => {
            let text = value
                .as_str()
                .ok_or_else(|| ApiError::validation(format!("{path} must be a string")))?;
            if text.trim().is_empty() {
                return Err(ApiError::validation(format!(
                    "{path} is blank; text content blocks must be non-empty"
                )));
            }
            walk.absorb(block, count_tokens(text));
            walk.text_seen = true;
            return Ok(Some(text.to_string()));
        }
        "image" => {
            let format = string_field(value, "format", &path)?;
            let bytes = source_bytes(value, &path)?;
            let mut image = check_image(format, &bytes, &path)?;
            image.after_text = walk.text_seen;
            walk.absorb(block, image.tokens);
            walk.attachments.push(image);
        }
        "document" => {
            let format = string_field(value, "format", &path)?;
            let name = string_field(value, "name", &path)?;
            let bytes = source_bytes(value, &path)?;
            let mut document = check_document(format, name, &bytes, &path)?;
            document.after_text = walk.text_seen;
            walk.absorb(block, document.tokens);
            walk.attachments.push(document);
        }
        "cachePoint" => {
            if value.get("type").and_then(Value::as_str) != Some("default") {
                return Err(ApiError::validation(format!(
                    "{path}.type must be \"default\""
                )));
            }
            walk.cache_point();
        }
        _ => {
            walk.tool_blocks |= key == "toolUse" || key == "toolResult";
            let size = serde_json::to_string(value).map(|s| s.len()).unwrap_or(0);
            walk.absorb(block, (size as u64).div_ceil(4));
        }
    }
    Ok(None)
}

/// `maxTokens` and the stop sequences. Their types and ranges were checked against the
/// service model before (`crate::rules`).
fn inference_config(config: Option<&Value>) -> Result<(Option<u64>, Vec<String>), ApiError> {
    let Some(config) = config else {
        return Ok((None, Vec::new()));
    };
    let max_tokens = config.get("maxTokens").and_then(Value::as_u64);
    let stops = config
        .get("stopSequences")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok((max_tokens, stops))
}

/// Parses and validates a Converse (or ConverseStream) request body.
pub fn parse(body: &[u8]) -> Result<ConverseRequest, ApiError> {
    let request: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|err| ApiError::validation(format!("Malformed request body: {err}")))?;
    let mut walk = Walk {
        tokens: 0,
        text_seen: false,
        hasher: Xxh3::new(),
        cache_prefixes: Vec::new(),
        attachments: Vec::new(),
        tool_blocks: false,
    };

    // Tools come first in the prompt, so in every cached prefix, as on Bedrock.
    let tool_config = request.get("toolConfig");
    let forced_tool = match tool_config {
        Some(config) => tools::parse(config, &mut |tool: &Value| {
            if tool.get("cachePoint").is_some() {
                walk.cache_point();
            } else {
                let size = serde_json::to_string(tool).map(|s| s.len()).unwrap_or(0);
                walk.absorb(tool, (size as u64).div_ceil(4));
            }
        })?,
        None => None,
    };

    if let Some(system) = request.get("system") {
        let blocks = system
            .as_array()
            .ok_or_else(|| ApiError::validation("system must be an array of content blocks"))?;
        for (i, block) in blocks.iter().enumerate() {
            let path = format!("system.{i}");
            let (key, value) = single_member(block, &path, SYSTEM_BLOCKS)?;
            absorb_block(&mut walk, key, value, block, &path)?;
        }
    }

    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            ApiError::validation(
                "messages is required and must hold at least one message; a conversation starts with a user message",
            )
        })?;
    let mut prompt = String::new();
    let mut previous_role: Option<&str> = None;
    for (i, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        if role != "user" && role != "assistant" {
            return Err(ApiError::validation(format!(
                "messages.{i}.role must be \"user\" or \"assistant\", got {:?}",
                message.get("role").cloned().unwrap_or(Value::Null)
            )));
        }
        if i == 0 && role != "user" {
            return Err(ApiError::validation(
                "A conversation must start with a user message. Try again with a conversation that starts with a user message.",
            ));
        }
        if previous_role == Some(role) {
            return Err(ApiError::validation(format!(
                "A conversation must alternate between user and assistant roles: messages.{} and messages.{i} are both {role}. Make sure the conversation alternates between user and assistant turns and try again.",
                i - 1
            )));
        }
        previous_role = Some(role);
        let content = message
            .get("content")
            .and_then(Value::as_array)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                ApiError::validation(format!(
                    "messages.{i}.content must be an array holding at least one content block"
                ))
            })?;
        walk.hasher.update(role.as_bytes());
        walk.text_seen = false;
        let mut texts = Vec::new();
        for (j, block) in content.iter().enumerate() {
            let path = format!("messages.{i}.content.{j}");
            let (key, value) = single_member(block, &path, MESSAGE_BLOCKS)?;
            if let Some(text) = absorb_block(&mut walk, key, value, block, &path)? {
                texts.push(text);
            }
        }
        if role == "user" {
            prompt = texts.join("\n\n");
        }
    }
    check_counts(&walk.attachments)?;
    let (max_tokens, stop_sequences) = inference_config(request.get("inferenceConfig"))?;
    if walk.tool_blocks && tool_config.is_none() {
        return Err(ApiError::validation(
            "The toolConfig field must be defined when using toolUse and toolResult content blocks.",
        ));
    }

    let output_schema = match request.get("outputConfig") {
        Some(config) => structured::parse(config)?,
        None => None,
    };
    let service_tier = match request.get("serviceTier") {
        None => None,
        Some(tier) => match tier.get("type") {
            Some(Value::String(name)) => Some(name.clone()),
            None if tier.is_object() => return Err(ApiError::missing("serviceTier.type")),
            _ => {
                return Err(ApiError::validation(
                    "serviceTier must be an object whose type is a string",
                ));
            }
        },
    };

    Ok(ConverseRequest {
        input_tokens: walk.tokens,
        max_tokens,
        stop_sequences,
        prompt,
        cache_prefixes: walk.cache_prefixes,
        attachments: walk.attachments,
        forced_tool,
        output_schema,
        service_tier,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_json(value: Value) -> Result<ConverseRequest, ApiError> {
        parse(&serde_json::to_vec(&value).unwrap())
    }

    fn message(text: &str) -> Value {
        json!({"role": "user", "content": [{"text": text}]})
    }

    #[test]
    fn counts_and_prompt() {
        let request = parse_json(json!({
            "system": [{"text": "Be brief."}],
            "messages": [
                message("First question here."),
                {"role": "assistant", "content": [{"text": "An answer."}]},
                message("Second question."),
            ],
            "inferenceConfig": {"maxTokens": 50, "stopSequences": ["END"], "temperature": 0.5}
        }))
        .unwrap();
        // 9 + 20 + 10 + 16 characters.
        assert_eq!(request.input_tokens, 3 + 5 + 3 + 4);
        assert_eq!(request.prompt, "Second question.");
        assert_eq!(request.max_tokens, Some(50));
        assert_eq!(request.stop_sequences, vec!["END"]);
        assert!(request.cache_prefixes.is_empty());
    }

    #[test]
    fn cache_prefixes_hash_what_precedes_them() {
        let with = |system: &str, user: &str| {
            parse_json(json!({
                "system": [{"text": system}, {"cachePoint": {"type": "default"}}],
                "messages": [message(user)]
            }))
            .unwrap()
        };
        let a = with("Long shared instructions.", "record one");
        let b = with("Long shared instructions.", "record two, longer");
        let c = with("Other instructions.", "record one");
        assert_eq!(a.cache_prefixes.len(), 1);
        assert_eq!(a.cache_prefixes[0], b.cache_prefixes[0]);
        assert_ne!(a.cache_prefixes[0].hash, c.cache_prefixes[0].hash);
        assert_eq!(a.cache_prefixes[0].tokens, 7);
    }

    #[test]
    fn validation_messages() {
        let cases = [
            (json!({"messages": []}), "at least one message"),
            (
                json!({"messages": [{"role": "assistant", "content": [{"text": "x"}]}]}),
                "must start with a user message",
            ),
            (
                json!({"messages": [message("a"), message("b")]}),
                "alternate",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{}]}]}),
                "messages.0.content.0 must set exactly one member",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"text": "a", "image": {}}]}]}),
                "found 2: image, text",
            ),
            (
                json!({"messages": [{"role": "user", "content": [
                    {"image": {"format": "png", "source": {"bytes": "!!"}}}]}]}),
                "messages.0.content.0.image.source.bytes is not valid base64",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"sound": "x"}]}]}),
                "not a supported content block",
            ),
            (json!({"messages": [message("  ")]}), "blank"),
        ];
        for (body, expected) in cases {
            let err = parse_json(body.clone()).unwrap_err();
            assert!(
                err.message.contains(expected),
                "{body}: {} does not contain {expected}",
                err.message
            );
        }
        assert!(
            parse(b"{not json")
                .unwrap_err()
                .message
                .contains("Malformed")
        );
    }

    #[test]
    fn images_count_pixels_and_must_match_bytes() {
        use crate::rules::media::test_images::png;
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD.encode(png(750, 10));
        let request = parse_json(json!({"messages": [{"role": "user", "content": [
            {"image": {"format": "png", "source": {"bytes": bytes}}},
            {"text": "What is this?"}
        ]}]}))
        .unwrap();
        assert_eq!(request.input_tokens, 10 + 4);
        assert_eq!(request.attachments[0].format, "png");
        let err = parse_json(json!({"messages": [{"role": "user", "content": [
            {"image": {"format": "gif", "source": {"bytes": bytes}}}
        ]}]}))
        .unwrap_err();
        assert!(err.message.contains("does not match"), "{}", err.message);
    }
}
