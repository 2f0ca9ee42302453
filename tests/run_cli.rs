//! `bedrock-batch run` end to end: the real binary against the local server over HTTP,
//! checking results.jsonl line by line, summary.json against the sum of the lines, and
//! both against what the server itself counted.

mod common;

use std::path::Path;

use bedrock_batch::local_server::{FaultRates, ServerConfig, Stats};
use common::*;
use serde_json::{Value, json};

/// Runs the binary with `args` (the job file first) writing to a fresh RUN_DIR.
async fn run(work: &Path, args: &[&str]) -> Run {
    run_fresh(work, args).await
}

fn write(dir: &Path, name: &str, content: &[u8]) -> String {
    std::fs::write(dir.join(name), content).unwrap();
    name.to_string()
}

fn sum(lines: &[Value], field: &str) -> u64 {
    lines
        .iter()
        .map(|l| l["usage"][field].as_u64().unwrap())
        .sum()
}

/// summary.json totals equal the sum of results.jsonl, and the server agrees.
fn assert_totals(run: &Run, stats: &Stats) {
    let lines = run.lines();
    let summary = run.summary();
    for field in [
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_write_input_tokens",
    ] {
        assert_eq!(
            summary["usage"][field].as_u64().unwrap(),
            sum(&lines, field),
            "{field}"
        );
    }
    assert_eq!(
        summary["records"]["total"].as_u64().unwrap(),
        lines.len() as u64
    );
    let ok = lines.iter().filter(|l| l["status"] == "ok").count() as u64;
    assert_eq!(summary["records"]["ok"].as_u64().unwrap(), ok);
    assert_eq!(
        summary["records"]["failed"].as_u64().unwrap(),
        lines.len() as u64 - ok
    );
    assert_eq!(
        sum(&lines, "input_tokens")
            + sum(&lines, "cache_read_input_tokens")
            + sum(&lines, "cache_write_input_tokens"),
        stats.input_tokens + stats.cache_read_input_tokens + stats.cache_write_input_tokens,
        "server input tokens"
    );
    assert_eq!(
        sum(&lines, "output_tokens"),
        stats.output_tokens,
        "server output tokens"
    );
}

