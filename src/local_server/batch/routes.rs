//! The control plane's wire protocol (restJson1, as `aws-sdk-bedrock` sends it):
//! `POST /model-invocation-job` (Create), `GET /model-invocation-job/{jobIdentifier}`
//! (Get; the identifier an id or a whole ARN, percent-encoded), `GET /model-invocation-jobs`
//! (List, filtered and paginated by query parameters) and
//! `POST /model-invocation-job/{jobIdentifier}/stop` (Stop). Requests reach these handlers
//! checked against AWS's service model ([`crate::rules`]); what the model cannot say (a
//! name in use, too many jobs, a job that cannot stop, a page token) is judged by
//! `job_rules`. Errors travel as the runtime routes' do.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use xxhash_rust::xxh3::Xxh3;

use super::job_rules::{self, DEFAULT_MAX_RESULTS, job_not_found};
use super::{Batch, InvocationType, Job, Refused, Status};
use crate::local_server::api_error::ApiError;
use crate::local_server::known::signed_region;
use crate::local_server::request_id;

/// The account in job ARNs when the role ARN names none.
const DEFAULT_ACCOUNT: &str = crate::local_server::sts::ACCOUNT;
const DEFAULT_REGION: &str = "us-east-1";

fn json_response(body: &Value) -> Response {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("x-amzn-requestid", request_id())
        .body(Body::from(serde_json::to_vec(body).unwrap_or_default()))
        .unwrap_or_default()
}

fn answer(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(body) => json_response(&body),
        Err(error) => error.into_response(&request_id()),
    }
}

/// The account of a role ARN that passed the service model's pattern
/// (`arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+`), when it names one.
fn role_account(arn: &str) -> Option<&str> {
    let account = arn.split(':').nth(4)?;
    (!account.is_empty()).then_some(account)
}

/// A 12-character lowercase id, the same for the same seed and creation number.
fn new_job_id(seed: u64, sequence: u64, name: &str) -> String {
    let mut hasher = Xxh3::with_seed(seed);
    hasher.update(&sequence.to_le_bytes());
    hasher.update(name.as_bytes());
    let mut n = hasher.digest128();
    (0..12)
        .map(|_| {
            let digit = (n % 36) as u32;
            n /= 36;
            char::from_digit(digit, 36).unwrap_or('0')
        })
        .collect()
}

