//! A run resumed moments after it stopped meets the quota its first invocation just spent:
//! the first throttle comes at once and says only that the bucket is empty. The pacer must
//! search upward from that floor, not keep to it (it once learned a tenth of a 4,000
//! tokens-a-minute quota that way, and finished 14 records in 12 minutes). The binary
//! against the local server; the timeline says what the pacer learned.

mod common;

use std::path::Path;

use bedrock_batch::local_server::ServerConfig;
use common::*;
use serde_json::Value;

/// The `quota` events of invocation `n` (1, 2...) so far: (change, tokens a minute).
fn quota_of_invocation(timeline: &Path, n: usize) -> Vec<(String, f64)> {
    let text = std::fs::read_to_string(timeline).unwrap_or_default();
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let starts: Vec<usize> = (0..events.len())
        .filter(|&i| events[i]["event"] == "run_started")
        .collect();
    let Some(&start) = starts.get(n - 1) else {
        return Vec::new();
    };
    let end = starts.get(n).copied().unwrap_or(events.len());
    events[start..end]
        .iter()
        .filter(|e| e["event"] == "quota")
        .map(|e| {
            let change = e["change"].as_str().unwrap_or_default().to_string();
            (change, e["tokens_per_minute"].as_f64().unwrap_or(0.0))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_resume_finds_the_quota_its_first_invocation_spent() {
    let work = tempfile::tempdir().unwrap();
    let job = format!("{}/jobs/summarize.jsonl", env!("CARGO_MANIFEST_DIR"));
    let server = server(ServerConfig {
        tpm: Some(4_000),
        ..ServerConfig::default()
    })
    .await;
    let dir = work.path().join("resumed");
    let dir_text = dir.display().to_string();
    let url = server.url();
    let args = [
        "run",
        &job,
        "--model",
        CLAUDE,
        "--endpoint-url",
        &url,
        "--max-tokens",
        "100",
        "--out",
        &dir_text,
        "--grace",
        "1",
    ];
    let timeline = dir.join("events.jsonl");
    // The first invocation spends the bucket and learns the quota; then it is stopped.
    let mut first = Running::start(command(work.path(), &args));
    first
        .wait_until("the first invocation's learned quota", |_| {
            !quota_of_invocation(&timeline, 1).is_empty()
        })
        .await;
    first.signal("INT");
    assert_eq!(first.finish().await.status.code(), Some(130));
    // At once, the second: its first throttle comes on an empty bucket.
    let mut second = Running::start(command(work.path(), &args));
    second
        .wait_until("the resumed run learning at least half the quota", |_| {
            quota_of_invocation(&timeline, 2)
                .iter()
                .any(|(_, tpm)| *tpm >= 2_000.0)
        })
        .await;
    second.signal("INT");
    let output = second.finish().await;
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    let changes = quota_of_invocation(&timeline, 2);
    assert!(
        changes[0].1 < 2_000.0,
        "the first throttle of the resumed run gave only a floor: {changes:?}"
    );
}