#[tokio::test]
async fn converse_jsonl_end_to_end() {
    let work = tempfile::tempdir().unwrap();
    let records: Vec<Value> = (0..40)
        .map(|i| {
            json!({"id": format!("r{i}"), "title": format!("Note {i}"),
            "body": format!("Record {i} says hello. It has two sentences. And a third one.")})
        })
        .collect();
    let job = write_jsonl(work.path(), "job.jsonl", &records);
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    let run = run(
        work.path(),
        &[
            &job,
            "--model",
            CLAUDE,
            "--endpoint-url",
            &url,
            "--prompt-template",
            "Summarize {title}:\n\n{body}",
            "--system",
            "Be brief.",
            "--max-tokens",
            "100",
            "--keep-fields",
            "title",
            "--quiet",
        ],
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let lines = run.by_id();
    assert_eq!(lines.len(), 40);
    let line = &lines["r7"];
    assert_eq!(line["status"], "ok");
    assert_eq!(line["model"], CLAUDE);
    assert_eq!(
        line["output"],
        "Summarize Note 7: Record 7 says hello. It has two sentences."
    );
    assert_eq!(line["stop_reason"], "end_turn");
    assert_eq!(line["attempts"], 1);
    assert_eq!(line["fields"], json!({"title": "Note 7"}));
    // "Be brief." (3 tokens) + the rendered prompt.
    let prompt = "Summarize Note 7:\n\nRecord 7 says hello. It has two sentences. And a third one.";
    assert_eq!(
        line["usage"]["input_tokens"].as_u64().unwrap(),
        3 + (prompt.chars().count() as u64).div_ceil(4)
    );
    assert!(line.get("error").is_none());
    let stats = server.stats();
    assert_eq!(stats.requests, 40);
    assert_eq!(stats.duplicate_successes, 0);
    assert_totals(&run, &stats);
    let summary = run.summary();
    assert_eq!(summary["calls"], 40);
    // Claude 3 Haiku at the built-in $0.25 / $1.25 per million tokens.
    let expected = (summary["usage"]["input_tokens"].as_f64().unwrap() * 0.25
        + summary["usage"]["output_tokens"].as_f64().unwrap() * 1.25)
        / 1e6;
    assert!((summary["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-6);
    assert_eq!(summary["by_model"][CLAUDE]["requests"], 40);
}

#[tokio::test]
async fn csv_with_quotes_bom_and_crlf() {
    let work = tempfile::tempdir().unwrap();
    let csv = "\u{feff}ticket_id,subject,body\r\nT-1,Login,\"Cannot log in.\r\nTried twice.\"\r\nT-2,\"Billing, again\",\"Charged \"\"twice\"\".\"\r\nT-3,ragged\r\n";
    let job = write(work.path(), "tickets.csv", csv.as_bytes());
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    let run = run(
        work.path(),
        &[
            &job,
            "--model",
            CLAUDE,
            "--endpoint-url",
            &url,
            "--prompt-template",
            "{subject}: {body}",
            "--keep-fields",
            "ticket_id",
            "--quiet",
        ],
    )
    .await;
    assert_eq!(run.code(), 1, "one ragged row: {}", run.stderr());
    let lines = run.lines();
    assert_eq!(lines.len(), 3);
    let find = |n: u64| {
        lines
            .iter()
            .find(|l| l["id"] == json!(n) || l["fields"]["ticket_id"] == format!("T-{n}"))
            .unwrap()
    };
    assert_eq!(find(1)["output"], "Login: Cannot log in. Tried twice.");
    assert_eq!(find(2)["output"], "Billing, again: Charged \"twice\".");
    let ragged = lines.iter().find(|l| l["status"] == "error").unwrap();
    assert_eq!(ragged["error"]["kind"], "ragged_row");
    assert_eq!(ragged["line"], 5);
    assert_eq!(
        ragged["id"], 3,
        "records without an id column get their number"
    );
    assert_totals(&run, &server.stats());
}

#[tokio::test]
async fn bad_lines_become_error_lines_and_the_run_goes_on() {
    let work = tempfile::tempdir().unwrap();
    let mut content = b"{\"id\": \"ok1\", \"text\": \"Fine.\"}\n{not json}\n[1, 2]\n".to_vec();
    content.extend_from_slice(b"{\"id\": \"utf\", \"text\": \"\xff\xfe\"}\n");
    content.extend_from_slice(b"{\"id\": \"nofield\", \"body\": \"x\"}\n");
    content.extend_from_slice(b"{\"id\": \"ok1\", \"text\": \"Again.\"}\n");
    content.extend_from_slice(b"{\"id\": \"badmax\", \"text\": \"x\", \"max_tokens\": 0}\n");
    content.extend_from_slice(b"{\"id\": \"ok2\", \"text\": \"Also fine.\"}\n");
    let job = write(work.path(), "mixed.jsonl", &content);
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    let run = run(
        work.path(),
        &[&job, "--model", CLAUDE, "--endpoint-url", &url, "--quiet"],
    )
    .await;
    assert_eq!(run.code(), 1);
    let lines = run.lines();
    assert_eq!(lines.len(), 8, "one line per record");
    let kinds: std::collections::BTreeMap<u64, String> = lines
        .iter()
        .filter(|l| l["status"] == "error")
        .map(|l| {
            (
                l["line"].as_u64().unwrap(),
                l["error"]["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: std::collections::BTreeMap<u64, String> = [
        (2, "invalid_json"),
        (3, "invalid_record"),
        (4, "invalid_utf8"),
        (5, "missing_field"),
        (6, "duplicate_id"),
        (7, "invalid_field"),
    ]
    .into_iter()
    .map(|(l, k)| (l, k.to_string()))
    .collect();
    assert_eq!(kinds, expected);
    for line in lines.iter().filter(|l| l["status"] == "error") {
        assert!(
            line["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("line {}", line["line"])),
            "{line}"
        );
        assert_eq!(line["attempts"], 0);
    }
    assert_eq!(
        server.stats().requests,
        2,
        "only the good records were sent"
    );
    assert_totals(&run, &server.stats());
}

#[tokio::test]
async fn titan_embeddings_one_call_a_record() {
    let work = tempfile::tempdir().unwrap();
    let records: Vec<Value> = (0..10)
        .map(|i| json!({"id": i, "text": format!("refund policy number {i}")}))
        .collect();
    let job = write_jsonl(work.path(), "embed.jsonl", &records);
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    let run = run(
        work.path(),
        &[
            &job,
            "--model",
            TITAN_V2,
            "--endpoint-url",
            &url,
            "--dimensions",
            "256",
            "--quiet",
        ],
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let lines = run.by_id();
    assert_eq!(lines.len(), 10);
    let vector = lines["3"]["embedding"].as_array().unwrap();
    assert_eq!(vector.len(), 256);
    assert!(lines["3"].get("output").is_none());
    assert_eq!(run.summary()["mode"], "embed");
    assert_eq!(server.stats().by_route["invoke"], 10);
    assert_totals(&run, &server.stats());
}

#[tokio::test]
async fn cohere_embeddings_are_batched() {
    let work = tempfile::tempdir().unwrap();
    let records: Vec<Value> = (0..25)
        .map(
            |i| json!({"id": format!("k{i}"), "text": format!("snippet {i} about shipping times")}),
        )
        .collect();
    let job = write_jsonl(work.path(), "embed.jsonl", &records);
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    let run = run(
        work.path(),
        &[
            &job,
            "--model",
            COHERE,
            "--endpoint-url",
            &url,
            "--batch-size",
            "10",
            "--quiet",
        ],
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let lines = run.by_id();
    assert_eq!(lines.len(), 25);
    assert_eq!(lines["k24"]["embedding"].as_array().unwrap().len(), 1024);
    let stats = server.stats();
    assert_eq!(stats.requests, 3, "25 records in batches of 10");
    assert_eq!(run.summary()["calls"], 3);
    assert_totals(&run, &stats);
}

#[tokio::test]
async fn invoke_mode_sends_native_bodies() {
    let work = tempfile::tempdir().unwrap();
    let records = vec![
        json!({"recordId": "CALL0001", "modelInput": {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
            "messages": [{"role": "user", "content": "Native call one. Second sentence. Third."}]}}),
        json!({"recordId": "CALL0002", "body": {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
            "messages": [{"role": "user", "content": "Native call two."}]}}),
        json!({"recordId": "CALL0003", "body": {"max_tokens": 50}}),
    ];
    let job = write_jsonl(work.path(), "batch.jsonl", &records);
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    let run = run(
        work.path(),
        &[
            &job,
            "--model",
            CLAUDE,
            "--mode",
            "invoke",
            "--endpoint-url",
            &url,
            "--quiet",
        ],
    )
    .await;
    assert_eq!(run.code(), 1, "one body is invalid: {}", run.stderr());
    let lines = run.by_id();
    let one = &lines["CALL0001"];
    assert_eq!(
        one["response"]["content"][0]["text"],
        "Native call one. Second sentence."
    );
    assert_eq!(
        one["usage"]["input_tokens"],
        one["response"]["usage"]["input_tokens"]
    );
    assert_eq!(
        one["usage"]["output_tokens"],
        one["response"]["usage"]["output_tokens"]
    );
    let bad = &lines["CALL0003"];
    assert_eq!(bad["error"]["kind"], "validation");
    assert_eq!(bad["attempts"], 1, "validation errors are not retried");
    assert_totals(&run, &server.stats());
}

#[tokio::test]
async fn raw_messages_and_per_record_overrides() {
    let work = tempfile::tempdir().unwrap();
    let records = vec![
        json!({"id": "m", "messages": [
            {"role": "user", "content": "First turn."},
            {"role": "assistant", "content": "Reply."},
            {"role": "user", "content": [{"text": "Final question here. More text."}]}]}),
        json!({"id": "o", "text": "Override the model and the budget of tokens.", "model": "amazon.nova-lite-v1:0", "max_tokens": 2}),
    ];
    let job = write_jsonl(work.path(), "m.jsonl", &records);
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    let run = run(
        work.path(),
        &[&job, "--model", CLAUDE, "--endpoint-url", &url, "--quiet"],
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let lines = run.by_id();
    assert_eq!(lines["m"]["output"], "Final question here. More text.");
    assert_eq!(lines["o"]["model"], "amazon.nova-lite-v1:0");
    assert_eq!(lines["o"]["stop_reason"], "max_tokens");
    assert_eq!(lines["o"]["usage"]["output_tokens"], 2);
    let stats = server.stats();
    assert_eq!(stats.by_model["amazon.nova-lite-v1:0"].ok, 1);
    assert_totals(&run, &stats);
}

#[tokio::test]
async fn retryable_faults_are_retried_until_every_record_is_ok() {
    let work = tempfile::tempdir().unwrap();
    let records: Vec<Value> = (0..60)
        .map(|i| json!({"id": i, "text": format!("Record {i} of a flaky day.")}))
        .collect();
    let job = write_jsonl(work.path(), "flaky.jsonl", &records);
    let server = server(ServerConfig {
        faults: FaultRates {
            fail: 0.15,
            reset: 0.05,
            garbage: 0.05,
            timeout: 0.05,
            ..FaultRates::default()
        },
        timeout_delay: std::time::Duration::from_millis(20),
        seed: 7,
        ..ServerConfig::default()
    })
    .await;
    let url = server.url();
    let run = run(
        work.path(),
        &[
            &job,
            "--model",
            CLAUDE,
            "--endpoint-url",
            &url,
            "--max-attempts",
            "10",
            "--quiet",
        ],
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let lines = run.by_id();
    assert_eq!(lines.len(), 60, "none lost, none duplicated");
    assert!(lines.values().all(|l| l["status"] == "ok"));
    let summary = run.summary();
    let retries = summary["retries"].as_u64().unwrap();
    assert!(retries > 0, "a 30% fault rate causes retries");
    let attempts: u64 = lines
        .values()
        .map(|l| l["attempts"].as_u64().unwrap())
        .sum();
    assert_eq!(summary["attempts"].as_u64().unwrap(), attempts);
    assert_eq!(attempts, 60 + retries);
    let stats = server.stats();
    assert_eq!(stats.requests, attempts, "the server saw every attempt");
    assert_totals(&run, &stats);
}

#[tokio::test]
async fn dry_run_calls_nothing() {
    let work = tempfile::tempdir().unwrap();
    let job = write(
        work.path(),
        "d.jsonl",
        b"{\"text\": \"12345678\"}\n{\"text\": \"abcd\", \"max_tokens\": 10}\n{\"body\": 1}\n",
    );
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    let run = run(
        work.path(),
        &[
            &job,
            "--model",
            CLAUDE,
            "--endpoint-url",
            &url,
            "--dry-run",
            "--json",
            "--max-tokens",
            "50",
        ],
    )
    .await;
    assert_eq!(run.code(), 1, "one record is invalid");
    let estimate: Value = serde_json::from_slice(&run.output.stdout).unwrap();
    assert_eq!(estimate["valid"], 2);
    assert_eq!(estimate["invalid"], 1);
    assert_eq!(estimate["estimated_input_tokens"], 3);
    assert_eq!(estimate["max_output_tokens"], 60);
    assert_eq!(estimate["errors"][0]["kind"], "missing_field");
    assert!(
        run.stderr().contains("estimated input tokens: 3"),
        "{}",
        run.stderr()
    );
    assert_eq!(server.stats().requests, 0);
    assert!(!run.dir.exists(), "a dry run writes nothing");
}

#[tokio::test]
async fn limit_runs_the_first_records() {
    let work = tempfile::tempdir().unwrap();
    let records: Vec<Value> = (0..20)
        .map(|i| json!({"id": i, "text": format!("Record {i}.")}))
        .collect();
    let job = write_jsonl(work.path(), "l.jsonl", &records);
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    let run = run(
        work.path(),
        &[
            &job,
            "--model",
            CLAUDE,
            "--endpoint-url",
            &url,
            "--limit",
            "5",
            "--quiet",
        ],
    )
    .await;
    assert_eq!(run.code(), 0);
    let ids: std::collections::BTreeSet<String> = run.by_id().into_keys().collect();
    assert_eq!(
        ids,
        ["0", "1", "2", "3", "4"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}

#[tokio::test]
async fn local_flag_runs_the_built_in_server() {
    let work = tempfile::tempdir().unwrap();
    let job = write(
        work.path(),
        "j.jsonl",
        b"{\"id\": \"x\", \"text\": \"Local run works. Really.\"}\n",
    );
    let run = run(work.path(), &[&job, "--model", CLAUDE, "--local", "--json"]).await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(run.lines()[0]["output"], "Local run works. Really.");
    let printed: Value = serde_json::from_slice(&run.output.stdout).unwrap();
    assert_eq!(printed, run.summary());
    assert!(
        run.stderr().contains("1 record: 1 ok, 0 failed"),
        "{}",
        run.stderr()
    );
}

#[tokio::test]
async fn usage_errors_exit_2_with_a_message() {
    let work = tempfile::tempdir().unwrap();
    let missing = run(work.path(), &["nope.jsonl", "--model", CLAUDE, "--local"]).await;
    assert_eq!(missing.code(), 2);
    assert!(
        missing.stderr().contains("cannot open job file nope.jsonl"),
        "{}",
        missing.stderr()
    );

    let job = write(work.path(), "j.txt", b"{}\n");
    let format = run(work.path(), &[&job, "--model", CLAUDE, "--local"]).await;
    assert_eq!(format.code(), 2);
    assert!(format.stderr().contains("--format"), "{}", format.stderr());

    let job = write(work.path(), "j.jsonl", b"{\"text\": \"x\"}\n");
    let template = run(
        work.path(),
        &[
            &job,
            "--model",
            CLAUDE,
            "--local",
            "--prompt-template",
            "{oops",
        ],
    )
    .await;
    assert_eq!(template.code(), 2);
    assert!(
        template.stderr().contains("--prompt-template"),
        "{}",
        template.stderr()
    );

    let embed = run(
        work.path(),
        &[&job, "--model", TITAN_V2, "--local", "--mode", "converse"],
    )
    .await;
    assert_eq!(embed.code(), 2);
    assert!(
        embed.stderr().contains("embedding model"),
        "{}",
        embed.stderr()
    );

    let flag = run(
        work.path(),
        &[&job, "--model", CLAUDE, "--local", "--concurrency", "lots"],
    )
    .await;
    assert_eq!(flag.code(), 2);

    // A RUN_DIR holding another run's results is not overwritten.
    let first = run(
        work.path(),
        &[&job, "--model", CLAUDE, "--local", "--quiet"],
    )
    .await;
    assert_eq!(first.code(), 0);
    let mut again = tokio::process::Command::new(common::BIN);
    again
        .args([
            "run", &job, "--model", CLAUDE, "--local", "--system", "Other.", "--out",
        ])
        .arg(&first.dir)
        .current_dir(work.path());
    let again = again.output().await.unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("was started with other parameters"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[tokio::test]
async fn names_that_are_no_model_id_are_refused_before_any_call() {
    let work = tempfile::tempdir().unwrap();
    let job = write(work.path(), "j.jsonl", b"{\"text\": \"x\"}\n");
    for model in ["claude-haiku", "us.claude-haiku"] {
        let run = run(work.path(), &[&job, "--model", model, "--local"]).await;
        let stderr = run.stderr();
        assert_eq!(run.code(), 2, "a usage error: {stderr}");
        assert!(
            stderr.contains(&format!("--model {model} is not a Bedrock model id")),
            "{stderr}"
        );
        assert!(
            stderr.contains(
                "Closest known models: anthropic.claude-3-haiku, anthropic.claude-3-5-haiku, anthropic.claude-haiku-4-5"
            ),
            "{stderr}"
        );
        assert!(
            !stderr.contains("no price known"),
            "no warning first: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(!run.dir.exists(), "nothing started");
    }
}

#[tokio::test]
async fn warnings_are_plain_text_off_a_terminal() {
    let work = tempfile::tempdir().unwrap();
    let job = write(work.path(), "j.jsonl", b"{\"text\": \"x\"}\n");
    // No price for this model: a warning on stderr, which here is a pipe, not a terminal.
    let model = "ai21.jamba-1-5-mini-v1:0";
    let run = run(work.path(), &[&job, "--model", model, "--local", "--quiet"]).await;
    let stderr = run.stderr();
    assert_eq!(run.code(), 0, "{stderr}");
    assert!(stderr.contains("no price known for"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "no colour codes: {stderr:?}");
}
