//! Every refusal of `bedrock-batch merge`, from one table: each row names the directories
//! given (shards run for real with `--local`, some copied and changed the way a crash, a
//! budget stop or a fatal error leaves them), and the refusal must exit 2, say what is
//! wrong, and leave no output directory behind.

mod common;

use std::path::Path;

use bedrock_batch::store::state::RunLock;
use common::*;
use serde_json::{Value, json};

fn job(dir: &Path, name: &str, topic: &str) -> String {
    let records: Vec<Value> = (0..12)
        .map(|i| json!({"id": format!("r{i}"), "text": format!("{topic} {i} is short.")}))
        .collect();
    write_jsonl(dir, name, &records)
}

/// `run JOB --local --out OUT [--shard SPEC] EXTRA`, which must succeed.
async fn run(work: &Path, job: &str, out: &str, shard: Option<&str>, extra: &[&str]) {
    let mut args = vec![
        "run", job, "--model", CLAUDE, "--local", "--out", out, "--quiet",
    ];
    if let Some(spec) = shard {
        args.extend(["--shard", spec]);
    }
    args.extend_from_slice(extra);
    let output = bb(work, &args).await;
    assert_eq!(output.status.code(), Some(0), "{out}: {}", stderr(&output));
}

/// A copy of shard `from` as `to`, its checkpoint's summary changed by `change`.
fn changed_copy(work: &Path, from: &str, to: &str, change: impl FnOnce(&mut Value)) {
    copy_dir(&work.join(from), &work.join(to));
    let path = work.join(to).join("state/checkpoint.json");
    let mut checkpoint: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    change(&mut checkpoint["summary"]);
    std::fs::write(&path, checkpoint.to_string()).unwrap();
}

#[tokio::test]
async fn every_merge_refusal_exits_2_and_says_why() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let a = job(w, "a.jsonl", "Item");
    let b = job(w, "b.jsonl", "Other");
    run(w, &a, "s0", Some("0/2"), &[]).await;
    run(w, &a, "s1", Some("1/2"), &[]).await;
    run(w, &a, "t1", Some("1/3"), &[]).await;
    run(w, &a, "p1", Some("1/2"), &["--max-tokens", "77"]).await;
    run(w, &b, "b1", Some("1/2"), &[]).await;
    run(w, &a, "whole", None, &[]).await;
    std::fs::create_dir(w.join("plain")).unwrap();
    copy_dir(&w.join("s1"), &w.join("never"));
    std::fs::remove_file(w.join("never/state/checkpoint.json")).unwrap();
    changed_copy(w, "s1", "pending", |s| s["records"]["pending"] = json!(4));
    changed_copy(
        w,
        "s1",
        "aborted",
        |s| {
            s["aborted"] =
                json!({"kind": "access_denied", "model": CLAUDE, "message": "no", "hint": "ask"})
        },
    );
    changed_copy(w, "s1", "budget", |s| {
        s["budget"] = json!({"limit_usd": 0.01, "spent_usd": 0.011})
    });
    copy_dir(&w.join("s1"), &w.join("locked"));
    let _held = RunLock::acquire(&w.join("locked")).unwrap();

    // (directories given, --out (None: a new directory), words in the refusal)
    let cases: [(&[&str], Option<&str>, &str); 15] = [
        (
            &[],
            None,
            "the following required arguments were not provided",
        ),
        (
            &["plain", "s1"],
            None,
            "plain is not a bedrock-batch run directory",
        ),
        (
            &["s0", "whole"],
            None,
            "whole is not a shard: it was run without --shard",
        ),
        (
            &["s0", "never"],
            None,
            "never (shard 1/2) has no checkpoint: it never ran",
        ),
        (
            &["s0", "locked"],
            None,
            "locked (shard 1/2) is still running (pid ",
        ),
        (
            &["s0", "pending"],
            None,
            "pending (shard 1/2) is not finished: 4 records pending",
        ),
        (
            &["s0", "aborted"],
            None,
            "is not finished: stopped early (access_denied)",
        ),
        (
            &["s0", "budget"],
            None,
            "is not finished: stopped at --budget-usd",
        ),
        (&["s0", "t1"], None, "t1 is shard 1/3 but s0 is shard 0/2"),
        (
            &["s0", "b1"],
            None,
            "b1 ran another job file (b.jsonl) than s0 (a.jsonl)",
        ),
        (
            &["s0", "p1"],
            None,
            "p1 ran with other parameters than s0: max_tokens",
        ),
        (
            &["s0", "s1", "s1"],
            None,
            "shard 1/2 is given twice: s1 and s1",
        ),
        (&["s0"], None, "missing shard 1/2 of 2"),
        (
            &["s0", "s1"],
            Some("whole"),
            "whole already holds a run: merge into a new directory",
        ),
        (&["s0", "s1"], Some("s0"), "s0 already holds a run"),
    ];
    // Every row runs, into a directory of its own; the failures are reported together.
    let mut wrong = Vec::new();
    for (i, (dirs, out, says)) in cases.into_iter().enumerate() {
        let new_dir = format!("m{i}");
        let mut args = vec!["merge"];
        args.extend_from_slice(dirs);
        args.extend(["--out", out.unwrap_or(&new_dir)]);
        let output = bb(w, &args).await;
        let said = stderr(&output);
        if output.status.code() != Some(2) || !said.contains(says) || w.join(&new_dir).exists() {
            wrong.push(format!(
                "{args:?}: exit {:?}, expected {says:?} in: {said}",
                output.status.code()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The refusals are the only thing between those sets and a merge: the good set merges.
    let merged = bb(w, &["merge", "s0", "s1", "--out", "m"]).await;
    assert_eq!(merged.status.code(), Some(0), "{}", stderr(&merged));
    assert_eq!(read_lines(&w.join("m")).len(), 12);
}
