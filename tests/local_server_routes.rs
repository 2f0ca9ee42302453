//! What the local server answers to requests no SDK sends, over plain HTTP: an unknown
//! route, a known route with the wrong method, a body larger than the service takes, and
//! bad input to the `/_local/quota` control route. Every refusal a client can parse comes
//! in the service's error shape (status, `x-amzn-errortype`, a JSON `message`), and a
//! refused quota change changes nothing.

mod common;

use bedrock_batch::local_server::ServerConfig;
use common::{CLAUDE, RawAnswer, raw_http_declaring, server};
use serde_json::{Value, json};

/// A row of the refusals table: method, path, body, declared length (the body's when
/// `None`), status, error type, words in the message.
type Case<'a> = (
    &'a str,
    &'a str,
    Vec<u8>,
    Option<u64>,
    u16,
    &'a str,
    &'a str,
);

/// The answer's body as JSON.
fn body_json(answer: &RawAnswer) -> Value {
    serde_json::from_slice(&answer.body).unwrap_or_else(|err| {
        panic!(
            "not JSON ({err}): {} {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        )
    })
}

/// A Converse body of one short user message.
fn converse_body() -> Vec<u8> {
    serde_json::to_vec(&json!({"messages": [{"role": "user", "content": [{"text": "Hello."}]}]}))
        .unwrap()
}

#[tokio::test]
async fn requests_no_sdk_sends_are_refused_in_the_service_error_shape() {
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    let converse = format!("/model/{CLAUDE}/converse");
    let cases: [Case; 7] = [
        (
            "GET",
            "/model/x/summarize",
            vec![],
            None,
            404,
            "ResourceNotFoundException",
            "no route for /model/x/summarize",
        ),
        (
            "POST",
            "/nowhere",
            b"{}".to_vec(),
            None,
            404,
            "ResourceNotFoundException",
            "no route for /nowhere",
        ),
        // 200 MB declared: refused before a byte of it is read.
        (
            "POST",
            &converse,
            converse_body(),
            Some(200_000_000),
            413,
            "ValidationException",
            "larger than the 160 MiB",
        ),
        (
            "POST",
            "/_local/quota",
            b"{tpm: 5".to_vec(),
            None,
            400,
            "SerializationException",
            "expected {\"tpm\": N, \"rpm\": N}",
        ),
        (
            "POST",
            "/_local/quota",
            br#"{"tpm": -5}"#.to_vec(),
            None,
            400,
            "SerializationException",
            "invalid value",
        ),
        (
            "POST",
            "/_local/quota",
            br#"{"rpm": 0}"#.to_vec(),
            None,
            400,
            "ValidationException",
            "at least 1",
        ),
        // A misspelt member would otherwise lift both limits.
        (
            "POST",
            "/_local/quota",
            br#"{"tmp": 1000}"#.to_vec(),
            None,
            400,
            "SerializationException",
            "unknown field `tmp`",
        ),
    ];
    // Every row runs; the failures are reported together.
    let mut wrong = Vec::new();
    for (method, path, body, declared, status, error_type, says) in cases {
        let answer = raw_http_declaring(&url, method, path, &body, declared).await;
        let message = serde_json::from_slice::<Value>(&answer.body)
            .ok()
            .and_then(|body| body["message"].as_str().map(str::to_string));
        let error = answer
            .header("x-amzn-errortype")
            .and_then(|t| t.split(':').next());
        if answer.status != status
            || error != Some(error_type)
            || answer.header("x-amzn-requestid").is_none()
            || !message.as_deref().is_some_and(|m| m.contains(says))
        {
            wrong.push(format!(
                "{method} {path}: {} {error:?} {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // A known path with another method: 405 naming the method it takes (axum's answer;
    // no SDK sends it).
    let answer = raw_http_declaring(&url, "GET", &converse, b"", None).await;
    assert_eq!(answer.status, 405);
    assert_eq!(answer.header("allow"), Some("POST"));

    // None of the refused changes took: the model answers without a quota...
    for _ in 0..3 {
        let answer = raw_http_declaring(&url, "POST", &converse, &converse_body(), None).await;
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    // ...until a good one sets one request a minute.
    let set = raw_http_declaring(&url, "POST", "/_local/quota", br#"{"rpm": 1}"#, None).await;
    assert_eq!(
        (set.status, body_json(&set)),
        (200, json!({"tpm": null, "rpm": 1}))
    );
    let first = raw_http_declaring(&url, "POST", &converse, &converse_body(), None).await;
    assert_eq!(first.status, 200);
    let second = raw_http_declaring(&url, "POST", &converse, &converse_body(), None).await;
    assert_eq!(second.status, 429);
    assert_eq!(
        second
            .header("x-amzn-errortype")
            .and_then(|t| t.split(':').next()),
        Some("ThrottlingException")
    );
    assert_eq!(server.stats().requests, 5);
    server.shutdown().await;
}
