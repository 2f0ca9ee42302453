//! Images and documents named by URL, end to end: a static file server inside the test
//! (127.0.0.1) serves good media, a redirect, a 404, an HTML page, an oversize body with
//! and without Content-Length, a path that answers too late, endless redirects and
//! redirects to schemes not fetched over HTTP; a raw socket breaks a body off; s3:// media come from the
//! local server's S3 through the run's S3 client. What reached the local
//! Bedrock server, how often each path was fetched, and the error lines are checked.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use bedrock_batch::local_server::ServerConfig;
use common::*;
use serde_json::{Value, json};

/// Requests by path.
type Hits = Arc<Mutex<BTreeMap<String, usize>>>;

/// Serves the test's media on 127.0.0.1; returns its base URL and the hit counts.
async fn file_server() -> (String, Hits) {
    let hits: Hits = Arc::default();
    let app = axum::Router::new().fallback(serve).with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, hits)
}

fn answer(status: u16, content_type: &str, body: Body) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(body)
        .unwrap()
}

async fn serve(State(hits): State<Hits>, uri: http::Uri) -> Response {
    let path = uri.path().to_string();
    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    match path.as_str() {
        "/catalogue/a.png" => answer(200, "image/png", png(300, 200).into()),
        "/b.jpg" => answer(200, "image/jpeg", jpeg(64, 48).into()),
        "/c.png" => answer(200, "image/png", png(10, 10).into()),
        "/doc.pdf" => answer(200, "application/pdf", PDF.as_bytes().into()),
        "/notes.txt" => answer(200, "text/plain", "Some notes.".into()),
        "/page.html" => answer(200, "text/html", "<html>Sign in</html>".into()),
        "/old.png" => Response::builder()
            .status(302)
            .header("location", "/c.png")
            .body(Body::empty())
            .unwrap(),
        "/loop.png" => Response::builder()
            .status(302)
            .header("location", "/loop.png")
            .body(Body::empty())
            .unwrap(),
        "/to-ftp.png" => Response::builder()
            .status(301)
            .header("location", "ftp://127.0.0.1/c.png")
            .body(Body::empty())
            .unwrap(),
        "/to-file.png" => Response::builder()
            .status(307)
            .header("location", "file:///etc/passwd")
            .body(Body::empty())
            .unwrap(),
        "/big.png" => {
            let mut bytes = png(100, 100);
            bytes.resize(5_000_000, 0);
            answer(200, "image/png", bytes.into())
        }
        "/endless.png" => {
            // No Content-Length: 100 chunks of 64 KiB, far over the cap.
            let mut first = png(100, 100);
            first.resize(65_536, 0);
            let chunks = std::iter::once(first).chain(std::iter::repeat_n(vec![0; 65_536], 99));
            let stream = futures::stream::iter(chunks.map(Ok::<_, std::convert::Infallible>));
            answer(200, "image/png", Body::from_stream(stream))
        }
        "/slow.png" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            answer(200, "image/png", png(10, 10).into())
        }
        _ => answer(404, "text/plain", "not here".into()),
    }
}

/// Puts `bytes` at `key` in the local server's S3, through the real S3 client.
async fn put_object(s3_url: &str, bucket: &str, key: &str, bytes: Vec<u8>) {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(s3_url)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            bedrock_batch::local_server::S3_ACCESS_KEY,
            bedrock_batch::local_server::S3_SECRET_KEY,
            None,
            None,
            "tests",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(config)
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(bytes.into())
        .send()
        .await
        .expect("put_object");
}

const PDF: &str = "%PDF-1.4\nthe catalogue terms\n%%EOF\n";

fn by_id(lines: Vec<Value>) -> BTreeMap<String, Value> {
    lines
        .into_iter()
        .map(|l| (l["id"].as_str().unwrap().to_string(), l))
        .collect()
}

