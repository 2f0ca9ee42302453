//! What Bedrock offers some models beyond a plain call, through the real
//! `aws-sdk-bedrockruntime` client against the local server over HTTP: service tiers
//! (asked for, reported back, refused where the catalogue says a model lacks them, flex
//! shed first under a short quota), native structured output (`outputConfig.textFormat`)
//! and CountTokens.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::operation::converse::ConverseOutput;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    CachePointBlock, CachePointType, ContentBlock, ContentBlockDelta, ConversationRole,
    ConverseStreamOutput, ConverseTokensRequest, CountTokensInput, ImageBlock, ImageFormat,
    ImageSource, InferenceConfiguration, InvokeModelTokensRequest, JsonSchemaDefinition, Message,
    OutputConfig, OutputFormat, OutputFormatStructure, OutputFormatType, ServiceTier,
    ServiceTierType, SpecificToolChoice, SystemContentBlock, Tool, ToolChoice, ToolConfiguration,
    ToolInputSchema, ToolSpecification,
};
use aws_smithy_types::{Document, Number};
use bedrock_batch::local_server::{FaultRates, ServerConfig};
use common::*;
use serde_json::{Value, json};

/// Priority and flex, no structured output, no CountTokens.
const NOVA: &str = "amazon.nova-pro-v1:0";
/// Structured output and CountTokens, no tiers beyond default.
/// us-east-1 (where the client signs) serves Sonnet 4.5 through its US profile only.
const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
/// An Anthropic model the catalogue does not list: served in every tier.
/// A model Bedrock serves in us-east-1 that the catalogue does not list.
const UNLISTED: &str = "us.anthropic.claude-opus-4-7";

const PROMPT: &str = "My invoice for March charged me twice for the same seat. Please refund one of the charges. I have been a customer for years.";

fn user(blocks: Vec<ContentBlock>) -> Message {
    Message::builder()
        .role(ConversationRole::User)
        .set_content(Some(blocks))
        .build()
        .unwrap()
}

fn text(t: &str) -> ContentBlock {
    ContentBlock::Text(t.to_string())
}

fn tier(name: &str) -> ServiceTier {
    ServiceTier::builder()
        .r#type(ServiceTierType::from(name))
        .build()
        .unwrap()
}

fn reply_text(output: &ConverseOutput) -> String {
    let message = output.output().unwrap().as_message().unwrap();
    message.content()[0].as_text().unwrap().clone()
}

fn validation_message<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    err: SdkError<E, R>,
) -> String {
    let SdkError::ServiceError(err) = err else {
        panic!("expected a service error, got {err:?}");
    };
    let err = err.into_err();
    assert_eq!(err.code(), Some("ValidationException"), "{err:?}");
    err.message().unwrap_or_default().to_string()
}

async fn converse_in(
    client: &Client,
    model: &str,
    service_tier: Option<&str>,
    prompt: &str,
    max_tokens: i32,
) -> Result<ConverseOutput, SdkError<aws_sdk_bedrockruntime::operation::converse::ConverseError>> {
    client
        .converse()
        .model_id(model)
        .messages(user(vec![text(prompt)]))
        .inference_config(
            InferenceConfiguration::builder()
                .max_tokens(max_tokens)
                .build(),
        )
        .set_service_tier(service_tier.map(tier))
        .send()
        .await
}

