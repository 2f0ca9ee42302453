//! Images, documents, prompt caching and streaming in bulk, end to end: what the local
//! server received (formats, bytes, names, order) and what the results say.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use bedrock_batch::local_server::ServerConfig;
use common::*;
use serde_json::{Value, json};

fn lines(work: &Path, dir: &str) -> BTreeMap<String, Value> {
    read_lines(&work.join(dir))
        .into_iter()
        .map(|l| (l["id"].as_str().unwrap().to_string(), l))
        .collect()
}

fn summary(work: &Path, dir: &str) -> Value {
    read_summary(&work.join(dir))
}

/// A WebP (VP8X) header of the given size.
fn webp(width: u32, height: u32) -> Vec<u8> {
    let mut chunk = b"VP8X".to_vec();
    chunk.extend_from_slice(&10u32.to_le_bytes());
    chunk.extend_from_slice(&[0, 0, 0, 0]);
    chunk.extend_from_slice(&(width - 1).to_le_bytes()[..3]);
    chunk.extend_from_slice(&(height - 1).to_le_bytes()[..3]);
    let mut b = b"RIFF".to_vec();
    b.extend_from_slice(&((chunk.len() + 4) as u32).to_le_bytes());
    b.extend_from_slice(b"WEBP");
    b.extend_from_slice(&chunk);
    b
}

