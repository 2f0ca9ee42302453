//! What Bedrock's Batch Inference demands of a job and its records beyond what the control
//! plane's service model can say (`crate::rules` checks types, required members, patterns,
//! enums and ranges before a handler runs): a job name unused, a per-model quota of open
//! jobs, a stop only of a job still running, a page token it issued, and, while a job
//! validates and runs, records shaped `{"recordId", "modelInput"}`, a minimum of records,
//! a model the job's region serves, and Converse records without `toolConfig`. The
//! handlers in `routes` and the job's task in `job` call these; each rule names the AWS
//! page it follows.

use serde_json::Value;

use super::Job;
use crate::local_server::api_error::{ApiError, ErrorKind};
use crate::local_server::known;
use crate::local_server::sts;
use crate::rules::model_id::Family;
use crate::rules::{Service, check_input};

/// ListModelInvocationJobs' page size when `maxResults` is not given (API Reference:
/// ListModelInvocationJobs).
pub const DEFAULT_MAX_RESULTS: usize = 1000;
/// Longest record id Bedrock accepts (User Guide: Format and upload your batch inference
/// data).
pub const MAX_RECORD_ID_CHARS: usize = 11;
/// The error of a Converse-type job's record that carries `toolConfig`: Batch Inference
/// answers Converse records without tools.
const CONVERSE_TOOLS_REFUSED: &str = "Tool use isn't supported in batch inference jobs with the Converse API. Remove toolConfig from the record's modelInput and try again.";

/// A job name is unique in the account and region: a second create with it is a
/// ConflictException (API Reference: CreateModelInvocationJob).
pub fn name_in_use(name: &str) -> ApiError {
    ApiError::new(
        ErrorKind::Conflict,
        format!("A model invocation job with the name {name} already exists. Use another name."),
    )
}

/// Whether one more job of a model with `open` jobs submitted or in progress passes the
/// per-model quota of `limit` (Service Quotas: batch inference jobs per model).
pub fn within_job_quota(open: u64, limit: u64) -> bool {
    open < limit
}

/// The refusal of a create past the per-model quota: ServiceQuotaExceededException (API
/// Reference: CreateModelInvocationJob).
pub fn too_many_jobs(limit: u64, model_id: &str) -> ApiError {
    ApiError::new(
        ErrorKind::ServiceQuotaExceeded,
        format!(
            "You have reached the quota of {limit} batch inference jobs submitted or in progress for {model_id}. Wait for a job to end, or request a quota increase."
        ),
    )
}

/// No job has this identifier: ResourceNotFoundException (API Reference:
/// GetModelInvocationJob, StopModelInvocationJob).
pub fn job_not_found(identifier: &str) -> ApiError {
    ApiError::new(
        ErrorKind::ResourceNotFound,
        format!("The model invocation job {identifier} could not be found."),
    )
}

/// A caller whose policy does not allow `bedrock:StopModelInvocationJob` is refused with
/// AccessDeniedException (API Reference: StopModelInvocationJob; `--batch-deny-stop`).
pub fn stop_denied(job_arn: &str) -> ApiError {
    ApiError::new(
        ErrorKind::AccessDenied,
        format!(
            "User: {} is not authorized to perform: bedrock:StopModelInvocationJob on resource: {job_arn} because no identity-based policy allows the bedrock:StopModelInvocationJob action",
            sts::caller_arn(),
        ),
    )
}

/// Only a job that has not ended can be stopped (API Reference: StopModelInvocationJob).
pub fn check_stoppable(job: &Job) -> Result<(), ApiError> {
    if job.status.ended() {
        return Err(ApiError::validation(format!(
            "The model invocation job {} is {} and cannot be stopped.",
            job.arn,
            job.status.name()
        )));
    }
    Ok(())
}

/// The offset a `nextToken` stands for: only tokens the server issued (`page-N`) are
/// valid (API Reference: ListModelInvocationJobs).
pub fn page_offset(token: &str) -> Result<usize, ApiError> {
    token
        .strip_prefix("page-")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| ApiError::validation("The nextToken is not valid."))
}

/// The next page's token, after `offset` jobs.
pub fn page_token(offset: usize) -> String {
    format!("page-{offset}")
}