#[tokio::test]
async fn converse_reports_the_tier_that_served_it() {
    let server = server(ServerConfig::default()).await;
    let client = client(&server.url());
    for (asked, served) in [
        (None, "default"),
        (Some("default"), "default"),
        (Some("priority"), "priority"),
        (Some("flex"), "flex"),
    ] {
        let out = converse_in(&client, NOVA, asked, PROMPT, 100)
            .await
            .unwrap();
        assert_eq!(
            out.service_tier().map(|t| t.r#type().as_str()),
            Some(served),
            "asked {asked:?}"
        );
    }
    let stats = server.stats();
    assert_eq!(stats.tier("default").ok, 2);
    assert_eq!(stats.tier("priority").ok, 1);
    assert_eq!(stats.tier("flex").ok, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn tiers_a_model_lacks_and_unknown_tiers_are_validation_errors() {
    let server = server(ServerConfig::default()).await;
    let client = client(&server.url());
    let message = validation_message(
        converse_in(&client, CLAUDE, Some("flex"), PROMPT, 100)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        message,
        format!(
            "Invocation of model ID {CLAUDE} with the flex service tier isn't supported. Retry your request with a service tier the model supports, or without one."
        )
    );
    let message = validation_message(
        converse_in(&client, NOVA, Some("cheapest"), PROMPT, 100)
            .await
            .unwrap_err(),
    );
    // The service model's enum refuses it before the tier rules are read.
    assert_eq!(
        message,
        "1 validation error detected: Value 'cheapest' at 'serviceTier.type' failed to satisfy \
         constraint: Member must satisfy enum value set: [priority, default, flex, reserved]"
    );
    let message = validation_message(
        converse_in(&client, NOVA, Some("reserved"), PROMPT, 100)
            .await
            .unwrap_err(),
    );
    assert_eq!(message, "Reservation not found.");
    // Refused calls never reach a tier.
    assert!(server.stats().by_tier.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn converse_stream_metadata_carries_the_tier() {
    let server = server(ServerConfig::default()).await;
    let client = client(&server.url());
    let out = client
        .converse_stream()
        .model_id(NOVA)
        .messages(user(vec![text(PROMPT)]))
        .service_tier(tier("flex"))
        .send()
        .await
        .unwrap();
    let mut stream = out.stream;
    let mut served = None;
    while let Some(event) = stream.recv().await.unwrap() {
        if let ConverseStreamOutput::Metadata(metadata) = event {
            served = metadata.service_tier().map(|t| t.r#type().clone());
        }
    }
    assert_eq!(served, Some(ServiceTierType::Flex));
    let err = client
        .converse_stream()
        .model_id(SONNET)
        .messages(user(vec![text(PROMPT)]))
        .service_tier(tier("priority"))
        .send()
        .await
        .unwrap_err();
    assert!(validation_message(err).contains("priority service tier isn't supported"));
    server.shutdown().await;
}

#[tokio::test]
async fn invoke_model_takes_and_reports_the_tier_in_a_header() {
    let server = server(ServerConfig::default()).await;
    let client = client(&server.url());
    let body = json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
        "messages": [{"role": "user", "content": PROMPT}]});
    let out = client
        .invoke_model()
        .model_id(UNLISTED)
        .body(Blob::new(body.to_string()))
        .service_tier(ServiceTierType::Priority)
        .send()
        .await
        .unwrap();
    assert_eq!(out.service_tier(), Some(&ServiceTierType::Priority));
    let out = client
        .invoke_model()
        .model_id(UNLISTED)
        .body(Blob::new(body.to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.service_tier(), Some(&ServiceTierType::Default));
    let stream = client
        .invoke_model_with_response_stream()
        .model_id(UNLISTED)
        .body(Blob::new(body.to_string()))
        .service_tier(ServiceTierType::Flex)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.service_tier(), Some(&ServiceTierType::Flex));
    let err = client
        .invoke_model()
        .model_id(LLAMA)
        .body(Blob::new(
            json!({"prompt": "Hello there.", "max_gen_len": 20}).to_string(),
        ))
        .service_tier(ServiceTierType::Priority)
        .send()
        .await
        .unwrap_err();
    let SdkError::ServiceError(err) = err else {
        panic!("expected a service error, got {err:?}");
    };
    assert_eq!(err.err().code(), Some("ValidationException"));
    assert!(err.err().message().unwrap().contains(LLAMA));
    let stats = server.stats();
    assert_eq!(stats.tier("priority").ok, 1);
    assert_eq!(stats.tier("default").ok, 1);
    assert_eq!(stats.tier("flex").requests, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn flex_is_slower_and_priority_faster_than_default() {
    let latency = Duration::from_millis(300);
    let server = server(ServerConfig {
        latency,
        ..ServerConfig::default()
    })
    .await;
    let client = client(&server.url());
    let mut took = Vec::new();
    for asked in ["priority", "default", "flex"] {
        let start = Instant::now();
        converse_in(&client, NOVA, Some(asked), PROMPT, 100)
            .await
            .unwrap();
        took.push(start.elapsed());
    }
    // Lower bounds only: a busy machine makes a call slower, never faster. That priority
    // is faster than default is `tier::pace`'s unit test.
    assert!(took[0] >= latency / 2, "{took:?}");
    assert!(took[1] >= latency, "{took:?}");
    assert!(took[2] >= latency * 2, "{took:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn flex_is_shed_first_when_the_quota_runs_short() {
    // About 100 input tokens a call against 1,000 a minute: flex stops at the 250 kept
    // back for the other tiers, while a default call still gets through.
    let server = server(ServerConfig {
        tpm: Some(1_000),
        ..ServerConfig::default()
    })
    .await;
    let client = client(&server.url());
    let long_prompt = format!("{PROMPT} {PROMPT} {PROMPT}");
    let mut flex_ok = 0;
    let throttle = loop {
        match converse_in(&client, NOVA, Some("flex"), &long_prompt, 10).await {
            Ok(_) => flex_ok += 1,
            Err(err) => break err,
        }
        assert!(flex_ok < 20, "flex was never shed");
    };
    let SdkError::ServiceError(throttle) = throttle else {
        panic!("expected a throttle, got {throttle:?}");
    };
    assert_eq!(throttle.raw().status().as_u16(), 429);
    assert_eq!(throttle.err().code(), Some("ThrottlingException"));
    converse_in(&client, NOVA, None, &long_prompt, 10)
        .await
        .expect("a default call still gets the reserve");
    converse_in(&client, NOVA, Some("priority"), &long_prompt, 10)
        .await
        .expect("so does a priority call");
    let stats = server.stats();
    assert_eq!(stats.tier("flex").throttled, 1);
    assert_eq!(stats.tier("flex").ok, flex_ok);
    assert_eq!(stats.tier("default").throttled, 0);
    assert_eq!(stats.tier("default").ok, 1);
    assert_eq!(stats.tier("priority").ok, 1);
    assert_eq!(stats.throttles, 1);
    server.shutdown().await;
}

fn ticket_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "category": {"type": "string", "enum": ["billing", "bug", "other"]},
            "urgency": {"type": "integer", "minimum": 1, "maximum": 5},
            "summary": {"type": "string", "maxLength": 60}
        },
        "required": ["category", "urgency", "summary"],
        "additionalProperties": false
    })
}

fn output_config(schema: &Value) -> OutputConfig {
    OutputConfig::builder()
        .text_format(
            OutputFormat::builder()
                .r#type(OutputFormatType::JsonSchema)
                .structure(OutputFormatStructure::JsonSchema(
                    JsonSchemaDefinition::builder()
                        .schema(schema.to_string())
                        .name("ticket")
                        .description("A support ticket, classified")
                        .build()
                        .unwrap(),
                ))
                .build()
                .unwrap(),
        )
        .build()
}

async fn structured(client: &Client, model: &str) -> Result<ConverseOutput, String> {
    client
        .converse()
        .model_id(model)
        .messages(user(vec![text(PROMPT)]))
        .output_config(output_config(&ticket_schema()))
        .send()
        .await
        .map_err(validation_message)
}

#[tokio::test]
async fn structured_output_answers_json_that_validates() {
    let server = server(ServerConfig::default()).await;
    let client = client(&server.url());
    let validator = jsonschema::validator_for(&ticket_schema()).unwrap();
    let out = structured(&client, SONNET).await.unwrap();
    let data: Value = serde_json::from_str(&reply_text(&out)).expect("the text is JSON");
    assert!(validator.is_valid(&data), "{data}");
    assert_eq!(
        out.usage().unwrap().output_tokens() as usize,
        reply_text(&out).len().div_ceil(4)
    );
    assert_eq!(out.stop_reason().as_str(), "end_turn");

    // Streamed, the same JSON arrives as text deltas.
    let stream = client
        .converse_stream()
        .model_id(SONNET)
        .messages(user(vec![text(PROMPT)]))
        .output_config(output_config(&ticket_schema()))
        .send()
        .await
        .unwrap();
    let mut stream = stream.stream;
    let (mut streamed, mut deltas) = (String::new(), 0);
    while let Some(event) = stream.recv().await.unwrap() {
        if let ConverseStreamOutput::ContentBlockDelta(delta) = event
            && let Some(ContentBlockDelta::Text(piece)) = delta.delta()
        {
            streamed.push_str(piece);
            deltas += 1;
        }
    }
    assert!(deltas > 1);
    assert_eq!(streamed, reply_text(&out));

    let refused = structured(&client, NOVA).await.unwrap_err();
    assert!(
        refused.contains(NOVA) && refused.contains("outputConfig.textFormat"),
        "{refused}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn structured_output_breaks_its_schema_under_the_violation_fault() {
    let server = server(ServerConfig {
        faults: FaultRates {
            schema_violation: 1.0,
            ..FaultRates::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let client = client(&server.url());
    let validator = jsonschema::validator_for(&ticket_schema()).unwrap();
    let out = structured(&client, SONNET).await.unwrap();
    let data: Value = serde_json::from_str(&reply_text(&out)).expect("still JSON");
    assert!(!validator.is_valid(&data), "{data}");
    server.shutdown().await;
}

#[tokio::test]
async fn structured_output_schemas_are_validated() {
    let server = server(ServerConfig::default()).await;
    let client = client(&server.url());
    for (schema, expected) in [
        ("{\"type\": \"array\"}", "an object at the top"),
        ("{\"type\": \"object\"", "is not valid JSON"),
        (
            "{\"type\": \"object\", \"properties\": {\"a\": {\"type\": 5}}}",
            "not a valid JSON Schema",
        ),
    ] {
        let config = OutputConfig::builder()
            .text_format(
                OutputFormat::builder()
                    .r#type(OutputFormatType::JsonSchema)
                    .structure(OutputFormatStructure::JsonSchema(
                        JsonSchemaDefinition::builder()
                            .schema(schema)
                            .build()
                            .unwrap(),
                    ))
                    .build()
                    .unwrap(),
            )
            .build();
        let err = client
            .converse()
            .model_id(SONNET)
            .messages(user(vec![text(PROMPT)]))
            .output_config(config)
            .send()
            .await
            .unwrap_err();
        let message = validation_message(err);
        assert!(message.contains(expected), "{schema}: {message}");
    }
    // An unknown format type is an enum violation, worded as smithy words them.
    let (status, body) = raw_http(
        &server.url(),
        "POST",
        &format!("/model/{SONNET}/converse"),
        json!({"messages": [{"role": "user", "content": [{"text": PROMPT}]}],
            "outputConfig": {"textFormat": {"type": "xml", "structure": {}}}})
        .to_string()
        .as_bytes(),
    )
    .await;
    assert_eq!(status, 400);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["message"],
        "1 validation error detected: Value 'xml' at 'outputConfig.textFormat.type' failed to satisfy constraint: Member must satisfy enum value set: [json_schema]"
    );
    server.shutdown().await;
}

/// `value` as the SDK's JSON document.
fn document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Number::PosInt(u),
            (None, Some(i)) => Number::NegInt(i),
            _ => Number::Float(n.as_f64().unwrap_or_default()),
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(document).collect()),
        Value::Object(members) => Document::Object(
            members
                .iter()
                .map(|(k, v)| (k.clone(), document(v)))
                .collect(),
        ),
    }
}

#[tokio::test]
async fn a_forced_tool_is_answered_even_with_a_text_format() {
    let server = server(ServerConfig::default()).await;
    let client = client(&server.url());
    let tool_schema = json!({"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]});
    let tool = ToolConfiguration::builder()
        .tools(Tool::ToolSpec(
            ToolSpecification::builder()
                .name("record_label")
                .input_schema(ToolInputSchema::Json(document(&tool_schema)))
                .build()
                .unwrap(),
        ))
        .tool_choice(ToolChoice::Tool(
            SpecificToolChoice::builder()
                .name("record_label")
                .build()
                .unwrap(),
        ))
        .build()
        .unwrap();
    let out = client
        .converse()
        .model_id(SONNET)
        .messages(user(vec![text(PROMPT)]))
        .output_config(output_config(&ticket_schema()))
        .tool_config(tool)
        .send()
        .await
        .unwrap();
    assert_eq!(out.stop_reason().as_str(), "tool_use");
    let message = out.output().unwrap().as_message().unwrap();
    let tool_use = message.content()[0].as_tool_use().expect("a tool call");
    assert_eq!(tool_use.name(), "record_label");
    assert!(matches!(tool_use.input(), Document::Object(o) if o.contains_key("label")));
    server.shutdown().await;
}

fn count_input(messages: Vec<Message>, system: Vec<SystemContentBlock>) -> CountTokensInput {
    CountTokensInput::Converse(
        ConverseTokensRequest::builder()
            .set_messages(Some(messages))
            .set_system(Some(system).filter(|s| !s.is_empty()))
            .build(),
    )
}

#[tokio::test]
async fn count_tokens_equals_the_input_tokens_converse_bills() {
    let server = server(ServerConfig::default()).await;
    let client = client(&server.url());

    // A text prompt.
    let messages = vec![user(vec![text(PROMPT)])];
    let out = client
        .converse()
        .model_id(SONNET)
        .set_messages(Some(messages.clone()))
        .send()
        .await
        .unwrap();
    let billed = out.usage().unwrap().input_tokens();
    let counted = client
        .count_tokens()
        .model_id(SONNET)
        .input(count_input(messages, Vec::new()))
        .send()
        .await
        .unwrap()
        .input_tokens();
    assert!(billed > 0);
    assert_eq!(counted, billed);

    // A system prompt with a cache point, and an image before the text: every input token,
    // the cache write included.
    let image = ContentBlock::Image(
        ImageBlock::builder()
            .format(ImageFormat::Png)
            .source(ImageSource::Bytes(Blob::new(png(1500, 750))))
            .build()
            .unwrap(),
    );
    let messages = vec![user(vec![image, text("What does this chart show?")])];
    let system = vec![
        SystemContentBlock::Text("You read charts and answer in one sentence.".into()),
        SystemContentBlock::CachePoint(
            CachePointBlock::builder()
                .r#type(CachePointType::Default)
                .build()
                .unwrap(),
        ),
    ];
    let out = client
        .converse()
        .model_id(SONNET)
        .set_messages(Some(messages.clone()))
        .set_system(Some(system.clone()))
        .send()
        .await
        .unwrap();
    let usage = out.usage().unwrap();
    let billed = usage.input_tokens()
        + usage.cache_read_input_tokens().unwrap_or(0)
        + usage.cache_write_input_tokens().unwrap_or(0);
    assert!(usage.cache_write_input_tokens().unwrap_or(0) > 0);
    let counted = client
        .count_tokens()
        .model_id(SONNET)
        .input(count_input(messages, system))
        .send()
        .await
        .unwrap()
        .input_tokens();
    // 1500 x 750 / 750 pixels a token for the image alone.
    assert!(counted > 1500);
    assert_eq!(counted, billed);
    server.shutdown().await;
}

#[tokio::test]
async fn count_tokens_of_an_invoke_body_equals_what_invoke_model_reports() {
    let server = server(ServerConfig::default()).await;
    let headers = SeenHeaders::default();
    let client = client_with(&server.url(), Some(headers.clone()));
    let body = json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
        "system": "Answer briefly.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}]})
    .to_string();
    client
        .invoke_model()
        .model_id(SONNET)
        .body(Blob::new(body.clone()))
        .send()
        .await
        .unwrap();
    let reported: i32 = headers
        .last("x-amzn-bedrock-input-token-count")
        .unwrap()
        .parse()
        .unwrap();
    let counted = client
        .count_tokens()
        .model_id(SONNET)
        .input(CountTokensInput::InvokeModel(
            InvokeModelTokensRequest::builder()
                .body(Blob::new(body))
                .build()
                .unwrap(),
        ))
        .send()
        .await
        .unwrap()
        .input_tokens();
    assert!(reported > 0);
    assert_eq!(counted, reported);
    server.shutdown().await;
}

#[tokio::test]
async fn count_tokens_is_refused_where_unsupported_and_takes_no_quota() {
    // A quota smaller than one call: CountTokens never touches it.
    let server = server(ServerConfig {
        tpm: Some(10),
        ..ServerConfig::default()
    })
    .await;
    let client = client(&server.url());
    for _ in 0..5 {
        client
            .count_tokens()
            .model_id(SONNET)
            .input(count_input(vec![user(vec![text(PROMPT)])], Vec::new()))
            .send()
            .await
            .expect("not metered");
    }
    let err = client
        .count_tokens()
        .model_id(CLAUDE)
        .input(count_input(vec![user(vec![text(PROMPT)])], Vec::new()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        validation_message(err),
        "The provided model doesn't support counting tokens."
    );
    // A model the catalogue does not list is counted.
    client
        .count_tokens()
        .model_id(UNLISTED)
        .input(count_input(vec![user(vec![text(PROMPT)])], Vec::new()))
        .send()
        .await
        .unwrap();
    let stats = server.stats();
    assert_eq!(stats.by_route.get("count-tokens"), Some(&7));
    assert_eq!(stats.status(200), 6);
    assert_eq!(stats.status(400), 1);
    assert_eq!(stats.throttles, 0);
    assert!(stats.by_model.is_empty());
    server.shutdown().await;
}
