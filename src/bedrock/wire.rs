//! Bedrock's request and response bodies as JSON, for the calls that do not go through the
//! SDK's typed builders: a Batch Inference input line carries the same Converse request (or
//! native InvokeModel body) a call would send, and its output line carries the same
//! response. Building them here, beside the SDK calls, keeps both routes sending the same
//! request for a record and reading the same answer back.

use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    CachePointBlock, ContentBlock, DocumentSource, ImageSource, Message, ToolResultContentBlock,
};
use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::tool;
use super::{native_usage, u64_at};
use crate::rules::model_id::Family;
use crate::vocab::RequestSettings;
use crate::vocab::schema::{NATIVE_DESCRIPTION, SchemaRoute, TOOL_DESCRIPTION, TOOL_NAME};
use crate::vocab::{Answer, CallError, ConverseInput, DocumentInput, ErrorKind, Payload, Prompt};
use crate::vocab::{ImageInput, Usage};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn image_json(image: &ImageInput) -> Value {
    json!({"image": {"format": image.format, "source": {"bytes": b64(&image.bytes)}}})
}

fn document_json(document: &DocumentInput) -> Value {
    json!({"document": {
        "format": document.format,
        "name": document.name,
        "source": {"bytes": b64(&document.bytes)},
    }})
}

fn cache_point() -> Value {
    json!({"cachePoint": {"type": "default"}})
}

fn unsupported(what: &str) -> CallError {
    CallError::new(
        ErrorKind::Validation,
        format!("{what} cannot travel in a Batch Inference record; run it --via on-demand"),
    )
}

fn blob_json(blob: &Blob) -> Value {
    Value::String(b64(blob.as_ref()))
}

fn cache_point_json(_: &CachePointBlock) -> Value {
    cache_point()
}

