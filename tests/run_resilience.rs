//! Throttling, retries, adaptive concurrency and fatal errors, end to end: the binary
//! against a local server that throttles, fails, times out, resets and denies.

mod common;

use std::path::Path;
use std::time::Duration;

use bedrock_batch::local_server::{FaultRates, ServerConfig};
use common::*;
use serde_json::{Value, json};

fn job(dir: &Path, n: usize, text: impl Fn(usize) -> String) -> String {
    let body: String = (0..n)
        .map(|i| format!("{}\n", json!({"id": i, "text": text(i)})))
        .collect();
    std::fs::write(dir.join("job.jsonl"), body).unwrap();
    "job.jsonl".into()
}

async fn run(work: &Path, args: &[&str], credentials: bool) -> Run {
    let mut args = args.to_vec();
    args.push("--quiet");
    run_fresh_with(work, &args, |command| {
        if !credentials {
            command
                .env_remove("AWS_ACCESS_KEY_ID")
                .env_remove("AWS_SECRET_ACCESS_KEY")
                .env("AWS_CONFIG_FILE", work.join("no-config"))
                .env("AWS_SHARED_CREDENTIALS_FILE", work.join("no-credentials"));
        }
    })
    .await
}

/// Every record has exactly one line.
fn assert_exactly_once(run: &Run, n: usize) {
    let lines = run.lines();
    let mut ids: Vec<u64> = lines.iter().map(|l| l["id"].as_u64().unwrap()).collect();
    ids.sort();
    assert_eq!(
        ids,
        (0..n as u64).collect::<Vec<_>>(),
        "one line per record"
    );
}

#[tokio::test]
async fn denied_model_aborts_early_with_exit_3() {
    let work = tempfile::tempdir().unwrap();
    let job = job(work.path(), 3000, |i| format!("Record {i}."));
    let server = server(ServerConfig {
        deny_models: vec!["anthropic.*".into()],
        ..ServerConfig::default()
    })
    .await;
    let url = server.url();
    let run = run(
        work.path(),
        &[&job, "--model", CLAUDE, "--endpoint-url", &url],
        true,
    )
    .await;
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let stderr = run.stderr();
    assert!(stderr.contains("access_denied"), "{stderr}");
    assert!(
        stderr.contains(
            "Enable access to anthropic.claude-3-haiku-20240307-v1:0 in the Bedrock console"
        ),
        "{stderr}"
    );
    let calls = server.stats().requests;
    assert!(calls <= 64, "stopped after {calls} calls, not 3000");
    assert!(
        run.lines().is_empty(),
        "denied records get no line: a rerun sends them"
    );
    let summary = run.summary();
    assert_eq!(summary["aborted"]["kind"], "access_denied");
    assert_eq!(summary["records"]["pending"], 3000);
}

#[tokio::test]
async fn unknown_model_aborts_with_a_hint() {
    let work = tempfile::tempdir().unwrap();
    let job = job(work.path(), 500, |i| format!("Record {i}."));
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    let run = run(
        work.path(),
        &[
            &job,
            "--model",
            "acme.unknown-model-v1",
            "--endpoint-url",
            &url,
        ],
        true,
    )
    .await;
    assert_eq!(run.code(), 3, "{}", run.stderr());
    assert!(
        run.stderr()
            .contains("Check the model id acme.unknown-model-v1"),
        "{}",
        run.stderr()
    );
    assert!(server.stats().requests <= 64);
}

