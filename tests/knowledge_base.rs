//! Knowledge Bases end to end: the real `aws-sdk-bedrockagentruntime` client against the
//! local server's Retrieve and RetrieveAndGenerate (every field parsed, citations pointing
//! at real chunks, errors as Bedrock sends them), and the binary's `--mode retrieve|rag`
//! (retrieval scores checked by hand, the fatal stop on an unknown knowledge base, resume
//! after Ctrl-C).

mod common;

use std::path::Path;
use std::time::Duration;

use aws_sdk_bedrockagentruntime::Client;
use aws_sdk_bedrockagentruntime::config::retry::RetryConfig;
use aws_sdk_bedrockagentruntime::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_bedrockagentruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockagentruntime::types::{
    KnowledgeBaseQuery, KnowledgeBaseRetrievalConfiguration,
    KnowledgeBaseRetrieveAndGenerateConfiguration, KnowledgeBaseVectorSearchConfiguration,
    RetrieveAndGenerateConfiguration, RetrieveAndGenerateInput, RetrieveAndGenerateType,
};
use bedrock_batch::local_server::ServerConfig;
use common::{
    CLAUDE, bb, read_lines, read_summary, run_fresh, run_interrupted, server, stderr, write_jsonl,
};
use serde_json::{Value, json};

const BUCKET: &str = "s3://knowledge-base-kb12345678/";

/// A corpus of three files, one chunk each, with words no other file shares.
fn corpus(dir: &Path) -> std::path::PathBuf {
    let kb = dir.join("corpus");
    std::fs::create_dir_all(kb.join("policies")).unwrap();
    std::fs::write(
        kb.join("returns.md"),
        "# Returns\n\nRefunds reach the original card within five business days. Gift cards cannot be returned.",
    )
    .unwrap();
    std::fs::write(
        kb.join("shipping.txt"),
        "Parcels leave the Lisbon warehouse every weekday. Express delivery costs nine euros.",
    )
    .unwrap();
    std::fs::write(
        kb.join("policies/warranty.md"),
        "Jackets carry a two-year warranty against stitching defects. Send a photo to claim it.",
    )
    .unwrap();
    kb
}

