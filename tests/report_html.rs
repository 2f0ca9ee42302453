//! `report --format html` end to end: two runs on the local server (one throttled, with
//! failed records), the page built from their directories, and its numbers read back from
//! the comparison table's `data-field` cells against each run's summary.json; error examples
//! that name real failed records; a run without a timeline; and the page opened in headless
//! Chromium without a console error (skipped without Chromium unless
//! BEDROCK_BATCH_REQUIRE_CHROMIUM=1, as CI sets it).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bedrock_batch::local_server::ServerConfig;
use common::*;
use serde_json::{Value, json};

/// A job of `n` good records, plus two that fail: one refused before sending (a
/// temperature out of range), one refused by the service (a conversation that starts with
/// the assistant).
fn job(dir: &Path, n: usize, with_failures: bool) -> String {
    let mut records: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "id": format!("t{i}"),
                // The local model answers the first two sentences: fewer tokens out than in.
                "text": format!("Ticket {i}: the parcel arrived late. The box was torn. The customer asks for a refund of order {}.", 100_000 + i),
            })
        })
        .collect();
    if with_failures {
        records.push(json!({"id": "bad-temperature", "text": "x", "temperature": 5}));
        records.push(json!({"id": "bad-turns", "messages": [{"role": "assistant", "content": [{"text": "hi"}]}]}));
    }
    write_jsonl(dir, "job.jsonl", &records)
}

