//! `--fresh` on a Batch Inference run directory, against one local server that outlives
//! both runs: the same command with `--fresh` starts over with a new run id and new jobs,
//! resumes none of the earlier ones, and leaves nothing of the earlier run where the new
//! one reads (its batch state and parts go aside with its results).

mod common;

use std::path::Path;
use std::time::Duration;

use bedrock_batch::local_server::ServerConfig;
use common::{
    CLAUDE, batch_run_args, command, files_under, local_keys, previous_runs, read_lines, stderr,
    write_jsonl,
};
use serde_json::{Value, json};

const BUCKET: &str = "fresh-tests";

fn batch_state(run_dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run_dir.join("state/batch.json")).unwrap())
        .unwrap()
}

fn arns(state: &Value) -> Vec<String> {
    state["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["job_arn"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn fresh_starts_a_batch_run_over_with_new_jobs() {
    let work = tempfile::tempdir().unwrap();
    let records: Vec<Value> = (0..120)
        .map(|i| json!({"id": format!("r{i}"), "text": format!("Note {i} about the tide.")}))
        .collect();
    let job = write_jsonl(work.path(), "job.jsonl", &records);
    let server = common::server(ServerConfig {
        s3_buckets: vec![BUCKET.into()],
        batch_step: Duration::from_millis(50),
        batch_records_per_sec: 0,
        ..ServerConfig::default()
    })
    .await;
    let run_dir = work.path().join("run");
    let s3 = format!("s3://{BUCKET}/jobs");
    let args = batch_run_args(&job, CLAUDE, &run_dir, &server.url(), &server.s3_url(), &s3);
    let run = |extra: &[&str]| {
        let mut full: Vec<&str> = args.iter().map(String::as_str).collect();
        full.extend_from_slice(extra);
        let mut run = command(work.path(), &full);
        local_keys(&mut run);
        run
    };
    let first = run(&[]).output().await.unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let earlier = batch_state(&run_dir);
    let earlier_arns = arns(&earlier);
    assert_eq!(earlier_arns.len(), 1);
    assert_eq!(server.stats().batch.jobs_created, 1);

    let fresh = run(&["--fresh"]).output().await.unwrap();
    assert_eq!(fresh.status.code(), Some(0), "{}", stderr(&fresh));
    assert!(!stderr(&fresh).contains("resuming"), "{}", stderr(&fresh));
    // A new job for the same records, under a new run id.
    assert_eq!(server.stats().batch.jobs_created, 2);
    let now = batch_state(&run_dir);
    let now_arns = arns(&now);
    assert_eq!(now_arns.len(), 1);
    assert_ne!(now_arns, earlier_arns, "an earlier job was resumed");
    assert_ne!(now["run_id"], earlier["run_id"]);
    let lines = read_lines(&run_dir);
    assert_eq!(lines.len(), 120, "every record once");
    assert!(
        lines.iter().all(|l| l["batch_job"]
            .as_str()
            .is_some_and(|j| now_arns[0].ends_with(j))),
        "only the new job's answers"
    );
    // The earlier run's state, parts and results are aside, whole.
    let aside = previous_runs(&run_dir);
    assert_eq!(aside.len(), 1);
    assert_eq!(arns(&batch_state(&aside[0])), earlier_arns);
    assert_eq!(read_lines(&aside[0]).len(), 120);
    let parts_now = files_under(&run_dir.join("batch")).len();
    assert!(parts_now > 0);
    assert_eq!(
        files_under(&aside[0].join("batch")).len(),
        parts_now,
        "the earlier parts went aside"
    );
    server.shutdown().await;
}
