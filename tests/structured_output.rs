//! `--schema` end to end, through the binary and the real SDK against the local server:
//! every `data` validates (Converse, ConverseStream, with prompt caching), a bad answer is
//! tried once more and then becomes a `schema_mismatch` line, an invalid schema is a usage
//! error before any call, dry-run counts the schema, a resume with another schema is refused.

mod common;

use bedrock_batch::local_server::{FaultRates, ServerConfig};
use common::*;
use serde_json::{Value, json};

const TICKETS: &[&str] = &[
    "My invoice was charged twice this month and I want a refund.",
    "The mobile app crashes every time I open the settings page.",
    "How do I export my data to a spreadsheet?",
    "The dashboard is very slow since the last update, please fix it.",
    "I cannot log in after resetting my password.",
    "Please cancel my subscription at the end of the billing period.",
    "The search box returns no results for product names with accents.",
    "Our team needs three more seats on the business plan.",
];

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "category": {"type": "string", "enum": ["billing", "bug", "question", "account"]},
            "urgency": {"type": "integer", "minimum": 1, "maximum": 5},
            "summary": {"type": "string", "maxLength": 80},
            "needs_human": {"type": "boolean"}
        },
        "required": ["category", "urgency", "summary", "needs_human"]
    })
}

/// A job of `n` tickets and the schema, in `dir`.
fn setup(dir: &std::path::Path, n: usize) -> String {
    let records: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("t{i}"), "text": format!("Ticket {i}: {}", TICKETS[i % TICKETS.len()])}))
        .collect();
    std::fs::write(dir.join("schema.json"), schema().to_string()).unwrap();
    write_jsonl(dir, "tickets.jsonl", &records)
}

fn assert_valid_data(run: &Run, n: usize) {
    let validator = jsonschema::validator_for(&schema()).unwrap();
    let lines = run.lines();
    assert_eq!(lines.len(), n, "{}", run.stderr());
    for line in &lines {
        assert_eq!(line["status"], "ok", "{line}");
        assert!(validator.is_valid(&line["data"]), "{line}");
        assert_eq!(line["stop_reason"], "tool_use", "{line}");
    }
}

#[tokio::test]
async fn every_answer_carries_valid_data_streamed_or_not() {
    let work = tempfile::tempdir().unwrap();
    let job = setup(work.path(), 16);
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    let base = [
        job.as_str(),
        "--model",
        CLAUDE,
        "--endpoint-url",
        &url,
        "--schema",
        "schema.json",
    ];
    let plain = run_fresh(work.path(), &base).await;
    assert_eq!(plain.code(), 0, "{}", plain.stderr());
    assert_valid_data(&plain, 16);

    let mut streamed_args = base.to_vec();
    streamed_args.push("--stream");
    let streamed = run_fresh(work.path(), &streamed_args).await;
    assert_eq!(streamed.code(), 0, "{}", streamed.stderr());
    assert_valid_data(&streamed, 16);
    // The fake model's answer depends on the text only: both paths give the same data.
    let data = |run: &Run| -> Vec<(String, Value)> {
        run.by_id()
            .into_iter()
            .map(|(id, l)| (id, l["data"].clone()))
            .collect()
    };
    assert_eq!(data(&plain), data(&streamed));
    assert!(streamed.lines().iter().all(|l| l["ttft_ms"].is_u64()));

    let mut cached_args = base.to_vec();
    cached_args.extend(["--system", "You triage support tickets for a software company. Read each ticket and record its category, urgency from 1 to 5, a one-line summary and whether a person must answer.", "--cache-prompt", "--concurrency", "1"]);
    let cached = run_fresh(work.path(), &cached_args).await;
    assert_eq!(cached.code(), 0, "{}", cached.stderr());
    assert_valid_data(&cached, 16);
    let read: u64 = cached
        .lines()
        .iter()
        .map(|l| l["usage"]["cache_read_input_tokens"].as_u64().unwrap())
        .sum();
    assert!(read > 0, "the cached system prompt is read back");
    assert_eq!(
        std::fs::read_to_string(cached.dir.join("schema.json"))
            .map(|s| serde_json::from_str::<Value>(&s).unwrap())
            .unwrap(),
        schema(),
        "the run directory keeps its schema for export"
    );
}