#[tokio::test]
async fn url_media_are_fetched_once_checked_like_files_and_bad_urls_are_record_errors() {
    let work = tempfile::tempdir().unwrap();
    let (base, hits) = file_server().await;
    let mut records: Vec<Value> = (0..50)
        .map(|i| json!({"id": format!("item-{i}"), "images": [format!("{base}/catalogue/a.png")], "text": format!("Describe product {i}.")}))
        .collect();
    let bad = [
        ("missing", format!("{base}/missing.png")),
        ("slow", format!("{base}/slow.png")),
        ("html", format!("{base}/page.html")),
        ("big", format!("{base}/big.png")),
        ("endless", format!("{base}/endless.png")),
        ("refused", "http://127.0.0.1:1/x.png".to_string()),
        ("s3", "s3://media/items/missing.png".to_string()),
    ];
    for (id, url) in &bad {
        records.push(json!({"id": id, "images": [url], "text": "Describe it."}));
    }
    records.extend([
        json!({"id": "jpeg", "images": [{"url": format!("{base}/b.jpg")}], "text": "Describe it."}),
        json!({"id": "redirect", "images": [format!("{base}/old.png")], "text": "Describe it."}),
        json!({"id": "pdf", "documents": [format!("{base}/doc.pdf")], "text": "Summarize."}),
        json!({"id": "txt", "documents": [format!("{base}/notes.txt")], "text": "Summarize."}),
        json!({"id": "s3-object", "images": ["s3://media/items/shoe%20box.png"], "text": "Describe it."}),
    ]);
    let job = write_jsonl(work.path(), "catalogue.jsonl", &records);

    // A dry run fetches nothing and says so.
    let dry = bb(
        work.path(),
        &["run", &job, "--model", CLAUDE, "--out", "dry", "--dry-run"],
    )
    .await;
    assert_eq!(dry.status.code(), Some(0), "{}", stderr(&dry));
    assert!(
        stderr(&dry).contains("media by URL: 62 not fetched"),
        "{}",
        stderr(&dry)
    );
    assert!(hits.lock().unwrap().is_empty(), "a dry run fetches nothing");

    let server = server(ServerConfig {
        s3_buckets: vec!["media".into()],
        ..ServerConfig::default()
    })
    .await;
    put_object(&server.s3_url(), "media", "items/shoe box.png", png(20, 20)).await;
    let url = server.url();
    let s3_url = server.s3_url();
    let out = bb(
        work.path(),
        &[
            "run",
            &job,
            "--model",
            CLAUDE,
            "--endpoint-url",
            &url,
            "--s3-endpoint-url",
            &s3_url,
            "--out",
            "run",
            "--quiet",
            "--fetch-timeout",
            "0.5",
            "--max-media-bytes",
            "4000000",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    let hits = hits.lock().unwrap().clone();
    assert_eq!(
        hits["/catalogue/a.png"], 1,
        "50 records, one fetch: {hits:?}"
    );
    assert!(hits.values().all(|&n| n == 1), "{hits:?}");

    let stats = server.stats();
    assert_eq!(
        stats.requests, 55,
        "bad URLs are record errors before any call"
    );
    let png_stats = &stats.attachments["image/png"];
    assert_eq!(png_stats.count, 52);
    assert_eq!(
        png_stats.bytes,
        50 * png(300, 200).len() as u64 + png(10, 10).len() as u64 + png(20, 20).len() as u64
    );
    assert_eq!(
        stats.attachments["image/jpeg"].bytes,
        jpeg(64, 48).len() as u64
    );
    assert_eq!(stats.attachments["document/pdf"].bytes, PDF.len() as u64);
    assert_eq!(stats.attachments["document/txt"].count, 1);

    let results = by_id(read_lines(&work.path().join("run")));
    assert_eq!(results.len(), 62);
    // 300 x 200 / 750 = 80 image tokens, plus "Describe product 0." (19 chars, 5 tokens).
    assert_eq!(results["item-0"]["usage"]["input_tokens"], 85);
    for id in ["jpeg", "redirect", "pdf", "txt", "s3-object"] {
        assert_eq!(results[id]["status"], "ok", "{}", results[id]);
    }
    let expected = [
        ("missing", "fetch_failed", "HTTP 404 Not Found"),
        (
            "slow",
            "fetch_failed",
            "no complete answer within 0.5 s (--fetch-timeout)",
        ),
        ("html", "invalid_image", "(the server sent text/html)"),
        (
            "big",
            "image_too_large",
            "the server declares 5000000 bytes, over --max-media-bytes (4000000)",
        ),
        ("endless", "image_too_large", "stopped reading there"),
        ("refused", "fetch_failed", "the request failed"),
        ("s3", "fetch_failed", "no such object"),
    ];
    for ((id, kind, reason), (_, url)) in expected.iter().zip(&bad) {
        let line = &results[*id];
        assert_eq!(line["status"], "error", "{line}");
        assert_eq!(line["error"]["kind"], *kind, "{line}");
        assert_eq!(line["attempts"], 0, "{line}");
        let message = line["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("images[0] ({url})")), "{message}");
        assert!(message.contains(reason), "{message}");
    }
    let files = &read_summary(&work.path().join("run"))["files"];
    assert_eq!(files["urls_fetched"], 13);
    assert_eq!(files["urls_reused"], 49);
}

#[tokio::test]
async fn a_local_run_sends_the_fetched_bytes() {
    let work = tempfile::tempdir().unwrap();
    let (base, hits) = file_server().await;
    let records: Vec<Value> = (0..5)
        .map(|i| json!({"id": format!("r{i}"), "images": format!("{base}/catalogue/a.png; {base}/b.jpg"), "text": "Compare."}))
        .collect();
    let job = write_jsonl(work.path(), "job.jsonl", &records);
    let out = bb(
        work.path(),
        &[
            "run", &job, "--model", CLAUDE, "--local", "--out", "run", "--quiet",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let results = by_id(read_lines(&work.path().join("run")));
    // 80 + 5 image tokens (64 x 48 / 750, rounded up) and "Compare." (2 tokens): the
    // server read both images' real sizes from the bytes.
    assert_eq!(results["r0"]["usage"]["input_tokens"], 87);
    let hits = hits.lock().unwrap();
    assert_eq!((hits["/catalogue/a.png"], hits["/b.jpg"]), (1, 1));
}

/// Serves every connection on 127.0.0.1 a PNG response that declares 5,000 bytes, sends
/// the first few, and closes; returns its base URL.
async fn broken_body_server() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head =
                    "HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: 5000\r\n\r\n";
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&png(10, 10)).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    base
}

#[tokio::test]
async fn endless_redirects_unusable_schemes_and_broken_bodies_fail_their_record() {
    let work = tempfile::tempdir().unwrap();
    let (base, hits) = file_server().await;
    let broken = broken_body_server().await;
    let bad = [
        ("loop", format!("{base}/loop.png"), "more than 5 redirects"),
        (
            "ftp",
            format!("{base}/to-ftp.png"),
            "HTTP 301 Moved Permanently to an unusable location \"ftp://127.0.0.1/c.png\"",
        ),
        (
            "file",
            format!("{base}/to-file.png"),
            "HTTP 307 Temporary Redirect to an unusable location \"file:///etc/passwd\"",
        ),
        ("cut", format!("{broken}/cut.png"), "the body broke off"),
    ];
    let mut records: Vec<Value> = bad
        .iter()
        .map(|(id, url, _)| json!({"id": id, "images": [url], "text": "Describe it."}))
        .collect();
    records
        .push(json!({"id": "good", "images": [format!("{base}/c.png")], "text": "Describe it."}));
    let job = write_jsonl(work.path(), "job.jsonl", &records);
    let out = bb(
        work.path(),
        &[
            "run", &job, "--model", CLAUDE, "--local", "--out", "run", "--quiet",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let results = by_id(read_lines(&work.path().join("run")));
    assert_eq!(results.len(), 5);
    assert_eq!(results["good"]["status"], "ok", "{}", results["good"]);
    // Every record is checked; the failures are reported together.
    let wrong: Vec<String> = bad
        .iter()
        .filter(|(id, url, reason)| {
            let line = &results[*id];
            let message = line["error"]["message"].as_str().unwrap_or("");
            line["status"] != "error"
                || line["error"]["kind"] != "fetch_failed"
                || line["attempts"] != 0
                || !message.contains(&format!("images[0] ({url})"))
                || !message.contains(reason)
        })
        .map(|(id, _, reason)| format!("{id}: expected {reason:?} in {}", results[*id]))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let hits = hits.lock().unwrap();
    // The first request and five redirects, then it stops.
    assert_eq!(hits["/loop.png"], 6, "{hits:?}");
    assert_eq!((hits["/to-ftp.png"], hits["/to-file.png"]), (1, 1));
    assert_eq!(hits["/c.png"], 1, "only the good record's: {hits:?}");
}
