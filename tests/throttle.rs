//! Throttle storms, end to end: the binary from a cold start against a local server whose
//! quota is far below what the job wants. No record may fail from throttling, and
//! summary.json must count every attempt the server saw, also when the run is interrupted.
//! When the output ceiling, not the answers, fills the quota, the run says once which
//! `--max-tokens` would fit, and summary.json carries it.
//! How much of the quota it uses and how often it is throttled are benchmark numbers
//! (scripts/bench-quota), not asserted here.

mod common;

use std::time::Duration;

use bedrock_batch::local_server::ServerConfig;
use common::*;

fn tight_server() -> ServerConfig {
    // Each call reserves about 40 input + 100 output tokens and uses about 70: the bucket
    // holds ~110 calls, then admits ~3.5 calls a second; 300 records need about 25 s of
    // throttled running.
    ServerConfig {
        tpm: Some(15_000),
        latency: Duration::from_millis(100),
        tokens_per_sec: 400.0,
        ..ServerConfig::default()
    }
}

// The server gets threads of its own, so a busy test machine slows it less than the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: scripts/test --all"]
async fn a_tight_quota_fails_no_record_and_every_attempt_is_counted() {
    let work = tempfile::tempdir().unwrap();
    let job = ticket_job(work.path(), 300);
    let server = server(tight_server()).await;
    let url = server.url();
    let run = run_fresh(
        work.path(),
        &[
            &job,
            "--model",
            CLAUDE,
            "--endpoint-url",
            &url,
            "--max-tokens",
            "100",
            "--quiet",
        ],
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let lines = run.by_id();
    assert_eq!(lines.len(), 300, "every record has exactly one line");
    let failed: Vec<_> = lines.values().filter(|l| l["status"] != "ok").collect();
    assert!(
        failed.is_empty(),
        "no record fails from throttling: {failed:?}"
    );
    let summary = run.summary();
    let stats = server.stats();
    assert!(stats.throttles > 0, "the quota was reached: {stats:?}");
    assert_eq!(summary["attempts"], stats.requests);
    assert_eq!(summary["throttles"], stats.throttles);
    let attempts: u64 = lines
        .values()
        .map(|l| l["attempts"].as_u64().unwrap())
        .sum();
    assert_eq!(
        attempts, stats.requests,
        "the lines' attempts are the server's"
    );
    for (field, answered) in [
        ("input_tokens", stats.input_tokens),
        ("output_tokens", stats.output_tokens),
    ] {
        let sum: u64 = lines
            .values()
            .map(|l| l["usage"][field].as_u64().unwrap())
            .sum();
        assert_eq!(
            summary["usage"][field], sum,
            "summary {field} = sum of lines"
        );
        assert_eq!(
            sum, answered,
            "{field}: the lines count what the server answered"
        );
    }
    // How well it learned (throttled share, learned rate) is a benchmark's number
    // (scripts/bench-quota --scenarios T); that it reports one is behaviour.
    assert!(
        summary["learned_quota"][CLAUDE]["tokens_per_minute"].is_number(),
        "{}",
        summary["learned_quota"]
    );
}

#[tokio::test]
async fn an_interrupted_run_counts_every_attempt_the_server_saw() {
    let work = tempfile::tempdir().unwrap();
    let job = ticket_job(work.path(), 600);
    let server = server(ServerConfig {
        latency: Duration::from_millis(400),
        ..tight_server()
    })
    .await;
    let url = server.url();
    // Interrupted in the throttled part: records wait to retry and calls are in flight.
    let output = run_interrupted(
        work.path(),
        &[
            "run",
            &job,
            "--model",
            CLAUDE,
            "--endpoint-url",
            &url,
            "--out",
            "run",
            "--max-tokens",
            "100",
            // Long enough for the calls in flight (and their retries) to end: an attempt
            // abandoned mid-flight may or may not have reached the server, so only finished
            // calls can be matched against its counters one for one.
            "--grace",
            "10",
            "--quiet",
        ],
        "INT",
        "a throttle with calls in flight",
        |_| {
            let stats = server.stats();
            stats.throttles > 0 && stats.in_flight > 0
        },
    )
    .await;
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    let summary = read_summary(&work.path().join("run"));
    let stats = server.stats();
    assert_eq!(summary["attempts"], stats.requests);
    assert_eq!(summary["throttles"], stats.throttles);
}

/// A quota of 20,000 tokens a minute and answers of about 33 tokens: with no
/// `--max-tokens` each call reserves 4,096 for output, and five fill the bucket.
fn short_answers_server() -> ServerConfig {
    ServerConfig {
        tpm: Some(20_000),
        latency: Duration::from_millis(100),
        ..ServerConfig::default()
    }
}

const ADVICE: &str = "max_tokens is the bottleneck";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ceiling_far_above_the_answers_is_named_once_with_one_that_fits() {
    let work = tempfile::tempdir().unwrap();
    let job = ticket_job(work.path(), 100);
    let server = server(short_answers_server()).await;
    let url = server.url();
    let run = run_fresh(
        work.path(),
        &[&job, "--model", CLAUDE, "--endpoint-url", &url, "--quiet"],
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let summary = run.summary();
    let advice = &summary["max_tokens_advice"][CLAUDE];
    assert_eq!(advice["reserved_output"], 4096, "{advice}");
    let suggested = advice["suggested_max_tokens"].as_u64().unwrap();
    let longest = run
        .lines()
        .iter()
        .map(|l| l["usage"]["output_tokens"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(
        (longest..4096).contains(&suggested),
        "above every answer ({longest}), below the ceiling: {advice}"
    );
    assert!(advice["admits_times"].as_f64().unwrap() > 1.0, "{advice}");
    // Said once while the run went, --quiet or not, with the same suggestion.
    let stderr = run.stderr();
    let said: Vec<&str> = stderr.lines().filter(|l| l.contains(ADVICE)).collect();
    assert_eq!(said.len(), 1, "{stderr}");
    assert!(
        said[0].starts_with(&format!("warning: {ADVICE} for {CLAUDE}: "))
            && said[0].contains(&format!("--max-tokens {suggested} ")),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ceiling_that_fits_the_answers_gets_no_advice() {
    let work = tempfile::tempdir().unwrap();
    let job = ticket_job(work.path(), 200);
    // 200 calls of about 100 tokens each in flight at once fill the quota: the token
    // quota holds calls back, but the ceiling is not what fills it.
    let server = server(ServerConfig {
        latency: Duration::from_millis(500),
        ..short_answers_server()
    })
    .await;
    let url = server.url();
    let run = run_fresh(
        work.path(),
        &[
            &job,
            "--model",
            CLAUDE,
            "--endpoint-url",
            &url,
            "--max-tokens",
            "64",
            "--tpm",
            "20000",
            "--concurrency",
            "200",
        ],
    )
    .await;
    assert_no_advice(&run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_that_holds_nothing_back_gets_no_advice() {
    let work = tempfile::tempdir().unwrap();
    let job = ticket_job(work.path(), 40);
    let server = server(ServerConfig {
        tpm: None,
        ..short_answers_server()
    })
    .await;
    let url = server.url();
    let run = run_fresh(
        work.path(),
        &[&job, "--model", CLAUDE, "--endpoint-url", &url],
    )
    .await;
    assert_no_advice(&run);
}

/// The run ended well and said nothing of `max_tokens`, neither on stderr nor in summary.json.
fn assert_no_advice(run: &Run) {
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(!run.stderr().contains(ADVICE), "{}", run.stderr());
    let summary = run.summary();
    assert_eq!(summary.get("max_tokens_advice"), None, "{summary}");
}
