//! Cost end to end: prices in summary.json, inference profiles priced as their base model,
//! unknown prices as null with a warning, --prices overrides, --budget-usd, the dry-run
//! estimate against the real run, and `report` totals against the runs' summaries. Every
//! id form (profiles, ARNs, new versions) costs what a hand computation from its result
//! lines says, and a long request is billed at the long-context rate on its own.

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
    let model = "ai21.jamba-1-5-mini-v1:0";
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
        err.contains("cost: unknown: no price for ai21.jamba-1-5-mini-v1:0"),
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

/// USD per million input and output tokens, and the variant summary.json files them under.
struct Expected {
    model: &'static str,
    input: f64,
    output: f64,
    variant: &'static str,
}

/// The cost of a run's lines by hand: each line's tokens at `rate(line)`.
fn hand_cost(lines: &[Value], rate: impl Fn(&Value) -> (f64, f64)) -> f64 {
    lines
        .iter()
        .map(|line| {
            let (input, output) = rate(line);
            (line["usage"]["input_tokens"].as_f64().unwrap() * input
                + line["usage"]["output_tokens"].as_f64().unwrap() * output)
                / 1e6
        })
        .sum()
}

#[tokio::test]
async fn every_id_form_costs_its_hand_computation_and_report_agrees() {
    let work = tempfile::tempdir().unwrap();
    let job = write_job(work.path(), "job.jsonl", 6);
    let cases = [
        Expected {
            model: CLAUDE,
            input: 0.25,
            output: 1.25,
            variant: "on_demand",
        },
        // Sonnet 4.5: 3 / 15 through global., 10% more through us.
        Expected {
            model: "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            input: 3.0,
            output: 15.0,
            variant: "on_demand+global",
        },
        Expected {
            model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            input: 3.30,
            output: 16.50,
            variant: "on_demand+regional",
        },
        Expected {
            model: "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0",
            input: 1.10,
            output: 5.50,
            variant: "on_demand+regional",
        },
        // Opus 4.5 is not Opus 4 ($15 / $75).
        Expected {
            model: "global.anthropic.claude-opus-4-5-20251101-v1:0",
            input: 5.0,
            output: 25.0,
            variant: "on_demand+global",
        },
        Expected {
            // Bedrock serves Opus 4.1 through its US profile only.
            model: "us.anthropic.claude-opus-4-1-20250805-v1:0",
            input: 15.0,
            output: 75.0,
            variant: "on_demand",
        },
        Expected {
            // Bedrock serves Llama 4 Scout through its US profile only.
            model: "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama4-scout-17b-instruct-v1:0",
            input: 0.17,
            output: 0.66,
            variant: "on_demand",
        },
        Expected {
            model: "openai.gpt-oss-20b-1:0",
            input: 0.07,
            output: 0.30,
            variant: "on_demand",
        },
        // Nova 2 Lite: 10% more outside global. (0.33 / 2.75 against 0.30 / 2.50).
        Expected {
            model: "us.amazon.nova-2-lite-v1:0",
            input: 0.33,
            output: 2.75,
            variant: "on_demand+regional",
        },
    ];
    let mut dirs = Vec::new();
    let mut by_hand = 0.0;
    for (i, case) in cases.iter().enumerate() {
        let dir = format!("runs/{i}");
        let out = bb(
            work.path(),
            &[
                "run", &job, "--model", case.model, "--local", "--out", &dir, "--quiet",
            ],
        )
        .await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            case.model,
            stderr(&out)
        );
        let lines = read_lines(&work.path().join(&dir));
        let expected = hand_cost(&lines, |_| (case.input, case.output));
        assert!(expected > 0.0);
        let s = summary(work.path(), &dir);
        let cost = s["cost_usd"].as_f64().unwrap();
        assert!(
            (cost - expected).abs() < 1e-6,
            "{}: {cost} vs {expected}",
            case.model
        );
        let by_model = &s["by_model"][case.model];
        assert!((by_model["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-9);
        let variants = by_model["cost_by_variant"].as_object().unwrap();
        assert_eq!(variants.len(), 1, "{}: {variants:?}", case.model);
        let variant = &variants[case.variant];
        assert_eq!(variant["records"], 6);
        assert_eq!(variant["usage"], s["usage"]);
        assert!((variant["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-9);
        by_hand += expected;
        dirs.push(dir);
    }

    let mut args = vec!["report"];
    args.extend(dirs.iter().map(String::as_str));
    args.extend(["--format", "json"]);
    let out = bb(work.path(), &args).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let total = rows.last().unwrap();
    assert!(
        (total["cost_usd"].as_f64().unwrap() - by_hand).abs() < 1e-5,
        "{total} vs {by_hand}"
    );
    for (case, dir) in cases.iter().zip(&dirs) {
        let row = rows.iter().find(|r| r["model"] == case.model).unwrap();
        let cost = summary(work.path(), dir)["cost_usd"].as_f64().unwrap();
        assert!((row["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-6);
    }
}

#[tokio::test]
async fn a_long_request_is_billed_at_the_long_context_rate_on_its_own() {
    let work = tempfile::tempdir().unwrap();
    // Four characters a token on the local server: about 250k input tokens.
    let long = "Shipments arrived late again. ".repeat(33_400);
    let job = write_jsonl(
        work.path(),
        "job.jsonl",
        &[
            json!({"id": "short-1", "text": "A short ticket about a late parcel."}),
            json!({"id": "long", "text": long}),
            json!({"id": "short-2", "text": "Another short ticket."}),
        ],
    );
    // Bedrock serves Sonnet 4 through inference profiles only.
    let model = "us.anthropic.claude-sonnet-4-20250514-v1:0";
    let out = bb(
        work.path(),
        &[
            "run", &job, "--model", model, "--local", "--out", "run", "--quiet",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines = read_lines(&work.path().join("run"));
    let is_long = |line: &Value| line["usage"]["input_tokens"].as_u64().unwrap() > 200_000;
    assert_eq!(lines.iter().filter(|l| is_long(l)).count(), 1, "{lines:?}");
    let expected = hand_cost(&lines, |line| {
        if is_long(line) {
            (6.0, 22.5)
        } else {
            (3.0, 15.0)
        }
    });
    let s = summary(work.path(), "run");
    let cost = s["cost_usd"].as_f64().unwrap();
    assert!((cost - expected).abs() < 1e-6, "{cost} vs {expected}");
    // Not what the standard rate on the totals would say.
    assert!(cost > usage_cost(&s, 3.0, 15.0) * 1.5);
    let variants = &s["by_model"][model]["cost_by_variant"];
    assert_eq!(variants["on_demand"]["records"], 2);
    assert_eq!(variants["on_demand+long_context"]["records"], 1);

    // `prices` says the same before a run.
    let out = bb(work.path(), &["prices", model, "--format", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["entry"], "anthropic.claude-sonnet-4");
    assert_eq!(
        listed[0]["variants"][1]["variant"],
        "on_demand+long_context"
    );
    assert_eq!(listed[0]["variants"][1]["above_input_tokens"], 200_000);
    assert_eq!(listed[0]["variants"][1]["input"], 6.0);
    let unknown = bb(work.path(), &["prices", "anthropic.claude-opus-4-9-v1:0"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stdout).contains("no price"));
}
