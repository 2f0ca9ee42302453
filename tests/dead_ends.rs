//! Every way out of a run works, walked end to end through the binary against the built-in
//! server: an interrupted `--local` batch run finishes when rerun; `--fresh` moves a batch
//! run's state aside; `report` skips a directory without a summary; `cancel` of a local or
//! finished run says there is nothing to cancel; the README's "finish now" command works as
//! copied; setup mistakes exit 2 before any run directory exists.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn records(n: usize, topic: &str) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"id": format!("r{i}"), "text": format!("{topic} {i}: short note {}.", i % 9)}))
        .collect()
}

/// Whether `run_dir`'s batch state holds a job that was created.
fn has_created_job(run_dir: &Path) -> bool {
    std::fs::read_to_string(run_dir.join("state/batch.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|state| state["parts"].as_array().cloned())
        .is_some_and(|parts| parts.iter().any(|p| p["job_arn"].is_string()))
}

/// Starts `command` and sends Ctrl-C once a job is created; returns the finished process.
async fn interrupt_after_create(
    command: tokio::process::Command,
    run_dir: &Path,
) -> std::process::Output {
    let mut running = Running::start(command);
    running
        .wait_until("a job to be created", |_| has_created_job(run_dir))
        .await;
    running.signal("INT");
    running.finish().await
}

#[tokio::test]
async fn an_interrupted_local_batch_run_finishes_and_fresh_leaves_nothing_behind() {
    let work = tempfile::tempdir().unwrap();
    // Enough records that the built-in server's job (5,000 records a second) outlives the
    // Ctrl-C sent as soon as it is created.
    let total = 20_000;
    let job = write_jsonl(work.path(), "job.jsonl", &records(total, "Note"));
    let run_dir = work.path().join("run");
    let out = run_dir.display().to_string();
    let args = [
        "run",
        &job,
        "--model",
        CLAUDE,
        "--out",
        &out,
        "--local",
        "--via",
        "batch",
        "--poll-secs",
        "0.2",
        "--max-tokens",
        "20",
    ];
    let first = interrupt_after_create(command(work.path(), &args), &run_dir).await;
    assert_eq!(first.status.code(), Some(130), "{}", stderr(&first));
    assert!(
        read_lines(&run_dir).len() < total,
        "the job outlived the interrupt"
    );

    // The printed way out: the same command. The jobs went with the first run's server.
    let again = bb(work.path(), &args).await;
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("are sent again"),
        "{}",
        stderr(&again)
    );
    let lines = read_lines(&run_dir);
    assert_eq!(lines.len(), total);
    let mut ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), total, "every record exactly once");
    assert!(lines.iter().all(|l| l["status"] == "ok"));

    // `cancel` of this (local, finished) run: nothing to cancel, no AWS.
    let cancel = bb(work.path(), &["cancel", &out]).await;
    assert_eq!(cancel.status.code(), Some(0), "{}", stderr(&cancel));
    assert!(
        stderr(&cancel).contains("nothing to cancel"),
        "{}",
        stderr(&cancel)
    );
    assert!(
        !stderr(&cancel).contains("DispatchFailure"),
        "{}",
        stderr(&cancel)
    );

    // --fresh with another job file: the earlier state goes aside whole, and the new run
    // collects only its own job's answers.
    let other = write_jsonl(work.path(), "other.jsonl", &records(150, "Other"));
    let fresh = bb(
        work.path(),
        &[
            "run",
            &other,
            "--model",
            CLAUDE,
            "--out",
            &out,
            "--local",
            "--via",
            "batch",
            "--poll-secs",
            "0.2",
            "--fresh",
        ],
    )
    .await;
    assert_eq!(fresh.status.code(), Some(0), "{}", stderr(&fresh));
    let lines = read_lines(&run_dir);
    assert_eq!(lines.len(), 150);
    assert!(
        lines
            .iter()
            .all(|l| l["output"].as_str().unwrap().contains("Other"))
    );
    let aside = previous_runs(&run_dir);
    assert_eq!(aside.len(), 1);
    for kept in [
        "results.jsonl",
        "state/batch.json",
        "state/checkpoint.json",
        "batch",
    ] {
        assert!(aside[0].join(kept).exists(), "{kept} moved aside");
    }
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("state/batch.json")).unwrap())
            .unwrap();
    assert_eq!(
        state["parts"].as_array().unwrap().len(),
        1,
        "only the new run's part"
    );
}

