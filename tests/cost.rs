//! Cost end to end: prices in summary.json, inference profiles priced as their base model,
//! unknown prices as null with a warning, --prices overrides, --budget-usd, the dry-run
//! estimate against the real run, and `report` totals against the runs' summaries.

mod common;

use std::path::Path;

use bedrock_batch::local_server::ServerConfig;
use common::*;
use serde_json::{Value, json};

fn summary(work: &Path, dir: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(work.join(dir).join("summary.json")).unwrap())
        .unwrap()
}

fn write_job(work: &Path, name: &str, n: usize) -> String {
    let records: Vec<Value> = (0..n)
        .map(|i| json!({"id": i, "text": format!("Record {i} describes a shipment. It arrived late.")}))
        .collect();
    write_jsonl(work, name, &records)
}

fn usage_cost(summary: &Value, input_price: f64, output_price: f64) -> f64 {
    (summary["usage"]["input_tokens"].as_f64().unwrap() * input_price
        + summary["usage"]["output_tokens"].as_f64().unwrap() * output_price)
        / 1e6
}

#[tokio::test]
async fn inference_profiles_are_priced_as_their_base_model() {
    let work = tempfile::tempdir().unwrap();
    let job = write_job(work.path(), "job.jsonl", 10);
    let profile = format!("us.{CLAUDE}");
    let out = bb(
        work.path(),
        &[
            "run", &job, "--model", &profile, "--local", "--out", "run", "--quiet",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = summary(work.path(), "run");
    let expected = usage_cost(&s, 0.25, 1.25);
    assert!(
        (s["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-6,
        "{s}"
    );
    assert!((s["by_model"][&profile]["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-6);
}

#[tokio::test]
async fn unknown_prices_are_null_with_a_warning() {
    let work = tempfile::tempdir().unwrap();
    let job = write_job(work.path(), "job.jsonl", 3);
    let model = "qwen.qwen3-32b-v1:0";
    let out = bb(
        work.path(),
        &["run", &job, "--model", model, "--local", "--out", "run"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("no price known for {model}")),
        "{err}"
    );
    assert!(
        err.contains("cost: unknown: no price for qwen.qwen3-32b-v1:0"),
        "{err}"
    );
    let s = summary(work.path(), "run");
    assert_eq!(s["cost_usd"], Value::Null);
    assert_eq!(s["by_model"][model]["cost_usd"], Value::Null);
    assert_eq!(s["unpriced_models"], json!([model]));
}

#[tokio::test]
async fn prices_file_overrides_the_built_in_table() {
    let work = tempfile::tempdir().unwrap();
    let job = write_job(work.path(), "job.jsonl", 5);
    std::fs::write(
        work.path().join("prices.toml"),
        format!("[models.\"{CLAUDE}\"]\ninput = 100.0\noutput = 200.0\n"),
    )
    .unwrap();
    let out = bb(
        work.path(),
        &[
            "run",
            &job,
            "--model",
            CLAUDE,
            "--local",
            "--out",
            "run",
            "--quiet",
            "--prices",
            "prices.toml",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = summary(work.path(), "run");
    let expected = usage_cost(&s, 100.0, 200.0);
    assert!(
        (s["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-6,
        "{s} vs {expected}"
    );
}

#[tokio::test]
async fn budget_stops_with_exit_4_and_a_rerun_continues() {
    let work = tempfile::tempdir().unwrap();
    let job = write_job(work.path(), "job.jsonl", 60);
    // $1,000 per million tokens: a record of ~13 input tokens and ~12 output costs ~$0.025;
    // its worst case with --max-tokens 20 is ~$0.033.
    std::fs::write(
        work.path().join("prices.json"),
        format!(r#"{{"models": {{"{CLAUDE}": {{"input": 1000, "output": 1000}}}}}}"#),
    )
    .unwrap();
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
        "--prices",
        "prices.json",
        "--max-tokens",
        "20",
    ];
    let mut first = args.to_vec();
    first.extend(["--budget-usd", "0.5"]);
    let out = bb(work.path(), &first).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let s = summary(work.path(), "run");
    let spent = s["cost_usd"].as_f64().unwrap();
    assert!(spent <= 0.5, "spent {spent} of a $0.50 budget");
    assert!(spent > 0.3, "stopped well before the budget: {spent}");
    assert!(s["records"]["total"].as_u64().unwrap() < 60);
    assert_eq!(s["budget"]["limit_usd"], 0.5);
    assert_eq!(
        s["records"]["pending"].as_u64().unwrap(),
        60 - s["records"]["total"].as_u64().unwrap()
    );
    let sent = server.stats().requests;

    let rerun = bb(work.path(), &args).await;
    assert_eq!(rerun.status.code(), Some(0), "{}", stderr(&rerun));
    let s = summary(work.path(), "run");
    assert_eq!(s["records"]["total"], 60);
    assert_eq!(
        server.stats().requests,
        60,
        "the rerun sent only the {} pending records",
        60 - sent
    );
}

#[tokio::test]
async fn dry_run_estimate_matches_the_real_run() {
    let work = tempfile::tempdir().unwrap();
    let job = write_job(work.path(), "job.jsonl", 50);
    let common = [
        "--model",
        CLAUDE,
        "--system",
        "Summarize in one sentence.",
        "--max-tokens",
        "100",
    ];
    let mut dry = vec![
        "run",
        job.as_str(),
        "--out",
        "dry",
        "--local",
        "--dry-run",
        "--json",
    ];
    dry.extend(common);
    let out = bb(work.path(), &dry).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let estimate: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut real = vec!["run", job.as_str(), "--out", "real", "--local", "--quiet"];
    real.extend(common);
    assert_eq!(bb(work.path(), &real).await.status.code(), Some(0));
    let s = summary(work.path(), "real");
    // Stated tolerance: the input estimate within 5% of what the run was billed; the cost
    // ceiling never below the real cost.
    let estimated_input = estimate["input_cost_usd"].as_f64().unwrap();
    let real_input = usage_cost(&s, 0.25, 0.0);
    assert!(
        (estimated_input - real_input).abs() <= 0.05 * real_input,
        "{estimated_input} vs {real_input}"
    );
    assert!(estimate["cost_ceiling_usd"].as_f64().unwrap() >= s["cost_usd"].as_f64().unwrap());
    assert_eq!(
        estimate["estimated_input_tokens"],
        s["usage"]["input_tokens"]
    );
}

#[tokio::test]
async fn report_totals_equal_the_sum_of_the_runs() {
    let work = tempfile::tempdir().unwrap();
    let a = write_job(work.path(), "a.jsonl", 12);
    let b = write_job(work.path(), "b.jsonl", 7);
    assert_eq!(
        bb(
            work.path(),
            &[
                "run", &a, "--model", CLAUDE, "--local", "--out", "runs/a", "--quiet"
            ]
        )
        .await
        .status
        .code(),
        Some(0)
    );
    assert_eq!(
        bb(
            work.path(),
            &[
                "run", &b, "--model", CLAUDE, "--local", "--out", "runs/b", "--quiet"
            ]
        )
        .await
        .status
        .code(),
        Some(0)
    );
    assert_eq!(
        bb(
            work.path(),
            &[
                "run",
                &b,
                "--model",
                "amazon.titan-embed-text-v2:0",
                "--local",
                "--out",
                "runs/c",
                "--quiet"
            ]
        )
        .await
        .status
        .code(),
        Some(0)
    );
    let out = bb(
        work.path(),
        &["report", "runs/a", "runs/b", "runs/c", "--format", "json"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let total = rows.last().unwrap();
    assert_eq!(total["model"], "total");
    let summaries: Vec<Value> = ["runs/a", "runs/b", "runs/c"]
        .iter()
        .map(|d| summary(work.path(), d))
        .collect();
    for field in ["input_tokens", "output_tokens"] {
        let sum: u64 = summaries
            .iter()
            .map(|s| s["usage"][field].as_u64().unwrap())
            .sum();
        assert_eq!(total[field].as_u64().unwrap(), sum, "{field}");
    }
    let records: u64 = summaries
        .iter()
        .map(|s| s["records"]["total"].as_u64().unwrap())
        .sum();
    assert_eq!(total["records"].as_u64().unwrap(), records);
    let cost: f64 = summaries
        .iter()
        .map(|s| s["cost_usd"].as_f64().unwrap())
        .sum();
    assert!((total["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-6);
    let claude = rows.iter().find(|r| r["model"] == CLAUDE).unwrap();
    assert_eq!(claude["runs"], 2);
    assert_eq!(claude["records"], 19);

    let md = bb(
        work.path(),
        &[
            "report", "runs/a", "runs/b", "--by", "day", "--format", "markdown",
        ],
    )
    .await;
    let text = String::from_utf8_lossy(&md.stdout);
    assert!(text.starts_with("| day | model |"), "{text}");
    let missing = bb(work.path(), &["report", "runs/nope"]).await;
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("runs/nope"),
        "{}",
        stderr(&missing)
    );
    let since = bb(
        work.path(),
        &[
            "report",
            "runs/a",
            "--since",
            "2999-01-01",
            "--format",
            "json",
        ],
    )
    .await;
    let rows: Vec<Value> = serde_json::from_slice(&since.stdout).unwrap();
    assert_eq!(rows.last().unwrap()["runs"], 0);
}
