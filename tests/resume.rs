//! Checkpoint and resume, end to end: SIGKILL at random moments, Ctrl-C, changed inputs,
//! --fresh, --retry-failed, concurrent runs and `status`, checked through results.jsonl,
//! summary.json and the local server's own counters.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use bedrock_batch::local_server::{FaultRates, ServerConfig};
use common::*;
use serde_json::{Value, json};

async fn run(work: &Path, args: &[&str]) -> Output {
    bb(work, args).await
}

fn write_job(work: &Path, n: usize) -> String {
    let records: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("r{i}"), "text": format!("Record {i} has a question. And some detail.")}))
        .collect();
    write_jsonl(work, "job.jsonl", &records)
}

/// Every line parses, every record has exactly one line, and summary.json equals their sum.
fn check_results(dir: &Path, n: usize) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("results.jsonl")).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "no torn last line");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}")))
        .collect();
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    for line in &lines {
        *ids.entry(line["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let duplicates: Vec<_> = ids.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "duplicated: {duplicates:?}");
    assert_eq!(ids.len(), n, "every record exactly once");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    for field in ["input_tokens", "output_tokens"] {
        let sum: u64 = lines
            .iter()
            .map(|l| l["usage"][field].as_u64().unwrap())
            .sum();
        assert_eq!(
            summary["usage"][field].as_u64().unwrap(),
            sum,
            "summary {field} = sum of lines"
        );
    }
    assert_eq!(
        summary["records"]["total"].as_u64().unwrap(),
        lines.len() as u64
    );
    let ok = lines.iter().filter(|l| l["status"] == "ok").count() as u64;
    assert_eq!(summary["records"]["ok"].as_u64().unwrap(), ok);
    lines
}

#[tokio::test]
async fn sigkill_at_random_moments_then_resume_gives_exactly_once() {
    let work = tempfile::tempdir().unwrap();
    let n = 3000;
    let job = write_job(work.path(), n);
    let server = server(ServerConfig {
        latency: Duration::from_millis(20),
        tpm: Some(2_000_000),
        faults: FaultRates {
            fail: 0.05,
            reset: 0.02,
            timeout: 0.02,
            ..FaultRates::default()
        },
        timeout_delay: Duration::from_millis(30),
        seed: 11,
        ..ServerConfig::default()
    })
    .await;
    let url = server.url();
    let args = [
        "run",
        &job,
        "--model",
        CLAUDE,
        "--endpoint-url",
        &url,
        "--out",
        "run",
        "--quiet",
        "--max-concurrency",
        "16",
        "--checkpoint-secs",
        "0.2",
        "--max-attempts",
        "20",
    ];
    let mut kills = 0;
    for round in 0..5 {
        let mut child = command(work.path(), &args).spawn().unwrap();
        tokio::time::sleep(Duration::from_millis(300 + fastrand::u64(0..700))).await;
        match child.try_wait().unwrap() {
            Some(status) => panic!("round {round}: the run ended before the kill: {status}"),
            None => {
                child.start_kill().unwrap();
                child.wait().await.unwrap();
                kills += 1;
            }
        }
    }
    let done = run(work.path(), &args).await;
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    let lines = check_results(&work.path().join("run"), n);
    assert!(lines.iter().all(|l| l["status"] == "ok"));

    let stats = server.stats();
    // Each kill may re-send what was in flight (at most 16) plus one checkpoint interval of
    // work: 0.2 s at most 16 / 20 ms = 800 records/s, so 160.
    let bound = kills * (16 + 160);
    eprintln!(
        "{kills} kills: {} duplicate answers (bound {bound})",
        stats.duplicate_successes
    );
    assert!(
        stats.duplicate_successes <= bound,
        "{} duplicate answers after {kills} kills, bound {bound}",
        stats.duplicate_successes
    );
    assert!(stats.status(200) >= n as u64);
    assert_eq!(
        stats.status(200) - stats.duplicate_successes,
        n as u64,
        "every record answered"
    );
}

#[tokio::test]
async fn sigint_saves_state_and_prints_the_resume_command() {
    let work = tempfile::tempdir().unwrap();
    let job = write_job(work.path(), 400);
    let server = server(ServerConfig {
        latency: Duration::from_millis(100),
        ..ServerConfig::default()
    })
    .await;
    let url = server.url();
    let args = [
        "run",
        &job,
        "--model",
        CLAUDE,
        "--endpoint-url",
        &url,
        "--out",
        "run",
        "--max-concurrency",
        "8",
    ];
    // Once the server has answered a call, a record is done (calls in flight finish within
    // the grace period) and most are still to do.
    let output = run_interrupted(
        work.path(),
        &args,
        "INT",
        "the server's first answer",
        |_| server.stats().status(200) > 0,
    )
    .await;
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains("resume with:") && err.contains("--out run"),
        "{err}"
    );
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(work.path().join("run/summary.json")).unwrap(),
    )
    .unwrap();
    let done_then = summary["records"]["total"].as_u64().unwrap();
    assert!(done_then > 0 && done_then < 400, "{done_then}");
    assert_eq!(
        summary["records"]["pending"].as_u64().unwrap(),
        400 - done_then
    );

    let status = run(work.path(), &["status", "run", "--json"]).await;
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["done"].as_u64().unwrap(), done_then);
    assert_eq!(status["pending"].as_u64().unwrap(), 400 - done_then);
    assert_eq!(status["active"], Value::Null);

    let before = server.stats().status(200);
    let resumed = run(work.path(), &args).await;
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains(&format!("{done_then} records already done")),
        "{}",
        stderr(&resumed)
    );
    check_results(&work.path().join("run"), 400);
    let resent = server.stats().status(200) - before;
    assert!(
        resent <= 400 - done_then + 8,
        "resent {resent}, only {} were pending",
        400 - done_then
    );
}

