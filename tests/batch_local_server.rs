//! Batch Inference against the local server, driven by the real `aws-sdk-bedrock` (control
//! plane) and `aws-sdk-s3` clients: input uploaded and output read through the server's S3
//! endpoint, jobs created (idempotently), polled, stopped, listed, and their answers
//! checked against what the on-demand routes answer for the same bodies.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_bedrock::Client as Bedrock;
use aws_sdk_bedrock::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_bedrock::error::ProvideErrorMetadata;
use aws_sdk_bedrock::operation::get_model_invocation_job::GetModelInvocationJobOutput;
use aws_sdk_bedrock::types::{
    ModelInvocationJobInputDataConfig, ModelInvocationJobOutputDataConfig,
    ModelInvocationJobS3InputDataConfig, ModelInvocationJobS3OutputDataConfig,
    ModelInvocationJobStatus, ModelInvocationType, S3InputFormat,
};
use aws_sdk_s3::Client as S3;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bedrock_batch::local_server::{BatchFaults, LocalServer, ServerConfig};
use common::*;
use serde_json::{Value, json};

const BUCKET: &str = "batch-bucket";
const ROLE: &str = "arn:aws:iam::111122223333:role/BatchRole";
const POLLS: usize = 400;

fn config() -> ServerConfig {
    ServerConfig {
        s3_buckets: vec![BUCKET.to_string()],
        batch_step: Duration::from_millis(5),
        batch_records_per_sec: 0,
        ..ServerConfig::default()
    }
}

fn credentials() -> Credentials {
    Credentials::new("AKIDLOCALTEST", "local-test-secret", None, None, "tests")
}

fn bedrock_client(server: &LocalServer) -> Bedrock {
    let config = aws_sdk_bedrock::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-west-2"))
        .endpoint_url(server.url())
        .credentials_provider(credentials())
        .build();
    Bedrock::from_conf(config)
}

fn s3_client(server: &LocalServer) -> S3 {
    s3_client_with(server, credentials())
}

fn s3_client_with(server: &LocalServer, credentials: Credentials) -> S3 {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-west-2"))
        .endpoint_url(server.s3_url())
        .force_path_style(true)
        .credentials_provider(credentials)
        .build();
    S3::from_conf(config)
}

fn converse_input(i: usize) -> Value {
    json!({
        "messages": [{"role": "user", "content": [{"text": format!("Record {i} asks a question. The answer is short. Nothing else matters.")}]}],
        "inferenceConfig": {"maxTokens": 40},
    })
}

fn jsonl(records: &[(String, Value)]) -> Vec<u8> {
    records
        .iter()
        .map(|(id, input)| json!({"recordId": id, "modelInput": input}).to_string() + "\n")
        .collect::<String>()
        .into_bytes()
}

fn converse_records(n: usize) -> Vec<(String, Value)> {
    (0..n)
        .map(|i| (format!("REC{i:08}"), converse_input(i)))
        .collect()
}

async fn put(s3: &S3, key: &str, body: Vec<u8>) {
    s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .expect("put_object");
}

async fn get_text(s3: &S3, key: &str) -> String {
    let object = s3
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|err| panic!("get_object {key}: {err:?}"));
    let bytes = object.body.collect().await.expect("body").into_bytes();
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

struct JobSpec<'a> {
    name: &'a str,
    token: Option<&'a str>,
    model: &'a str,
    kind: ModelInvocationType,
    input: &'a str,
    output: &'a str,
    timeout_hours: Option<i32>,
    role: &'a str,
}

impl Default for JobSpec<'_> {
    fn default() -> Self {
        JobSpec {
            name: "job",
            token: None,
            model: CLAUDE,
            kind: ModelInvocationType::Converse,
            input: "s3://batch-bucket/in/",
            output: "s3://batch-bucket/out/",
            timeout_hours: Some(24),
            role: ROLE,
        }
    }
}

async fn create(
    client: &Bedrock,
    spec: &JobSpec<'_>,
) -> Result<
    String,
    aws_sdk_bedrock::error::SdkError<
        aws_sdk_bedrock::operation::create_model_invocation_job::CreateModelInvocationJobError,
    >,
