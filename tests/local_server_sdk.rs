//! The local server driven by the real `aws-sdk-bedrockruntime` client over real HTTP:
//! every route, error shape, quota and fault, asserted through what the SDK parses.

mod common;

/// Llama 3.1 8B as us-east-1 (where the client signs) serves it: through its US profile.
const US_LLAMA: &str = "us.meta.llama3-1-8b-instruct-v1:0";

use std::time::{Duration, Instant};

use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::operation::converse::{ConverseError, ConverseOutput};
use aws_sdk_bedrockruntime::operation::invoke_model::InvokeModelError;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::error::{ConverseStreamOutputError, ResponseStreamError};
use aws_sdk_bedrockruntime::types::{
    CachePointBlock, CachePointType, ContentBlock, ContentBlockDelta, ConversationRole,
    ConverseStreamOutput, DocumentBlock, DocumentFormat, DocumentSource, ImageBlock, ImageFormat,
    ImageSource, InferenceConfiguration, Message, ResponseStream, StopReason, SystemContentBlock,
};
use aws_sdk_bedrockruntime::{Client, Error};
use bedrock_batch::local_server::{FaultRates, ServerConfig};
use common::*;
use serde_json::{Value, json};

const PROMPT: &str =
    "Bedrock is a managed service. It serves foundation models. Batch jobs run overnight.";
const SUMMARY: &str = "Bedrock is a managed service. It serves foundation models.";

fn user(blocks: Vec<ContentBlock>) -> Message {
    let mut builder = Message::builder().role(ConversationRole::User);
    for block in blocks {
        builder = builder.content(block);
    }
    builder.build().unwrap()
}

fn text(t: &str) -> ContentBlock {
    ContentBlock::Text(t.to_string())
}

fn reply_text(output: &ConverseOutput) -> String {
    let message = output.output().unwrap().as_message().unwrap();
    message.content()[0].as_text().unwrap().clone()
}

async fn converse(
    client: &Client,
    model: &str,
    prompt: &str,
    max_tokens: i32,
) -> Result<ConverseOutput, SdkError<ConverseError>> {
    client
        .converse()
        .model_id(model)
        .messages(user(vec![text(prompt)]))
        .inference_config(
            InferenceConfiguration::builder()
                .max_tokens(max_tokens)
                .build(),
        )
        .send()
        .await
        .map_err(|e| e.map_service_error(|e| e))
}

fn service_error<E: std::fmt::Debug, R: std::fmt::Debug>(err: SdkError<E, R>) -> E {
    match err {
        SdkError::ServiceError(e) => e.into_err(),
        other => panic!("expected a service error, got {other:?}"),
    }
}

#[tokio::test]
async fn converse_summarizes_and_counts() {
    let server = server(ServerConfig::default()).await;
    let client = client(&server.url());
    let out = client
        .converse()
        .model_id(CLAUDE)
        .system(SystemContentBlock::Text("Summarize.".into()))
        .messages(user(vec![text(PROMPT)]))
        .inference_config(InferenceConfiguration::builder().max_tokens(200).build())
        .send()
        .await
        .unwrap();
    assert_eq!(reply_text(&out), SUMMARY);
    assert_eq!(out.stop_reason(), &StopReason::EndTurn);
    let usage = out.usage().unwrap();
    // "Summarize." is 10 chars (3 tokens); the prompt is 83 chars (21 tokens).
    assert_eq!(usage.input_tokens(), 3 + 21);
    assert_eq!(usage.output_tokens(), (SUMMARY.len() as i32 + 3) / 4);
    assert_eq!(
        usage.total_tokens(),
        usage.input_tokens() + usage.output_tokens()
    );
    assert_eq!(usage.cache_read_input_tokens(), None);
    assert!(out.metrics().unwrap().latency_ms() >= 0);

    let stats = server.stats();
    assert_eq!(stats.requests, 1);
    assert_eq!(stats.status(200), 1);
    assert_eq!(stats.input_tokens, 24);
    assert_eq!(stats.output_tokens, usage.output_tokens() as u64);
    assert_eq!(stats.by_route["converse"], 1);
    assert_eq!(stats.by_model[CLAUDE].ok, 1);
}