/// The local server knows the model ids Bedrock serves and where (`src/known_models`): a
/// well-formed id of a known provider that names no model, and a real id the signed region
/// does not serve, stop the run as on AWS (exit 3, the hint), before many calls.
#[tokio::test]
async fn ids_bedrock_does_not_serve_in_the_region_stop_the_run_with_a_hint() {
    let work = tempfile::tempdir().unwrap();
    let job = job(work.path(), 300, |i| format!("Record {i}."));
    let eu_haiku = "eu.anthropic.claude-3-haiku-20240307-v1:0";
    for (model, region, said) in [
        (
            "anthropic.claude-opus-4-9-v1:0",
            "us-east-1",
            "The provided model identifier is invalid.",
        ),
        (
            eu_haiku,
            "us-east-1",
            "The provided model identifier is invalid.",
        ),
        // Served only through inference profiles: the base id is refused on demand.
        (
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            "us-east-1",
            "with on-demand throughput isn't supported",
        ),
    ] {
        let run = run(
            work.path(),
            &[&job, "--model", model, "--local", "--region", region],
            true,
        )
        .await;
        assert_eq!(run.code(), 3, "{model}: {}", run.stderr());
        let summary = run.summary();
        assert_eq!(summary["aborted"]["kind"], "resource_not_found", "{model}");
        assert!(
            summary["aborted"]["message"]
                .as_str()
                .unwrap()
                .contains(said),
            "{model}: {summary}"
        );
        let hint = summary["aborted"]["hint"].as_str().unwrap();
        assert!(
            hint.contains(&format!(
                "Check the model id {model} and the region {region}"
            )),
            "{hint}"
        );
        assert!(summary["records"]["ok"] == 0, "{model}");
    }
    // The same profile id from a region of its geography is served.
    let run = run(
        work.path(),
        &[
            &job,
            "--model",
            eu_haiku,
            "--local",
            "--region",
            "eu-west-1",
        ],
        true,
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(run.summary()["records"]["ok"], 300);
}

#[tokio::test]
async fn missing_credentials_abort_with_a_hint() {
    let work = tempfile::tempdir().unwrap();
    let job = job(work.path(), 200, |i| format!("Record {i}."));
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    let run = run(
        work.path(),
        &[&job, "--model", CLAUDE, "--endpoint-url", &url],
        false,
    )
    .await;
    assert_eq!(run.code(), 3, "{}", run.stderr());
    assert!(
        run.stderr().contains("No usable AWS credentials"),
        "{}",
        run.stderr()
    );
    assert_eq!(
        server.stats().requests,
        0,
        "nothing reaches the server unsigned"
    );
    // One line of cause and the hint; the SDK's account of each provider is for -v.
    let stderr = run.stderr();
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
    assert!(
        stderr.contains("stopped early: credentials for"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("Attempted") && !stderr.contains("ProviderAttempt"),
        "{stderr}"
    );
    let verbose = self::run(
        work.path(),
        &[&job, "--model", CLAUDE, "--endpoint-url", &url, "-v"],
        false,
    )
    .await;
    assert_eq!(verbose.code(), 3, "{}", verbose.stderr());
    assert!(
        verbose.stderr().contains("credentials in detail")
            && verbose.stderr().contains("Environment"),
        "{}",
        verbose.stderr()
    );
}

#[tokio::test]
async fn exhausted_retries_end_as_classified_errors() {
    let work = tempfile::tempdir().unwrap();
    let job = job(work.path(), 100, |i| format!("Record {i} on a bad day."));
    let server = server(ServerConfig {
        faults: FaultRates {
            fail: 0.5,
            timeout: 0.1,
            reset: 0.1,
            garbage: 0.1,
            ..FaultRates::default()
        },
        timeout_delay: Duration::from_millis(10),
        seed: 3,
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
            "2",
        ],
        true,
    )
    .await;
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert_exactly_once(&run, 100);
    let lines = run.lines();
    let failed: Vec<&Value> = lines.iter().filter(|l| l["status"] == "error").collect();
    assert!(
        !failed.is_empty(),
        "with 80% faults and 2 attempts some records fail"
    );
    for line in &failed {
        let kind = line["error"]["kind"].as_str().unwrap();
        assert!(
            [
                "internal_server",
                "service_unavailable",
                "model_timeout",
                "connection",
                "bad_response"
            ]
            .contains(&kind),
            "{line}"
        );
        assert_eq!(line["attempts"], 2);
    }
    let summary = run.summary();
    let attempts: u64 = lines.iter().map(|l| l["attempts"].as_u64().unwrap()).sum();
    assert_eq!(summary["attempts"].as_u64().unwrap(), attempts);
    assert_eq!(
        server.stats().requests,
        attempts,
        "every attempt reached the server once"
    );
    let by_reason: u64 = summary["retries_by_reason"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(by_reason, summary["retries"].as_u64().unwrap());
}

#[tokio::test]
async fn throttles_slow_everyone_down_and_every_record_finishes() {
    let work = tempfile::tempdir().unwrap();
    // Each call reserves ~2,000 of a 6,000-token bucket but uses ~20: about three fit at once.
    let job = job(work.path(), 40, |i| format!("Record {i} asks a question."));
    let server = server(ServerConfig {
        tpm: Some(6_000),
        latency: Duration::from_millis(100),
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
            "--max-tokens",
            "2000",
            "--concurrency",
            "16",
            "--max-attempts",
            "30",
        ],
        true,
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_exactly_once(&run, 40);
    let summary = run.summary();
    let stats = server.stats();
    assert!(stats.throttles > 0, "the quota was reached");
    assert_eq!(
        summary["throttles"].as_u64().unwrap(),
        stats.throttles,
        "every throttle is seen by the client"
    );
    assert_eq!(
        summary["retries_by_reason"]["throttling"].as_u64().unwrap(),
        stats.throttles
    );
    let limiter = &summary["limiter"];
    assert!(limiter["decreases"].as_u64().unwrap() >= 1, "{limiter}");
    assert!(limiter["final_limit"].as_u64().unwrap() < 16, "{limiter}");
    assert!(
        stats.max_in_flight <= 16,
        "never more in flight than the limit: {}",
        stats.max_in_flight
    );
    assert!(!limiter["history"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn known_quota_is_paced_without_throttles() {
    let work = tempfile::tempdir().unwrap();
    let job = job(work.path(), 40, |i| format!("Record {i} asks a question."));
    let server = server(ServerConfig {
        tpm: Some(6_000),
        latency: Duration::from_millis(100),
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
            "--max-tokens",
            "2000",
            "--tpm",
            "6000",
        ],
        true,
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_exactly_once(&run, 40);
    assert_eq!(
        server.stats().throttles,
        0,
        "pacing to the known quota avoids every throttle"
    );
}

#[tokio::test]
async fn retry_after_pauses_the_pool_and_throttles_spend_no_attempts() {
    let work = tempfile::tempdir().unwrap();
    let job = job(work.path(), 3, |i| format!("Record {i}."));
    // Each call reserves ~2,000 of a 5,000-token bucket: two fit, the third is throttled,
    // with a 1.2 s hint. The first two give back most of theirs after 300 ms, so only the
    // hint keeps the third waiting that long.
    let server = server(ServerConfig {
        tpm: Some(5_000),
        latency: Duration::from_millis(300),
        retry_after: Some(Duration::from_millis(1200)),
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
            "--max-tokens",
            "2000",
            "--concurrency",
            "3",
            "--max-attempts",
            "1",
        ],
        true,
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_exactly_once(&run, 3);
    let lines = run.lines();
    let throttled: Vec<&Value> = lines.iter().filter(|l| l["attempts"] != 1).collect();
    assert_eq!(throttled.len(), 1, "{lines:?}");
    assert_eq!(
        throttled[0]["status"], "ok",
        "a throttle never fails a record"
    );
    assert!(
        run.elapsed >= Duration::from_millis(1200),
        "waited {:?}",
        run.elapsed
    );
    assert_eq!(run.summary()["throttles"], server.stats().throttles);
}

#[tokio::test]
async fn model_errors_get_one_more_try() {
    let work = tempfile::tempdir().unwrap();
    let job = job(work.path(), 5, |i| format!("Record {i}."));
    let server = server(ServerConfig {
        faults: FaultRates {
            model_error: 1.0,
            ..FaultRates::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let url = server.url();
    let run = run(
        work.path(),
        &[&job, "--model", CLAUDE, "--endpoint-url", &url],
        true,
    )
    .await;
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert_exactly_once(&run, 5);
    for line in run.lines() {
        assert_eq!(line["error"]["kind"], "model_error");
        assert_eq!(
            line["attempts"], 2,
            "one retry, then it is the record's outcome"
        );
    }
    assert_eq!(server.stats().requests, 10);
}