/// One content block of a record's own `messages`, as Converse's JSON.
fn block_json(block: &ContentBlock) -> Result<Value, CallError> {
    Ok(match block {
        ContentBlock::Text(text) => json!({"text": text}),
        ContentBlock::Image(image) => {
            let Some(ImageSource::Bytes(bytes)) = image.source() else {
                return Err(unsupported("an image that is not bytes"));
            };
            json!({"image": {"format": image.format().as_str(), "source": {"bytes": blob_json(bytes)}}})
        }
        ContentBlock::Document(document) => {
            let Some(DocumentSource::Bytes(bytes)) = document.source() else {
                return Err(unsupported("a document that is not bytes"));
            };
            json!({"document": {
                "format": document.format().as_str(),
                "name": document.name(),
                "source": {"bytes": blob_json(bytes)},
            }})
        }
        ContentBlock::CachePoint(point) => cache_point_json(point),
        ContentBlock::ToolUse(tool_use) => json!({"toolUse": {
            "toolUseId": tool_use.tool_use_id(),
            "name": tool_use.name(),
            "input": tool::from_document(tool_use.input()),
        }}),
        ContentBlock::ToolResult(result) => {
            let content = result
                .content()
                .iter()
                .map(|c| match c {
                    ToolResultContentBlock::Text(text) => Ok(json!({"text": text})),
                    ToolResultContentBlock::Json(document) => {
                        Ok(json!({"json": tool::from_document(document)}))
                    }
                    _ => Err(unsupported("a tool result block other than text or json")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut value = json!({"toolUseId": result.tool_use_id(), "content": content});
            if let Some(status) = result.status() {
                value["status"] = json!(status.as_str());
            }
            json!({ "toolResult": value })
        }
        _ => return Err(unsupported("this kind of content block")),
    })
}

fn message_json(message: &Message) -> Result<Value, CallError> {
    let content = message
        .content()
        .iter()
        .map(block_json)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({"role": message.role().as_str(), "content": content}))
}

/// The Converse request body for `input`, exactly as [`super::Bedrock`] sends it: shared
/// documents, then the record's documents and images, then its text; cache points with
/// `--cache-prompt`; with `--schema`, native structured output or the forced tool.
pub fn converse_request(
    options: &RequestSettings,
    input: &ConverseInput,
) -> Result<Value, CallError> {
    let messages = match &input.prompt {
        Prompt::Text(text) => {
            let mut content: Vec<Value> =
                options.shared_documents.iter().map(document_json).collect();
            if options.cache_prompt && !options.shared_documents.is_empty() {
                content.push(cache_point());
            }
            content.extend(input.documents.iter().map(document_json));
            content.extend(input.images.iter().map(image_json));
            content.push(json!({"text": text}));
            vec![json!({"role": "user", "content": content})]
        }
        Prompt::Messages(messages) => messages
            .iter()
            .map(message_json)
            .collect::<Result<Vec<_>, _>>()?,
    };
    let mut body = Map::new();
    body.insert("messages".into(), Value::Array(messages));
    if let Some(system) = &input.system {
        let mut blocks = vec![json!({"text": system})];
        if options.cache_prompt {
            blocks.push(cache_point());
        }
        body.insert("system".into(), Value::Array(blocks));
    }
    let mut inference = Map::new();
    if let Some(max_tokens) = input.max_tokens {
        inference.insert("maxTokens".into(), json!(max_tokens));
    }
    if let Some(temperature) = input.temperature {
        inference.insert("temperature".into(), json!(temperature));
    }
    if let Some(top_p) = input.top_p {
        inference.insert("topP".into(), json!(top_p));
    }
    if !input.stop.is_empty() {
        inference.insert("stopSequences".into(), json!(input.stop));
    }
    if !inference.is_empty() {
        body.insert("inferenceConfig".into(), Value::Object(inference));
    }
    if let Some(schema) = &options.schema
        && options.schema_route == SchemaRoute::Native
    {
        body.insert(
            "outputConfig".into(),
            json!({"textFormat": {
                "type": "json_schema",
                "structure": {"jsonSchema": {
                    "schema": schema.text(),
                    "name": TOOL_NAME,
                    "description": NATIVE_DESCRIPTION,
                }},
            }}),
        );
    } else if let Some(schema) = &options.schema {
        body.insert(
            "toolConfig".into(),
            json!({
                "tools": [{"toolSpec": {
                    "name": TOOL_NAME,
                    "description": TOOL_DESCRIPTION,
                    "inputSchema": {"json": schema.json()},
                }}],
                "toolChoice": {"tool": {"name": TOOL_NAME}},
            }),
        );
    }
    Ok(Value::Object(body))
}

/// The native InvokeModel body that embeds one text, by model family (Cohere Embed takes a
/// list; a batch record holds one).
pub fn embed_request(options: &RequestSettings, model: &str, texts: &[&str]) -> Value {
    match Family::of(model) {
        Some(Family::CohereEmbed) => json!({"texts": texts, "input_type": options.input_type}),
        Some(Family::TitanEmbedV2) => {
            let mut body = json!({"inputText": texts.first().copied().unwrap_or_default(), "normalize": options.normalize});
            if let Some(d) = options.dimensions {
                body["dimensions"] = json!(d);
            }
            body
        }
        _ => json!({"inputText": texts.first().copied().unwrap_or_default()}),
    }
}

/// The model input of one record in a Batch Inference job.
pub fn batch_model_input(
    options: &RequestSettings,
    model: &str,
    payload: &Payload,
) -> Result<Value, CallError> {
    match payload {
        Payload::Converse(input) => converse_request(options, input),
        Payload::Embed { text } => Ok(embed_request(options, model, &[text])),
        Payload::Invoke { body } => serde_json::from_slice(body).map_err(|err| {
            CallError::new(
                ErrorKind::Validation,
                format!("the record's body is not JSON: {err}"),
            )
        }),
        Payload::Retrieve { .. } | Payload::Rag { .. } => {
            Err(unsupported("a knowledge-base query"))
        }
    }
}

/// The answer in a Converse response body (Converse's JSON, as a Batch Inference output
/// line carries it), checked against the schema when there is one.
pub fn converse_answer(options: &RequestSettings, response: &Value) -> Result<Answer, CallError> {
    let content = response
        .pointer("/output/message/content")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            CallError::new(
                ErrorKind::BadResponse,
                "the Converse output has no output.message.content",
            )
        })?;
    let output: String = content
        .iter()
        .filter_map(|block| block.get("text").and_then(Value::as_str))
        .collect();
    let usage = |key: &str| u64_at(response, &["usage", key]).unwrap_or(0);
    let usage = Usage {
        input_tokens: usage("inputTokens"),
        output_tokens: usage("outputTokens"),
        cache_read_input_tokens: usage("cacheReadInputTokens"),
        cache_write_input_tokens: usage("cacheWriteInputTokens"),
        cache_write_1h_input_tokens: 0,
    };
    let tool_input = content
        .iter()
        .find_map(|block| block.pointer("/toolUse/input"))
        .cloned();
    let data = tool::data(options, tool_input, &output).map_err(|err| err.billed(usage))?;
    Ok(Answer::Text {
        output,
        data,
        stop_reason: response
            .get("stopReason")
            .and_then(Value::as_str)
            .unwrap_or("end_turn")
            .to_string(),
        usage,
        ttft_ms: None,
        service_tier: None,
    })
}