#[tokio::test]
async fn converse_stops_at_max_tokens_and_stop_sequences() {
    let server = server(ServerConfig::default()).await;
    let client = client(&server.url());
    let out = converse(&client, CLAUDE, PROMPT, 3).await.unwrap();
    assert_eq!(reply_text(&out), "Bedrock is a");
    assert_eq!(out.stop_reason(), &StopReason::MaxTokens);
    assert_eq!(out.usage().unwrap().output_tokens(), 3);

    let out = client
        .converse()
        .model_id(CLAUDE)
        .messages(user(vec![text(PROMPT)]))
        .inference_config(
            InferenceConfiguration::builder()
                .stop_sequences("managed")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(reply_text(&out), "Bedrock is a ");
    assert_eq!(out.stop_reason(), &StopReason::StopSequence);
}

#[tokio::test]
async fn converse_validation_errors_are_validation_exceptions() {
    let server = server(ServerConfig::default()).await;
    let client = client(&server.url());

    let err = service_error(
        converse(&client, "acme.unknown-model-v1", PROMPT, 10)
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(err, ConverseError::ValidationException(_)),
        "{err:?}"
    );
    assert_eq!(
        err.message(),
        Some("The provided model identifier is invalid.")
    );

    let err = service_error(converse(&client, TITAN_V2, PROMPT, 10).await.unwrap_err());
    assert!(matches!(err, ConverseError::ValidationException(_)));
    assert!(err.message().unwrap().contains("doesn't support the model"));

    let err = service_error(client.converse().model_id(CLAUDE).send().await.unwrap_err());
    assert!(matches!(err, ConverseError::ValidationException(_)));
    assert!(
        err.message().unwrap().contains("at least one message"),
        "{err:?}"
    );

    let assistant_first = Message::builder()
        .role(ConversationRole::Assistant)
        .content(text("hi"))
        .build()
        .unwrap();
    let err = service_error(
        client
            .converse()
            .model_id(CLAUDE)
            .messages(assistant_first)
            .send()
            .await
            .unwrap_err(),
    );
    assert!(
        err.message()
            .unwrap()
            .contains("must start with a user message")
    );

    let err = service_error(
        client
            .converse()
            .model_id(CLAUDE)
            .messages(user(vec![text("hi")]))
            .inference_config(InferenceConfiguration::builder().temperature(1.5).build())
            .send()
            .await
            .unwrap_err(),
    );
    assert!(
        err.message()
            .unwrap()
            .contains("inferenceConfig.temperature"),
        "{err:?}"
    );

    let err = service_error(converse(&client, CLAUDE, PROMPT, 0).await.unwrap_err());
    assert!(
        err.message().unwrap().contains("inferenceConfig.maxTokens"),
        "{err:?}"
    );

    let mislabeled = ImageBlock::builder()
        .format(ImageFormat::Jpeg)
        .source(ImageSource::Bytes(Blob::new(png(10, 10))))
        .build()
        .unwrap();
    let err = service_error(
        client
            .converse()
            .model_id(CLAUDE)
            .messages(user(vec![
                ContentBlock::Image(mislabeled),
                text("what is it?"),
            ]))
            .send()
            .await
            .unwrap_err(),
    );
    assert!(
        err.message()
            .unwrap()
            .contains("does not match the image bytes, which are png"),
        "{err:?}"
    );

    let stats = server.stats();
    assert_eq!(stats.status(400), 7);
    assert_eq!(stats.status(200), 0);
}

#[tokio::test]
async fn raw_bodies_with_bad_blocks_are_rejected() {
    // The SDK cannot build these; a hand-written client can.
    let server = server(ServerConfig::default()).await;
    let path = format!("/model/{CLAUDE}/converse");
    let cases = [
        (
            json!({"messages": [{"role": "user", "content": [{}]}]}),
            "must set exactly one member",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"text": "a", "cachePoint": {"type": "default"}}]}]}),
            "found 2",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": "%%%"}}}]}]}),
            "Expected base64 text at 'messages.1.member.content.1.member.image.source.bytes'",
        ),
    ];
    for (body, expected) in cases {
        let (status, response) = raw_http(
            &server.url(),
            "POST",
            &path,
            &serde_json::to_vec(&body).unwrap(),
        )
        .await;
        assert_eq!(status, 400);
        let message: Value = serde_json::from_slice(&response).unwrap();
        assert!(
            message["message"].as_str().unwrap().contains(expected),
            "{message}"
        );
    }
}