/// Why a job's input was refused while it validated; the message becomes the job's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputRefused {
    #[error("The provided model identifier is invalid: {model_id}")]
    InvalidModel { model_id: String },
    #[error("No .jsonl input files were found at {uri}")]
    NoInputFiles { uri: String },
    #[error(
        "Batch job {arn} contains less records ({records}) than the required minimum of: {min}"
    )]
    TooFewRecords { arn: String, records: u64, min: u64 },
}

/// Why one input line is not a record (User Guide: Format and upload your batch inference
/// data).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("not a JSON object: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("not a JSON object: each line must be {{\"recordId\": ..., \"modelInput\": {{...}}}}")]
    NotObject,
    #[error("recordId {shown} must be 1 to {MAX_RECORD_ID_CHARS} letters or digits")]
    BadRecordId { shown: String },
    #[error("recordId is missing")]
    NoRecordId,
    #[error("record {record_id}: modelInput must be a JSON object")]
    InputNotObject { record_id: String },
    #[error("record {record_id}: modelInput is missing")]
    NoModelInput { record_id: String },
}

/// A job's model must be one the fake models answer, served in the job's region (its
/// ARN's, the region its create was signed for); otherwise the job fails validation.
pub fn check_model(job: &Job) -> Result<(), InputRefused> {
    let region = job.arn.split(':').nth(3);
    if Family::of(&job.model_id).is_none() || known::check(&job.model_id, region).is_err() {
        return Err(InputRefused::InvalidModel {
            model_id: job.model_id.clone(),
        });
    }
    Ok(())
}

/// A job with fewer than `min` records fails validation (Service Quotas: minimum number of
/// records per batch inference job; Bedrock's is 100).
pub fn check_record_count(job: &Job, records: u64, min: u64) -> Result<(), InputRefused> {
    if records < min {
        return Err(InputRefused::TooFewRecords {
            arn: job.arn.clone(),
            records,
            min,
        });
    }
    Ok(())
}

/// One input line, checked: its record id and model input.
pub fn parse_record(line: &str) -> Result<(String, Value), RecordError> {
    let mut value: Value = serde_json::from_str(line).map_err(RecordError::NotJson)?;
    let object = value.as_object_mut().ok_or(RecordError::NotObject)?;
    let record_id = match object.get("recordId") {
        Some(Value::String(id))
            if !id.is_empty()
                && id.len() <= MAX_RECORD_ID_CHARS
                && id.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            id.clone()
        }
        Some(other) => {
            return Err(RecordError::BadRecordId {
                shown: other.to_string(),
            });
        }
        None => return Err(RecordError::NoRecordId),
    };
    match object.remove("modelInput") {
        Some(input @ Value::Object(_)) => Ok((record_id, input)),
        Some(_) => Err(RecordError::InputNotObject { record_id }),
        None => Err(RecordError::NoModelInput { record_id }),
    }
}

/// Why a Converse-type job's record gets a 400 error line instead of an answer: it carries
/// `toolConfig` (Batch Inference answers Converse records without tools), or it breaks
/// Converse's service model, whose constraints hold for a record's `modelInput` as for a
/// request sent on demand (User Guide: Format and upload your batch inference data).
pub fn converse_record_refusal(model_id: &str, input: &Value) -> Option<String> {
    if input.get("toolConfig").is_some() {
        return Some(CONVERSE_TOOLS_REFUSED.to_string());
    }
    let mut request = input.clone();
    if let Some(object) = request.as_object_mut() {
        object.insert("modelId".into(), Value::from(model_id));
    }
    check_input(Service::Runtime, "Converse", &request)
        .err()
        .map(|refusal| refusal.message().to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn records_are_checked() {
        let (id, input) =
            parse_record(r#"{"recordId": "CALL0000001", "modelInput": {"messages": []}}"#).unwrap();
        assert_eq!(id, "CALL0000001");
        assert_eq!(input, json!({"messages": []}));
        assert!(parse_record(r#"{"recordId": "CALL00000001", "modelInput": {}}"#).is_err());
        assert!(parse_record(r#"{"recordId": "a-b", "modelInput": {}}"#).is_err());
        assert!(parse_record(r#"{"recordId": "a", "modelInput": "x"}"#).is_err());
        assert!(parse_record(r#"{"modelInput": {}}"#).is_err());
        assert!(parse_record("[1]").is_err());
    }

    #[test]
    fn page_tokens_round_trip_and_others_are_refused() {
        assert_eq!(page_offset(&page_token(4)).unwrap(), 4);
        assert!(page_offset("x").is_err());
    }
}
