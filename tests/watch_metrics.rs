//! `--metrics-addr`, end to end: the binary runs a job against a local server whose quota
//! keeps it going for several seconds, and the test scrapes `/metrics` over HTTP while it
//! goes. The exposition must be OpenMetrics (its content type, `# EOF`), name the families
//! with their labels, never let a counter (or a histogram's count and sum) go down between
//! scrapes, and never count more than summary.json does at the end. A port in use is a
//! usage error before the run directory is made. A `--via batch` run shows its jobs by
//! status, labeled engine="batch". A resumed run's counters count what its process does,
//! not the lines of the invocation before.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bedrock_batch::local_server::ServerConfig;
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How many times the test scrapes at most, and how long it waits between scrapes.
const MAX_SCRAPES: usize = 200;
const SCRAPE_EVERY: Duration = Duration::from_millis(400);

fn job(dir: &Path, n: usize) -> String {
    let records: Vec<_> = (0..n)
        .map(|i| {
            json!({
                "id": format!("m{i}"),
                "text": format!("Ticket {i}: the parcel arrived late and the box was torn. Order {}.", 200_000 + i),
            })
        })
        .collect();
    write_jsonl(dir, "job.jsonl", &records)
}

/// A GET over a fresh connection: status, head and body; `None` once nothing listens.
async fn get(addr: &str, path: &str) -> Option<(u16, String, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.ok()?;
    let response = String::from_utf8(response).expect("the answer is UTF-8");
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, head.to_string(), body.to_string()))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// One sample of the exposition: its name and labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Series {
    name: String,
    labels: BTreeMap<String, String>,
}

impl Series {
    fn label(&self, key: &str) -> &str {
        self.labels.get(key).map_or("", String::as_str)
    }

    /// A value that may only go up: a counter's, or a histogram's count, sum or bucket.
    fn monotonic(&self) -> bool {
        ["_total", "_count", "_sum", "_bucket"]
            .iter()
            .any(|suffix| self.name.ends_with(suffix))
    }
}

/// The samples of an OpenMetrics text (label values here hold no `,` `"` or `}`).
fn parse(text: &str) -> BTreeMap<Series, f64> {
    let mut samples = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("a sample line: NAME VALUE");
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split(',')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').expect("a label: KEY=\"VALUE\"");
                (key.to_string(), value.trim_matches('"').to_string())
            })
            .collect();
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|e| panic!("{line}: {e}")),
        };
        let series = Series {
            name: name.to_string(),
            labels,
        };
        assert!(samples.insert(series, value).is_none(), "{line} twice");
    }
    samples
}

fn find<'a>(
    samples: &'a BTreeMap<Series, f64>,
    name: &str,
    labels: &[(&str, &str)],
) -> Vec<(&'a Series, f64)> {
    samples
        .iter()
        .filter(|(s, _)| s.name == name && labels.iter().all(|(k, v)| s.label(k) == *v))
        .map(|(s, v)| (s, *v))
        .collect()
}

/// Starts the run; returns it and the address stderr says the metrics are served at.
async fn start(command: tokio::process::Command) -> (Running, String) {
    let mut running = Running::start(command);
    running
        .wait_until("the metrics address on stderr", |e| {
            e.find("metrics: http://")
                .is_some_and(|at| e[at..].contains('\n'))
        })
        .await;
    let stderr = running.stderr();
    let addr = stderr
        .lines()
        .find_map(|l| l.strip_prefix("metrics: http://")?.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("a line `metrics: http://ADDR/metrics`:\n{stderr}"))
        .to_string();
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{addr}"
    );
    (running, addr)
}

/// Scrapes `/metrics` until nothing listens any more (the run ended), checking each answer
/// is OpenMetrics; at least three scrapes.
async fn scrape_until_the_end(addr: &str) -> Vec<BTreeMap<Series, f64>> {
    let mut scrapes = Vec::new();
    for _ in 0..MAX_SCRAPES {
        let Some((status, head, body)) = get(addr, "/metrics").await else {
            break;
        };
        assert_eq!(status, 200, "{head}\n{body}");
        assert_eq!(header(&head, "content-type"), Some(OPENMETRICS), "{head}");
        assert!(
            body.ends_with("# EOF\n"),
            "the exposition ends with # EOF:\n{body}"
        );
        scrapes.push(parse(&body));
        tokio::time::sleep(SCRAPE_EVERY).await;
    }
    assert!(
        scrapes.len() >= 3,
        "scraped {} times while the run went",
        scrapes.len()
    );
    scrapes
}

