//! More than one region: one run spread over three local servers with different quotas,
//! from a cold start. Each server stands for a region's quota; the run must add them up,
//! and its summary must count what each one saw.

mod common;

use std::time::Duration;

use bedrock_batch::local_server::ServerConfig;
use common::*;
use serde_json::json;

// The servers get threads of their own, so a busy test machine slows them less than the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_endpoints_add_their_quotas_up() {
    let work = tempfile::tempdir().unwrap();
    let sentence = "The parcel arrived late and the box was torn at one corner. ";
    let records: Vec<_> = (0..1500)
        .map(|i| {
            json!({
                "id": format!("r{i}"),
                "text": format!("Ticket {i}. {}", sentence.repeat(8 + i % 24)),
            })
        })
        .collect();
    let job = write_jsonl(work.path(), "job.jsonl", &records);
    let quotas = [30_000u64, 60_000, 90_000];
    let mut servers = Vec::new();
    for tpm in quotas {
        servers.push(
            server(ServerConfig {
                tpm: Some(tpm),
                latency: Duration::from_millis(300),
                tokens_per_sec: 80.0,
                ..ServerConfig::default()
            })
            .await,
        );
    }
    let urls: Vec<String> = servers.iter().map(|s| s.url()).collect();
    let mut args = vec![
        "run",
        &job,
        "--model",
        CLAUDE,
        "--out",
        "run",
        "--max-tokens",
        "200",
        "--quiet",
    ];
    for url in &urls {
        args.push("--endpoint-url");
        args.push(url);
    }
    let child = command(work.path(), &args).spawn().unwrap();
    let window = Duration::from_secs(90);
    tokio::time::sleep(window).await;
    let admitted: u64 = servers.iter().map(|s| s.stats().admitted_tokens).sum();
    send_signal(child.id().unwrap() as i32, "INT");
    let output = child.wait_with_output().await.unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));

    let quota: u64 = quotas.iter().sum();
    let allowed = quota as f64 / 60.0 * window.as_secs_f64() + quota as f64;
    let goodput = admitted as f64 / allowed;
    let requests: u64 = servers.iter().map(|s| s.stats().requests).sum();
    let throttles: u64 = servers.iter().map(|s| s.stats().throttles).sum();
    let throttled = throttles as f64 / requests as f64;
    eprintln!("three endpoints: goodput {goodput:.3}, throttled {throttled:.4}");
    assert!(goodput >= 0.9, "goodput {goodput:.3}");
    assert!(throttled <= 0.03, "{throttles} of {requests} throttled");

    let summary = read_summary(&work.path().join("run"));
    let by_region = summary["by_region"].as_object().unwrap();
    assert_eq!(by_region.len(), 3, "{by_region:?}");
    for (url, server) in urls.iter().zip(&servers) {
        let stats = server.stats();
        let region = &by_region[url.as_str()];
        assert_eq!(region["requests"], stats.requests, "{url}");
        assert_eq!(region["throttles"], stats.throttles, "{url}");
    }
    let lines = read_lines(&work.path().join("run"));
    assert!(lines.iter().all(|l| l["status"] == "ok"));
    assert!(
        lines
            .iter()
            .all(|l| urls.contains(&l["region"].as_str().unwrap().to_string()))
    );
}

#[tokio::test]
async fn an_endpoint_that_denies_the_model_drops_out_and_the_run_goes_on() {
    let work = tempfile::tempdir().unwrap();
    let records: Vec<_> = (0..60)
        .map(|i| json!({"id": i, "text": format!("Record {i} is short.")}))
        .collect();
    let job = write_jsonl(work.path(), "job.jsonl", &records);
    let denied = server(ServerConfig {
        deny_models: vec!["*".into()],
        ..ServerConfig::default()
    })
    .await;
    let open = server(ServerConfig::default()).await;
    let (denied_url, open_url) = (denied.url(), open.url());
    let run = run_fresh(
        work.path(),
        &[
            &job,
            "--model",
            CLAUDE,
            "--endpoint-url",
            &denied_url,
            "--endpoint-url",
            &open_url,
        ],
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(
        run.stderr().contains(&denied_url) && run.stderr().contains("going on with the other"),
        "{}",
        run.stderr()
    );
    let lines = run.lines();
    assert_eq!(lines.len(), 60);
    assert!(
        lines
            .iter()
            .all(|l| l["status"] == "ok" && l["region"] == open_url.as_str())
    );
    assert!(
        denied.stats().requests <= 16,
        "{:?}",
        denied.stats().requests
    );
}