#[tokio::test]
async fn images_and_documents_are_counted() {
    let server = server(ServerConfig::default()).await;
    let client = client(&server.url());
    let image = |format, bytes| {
        ContentBlock::Image(
            ImageBlock::builder()
                .format(format)
                .source(ImageSource::Bytes(Blob::new(bytes)))
                .build()
                .unwrap(),
        )
    };
    let document = ContentBlock::Document(
        DocumentBlock::builder()
            .format(DocumentFormat::Txt)
            .name("Quarterly notes (draft)")
            .source(DocumentSource::Bytes(Blob::new(
                b"revenue grew by ten percent".to_vec(),
            )))
            .build()
            .unwrap(),
    );
    let out = client
        .converse()
        .model_id(CLAUDE)
        .messages(user(vec![
            image(ImageFormat::Png, png(1500, 1000)),
            image(ImageFormat::Gif, gif(75, 10)),
            document,
            text("Describe these."),
        ]))
        .send()
        .await
        .unwrap();
    // 1500*1000/750 + 75*10/750 + 27 bytes/4 + 15 chars/4.
    assert_eq!(out.usage().unwrap().input_tokens(), 2000 + 1 + 7 + 4);
    assert_eq!(reply_text(&out), "Describe these.");
    let stats = server.stats();
    assert_eq!(stats.attachments["image/png"].count, 1);
    assert_eq!(stats.attachments["image/png"].bytes, png(1, 1).len() as u64);
    assert_eq!(stats.attachments["image/gif"].count, 1);
    assert_eq!(
        stats.attachments["document/txt"].names,
        vec!["Quarterly notes (draft)"]
    );
}

#[tokio::test]
async fn cache_point_writes_then_reads() {
    let server = server(ServerConfig::default()).await;
    let client = client(&server.url());
    let instructions = "You are a careful analyst. ".repeat(40);
    let call = |record: &'static str| {
        client
            .converse()
            .model_id(CLAUDE)
            .system(SystemContentBlock::Text(instructions.clone()))
            .system(SystemContentBlock::CachePoint(
                CachePointBlock::builder()
                    .r#type(CachePointType::Default)
                    .build()
                    .unwrap(),
            ))
            .messages(user(vec![text(record)]))
            .send()
    };
    let prefix_tokens = instructions.len().div_ceil(4) as i32;
    let first = call("First record.").await.unwrap();
    let usage = first.usage().unwrap();
    assert_eq!(usage.cache_write_input_tokens(), Some(prefix_tokens));
    assert_eq!(usage.cache_read_input_tokens(), Some(0));
    assert_eq!(usage.input_tokens(), 4);
    let second = call("Second record.").await.unwrap();
    let usage = second.usage().unwrap();
    assert_eq!(usage.cache_read_input_tokens(), Some(prefix_tokens));
    assert_eq!(usage.cache_write_input_tokens(), Some(0));
    assert_eq!(usage.input_tokens(), 4);
    assert_eq!(
        usage.total_tokens(),
        prefix_tokens + 4 + usage.output_tokens()
    );
    let stats = server.stats();
    assert_eq!(stats.cache_write_input_tokens, prefix_tokens as u64);
    assert_eq!(stats.cache_read_input_tokens, prefix_tokens as u64);
    assert_eq!(stats.input_tokens, 8);
}

