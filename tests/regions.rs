//! More than one region: one run spread over three local servers with different quotas.
//! Each server stands for a region's quota; every record gets one line from one of them, and
//! the summary counts what each one saw. How much of the summed quota a run turns into
//! answers is measured by `scripts/bench-quota --scenarios R`, not asserted here.

mod common;

use std::time::Duration;

use bedrock_batch::local_server::{FaultRates, ServerConfig};
use common::*;
use serde_json::json;

// The servers get threads of their own, so a busy test machine slows them less than the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_endpoints_share_a_run_and_each_is_counted() {
    let work = tempfile::tempdir().unwrap();
    let sentence = "The parcel arrived late and the box was torn at one corner. ";
    let n = 300;
    let records: Vec<_> = (0..n)
        .map(|i| {
            json!({
                "id": format!("r{i}"),
                "text": format!("Ticket {i}. {}", sentence.repeat(1 + i % 8)),
            })
        })
        .collect();
    let job = write_jsonl(work.path(), "job.jsonl", &records);
    // One call in five fails and is retried, maybe elsewhere: attempts and calls differ.
    let mut servers = Vec::new();
    for (seed, tpm) in [(1, 30_000u64), (2, 60_000), (3, 90_000)] {
        servers.push(
            server(ServerConfig {
                tpm: Some(tpm),
                latency: Duration::from_millis(50),
                faults: FaultRates {
                    fail: 0.2,
                    ..FaultRates::default()
                },
                seed,
                ..ServerConfig::default()
            })
            .await,
        );
    }
    let urls: Vec<String> = servers.iter().map(|s| s.url()).collect();
    let mut args = vec![
        job.as_str(),
        "--model",
        CLAUDE,
        "--max-tokens",
        "200",
        "--max-attempts",
        "20",
        "--quiet",
    ];
    for url in &urls {
        args.push("--endpoint-url");
        args.push(url);
    }
    let run = run_fresh(work.path(), &args).await;
    assert_eq!(run.code(), 0, "{}", run.stderr());

    let lines = run.by_id();
    assert_eq!(lines.len(), n, "every record has exactly one line");
    let summary = run.summary();
    assert_eq!(summary["records"]["total"], n as u64);
    assert_eq!(summary["records"]["ok"], n as u64);
    let by_region = summary["by_region"].as_object().unwrap();
    assert_eq!(by_region.len(), 3, "{by_region:?}");
    let mut requests = 0;
    for (url, server) in urls.iter().zip(&servers) {
        let stats = server.stats();
        let region = &by_region[url.as_str()];
        assert_eq!(region["requests"], stats.requests, "{url}");
        assert_eq!(region["throttles"], stats.throttles, "{url}");
        let answered_here = lines
            .values()
            .filter(|l| l["region"] == url.as_str())
            .count();
        assert_eq!(
            answered_here as u64,
            stats.status(200),
            "{url}: its lines are the calls it answered"
        );
        assert!(answered_here > 0, "{url} answered no record");
        requests += stats.requests;
    }
    assert_eq!(
        summary["attempts"], requests,
        "attempts = the servers' requests"
    );
    let attempts: u64 = lines
        .values()
        .map(|l| l["attempts"].as_u64().unwrap())
        .sum();
    assert_eq!(
        attempts, requests,
        "the lines' attempts = the servers' requests"
    );
    assert!(attempts > n as u64, "some calls were retried: {attempts}");
    // How much of the three quotas the run uses is a benchmark's number
    // (scripts/bench-quota --scenarios R).
}

#[tokio::test]
async fn an_endpoint_that_denies_the_model_drops_out_and_the_run_goes_on() {
    let work = tempfile::tempdir().unwrap();
    let records: Vec<_> = (0..60)
        .map(|i| json!({"id": i, "text": format!("Record {i} is short.")}))
        .collect();
    let job = write_jsonl(work.path(), "job.jsonl", &records);
    let denied = server(ServerConfig {
        deny_models: vec!["*".into()],
        ..ServerConfig::default()
    })
    .await;
    let open = server(ServerConfig::default()).await;
    let (denied_url, open_url) = (denied.url(), open.url());
    let run = run_fresh(
        work.path(),
        &[
            &job,
            "--model",
            CLAUDE,
            "--endpoint-url",
            &denied_url,
            "--endpoint-url",
            &open_url,
        ],
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(
        run.stderr().contains(&denied_url) && run.stderr().contains("going on with the other"),
        "{}",
        run.stderr()
    );
    let lines = run.lines();
    assert_eq!(lines.len(), 60);
    assert!(
        lines
            .iter()
            .all(|l| l["status"] == "ok" && l["region"] == open_url.as_str())
    );
    assert!(
        denied.stats().requests <= 16,
        "{:?}",
        denied.stats().requests
    );
}