#[tokio::test]
async fn images_arrive_with_the_right_format_and_bytes_before_the_text() {
    let work = tempfile::tempdir().unwrap();
    let media = work.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("a.png", png(300, 200)),
        ("b.jpg", jpeg(640, 480)),
        ("c.gif", gif(32, 32)),
        ("d.webp", webp(100, 50)),
        ("mislabeled.jpg", png(10, 10)),
        ("corrupt.png", b"\x89PNG but not really".to_vec()),
        ("huge.png", png(9000, 100)),
    ];
    for (name, bytes) in &files {
        std::fs::write(media.join(name), bytes).unwrap();
    }
    let job = write_jsonl(
        work.path(),
        "vision.jsonl",
        &[
            json!({"id": "png", "images": ["media/a.png"], "text": "Describe the chart."}),
            json!({"id": "jpeg", "images": [{"path": "media/b.jpg"}], "text": "Describe the photo."}),
            json!({"id": "gif", "images": ["media/c.gif"], "text": "Describe the icon."}),
            json!({"id": "webp", "images": ["media/d.webp"], "text": "Describe the banner."}),
            json!({"id": "mislabeled", "images": ["media/mislabeled.jpg"], "text": "What is it?"}),
            json!({"id": "corrupt", "images": ["media/corrupt.png"], "text": "What is it?"}),
            json!({"id": "huge", "images": ["media/huge.png"], "text": "What is it?"}),
            json!({"id": "missing", "images": ["media/nope.png"], "text": "What is it?"}),
        ],
    );
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    let out = bb(
        work.path(),
        &[
            "run",
            &job,
            "--model",
            CLAUDE,
            "--endpoint-url",
            &url,
            "--out",
            "run",
            "--quiet",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let stats = server.stats();
    assert_eq!(
        stats.requests, 5,
        "bad images are record errors before any call"
    );
    let size = |name: &str| files.iter().find(|(n, _)| *n == name).unwrap().1.len() as u64;
    assert_eq!(stats.attachments["image/png"].count, 2);
    assert_eq!(
        stats.attachments["image/png"].bytes,
        size("a.png") + size("mislabeled.jpg")
    );
    assert_eq!(stats.attachments["image/jpeg"].bytes, size("b.jpg"));
    assert_eq!(stats.attachments["image/gif"].bytes, size("c.gif"));
    assert_eq!(stats.attachments["image/webp"].bytes, size("d.webp"));
    assert_eq!(
        stats.attachments_after_text, 0,
        "images come before the text"
    );

    let results = lines(work.path(), "run");
    // 300 x 200 / 750 = 80 image tokens, plus "Describe the chart." (19 chars, 5 tokens).
    assert_eq!(results["png"]["usage"]["input_tokens"], 85);
    let warning = results["mislabeled"]["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("declared as jpg but the bytes are png; sent as png"),
        "{warning}"
    );
    assert_eq!(results["mislabeled"]["status"], "ok");
    assert_eq!(results["corrupt"]["error"]["kind"], "invalid_image");
    assert!(
        results["corrupt"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("media/corrupt.png")
    );
    assert_eq!(results["huge"]["error"]["kind"], "image_too_large");
    assert!(
        results["huge"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("9000x100")
    );
    assert_eq!(results["missing"]["error"]["kind"], "missing_file");
    for id in ["corrupt", "huge", "missing"] {
        assert_eq!(results[id]["attempts"], 0, "{id} was not sent");
    }
}

#[tokio::test]
async fn documents_get_valid_names_and_shared_files_are_read_once() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("Q3_report.final.pdf"),
        b"%PDF-1.4\nquarterly numbers\n%%EOF\n",
    )
    .unwrap();
    std::fs::write(work.path().join("logo.png"), png(64, 64)).unwrap();
    let records: Vec<Value> = (0..10)
        .map(|i| json!({"id": format!("r{i}"), "documents": ["Q3_report.final.pdf"], "images": ["logo.png"], "text": format!("Question {i} about the report.")}))
        .collect();
    let job = write_jsonl(work.path(), "docs.jsonl", &records);
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    let out = bb(
        work.path(),
        &[
            "run",
            &job,
            "--model",
            CLAUDE,
            "--endpoint-url",
            &url,
            "--out",
            "run",
            "--quiet",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stats = server.stats();
    let pdf = &stats.attachments["document/pdf"];
    assert_eq!(pdf.count, 10);
    // Every call's document arrived under its name (a list that stayed empty would pass an
    // `all`).
    assert_eq!(pdf.names, vec!["Q3 report final"; 10]);
    let files = &summary(work.path(), "run")["files"];
    assert_eq!(files["read"], 2, "each file read once");
    assert_eq!(files["reused"], 18);
}

#[tokio::test]
async fn cache_prompt_counts_cache_tokens_and_their_cost() {
    let work = tempfile::tempdir().unwrap();
    let records: Vec<Value> = (0..6)
        .map(
            |i| json!({"id": format!("r{i}"), "text": format!("Ticket {i}: the parcel was late.")}),
        )
        .collect();
    let job = write_jsonl(work.path(), "job.jsonl", &records);
    let instructions =
        "You are a support analyst. Classify the ticket and explain briefly. ".repeat(20);
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    // us-east-1 serves Claude 3.5 Haiku through its US profile only.
    let model = "us.anthropic.claude-3-5-haiku-20241022-v1:0";
    let out = bb(
        work.path(),
        &[
            "run",
            &job,
            "--model",
            model,
            "--endpoint-url",
            &url,
            "--out",
            "run",
            "--quiet",
            "--system",
            &instructions,
            "--cache-prompt",
            "--concurrency",
            "1",
            "--max-concurrency",
            "1",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let prefix = instructions.len().div_ceil(4) as u64;
    let results = lines(work.path(), "run");
    assert_eq!(
        results["r0"]["usage"]["cache_write_input_tokens"]
            .as_u64()
            .unwrap(),
        prefix
    );
    for i in 1..6 {
        let usage = &results[&format!("r{i}")]["usage"];
        assert_eq!(
            usage["cache_read_input_tokens"].as_u64().unwrap(),
            prefix,
            "r{i}"
        );
        assert_eq!(usage["cache_write_input_tokens"], 0);
    }
    let s = summary(work.path(), "run");
    assert_eq!(
        s["usage"]["cache_read_input_tokens"].as_u64().unwrap(),
        5 * prefix
    );
    assert_eq!(
        s["usage"]["cache_write_input_tokens"].as_u64().unwrap(),
        prefix
    );
    let stats = server.stats();
    assert_eq!(stats.cache_read_input_tokens, 5 * prefix);
    // Claude 3.5 Haiku: 0.80 in, 4.00 out, 0.08 cache read, 1.00 cache write per million.
    let u = &s["usage"];
    let expected = (u["input_tokens"].as_f64().unwrap() * 0.8
        + u["output_tokens"].as_f64().unwrap() * 4.0
        + u["cache_read_input_tokens"].as_f64().unwrap() * 0.08
        + u["cache_write_input_tokens"].as_f64().unwrap() * 1.0)
        / 1e6;
    assert!((s["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-6);
}

#[tokio::test]
async fn stream_gives_the_same_results_as_converse() {
    let work = tempfile::tempdir().unwrap();
    let records: Vec<Value> = (0..20)
        .map(|i| json!({"id": format!("r{i}"), "text": format!("Record {i} is about streaming. It has a second sentence. And a third.")}))
        .collect();
    let job = write_jsonl(work.path(), "job.jsonl", &records);
    let server = server(ServerConfig {
        tokens_per_sec: 2000.0,
        ..ServerConfig::default()
    })
    .await;
    let url = server.url();
    let plain = bb(
        work.path(),
        &[
            "run",
            &job,
            "--model",
            CLAUDE,
            "--endpoint-url",
            &url,
            "--out",
            "plain",
            "--quiet",
            "--max-tokens",
            "12",
        ],
    )
    .await;
    assert_eq!(plain.status.code(), Some(0), "{}", stderr(&plain));
    let streamed = bb(
        work.path(),
        &[
            "run",
            &job,
            "--model",
            CLAUDE,
            "--endpoint-url",
            &url,
            "--out",
            "streamed",
            "--quiet",
            "--max-tokens",
            "12",
            "--stream",
        ],
    )
    .await;
    assert_eq!(streamed.status.code(), Some(0), "{}", stderr(&streamed));
    let (a, b) = (lines(work.path(), "plain"), lines(work.path(), "streamed"));
    assert_eq!(a.len(), 20);
    for (id, line) in &a {
        let other = &b[id];
        for field in ["output", "stop_reason", "usage"] {
            assert_eq!(line[field], other[field], "{id} {field}");
        }
        assert!(line.get("ttft_ms").is_none());
        assert!(other["ttft_ms"].as_u64().is_some(), "{other}");
    }
    assert_eq!(server.stats().by_route["converse-stream"], 20);
    let s = summary(work.path(), "streamed");
    assert!(s["ttft_ms"]["p50"].as_u64().is_some(), "{s}");
    assert_eq!(s["usage"], summary(work.path(), "plain")["usage"]);
}

#[tokio::test]
async fn csv_names_its_image_column() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("a.png"), png(75, 10)).unwrap();
    std::fs::write(work.path().join("b.gif"), gif(75, 20)).unwrap();
    std::fs::write(
        work.path().join("photos.csv"),
        "sku,photo,question\r\nS1,a.png,What is shown?\r\nS2,a.png; b.gif,Compare them.\r\nS3,,No image here.\r\n",
    )
    .unwrap();
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    let out = bb(
        work.path(),
        &[
            "run",
            "photos.csv",
            "--model",
            CLAUDE,
            "--endpoint-url",
            &url,
            "--out",
            "run",
            "--quiet",
            "--image-column",
            "photo",
            "--prompt-template",
            "{question}",
            "--keep-fields",
            "sku",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stats = server.stats();
    assert_eq!(stats.attachments["image/png"].count, 2);
    assert_eq!(stats.attachments["image/gif"].count, 1);
    let results = read_lines(&work.path().join("run"));
    let s2 = results.iter().find(|l| l["fields"]["sku"] == "S2").unwrap();
    // 75 x 10 / 750 + 75 x 20 / 750 image tokens, plus "Compare them." (13 chars, 4 tokens).
    assert_eq!(s2["usage"]["input_tokens"], 1 + 2 + 4);
}