#[tokio::test]
async fn changed_job_file_or_parameters_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let job = write_job(work.path(), 5);
    let args = [
        "run",
        job.as_str(),
        "--model",
        CLAUDE,
        "--local",
        "--out",
        "run",
        "--quiet",
    ];
    assert_eq!(run(work.path(), &args).await.status.code(), Some(0));

    let model = run(
        work.path(),
        &["run", &job, "--model", LLAMA, "--local", "--out", "run"],
    )
    .await;
    assert_eq!(model.status.code(), Some(2));
    let err = stderr(&model);
    assert!(err.contains("model: now \"meta.llama3-1-8b-instruct-v1:0\", was \"anthropic.claude-3-haiku-20240307-v1:0\""), "{err}");
    assert!(err.contains("--fresh"), "{err}");

    let template = run(
        work.path(),
        &[
            "run",
            &job,
            "--model",
            CLAUDE,
            "--local",
            "--out",
            "run",
            "--prompt-template",
            "Q: {text}",
        ],
    )
    .await;
    assert_eq!(template.status.code(), Some(2));
    assert!(
        stderr(&template).contains("template: now"),
        "{}",
        stderr(&template)
    );

    write_job(work.path(), 6);
    let changed = run(work.path(), &args).await;
    assert_eq!(changed.status.code(), Some(2));
    assert!(
        stderr(&changed).contains("different job file"),
        "{}",
        stderr(&changed)
    );

    // --fresh starts over and keeps the earlier run aside.
    let fresh = run(
        work.path(),
        &[
            "run", &job, "--model", CLAUDE, "--local", "--out", "run", "--fresh",
        ],
    )
    .await;
    assert_eq!(fresh.status.code(), Some(0), "{}", stderr(&fresh));
    assert!(stderr(&fresh).contains("moved to"), "{}", stderr(&fresh));
    check_results(&work.path().join("run"), 6);
    let aside: Vec<PathBuf> = std::fs::read_dir(work.path().join("run"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("previous-")
        })
        .collect();
    assert_eq!(aside.len(), 1);
    let old = std::fs::read_to_string(aside[0].join("results.jsonl")).unwrap();
    assert_eq!(old.lines().count(), 5, "the earlier results are kept");
}

