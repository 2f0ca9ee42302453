//! `bedrock-batch cancel RUN_DIR` beyond stopping a running job: a directory without batch
//! state is a usage error; jobs that ended since the run last looked are reported and not
//! stopped; parts never submitted are named and left alone; a stop the service refuses
//! makes cancel fail (exit 3) and names the job. The binary runs against the local server's
//! Batch Inference control plane and S3 (see tests/batch.rs for the full runs).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use bedrock_batch::local_server::{BatchFaults, LocalServer, ServerConfig};
use common::{CLAUDE, batch_run_args, bb, command, local_keys, stderr, write_jsonl};
use serde_json::{Value, json};

const BUCKET: &str = "cancel-tests";

fn records(n: usize) -> Vec<Value> {
    (0..n)
        .map(
            |i| json!({"id": format!("r{i}"), "text": format!("Note {i} on the ferry timetable.")}),
        )
        .collect()
}

/// A local server with a bucket whose batch jobs answer `per_sec` records a second.
async fn server(per_sec: u64, max_jobs: u64, faults: BatchFaults) -> LocalServer {
    common::server(ServerConfig {
        s3_buckets: vec![BUCKET.into()],
        batch_step: Duration::from_millis(100),
        batch_records_per_sec: per_sec,
        batch_max_jobs: max_jobs,
        batch_faults: faults,
        ..ServerConfig::default()
    })
    .await
}

