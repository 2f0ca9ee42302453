//! Bedrock as users meet it today, end to end through the binary and the real SDK against
//! the local server: Batch Inference for a model the price table lacks (cost unknown, one
//! warning), the 2026 Claude prices global and regional, service tiers (sent, reported,
//! priced), native structured output on demand and in batch jobs, exact input tokens from
//! CountTokens in a dry run, and LiteLLM's and genai-prices' price files pricing a run.

mod common;

use bedrock_batch::local_server::ServerConfig;
use common::*;
use serde_json::{Value, json};

const SONNET_4_6: &str = "anthropic.claude-sonnet-4-6";
const OPUS_4_6: &str = "anthropic.claude-opus-4-6-v1";
/// Sonnet 4.6 as us-east-1 (where `--local` signs) serves it: through its US profile.
const US_SONNET_4_6: &str = "us.anthropic.claude-sonnet-4-6";
const GPT_OSS: &str = "openai.gpt-oss-120b-1:0";

fn records(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"id": format!("r{i}"), "text": format!("Review {i}: the kettle {} boils fast but the lid {} rattles on week {}.", i % 13, i % 7, i % 4)})
        })
        .collect()
}

/// What `usage` costs at `input` / `output` / `cache_read` / `cache_write` USD per million.
fn hand_cost(lines: &[Value], rates: [f64; 4]) -> f64 {
    lines
        .iter()
        .map(|line| {
            let u = &line["usage"];
            let n = |key: &str| u[key].as_u64().unwrap() as f64;
            (n("input_tokens") * rates[0]
                + n("output_tokens") * rates[1]
                + n("cache_read_input_tokens") * rates[2]
                + n("cache_write_input_tokens") * rates[3])
                / 1e6
        })
        .sum()
}

/// Equal to summary.json's rounding (a millionth of a dollar).
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1.0e-6
}