> {
    let input = ModelInvocationJobInputDataConfig::S3InputDataConfig(
        ModelInvocationJobS3InputDataConfig::builder()
            .s3_uri(spec.input)
            .s3_input_format(S3InputFormat::Jsonl)
            .build()
            .unwrap(),
    );
    let output = ModelInvocationJobOutputDataConfig::S3OutputDataConfig(
        ModelInvocationJobS3OutputDataConfig::builder()
            .s3_uri(spec.output)
            .build()
            .unwrap(),
    );
    let mut request = client
        .create_model_invocation_job()
        .job_name(spec.name)
        .role_arn(spec.role)
        .model_id(spec.model)
        .model_invocation_type(spec.kind.clone())
        .input_data_config(input)
        .output_data_config(output)
        .set_timeout_duration_in_hours(spec.timeout_hours);
    if let Some(token) = spec.token {
        request = request.client_request_token(token);
    }
    request.send().await.map(|out| out.job_arn().to_string())
}

async fn get(client: &Bedrock, arn: &str) -> GetModelInvocationJobOutput {
    client
        .get_model_invocation_job()
        .job_identifier(arn)
        .send()
        .await
        .expect("get_model_invocation_job")
}

/// Polls until the job has ended; panics after `POLLS` polls.
async fn wait_ended(client: &Bedrock, arn: &str) -> GetModelInvocationJobOutput {
    for _ in 0..POLLS {
        let job = get(client, arn).await;
        match job.status() {
            Some(
                ModelInvocationJobStatus::Completed
                | ModelInvocationJobStatus::Failed
                | ModelInvocationJobStatus::Stopped
                | ModelInvocationJobStatus::PartiallyCompleted
                | ModelInvocationJobStatus::Expired,
            ) => return job,
            _ => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
    panic!("job {arn} did not end in time");
}

fn job_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

/// The output lines by record id.
async fn output_lines(s3: &S3, key: &str) -> BTreeMap<String, Value> {
    let text = get_text(s3, key).await;
    let mut lines = BTreeMap::new();
    for line in text.lines() {
        let value: Value = serde_json::from_str(line).expect("an output line is JSON");
        let id = value["recordId"].as_str().expect("recordId").to_string();
        assert!(
            lines.insert(id.clone(), value).is_none(),
            "{id} answered twice"
        );
    }
    lines
}

/// An answer without what only an on-demand call reports: its latency and the service
/// tier that served it (Batch Inference is not a tier).
fn without_metrics(mut body: Value) -> Value {
    if let Some(object) = body.as_object_mut() {
        object.remove("metrics");
        object.remove("serviceTier");
    }
    body
}

#[tokio::test]
async fn a_converse_job_runs_to_completion_through_s3() {
    let server = server(config()).await;
    let (bedrock, s3) = (bedrock_client(&server), s3_client(&server));
    let records = converse_records(150);
    put(&s3, "in/part-00001.jsonl", jsonl(&records)).await;

    let spec = JobSpec {
        name: "converse-job-1",
        token: Some("run1-part-00001"),
        ..JobSpec::default()
    };
    let arn = create(&bedrock, &spec).await.expect("create");
    assert!(
        arn.starts_with("arn:aws:bedrock:us-west-2:111122223333:model-invocation-job/"),
        "{arn}"
    );
    let id = job_id(&arn);
    assert_eq!(id.len(), 12);
    let again = create(&bedrock, &spec).await.expect("idempotent create");
    assert_eq!(again, arn, "the same token returns the same job");
    let stats = server.stats();
    assert_eq!(stats.batch.jobs_created, 1, "no second job was created");
    assert_eq!(stats.batch.create_calls, 2);

    let job = wait_ended(&bedrock, &arn).await;
    assert_eq!(job.status(), Some(&ModelInvocationJobStatus::Completed));
    assert_eq!(job.job_name(), Some("converse-job-1"));
    assert_eq!(job.client_request_token(), Some("run1-part-00001"));
    assert_eq!(job.total_record_count(), Some(150));
    assert_eq!(job.processed_record_count(), Some(150));
    assert_eq!(job.success_record_count(), Some(150));
    assert_eq!(job.error_record_count(), Some(0));
    assert_eq!(job.timeout_duration_in_hours(), Some(24));
    assert_eq!(
        job.model_invocation_type(),
        Some(&ModelInvocationType::Converse)
    );
    assert!(job.end_time().is_some() && job.job_expiration_time().is_some());
    // A job id works as well as its ARN.
    assert_eq!(get(&bedrock, id).await.job_arn(), arn);

    let lines = output_lines(&s3, &format!("out/{id}/part-00001.jsonl.out")).await;
    assert_eq!(lines.len(), 150, "every record answered once");
    let text = get_text(&s3, &format!("out/{id}/part-00001.jsonl.out")).await;
    let first_ids: Vec<&str> = text
        .lines()
        .take(5)
        .map(|l| &l[l.find("REC").unwrap()..l.find("REC").unwrap() + 11])
        .collect();
    assert_ne!(
        first_ids,
        [
            "REC00000000",
            "REC00000001",
            "REC00000002",
            "REC00000003",
            "REC00000004"
        ],
        "lines are shuffled"
    );
    let (mut input_tokens, mut output_tokens) = (0, 0);
    for (record_id, input) in &records {
        let line = &lines[record_id];
        assert_eq!(&line["modelInput"], input);
        let (status, body) = raw_http(
            &server.url(),
            "POST",
            &format!("/model/{CLAUDE}/converse"),
            input.to_string().as_bytes(),
        )
        .await;
        assert_eq!(status, 200);
        let on_demand: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            without_metrics(line["modelOutput"].clone()),
            without_metrics(on_demand.clone()),
            "{record_id}"
        );
        input_tokens += on_demand["usage"]["inputTokens"].as_u64().unwrap();
        output_tokens += on_demand["usage"]["outputTokens"].as_u64().unwrap();
    }
    let manifest: Value =
        serde_json::from_str(&get_text(&s3, &format!("out/{id}/manifest.json.out")).await).unwrap();
    assert_eq!(
        manifest,
        json!({
            "totalRecordCount": 150, "processedRecordCount": 150, "successRecordCount": 150,
            "errorRecordCount": 0, "inputTokenCount": input_tokens, "outputTokenCount": output_tokens,
        })
    );
    let stats = server.stats();
    assert_eq!(stats.batch.by_status.get("Completed"), Some(&1));
    assert_eq!(stats.batch.records_processed, 150);
    server.shutdown().await;
}

#[tokio::test]
async fn converse_records_with_tools_fail_and_structured_records_are_answered() {
    const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
    let server = server(ServerConfig {
        batch_min_records: 10,
        ..config()
    })
    .await;
    let (bedrock, s3) = (bedrock_client(&server), s3_client(&server));
    let schema = json!({"type": "object", "properties": {
        "category": {"type": "string", "enum": ["billing", "bug", "other"]},
        "urgency": {"type": "integer", "minimum": 1, "maximum": 5}},
        "required": ["category", "urgency"]});
    let mut records = converse_records(10);
    records[3].1["toolConfig"] = json!({"tools": [{"toolSpec": {"name": "record_output",
        "inputSchema": {"json": schema}}}], "toolChoice": {"tool": {"name": "record_output"}}});
    records[5].1["outputConfig"] = json!({"textFormat": {"type": "json_schema",
        "structure": {"jsonSchema": {"schema": schema.to_string(), "name": "ticket"}}}});
    put(&s3, "in/part-00001.jsonl", jsonl(&records)).await;
    let spec = JobSpec {
        name: "converse-tools",
        model: SONNET,
        ..JobSpec::default()
    };
    let arn = create(&bedrock, &spec).await.expect("create");
    let job = wait_ended(&bedrock, &arn).await;
    assert_eq!(job.status(), Some(&ModelInvocationJobStatus::Completed));
    assert_eq!(job.success_record_count(), Some(9));
    assert_eq!(job.error_record_count(), Some(1));
    let lines = output_lines(&s3, &format!("out/{}/part-00001.jsonl.out", job_id(&arn))).await;
    let refused = &lines[&records[3].0];
    assert_eq!(refused["error"]["errorCode"], 400);
    assert_eq!(
        refused["error"]["errorMessage"],
        "Tool use isn't supported in batch inference jobs with the Converse API. Remove toolConfig from the record's modelInput and try again."
    );
    assert!(refused.get("modelOutput").is_none());
    let structured =
        &lines[&records[5].0]["modelOutput"]["output"]["message"]["content"][0]["text"];
    let data: Value = serde_json::from_str(structured.as_str().expect("a text block")).unwrap();
    assert!(
        jsonschema::validator_for(&schema).unwrap().is_valid(&data),
        "{data}"
    );
    for (i, (record_id, _)) in records.iter().enumerate() {
        if i != 3 {
            assert!(lines[record_id]["modelOutput"].is_object(), "{record_id}");
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn invoke_model_jobs_answer_native_bodies_and_record_errors() {
    let server = server(ServerConfig {
        batch_min_records: 10,
        batch_faults: BatchFaults {
            record_error: 0.2,
            ..BatchFaults::default()
        },
        ..config()
    })
    .await;
    let (bedrock, s3) = (bedrock_client(&server), s3_client(&server));
    let mut records: Vec<(String, Value)> = (0..60)
        .map(|i| {
            (
                format!("E{i}"),
                json!({"inputText": format!("text number {i} about refunds"), "dimensions": 256}),
            )
        })
        .collect();
    records.push(("BAD1".into(), json!({"inputText": ""})));
    put(&s3, "embed/a.jsonl", jsonl(&records[..30])).await;
    put(&s3, "embed/b.jsonl", jsonl(&records[30..])).await;
    put(&s3, "embed/notes.txt", b"not an input file".to_vec()).await;
    let arn = create(
        &bedrock,
        &JobSpec {
            name: "embed-job",
            model: TITAN_V2,
            kind: ModelInvocationType::InvokeModel,
            input: "s3://batch-bucket/embed/",
            output: "s3://batch-bucket/embed-out",
            ..JobSpec::default()
        },
    )
    .await
    .expect("create");
    let job = wait_ended(&bedrock, &arn).await;
    assert_eq!(job.status(), Some(&ModelInvocationJobStatus::Completed));
    assert_eq!(job.total_record_count(), Some(61));
    let id = job_id(&arn);
    let mut lines = output_lines(&s3, &format!("embed-out/{id}/a.jsonl.out")).await;
    lines.extend(output_lines(&s3, &format!("embed-out/{id}/b.jsonl.out")).await);
    assert_eq!(lines.len(), 61);
    let mut codes = BTreeMap::new();
    for (record_id, input) in &records {
        let line = &lines[record_id];
        if let Some(error) = line.get("error") {
            *codes
                .entry(error["errorCode"].as_u64().unwrap())
                .or_insert(0) += 1;
            assert!(
                error["errorMessage"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
            continue;
        }
        let (status, body) = raw_http(
            &server.url(),
            "POST",
            &format!("/model/{TITAN_V2}/invoke"),
            input.to_string().as_bytes(),
        )
        .await;
        assert_eq!(status, 200);
        let on_demand: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(line["modelOutput"], on_demand, "{record_id}");
    }
    let errors: u64 = codes.values().sum();
    assert_eq!(job.error_record_count(), Some(errors as i64));
    assert_eq!(job.success_record_count(), Some(61 - errors as i64));
    assert!(errors >= 3, "{codes:?}");
    assert!(
        codes.keys().all(|c| [400, 429, 500].contains(c)),
        "{codes:?}"
    );
    assert_eq!(
        lines["BAD1"]["error"]["errorCode"], 400,
        "an empty inputText is invalid"
    );
    server.shutdown().await;
}

fn error_code<E: ProvideErrorMetadata>(err: &aws_sdk_bedrock::error::SdkError<E>) -> String {
    err.as_service_error()
        .and_then(|e| e.code())
        .unwrap_or("not a service error")
        .to_string()
}

#[tokio::test]
async fn create_is_validated_like_bedrock() {
    let server = server(config()).await;
    let bedrock = bedrock_client(&server);
    put(
        &s3_client(&server),
        "in/x.jsonl",
        jsonl(&converse_records(100)),
    )
    .await;
    let cases = [
        JobSpec {
            name: "bad name",
            ..JobSpec::default()
        },
        JobSpec {
            name: "-lead",
            ..JobSpec::default()
        },
        JobSpec {
            role: "arn:aws:iam::123:role/x",
            ..JobSpec::default()
        },
        JobSpec {
            role: "role/x",
            ..JobSpec::default()
        },
        JobSpec {
            timeout_hours: Some(23),
            ..JobSpec::default()
        },
        JobSpec {
            timeout_hours: Some(169),
            ..JobSpec::default()
        },
        JobSpec {
            input: "https://batch-bucket/in/",
            ..JobSpec::default()
        },
        JobSpec {
            output: "s3://Bad_Bucket/out",
            ..JobSpec::default()
        },
        JobSpec {
            token: Some("bad_token"),
            ..JobSpec::default()
        },
    ];
    for spec in &cases {
        let err = create(&bedrock, spec).await.expect_err("invalid");
        assert_eq!(error_code(&err), "ValidationException", "{}", spec.name);
        let message = err
            .as_service_error()
            .and_then(|e| e.message())
            .unwrap_or("");
        assert!(
            message.contains("failed to satisfy constraint"),
            "{message}"
        );
    }
    let err = create(
        &bedrock,
        &JobSpec {
            timeout_hours: Some(23),
            ..JobSpec::default()
        },
    )
    .await
    .unwrap_err();
    assert!(err.as_service_error().unwrap().is_validation_exception());
    assert_eq!(server.stats().batch.jobs_created, 0);

    create(
        &bedrock,
        &JobSpec {
            name: "taken",
            token: Some("a1"),
            ..JobSpec::default()
        },
    )
    .await
    .expect("first");
    let err = create(
        &bedrock,
        &JobSpec {
            name: "taken",
            token: Some("b2"),
            ..JobSpec::default()
        },
    )
    .await
    .expect_err("a name in use");
    assert!(
        err.as_service_error().unwrap().is_conflict_exception(),
        "{err:?}"
    );

    let err = bedrock
        .get_model_invocation_job()
        .job_identifier("arn:aws:bedrock:us-west-2:111122223333:model-invocation-job/nosuchjob123")
        .send()
        .await
        .expect_err("unknown job");
    assert!(
        err.as_service_error()
            .unwrap()
            .is_resource_not_found_exception()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn jobs_that_cannot_run_fail_with_a_message() {
    let server = server(config()).await;
    let (bedrock, s3) = (bedrock_client(&server), s3_client(&server));
    put(&s3, "few/x.jsonl", jsonl(&converse_records(10))).await;
    put(&s3, "enough/x.jsonl", jsonl(&converse_records(100))).await;
    put(
        &s3,
        "broken/x.jsonl",
        b"{\"recordId\": \"A1\", \"modelInput\": {}}\nnot json\n".to_vec(),
    )
    .await;
    let few = create(
        &bedrock,
        &JobSpec {
            name: "few",
            input: "s3://batch-bucket/few/",
            ..JobSpec::default()
        },
    )
    .await
    .unwrap();
    let unknown = create(
        &bedrock,
        &JobSpec {
            name: "unknown",
            model: "acme.nothing-v1",
            input: "s3://batch-bucket/enough/",
            ..JobSpec::default()
        },
    )
    .await
    .unwrap();
    let broken = create(
        &bedrock,
        &JobSpec {
            name: "broken",
            input: "s3://batch-bucket/broken/x.jsonl",
            ..JobSpec::default()
        },
    )
    .await
    .unwrap();
    let empty = create(
        &bedrock,
        &JobSpec {
            name: "empty",
            input: "s3://batch-bucket/nothing/",
            ..JobSpec::default()
        },
    )
    .await
    .unwrap();
    for (arn, expected) in [
        (
            &few,
            "contains less records (10) than the required minimum of: 100",
        ),
        (&unknown, "model identifier is invalid"),
        (&broken, "line 2"),
        (&empty, "No .jsonl input files"),
    ] {
        let job = wait_ended(&bedrock, arn).await;
        assert_eq!(job.status(), Some(&ModelInvocationJobStatus::Failed));
        let message = job.message().unwrap_or("");
        assert!(message.contains(expected), "{message}");
    }
    assert_eq!(server.stats().batch.by_status.get("Failed"), Some(&4));
    server.shutdown().await;
}

#[tokio::test]
async fn a_stopped_job_keeps_the_output_so_far() {
    let server = server(ServerConfig {
        batch_records_per_sec: 100,
        ..config()
    })
    .await;
    let (bedrock, s3) = (bedrock_client(&server), s3_client(&server));
    put(&s3, "in/x.jsonl", jsonl(&converse_records(1000))).await;
    let arn = create(&bedrock, &JobSpec::default()).await.unwrap();
    let mut seen_progress = false;
    for _ in 0..POLLS {
        let job = get(&bedrock, &arn).await;
        if job.processed_record_count().unwrap_or(0) > 0 {
            assert_eq!(job.status(), Some(&ModelInvocationJobStatus::InProgress));
            seen_progress = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen_progress, "the counts grow while the job runs");
    bedrock
        .stop_model_invocation_job()
        .job_identifier(&arn)
        .send()
        .await
        .expect("stop");
    let job = get(&bedrock, &arn).await;
    assert!(
        matches!(
            job.status(),
            Some(ModelInvocationJobStatus::Stopping | ModelInvocationJobStatus::Stopped)
        ),
        "{:?}",
        job.status()
    );
    let job = wait_ended(&bedrock, &arn).await;
    assert_eq!(job.status(), Some(&ModelInvocationJobStatus::Stopped));
    let processed = job.processed_record_count().unwrap();
    assert!(processed > 0 && processed < 1000, "{processed}");
    let lines = output_lines(&s3, &format!("out/{}/x.jsonl.out", job_id(&arn))).await;
    assert_eq!(lines.len() as i64, processed);
    let err = bedrock
        .stop_model_invocation_job()
        .job_identifier(&arn)
        .send()
        .await
        .expect_err("an ended job cannot be stopped");
    assert!(
        err.as_service_error().unwrap().is_validation_exception(),
        "{err:?}"
    );

    // Stopped before it runs: no output.
    let early = create(
        &bedrock,
        &JobSpec {
            name: "early",
            ..JobSpec::default()
        },
    )
    .await
    .unwrap();
    bedrock
        .stop_model_invocation_job()
        .job_identifier(&early)
        .send()
        .await
        .unwrap();
    let job = wait_ended(&bedrock, &early).await;
    assert_eq!(job.status(), Some(&ModelInvocationJobStatus::Stopped));
    assert_eq!(job.processed_record_count(), Some(0));
    server.shutdown().await;
}

#[tokio::test]
async fn list_filters_and_paginates() {
    let server = server(config()).await;
    let (bedrock, s3) = (bedrock_client(&server), s3_client(&server));
    put(&s3, "in/x.jsonl", jsonl(&converse_records(100))).await;
    put(&s3, "few/x.jsonl", jsonl(&converse_records(1))).await;
    let mut arns = Vec::new();
    for name in ["alpha-1", "alpha-2", "alpha-3", "beta-1"] {
        arns.push(
            create(
                &bedrock,
                &JobSpec {
                    name,
                    ..JobSpec::default()
                },
            )
            .await
            .unwrap(),
        );
    }
    let failing = create(
        &bedrock,
        &JobSpec {
            name: "alpha-few",
            input: "s3://batch-bucket/few/",
            ..JobSpec::default()
        },
    )
    .await
    .unwrap();
    for arn in arns.iter().chain([&failing]) {
        wait_ended(&bedrock, arn).await;
    }

    let alpha = bedrock
        .list_model_invocation_jobs()
        .name_contains("alpha")
        .status_equals(ModelInvocationJobStatus::Completed)
        .sort_order(aws_sdk_bedrock::types::SortOrder::Ascending)
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = alpha
        .invocation_job_summaries()
        .iter()
        .map(|s| s.job_name())
        .collect();
    assert_eq!(names, ["alpha-1", "alpha-2", "alpha-3"]);
    let summary = &alpha.invocation_job_summaries()[0];
    assert_eq!(summary.processed_record_count(), Some(100));
    assert_eq!(summary.model_id(), CLAUDE);

    let failed = bedrock
        .list_model_invocation_jobs()
        .status_equals(ModelInvocationJobStatus::Failed)
        .send()
        .await
        .unwrap();
    assert_eq!(failed.invocation_job_summaries().len(), 1);
    assert!(failed.invocation_job_summaries()[0].message().is_some());

    let mut pages = bedrock
        .list_model_invocation_jobs()
        .max_results(2)
        .into_paginator()
        .send();
    let mut seen = Vec::new();
    let mut page_count = 0;
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        page_count += 1;
        assert!(page.invocation_job_summaries().len() <= 2);
        seen.extend(
            page.invocation_job_summaries()
                .iter()
                .map(|s| s.job_name().to_string()),
        );
    }
    assert_eq!(page_count, 3);
    assert_eq!(
        seen,
        ["alpha-few", "beta-1", "alpha-3", "alpha-2", "alpha-1"],
        "newest first"
    );

    let none = bedrock
        .list_model_invocation_jobs()
        .submit_time_after(aws_sdk_bedrock::primitives::DateTime::from_secs(
            4_000_000_000,
        ))
        .send()
        .await
        .unwrap();
    assert!(none.invocation_job_summaries().is_empty());
    let err = bedrock
        .list_model_invocation_jobs()
        .max_results(0)
        .send()
        .await
        .unwrap_err();
    assert!(err.as_service_error().unwrap().is_validation_exception());
    server.shutdown().await;
}

#[tokio::test]
async fn a_partial_job_leaves_records_unanswered() {
    let server = server(ServerConfig {
        batch_faults: BatchFaults {
            partial: 1.0,
            ..BatchFaults::default()
        },
        ..config()
    })
    .await;
    let (bedrock, s3) = (bedrock_client(&server), s3_client(&server));
    put(&s3, "in/x.jsonl", jsonl(&converse_records(120))).await;
    let arn = create(&bedrock, &JobSpec::default()).await.unwrap();
    let job = wait_ended(&bedrock, &arn).await;
    assert_eq!(
        job.status(),
        Some(&ModelInvocationJobStatus::PartiallyCompleted)
    );
    assert!(job.message().is_some());
    assert_eq!(job.total_record_count(), Some(120));
    assert_eq!(job.processed_record_count(), Some(60));
    let id = job_id(&arn);
    let lines = output_lines(&s3, &format!("out/{id}/x.jsonl.out")).await;
    assert_eq!(lines.len(), 60, "half of the records are answered");
    let manifest: Value =
        serde_json::from_str(&get_text(&s3, &format!("out/{id}/manifest.json.out")).await).unwrap();
    assert_eq!(manifest["totalRecordCount"], 120);
    assert_eq!(manifest["processedRecordCount"], 60);
    server.shutdown().await;

    let server = common::server(ServerConfig {
        batch_faults: BatchFaults {
            fail: 1.0,
            ..BatchFaults::default()
        },
        ..config()
    })
    .await;
    let (bedrock, s3c) = (bedrock_client(&server), s3_client(&server));
    put(&s3c, "in/x.jsonl", jsonl(&converse_records(120))).await;
    let arn = create(&bedrock, &JobSpec::default()).await.unwrap();
    let job = wait_ended(&bedrock, &arn).await;
    assert_eq!(job.status(), Some(&ModelInvocationJobStatus::Failed));
    let listed = s3c
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("out/")
        .send()
        .await
        .unwrap();
    assert!(listed.contents().is_empty(), "a failed job writes nothing");
    server.shutdown().await;
}

#[tokio::test]
async fn s3_serves_multipart_uploads_and_ranged_gets_to_any_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(ServerConfig {
        s3_dir: Some(dir.path().to_path_buf()),
        ..config()
    })
    .await;
    assert!(
        dir.path().join(BUCKET).is_dir(),
        "buckets are created at start"
    );
    let s3 = s3_client(&server);
    let part1 = vec![b'a'; 5 * 1024 * 1024];
    let part2 = b"the end".to_vec();
    let upload = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("big/object")
        .send()
        .await
        .unwrap();
    let upload_id = upload.upload_id().unwrap();
    let mut parts = Vec::new();
    for (number, body) in [(1, part1.clone()), (2, part2.clone())] {
        let uploaded = s3
            .upload_part()
            .bucket(BUCKET)
            .key("big/object")
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(uploaded.e_tag().map(String::from))
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key("big/object")
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key("big/object")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.content_length(),
        Some((part1.len() + part2.len()) as i64)
    );
    let tail = s3
        .get_object()
        .bucket(BUCKET)
        .key("big/object")
        .range(format!("bytes={}-", part1.len() - 3))
        .send()
        .await
        .unwrap();
    let bytes = tail.body.collect().await.unwrap().into_bytes();
    assert_eq!(&bytes[..], b"aaathe end");
    server.shutdown().await;
}

#[tokio::test]
async fn streamed_uploads_work_with_the_local_key() {
    let server = server(config()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input.jsonl");
    let body = jsonl(&converse_records(100));
    std::fs::write(&file, &body).unwrap();
    let local = s3_client_with(
        &server,
        Credentials::new(
            bedrock_batch::local_server::S3_ACCESS_KEY,
            bedrock_batch::local_server::S3_SECRET_KEY,
            None,
            None,
            "tests",
        ),
    );
    local
        .put_object()
        .bucket(BUCKET)
        .key("streamed/input.jsonl")
        .body(ByteStream::from_path(&file).await.unwrap())
        .send()
        .await
        .expect("a streamed (aws-chunked) upload signed with the local key");
    assert_eq!(
        get_text(&s3_client(&server), "streamed/input.jsonl")
            .await
            .as_bytes(),
        &body[..],
        "the object holds the bytes, not their chunk encoding"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_expired_job_keeps_half_of_its_answers() {
    let server = server(ServerConfig {
        batch_faults: BatchFaults {
            expire: 1.0,
            ..BatchFaults::default()
        },
        ..config()
    })
    .await;
    let (bedrock, s3) = (bedrock_client(&server), s3_client(&server));
    put(&s3, "in/x.jsonl", jsonl(&converse_records(101))).await;
    let arn = create(&bedrock, &JobSpec::default()).await.unwrap();
    let job = wait_ended(&bedrock, &arn).await;
    assert_eq!(job.status(), Some(&ModelInvocationJobStatus::Expired));
    assert_eq!(job.processed_record_count(), Some(50));
    let lines = output_lines(&s3, &format!("out/{}/x.jsonl.out", job_id(&arn))).await;
    assert_eq!(lines.len(), 50);
    server.shutdown().await;
}

#[tokio::test]
async fn buckets_are_listed_and_the_endpoints_differ() {
    let server = server(config()).await;
    let s3 = s3_client(&server);
    put(&s3, "k", b"v".to_vec()).await;
    let listed = s3.list_buckets().send().await.unwrap();
    assert!(listed.buckets().iter().any(|b| b.name() == Some(BUCKET)));
    assert_ne!(server.s3_url(), server.url());
    server.shutdown().await;
}

#[tokio::test]
async fn large_outputs_are_written_in_parts() {
    let server = server(config()).await;
    let (bedrock, s3) = (bedrock_client(&server), s3_client(&server));
    let filler = "Padding words fill this record. ".repeat(3_000);
    let records: Vec<(String, Value)> = (0..100)
        .map(|i| {
            let text = format!("Record {i} is large. {filler}");
            (
                format!("BIG{i}"),
                json!({"messages": [{"role": "user", "content": [{"text": text}]}]}),
            )
        })
        .collect();
    put(&s3, "in/big.jsonl", jsonl(&records)).await;
    let arn = create(&bedrock, &JobSpec::default()).await.unwrap();
    let job = wait_ended(&bedrock, &arn).await;
    assert_eq!(
        job.status(),
        Some(&ModelInvocationJobStatus::Completed),
        "{:?}",
        job.message()
    );
    let key = format!("out/{}/big.jsonl.out", job_id(&arn));
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key(&key)
        .send()
        .await
        .unwrap();
    assert!(head.content_length().unwrap() > 8 * 1024 * 1024);
    assert!(
        head.e_tag().is_some_and(|tag| tag.contains('-')),
        "a multipart upload's ETag: {:?}",
        head.e_tag()
    );
    assert_eq!(output_lines(&s3, &key).await.len(), 100);
    server.shutdown().await;
}

/// 50,000 short records: the output is several parts of a multipart upload, each part
/// holding thousands of lines (above, a hundred large records make the parts). About 20 s
/// in a debug build; how fast jobs are answered is scripts/bench-batch's number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: scripts/test --all"]
async fn fifty_thousand_records_are_answered_in_a_multipart_output() {
    let server = server(config()).await;
    let (bedrock, s3) = (bedrock_client(&server), s3_client(&server));
    put(&s3, "in/big.jsonl", jsonl(&converse_records(50_000))).await;
    let arn = create(&bedrock, &JobSpec::default()).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let mut job = get(&bedrock, &arn).await;
    while matches!(
        job.status(),
        Some(
            ModelInvocationJobStatus::Submitted
                | ModelInvocationJobStatus::Validating
                | ModelInvocationJobStatus::Scheduled
                | ModelInvocationJobStatus::InProgress
        )
    ) {
        assert!(
            std::time::Instant::now() < deadline,
            "not ended in 300 s: {:?}",
            job.status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        job = get(&bedrock, &arn).await;
    }
    assert_eq!(
        job.status(),
        Some(&ModelInvocationJobStatus::Completed),
        "{:?}",
        job.message()
    );
    assert_eq!(job.processed_record_count(), Some(50_000));
    let key = format!("out/{}/big.jsonl.out", job_id(&arn));
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key(&key)
        .send()
        .await
        .unwrap();
    assert!(
        head.e_tag().is_some_and(|tag| tag.contains('-')),
        "a multipart upload's ETag: {:?}",
        head.e_tag()
    );
    // Each record once (output_lines refuses a repeat), none missing.
    let lines = output_lines(&s3, &key).await;
    assert_eq!(lines.len(), 50_000);
    server.shutdown().await;
}
