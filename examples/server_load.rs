//! Load benchmark of the local server through the real `aws-sdk-bedrockruntime` client:
//! a bounded number of calls from a bounded number of concurrent tasks, then requests per
//! second and latency percentiles. Later benchmarks use the number to know the server is
//! not their bottleneck.
//!
//! ```text
//! cargo run --release --example server_load -- [--requests N] [--concurrency C]
//!     [--route converse|embed] [--endpoint-url URL]
//! ```
//! Without `--endpoint-url` the server runs in this process (as with `run --local`), so the
//! client and the server share the machine's cores.

use std::time::{Duration, Instant};

use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, InferenceConfiguration, Message,
};
use bedrock_batch::local_server::{LocalServer, ServerConfig};

struct Options {
    requests: usize,
    concurrency: usize,
    route: String,
    endpoint: Option<String>,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        requests: 20_000,
        concurrency: 64,
        route: "converse".into(),
        endpoint: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--requests" => {
                options.requests = value()?.parse().map_err(|e| format!("--requests: {e}"))?
            }
            "--concurrency" => {
                options.concurrency = value()?
                    .parse()
                    .map_err(|e| format!("--concurrency: {e}"))?
            }
            "--route" => options.route = value()?,
            "--endpoint-url" => options.endpoint = Some(value()?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if !["converse", "embed"].contains(&options.route.as_str()) {
        return Err("--route is converse or embed".into());
    }
    Ok(options)
}

async fn call(client: &Client, route: &str, i: usize) -> bool {
    let text = format!(
        "Ticket {i}: the customer reports that the order arrived damaged. They ask for a refund."
    );
    if route == "embed" {
        let body = serde_json::json!({ "inputText": text, "dimensions": 256 });
        client
            .invoke_model()
            .model_id("amazon.titan-embed-text-v2:0")
            .body(Blob::new(serde_json::to_vec(&body).unwrap_or_default()))
            .send()
            .await
            .is_ok()
    } else {
        let message = Message::builder()
            .role(ConversationRole::User)
            .content(ContentBlock::Text(text))
            .build();
        let Ok(message) = message else { return false };
        client
            .converse()
            .model_id("anthropic.claude-3-haiku-20240307-v1:0")
            .messages(message)
            .inference_config(InferenceConfiguration::builder().max_tokens(64).build())
            .send()
            .await
            .is_ok()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let options = options()?;
    let server = match &options.endpoint {
        Some(_) => None,
        None => Some(
            LocalServer::start(ServerConfig::default())
                .await
                .map_err(|e| format!("local server: {e}"))?,
        ),
    };
    let url = options
        .endpoint
        .clone()
        .or_else(|| server.as_ref().map(LocalServer::url))
        .unwrap_or_default();
    let config = aws_sdk_bedrockruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&url)
        .credentials_provider(Credentials::new(
            "AKIDLOAD",
            "load-secret",
            None,
            None,
            "load",
        ))
        .retry_config(RetryConfig::disabled())
        .build();
    let client = Client::from_conf(config);

    // Warm the connection pool, then measure.
    for i in 0..options.concurrency.min(options.requests) {
        call(&client, &options.route, i).await;
    }
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..options.concurrency)
        .map(|_| {
            let (client, next, route) = (client.clone(), next.clone(), options.route.clone());
            let total = options.requests;
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failures = 0usize;
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let t0 = Instant::now();
                    if !call(&client, &route, i).await {
                        failures += 1;
                    }
                    latencies.push(t0.elapsed());
                }
                (latencies, failures)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(options.requests);
    let mut failures = 0;
    for worker in workers {
        let (mut l, f) = worker.await.map_err(|e| e.to_string())?;
        latencies.append(&mut l);
        failures += f;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "route={} requests={} concurrency={} server={} elapsed={:.2}s rps={:.0} failures={} p50={:.2}ms p99={:.2}ms",
        options.route,
        options.requests,
        options.concurrency,
        if server.is_some() {
            "in-process"
        } else {
            "external"
        },
        elapsed.as_secs_f64(),
        options.requests as f64 / elapsed.as_secs_f64(),
        failures,
        percentile(&latencies, 50.0).as_secs_f64() * 1e3,
        percentile(&latencies, 99.0).as_secs_f64() * 1e3,
    );
    if let Some(server) = server {
        let stats = server.stats();
        println!(
            "server saw {} requests, max in flight {}",
            stats.requests, stats.max_in_flight
        );
        server.shutdown().await;
    }
    Ok(())
}
