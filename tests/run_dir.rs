//! Every way `run` refuses a RUN_DIR, from one table: a file where the directory should be
//! (or on its path), a folder of other files, a directory another run holds, one started with another job file, other parameters or
//! another shard, results.jsonl without run state or shorter than its checkpoint, and a
//! Batch Inference run rerun with another --s3. Each refusal exits 2, says what is wrong,
//! and leaves the earlier results as they were; a finished batch run rerun as it was run is
//! no refusal.

mod common;

use std::path::Path;

use bedrock_batch::store::state::RunLock;
use common::*;
use serde_json::{Value, json};

fn job(dir: &Path, name: &str, n: usize, topic: &str) -> String {
    let records: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("r{i}"), "text": format!("{topic} {i} is short.")}))
        .collect();
    write_jsonl(dir, name, &records)
}

/// `run JOB --model CLAUDE --local --out OUT EXTRA`.
async fn run(work: &Path, job: &str, out: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["run", job, "--model", CLAUDE, "--local", "--out", out];
    args.extend_from_slice(extra);
    bb(work, &args).await
}

#[tokio::test]
async fn every_run_dir_refusal_exits_2_and_keeps_the_earlier_results() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let a = job(w, "a.jsonl", 10, "Item");
    let b = job(w, "b.jsonl", 10, "Other");
    let c = job(w, "c.jsonl", 100, "Batch item");
    for (job, out, extra) in [
        (&a, "done", &[][..]),
        (&a, "s0", &["--shard", "0/2"][..]),
        (&c, "batch", &["--via", "batch", "--poll-secs", "0.2"][..]),
    ] {
        let output = run(w, job, out, extra).await;
        assert_eq!(output.status.code(), Some(0), "{out}: {}", stderr(&output));
    }
    // A finished Batch Inference run rerun with its own command resumes: nothing to send,
    // its jobs' report kept (it used to be refused as too few records for a job).
    let again = run(w, &c, "batch", &["--via", "batch", "--poll-secs", "0.2"]).await;
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(read_lines(&w.join("batch")).len(), 100);
    assert_eq!(
        read_summary(&w.join("batch"))["batch"]["jobs"][0]["status"],
        "Completed"
    );

    std::fs::write(w.join("file"), "not a directory").unwrap();
    std::fs::create_dir(w.join("jobs")).unwrap();
    std::fs::copy(w.join(&a), w.join("jobs").join(&a)).unwrap();
    for copy in ["locked", "other-job", "other-params", "shorter"] {
        copy_dir(&w.join("done"), &w.join(copy));
    }
    let _held = RunLock::acquire(&w.join("locked")).unwrap();
    std::fs::create_dir(w.join("no-state")).unwrap();
    std::fs::copy(
        w.join("done/results.jsonl"),
        w.join("no-state/results.jsonl"),
    )
    .unwrap();
    let results = std::fs::read(w.join("shorter/results.jsonl")).unwrap();
    std::fs::write(
        w.join("shorter/results.jsonl"),
        &results[..results.len() / 2],
    )
    .unwrap();

    // (--out, job file, more flags, words in the refusal)
    let cases: [(&str, &str, &[&str], &str); 10] = [
        ("file", &a, &[], "--out file is a file"),
        (
            "file/run",
            &a,
            &[],
            "--out file/run: cannot use it as the run directory",
        ),
        (
            "jobs",
            &a,
            &[],
            "--out jobs is not a run directory: it holds 1 other file(s) (a.jsonl)",
        ),
        (
            "locked",
            &a,
            &[],
            "another bedrock-batch run is writing locked (pid ",
        ),
        (
            "other-job",
            &b,
            &[],
            "other-job was started with a different job file",
        ),
        (
            "other-params",
            &a,
            &["--max-tokens", "77"],
            "other-params was started with other parameters",
        ),
        (
            "s0",
            &a,
            &["--shard", "1/2"],
            "s0 was started with other parameters",
        ),
        (
            "no-state",
            &a,
            &[],
            "no-state holds results.jsonl but no run state",
        ),
        ("shorter", &a, &[], "shorter/results.jsonl is shorter"),
        (
            "batch",
            &c,
            &[
                "--via",
                "batch",
                "--s3",
                "s3://bedrock-batch-local/elsewhere",
            ],
            "batch has Batch Inference jobs in s3://bedrock-batch-local/runs with the role",
        ),
    ];
    // Every row runs; the failures are reported together.
    let mut wrong = Vec::new();
    for (out, job, extra, says) in cases {
        let before = std::fs::read(w.join(out).join("results.jsonl")).ok();
        let output = run(w, job, out, extra).await;
        let said = stderr(&output);
        let after = std::fs::read(w.join(out).join("results.jsonl")).ok();
        if output.status.code() != Some(2) || !said.contains(says) || after != before {
            wrong.push(format!(
                "{out}: exit {:?}, results.jsonl {}, expected {says:?} in: {said}",
                output.status.code(),
                if after == before { "kept" } else { "changed" }
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Each directory but the file and the locked one resumes or starts over with --fresh.
    let fresh = run(w, &b, "other-job", &["--fresh"]).await;
    assert_eq!(fresh.status.code(), Some(0), "{}", stderr(&fresh));
}

/// A local write that fails (here summary.json cannot replace the directory planted in its
/// place; a full disk takes the same path) exits 74, not 2: the user's flags and input were
/// fine. The error names the file, and the records' lines are kept for a rerun.
#[tokio::test]
async fn a_local_write_that_fails_exits_74_and_names_the_file() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let a = job(w, "a.jsonl", 10, "Item");
    let blocker = w.join("out/summary.json/in-the-way");
    std::fs::create_dir_all(&blocker).unwrap();
    let output = run(w, &a, "out", &[]).await;
    let said = stderr(&output);
    assert_eq!(output.status.code(), Some(74), "{said}");
    assert!(said.contains("summary.json"), "{said}");
    assert_eq!(read_lines(&w.join("out")).len(), 10, "{said}");
}