/// No counter (nor a histogram's count, sum or bucket) went down or vanished from one
/// scrape to the next, and some grew.
fn counters_only_went_up(scrapes: &[BTreeMap<Series, f64>]) {
    for (i, pair) in scrapes.windows(2).enumerate() {
        for (series, before) in pair[0].iter().filter(|(s, _)| s.monotonic()) {
            let after = pair[1].get(series).copied();
            assert!(
                after.is_some_and(|after| after >= *before),
                "{series:?} went from {before} to {after:?} between scrapes {i} and {}",
                i + 1
            );
        }
    }
    let (first, last) = (&scrapes[0], &scrapes[scrapes.len() - 1]);
    let grew = last
        .iter()
        .filter(|(s, v)| s.monotonic() && first.get(s).is_none_or(|f| **v > *f))
        .count();
    assert!(grew > 0, "some counter grew while the run went");
}

/// The records a scrape counted for `model` are no more than summary.json's.
fn no_more_records_than_the_summary(
    last: &BTreeMap<Series, f64>,
    summary: &serde_json::Value,
    model: &str,
) {
    let by_model = &summary["by_model"][model];
    for outcome in ["ok", "failed"] {
        let labels = [("model", model), ("outcome", outcome)];
        for (_, value) in find(last, "bedrock_batch_records_total", &labels) {
            let counted = by_model[outcome].as_f64().unwrap();
            assert!(
                value <= counted,
                "records_total {outcome}: {value} scraped, {counted} in summary.json"
            );
        }
    }
}

/// The request bucket admits 300 calls at once, then 5 a second: a job of 340 records
/// keeps the run going for several seconds, throttled.
async fn paced_server() -> bedrock_batch::local_server::LocalServer {
    server(ServerConfig {
        rpm: Some(300),
        latency: Duration::from_millis(100),
        ..ServerConfig::default()
    })
    .await
}

/// `run JOB` against `url` into `out`, serving metrics on a free port.
fn run_args(job: &str, url: &str, out: &Path) -> Vec<String> {
    let out = out.display().to_string();
    [
        "run",
        job,
        "--model",
        CLAUDE,
        "--endpoint-url",
        url,
        "--max-tokens",
        "100",
        "--out",
        &out,
        "--metrics-addr",
        "127.0.0.1:0",
    ]
    .map(String::from)
    .to_vec()
}

// The server gets threads of its own, so a busy test machine slows it less than the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_while_the_run_goes_and_counters_only_go_up() {
    let work = tempfile::tempdir().unwrap();
    let job = job(work.path(), 340);
    let server = paced_server().await;
    let out = work.path().join("run");
    let args = run_args(&job, &server.url(), &out);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (running, addr) = start(command(work.path(), &args)).await;
    let (status, _, body) = get(&addr, "/").await.expect("the endpoint answers");
    assert_eq!(status, 404);
    assert!(body.contains("/metrics"), "the 404 names /metrics: {body}");
    let scrapes = scrape_until_the_end(&addr).await;
    let output = running.finish().await;
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    counters_only_went_up(&scrapes);
    let last = &scrapes[scrapes.len() - 1];

    let engine = [("engine", "on_demand")];
    for name in [
        "bedrock_batch_records_total",
        "bedrock_batch_tokens_total",
        "bedrock_batch_calls_total",
        "bedrock_batch_attempts_total",
        "bedrock_batch_throttles_total",
        "bedrock_batch_in_flight",
        "bedrock_batch_concurrency_limit",
        "bedrock_batch_records_pending",
        "bedrock_batch_call_latency_seconds_count",
        "bedrock_batch_call_latency_seconds_sum",
        "bedrock_batch_run_info",
    ] {
        assert!(
            !find(last, name, &engine).is_empty(),
            "{name} with engine=\"on_demand\" in the last scrape: {:#?}",
            last.keys().map(|s| &s.name).collect::<Vec<_>>()
        );
    }
    assert!(scrapes.iter().all(|s| s.keys().all(
        |series| series.name.starts_with("bedrock_batch_")
            && series.label("engine") == "on_demand"
            && !series.labels.contains_key("shard")
    )));
    let ok = [("model", CLAUDE), ("outcome", "ok")];
    assert_eq!(find(last, "bedrock_batch_records_total", &ok).len(), 1);
    let input = [("model", CLAUDE), ("kind", "input")];
    assert_eq!(find(last, "bedrock_batch_tokens_total", &input).len(), 1);
    let buckets = find(
        last,
        "bedrock_batch_call_latency_seconds_bucket",
        &[("model", CLAUDE)],
    );
    assert_eq!(buckets.len(), 15, "14 bounds and +Inf: {buckets:?}");

    // Never more than the run counted, at the end.
    let summary = read_summary(&out);
    no_more_records_than_the_summary(last, &summary, CLAUDE);
    let by_region = summary["by_region"].as_object().unwrap();
    let mut regions_seen = 0;
    for (series, value) in find(last, "bedrock_batch_attempts_total", &[]) {
        let region = &by_region[series.label("region")];
        let counted = region["requests"].as_f64().unwrap();
        assert!(
            value <= counted,
            "{series:?}: {value} scraped, {counted} sent"
        );
        regions_seen += 1;
    }
    assert!(regions_seen > 0, "attempts by region");
    for (series, value) in find(last, "bedrock_batch_throttles_total", &[]) {
        let region = &by_region[series.label("region")];
        let counted = region["throttles"].as_f64().unwrap();
        assert!(
            value <= counted,
            "{series:?}: {value} scraped, {counted} throttled"
        );
    }
    assert!(
        summary["throttles"].as_u64().unwrap() > 0,
        "the quota was reached"
    );
}