/// Starts `run JOB --via batch` against `server` into `run_dir`, 100 records a job.
fn start_run(
    work: &Path,
    job: &str,
    run_dir: &Path,
    server: &LocalServer,
) -> tokio::process::Child {
    let s3 = format!("s3://{BUCKET}/jobs");
    let mut args = batch_run_args(job, CLAUDE, run_dir, &server.url(), &server.s3_url(), &s3);
    args.extend(["--records-per-job".to_string(), "100".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut run = command(work, &args);
    local_keys(&mut run);
    run.spawn().unwrap()
}

/// RUN_DIR's batch state, when it has been written.
fn batch_state(run_dir: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(run_dir.join("state/batch.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Waits (bounded) until `ready` holds, polling every 20 ms.
async fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills the run once its state holds `parts` parts and `jobs` created jobs.
async fn kill_when(mut run: tokio::process::Child, run_dir: &Path, parts: usize, jobs: usize) {
    wait_until("the run's parts and jobs", || {
        batch_state(run_dir).is_some_and(|state| {
            let all = state["parts"].as_array().cloned().unwrap_or_default();
            let created = all.iter().filter(|p| p["job_arn"].is_string()).count();
            all.len() == parts && created == jobs
        })
    })
    .await;
    run.kill().await.unwrap();
}

/// `cancel RUN_DIR`, signed with the local S3 keys like the run.
async fn cancel(work: &Path, run_dir: &Path) -> std::process::Output {
    let mut cancel = command(work, &["cancel", run_dir.to_str().unwrap()]);
    local_keys(&mut cancel);
    cancel.output().await.unwrap()
}

#[tokio::test]
async fn a_directory_without_batch_jobs_is_a_usage_error() {
    let work = tempfile::tempdir().unwrap();
    let job = write_jsonl(work.path(), "job.jsonl", &records(3));
    let on_demand = bb(
        work.path(),
        &["run", &job, "--model", CLAUDE, "--out", "od", "--local"],
    )
    .await;
    assert_eq!(on_demand.status.code(), Some(0), "{}", stderr(&on_demand));
    std::fs::create_dir(work.path().join("empty")).unwrap();
    for dir in ["od", "empty", "missing"] {
        let out = bb(work.path(), &["cancel", dir]).await;
        assert_eq!(out.status.code(), Some(2), "{dir}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!(
                "{dir} has no Batch Inference jobs (it was not run with --via batch)"
            )),
            "{dir}: {}",
            stderr(&out)
        );
    }
}

#[tokio::test]
async fn jobs_that_ended_since_are_reported_and_not_stopped() {
    let work = tempfile::tempdir().unwrap();
    let job = write_jsonl(work.path(), "job.jsonl", &records(100));
    let server = server(0, 10, BatchFaults::default()).await;
    let run_dir = work.path().join("run");
    let run = start_run(work.path(), &job, &run_dir, &server);
    kill_when(run, &run_dir, 1, 1).await;
    // The state still says the job runs; the service says it completed.
    wait_until("the job to complete", || {
        server.stats().batch.by_status.get("Completed") == Some(&1)
    })
    .await;
    let state = batch_state(&run_dir).unwrap();
    assert_ne!(state["parts"][0]["status"], "Completed", "{state}");

    let out = cancel(work.path(), &run_dir).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let arn = state["parts"][0]["job_arn"].as_str().unwrap();
    assert!(
        stderr(&out).contains(&format!("part-00001: job {arn} already Completed")),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("0 stopped, 1 already ended."),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.stats().batch.stop_calls, 0, "no stop was asked for");
    server.shutdown().await;
}

#[tokio::test]
async fn parts_never_submitted_are_named_and_left_alone() {
    let work = tempfile::tempdir().unwrap();
    let job = write_jsonl(work.path(), "job.jsonl", &records(300));
    // One job of a model at a time, running slowly: parts 2 and 3 wait unsubmitted.
    let server = server(10, 1, BatchFaults::default()).await;
    let run_dir = work.path().join("run");
    let run = start_run(work.path(), &job, &run_dir, &server);
    kill_when(run, &run_dir, 3, 1).await;

    let out = cancel(work.path(), &run_dir).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(said.contains("part-00001: stopping job"), "{said}");
    assert!(
        said.contains("2 parts were prepared but never submitted"),
        "{said}"
    );
    assert!(said.contains("1 stopped, 0 already ended."), "{said}");
    let stats = server.stats().batch;
    assert_eq!((stats.jobs_created, stats.stop_calls), (1, 1), "{stats:?}");

    // Once the run has seen its one job end, cancel asks nothing of the service and still
    // names the parts that have no job.
    let path = run_dir.join("state/batch.json");
    let mut state = batch_state(&run_dir).unwrap();
    state["parts"][0]["status"] = json!("Stopped");
    std::fs::write(&path, state.to_string()).unwrap();
    let out = cancel(work.path(), &run_dir).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(said.contains("nothing to cancel"), "{said}");
    assert!(said.contains("(1 job(s) in all)"), "{said}");
    assert!(
        said.contains("2 parts were prepared but never submitted"),
        "{said}"
    );
    assert_eq!(server.stats().batch.stop_calls, 1, "no second stop");
    server.shutdown().await;
}

#[tokio::test]
async fn a_stop_the_service_refuses_fails_cancel_and_names_the_job() {
    let work = tempfile::tempdir().unwrap();
    let job = write_jsonl(work.path(), "job.jsonl", &records(100));
    let faults = BatchFaults {
        deny_stop: true,
        ..BatchFaults::default()
    };
    let server = server(5, 10, faults).await;
    let run_dir = work.path().join("run");
    let run = start_run(work.path(), &job, &run_dir, &server);
    kill_when(run, &run_dir, 1, 1).await;

    let out = cancel(work.path(), &run_dir).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let said = stderr(&out);
    let arn = batch_state(&run_dir).unwrap()["parts"][0]["job_arn"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        said.contains(&format!("part-00001: cannot stop job {arn}")),
        "{said}"
    );
    assert!(said.contains("not authorized to perform"), "{said}");
    assert!(
        said.contains("0 stopped, 0 already ended, 1 could not be stopped"),
        "{said}"
    );
    let stats = server.stats().batch;
    assert_eq!(stats.stop_calls, 1, "{stats:?}");
    assert!(stats.by_status.is_empty(), "the job runs on: {stats:?}");
    server.shutdown().await;
}
