//! More than one machine: shards of one job run side by side against one local server, then
//! `merge` joins them. Every record exactly once, totals equal to the sum, and the sets of
//! shards that cannot be joined refused with the directory named.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use bedrock_batch::local_server::ServerConfig;
use common::*;
use serde_json::{Value, json};

fn job(dir: &Path, name: &str, n: usize) -> String {
    let records: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("r{i}"), "text": format!("Record {i} says hello. It is short.")}))
        .collect();
    write_jsonl(dir, name, &records)
}

fn shard_args<'a>(job: &'a str, url: &'a str, out: &'a str, shard: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        job,
        "--model",
        CLAUDE,
        "--endpoint-url",
        url,
        "--out",
        out,
        "--shard",
        shard,
        "--quiet",
    ]
}

#[tokio::test]
async fn four_shards_at_once_then_merge_give_every_record_once() {
    let work = tempfile::tempdir().unwrap();
    let job = job(work.path(), "job.jsonl", 203);
    let server = server(ServerConfig {
        latency: Duration::from_millis(20),
        ..ServerConfig::default()
    })
    .await;
    let url = server.url();
    let outs: Vec<String> = (0..4).map(|i| format!("shard-{i}")).collect();
    let specs: Vec<String> = (0..4).map(|i| format!("{i}/4")).collect();
    let children: Vec<_> = (0..4)
        .map(|i| {
            command(work.path(), &shard_args(&job, &url, &outs[i], &specs[i]))
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().await.unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    }
    // Each shard holds its own records, and only those.
    for (i, out) in outs.iter().enumerate() {
        let lines = read_lines(&work.path().join(out));
        assert_eq!(lines.len(), (203 - i).div_ceil(4), "shard {i}");
        for line in &lines {
            let record = line["record"].as_u64().unwrap();
            assert_eq!((record - 1) % 4, i as u64, "{line}");
        }
        let status = bb(work.path(), &["status", out, "--json"]).await;
        let status: Value = serde_json::from_slice(&status.stdout).unwrap();
        assert_eq!(status["shard"], json!({"index": i, "count": 4}));
        assert_eq!(status["pending"], 0, "{status}");
    }

    let mut args = vec!["merge"];
    args.extend(outs.iter().map(String::as_str));
    args.extend(["--out", "all", "--json", "--quiet"]);
    let merged = bb(work.path(), &args).await;
    assert_eq!(merged.status.code(), Some(0), "{}", stderr(&merged));
    let summary: Value = serde_json::from_slice(&merged.stdout).unwrap();
    let lines = read_lines(&work.path().join("all"));
    let ids: BTreeSet<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(lines.len(), 203);
    assert_eq!(ids.len(), 203, "every record exactly once");
    assert_eq!(summary, read_summary(&work.path().join("all")));
    assert_eq!(summary["records"]["total"], 203);
    assert_eq!(summary["records"]["ok"], 203);
    // The human summary of a merge names no one concurrency limiter (it had four).
    let mut again = args.clone();
    again.retain(|a| *a != "--json" && *a != "--quiet");
    let all = work.path().join("all").display().to_string();
    let again: Vec<&str> = again
        .into_iter()
        .map(|a| if a == "all" { all.as_str() } else { a })
        .collect();
    std::fs::remove_dir_all(work.path().join("all")).unwrap();
    let shown = bb(work.path(), &again).await;
    assert_eq!(shown.status.code(), Some(0), "{}", stderr(&shown));
    assert!(
        stderr(&shown).contains("203 records: 203 ok"),
        "{}",
        stderr(&shown)
    );
    assert!(
        !stderr(&shown).contains("concurrency:"),
        "{}",
        stderr(&shown)
    );
    let sum = |field: &dyn Fn(&Value) -> u64| -> u64 {
        outs.iter()
            .map(|out| field(&read_summary(&work.path().join(out))))
            .sum()
    };
    assert_eq!(
        summary["usage"]["input_tokens"].as_u64().unwrap(),
        sum(&|s| s["usage"]["input_tokens"].as_u64().unwrap())
    );
    assert_eq!(
        summary["usage"]["output_tokens"].as_u64().unwrap(),
        lines
            .iter()
            .map(|l| l["usage"]["output_tokens"].as_u64().unwrap())
            .sum::<u64>()
    );
    assert_eq!(
        summary["attempts"].as_u64().unwrap(),
        sum(&|s| s["attempts"].as_u64().unwrap())
    );
    assert_eq!(
        summary["attempts"].as_u64().unwrap(),
        server.stats().requests
    );
    let cost: f64 = outs
        .iter()
        .map(|out| {
            read_summary(&work.path().join(out))["cost_usd"]
                .as_f64()
                .unwrap()
        })
        .sum();
    assert!((summary["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-6);

    // The merged directory is a finished run of the whole job.
    let status = bb(work.path(), &["status", "all", "--json"]).await;
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["done"], 203);
    assert_eq!(status["pending"], 0);
    assert_eq!(status["shard"], Value::Null);
}

#[tokio::test]
async fn sets_of_shards_that_cannot_be_joined_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let job = job(work.path(), "job.jsonl", 20);
    let other = job_other(work.path());
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    for (job, out, spec) in [
        (&job, "s0", "0/3"),
        (&job, "s1", "1/3"),
        (&job, "s2", "2/3"),
        (&other, "x2", "2/3"),
    ] {
        let output = bb(work.path(), &shard_args(job, &url, out, spec)).await;
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    }
    refused(
        work.path(),
        &["s0", "s1", "--out", "m1"],
        "missing shard 2/3",
    )
    .await;
    refused(
        work.path(),
        &["s0", "s1", "s1", "s2", "--out", "m2"],
        "given twice",
    )
    .await;
    refused(
        work.path(),
        &["s0", "s1", "x2", "--out", "m3"],
        "x2 ran another job file",
    )
    .await;
    assert!(!work.path().join("m1").exists() && !work.path().join("m3").exists());

    // A shard directory resumes only as the same shard.
    let output = bb(work.path(), &shard_args(&job, &url, "s0", "1/3")).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("shard"), "{}", stderr(&output));
}

/// `merge ARGS` exits 2 with `needle` in its message.
async fn refused(work: &Path, args: &[&str], needle: &str) {
    let mut full = vec!["merge"];
    full.extend_from_slice(args);
    let output = bb(work, &full).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains(needle), "{}", stderr(&output));
}

fn job_other(dir: &Path) -> String {
    job(dir, "other.jsonl", 21)
}