#[tokio::test]
async fn the_readme_finish_now_command_works_as_copied() {
    let work = tempfile::tempdir().unwrap();
    let job = write_jsonl(work.path(), "job.jsonl", &records(120, "Item"));
    let run_dir = work.path().join("nightly");
    let out = run_dir.display().to_string();
    let batch = [
        "run",
        &job,
        "--model",
        CLAUDE,
        "--out",
        &out,
        "--local",
        "--via",
        "batch",
        "--s3",
        "s3://bedrock-batch-local/bb",
        "--role-arn",
        "arn:aws:iam::123456789012:role/BedrockBatch",
        "--poll-secs",
        "0.2",
    ];
    // A flag of the on-demand route that changes nothing sent or paid is ignored with a
    // warning, not refused.
    let mut streamed = batch.to_vec();
    streamed.push("--stream");
    let first = bb(work.path(), &streamed).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("warning: --stream applies to on-demand calls"),
        "{}",
        stderr(&first)
    );
    // The previous command with `--retry-failed --via on-demand` appended: the last --via
    // counts, and the batch flags (--s3, --role-arn, --poll-secs) are ignored with one
    // warning line that names them.
    let mut finish = batch.to_vec();
    finish.extend(["--retry-failed", "--via", "on-demand"]);
    let finished = bb(work.path(), &finish).await;
    assert_eq!(finished.status.code(), Some(0), "{}", stderr(&finished));
    let said = stderr(&finished);
    let ignored: Vec<&str> = said.lines().filter(|l| l.contains("ignored")).collect();
    assert_eq!(
        ignored,
        [
            "warning: --s3, --role-arn and --poll-secs are for --via batch or auto: ignored by this on-demand run"
        ],
        "{said}"
    );
    assert_eq!(read_lines(&run_dir).len(), 120);
}

#[tokio::test]
async fn report_skips_a_directory_without_a_summary_with_one_warning() {
    let work = tempfile::tempdir().unwrap();
    let job = write_jsonl(work.path(), "job.jsonl", &records(5, "Day"));
    let good = work.path().join("runs/good");
    let out = good.display().to_string();
    let run = bb(
        work.path(),
        &["run", &job, "--model", CLAUDE, "--out", &out, "--local"],
    )
    .await;
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    // A directory left by a run refused before it started.
    std::fs::create_dir_all(work.path().join("runs/refused/state")).unwrap();
    let report = bb(
        work.path(),
        &[
            "report",
            "runs/good",
            "runs/refused",
            "--by",
            "day",
            "--format",
            "markdown",
        ],
    )
    .await;
    assert_eq!(report.status.code(), Some(0), "{}", stderr(&report));
    let warnings: Vec<String> = stderr(&report)
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .map(str::to_string)
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("runs/refused"), "{warnings:?}");
    let table = String::from_utf8_lossy(&report.stdout).to_string();
    assert!(table.contains(CLAUDE), "{table}");
    // Nothing readable at all is still an error.
    let none = bb(work.path(), &["report", "runs/refused"]).await;
    assert_eq!(none.status.code(), Some(2), "{}", stderr(&none));
}

#[tokio::test]
async fn setup_mistakes_exit_2_before_any_run_directory() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("tickets.csv"),
        "ticket_id,subject,body\n1,Login,Cannot log in\n2,Refund,Charged twice\n",
    )
    .unwrap();
    let cases: [(&[&str], &str); 4] = [
        // No --prompt-template: the default {text} names a column the file lacks.
        (&["tickets.csv"], "have: body, subject, ticket_id"),
        // A misspelt column.
        (
            &["tickets.csv", "--prompt-template", "{subjct}: {body}"],
            "uses {subjct}",
        ),
        (&["empty.jsonl"], "has no records"),
        (
            &["tickets.csv", "--prompt-template", "{body}", "--out-jobs"],
            "not a run directory",
        ),
    ];
    std::fs::write(work.path().join("empty.jsonl"), "").unwrap();
    std::fs::create_dir_all(work.path().join("jobs")).unwrap();
    std::fs::write(work.path().join("jobs/tickets.csv"), "x\n").unwrap();
    for (args, expected) in cases {
        let (out, args): (&str, Vec<&str>) = match args.last() {
            Some(&"--out-jobs") => ("jobs", args[..args.len() - 1].to_vec()),
            _ => ("fresh-run", args.to_vec()),
        };
        let mut full = vec!["run"];
        full.extend(args);
        full.extend(["--model", CLAUDE, "--local", "--out", out]);
        let output = bb(work.path(), &full).await;
        assert_eq!(
            output.status.code(),
            Some(2),
            "{full:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(expected),
            "{full:?}: {}",
            stderr(&output)
        );
        assert!(!work.path().join("fresh-run").exists(), "{full:?}");
        assert!(!work.path().join("jobs/state").exists(), "{full:?}");
    }
}

