//! One batch job's life, as a tokio task: Submitted, then Validating (its input read and
//! checked through S3), Scheduled, InProgress (records answered by the same fake model as
//! the on-demand routes, paced at `records_per_sec`, output written back through S3), and
//! an end: Completed, or what its seeded fate or a stop makes of it. What Bedrock demands
//! of the input and its records (`job_rules`) is checked on the way: a refused input fails
//! the job, a refused Converse record gets a 400 error line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use xxhash_rust::xxh3::xxh3_64;

use super::job_fates::{self, Fate};
use super::job_rules::{self, InputRefused, RecordError, parse_record};
use super::objects::{self, ObjectError, ObjectWriter, S3Uri};
use super::{Batch, Counts, InvocationType, Job, Status};
use crate::local_server::fake_answer::{self, Route};

/// How often a job running flat out reports its counts and looks for a stop, in records.
const REPORT_EVERY: u64 = 500;

/// Why a job failed; the message becomes the job's `message`, word for word what
/// GetModelInvocationJob reports.
#[derive(Debug, thiserror::Error)]
pub enum JobFailure {
    #[error(transparent)]
    Refused(#[from] InputRefused),
    #[error("invalid {which} S3 URI {uri}")]
    InvalidUri { which: &'static str, uri: String },
    #[error("Invalid record in s3://{bucket}/{key} at line {line}: {source}")]
    InvalidRecord {
        bucket: String,
        key: String,
        line: u64,
        #[source]
        source: RecordError,
    },
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("cannot read s3://{bucket}/{key}: {source}")]
    ReadLine {
        bucket: String,
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Objects(#[from] ObjectError),
    #[error("The job failed because of an internal error (a --batch-fail-rate fault). Try again.")]
    FailFault,
}

/// Parses the job's input or output URI.
fn uri(which: &'static str, uri: &str) -> Result<S3Uri, JobFailure> {
    S3Uri::parse(uri).ok_or_else(|| JobFailure::InvalidUri {
        which,
        uri: uri.to_string(),
    })
}

/// The input a job validated: its objects and how many records they hold.
struct Input {
    keys: Vec<String>,
    records: u64,
}

/// What answering records came to.
#[derive(Default)]
struct Done {
    counts: Counts,
    input_tokens: u64,
    output_tokens: u64,
    stopped: bool,
}

/// One job's life, from Submitted to its end, as the task the create call spawns.
pub async fn live(batch: Arc<Batch>, id: String) {
    if let Err(failure) = drive(&batch, &id).await {
        batch.update(&id, |job| {
            job.status = Status::Failed;
            job.message = Some(failure.to_string());
        });
    }
}

/// Waits one step, then moves the job to `next`; `false` when it was stopped meanwhile
/// (it is Stopped now).
async fn step(batch: &Batch, id: &str, next: Status) -> bool {
    tokio::time::sleep(batch.config.step).await;
    batch
        .update(id, |job| {
            if job.stop_requested {
                job.status = Status::Stopped;
                false
            } else {
                job.status = next;
                true
            }
        })
        .unwrap_or(false)
}

async fn drive(batch: &Batch, id: &str) -> Result<(), JobFailure> {
    let Some(job) = batch.get(id) else {
        return Ok(());
    };
    let config = &batch.config;
    if !step(batch, id, Status::Validating).await {
        return Ok(());
    }
    let client = objects::client(&config.s3_url);
    let input = validate(&client, &job, config.min_records).await?;
    batch.update(id, |job| job.counts.total = Some(input.records));
    if !step(batch, id, Status::Scheduled).await || !step(batch, id, Status::InProgress).await {
        return Ok(());
    }
    let fate = job_fates::fate(&config.faults, config.seed, &job.name);
    if fate == Fate::Fail {
        return Err(JobFailure::FailFault);
    }
    // A partial or expired job answers half of its records.
    let limit = match fate {
        Fate::Partial | Fate::Expire => input.records / 2,
        Fate::Complete | Fate::Fail => input.records,
    };
    let done = answer_all(batch, &job, &client, &input, limit).await?;
    let output = uri("output", &job.output_uri)?;
    let manifest = json!({
        "totalRecordCount": input.records,
        "processedRecordCount": done.counts.processed,
        "successRecordCount": done.counts.success,
        "errorRecordCount": done.counts.error,
        "inputTokenCount": done.input_tokens,
        "outputTokenCount": done.output_tokens,
    });
    objects::put(
        &client,
        &output.bucket,
        &output.join(&format!("{}/manifest.json.out", job.id)),
        serde_json::to_vec(&manifest).unwrap_or_default(),
    )
    .await?;
    batch.update(id, |job| {
        job.counts = done.counts;
        let (status, message) = if done.stopped {
            (Status::Stopped, None)
        } else {
            match fate {
                Fate::Partial => (
                    Status::PartiallyCompleted,
                    Some("Not all of the records could be processed (a --batch-partial-rate fault). Some records were not processed; see the output files.".to_string()),
                ),
                Fate::Expire => (
                    Status::Expired,
                    Some(format!(
                        "The job did not finish within its timeout of {} hours (a --batch-expire-rate fault); the output holds the records processed.",
                        job.timeout_hours.unwrap_or(24)
                    )),
                ),
                Fate::Complete | Fate::Fail => (Status::Completed, None),
            }
        };
        job.status = status;
        job.message = message;
    });
    Ok(())
}

/// Reads every input line once to check it and count the records.
async fn validate(client: &aws_sdk_s3::Client, job: &Job, min: u64) -> Result<Input, JobFailure> {
    job_rules::check_model(job)?;
    let uri = uri("input", &job.input_uri)?;
    let keys = objects::input_keys(client, &uri).await?;
    if keys.is_empty() {
        return Err(InputRefused::NoInputFiles {
            uri: job.input_uri.clone(),
        }
        .into());
    }
    let mut records = 0u64;
    for key in &keys {
        let mut lines = objects::lines(client, &uri.bucket, key).await?;
        let mut number = 0u64;
        while let Some(line) = lines
            .next_line()
            .await
            .map_err(|source| JobFailure::ReadLine {
                bucket: uri.bucket.clone(),
                key: key.clone(),
                source,
            })?
        {
            number += 1;
            if line.trim().is_empty() {
                continue;
            }
            parse_record(&line).map_err(|source| JobFailure::InvalidRecord {
                bucket: uri.bucket.clone(),
                key: key.clone(),
                line: number,
                source,
            })?;
            records += 1;
        }
    }
    job_rules::check_record_count(job, records, min)?;
    Ok(Input { keys, records })
}

/// A record's output line and, when the model answered, its token counts.
pub fn answer_record(
    job_name: &str,
    invocation_type: InvocationType,
    model_id: &str,
    faults: &super::BatchFaults,
    seed: u64,
    record_id: String,
    input: Value,
) -> (Value, Option<(u64, u64)>) {
    if let Some((code, message)) = job_fates::record_error(faults, seed, job_name, &record_id) {
        let line = json!({"recordId": record_id, "modelInput": input, "error": {"errorCode": code, "errorMessage": message}});
        return (line, None);
    }
    if invocation_type == InvocationType::Converse
        && let Some(refusal) = job_rules::converse_record_refusal(model_id, &input)
    {
        let line = json!({"recordId": record_id, "modelInput": input, "error": {
            "errorCode": 400,
            "errorMessage": refusal,
        }});
        return (line, None);
    }
    let route = match invocation_type {
        InvocationType::Converse => Route::Converse,
        InvocationType::InvokeModel => Route::Invoke,
    };
    let body = serde_json::to_vec(&input).unwrap_or_default();
    match fake_answer::answer(route, model_id, &body) {
        Ok(answered) => (
            json!({"recordId": record_id, "modelInput": input, "modelOutput": answered.body}),
            Some((answered.input_tokens, answered.output_tokens)),
        ),
        Err(error) => (
            json!({"recordId": record_id, "modelInput": input, "error": {
                "errorCode": error.kind.status().as_u16(),
                "errorMessage": error.message,
            }}),
            None,
        ),
    }
}

/// Answers up to `limit` records, file by file, writing `<output>/<job id>/<file>.out`.
async fn answer_all(
    batch: &Batch,
    job: &Job,
    client: &aws_sdk_s3::Client,
    input: &Input,
    limit: u64,
) -> Result<Done, JobFailure> {
    let config = &batch.config;
    let source = uri("input", &job.input_uri)?;
    let output = uri("output", &job.output_uri)?;
    let mut done = Done {
        counts: Counts {
            total: Some(input.records),
            ..Counts::default()
        },
        ..Done::default()
    };
    let started = Instant::now();
    let report_every = match config.records_per_sec {
        0 => REPORT_EVERY,
        rate => (rate / 20).clamp(1, REPORT_EVERY),
    };
    'files: for key in &input.keys {
        if done.counts.processed >= limit {
            break;
        }
        let file = key.rsplit('/').next().unwrap_or(key);
        let out_key = output.join(&format!("{}/{file}.out", job.id));
        let mut writer = ObjectWriter::new(
            client,
            &output.bucket,
            &out_key,
            config.seed ^ xxh3_64(key.as_bytes()),
        );
        let mut lines = objects::lines(client, &source.bucket, key).await?;
        while let Some(line) =
            lines
                .next_line()
                .await
                .map_err(|source_err| JobFailure::ReadLine {
                    bucket: source.bucket.clone(),
                    key: key.clone(),
                    source: source_err,
                })?
        {
            if done.counts.processed >= limit {
                break;
            }
            if line.trim().is_empty() {
                continue;
            }
            let (record_id, model_input) = parse_record(&line)?;
            let (answer, tokens) = answer_record(
                &job.name,
                job.invocation_type,
                &job.model_id,
                &config.faults,
                config.seed,
                record_id,
                model_input,
            );
            writer.push(answer.to_string()).await?;
            done.counts.processed += 1;
            match tokens {
                Some((input_tokens, output_tokens)) => {
                    done.counts.success += 1;
                    done.input_tokens += input_tokens;
                    done.output_tokens += output_tokens;
                }
                None => done.counts.error += 1,
            }
            if done.counts.processed.is_multiple_of(report_every) {
                pace(config.records_per_sec, started, done.counts.processed).await;
                let counts = done.counts;
                let stop = batch
                    .update(&job.id, |job| {
                        job.counts = counts;
                        job.stop_requested
                    })
                    .unwrap_or(true);
                if stop {
                    done.stopped = true;
                    writer.finish().await?;
                    break 'files;
                }
            }
        }
        writer.finish().await?;
    }
    if !done.stopped {
        done.stopped = batch.get(&job.id).is_none_or(|job| job.stop_requested);
    }
    Ok(done)
}

/// Waits until `processed` records are due at `rate` a second since `started`; with no
/// rate, only lets other tasks run.
async fn pace(rate: u64, started: Instant, processed: u64) {
    if rate == 0 {
        tokio::task::yield_now().await;
        return;
    }
    let due = started + Duration::from_secs_f64(processed as f64 / rate as f64);
    tokio::time::sleep_until(due.into()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_gets_the_on_demand_answer_or_an_error_line() {
        let input = json!({"messages": [{"role": "user", "content": [{"text": "Hello there. How are you?"}]}]});
        let body = serde_json::to_vec(&input).unwrap();
        let on_demand = fake_answer::answer(
            Route::Converse,
            "anthropic.claude-3-haiku-20240307-v1:0",
            &body,
        )
        .unwrap();
        let (line, tokens) = answer_record(
            "job",
            InvocationType::Converse,
            "anthropic.claude-3-haiku-20240307-v1:0",
            &super::super::BatchFaults::default(),
            0,
            "r1".into(),
            input,
        );
        assert_eq!(line["modelOutput"], on_demand.body);
        assert_eq!(
            tokens,
            Some((on_demand.input_tokens, on_demand.output_tokens))
        );

        let (line, tokens) = answer_record(
            "job",
            InvocationType::Converse,
            "anthropic.claude-3-haiku-20240307-v1:0",
            &super::super::BatchFaults::default(),
            0,
            "r2".into(),
            json!({"messages": "nope"}),
        );
        assert_eq!(line["error"]["errorCode"], 400);
        assert!(tokens.is_none());
        assert_eq!(line["recordId"], "r2");
    }

    #[test]
    fn converse_records_with_tools_fail_and_structured_ones_are_answered() {
        let answer = |input: Value| {
            answer_record(
                "job",
                InvocationType::Converse,
                "anthropic.claude-sonnet-4-5-20250929-v1:0",
                &super::super::BatchFaults::default(),
                0,
                "r1".into(),
                input,
            )
        };
        let messages = json!([{"role": "user", "content": [{"text": "Classify this ticket."}]}]);
        let tool = json!({"tools": [{"toolSpec": {"name": "t", "inputSchema": {"json": {"type": "object"}}}}]});
        let (line, tokens) = answer(json!({"messages": messages, "toolConfig": tool}));
        assert_eq!(line["error"]["errorCode"], 400);
        assert!(
            line["error"]["errorMessage"]
                .as_str()
                .unwrap()
                .contains("toolConfig")
        );
        assert!(tokens.is_none());

        let schema = json!({"type": "object", "properties": {"label": {"type": "string", "enum": ["a", "b"]}}, "required": ["label"]});
        let (line, tokens) = answer(
            json!({"messages": messages, "outputConfig": {"textFormat": {
            "type": "json_schema", "structure": {"jsonSchema": {"schema": schema.to_string()}}}}}),
        );
        assert!(tokens.is_some(), "{line}");
        let text = line["modelOutput"]["output"]["message"]["content"][0]["text"]
            .as_str()
            .unwrap();
        let data: Value = serde_json::from_str(text).unwrap();
        assert!(jsonschema::validator_for(&schema).unwrap().is_valid(&data));
    }
}