#[tokio::test]
async fn batch_runs_a_model_the_price_table_lacks_with_one_warning() {
    let work = tempfile::tempdir().unwrap();
    let job = write_jsonl(work.path(), "job.jsonl", &records(120));
    // A model Bedrock serves (the local server knows it) that neither the price table nor
    // the catalogue knows: it is tried, and the service decides.
    let model = "us.writer.palmyra-x4-v1:0";
    assert_eq!(
        bedrock_batch::rules::catalogue::batch(model),
        bedrock_batch::rules::catalogue::Offer::Unknown
    );
    let run = run_fresh(
        work.path(),
        &[
            &job,
            "--model",
            model,
            "--local",
            "--via",
            "batch",
            "--poll-secs",
            "0.2",
            "--max-tokens",
            "40",
        ],
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let lines = run.lines();
    assert_eq!(lines.len(), 120);
    assert!(
        lines
            .iter()
            .all(|l| l["status"] == "ok" && l["via"] == "batch")
    );
    let summary = run.summary();
    assert_eq!(summary["cost_usd"], Value::Null);
    assert_eq!(summary["unpriced_models"], json!([model]));
    let stderr = run.stderr();
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning: ") && l.contains(model))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("Batch Inference price"), "{stderr}");
    assert!(!stderr.contains("WARN"), "{stderr}");
}

#[tokio::test]
async fn a_model_the_catalogue_says_has_no_batch_is_refused_before_anything_is_sent() {
    let work = tempfile::tempdir().unwrap();
    let job = write_jsonl(work.path(), "job.jsonl", &records(120));
    let run = run_fresh(
        work.path(),
        &[&job, "--model", COHERE, "--local", "--via", "batch"],
    )
    .await;
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(
        run.stderr()
            .contains("does not offer Bedrock Batch Inference"),
        "{}",
        run.stderr()
    );
    assert!(!run.dir.join("results.jsonl").exists());
}

#[tokio::test]
async fn claude_4_6_costs_its_hand_computation_global_and_regional() {
    let work = tempfile::tempdir().unwrap();
    let job = write_jsonl(work.path(), "job.jsonl", &records(12));
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    for (model, rates) in [
        (format!("global.{SONNET_4_6}"), [3.0, 15.0, 0.30, 3.75]),
        (format!("us.{SONNET_4_6}"), [3.30, 16.50, 0.33, 4.125]),
        (format!("global.{OPUS_4_6}"), [5.0, 25.0, 0.50, 6.25]),
        // us-east-1 serves Opus 4.6 through profiles only; a geographic one costs the
        // regional rate, as an in-region id would.
        (format!("us.{OPUS_4_6}"), [5.50, 27.50, 0.55, 6.875]),
    ] {
        let run = run_fresh(
            work.path(),
            &[&job, "--model", &model, "--endpoint-url", &url],
        )
        .await;
        assert_eq!(run.code(), 0, "{model}: {}", run.stderr());
        let cost = run.summary()["cost_usd"].as_f64().unwrap();
        let expected = hand_cost(&run.lines(), rates);
        assert!(expected > 0.0);
        assert!(close(cost, expected), "{model}: {cost} != {expected}");
        assert!(!run.stderr().contains("warning:"), "{}", run.stderr());
    }
}

#[tokio::test]
async fn flex_is_sent_carried_on_every_line_and_priced_at_the_flex_rate() {
    let work = tempfile::tempdir().unwrap();
    let mut job = records(10);
    // A record may ask for its own tier.
    job[3]["service_tier"] = json!("priority");
    let job = write_jsonl(work.path(), "job.jsonl", &job);
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    let run = run_fresh(
        work.path(),
        &[
            &job,
            "--model",
            GPT_OSS,
            "--endpoint-url",
            &url,
            "--service-tier",
            "flex",
        ],
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let lines = run.by_id();
    for (id, line) in &lines {
        let tier = if id == "r3" { "priority" } else { "flex" };
        assert_eq!(line["service_tier"], tier, "{line}");
    }
    let flex: Vec<Value> = lines
        .iter()
        .filter(|(id, _)| *id != "r3")
        .map(|(_, l)| l.clone())
        .collect();
    let priority = vec![lines["r3"].clone()];
    let expected =
        hand_cost(&flex, [0.075, 0.30, 0.0, 0.0]) + hand_cost(&priority, [0.2625, 1.05, 0.0, 0.0]);
    let summary = run.summary();
    let cost = summary["cost_usd"].as_f64().unwrap();
    assert!(close(cost, expected), "{cost} != {expected}");
    assert_eq!(summary["by_tier"]["flex"]["records"], 9, "{summary}");
    assert_eq!(summary["by_tier"]["priority"]["records"], 1, "{summary}");
    // The server saw the tiers the lines say.
    let stats = server.stats();
    let seen = serde_json::to_value(&stats).unwrap();
    assert_eq!(seen["by_tier"]["flex"]["ok"], 9, "{seen}");
    assert_eq!(seen["by_tier"]["priority"]["ok"], 1, "{seen}");

    // `report --by tier` groups the same lines.
    let dir = run.dir.display().to_string();
    let report = bb(
        work.path(),
        &["report", &dir, "--by", "tier", "--format", "json"],
    )
    .await;
    assert_eq!(report.status.code(), Some(0), "{}", stderr(&report));
    let rows: Value = serde_json::from_slice(&report.stdout).unwrap();
    let flex_row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"] == "flex")
        .unwrap_or_else(|| panic!("{rows}"));
    assert_eq!(flex_row["records"], 9);
}

#[tokio::test]
async fn a_tier_with_batch_is_refused_and_a_tier_the_model_lacks_fails_its_records() {
    let work = tempfile::tempdir().unwrap();
    let job = write_jsonl(work.path(), "job.jsonl", &records(4));
    let refused = run_fresh(
        work.path(),
        &[
            &job,
            "--model",
            GPT_OSS,
            "--local",
            "--via",
            "batch",
            "--service-tier",
            "flex",
        ],
    )
    .await;
    assert_eq!(refused.code(), 2, "{}", refused.stderr());
    assert!(
        refused.stderr().contains("not a service tier"),
        "{}",
        refused.stderr()
    );
    // A record's own tier too, named by its line, before anything is uploaded.
    let mut tiered = records(120);
    tiered[57]["service_tier"] = json!("flex");
    let tiered = write_jsonl(work.path(), "tiered.jsonl", &tiered);
    let refused = run_fresh(
        work.path(),
        &[&tiered, "--model", GPT_OSS, "--local", "--via", "batch"],
    )
    .await;
    assert_eq!(refused.code(), 2, "{}", refused.stderr());
    assert!(
        refused.stderr().contains("tiered.jsonl line 58"),
        "{}",
        refused.stderr()
    );
    assert!(!refused.dir.join("batch").exists());

    // Claude offers no flex tier: refused before any call (AWS would answer every call
    // ValidationException) ...
    let lacking = run_fresh(
        work.path(),
        &[
            &job,
            "--model",
            US_SONNET_4_6,
            "--local",
            "--service-tier",
            "flex",
        ],
    )
    .await;
    assert_eq!(lacking.code(), 2, "{}", lacking.stderr());
    assert!(
        lacking
            .stderr()
            .contains("not offered in the flex service tier"),
        "{}",
        lacking.stderr()
    );
    // ... and a record asking for it anyway gets AWS's answer: a bad request, not retried.
    let mut asking = records(4);
    asking[1]["service_tier"] = json!("flex");
    let asking = write_jsonl(work.path(), "asking.jsonl", &asking);
    let run = run_fresh(work.path(), &[&asking, "--model", US_SONNET_4_6, "--local"]).await;
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let lines = run.by_id();
    assert_eq!(
        lines["r1"]["error"]["kind"], "validation",
        "{}",
        lines["r1"]
    );
    assert_eq!(lines["r1"]["attempts"], 1);
    assert!(
        lines["r1"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("service tier"),
        "{}",
        lines["r1"]
    );
    for id in ["r0", "r2", "r3"] {
        assert_eq!(lines[id]["status"], "ok", "{}", lines[id]);
    }
}

fn tickets_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "category": {"type": "string", "enum": ["billing", "bug", "question"]},
            "summary": {"type": "string"},
            "needs_human": {"type": "boolean"}
        },
        "required": ["category", "summary", "needs_human"],
        "additionalProperties": false
    })
}