#[tokio::test]
async fn a_bad_answer_is_tried_once_more_then_is_a_schema_mismatch() {
    let work = tempfile::tempdir().unwrap();
    let job = setup(work.path(), 40);
    let half = server(ServerConfig {
        faults: FaultRates {
            schema_violation: 0.5,
            ..FaultRates::default()
        },
        seed: 11,
        ..ServerConfig::default()
    })
    .await;
    let url = half.url();
    let args = [
        job.as_str(),
        "--model",
        CLAUDE,
        "--endpoint-url",
        &url,
        "--schema",
        "schema.json",
    ];
    let run = run_fresh(work.path(), &args).await;
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let validator = jsonschema::validator_for(&schema()).unwrap();
    let lines = run.lines();
    assert_eq!(lines.len(), 40);
    let mut recovered = 0;
    let mut mismatched = 0;
    for line in &lines {
        match line["status"].as_str() {
            Some("ok") => {
                assert!(validator.is_valid(&line["data"]), "{line}");
                if line["attempts"] == 2 {
                    recovered += 1;
                }
            }
            _ => {
                mismatched += 1;
                assert_eq!(line["error"]["kind"], "schema_mismatch", "{line}");
                assert_eq!(line["attempts"], 2, "one more try, then the error: {line}");
                let message = line["error"]["message"].as_str().unwrap();
                assert!(
                    message.contains("at /") && message.contains("\"category\""),
                    "the pointer and reason of the first violation: {message}"
                );
                assert!(line.get("data").is_none());
            }
        }
    }
    assert!(
        recovered > 0,
        "some bad first answers are good the second time"
    );
    assert!(mismatched > 0, "some records are bad twice");
    assert_eq!(half.stats().requests as usize, 40 + recovered + mismatched);

    let always = server(ServerConfig {
        faults: FaultRates {
            schema_violation: 1.0,
            ..FaultRates::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let url = always.url();
    let mut stream_args = args.to_vec();
    stream_args[4] = &url;
    stream_args.push("--stream");
    let run = run_fresh(work.path(), &stream_args).await;
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let lines = run.lines();
    assert_eq!(lines.len(), 40);
    assert!(
        lines
            .iter()
            .all(|l| l["error"]["kind"] == "schema_mismatch" && l["attempts"] == 2)
    );
    assert_eq!(run.summary()["records"]["failed"], 40);
}

#[tokio::test]
async fn an_invalid_schema_is_a_usage_error_before_any_call() {
    let work = tempfile::tempdir().unwrap();
    let job = setup(work.path(), 3);
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    for (name, body) in [
        ("not-json.json", "{\"type\": \"object\","),
        ("string.json", "{\"type\": \"string\"}"),
        (
            "bad-type.json",
            "{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"strin\"}}}",
        ),
    ] {
        std::fs::write(work.path().join(name), body).unwrap();
        let run = run_fresh(
            work.path(),
            &[
                &job,
                "--model",
                CLAUDE,
                "--endpoint-url",
                &url,
                "--schema",
                name,
            ],
        )
        .await;
        assert_eq!(run.code(), 2, "{name}: {}", run.stderr());
        assert!(run.stderr().contains("--schema"), "{}", run.stderr());
        assert!(run.stderr().contains(name), "{}", run.stderr());
    }
    assert_eq!(server.stats().requests, 0);
}

#[tokio::test]
async fn dry_run_counts_the_schema_and_resume_refuses_another_schema() {
    let work = tempfile::tempdir().unwrap();
    let job = setup(work.path(), 5);
    let estimate = |args: Vec<&str>| {
        let work = work.path().to_path_buf();
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        async move {
            let mut full = vec!["run", "--dry-run", "--json", "--out", "dry"];
            full.extend(args.iter().map(String::as_str));
            let output = bb(&work, &full).await;
            let estimate: Value = serde_json::from_slice(&output.stdout)
                .unwrap_or_else(|e| panic!("{e}: {}", stderr(&output)));
            estimate["estimated_input_tokens"].as_u64().unwrap()
        }
    };
    let without = estimate(vec![&job, "--model", CLAUDE]).await;
    let with = estimate(vec![&job, "--model", CLAUDE, "--schema", "schema.json"]).await;
    let schema_tokens = (schema().to_string().chars().count() as u64).div_ceil(4);
    assert!(
        with >= without + 5 * (schema_tokens - 1),
        "5 records each carry the schema: {without} -> {with}"
    );

    let server = server(ServerConfig::default()).await;
    let url = server.url();
    let dir = work.path().join("resumed").display().to_string();
    let run_with = |schema_file: &'static str| {
        let args = [
            "run",
            &job,
            "--model",
            CLAUDE,
            "--endpoint-url",
            &url,
            "--schema",
            schema_file,
            "--out",
            &dir,
        ]
        .map(String::from);
        let work = work.path().to_path_buf();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            bb(&work, &args).await
        }
    };
    let first = run_with("schema.json").await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let mut other = schema();
    other["properties"]["language"] = json!({"type": "string"});
    std::fs::write(work.path().join("other.json"), other.to_string()).unwrap();
    let second = run_with("other.json").await;
    assert_eq!(second.status.code(), Some(2), "{}", stderr(&second));
    assert!(stderr(&second).contains("schema"), "{}", stderr(&second));
}