#[tokio::test]
async fn numbers_after_ctrl_c_and_before_any_call_are_true() {
    use bedrock_batch::local_server::ServerConfig;
    let work = tempfile::tempdir().unwrap();
    let total = 300;
    let job = write_jsonl(work.path(), "job.jsonl", &records(total, "Slow"));
    // Calls of 50 ms from a cold start: the run takes seconds, the interrupt lands midway.
    let server = server(ServerConfig {
        latency: Duration::from_millis(50),
        ..ServerConfig::default()
    })
    .await;
    let url = server.url();
    let run_dir = work.path().join("run");
    let out = run_dir.display().to_string();
    let args = [
        "run",
        &job,
        "--model",
        CLAUDE,
        "--out",
        &out,
        "--endpoint-url",
        &url,
    ];
    let stopped = run_interrupted(work.path(), &args, "INT", "a results line", |_| {
        !read_lines(&run_dir).is_empty()
    })
    .await;
    assert_eq!(stopped.status.code(), Some(130), "{}", stderr(&stopped));
    let summary = read_summary(&run_dir);
    let done = summary["records"]["total"].as_u64().unwrap();
    let left = summary["records"]["pending"].as_u64().unwrap();
    assert!(done > 0 && left > 0, "{summary}");
    assert_eq!(done + left, total as u64, "{summary}");
    let headline = format!("{done} of {total} records done ({left} left: rerun to resume)");
    assert!(stderr(&stopped).contains(&headline), "{}", stderr(&stopped));

    // `status` of a run that has sent nothing: nothing spent, not "unknown".
    let idle_dir = work.path().join("idle");
    let idle = idle_dir.display().to_string();
    let slow = server_with_latency(Duration::from_secs(30)).await;
    let slow_url = slow.url();
    let manifest = idle_dir.join("state/manifest.json");
    let _ = run_interrupted(
        work.path(),
        &[
            "run",
            &job,
            "--model",
            CLAUDE,
            "--out",
            &idle,
            "--endpoint-url",
            &slow_url,
            "--grace",
            "0",
        ],
        "INT",
        "the run's manifest",
        |_| manifest.exists(),
    )
    .await;
    let status = bb(work.path(), &["status", &idle]).await;
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    let text = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(text.contains("cost so far: $0.0000"), "{text}");
}

async fn server_with_latency(latency: Duration) -> bedrock_batch::local_server::LocalServer {
    server(bedrock_batch::local_server::ServerConfig {
        latency,
        ..bedrock_batch::local_server::ServerConfig::default()
    })
    .await
}

#[tokio::test]
async fn a_csv_column_can_be_the_id_and_a_shard_mismatch_reads_as_flags() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("tickets.csv"),
        "ticket_id,body\nT-100,Cannot log in\nT-200,Charged twice\n",
    )
    .unwrap();
    let run = run_fresh(
        work.path(),
        &[
            "tickets.csv",
            "--model",
            CLAUDE,
            "--local",
            "--prompt-template",
            "{body}",
            "--id-field",
            "ticket_id",
        ],
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let ids: std::collections::BTreeSet<String> = run.by_id().into_keys().collect();
    assert_eq!(ids, ["T-100".to_string(), "T-200".to_string()].into());

    let out = run.dir.display().to_string();
    let shard = bb(
        work.path(),
        &[
            "run",
            "tickets.csv",
            "--model",
            CLAUDE,
            "--local",
            "--prompt-template",
            "{body}",
            "--id-field",
            "ticket_id",
            "--out",
            &out,
            "--shard",
            "1/4",
        ],
    )
    .await;
    assert_eq!(shard.status.code(), Some(2), "{}", stderr(&shard));
    assert!(
        stderr(&shard).contains("shard: now --shard 1/4, was none"),
        "{}",
        stderr(&shard)
    );
}

