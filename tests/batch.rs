//! `run --via batch` end to end: the binary against the local server's Batch Inference
//! control plane and its S3 (s3s), through the real aws-sdk-bedrock and aws-sdk-s3 clients.
//! Batch results equal on-demand results for the same records; a SIGKILL while jobs run
//! and a rerun create no second job and give every record exactly once; a partially
//! completed job is finished by `--retry-failed --via on-demand`; `cancel` stops jobs; too
//! few records are refused; `--via auto` calls on demand below the minimum.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bedrock_batch::local_server::{BatchFaults, LocalServer, ServerConfig};
use common::{CLAUDE, TITAN_V2, bb, command, local_keys, run_fresh, run_fresh_with, stderr};
use serde_json::{Value, json};

const BUCKET: &str = "batch-tests";

fn records(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"id": format!("r{i}"), "text": format!("Record {i} talks about harbour {} and the tide tables of week {}.", i % 17, i % 5)})
        })
        .collect()
}

fn by_id(lines: &[Value]) -> BTreeMap<String, Value> {
    let mut map = BTreeMap::new();
    for line in lines {
        let id = line["id"].as_str().unwrap().to_string();
        assert!(map.insert(id.clone(), line.clone()).is_none(), "{id} twice");
    }
    map
}

/// A local server with a bucket, whose batch jobs take `step` per status change and run at
/// `per_sec` records a second.
async fn server(step: Duration, per_sec: u64, faults: BatchFaults) -> LocalServer {
    common::server(ServerConfig {
        s3_buckets: vec![BUCKET.into()],
        batch_step: step,
        batch_records_per_sec: per_sec,
        batch_faults: faults,
        ..ServerConfig::default()
    })
    .await
}

/// The flags that point a run at `server` for `--via batch` (the local S3 checks
/// signatures made with its own key pair, see `command_for`).
fn endpoint_args(server: &LocalServer) -> Vec<String> {
    vec![
        "--endpoint-url".into(),
        server.url(),
        "--s3-endpoint-url".into(),
        server.s3_url(),
        "--via".into(),
        "batch".into(),
        "--s3".into(),
        format!("s3://{BUCKET}/jobs"),
        "--role-arn".into(),
        "arn:aws:iam::123456789012:role/BedrockBatch".into(),
        "--poll-secs".into(),
        "0.2".into(),
    ]
}

/// `run JOB --model CLAUDE --out RUN_DIR` against `server`, via batch.
fn run_args(job: &str, run_dir: &Path, server: &LocalServer) -> Vec<String> {
    let mut args = vec![
        "run".to_string(),
        job.to_string(),
        "--model".into(),
        CLAUDE.into(),
        "--out".into(),
        run_dir.display().to_string(),
    ];
    args.extend(endpoint_args(server));
    args
}

/// Starts `run_args` (plus `extra`) with the local S3 keys and waits until the run has
/// created `jobs` jobs; returns the arguments (to run it again) and the running process.
async fn start_batch_run(
    work: &Path,
    job: &str,
    run_dir: &Path,
    server: &LocalServer,
    extra: &[&str],
    jobs: usize,
) -> (Vec<String>, tokio::process::Child) {
    let mut args = run_args(job, run_dir, server);
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut first = command(work, &strs(&args));
    local_keys(&mut first);
    let child = first.spawn().unwrap();
    wait_for_jobs(run_dir, jobs).await;
    (args, child)
}