async fn collect_stream(
    client: &Client,
    model: &str,
    max_tokens: i32,
) -> (
    Vec<&'static str>,
    String,
    Option<aws_sdk_bedrockruntime::types::TokenUsage>,
    Option<StopReason>,
) {
    let out = client
        .converse_stream()
        .model_id(model)
        .messages(user(vec![text(PROMPT)]))
        .inference_config(
            InferenceConfiguration::builder()
                .max_tokens(max_tokens)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut stream = out.stream;
    let (mut kinds, mut text, mut usage, mut stop) = (Vec::new(), String::new(), None, None);
    while let Some(event) = stream.recv().await.unwrap() {
        kinds.push(match event {
            ConverseStreamOutput::MessageStart(_) => "messageStart",
            ConverseStreamOutput::ContentBlockDelta(delta) => {
                if let Some(ContentBlockDelta::Text(piece)) = delta.delta() {
                    text.push_str(piece);
                }
                "contentBlockDelta"
            }
            ConverseStreamOutput::ContentBlockStop(_) => "contentBlockStop",
            ConverseStreamOutput::MessageStop(m) => {
                stop = Some(m.stop_reason().clone());
                "messageStop"
            }
            ConverseStreamOutput::Metadata(m) => {
                usage = m.usage().cloned();
                assert!(m.metrics().is_some());
                "metadata"
            }
            _ => "other",
        });
    }
    (kinds, text, usage, stop)
}

#[tokio::test]
async fn converse_stream_matches_converse() {
    let server = server(ServerConfig::default()).await;
    let client = client(&server.url());
    let (kinds, streamed, usage, stop) = collect_stream(&client, CLAUDE, 200).await;
    assert_eq!(kinds.first(), Some(&"messageStart"));
    assert_eq!(
        &kinds[kinds.len() - 3..],
        &["contentBlockStop", "messageStop", "metadata"]
    );
    let deltas = kinds.iter().filter(|k| **k == "contentBlockDelta").count();
    assert!(deltas >= 3, "{kinds:?}");
    let whole = converse(&client, CLAUDE, PROMPT, 200).await.unwrap();
    assert_eq!(streamed, reply_text(&whole));
    assert_eq!(usage.as_ref(), whole.usage());
    assert_eq!(stop.as_ref(), Some(whole.stop_reason()));
    assert_eq!(server.stats().by_route["converse-stream"], 1);
}

#[tokio::test]
async fn stream_deltas_are_paced_by_generation_speed() {
    let server = server(ServerConfig {
        latency: Duration::from_millis(100),
        tokens_per_sec: 100.0,
        ..ServerConfig::default()
    })
    .await;
    let client = client(&server.url());
    let started = Instant::now();
    let (_, text, usage, _) = collect_stream(&client, CLAUDE, 200).await;
    let output_tokens = usage.unwrap().output_tokens() as u64;
    assert_eq!(text, SUMMARY);
    // First-token latency plus output tokens at 100/s: a lower bound, never flaky.
    let floor = Duration::from_millis(100 + output_tokens * 10);
    assert!(
        started.elapsed() >= floor,
        "{:?} < {floor:?}",
        started.elapsed()
    );

    let started = Instant::now();
    converse(&client, CLAUDE, PROMPT, 200).await.unwrap();
    assert!(started.elapsed() >= floor);
}

#[tokio::test]
async fn stream_throttled_midway_is_an_exception_frame() {
    let server = server(ServerConfig {
        faults: FaultRates {
            stream_throttle: 1.0,
            ..FaultRates::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let client = client(&server.url());
    let out = client
        .converse_stream()
        .model_id(CLAUDE)
        .messages(user(vec![text(PROMPT)]))
        .send()
        .await
        .unwrap();
    let mut stream = out.stream;
    let mut deltas = 0;
    let err = loop {
        match stream.recv().await {
            Ok(Some(ConverseStreamOutput::ContentBlockDelta(_))) => deltas += 1,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the stream ended without the throttle"),
            Err(err) => break err,
        }
    };
    assert!(deltas >= 1, "the cut comes after the first deltas");
    let err = service_error(err);
    assert!(
        matches!(err, ConverseStreamOutputError::ThrottlingException(_)),
        "{err:?}"
    );
    assert_eq!(
        err.message(),
        Some("Too many tokens, please wait before trying again.")
    );
    let stats = server.stats();
    assert_eq!(stats.throttles, 1);
    assert_eq!(stats.faults.stream_throttle, 1);
    assert_eq!(
        stats.output_tokens, 0,
        "a cut stream is not a delivered answer"
    );
}

async fn invoke(
    client: &Client,
    model: &str,
    body: Value,
) -> Result<Value, SdkError<InvokeModelError>> {
    let out = client
        .invoke_model()
        .model_id(model)
        .content_type("application/json")
        .accept("application/json")
        .body(Blob::new(serde_json::to_vec(&body).unwrap()))
        .send()
        .await
        .map_err(|e| e.map_service_error(|e| e))?;
    Ok(serde_json::from_slice(out.body().as_ref()).expect("a JSON body"))
}

fn cosine(a: &Value, b: &Value) -> f64 {
    let (a, b) = (a.as_array().unwrap(), b.as_array().unwrap());
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| x.as_f64().unwrap() * y.as_f64().unwrap())
        .sum();
    let norm = |v: &Vec<Value>| {
        v.iter()
            .map(|x| x.as_f64().unwrap().powi(2))
            .sum::<f64>()
            .sqrt()
    };
    dot / (norm(a) * norm(b))
}

#[tokio::test]
async fn invoke_embedding_families() {
    let server = server(ServerConfig::default()).await;
    let headers = SeenHeaders::default();
    let client = client_with(&server.url(), Some(headers.clone()));

    let titan = invoke(
        &client,
        TITAN_V2,
        json!({"inputText": "refund for a damaged order", "dimensions": 256, "normalize": true}),
    )
    .await
    .unwrap();
    let vector = titan["embedding"].as_array().unwrap();
    assert_eq!(vector.len(), 256);
    let norm: f64 = vector
        .iter()
        .map(|x| x.as_f64().unwrap().powi(2))
        .sum::<f64>()
        .sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    assert_eq!(titan["inputTextTokenCount"], 7);
    assert_eq!(titan["embeddingsByType"]["float"], titan["embedding"]);
    assert_eq!(
        headers.last("x-amzn-bedrock-input-token-count").as_deref(),
        Some("7")
    );
    assert_eq!(
        headers.last("x-amzn-bedrock-output-token-count").as_deref(),
        Some("0")
    );
    assert!(headers.last("x-amzn-bedrock-invocation-latency").is_some());

    let v1 = invoke(&client, TITAN_V1, json!({"inputText": "hello"}))
        .await
        .unwrap();
    assert_eq!(v1["embedding"].as_array().unwrap().len(), 1536);

    let cohere = invoke(&client, COHERE, json!({
        "texts": ["refund for a damaged order", "customer wants a refund for a damaged order", "sunny weather in lisbon"],
        "input_type": "search_document"
    })).await.unwrap();
    let vectors = cohere["embeddings"].as_array().unwrap();
    assert_eq!(vectors.len(), 3);
    assert_eq!(vectors[0].as_array().unwrap().len(), 1024);
    assert!(cosine(&vectors[0], &vectors[1]) > cosine(&vectors[0], &vectors[2]) + 0.3);
    assert_eq!(cohere["response_type"], "embeddings_floats");

    let err = service_error(
        invoke(
            &client,
            TITAN_V2,
            json!({"inputText": "x", "dimensions": 300}),
        )
        .await
        .unwrap_err(),
    );
    assert!(matches!(err, InvokeModelError::ValidationException(_)));
    assert!(err.message().unwrap().contains("dimensions"));
    let err = service_error(
        invoke(
            &client,
            COHERE,
            json!({"texts": vec!["t"; 97], "input_type": "clustering"}),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        err.message().unwrap().contains("between 1 and 96"),
        "{err:?}"
    );
}

#[tokio::test]
async fn invoke_text_families() {
    let server = server(ServerConfig::default()).await;
    let headers = SeenHeaders::default();
    let client = client_with(&server.url(), Some(headers.clone()));

    let claude = invoke(
        &client,
        &format!("us.{CLAUDE}"),
        json!({
            "anthropic_version": "bedrock-2023-05-31", "max_tokens": 100,
            "messages": [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}]
        }),
    )
    .await
    .unwrap();
    assert_eq!(claude["type"], "message");
    assert_eq!(claude["content"][0]["text"], SUMMARY);
    assert_eq!(claude["stop_reason"], "end_turn");
    assert_eq!(claude["usage"]["input_tokens"], 21);
    assert_eq!(
        headers.last("x-amzn-bedrock-input-token-count").as_deref(),
        Some("21")
    );
    assert_eq!(
        headers.last("x-amzn-bedrock-output-token-count"),
        Some(claude["usage"]["output_tokens"].to_string())
    );

    let llama = invoke(&client, US_LLAMA, json!({
        "prompt": format!("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{PROMPT}<|eot_id|><|start_header_id|>assistant<|end_header_id|>"),
        "max_gen_len": 5
    })).await.unwrap();
    assert_eq!(llama["generation"], "Bedrock is a managed");
    assert_eq!(llama["stop_reason"], "length");
    assert_eq!(llama["generation_token_count"], 5);
    assert!(llama["prompt_token_count"].as_u64().unwrap() > 21);

    let err = service_error(
        invoke(&client, CLAUDE, json!({"max_tokens": 10, "messages": []}))
            .await
            .unwrap_err(),
    );
    assert!(matches!(err, InvokeModelError::ValidationException(_)));
    assert!(err.message().unwrap().contains("anthropic_version"));
}

async fn invoke_stream_chunks(client: &Client, model: &str, body: Value) -> Vec<Value> {
    let out = client
        .invoke_model_with_response_stream()
        .model_id(model)
        .content_type("application/json")
        .body(Blob::new(serde_json::to_vec(&body).unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.content_type(), "application/json");
    let mut stream = out.body;
    let mut chunks = Vec::new();
    while let Some(event) = stream.recv().await.unwrap() {
        if let ResponseStream::Chunk(part) = event {
            chunks.push(serde_json::from_slice(part.bytes().unwrap().as_ref()).unwrap());
        }
    }
    chunks
}

#[tokio::test]
async fn invoke_with_response_stream_matches_invoke() {
    let server = server(ServerConfig::default()).await;
    let client = client(&server.url());
    let body = json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100,
        "messages": [{"role": "user", "content": PROMPT}]});
    let chunks = invoke_stream_chunks(&client, CLAUDE, body.clone()).await;
    let kinds: Vec<&str> = chunks.iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(&kinds[..2], &["message_start", "content_block_start"]);
    assert_eq!(
        &kinds[kinds.len() - 3..],
        &["content_block_stop", "message_delta", "message_stop"]
    );
    let streamed: String = chunks
        .iter()
        .filter(|c| c["type"] == "content_block_delta")
        .map(|c| c["delta"]["text"].as_str().unwrap())
        .collect();
    let whole = invoke(&client, CLAUDE, body).await.unwrap();
    assert_eq!(streamed, whole["content"][0]["text"].as_str().unwrap());
    let metrics = &chunks.last().unwrap()["amazon-bedrock-invocationMetrics"];
    assert_eq!(metrics["inputTokenCount"], whole["usage"]["input_tokens"]);
    assert_eq!(metrics["outputTokenCount"], whole["usage"]["output_tokens"]);

    let body = json!({"prompt": PROMPT, "max_gen_len": 50});
    let chunks = invoke_stream_chunks(&client, US_LLAMA, body.clone()).await;
    assert!(chunks.len() >= 3);
    let streamed: String = chunks
        .iter()
        .map(|c| c["generation"].as_str().unwrap())
        .collect();
    let whole = invoke(&client, US_LLAMA, body).await.unwrap();
    assert_eq!(streamed, whole["generation"].as_str().unwrap());
    let last = chunks.last().unwrap();
    assert_eq!(last["stop_reason"], "stop");
    assert_eq!(
        last["amazon-bedrock-invocationMetrics"]["outputTokenCount"],
        whole["generation_token_count"]
    );

    let err = client
        .invoke_model_with_response_stream()
        .model_id(TITAN_V2)
        .body(Blob::new(br#"{"inputText": "x"}"#.to_vec()))
        .send()
        .await
        .unwrap_err();
    let err = Error::from(err);
    assert!(matches!(err, Error::ValidationException(_)), "{err:?}");
}

#[tokio::test]
async fn tokens_per_minute_quota_throttles_and_refunds() {
    // 600 tokens a minute: 10 a second.
    let server = server(ServerConfig {
        tpm: Some(600),
        ..ServerConfig::default()
    })
    .await;
    let client = client(&server.url());
    // Reserves 21 input + 500 max tokens, uses 21 + 15: 485 come back when it ends.
    converse(&client, CLAUDE, PROMPT, 500).await.unwrap();
    converse(&client, CLAUDE, PROMPT, 500).await.unwrap();
    // 600 - 36 - 36 = 528 left: a call reserving 21 + 550 is refused.
    let err = service_error(converse(&client, CLAUDE, PROMPT, 550).await.unwrap_err());
    assert!(
        matches!(err, ConverseError::ThrottlingException(_)),
        "{err:?}"
    );
    assert_eq!(
        err.message(),
        Some("Too many tokens, please wait before trying again.")
    );
    // Quotas are per model: another model has its own bucket.
    converse(&client, &format!("us.{CLAUDE}"), PROMPT, 550)
        .await
        .unwrap();
    let stats = server.stats();
    assert_eq!(stats.throttles, 1);
    assert_eq!(stats.status(429), 1);
    assert_eq!(stats.by_model[CLAUDE].throttled, 1);
    assert_eq!(stats.by_model[CLAUDE].ok, 2);
}

#[tokio::test]
async fn burndown_multiplies_output_reservation() {
    let server = server(ServerConfig {
        tpm: Some(1_000),
        burndown: 5.0,
        ..ServerConfig::default()
    })
    .await;
    let client = client(&server.url());
    // 21 + 5 x 200 = 1021 > 1000.
    let err = service_error(converse(&client, CLAUDE, PROMPT, 200).await.unwrap_err());
    assert!(matches!(err, ConverseError::ThrottlingException(_)));
    converse(&client, CLAUDE, PROMPT, 190).await.unwrap();
}

#[tokio::test]
async fn requests_per_minute_quota() {
    let server = server(ServerConfig {
        rpm: Some(2),
        ..ServerConfig::default()
    })
    .await;
    let client = client(&server.url());
    let body = json!({"inputText": "hello"});
    invoke(&client, TITAN_V2, body.clone()).await.unwrap();
    invoke(&client, TITAN_V2, body.clone()).await.unwrap();
    let err = service_error(invoke(&client, TITAN_V2, body).await.unwrap_err());
    assert!(matches!(err, InvokeModelError::ThrottlingException(_)));
    assert_eq!(
        err.message(),
        Some("Too many requests, please wait before trying again.")
    );
}

#[tokio::test]
async fn denied_model_is_access_denied() {
    let server = server(ServerConfig {
        deny_models: vec!["anthropic.*".into()],
        ..ServerConfig::default()
    })
    .await;
    let client = client(&server.url());
    // Matched through the base model of an inference profile too.
    let err = service_error(
        converse(&client, &format!("us.{CLAUDE}"), PROMPT, 10)
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(err, ConverseError::AccessDeniedException(_)),
        "{err:?}"
    );
    converse(&client, "amazon.nova-lite-v1:0", PROMPT, 10)
        .await
        .unwrap();
    assert_eq!(server.stats().status(403), 1);
}

#[tokio::test]
async fn failures_are_internal_or_unavailable() {
    let server = server(ServerConfig {
        faults: FaultRates {
            fail: 1.0,
            ..FaultRates::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let client = client(&server.url());
    let mut kinds = std::collections::BTreeSet::new();
    for i in 0..20 {
        let err = service_error(
            converse(&client, CLAUDE, &format!("Record {i}."), 10)
                .await
                .unwrap_err(),
        );
        kinds.insert(match err {
            ConverseError::InternalServerException(_) => 500,
            ConverseError::ServiceUnavailableException(_) => 503,
            other => panic!("unexpected {other:?}"),
        });
    }
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), vec![500, 503]);
    let stats = server.stats();
    assert_eq!(stats.status(500) + stats.status(503), 20);
    assert_eq!(
        stats.faults.internal_server + stats.faults.service_unavailable,
        20
    );
}

#[tokio::test]
async fn model_errors_are_424() {
    let server = server(ServerConfig {
        faults: FaultRates {
            model_error: 1.0,
            ..FaultRates::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let client = client(&server.url());
    let err = service_error(converse(&client, CLAUDE, PROMPT, 10).await.unwrap_err());
    assert!(
        matches!(err, ConverseError::ModelErrorException(_)),
        "{err:?}"
    );
    assert_eq!(server.stats().status(424), 1);
    assert_eq!(server.stats().faults.model_error, 1);
}

#[tokio::test]
async fn timeouts_arrive_after_the_delay() {
    let server = server(ServerConfig {
        faults: FaultRates {
            timeout: 1.0,
            ..FaultRates::default()
        },
        timeout_delay: Duration::from_millis(150),
        ..ServerConfig::default()
    })
    .await;
    let client = client(&server.url());
    let started = Instant::now();
    let err = service_error(converse(&client, CLAUDE, PROMPT, 10).await.unwrap_err());
    assert!(
        matches!(err, ConverseError::ModelTimeoutException(_)),
        "{err:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(server.stats().status(408), 1);
}

#[tokio::test]
async fn resets_close_the_connection_without_a_response() {
    let server = server(ServerConfig {
        faults: FaultRates {
            reset: 1.0,
            ..FaultRates::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let client = client(&server.url());
    let err = converse(&client, CLAUDE, PROMPT, 10).await.unwrap_err();
    assert!(matches!(err, SdkError::DispatchFailure(_)), "{err:?}");
    let stats = server.stats();
    assert_eq!(stats.faults.reset, 1);
    assert!(stats.by_status.is_empty(), "{:?}", stats.by_status);
    assert_eq!(stats.in_flight, 0);
}

#[tokio::test]
async fn garbage_bodies_fail_to_parse() {
    let server = server(ServerConfig {
        faults: FaultRates {
            garbage: 1.0,
            ..FaultRates::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let client = client(&server.url());
    // The SDK reports a 200 it cannot deserialize as an unmodeled service error.
    match converse(&client, CLAUDE, PROMPT, 10).await.unwrap_err() {
        SdkError::ServiceError(err) => {
            assert_eq!(err.raw().status().as_u16(), 200);
            assert!(err.err().meta().code().is_none(), "{:?}", err.err());
        }
        other => panic!("expected a deserialization failure, got {other:?}"),
    }
    // InvokeModel hands the body over as bytes: the caller's parser sees the garbage.
    let out = client
        .invoke_model()
        .model_id(TITAN_V2)
        .body(Blob::new(br#"{"inputText": "x"}"#.to_vec()))
        .send()
        .await
        .unwrap();
    assert!(serde_json::from_slice::<Value>(out.body().as_ref()).is_err());
    let err = client
        .converse_stream()
        .model_id(CLAUDE)
        .messages(user(vec![text(PROMPT)]))
        .send()
        .await;
    match err {
        Ok(out) => {
            let mut stream = out.stream;
            assert!(stream.recv().await.is_err(), "a corrupt frame is an error");
        }
        Err(err) => assert!(matches!(err, SdkError::ResponseError(_)), "{err:?}"),
    }
    let stats = server.stats();
    assert_eq!(stats.faults.garbage, 3);
    assert_eq!(stats.input_tokens, 0, "garbage is not a delivered answer");
}

#[tokio::test]
async fn invoke_stream_throttle_frame() {
    let server = server(ServerConfig {
        faults: FaultRates {
            stream_throttle: 1.0,
            ..FaultRates::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let client = client(&server.url());
    let out = client
        .invoke_model_with_response_stream()
        .model_id(US_LLAMA)
        .body(Blob::new(
            serde_json::to_vec(&json!({"prompt": PROMPT})).unwrap(),
        ))
        .send()
        .await
        .unwrap();
    let mut stream = out.body;
    let err = loop {
        match stream.recv().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("no throttle"),
            Err(err) => break service_error(err),
        }
    };
    assert!(
        matches!(err, ResponseStreamError::ThrottlingException(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn faults_are_reproducible_by_seed() {
    let config = ServerConfig {
        faults: FaultRates {
            fail: 0.5,
            ..FaultRates::default()
        },
        seed: 42,
        ..ServerConfig::default()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let server = server(config.clone()).await;
        let client = client(&server.url());
        let mut outcomes = Vec::new();
        for i in 0..30 {
            outcomes.push(
                converse(&client, CLAUDE, &format!("Record {i}."), 10)
                    .await
                    .is_ok(),
            );
        }
        runs.push(outcomes);
        server.shutdown().await;
    }
    assert_eq!(runs[0], runs[1]);
    let ok = runs[0].iter().filter(|o| **o).count();
    assert!(
        (5..=25).contains(&ok),
        "{ok} of 30 succeeded at a 50% failure rate"
    );
}

#[tokio::test]
async fn model_id_labels_are_decoded_once() {
    let server = server(ServerConfig::default()).await;
    let client = client(&server.url());
    let arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0";
    converse(&client, arn, PROMPT, 10).await.unwrap();
    // A literal "%2F" in an id must stay "%2F" (which AWS's model id pattern refuses):
    // decoding twice would turn it into "/". The server counts it as sent, then refuses it.
    let odd = "anthropic.claude%2Fv1";
    let err = converse(&client, odd, PROMPT, 10).await.unwrap_err();
    let message = format!("{:?}", err.into_service_error());
    assert!(
        message.contains("Value 'anthropic.claude%2Fv1' at 'modelId' failed to satisfy"),
        "{message}"
    );
    let stats = server.stats();
    assert_eq!(stats.by_model[arn].ok, 1);
    assert_eq!(stats.by_model[odd].requests, 1);
}

#[tokio::test]
async fn stats_count_concurrency_and_duplicates_and_reset() {
    let server = server(ServerConfig {
        latency: Duration::from_millis(200),
        ..ServerConfig::default()
    })
    .await;
    let client = client(&server.url());
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                converse(&client, CLAUDE, &format!("Record {}.", i % 4), 10)
                    .await
                    .is_ok()
            })
        })
        .collect();
    for call in calls {
        assert!(call.await.unwrap());
    }
    let stats = server.stats();
    assert!(
        stats.max_in_flight >= 2,
        "8 concurrent 200 ms calls: {}",
        stats.max_in_flight
    );
    assert_eq!(stats.in_flight, 0);
    // Eight successes over four distinct bodies: four were paid for twice.
    assert_eq!(stats.duplicate_successes, 4);

    let (status, body) = raw_http(&server.url(), "GET", "/_local/stats", b"").await;
    assert_eq!(status, 200);
    let over_http: bedrock_batch::local_server::Stats = serde_json::from_slice(&body).unwrap();
    assert_eq!(over_http, stats);

    let (status, _) = raw_http(&server.url(), "POST", "/_local/reset", b"").await;
    assert_eq!(status, 200);
    let stats = server.stats();
    assert_eq!(stats.requests, 0);
    assert_eq!(stats.duplicate_successes, 0);
    converse(&client, CLAUDE, "Record 0.", 10).await.unwrap();
    assert_eq!(
        server.stats().duplicate_successes,
        0,
        "reset forgets answered bodies"
    );
}