#[tokio::test]
async fn a_create_answered_conflict_attaches_to_the_job_already_made() {
    use bedrock_batch::local_server::ServerConfig;
    let work = tempfile::tempdir().unwrap();
    let job = write_jsonl(work.path(), "job.jsonl", &records(120, "Late"));
    let s3_dir = work.path().join("s3");
    let server = server(ServerConfig {
        s3_dir: Some(s3_dir.clone()),
        s3_buckets: vec!["jobs".into()],
        batch_step: Duration::from_millis(400),
        ..ServerConfig::default()
    })
    .await;
    let (url, s3_url) = (server.url(), server.s3_url());
    let run_dir = work.path().join("run");
    let out = run_dir.display().to_string();
    let args = [
        "run",
        &job,
        "--model",
        CLAUDE,
        "--out",
        &out,
        "--endpoint-url",
        &url,
        "--s3-endpoint-url",
        &s3_url,
        "--s3",
        "s3://jobs/bb",
        "--role-arn",
        "arn:aws:iam::123456789012:role/BedrockBatch",
        "--via",
        "batch",
        "--poll-secs",
        "0.2",
    ];
    let mut first = command(work.path(), &args);
    local_keys(&mut first);
    let stopped = interrupt_after_create(first, &run_dir).await;
    assert_eq!(stopped.status.code(), Some(130), "{}", stderr(&stopped));

    // The crash window between create and save, days later: the state has no job, the
    // part file is still there, and the service no longer remembers the request token.
    let state_path = run_dir.join("state/batch.json");
    let mut state: Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    state["parts"][0]["job_arn"] = Value::Null;
    state["parts"][0]["status"] = json!("Prepared");
    std::fs::write(&state_path, state.to_string()).unwrap();
    let input = files_under(&s3_dir)
        .into_iter()
        .find(|path| {
            path.display()
                .to_string()
                .ends_with("/input/part-00001.jsonl")
        })
        .expect("the part is in S3");
    std::fs::copy(&input, run_dir.join("batch/part-00001.jsonl")).unwrap();
    server.forget_batch_tokens();

    let mut again = command(work.path(), &args);
    local_keys(&mut again);
    let finished = again.output().await.unwrap();
    assert_eq!(finished.status.code(), Some(0), "{}", stderr(&finished));
    let lines = read_lines(&run_dir);
    assert_eq!(lines.len(), 120);
    assert!(lines.iter().all(|l| l["status"] == "ok"));
    let batch = server.stats().batch;
    assert_eq!(batch.jobs_created, 1, "attached, no second job");
    assert_eq!(batch.create_calls, 2);
}

#[tokio::test]
async fn a_job_the_service_model_refuses_is_refused_before_its_upload() {
    use bedrock_batch::local_server::ServerConfig;
    let work = tempfile::tempdir().unwrap();
    let job = write_jsonl(work.path(), "job.jsonl", &records(120, "Bad"));
    let s3_dir = work.path().join("s3");
    let server = server(ServerConfig {
        s3_dir: Some(s3_dir.clone()),
        s3_buckets: vec!["jobs".into()],
        ..ServerConfig::default()
    })
    .await;
    let (url, s3_url) = (server.url(), server.s3_url());
    let out = work.path().join("run").display().to_string();
    // A model id with a character the CreateModelInvocationJob model's ModelId pattern
    // refuses (the runtime's pattern would let it through to the service).
    let model = format!("{CLAUDE}:bad!");
    let mut run = command(
        work.path(),
        &[
            "run",
            &job,
            "--model",
            &model,
            "--out",
            &out,
            "--endpoint-url",
            &url,
            "--s3-endpoint-url",
            &s3_url,
            "--s3",
            "s3://jobs/bb",
            "--role-arn",
            "arn:aws:iam::123456789012:role/BedrockBatch",
            "--via",
            "batch",
        ],
    );
    local_keys(&mut run);
    let output = run.output().await.unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{err}");
    assert!(
        err.contains("Bedrock would refuse the Batch Inference job")
            && err.contains(&format!(
                "Value '{model}' at 'modelId' failed to satisfy constraint"
            )),
        "{err}"
    );
    assert!(
        files_under(&s3_dir).is_empty(),
        "nothing uploaded: {:?}",
        files_under(&s3_dir)
    );
    assert_eq!(server.stats().batch.create_calls, 0);
}