/// Runs `args` again (with the local S3 keys): it must exit 0 and leave every one of `n`
/// records in RUN_DIR exactly once, each ok. Returns the lines.
async fn rerun_gives_each_once(
    work: &Path,
    args: &[String],
    run_dir: &Path,
    n: usize,
) -> Vec<Value> {
    let mut again = command(work, &strs(args));
    local_keys(&mut again);
    let rerun = again.output().await.unwrap();
    assert_eq!(rerun.status.code(), Some(0), "{}", stderr(&rerun));
    let lines = common::read_lines(run_dir);
    assert_eq!(by_id(&lines).len(), n, "every record exactly once");
    assert!(lines.iter().all(|l| l["status"] == "ok"));
    lines
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The same job on demand and via batch (`base` plus `batch`), both with `--local`; both
/// must succeed.
async fn both_ways(work: &Path, base: &[&str], batch: &[&str]) -> (common::Run, common::Run) {
    let on_demand = run_fresh(work, base).await;
    assert_eq!(on_demand.code(), 0, "{}", on_demand.stderr());
    let mut args = base.to_vec();
    args.extend(["--via", "batch", "--poll-secs", "0.2"]);
    args.extend(batch);
    let via_batch = run_fresh(work, &args).await;
    assert_eq!(via_batch.code(), 0, "{}", via_batch.stderr());
    (on_demand, via_batch)
}

#[tokio::test]
async fn converse_via_batch_gives_what_on_demand_gives_at_the_batch_price() {
    let work = tempfile::tempdir().unwrap();
    let job = common::write_jsonl(work.path(), "job.jsonl", &records(250));
    let base = [
        job.as_str(),
        "--model",
        CLAUDE,
        "--max-tokens",
        "60",
        "--local",
    ];
    let (on_demand, batch) = both_ways(work.path(), &base, &["--records-per-job", "100"]).await;

    let (expected, got) = (by_id(&on_demand.lines()), by_id(&batch.lines()));
    assert_eq!(got.len(), 250);
    for (id, line) in &got {
        let want = &expected[id];
        assert_eq!(line["status"], "ok", "{line}");
        assert_eq!(line["output"], want["output"], "{id}");
        assert_eq!(line["usage"], want["usage"], "{id}");
        assert_eq!(line["stop_reason"], want["stop_reason"], "{id}");
        assert_eq!(line["via"], "batch");
        assert!(line["batch_job"].as_str().is_some_and(|j| !j.is_empty()));
        assert!(want.get("via").is_none());
    }
    // 250 records at 100 a job: 100, then the last two rebalanced to 150 (no job below 100).
    let summary = batch.summary();
    let jobs = summary["batch"]["jobs"].as_array().unwrap();
    let sizes: Vec<u64> = jobs
        .iter()
        .map(|j| j["records"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, vec![100, 150]);
    for job in jobs {
        assert_eq!(job["status"], "Completed");
        assert_eq!(job["ok"], job["records"]);
        assert!(
            job["job_arn"]
                .as_str()
                .unwrap()
                .contains(":model-invocation-job/")
        );
    }
    let cost = |run: &common::Run| run.summary()["cost_usd"].as_f64().unwrap();
    let (full, half) = (cost(&on_demand), cost(&batch));
    assert!(full > 0.0);
    assert!(
        (half - full / 2.0).abs() < 1e-6,
        "batch costs half: {half} vs {full}"
    );
    // status shows the jobs.
    let status = bb(work.path(), &["status", batch.dir.to_str().unwrap()]).await;
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("part-00001") && text.contains("Completed"),
        "{text}"
    );
}

#[tokio::test]
async fn titan_embeddings_via_batch_equal_on_demand() {
    let work = tempfile::tempdir().unwrap();
    let job = common::write_jsonl(work.path(), "docs.jsonl", &records(120));
    let base = [
        job.as_str(),
        "--model",
        TITAN_V2,
        "--dimensions",
        "256",
        "--local",
    ];
    let (on_demand, batch) = both_ways(work.path(), &base, &[]).await;
    let (expected, got) = (by_id(&on_demand.lines()), by_id(&batch.lines()));
    assert_eq!(got.len(), 120);
    for (id, line) in &got {
        assert_eq!(line["embedding"], expected[id]["embedding"], "{id}");
        assert_eq!(line["embedding"].as_array().unwrap().len(), 256);
        assert_eq!(line["usage"], expected[id]["usage"], "{id}");
        assert_eq!(line["via"], "batch");
    }
}

#[tokio::test]
async fn too_few_records_are_refused_and_auto_calls_on_demand() {
    let work = tempfile::tempdir().unwrap();
    let job = common::write_jsonl(work.path(), "small.jsonl", &records(40));
    let refused = run_fresh(
        work.path(),
        &[&job, "--model", CLAUDE, "--local", "--via", "batch"],
    )
    .await;
    assert_eq!(refused.code(), 2, "{}", refused.stderr());
    assert!(
        refused.stderr().contains("40 records to send") && refused.stderr().contains("--via auto"),
        "{}",
        refused.stderr()
    );
    let auto = run_fresh(
        work.path(),
        &[&job, "--model", CLAUDE, "--local", "--via", "auto"],
    )
    .await;
    assert_eq!(auto.code(), 0, "{}", auto.stderr());
    let lines = auto.lines();
    assert_eq!(lines.len(), 40);
    assert!(lines.iter().all(|l| l.get("via").is_none()));
    assert!(
        auto.stderr().contains("calling on demand"),
        "{}",
        auto.stderr()
    );
    // Bad flags are refused before anything is read.
    for (flags, says) in [
        (
            vec![
                "--via",
                "batch",
                "--s3",
                "my-bucket/x",
                "--role-arn",
                "arn:aws:iam::123456789012:role/r",
            ],
            "s3://BUCKET/PREFIX",
        ),
        (
            vec![
                "--via",
                "batch",
                "--s3",
                "s3://my-bucket/x",
                "--role-arn",
                "BatchRole",
            ],
            "not an IAM role ARN",
        ),
        (
            vec![
                "--via",
                "batch",
                "--role-arn",
                "arn:aws:iam::123456789012:role/r",
            ],
            "needs --s3",
        ),
        (
            vec!["--via", "batch", "--records-per-job", "60000", "--local"],
            "--records-per-job",
        ),
    ] {
        let mut args = vec![job.as_str(), "--model", CLAUDE];
        args.extend(flags);
        let run = run_fresh(work.path(), &args).await;
        assert_eq!(run.code(), 2, "{}", run.stderr());
        assert!(run.stderr().contains(says), "{says}: {}", run.stderr());
    }
    // A model without batch support is refused before any upload.
    let run = run_fresh(
        work.path(),
        &[
            &job,
            "--model",
            "anthropic.claude-3-5-haiku-20241022-v1:0",
            "--local",
            "--via",
            "batch",
        ],
    )
    .await;
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(run.stderr().contains("Batch Inference"), "{}", run.stderr());
}

/// Waits until RUN_DIR's batch state holds `n` job ARNs.
async fn wait_for_jobs(run_dir: &Path, n: usize) {
    for _ in 0..300 {
        if let Ok(text) = std::fs::read_to_string(run_dir.join("state/batch.json")) {
            let state: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let created = state["parts"].as_array().map_or(0, |parts| {
                parts.iter().filter(|p| p["job_arn"].is_string()).count()
            });
            if created >= n {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {n} jobs in {}", run_dir.display());
}

#[tokio::test]
async fn a_killed_run_resumes_its_jobs_without_creating_them_again() {
    let work = tempfile::tempdir().unwrap();
    let job = common::write_jsonl(work.path(), "job.jsonl", &records(300));
    // Slow jobs: each takes a few seconds, long enough to kill the run in the middle.
    let server = server(Duration::from_millis(300), 100, BatchFaults::default()).await;
    let run_dir = work.path().join("killed");
    let (args, child) = start_batch_run(
        work.path(),
        &job,
        &run_dir,
        &server,
        &["--records-per-job", "100"],
        3,
    )
    .await;
    common::send_signal(child.id().unwrap() as i32, "KILL");
    let killed = child.wait_with_output().await.unwrap();
    assert_eq!(killed.status.code(), None, "killed: {}", stderr(&killed));
    assert_eq!(server.stats().batch.jobs_created, 3);

    rerun_gives_each_once(work.path(), &args, &run_dir, 300).await;
    let stats = server.stats().batch;
    assert_eq!(stats.jobs_created, 3, "no second job: {stats:?}");
    server.shutdown().await;
}

/// Polls `ready` every 10 ms until it holds; panics naming `what` after `secs` seconds.
async fn wait_until(what: &str, secs: u64, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "waited {secs} s for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The job ARNs RUN_DIR's batch state holds (none while the file is missing).
fn saved_arns(run_dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run_dir.join("state/batch.json")).unwrap_or_default();
    let state: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    state["parts"].as_array().map_or(Vec::new(), |parts| {
        parts
            .iter()
            .filter_map(|p| p["job_arn"].as_str().map(str::to_string))
            .collect()
    })
}

/// The README's central batch promise, at its narrowest point: the job exists at the
/// service but the run died before it heard the ARN (the server makes the job, then waits
/// before answering). The rerun's create of that part must be answered by its request token
/// with the job already made: one more create call, no more jobs. A request token that
/// changed between runs would be refused for the name and found by listing instead, which
/// `creates_by_token` tells apart.
#[tokio::test]
async fn a_kill_between_create_and_saving_the_arn_finds_the_job_by_its_token() {
    let work = tempfile::tempdir().unwrap();
    let job = common::write_jsonl(work.path(), "job.jsonl", &records(300));
    let faults = BatchFaults {
        create_answer_delay: Duration::from_millis(1500),
        ..BatchFaults::default()
    };
    let server = server(Duration::from_millis(50), 0, faults).await;
    let run_dir = work.path().join("window");
    let mut args = run_args(&job, &run_dir, &server);
    args.extend(["--records-per-job".to_string(), "100".to_string()]);
    let mut first = command(work.path(), &strs(&args));
    local_keys(&mut first);
    let child = first.spawn().unwrap();
    wait_until("the first job to be made", 60, || {
        server.stats().batch.jobs_created == 1
    })
    .await;
    common::send_signal(child.id().unwrap() as i32, "KILL");
    let killed = child.wait_with_output().await.unwrap();
    assert_eq!(killed.status.code(), None, "killed: {}", stderr(&killed));
    assert!(
        saved_arns(&run_dir).is_empty(),
        "the kill landed after the ARN was saved: the window was missed"
    );
    let before = server.stats().batch;
    assert_eq!((before.jobs_created, before.create_calls), (1, 1));

    rerun_gives_each_once(work.path(), &args, &run_dir, 300).await;
    let stats = server.stats().batch;
    assert_eq!(
        stats.jobs_created, 3,
        "no second job for the first part: {stats:?}"
    );
    assert_eq!(
        stats.create_calls, 4,
        "one more create for the first part: {stats:?}"
    );
    assert_eq!(
        stats.creates_by_token, 1,
        "answered by its token: {stats:?}"
    );
    assert_eq!(stats.creates_name_in_use, 0, "{stats:?}");
    assert_eq!(saved_arns(&run_dir).len(), 3);
    assert_eq!(server.stats().requests, 0, "nothing went on demand");
    server.shutdown().await;
}

/// Kills during collection, at a random moment while results.jsonl is partly written: the
/// server runs two jobs of a model at a time, so six parts are collected in three waves,
/// and the kill lands between waves or inside one (a part collected, its lines not yet
/// committed). The rerun makes no second job for any part, calls nothing on demand, and
/// gives every record exactly once; the summary's totals are the sum of the lines.
#[tokio::test]
async fn a_kill_during_collection_resumes_without_a_duplicate_line() {
    const RECORDS: usize = 600;
    let work = tempfile::tempdir().unwrap();
    let job = common::write_jsonl(work.path(), "job.jsonl", &records(RECORDS));
    let server = common::server(ServerConfig {
        s3_buckets: vec![BUCKET.into()],
        batch_step: Duration::from_millis(100),
        batch_records_per_sec: 0,
        batch_max_jobs: 2,
        ..ServerConfig::default()
    })
    .await;
    let mut partial_kills = 0;
    for round in 0..4 {
        let run_dir = work.path().join(format!("collecting-{round}"));
        let mut args = run_args(&job, &run_dir, &server);
        // Lines reach the file at each checkpoint: often enough to see the waves.
        args.extend(["--records-per-job", "100", "--checkpoint-secs", "0.05"].map(String::from));
        let mut first = command(work.path(), &strs(&args));
        local_keys(&mut first);
        let child = first.spawn().unwrap();
        let results = run_dir.join("results.jsonl");
        let written = || {
            std::fs::read(&results)
                .map(|bytes| bytes.iter().filter(|&&b| b == b'\n').count())
                .unwrap_or(0)
        };
        let made_before = server.stats().batch.jobs_created;
        wait_until("a first collected line", 120, || written() > 0).await;
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..400))).await;
        common::send_signal(child.id().unwrap() as i32, "KILL");
        let killed = child.wait_with_output().await.unwrap();
        let at_kill = written();
        eprintln!(
            "round {round}: {:?} with {at_kill} lines, {} jobs made",
            killed.status.code(),
            server.stats().batch.jobs_created - made_before
        );
        if killed.status.code().is_some() {
            // It finished before the kill: nothing to resume this round.
            assert_eq!(at_kill, RECORDS, "{}", stderr(&killed));
            continue;
        }
        if at_kill < RECORDS {
            partial_kills += 1;
        }
        let before = server.stats();
        let lines = rerun_gives_each_once(work.path(), &args, &run_dir, RECORDS).await;
        let after = server.stats();
        assert_eq!(
            after.batch.jobs_created - made_before,
            6,
            "round {round}: one job a part (killed with {at_kill} lines, {} jobs made by then)",
            before.batch.jobs_created - made_before
        );
        assert_eq!(after.batch.creates_name_in_use, 0, "round {round}");
        assert_eq!(after.requests, 0, "nothing went on demand");
        let summary = common::read_summary(&run_dir);
        for kind in ["input_tokens", "output_tokens"] {
            let sum: u64 = lines
                .iter()
                .map(|l| l["usage"][kind].as_u64().unwrap())
                .sum();
            assert_eq!(
                summary["usage"][kind].as_u64(),
                Some(sum),
                "{kind}: {summary}"
            );
        }
    }
    assert!(
        partial_kills >= 2,
        "only {partial_kills} of 4 kills landed during collection"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_partial_job_is_finished_on_demand_with_retry_failed() {
    let work = tempfile::tempdir().unwrap();
    let job = common::write_jsonl(work.path(), "job.jsonl", &records(150));
    let faults = BatchFaults {
        partial: 1.0,
        ..BatchFaults::default()
    };
    let server = server(Duration::from_millis(50), 0, faults).await;
    let mut args = vec![job.clone(), "--model".into(), CLAUDE.into()];
    args.extend(endpoint_args(&server));
    let batch = run_fresh_with(work.path(), &strs(&args), local_keys).await;
    assert_eq!(batch.code(), 1, "{}", batch.stderr());
    let lines = batch.lines();
    assert_eq!(lines.len(), 150);
    let incomplete = lines
        .iter()
        .filter(|l| l["error"]["kind"] == "batch_incomplete")
        .count();
    let ok = lines.iter().filter(|l| l["status"] == "ok").count();
    assert!(incomplete > 0 && ok > 0, "{incomplete} incomplete, {ok} ok");
    assert_eq!(incomplete + ok, 150);
    assert!(lines.iter().any(|l| {
        l["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("PartiallyCompleted"))
    }));
    assert_eq!(
        batch.summary()["batch"]["jobs"][0]["status"],
        "PartiallyCompleted"
    );

    let retry = bb(
        work.path(),
        &[
            "run",
            &job,
            "--model",
            CLAUDE,
            "--out",
            batch.dir.to_str().unwrap(),
            "--endpoint-url",
            &server.url(),
            "--retry-failed",
            "--via",
            "on-demand",
        ],
    )
    .await;
    assert_eq!(retry.status.code(), Some(0), "{}", stderr(&retry));
    let lines = common::read_lines(&batch.dir);
    let lines = by_id(&lines);
    assert_eq!(lines.len(), 150);
    assert!(lines.values().all(|l| l["status"] == "ok"));
    let on_demand = lines.values().filter(|l| l.get("via").is_none()).count();
    assert_eq!(
        on_demand, incomplete,
        "only the unanswered records went on demand"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn cancel_stops_the_jobs_and_the_run_collects_what_they_answered() {
    let work = tempfile::tempdir().unwrap();
    let job = common::write_jsonl(work.path(), "job.jsonl", &records(200));
    let server = server(Duration::from_millis(200), 20, BatchFaults::default()).await;
    let run_dir = work.path().join("cancelled");
    let (_, child) = start_batch_run(work.path(), &job, &run_dir, &server, &[], 1).await;
    wait_until("the run to see its job in progress", 60, || {
        let text = std::fs::read_to_string(run_dir.join("state/batch.json")).unwrap_or_default();
        let state: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        state["parts"][0]["status"] == "InProgress"
    })
    .await;
    let mut cancel = command(work.path(), &["cancel", run_dir.to_str().unwrap()]);
    local_keys(&mut cancel);
    let cancelled = cancel.output().await.unwrap();
    assert_eq!(cancelled.status.code(), Some(0), "{}", stderr(&cancelled));
    assert!(
        stderr(&cancelled).contains("1 stopped"),
        "{}",
        stderr(&cancelled)
    );
    let run = child.wait_with_output().await.unwrap();
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let lines = common::read_lines(&run_dir);
    assert_eq!(by_id(&lines).len(), 200);
    assert!(
        lines
            .iter()
            .any(|l| l["error"]["kind"] == "batch_incomplete")
    );
    let summary = common::read_summary(&run_dir);
    assert_eq!(summary["batch"]["jobs"][0]["status"], "Stopped");
    assert_eq!(server.stats().batch.by_status.get("Stopped"), Some(&1));
    server.shutdown().await;
}

#[tokio::test]
async fn ctrl_c_leaves_the_jobs_running_and_a_rerun_collects_them() {
    let work = tempfile::tempdir().unwrap();
    let job = common::write_jsonl(work.path(), "job.jsonl", &records(120));
    let server = server(Duration::from_millis(300), 50, BatchFaults::default()).await;
    let run_dir = work.path().join("interrupted");
    let (args, child) = start_batch_run(work.path(), &job, &run_dir, &server, &[], 1).await;
    common::send_signal(child.id().unwrap() as i32, "INT");
    let interrupted = child.wait_with_output().await.unwrap();
    assert_eq!(
        interrupted.status.code(),
        Some(130),
        "{}",
        stderr(&interrupted)
    );
    assert!(
        stderr(&interrupted).contains("resume with"),
        "{}",
        stderr(&interrupted)
    );
    assert!(
        common::read_lines(&run_dir).is_empty(),
        "nothing collected yet"
    );

    // An on-demand rerun would pay twice: refused while the job is not collected.
    let mut on_demand = command(
        work.path(),
        &[
            "run",
            &job,
            "--model",
            CLAUDE,
            "--out",
            run_dir.to_str().unwrap(),
            "--endpoint-url",
            &server.url(),
        ],
    );
    local_keys(&mut on_demand);
    let refused = on_demand.output().await.unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("not collected yet"),
        "{}",
        stderr(&refused)
    );

    rerun_gives_each_once(work.path(), &args, &run_dir, 120).await;
    assert_eq!(server.stats().batch.jobs_created, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn parts_past_the_jobs_quota_wait_for_room_and_run_later() {
    let work = tempfile::tempdir().unwrap();
    let job = common::write_jsonl(work.path(), "job.jsonl", &records(500));
    let server = common::server(ServerConfig {
        s3_buckets: vec![BUCKET.into()],
        batch_step: Duration::from_millis(50),
        batch_records_per_sec: 0,
        batch_max_jobs: 2,
        ..ServerConfig::default()
    })
    .await;
    let mut args = vec![
        job.clone(),
        "--model".into(),
        CLAUDE.into(),
        "--records-per-job".into(),
        "100".into(),
    ];
    args.extend(endpoint_args(&server));
    let run = run_fresh_with(work.path(), &strs(&args), local_keys).await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(by_id(&run.lines()).len(), 500);
    let stats = server.stats().batch;
    assert_eq!(stats.jobs_created, 5, "{stats:?}");
    assert!(
        stats.create_calls > 5,
        "creates past the quota were refused and tried again: {stats:?}"
    );
    server.shutdown().await;
}