/// The embeddings in a native embedding response, one per text asked for.
pub fn embedding_answers(
    model: &str,
    mut response: Value,
    texts: usize,
) -> Result<Vec<Value>, CallError> {
    if Family::of(model) == Some(Family::CohereEmbed) {
        let vectors = match response.get_mut("embeddings").map(Value::take) {
            Some(Value::Array(list)) => list,
            Some(Value::Object(mut by_type)) => match by_type.remove("float") {
                Some(Value::Array(list)) => list,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        if vectors.len() != texts {
            return Err(CallError::new(
                ErrorKind::BadResponse,
                format!("asked for {texts} embeddings, got {}", vectors.len()),
            ));
        }
        return Ok(vectors);
    }
    match response.get_mut("embedding") {
        Some(v @ Value::Array(_)) => Ok(vec![v.take()]),
        _ => Err(CallError::new(
            ErrorKind::BadResponse,
            "the response has no \"embedding\" array",
        )),
    }
}

/// The answer to one Batch Inference record, from its output line's `modelOutput`.
pub fn batch_answer(
    options: &RequestSettings,
    model: &str,
    payload_kind: BatchKind,
    output: Value,
) -> Result<Answer, CallError> {
    match payload_kind {
        BatchKind::Converse => converse_answer(options, &output),
        BatchKind::Embed => {
            let usage = Usage {
                input_tokens: native_usage(&output).input_tokens,
                ..Usage::default()
            };
            let vector = embedding_answers(model, output, 1)?
                .pop()
                .unwrap_or(Value::Null);
            Ok(Answer::Embedding {
                vector,
                usage,
                service_tier: None,
            })
        }
        BatchKind::Invoke => Ok(Answer::Invoke {
            usage: native_usage(&output),
            response: output,
            service_tier: None,
        }),
    }
}

/// Which answer a batch record's output holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchKind {
    Converse,
    Embed,
    Invoke,
}

impl BatchKind {
    pub fn of(payload: &Payload) -> BatchKind {
        match payload {
            Payload::Converse(_) => BatchKind::Converse,
            Payload::Embed { .. } => BatchKind::Embed,
            _ => BatchKind::Invoke,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn options() -> RequestSettings {
        RequestSettings {
            dimensions: Some(256),
            ..RequestSettings::plain("m", crate::vocab::Mode::Converse, "{text}").unwrap()
        }
    }

    fn input(text: &str) -> ConverseInput {
        ConverseInput {
            system: Some("Be brief.".into()),
            prompt: Prompt::Text(text.into()),
            images: vec![ImageInput {
                format: "png",
                bytes: Arc::new(vec![1, 2, 3]),
                width: 1,
                height: 1,
            }],
            documents: Vec::new(),
            max_tokens: Some(50),
            temperature: None,
            top_p: Some(0.5),
            stop: Vec::new(),
        }
    }

    #[test]
    fn converse_request_puts_media_before_text_and_keeps_settings() {
        let mut options = options();
        options.cache_prompt = true;
        let body = converse_request(&options, &input("hello")).unwrap();
        let content = body.pointer("/messages/0/content").unwrap();
        assert_eq!(content[0]["image"]["format"], "png");
        assert_eq!(content[0]["image"]["source"]["bytes"], "AQID");
        assert_eq!(content[1]["text"], "hello");
        assert_eq!(body["system"][0]["text"], "Be brief.");
        assert_eq!(body["system"][1]["cachePoint"]["type"], "default");
        assert_eq!(body["inferenceConfig"]["maxTokens"], 50);
        assert_eq!(body["inferenceConfig"]["topP"], 0.5);
        assert!(body["inferenceConfig"].get("temperature").is_none());
        assert!(body.get("toolConfig").is_none());
    }

    #[test]
    fn embed_bodies_follow_the_family() {
        let options = options();
        let titan = embed_request(&options, "amazon.titan-embed-text-v2:0", &["a"]);
        assert_eq!(
            titan,
            json!({"inputText": "a", "normalize": true, "dimensions": 256})
        );
        let cohere = embed_request(&options, "cohere.embed-english-v3", &["a"]);
        assert_eq!(
            cohere,
            json!({"texts": ["a"], "input_type": "search_document"})
        );
    }

    #[test]
    fn converse_answers_read_text_usage_and_stop_reason() {
        let response = json!({
            "output": {"message": {"role": "assistant", "content": [{"text": "Hi"}, {"text": " there"}]}},
            "stopReason": "max_tokens",
            "usage": {"inputTokens": 7, "outputTokens": 3, "totalTokens": 10},
        });
        let Answer::Text {
            output,
            stop_reason,
            usage,
            ..
        } = converse_answer(&options(), &response).unwrap()
        else {
            panic!("not text")
        };
        assert_eq!(output, "Hi there");
        assert_eq!(stop_reason, "max_tokens");
        assert_eq!((usage.input_tokens, usage.output_tokens), (7, 3));
        let err = converse_answer(&options(), &json!({})).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadResponse);
    }

    #[test]
    fn embedding_answers_take_titan_and_cohere_shapes() {
        let titan = batch_answer(
            &options(),
            "amazon.titan-embed-text-v2:0",
            BatchKind::Embed,
            json!({"embedding": [0.5, 0.25], "inputTextTokenCount": 4}),
        )
        .unwrap();
        assert_eq!(
            titan,
            Answer::Embedding {
                vector: json!([0.5, 0.25]),
                usage: Usage {
                    input_tokens: 4,
                    ..Usage::default()
                },
                service_tier: None,
            }
        );
        let cohere = embedding_answers(
            "cohere.embed-english-v3",
            json!({"embeddings": {"float": [[1.0]]}}),
            1,
        )
        .unwrap();
        assert_eq!(cohere, vec![json!([1.0])]);
    }
}