#[tokio::test]
async fn rerunning_a_finished_run_sends_nothing() {
    let work = tempfile::tempdir().unwrap();
    let job = write_job(work.path(), 20);
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    let args = [
        "run",
        job.as_str(),
        "--model",
        CLAUDE,
        "--endpoint-url",
        &url,
        "--out",
        "run",
        "--quiet",
    ];
    assert_eq!(run(work.path(), &args).await.status.code(), Some(0));
    assert_eq!(run(work.path(), &args).await.status.code(), Some(0));
    assert_eq!(server.stats().requests, 20);
    check_results(&work.path().join("run"), 20);
}

#[tokio::test]
async fn retry_failed_replaces_the_failed_lines() {
    let work = tempfile::tempdir().unwrap();
    let job = write_job(work.path(), 60);
    let flaky = server(ServerConfig {
        faults: FaultRates {
            fail: 0.4,
            ..FaultRates::default()
        },
        seed: 5,
        ..ServerConfig::default()
    })
    .await;
    let url = flaky.url();
    let first = run(
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
            "--quiet",
            "--max-attempts",
            "1",
        ],
    )
    .await;
    assert_eq!(first.status.code(), Some(1));
    let failed = check_results(&work.path().join("run"), 60)
        .iter()
        .filter(|l| l["status"] == "error")
        .count();
    assert!(failed > 5, "{failed}");

    // A plain rerun has nothing to do: failed records have their line.
    let healthy = server(ServerConfig::default()).await;
    let url = healthy.url();
    let args = [
        "run",
        job.as_str(),
        "--model",
        CLAUDE,
        "--endpoint-url",
        &url,
        "--out",
        "run",
        "--quiet",
    ];
    let rerun = run(work.path(), &args).await;
    assert_eq!(rerun.status.code(), Some(1));
    assert_eq!(healthy.stats().requests, 0);

    let mut retry_args = args.to_vec();
    retry_args.push("--retry-failed");
    let retried = run(work.path(), &retry_args).await;
    assert_eq!(retried.status.code(), Some(0), "{}", stderr(&retried));
    assert_eq!(
        healthy.stats().requests,
        failed as u64,
        "only the failed records were sent"
    );
    let lines = check_results(&work.path().join("run"), 60);
    assert!(lines.iter().all(|l| l["status"] == "ok"));
}

#[tokio::test]
async fn retry_failed_all_includes_validation_errors() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("job.jsonl"),
        "{\"id\": \"good\", \"text\": \"Fine.\"}\n{\"id\": \"bad\", \"text\": \"Too hot.\", \"temperature\": 0.5, \"messages\": [{\"role\": \"assistant\", \"content\": \"x\"}]}\n",
    )
    .unwrap();
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    let args = [
        "run",
        "job.jsonl",
        "--model",
        CLAUDE,
        "--endpoint-url",
        &url,
        "--out",
        "run",
        "--quiet",
    ];
    assert_eq!(run(work.path(), &args).await.status.code(), Some(1));
    let mut retry = args.to_vec();
    retry.push("--retry-failed");
    assert_eq!(run(work.path(), &retry).await.status.code(), Some(1));
    assert_eq!(
        server.stats().requests,
        2,
        "a validation error is not retryable"
    );
    let mut all = args.to_vec();
    all.push("--retry-failed=all");
    assert_eq!(run(work.path(), &all).await.status.code(), Some(1));
    assert_eq!(server.stats().requests, 3, "=all sends it again");
    let lines = check_results(&work.path().join("run"), 2);
    let bad = lines.iter().find(|l| l["id"] == "bad").unwrap();
    assert_eq!(bad["error"]["kind"], "validation");
}