fn client(url: &str) -> Client {
    let config = aws_sdk_bedrockagentruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(Credentials::new(
            "AKIDLOCALTEST",
            "local-test-secret",
            None,
            None,
            "tests",
        ))
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

fn arn(model: &str) -> String {
    format!("arn:aws:bedrock:us-east-1::foundation-model/{model}")
}

fn rag_configuration(kb: &str, model_arn: &str) -> RetrieveAndGenerateConfiguration {
    RetrieveAndGenerateConfiguration::builder()
        .r#type(RetrieveAndGenerateType::KnowledgeBase)
        .knowledge_base_configuration(
            KnowledgeBaseRetrieveAndGenerateConfiguration::builder()
                .knowledge_base_id(kb)
                .model_arn(model_arn)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

fn question(text: &str) -> RetrieveAndGenerateInput {
    RetrieveAndGenerateInput::builder()
        .text(text)
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_sdk_retrieves_and_generates_with_citations() {
    let work = tempfile::tempdir().unwrap();
    let dir = corpus(work.path());
    let server = server(ServerConfig {
        knowledge_bases: vec![("KB12345678".into(), dir.clone())],
        ..ServerConfig::default()
    })
    .await;
    let client = client(&server.url());
    let corpus_texts: Vec<String> = ["returns.md", "shipping.txt", "policies/warranty.md"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap())
        .collect();

    let out = client
        .retrieve()
        .knowledge_base_id("KB12345678")
        .retrieval_query(
            KnowledgeBaseQuery::builder()
                .text("how many days until refunds reach my card")
                .build(),
        )
        .retrieval_configuration(
            KnowledgeBaseRetrievalConfiguration::builder()
                .vector_search_configuration(
                    KnowledgeBaseVectorSearchConfiguration::builder()
                        .number_of_results(2)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let results = out.retrieval_results();
    assert_eq!(results.len(), 2, "numberOfResults is honored");
    let uri = |r: &aws_sdk_bedrockagentruntime::types::KnowledgeBaseRetrievalResult| {
        r.location()
            .and_then(|l| l.s3_location())
            .and_then(|s| s.uri())
            .unwrap()
            .to_string()
    };
    assert_eq!(uri(&results[0]), format!("{BUCKET}returns.md"));
    for result in results {
        let content = result.content().unwrap();
        assert!(corpus_texts.iter().any(|t| t.contains(content.text())));
        assert_eq!(
            result.location().unwrap().r#type().as_str(),
            "S3",
            "the location type"
        );
        assert!(uri(result).starts_with(BUCKET));
        assert!(result.metadata().is_some());
    }
    let scores: Vec<f64> = results.iter().map(|r| r.score().unwrap()).collect();
    assert!(scores[0] > scores[1], "best first: {scores:?}");

    let out = client
        .retrieve_and_generate()
        .input(question(
            "Where do parcels leave from, and do jackets have a warranty?",
        ))
        .retrieve_and_generate_configuration(rag_configuration("KB12345678", &arn(CLAUDE)))
        .send()
        .await
        .unwrap();
    assert!(!out.session_id().is_empty());
    let output = out.output().unwrap().text();
    let citations = out.citations();
    assert!(citations.len() >= 2, "{citations:?}");
    let mut cited = Vec::new();
    for citation in citations {
        let part = citation
            .generated_response_part()
            .and_then(|p| p.text_response_part())
            .and_then(|p| p.text())
            .unwrap();
        assert!(output.contains(part), "{part:?} is part of {output:?}");
        let reference = &citation.retrieved_references()[0];
        let source = reference.content().unwrap().text();
        assert!(source.contains(part), "the citation quotes its source");
        assert!(
            corpus_texts.iter().any(|t| t.contains(source)),
            "the source is a real chunk"
        );
        cited.push(
            reference
                .location()
                .and_then(|l| l.s3_location())
                .and_then(|s| s.uri())
                .unwrap()
                .to_string(),
        );
    }
    assert!(
        cited.contains(&format!("{BUCKET}shipping.txt")),
        "{cited:?}"
    );
    assert!(
        cited.contains(&format!("{BUCKET}policies/warranty.md")),
        "{cited:?}"
    );
    let stats = server.stats();
    assert_eq!(stats.by_route["retrieve"], 1);
    assert_eq!(stats.by_route["retrieve-and-generate"], 1);
    server.shutdown().await;
}

#[tokio::test]
async fn the_sdk_gets_bedrocks_errors() {
    let work = tempfile::tempdir().unwrap();
    let server = server(ServerConfig {
        knowledge_bases: vec![("KB12345678".into(), corpus(work.path()))],
        ..ServerConfig::default()
    })
    .await;
    let client = client(&server.url());
    let err = client
        .retrieve()
        .knowledge_base_id("NOPE123456")
        .retrieval_query(KnowledgeBaseQuery::builder().text("x").build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
    assert!(
        err.as_service_error()
            .unwrap()
            .is_resource_not_found_exception()
    );
    if let SdkError::ServiceError(service) = &err {
        assert_eq!(service.raw().status().as_u16(), 404);
    }
    assert!(err.message().unwrap().contains("NOPE123456"));

    let err = client
        .retrieve_and_generate()
        .input(question("x"))
        .retrieve_and_generate_configuration(rag_configuration("NOPE123456", &arn(CLAUDE)))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_resource_not_found_exception()
    );

    for bad in [CLAUDE.to_string(), arn("acme.nothing-v1")] {
        let err = client
            .retrieve_and_generate()
            .input(question("x"))
            .retrieve_and_generate_configuration(rag_configuration("KB12345678", &bad))
            .send()
            .await
            .unwrap_err();
        assert!(
            err.as_service_error().unwrap().is_validation_exception(),
            "{bad}: {err:?}"
        );
    }
    server.shutdown().await;
}

/// The rank of the first expected URI among a line's retrieved ones, computed here apart
/// from the runner.
/// `--model us.anthropic...`: RetrieveAndGenerate gets the inference profile's ARN, in the
/// account STS GetCallerIdentity answered (asked once), and answers; a foundation-model ARN
/// of a model served only through profiles is refused as Bedrock refuses it.
#[tokio::test]
async fn a_rag_run_with_an_inference_profile_id_sends_the_profiles_arn() {
    let work = tempfile::tempdir().unwrap();
    let server = server(ServerConfig {
        knowledge_bases: vec![("KB1".into(), corpus(work.path()))],
        ..ServerConfig::default()
    })
    .await;
    let url = server.url();
    // What the local STS answers, asked with the real STS client.
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::Config::builder()
            .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
            .region(aws_sdk_sts::config::Region::new("us-east-1"))
            .endpoint_url(&url)
            .credentials_provider(aws_sdk_sts::config::Credentials::new(
                "AKIDLOCALTEST",
                "local-test-secret",
                None,
                None,
                "tests",
            ))
            .build(),
    );
    let identity = sts.get_caller_identity().send().await.unwrap();
    let account = identity.account().unwrap().to_string();
    assert_eq!(account.len(), 12, "{identity:?}");
    assert!(identity.arn().unwrap().contains(&account));
    server.reset();

    let profile = format!("us.{CLAUDE}");
    let job = write_jsonl(
        work.path(),
        "q.jsonl",
        &[
            json!({"id": "a", "text": "When do refunds reach the original card?"}),
            json!({"id": "b", "text": "What does express delivery cost?"}),
            json!({"id": "c", "text": "How long is the jacket warranty?"}),
        ],
    );
    let run = run_fresh(
        work.path(),
        &[
            &job,
            "--mode",
            "rag",
            "--knowledge-base-id",
            "KB1",
            "--model",
            &profile,
            "--endpoint-url",
            &url,
            "--region",
            "us-east-1",
        ],
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let lines = run.lines();
    assert_eq!(lines.len(), 3);
    assert!(
        lines
            .iter()
            .all(|l| l["status"] == "ok" && l["model"] == profile.as_str())
    );
    let stats = server.stats();
    let profile_arn = format!("arn:aws:bedrock:us-east-1:{account}:inference-profile/{profile}");
    assert_eq!(stats.model_arns, [(profile_arn, 3)].into_iter().collect());
    assert_eq!(stats.caller_identity_calls, 1, "asked once a run");

    // Claude Sonnet 4.5 is served through inference profiles only.
    let sonnet = "anthropic.claude-sonnet-4-5-20250929-v1:0";
    let err = client(&url)
        .retrieve_and_generate()
        .input(question("When do refunds reach the original card?"))
        .retrieve_and_generate_configuration(rag_configuration("KB1", &arn(sonnet)))
        .send()
        .await
        .unwrap_err();
    let SdkError::ServiceError(service) = err else {
        panic!("a service error");
    };
    assert!(service.err().is_validation_exception(), "{service:?}");
    assert_eq!(
        service.err().message(),
        Some(
            format!("Invocation of model ID {sonnet} with on-demand throughput isn't supported. Retry your request with the ID or ARN of an inference profile that contains this model.")
                .as_str()
        )
    );
    // ... and with the binary, every record would get it: the run stops (exit 3).
    let run = run_fresh(
        work.path(),
        &[
            &job,
            "--mode",
            "rag",
            "--knowledge-base-id",
            "KB1",
            "--model",
            sonnet,
            "--endpoint-url",
            &url,
        ],
    )
    .await;
    assert_eq!(run.code(), 3, "{}", run.stderr());
    assert!(
        run.stderr()
            .contains("with on-demand throughput isn't supported"),
        "{}",
        run.stderr()
    );
    server.shutdown().await;
}

fn rank_by_hand(line: &Value, expected: &[&str]) -> Option<usize> {
    let mut seen: Vec<&str> = Vec::new();
    for passage in line["retrieved"].as_array().unwrap() {
        let uri = passage["uri"].as_str().unwrap();
        if !seen.contains(&uri) {
            seen.push(uri);
        }
    }
    seen.iter()
        .position(|u| expected.contains(u))
        .map(|i| i + 1)
}

#[tokio::test]
async fn a_retrieve_run_scores_hit_rate_and_mrr() {
    let work = tempfile::tempdir().unwrap();
    corpus(work.path());
    let kb = "s3://knowledge-base-localkbase/";
    let questions = [
        ("a", "refunds to the original card", vec!["returns.md"]),
        ("b", "express delivery euros", vec!["shipping.txt"]),
        (
            "c",
            "stitching defects warranty photo",
            vec!["missing.md", "policies/warranty.md"],
        ),
        ("d", "gift cards", vec!["missing.md"]),
        ("e", "no expected field here", vec![]),
    ];
    let records: Vec<Value> = questions
        .iter()
        .map(|(id, q, expected)| {
            let mut record = json!({"id": id, "question": q});
            if !expected.is_empty() {
                let uris: Vec<String> = expected.iter().map(|e| format!("{kb}{e}")).collect();
                record["expected"] = json!(uris);
            }
            record
        })
        .collect();
    let job = write_jsonl(work.path(), "questions.jsonl", &records);
    let run = run_fresh(
        work.path(),
        &[
            &job,
            "--mode",
            "retrieve",
            "--local",
            "--knowledge-base-dir",
            "corpus",
            "--top-k",
            "2",
            "--prompt-template",
            "{question}",
            "--expected-field",
            "expected",
            "--quiet",
        ],
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let lines = run.by_id();
    let (mut scored, mut hits, mut rr) = (0, 0, 0.0);
    for (id, _, expected) in &questions {
        let line = &lines[*id];
        assert_eq!(
            line["model"], "LOCALKBASE",
            "a retrieval is counted under its KB"
        );
        assert!(line.get("usage").is_none(), "no usage is reported: {line}");
        let retrieved = line["retrieved"].as_array().unwrap();
        assert_eq!(retrieved.len(), 2);
        for passage in retrieved {
            assert!(passage["text"].as_str().is_some_and(|t| !t.is_empty()));
            assert!(passage["score"].as_f64().is_some());
            assert!(passage["uri"].as_str().unwrap().starts_with(kb));
        }
        if expected.is_empty() {
            assert!(line.get("hit").is_none() && line.get("rank").is_none());
            continue;
        }
        let expected: Vec<String> = expected.iter().map(|e| format!("{kb}{e}")).collect();
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        let rank = rank_by_hand(line, &expected);
        assert_eq!(line["hit"], json!(rank.is_some()), "{line}");
        assert_eq!(line["rank"], json!(rank), "{line}");
        scored += 1;
        if let Some(rank) = rank {
            hits += 1;
            rr += 1.0 / rank as f64;
        }
    }
    // By hand: a, b and c are found first (c's first expected source does not exist, its
    // second does); d's source does not exist.
    assert_eq!(lines["a"]["rank"], 1);
    assert_eq!(lines["b"]["rank"], 1);
    assert_eq!(lines["c"]["rank"], 1);
    assert_eq!(lines["d"]["hit"], false);
    assert_eq!(lines["d"]["rank"], Value::Null);
    assert_eq!((scored, hits), (4, 3));
    let summary = run.summary();
    let retrieval = &summary["retrieval"];
    assert_eq!(retrieval["k"], 2);
    assert_eq!(retrieval["scored"], 4);
    assert_eq!(retrieval["hits"], 3);
    assert_eq!(retrieval["hit_rate"], 0.75);
    let mrr = retrieval["mrr"].as_f64().unwrap();
    assert!((mrr - rr / 4.0).abs() < 1e-4, "{mrr} vs {}", rr / 4.0);
    assert_eq!(summary["usage_reported"], false);
    assert!(
        summary["usage_note"]
            .as_str()
            .unwrap()
            .contains("no token usage")
    );
    assert_eq!(summary["cost_usd"], Value::Null);
    assert_eq!(summary["records"]["ok"], 5);
}

#[tokio::test]
async fn a_rag_run_writes_answers_and_citations() {
    let work = tempfile::tempdir().unwrap();
    corpus(work.path());
    let job = write_jsonl(
        work.path(),
        "questions.jsonl",
        &[
            json!({"id": "a", "text": "When do refunds reach the original card?", "expected": "s3://knowledge-base-localkbase/returns.md"}),
            json!({"id": "b", "text": "What does express delivery cost?", "expected": "s3://knowledge-base-localkbase/shipping.txt"}),
        ],
    );
    let run = run_fresh(
        work.path(),
        &[
            &job,
            "--mode",
            "rag",
            "--model",
            CLAUDE,
            "--local",
            "--knowledge-base-dir",
            "corpus",
            "--expected-field",
            "expected",
            "--max-tokens",
            "200",
            "--keep-fields",
            "expected",
            "--quiet",
        ],
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let lines = run.by_id();

    // The export keeps what a knowledge-base line says: citations, hit, rank, kept fields.
    let dir = run.dir.display().to_string();
    let export = bb(
        work.path(),
        &["export", &dir, "--format", "jsonl", "--out", "-"],
    )
    .await;
    assert_eq!(export.status.code(), Some(0), "{}", stderr(&export));
    for row in String::from_utf8_lossy(&export.stdout).lines() {
        let row: Value = serde_json::from_str(row).unwrap();
        let line = &lines[row["id"].as_str().unwrap()];
        let citations: Value = serde_json::from_str(row["citations"].as_str().unwrap()).unwrap();
        assert_eq!(citations, line["citations"], "{row}");
        assert_eq!(row["hit"], true, "{row}");
        assert_eq!(row["rank"], 1, "{row}");
        assert_eq!(row["field.expected"], line["fields"]["expected"], "{row}");
    }

    for id in ["a", "b"] {
        let line = &lines[id];
        assert_eq!(line["model"], CLAUDE);
        let output = line["output"].as_str().unwrap();
        let citations = line["citations"].as_array().unwrap();
        assert!(!citations.is_empty(), "{line}");
        for citation in citations {
            let text = citation["text"].as_str().unwrap();
            assert!(output.contains(text));
            let source = &citation["sources"][0];
            assert!(source["text"].as_str().unwrap().contains(text));
            assert!(
                source["uri"]
                    .as_str()
                    .unwrap()
                    .starts_with("s3://knowledge-base-localkbase/")
            );
        }
        assert_eq!(line["hit"], true, "{line}");
        assert_eq!(line["rank"], 1, "{line}");
        assert!(line.get("usage").is_none());
    }
    let summary = run.summary();
    assert_eq!(summary["usage_reported"], false);
    assert_eq!(summary["cost_usd"], Value::Null, "unknown, not 0");
    assert_eq!(summary["by_model"][CLAUDE]["cost_usd"], Value::Null);
    assert_eq!(summary["retrieval"]["hit_rate"], 1.0);
    assert_eq!(summary["retrieval"]["mrr"], 1.0);
}

#[tokio::test]
async fn an_unknown_knowledge_base_stops_the_run_with_a_hint_naming_it() {
    let work = tempfile::tempdir().unwrap();
    let server = server(ServerConfig {
        knowledge_bases: vec![("KB12345678".into(), corpus(work.path()))],
        ..ServerConfig::default()
    })
    .await;
    let records: Vec<Value> = (0..50)
        .map(|i| json!({"text": format!("question {i}")}))
        .collect();
    let job = write_jsonl(work.path(), "q.jsonl", &records);
    let url = server.url();
    let run = run_fresh(
        work.path(),
        &[
            &job,
            "--mode",
            "retrieve",
            "--knowledge-base-id",
            "NOPE123456",
            "--endpoint-url",
            &url,
        ],
    )
    .await;
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let summary = run.summary();
    assert_eq!(summary["aborted"]["kind"], "resource_not_found");
    let hint = summary["aborted"]["hint"].as_str().unwrap();
    assert!(hint.contains("knowledge base id NOPE123456"), "{hint}");
    assert!(run.stderr().contains("NOPE123456"), "{}", run.stderr());
    assert!(
        server.stats().requests < 50,
        "stopped early: {} requests",
        server.stats().requests
    );
    assert_eq!(summary["records"]["total"], run.lines().len() as u64);
    server.shutdown().await;
}

#[tokio::test]
async fn a_retrieve_run_resumes_after_ctrl_c() {
    let work = tempfile::tempdir().unwrap();
    let server = server(ServerConfig {
        knowledge_bases: vec![("KB12345678".into(), corpus(work.path()))],
        latency: Duration::from_millis(100),
        ..ServerConfig::default()
    })
    .await;
    let n = 300;
    let records: Vec<Value> = (0..n)
        .map(|i| json!({"id": i, "text": format!("refund card question {i}"), "expected": format!("{BUCKET}returns.md")}))
        .collect();
    let job = write_jsonl(work.path(), "q.jsonl", &records);
    let url = server.url();
    let args = [
        "run",
        &job,
        "--mode",
        "retrieve",
        "--knowledge-base-id",
        "KB12345678",
        "--expected-field",
        "expected",
        "--endpoint-url",
        &url,
        "--out",
        "run",
        "--max-concurrency",
        "8",
    ];
    // Once the server has answered a query, a record is done (calls in flight finish within
    // the grace period) and most are still to do.
    let output = run_interrupted(
        work.path(),
        &args,
        "INT",
        "the server's first answer",
        |_| server.stats().status(200) > 0,
    )
    .await;
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    let run_dir = work.path().join("run");
    let done_then = read_summary(&run_dir)["records"]["total"].as_u64().unwrap();
    assert!(done_then > 0 && done_then < n, "{done_then}");

    let resumed = bb(work.path(), &args).await;
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    let lines = read_lines(&run_dir);
    assert_eq!(lines.len() as u64, n);
    let mut ids: Vec<u64> = lines.iter().map(|l| l["id"].as_u64().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len() as u64, n, "each record once");
    let summary = read_summary(&run_dir);
    let hits = lines.iter().filter(|l| l["hit"] == true).count() as u64;
    assert_eq!(
        summary["retrieval"]["scored"], n,
        "the totals went on from the checkpoint"
    );
    assert_eq!(summary["retrieval"]["hits"], hits);
    assert_eq!(hits, n, "every query names the refund document");
    server.shutdown().await;
}

#[tokio::test]
async fn knowledge_base_flags_are_checked_and_dry_run_needs_no_service() {
    let work = tempfile::tempdir().unwrap();
    let job = write_jsonl(work.path(), "q.jsonl", &[json!({"text": "a question"})]);
    for (args, fragment) in [
        (vec!["--mode", "retrieve"], "needs --knowledge-base-id"),
        (
            vec![
                "--mode",
                "retrieve",
                "--knowledge-base-id",
                "KB12345678",
                "--model",
                CLAUDE,
            ],
            "calls no model",
        ),
        (
            vec!["--mode", "rag", "--knowledge-base-id", "KB12345678"],
            "needs --model",
        ),
        (
            vec![
                "--mode",
                "rag",
                "--knowledge-base-id",
                "KB12345678",
                "--model",
                CLAUDE,
                "--generation-template",
                "x",
            ],
            "$search_results$",
        ),
        (
            vec!["--model", CLAUDE, "--expected-field", "e"],
            "--expected-field applies",
        ),
    ] {
        let mut full = vec![job.as_str()];
        full.extend(args.iter().copied());
        let run = run_fresh(work.path(), &full).await;
        assert_eq!(run.code(), 2, "{args:?}: {}", run.stderr());
        assert!(
            run.stderr().contains(fragment),
            "{args:?}: {}",
            run.stderr()
        );
    }
    let run = run_fresh(
        work.path(),
        &[
            &job,
            "--mode",
            "retrieve",
            "--knowledge-base-id",
            "KB12345678",
            "--dry-run",
        ],
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(
        run.stderr().contains("estimated cost: unknown"),
        "{}",
        run.stderr()
    );
}