// The server gets threads of its own, so a busy test machine slows it less than the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_run_shows_its_jobs_by_status_while_they_run() {
    const BUCKET: &str = "metrics-tests";
    let work = tempfile::tempdir().unwrap();
    let job = job(work.path(), 300);
    // Three jobs of 100 records, one at a time (the model's job quota), each answering 50
    // records a second after its status steps: the run collects one while the next runs.
    let server = server(ServerConfig {
        s3_buckets: vec![BUCKET.into()],
        batch_step: Duration::from_millis(200),
        batch_records_per_sec: 50,
        batch_max_jobs: 1,
        ..ServerConfig::default()
    })
    .await;
    let out = work.path().join("run");
    let s3 = format!("s3://{BUCKET}/jobs");
    let mut args = batch_run_args(&job, CLAUDE, &out, &server.url(), &server.s3_url(), &s3);
    args.extend(["--records-per-job", "100", "--metrics-addr", "127.0.0.1:0"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut run = command(work.path(), &args);
    local_keys(&mut run);
    let (running, addr) = start(run).await;
    let scrapes = scrape_until_the_end(&addr).await;
    let output = running.finish().await;
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    counters_only_went_up(&scrapes);
    assert!(
        scrapes
            .iter()
            .all(|s| s.keys().all(|series| series.label("engine") == "batch")),
        "every metric says engine=\"batch\""
    );
    let jobs_seen: Vec<_> = scrapes
        .iter()
        .flat_map(|s| find(s, "bedrock_batch_batch_jobs", &[]))
        .filter(|(_, jobs)| *jobs > 0.0)
        .map(|(series, _)| series.label("status").to_string())
        .collect();
    assert!(!jobs_seen.is_empty(), "batch jobs by status while they ran");
    let last = &scrapes[scrapes.len() - 1];
    no_more_records_than_the_summary(last, &read_summary(&out), CLAUDE);
}

// The server gets threads of its own, so a busy test machine slows it less than the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_counts_from_zero_what_this_process_does() {
    let work = tempfile::tempdir().unwrap();
    let job = job(work.path(), 340);
    let server = paced_server().await;
    let out = work.path().join("run");
    let args = run_args(&job, &server.url(), &out);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let lines_at_least = |n: usize| {
        let out = out.clone();
        move |_: &str| read_lines(&out).len() >= n
    };
    let stopped =
        run_interrupted(work.path(), &args, "INT", "100 lines", lines_at_least(100)).await;
    assert_eq!(
        stopped.status.code(),
        Some(130),
        "{}",
        common::stderr(&stopped)
    );
    let before = read_summary(&out)["by_model"][CLAUDE]["ok"]
        .as_f64()
        .unwrap();
    assert!(before >= 100.0, "{before}");

    let (running, addr) = start(command(work.path(), &args)).await;
    let scrapes = scrape_until_the_end(&addr).await;
    let output = running.finish().await;
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    counters_only_went_up(&scrapes);
    let total = read_summary(&out)["by_model"][CLAUDE]["ok"]
        .as_f64()
        .unwrap();
    assert_eq!(total, 340.0);
    let ok = [("model", CLAUDE), ("outcome", "ok")];
    for scrape in &scrapes {
        for (_, counted) in find(scrape, "bedrock_batch_records_total", &ok) {
            assert!(
                counted <= total - before,
                "records_total ok {counted}: more than the {} records this process wrote",
                total - before
            );
        }
    }
}

#[tokio::test]
async fn a_port_in_use_is_a_usage_error_before_the_run_directory() {
    let work = tempfile::tempdir().unwrap();
    let job = job(work.path(), 3);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = work.path().join("run");
    let out_arg = out.display().to_string();
    let args = [
        "run",
        &job,
        "--model",
        CLAUDE,
        "--local",
        "--out",
        &out_arg,
        "--metrics-addr",
        &addr,
    ];
    let output = bb(work.path(), &args).await;
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("--metrics-addr {addr}")),
        "names the address: {stderr}"
    );
    assert!(stderr.contains("free port"), "says what to do: {stderr}");
    assert!(!out.exists(), "nothing was started");
    drop(taken);
}

#[tokio::test]
async fn a_host_name_is_refused_with_the_form_to_give() {
    let work = tempfile::tempdir().unwrap();
    let job = job(work.path(), 1);
    let args = [
        "run",
        &job,
        "--model",
        CLAUDE,
        "--local",
        "--metrics-addr",
        "localhost:9464",
    ];
    let output = bb(work.path(), &args).await;
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("expected IP:PORT") && stderr.contains("127.0.0.1:9464"),
        "{stderr}"
    );
}