#[tokio::test]
async fn a_second_run_on_the_same_directory_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let job = write_job(work.path(), 200);
    let server = server(ServerConfig {
        latency: Duration::from_millis(200),
        ..ServerConfig::default()
    })
    .await;
    let url = server.url();
    let args = [
        "run",
        job.as_str(),
        "--model",
        CLAUDE,
        "--endpoint-url",
        &url,
        "--out",
        "run",
        "--max-concurrency",
        "4",
        "--quiet",
    ];
    let mut first = Running::start(command(work.path(), &args));
    // The lock file names its holder once the lock is taken; the manifest (which `status`
    // reads) is written after it.
    let holder = format!("pid {}", first.pid());
    let state = work.path().join("run/state");
    first
        .wait_until(
            "the first run to hold the lock and write its manifest",
            |_| {
                std::fs::read_to_string(state.join("lock")).is_ok_and(|text| text == holder)
                    && state.join("manifest.json").exists()
            },
        )
        .await;
    let second = run(work.path(), &args).await;
    assert_eq!(second.status.code(), Some(2));
    assert!(
        stderr(&second).contains("another bedrock-batch run is writing"),
        "{}",
        stderr(&second)
    );
    let status = run(work.path(), &["status", "run"]).await;
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("a run is active (pid"),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    first.signal("KILL");
    first.finish().await;
}

#[tokio::test]
async fn sigterm_stops_like_ctrl_c() {
    let work = tempfile::tempdir().unwrap();
    let job = write_job(work.path(), 200);
    let server = server(ServerConfig {
        latency: Duration::from_millis(100),
        ..ServerConfig::default()
    })
    .await;
    let url = server.url();
    let args = [
        "run",
        job.as_str(),
        "--model",
        CLAUDE,
        "--endpoint-url",
        &url,
        "--out",
        "run",
        "--max-concurrency",
        "4",
    ];
    // The run listens for signals before it sends anything: once a call reached the server,
    // TERM is caught.
    let output = run_interrupted(work.path(), &args, "TERM", "a call at the server", |_| {
        server.stats().requests > 0
    })
    .await;
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    let resumed = run(work.path(), &args).await;
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    check_results(&work.path().join("run"), 200);
}

#[tokio::test]
async fn a_second_sigint_quits_at_once_and_stays_resumable() {
    let work = tempfile::tempdir().unwrap();
    let job = write_job(work.path(), 60);
    // Calls take 20 s: the first Ctrl-C would wait for them (up to --grace 60 s); quitting
    // at once means quitting before the server answers any of them.
    let slow = server(ServerConfig {
        latency: Duration::from_secs(20),
        ..ServerConfig::default()
    })
    .await;
    let args = |url: &str| -> Vec<String> {
        [
            "run",
            job.as_str(),
            "--model",
            CLAUDE,
            "--endpoint-url",
            url,
            "--out",
            "run",
            "--grace",
            "60",
            "--checkpoint-secs",
            "0.1",
        ]
        .map(String::from)
        .to_vec()
    };
    let slow_args = args(&slow.url());
    let slow_args: Vec<&str> = slow_args.iter().map(String::as_str).collect();
    let mut running = Running::start(command(work.path(), &slow_args));
    running
        .wait_until("calls in flight", |_| slow.stats().in_flight > 0)
        .await;
    running.signal("INT");
    running
        .wait_until("the first Ctrl-C to be taken", |err| {
            err.contains("interrupted: no new records")
        })
        .await;
    running.signal("INT");
    let output = running.finish().await;
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    assert_eq!(
        slow.stats().status(200),
        0,
        "quit with its calls still in flight, without waiting for them"
    );
    assert!(
        stderr(&output).contains("interrupted again: quitting now"),
        "{}",
        stderr(&output)
    );

    // Another endpoint (the endpoint is not a parameter of the results) answers the resume.
    let fast = server(ServerConfig::default()).await;
    let fast_args = args(&fast.url());
    let fast_args: Vec<&str> = fast_args.iter().map(String::as_str).collect();
    let resumed = run(work.path(), &fast_args).await;
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    check_results(&work.path().join("run"), 60);
    assert_eq!(fast.stats().requests, 60, "every record was sent again");
}