#[tokio::test]
async fn schema_goes_native_on_demand_for_a_model_that_offers_it() {
    let work = tempfile::tempdir().unwrap();
    let job = write_jsonl(work.path(), "job.jsonl", &records(8));
    std::fs::write(
        work.path().join("schema.json"),
        tickets_schema().to_string(),
    )
    .unwrap();
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    let run = run_fresh(
        work.path(),
        &[
            &job,
            "--model",
            US_SONNET_4_6,
            "--endpoint-url",
            &url,
            "--schema",
            "schema.json",
        ],
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let validator = jsonschema::validator_for(&tickets_schema()).unwrap();
    assert_eq!(run.lines().len(), 8, "every record has its line");
    for line in run.lines() {
        assert!(validator.is_valid(&line["data"]), "{line}");
        // A native answer ends its turn; a forced tool would stop for `tool_use`.
        assert_eq!(line["stop_reason"], "end_turn", "{line}");
    }
    // (The server answers a forced tool with a tool call even next to outputConfig: an
    // `end_turn` answer means no toolConfig went with it.)
    // The forced tool where asked for: the same data, through a tool.
    let tool = run_fresh(
        work.path(),
        &[
            &job,
            "--model",
            US_SONNET_4_6,
            "--endpoint-url",
            &url,
            "--schema",
            "schema.json",
            "--schema-mode",
            "tool",
        ],
    )
    .await;
    assert_eq!(tool.code(), 0, "{}", tool.stderr());
    assert_eq!(tool.lines().len(), 8, "every record has its line");
    assert!(tool.lines().iter().all(|l| l["stop_reason"] == "tool_use"));
    for line in tool.lines() {
        assert!(validator.is_valid(&line["data"]), "{line}");
    }
}

#[tokio::test]
async fn schema_via_batch_sends_no_tool_and_every_record_has_valid_data() {
    let work = tempfile::tempdir().unwrap();
    let job = write_jsonl(work.path(), "job.jsonl", &records(110));
    std::fs::write(
        work.path().join("schema.json"),
        tickets_schema().to_string(),
    )
    .unwrap();
    // A server whose S3 keeps its objects in a folder of ours, to read what was uploaded.
    let s3_dir = work.path().join("s3");
    let server = server(ServerConfig {
        s3_dir: Some(s3_dir.clone()),
        s3_buckets: vec!["uploads".into()],
        batch_step: std::time::Duration::from_millis(100),
        ..ServerConfig::default()
    })
    .await;
    let (url, s3_url) = (server.url(), server.s3_url());
    let model = format!("us.{SONNET_4_6}");
    let run = run_fresh_with(
        work.path(),
        &[
            &job,
            "--model",
            &model,
            "--endpoint-url",
            &url,
            "--s3-endpoint-url",
            &s3_url,
            "--s3",
            "s3://uploads/jobs",
            "--role-arn",
            "arn:aws:iam::123456789012:role/BedrockBatch",
            "--via",
            "batch",
            "--poll-secs",
            "0.2",
            "--schema",
            "schema.json",
        ],
        local_keys,
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let validator = jsonschema::validator_for(&tickets_schema()).unwrap();
    let lines = run.lines();
    assert_eq!(lines.len(), 110);
    for line in &lines {
        assert_eq!(line["via"], "batch", "{line}");
        assert!(validator.is_valid(&line["data"]), "{line}");
    }
    // What was uploaded: every record a Converse body with outputConfig, none with a tool.
    let mut uploaded = 0;
    for path in files_under(&s3_dir) {
        let name = path.display().to_string();
        if !(name.contains("/input/") && name.ends_with(".jsonl")) {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let record: Value = serde_json::from_str(line).unwrap();
            let input = &record["modelInput"];
            assert!(input.get("toolConfig").is_none(), "{line}");
            assert_eq!(input["outputConfig"]["textFormat"]["type"], "json_schema");
            uploaded += 1;
        }
    }
    assert_eq!(uploaded, 110);

    // A model without native structured output cannot carry a schema through batch: exit
    // 2 before anything is uploaded.
    let refused = run_fresh(
        work.path(),
        &[
            &job,
            "--model",
            CLAUDE,
            "--local",
            "--via",
            "batch",
            "--schema",
            "schema.json",
        ],
    )
    .await;
    assert_eq!(refused.code(), 2, "{}", refused.stderr());
    assert!(
        refused.stderr().contains("toolConfig"),
        "{}",
        refused.stderr()
    );
    assert!(!refused.dir.join("batch").exists());
}

#[tokio::test]
async fn dry_run_count_tokens_equals_what_the_server_bills() {
    let work = tempfile::tempdir().unwrap();
    let mut job = records(9);
    job[2]["system"] = json!("Answer in French, in one sentence.");
    let job = write_jsonl(work.path(), "job.jsonl", &job);
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    let dry = run_fresh(
        work.path(),
        &[
            &job,
            "--model",
            US_SONNET_4_6,
            "--endpoint-url",
            &url,
            "--dry-run",
            "--count-tokens",
            "--json",
        ],
    )
    .await;
    assert_eq!(dry.code(), 0, "{}", dry.stderr());
    let estimate: Value = serde_json::from_slice(&dry.output.stdout).unwrap();
    let run = run_fresh(
        work.path(),
        &[&job, "--model", US_SONNET_4_6, "--endpoint-url", &url],
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let billed: u64 = run
        .lines()
        .iter()
        .map(|l| l["usage"]["input_tokens"].as_u64().unwrap())
        .sum();
    assert_eq!(estimate["counted_records"], 9, "{estimate}");
    assert_eq!(estimate["counted_input_tokens"], billed, "{estimate}");
    assert_eq!(estimate["estimated_input_tokens"], 0, "{estimate}");
    assert!(
        dry.stderr().contains("counted by CountTokens"),
        "{}",
        dry.stderr()
    );

    // A model without CountTokens keeps the estimate, and says so.
    let llama = run_fresh(
        work.path(),
        &[
            &job,
            "--model",
            LLAMA,
            "--endpoint-url",
            &url,
            "--dry-run",
            "--count-tokens",
            "--json",
        ],
    )
    .await;
    assert_eq!(llama.code(), 0, "{}", llama.stderr());
    let estimate: Value = serde_json::from_slice(&llama.output.stdout).unwrap();
    assert!(estimate.get("counted_records").is_none(), "{estimate}");
    assert!(estimate["estimated_input_tokens"].as_u64().unwrap() > 0);
    assert!(
        llama.stderr().contains("estimated, not counted"),
        "{}",
        llama.stderr()
    );
}

#[tokio::test]
async fn litellm_and_genai_prices_files_price_a_run() {
    let work = tempfile::tempdir().unwrap();
    let job = write_jsonl(work.path(), "job.jsonl", &records(6));
    // A model the built-in table does not price.
    let model = "ai21.jamba-1-5-large-v1:0";
    std::fs::write(
        work.path().join("litellm.json"),
        json!({
            "sample_spec": {"input_cost_per_token": 0, "litellm_provider": "one of https://docs.litellm.ai/docs/providers"},
            "ai21.jamba-1-5-large-v1:0": {
                "input_cost_per_token": 6e-07, "output_cost_per_token": 6e-06,
                "litellm_provider": "bedrock_converse", "mode": "chat"},
            "bedrock/us-west-2/ai21.jamba-1-5-large-v1:0": {
                "input_cost_per_token": 9e-07, "output_cost_per_token": 9e-06,
                "litellm_provider": "bedrock", "mode": "chat"},
            "gpt-4o": {"input_cost_per_token": 2.5e-06, "litellm_provider": "openai"}
        })
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        work.path().join("genai-prices.json"),
        json!([
            {"id": "aws", "name": "AWS Bedrock", "models": [
                {"id": "ai21.jamba-1-5-large-v1:0", "match": {"contains": "ai21.jamba-1-5-large"},
                 "prices_checked": "2026-08-01",
                 "prices": {"input_mtok": 0.5, "output_mtok": 5}}]},
            {"id": "openai", "models": [{"id": "gpt-4o", "prices": {"input_mtok": 2.5}}]}
        ])
        .to_string(),
    )
    .unwrap();
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    for (file, rates) in [
        ("litellm.json", [0.6, 6.0, 0.0, 0.0]),
        ("genai-prices.json", [0.5, 5.0, 0.0, 0.0]),
    ] {
        let run = run_fresh(
            work.path(),
            &[
                &job,
                "--model",
                model,
                "--endpoint-url",
                &url,
                "--prices",
                file,
            ],
        )
        .await;
        assert_eq!(run.code(), 0, "{file}: {}", run.stderr());
        let cost = run.summary()["cost_usd"].as_f64().unwrap();
        let expected = hand_cost(&run.lines(), rates);
        assert!(close(cost, expected), "{file}: {cost} != {expected}");
    }
    // A file of ours after LiteLLM's corrects one field.
    std::fs::write(
        work.path().join("fix.toml"),
        "[models.\"ai21.jamba-1-5-large-v1:0\"]\noutput = 4.0\n",
    )
    .unwrap();
    let run = run_fresh(
        work.path(),
        &[
            &job,
            "--model",
            model,
            "--endpoint-url",
            &url,
            "--prices",
            "litellm.json",
            "--prices",
            "fix.toml",
        ],
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let cost = run.summary()["cost_usd"].as_f64().unwrap();
    let expected = hand_cost(&run.lines(), [0.6, 4.0, 0.0, 0.0]);
    assert!(close(cost, expected), "{cost} != {expected}");
}
