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

/// Records with a committed line in RUN_DIR's checkpoint (none before the first one).
fn committed(run_dir: &Path) -> u64 {
    let Ok(text) = std::fs::read_to_string(run_dir.join("state/checkpoint.json")) else {
        return 0;
    };
    let checkpoint: Value = serde_json::from_str(&text).unwrap();
    checkpoint["done"]
        .as_array()
        .unwrap()
        .iter()
        .map(|range| range[1].as_u64().unwrap() - range[0].as_u64().unwrap() + 1)
        .sum()
}

/// SIGKILL at random moments, with a backlog in flight: during the cold-start ramp (after
/// a few answers) and after it (after hundreds, with at least 4 calls at the server: the
/// server's faults keep the adaptive limit low for long stretches, and with 8 a round once
/// ran its 2,883 remaining records without meeting the condition, failing CI). What
/// a kill costs is measured from the server's counters, not assumed: the records answered
/// in a round and not committed by its checkpoint are paid again by a later round, and
/// they must be no more than what was answered after the test's last look before the kill
/// (the backlog in flight then) plus what was answered in the one checkpoint lag before it.
/// Every duplicate the server saw is one of those.
#[tokio::test]
#[ignore = "slow: scripts/test --all"]
async fn sigkill_at_random_moments_then_resume_gives_exactly_once() {
    let work = tempfile::tempdir().unwrap();
    let n = 6000;
    let job = write_job(work.path(), n);
    let server = server(ServerConfig {
        latency: Duration::from_millis(20),
        tpm: Some(20_000_000),
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
        "0.1",
        "--max-attempts",
        "20",
    ];
    let run_dir = work.path().join("run");
    // A checkpoint is due every 0.1 s; allow it six times that to land on a busy machine.
    let lag = Duration::from_millis(600);
    let mut lost_total = 0;
    for round in 0..6 {
        let during_ramp = round % 2 == 0;
        let (target, backlog) = if during_ramp {
            (fastrand::u64(5..40), 1)
        } else {
            (fastrand::u64(500..1000), 4)
        };
        let before = server.stats().status(200);
        let committed_before = committed(&run_dir);
        let mut child = command(work.path(), &args).spawn().unwrap();
        let mut seen: Vec<(std::time::Instant, u64)> = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let stats = server.stats();
            let answered = stats.status(200) - before;
            seen.push((std::time::Instant::now(), answered));
            if answered >= target && stats.in_flight >= backlog {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("round {round}: the run ended before the kill: {status}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: {answered} answers in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        let &(last_look, at_last_look) = seen.last().unwrap();
        let lag_ago = seen
            .iter()
            .rev()
            .find(|(at, _)| last_look.duration_since(*at) >= lag)
            .map_or(0, |&(_, answered)| answered);
        // The server finishes what it was answering when the client died.
        let settle = std::time::Instant::now() + Duration::from_secs(10);
        while server.stats().in_flight > 0 {
            assert!(
                std::time::Instant::now() < settle,
                "the server never settled"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let answered = server.stats().status(200) - before;
        let kept = committed(&run_dir) - committed_before;
        let lost = answered.saturating_sub(kept);
        let bound = (answered - at_last_look) + (at_last_look - lag_ago);
        eprintln!(
            "round {round}: killed after {at_last_look} answers ({}), {answered} answered, {kept} committed, {lost} to pay again (bound {bound})",
            if during_ramp { "ramp" } else { "backlog" }
        );
        assert!(
            lost <= bound,
            "round {round}: {lost} answered records were not committed, more than the {bound} answered since one checkpoint lag ({lag:?}) before the kill"
        );
        lost_total += lost;
    }
    let done = run(work.path(), &args).await;
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    let lines = check_results(&run_dir, n);
    assert!(lines.iter().all(|l| l["status"] == "ok"));

    let stats = server.stats();
    assert_eq!(
        stats.status(200) - stats.duplicate_successes,
        n as u64,
        "every record answered"
    );
    // A run never pays twice by itself (a timed-out call is answered 408, not late).
    assert_eq!(
        stats.duplicate_successes, lost_total,
        "every duplicate answer is one a kill lost"
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
    // What a kill in the middle of an atomic write (summary.json, the checkpoint) leaves.
    let run_dir = work.path().join("run");
    let leftovers = [
        run_dir.join(".unfinished-k1LLed"),
        run_dir.join("state/.unfinished-c4ckpt"),
    ];
    for file in &leftovers {
        std::fs::write(file, "{\"half\": ").unwrap();
    }
    let again = run(work.path(), &args).await;
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(server.stats().requests, 20);
    check_results(&run_dir, 20);
    for file in &leftovers {
        assert!(!file.exists(), "{} was not removed", file.display());
    }
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

/// A stage that panics never ends a run looking complete: the reader, the preparer or the
/// on-demand engine panics (a test-only hook of debug builds) partway through the job; the run exits 70 naming the
/// stage, summary.json says it stopped early with the records still pending, and a rerun
/// finishes every record exactly once, sending only the records with no line. (Calls the
/// engine had in flight when it panicked were answered, and paid, but their answers died
/// with it: they are the only ones sent twice.)
#[tokio::test]
async fn a_panicked_stage_ends_the_run_non_zero_and_a_rerun_finishes_it() {
    for (stage, name) in [
        ("reader", "reading"),
        ("preparer", "preparing"),
        ("engine", "engine"),
    ] {
        let work = tempfile::tempdir().unwrap();
        let n = 60;
        let job = write_job(work.path(), n);
        let server = server(ServerConfig::default()).await;
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
        ];
        let mut first = command(work.path(), &args);
        first.env("BEDROCK_BATCH_TEST_PANIC", format!("{stage}:25"));
        let first = first.output().await.unwrap();
        let said = stderr(&first);
        assert_eq!(first.status.code(), Some(70), "{stage}: {said}");
        assert!(
            said.contains(&format!("the {name} stage failed: it panicked")),
            "{stage}: {said}"
        );
        let run_dir = work.path().join("run");
        let summary = read_summary(&run_dir);
        assert_eq!(summary["aborted"]["kind"], "internal", "{stage}: {summary}");
        let written = read_lines(&run_dir).len() as u64;
        assert!(
            written < 25,
            "{stage}: {written} lines, the panic came at record 25"
        );
        assert_eq!(
            summary["records"]["pending"].as_u64(),
            Some(n as u64 - written),
            "{stage}: {summary}"
        );

        let sent_first = server.stats().requests;
        if stage == "engine" {
            // Only calls taken before the panic at the 25th could die with the engine.
            assert!(
                (written..=24).contains(&sent_first),
                "{stage}: {sent_first} sent, {written} written"
            );
        } else {
            // The engine wrote every answer it was paid for before the run stopped.
            assert_eq!(sent_first, written, "{stage}: no answer lost");
        }

        let rerun = run(work.path(), &args).await;
        assert_eq!(rerun.status.code(), Some(0), "{stage}: {}", stderr(&rerun));
        check_results(&run_dir, n);
        let stats = server.stats();
        assert_eq!(
            stats.requests - sent_first,
            n as u64 - written,
            "{stage}: the rerun sends only the records with no line"
        );
        if stage != "engine" {
            assert_eq!(stats.duplicate_successes, 0, "{stage}");
        }
    }
}