fn timestamp(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A string member the service model has already required and typed ("" when absent).
fn string<'a>(request: &'a Map<String, Value>, field: &str) -> &'a str {
    request
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The `s3Uri` of `inputDataConfig.s3InputDataConfig` or its output counterpart.
fn s3_uri<'a>(request: &'a Map<String, Value>, config: &str, member: &str) -> &'a str {
    request
        .get(config)
        .and_then(|c| c.get(member))
        .and_then(|m| m.get("s3Uri"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// CreateModelInvocationJob.
pub async fn create(batch: Arc<Batch>, headers: http::HeaderMap, body: Bytes) -> Response {
    let created = create_job(&batch, &headers, &body);
    let delay = batch.config.faults.create_answer_delay;
    if created.is_ok() && !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    answer(created)
}

fn create_job(
    batch: &Arc<Batch>,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<Value, ApiError> {
    // Types, required members, patterns, enums and ranges were checked against the
    // service model before this handler ran (`crate::rules`).
    let request: Map<String, Value> = serde_json::from_slice(body).unwrap_or_default();
    let name = string(&request, "jobName");
    let role_arn = string(&request, "roleArn");
    let account = role_account(role_arn)
        .unwrap_or(DEFAULT_ACCOUNT)
        .to_string();
    let model_id = string(&request, "modelId");
    let token = request.get("clientRequestToken").and_then(Value::as_str);
    let invocation_type = match request.get("modelInvocationType").and_then(Value::as_str) {
        Some("Converse") => InvocationType::Converse,
        _ => InvocationType::InvokeModel,
    };
    let timeout_hours = request
        .get("timeoutDurationInHours")
        .and_then(Value::as_u64);
    let input_uri = s3_uri(&request, "inputDataConfig", "s3InputDataConfig").to_string();
    let output_uri = s3_uri(&request, "outputDataConfig", "s3OutputDataConfig").to_string();
    let region = signed_region(headers).unwrap_or_else(|| DEFAULT_REGION.to_string());
    let seed = batch.config.seed;
    let created = batch.create(token, name, |sequence| {
        let id = new_job_id(seed, sequence, name);
        let now = SystemTime::now();
        Job {
            arn: format!("arn:aws:bedrock:{region}:{account}:model-invocation-job/{id}"),
            id,
            name: name.to_string(),
            model_id: model_id.to_string(),
            role_arn: role_arn.to_string(),
            client_request_token: token.map(str::to_string),
            invocation_type,
            input_data_config: request.get("inputDataConfig").cloned().unwrap_or_default(),
            output_data_config: request.get("outputDataConfig").cloned().unwrap_or_default(),
            vpc_config: request.get("vpcConfig").cloned(),
            input_uri,
            output_uri,
            timeout_hours,
            status: Status::Submitted,
            message: None,
            submit_time: now,
            last_modified_time: now,
            end_time: None,
            counts: Default::default(),
            stop_requested: false,
        }
    });
    match created {
        Ok((arn, _)) => Ok(json!({ "jobArn": arn })),
        Err(Refused::NameInUse) => Err(job_rules::name_in_use(name)),
        Err(Refused::TooMany(limit)) => Err(job_rules::too_many_jobs(limit, model_id)),
    }
}

/// A job as GetModelInvocationJob describes it (a list summary has the same members).
pub fn describe(job: &Job) -> Value {
    let mut body = json!({
        "jobArn": job.arn,
        "jobName": job.name,
        "modelId": job.model_id,
        "roleArn": job.role_arn,
        "status": job.status.name(),
        "submitTime": timestamp(job.submit_time),
        "lastModifiedTime": timestamp(job.last_modified_time),
        "inputDataConfig": job.input_data_config,
        "outputDataConfig": job.output_data_config,
        "jobExpirationTime": timestamp(job.expiration_time()),
        "modelInvocationType": job.invocation_type.name(),
        "processedRecordCount": job.counts.processed,
        "successRecordCount": job.counts.success,
        "errorRecordCount": job.counts.error,
    });
    let extra = [
        (
            "clientRequestToken",
            job.client_request_token.clone().map(Value::from),
        ),
        ("message", job.message.clone().map(Value::from)),
        ("endTime", job.end_time.map(|t| Value::from(timestamp(t)))),
        ("vpcConfig", job.vpc_config.clone()),
        ("timeoutDurationInHours", job.timeout_hours.map(Value::from)),
        ("totalRecordCount", job.counts.total.map(Value::from)),
    ];
    for (key, value) in extra {
        if let Some(value) = value {
            body[key] = value;
        }
    }
    body
}

/// GetModelInvocationJob.
pub async fn get(batch: Arc<Batch>, identifier: String) -> Response {
    answer(
        batch
            .get(&identifier)
            .map(|job| describe(&job))
            .ok_or_else(|| job_not_found(&identifier)),
    )
}

/// StopModelInvocationJob.
pub async fn stop(batch: Arc<Batch>, identifier: String) -> Response {
    let Some(job) = batch.get(&identifier) else {
        return answer(Err(job_not_found(&identifier)));
    };
    batch.stop_called();
    if batch.config.faults.deny_stop {
        return answer(Err(job_rules::stop_denied(&job.arn)));
    }
    let stopped = batch.update(&job.id, |job| {
        job_rules::check_stoppable(job)?;
        job.stop_requested = true;
        job.status = Status::Stopping;
        Ok(json!({}))
    });
    answer(stopped.unwrap_or_else(|| Err(job_not_found(&identifier))))
}

/// `%XX` and `+` decoded, as query parameters are encoded.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| Some(hex(bytes[i + 1])? * 16 + hex(bytes[i + 2])?))
            .flatten();
        match (bytes[i], escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 2;
            }
            (b'+', None) => out.push(b' '),
            (byte, None) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query parameters of ListModelInvocationJobs.
#[derive(Debug, Default, PartialEq)]
pub struct ListQuery {
    pub status: Option<Status>,
    pub name_contains: Option<String>,
    pub submitted_after: Option<DateTime<Utc>>,
    pub submitted_before: Option<DateTime<Utc>>,
    pub max_results: usize,
    pub offset: usize,
    pub ascending: bool,
}

/// The query of a request whose members the service model has checked (types, enums,
/// ranges); only the page token is left to judge (`job_rules::page_offset`).
pub fn parse_query(query: &str) -> Result<ListQuery, ApiError> {
    let mut parsed = ListQuery {
        max_results: DEFAULT_MAX_RESULTS,
        ..ListQuery::default()
    };
    let time = |value: &str| {
        DateTime::parse_from_rfc3339(value)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(value);
        match key {
            "statusEquals" => parsed.status = Status::parse(&value),
            "nameContains" => parsed.name_contains = Some(value),
            "submitTimeAfter" => parsed.submitted_after = time(&value),
            "submitTimeBefore" => parsed.submitted_before = time(&value),
            "maxResults" => parsed.max_results = value.parse().unwrap_or(DEFAULT_MAX_RESULTS),
            "nextToken" => parsed.offset = job_rules::page_offset(&value)?,
            "sortOrder" => parsed.ascending = value == "Ascending",
            _ => {}
        }
    }
    Ok(parsed)
}

/// ListModelInvocationJobs.
pub async fn list(batch: Arc<Batch>, query: Option<String>) -> Response {
    answer(list_jobs(&batch, query.as_deref().unwrap_or("")))
}

fn list_jobs(batch: &Batch, query: &str) -> Result<Value, ApiError> {
    let query = parse_query(query)?;
    let mut jobs: Vec<Job> = batch
        .all()
        .into_iter()
        .filter(|job| query.status.is_none_or(|s| job.status == s))
        .filter(|job| {
            query
                .name_contains
                .as_deref()
                .is_none_or(|part| job.name.contains(part))
        })
        .filter(|job| {
            let submitted = DateTime::<Utc>::from(job.submit_time);
            query.submitted_after.is_none_or(|t| submitted > t)
                && query.submitted_before.is_none_or(|t| submitted < t)
        })
        .collect();
    if !query.ascending {
        jobs.reverse();
    }
    let page: Vec<Value> = jobs
        .iter()
        .skip(query.offset)
        .take(query.max_results)
        .map(describe)
        .collect();
    let mut body = json!({ "invocationJobSummaries": page });
    let next = query.offset + query.max_results;
    if next < jobs.len() {
        body["nextToken"] = json!(job_rules::page_token(next));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_name_their_account() {
        assert_eq!(
            role_account("arn:aws:iam::123456789012:role/BatchRole"),
            Some("123456789012")
        );
        assert_eq!(role_account("arn:aws-cn:iam:::role/x"), None);
    }

    #[test]
    fn job_ids_are_twelve_lowercase_characters() {
        let id = new_job_id(1, 0, "job");
        assert_eq!(id.len(), 12);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert_eq!(id, new_job_id(1, 0, "job"));
        assert_ne!(id, new_job_id(1, 1, "job"));
    }

    #[test]
    fn list_queries() {
        let query = parse_query(
            "statusEquals=Completed&nameContains=my%20job&maxResults=2&nextToken=page-4&sortOrder=Ascending&submitTimeAfter=2026-01-01T00%3A00%3A00Z",
        )
        .unwrap();
        assert_eq!(query.status, Some(Status::Completed));
        assert_eq!(query.name_contains.as_deref(), Some("my job"));
        assert_eq!(
            (query.max_results, query.offset, query.ascending),
            (2, 4, true)
        );
        assert!(query.submitted_after.is_some());
        assert!(parse_query("nextToken=x").is_err());
        assert_eq!(decode("a%2Fb+c%zz%"), "a/b c%zz%");
    }
}