/// `report DIRS --format html --out page.html`, and the page.
async fn report(work: &Path, dirs: &[&Path]) -> String {
    let out = work.join("page.html");
    let mut args: Vec<String> = vec!["report".into()];
    args.extend(dirs.iter().map(|d| d.display().to_string()));
    args.extend(["--format", "html", "--out"].map(String::from));
    args.push(out.display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = bb(work, &args).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    std::fs::read_to_string(&out).unwrap()
}

/// The `data-value` of the comparison table's cell for `run` and `field`.
fn cell(page: &str, run: usize, field: &str) -> String {
    let hook = format!("data-run=\"{run}\" data-field=\"{field}\" data-value=\"");
    let start = page
        .find(&hook)
        .unwrap_or_else(|| panic!("no cell {field} of run {run}"))
        + hook.len();
    page[start..][..page[start..].find('"').unwrap()].to_string()
}

/// The (kind, id) of every error example on the page.
fn examples(page: &str) -> Vec<(String, String)> {
    page.split("<li data-kind=\"")
        .skip(1)
        .map(|rest| {
            let (kind, rest) = rest.split_once('"').unwrap();
            let id = rest
                .split("data-id=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            (kind.to_string(), id.to_string())
        })
        .collect()
}

/// A clean run on `--local`, and a throttled one with failures on a tight local server.
async fn two_runs(work: &Path) -> (Run, Run) {
    let clean = run_fresh(
        work,
        &[
            &job(work, 20, false),
            "--model",
            CLAUDE,
            "--local",
            "--quiet",
        ],
    )
    .await;
    assert_eq!(clean.code(), 0, "{}", clean.stderr());
    let server = server(ServerConfig {
        tpm: Some(6_000),
        latency: Duration::from_millis(100),
        ..ServerConfig::default()
    })
    .await;
    let url = server.url();
    let job = job(work, 30, true);
    let troubled = run_fresh(
        work,
        &[
            &job,
            "--model",
            CLAUDE,
            "--endpoint-url",
            &url,
            "--max-tokens",
            "200",
            "--quiet",
        ],
    )
    .await;
    assert_eq!(troubled.code(), 1, "{}", troubled.stderr());
    (clean, troubled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_each_runs_numbers_and_real_failed_records() {
    let work = tempfile::tempdir().unwrap();
    let (clean, troubled) = two_runs(work.path()).await;
    let page = report(work.path(), &[&clean.dir, &troubled.dir]).await;
    for (i, run) in [&clean, &troubled].into_iter().enumerate() {
        let s = run.summary();
        assert_ne!(s["usage"]["input_tokens"], s["usage"]["output_tokens"]);
        let fields = [
            ("records.ok", &s["records"]["ok"]),
            ("records.failed", &s["records"]["failed"]),
            ("tokens.in", &s["usage"]["input_tokens"]),
            ("tokens.out", &s["usage"]["output_tokens"]),
            ("calls", &s["calls"]),
            ("attempts", &s["attempts"]),
            ("throttles", &s["throttles"]),
        ];
        for (field, want) in fields {
            assert_eq!(cell(&page, i, field), want.to_string(), "run {i} {field}");
        }
        let cost: f64 = cell(&page, i, "cost").parse().unwrap();
        assert!(
            (cost - s["cost_usd"].as_f64().unwrap()).abs() < 1e-12,
            "run {i} cost"
        );
        assert_eq!(cell(&page, i, "status"), if i == 0 { "0" } else { "1" });
    }
    // Every example is a failed line of the troubled run, of the kind it is shown under,
    // and every kind the summary counts has one.
    let failed: Vec<Value> = troubled
        .lines()
        .into_iter()
        .filter(|l| l["status"] == "error")
        .collect();
    let shown = examples(&page);
    for (kind, id) in &shown {
        assert!(
            failed
                .iter()
                .any(|l| l["id"] == id.as_str() && l["error"]["kind"] == kind.as_str()),
            "example {id} ({kind}) is not a failed record: {failed:?}"
        );
    }
    let kinds = troubled.summary()["errors_by_kind"].clone();
    assert_eq!(kinds.as_object().unwrap().len(), 2, "{kinds}");
    for kind in kinds.as_object().unwrap().keys() {
        assert!(shown.iter().any(|(k, _)| k == kind), "no example of {kind}");
    }
    assert!(page.contains("<svg"), "charts are inlined");
    assert!(!page.contains("no timeline (events.jsonl)"));
    // Self-contained: nothing for a browser to fetch.
    for fetches in ["src=", "<link", "url(", "@import", "<script"] {
        assert!(!page.contains(fetches), "the page holds {fetches}");
    }
}

#[tokio::test]
async fn a_run_without_a_timeline_still_reports_its_summary() {
    let work = tempfile::tempdir().unwrap();
    let run = run_fresh(
        work.path(),
        &[
            &job(work.path(), 5, false),
            "--model",
            CLAUDE,
            "--local",
            "--quiet",
        ],
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    std::fs::remove_file(run.dir.join("events.jsonl")).unwrap();
    let page = report(work.path(), &[&run.dir]).await;
    assert!(page.contains("no timeline (events.jsonl), so no charts over time"));
    assert_eq!(cell(&page, 0, "records.ok"), "5");
    assert_eq!(cell(&page, 0, "status"), "0");
    assert!(!page.contains("<svg"), "no chart without a timeline");
    // --since leaves out runs last written before the day: none left is a usage error.
    let output = bb(
        work.path(),
        &[
            "report",
            run.dir.to_str().unwrap(),
            "--format",
            "html",
            "--out",
            "p.html",
            "--since",
            "2999-01-01",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("last written before --since"),
        "{}",
        stderr(&output)
    );
}

/// Chromium, if this machine has it (BEDROCK_BATCH_CHROMIUM=PATH names another); the test
/// fails without it when BEDROCK_BATCH_REQUIRE_CHROMIUM is set, as CI sets it.
fn chromium() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("BEDROCK_BATCH_CHROMIUM") {
        Some(path) => vec![path.into()],
        None => vec![
            "/usr/bin/chromium".into(),
            "/usr/bin/chromium-browser".into(),
        ],
    };
    let found = candidates.iter().find(|p| p.exists()).cloned();
    if found.is_none() {
        assert!(
            std::env::var_os("BEDROCK_BATCH_REQUIRE_CHROMIUM").is_none(),
            "BEDROCK_BATCH_REQUIRE_CHROMIUM is set and there is no chromium at {candidates:?} \
             (apt-get install -y --no-install-recommends chromium, or BEDROCK_BATCH_CHROMIUM=PATH)"
        );
        eprintln!("skipped: no chromium at {candidates:?} (BEDROCK_BATCH_CHROMIUM=PATH names one)");
    }
    found
}

/// Opens `page` in headless Chromium: the DOM it built, and the console lines it logged.
fn open(chromium: &Path, page: &Path) -> (String, Vec<String>) {
    let profile = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let console = stderr(&output)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(String::from)
        .collect();
    (String::from_utf8_lossy(&output.stdout).to_string(), console)
}

#[tokio::test]
async fn the_page_opens_in_chromium_without_console_errors() {
    let Some(chromium) = chromium() else { return };
    let work = tempfile::tempdir().unwrap();
    // The check itself sees a page that throws.
    let broken = work.path().join("broken.html");
    std::fs::write(
        &broken,
        "<!DOCTYPE html><title>t</title><script>throw new Error('broken on purpose')</script>",
    )
    .unwrap();
    let (_, console) = open(&chromium, &broken);
    assert!(
        console.iter().any(|l| l.contains("broken on purpose")),
        "chromium logged no console error for a throwing page: {console:?}"
    );

    let run = run_fresh(
        work.path(),
        &[
            &job(work.path(), 10, true),
            "--model",
            CLAUDE,
            "--local",
            "--quiet",
        ],
    )
    .await;
    assert_eq!(run.code(), 1, "{}", run.stderr());
    report(work.path(), &[&run.dir]).await;
    let (dom, console) = open(&chromium, &work.path().join("page.html"));
    assert!(console.is_empty(), "console: {console:?}");
    assert!(dom.contains("<title>bedrock-batch report: "), "{dom:.500}");
    assert!(
        dom.contains("data-field=\"records.ok\" data-value=\"10\""),
        "{dom:.2000}"
    );
    assert!(dom.contains("<h2 id=\"errors\">Errors</h2>"));
}
