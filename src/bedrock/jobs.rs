//! The Batch Inference control plane (`aws-sdk-bedrock`): creating a model invocation job
//! (or finding the one a request token or a name already made), reading its status and
//! stopping it. Its calls are methods of [`Clients`].

use std::time::Duration;

use aws_sdk_bedrock::types::{
    ModelInvocationJobInputDataConfig, ModelInvocationJobOutputDataConfig,
    ModelInvocationJobS3InputDataConfig, ModelInvocationJobS3OutputDataConfig, ModelInvocationType,
    S3InputFormat,
};

use super::Clients;

/// What `GetModelInvocationJob` says of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobStatus {
    pub status: String,
    pub message: Option<String>,
    pub processed: Option<u64>,
    /// From submission to the end, once it ended.
    pub elapsed: Option<Duration>,
}

/// Why a job was not created.
#[derive(Debug, Clone, PartialEq)]
pub enum NotCreated {
    /// The model has as many jobs as its quota allows (or the API throttled): try later.
    Later(String),
    /// The service refused the job: the message says why.
    Refused(String),
}

/// The job a part becomes.
pub struct NewJob<'a> {
    pub name: &'a str,
    pub token: &'a str,
    pub model: &'a str,
    pub role_arn: &'a str,
    pub input_uri: &'a str,
    pub output_uri: &'a str,
    pub timeout_hours: i32,
    pub converse: bool,
}

impl NewJob<'_> {
    /// The CreateModelInvocationJob input this job is sent as, in the service model's member
    /// names.
    pub fn input(&self) -> serde_json::Value {
        serde_json::json!({
            "jobName": self.name,
            "clientRequestToken": self.token,
            "modelId": self.model,
            "roleArn": self.role_arn,
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": self.input_uri, "s3InputFormat": "JSONL"}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": self.output_uri}},
            "timeoutDurationInHours": self.timeout_hours,
            "modelInvocationType": if self.converse { "Converse" } else { "InvokeModel" },
        })
    }

    /// What AWS's service model would refuse in this job's create call, checked before
    /// anything is uploaded for it.
    pub fn refusal(&self) -> Option<String> {
        use crate::rules::{Service, check_input};
        check_input(Service::Control, "CreateModelInvocationJob", &self.input())
            .err()
            .map(|refusal| refusal.message().to_string())
    }
}

/// The service's own words for an SDK error: code and message when it answered.
fn said<E, R>(err: &aws_sdk_bedrock::error::SdkError<E, R>) -> String
where
    E: aws_sdk_bedrock::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err.as_service_error() {
        Some(service) => match (service.code(), service.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_string(),
            _ => service.to_string(),
        },
        None => aws_sdk_bedrock::error::DisplayErrorContext(err).to_string(),
    }
}

impl Clients {
    /// Creates the job (or, for a token already used, finds the one it made); its ARN.
    pub async fn create_job(&self, job: &NewJob<'_>) -> Result<String, NotCreated> {
        let input = ModelInvocationJobS3InputDataConfig::builder()
            .s3_uri(job.input_uri)
            .s3_input_format(S3InputFormat::Jsonl)
            .build()
            .map_err(|err| NotCreated::Refused(err.to_string()))?;
        let output = ModelInvocationJobS3OutputDataConfig::builder()
            .s3_uri(job.output_uri)
            .build()
            .map_err(|err| NotCreated::Refused(err.to_string()))?;
        let kind = if job.converse {
            ModelInvocationType::Converse
        } else {
            ModelInvocationType::InvokeModel
        };
        let created = self
            .bedrock
            .create_model_invocation_job()
            .job_name(job.name)
            .client_request_token(job.token)
            .model_id(job.model)
            .role_arn(job.role_arn)
            .input_data_config(ModelInvocationJobInputDataConfig::S3InputDataConfig(input))
            .output_data_config(ModelInvocationJobOutputDataConfig::S3OutputDataConfig(
                output,
            ))
            .timeout_duration_in_hours(job.timeout_hours)
            .model_invocation_type(kind)
            .send()
            .await;
        let err = match created {
            Ok(created) => return Ok(created.job_arn().to_string()),
            Err(err) => err,
        };
        use aws_sdk_bedrock::error::ProvideErrorMetadata;
        match err.as_service_error().and_then(|e| e.code()) {
            Some("ServiceQuotaExceededException" | "ThrottlingException") => {
                Err(NotCreated::Later(said(&err)))
            }
            // The name is taken and the token no longer remembered (a rerun days later):
            // the job is ours when it reads our input, so the run attaches to it.
            Some("ConflictException") => match self.find_job(job.name, job.input_uri).await {
                Ok(Some(arn)) => Ok(arn),
                Ok(None) => Err(NotCreated::Refused(format!(
                    "{} (and no job of that name reads {}: another run's job has the name)",
                    said(&err),
                    job.input_uri
                ))),
                Err(why) => Err(NotCreated::Refused(format!("{}; {why}", said(&err)))),
            },
            _ => Err(NotCreated::Refused(said(&err))),
        }
    }

    /// The ARN of the job named `name` whose input is `input_uri`, if there is one.
    async fn find_job(&self, name: &str, input_uri: &str) -> Result<Option<String>, String> {
        let mut pages = self
            .bedrock
            .list_model_invocation_jobs()
            .name_contains(name)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| format!("listing jobs named {name}: {}", said(&err)))?;
            for summary in page.invocation_job_summaries() {
                let reads_ours = match summary.input_data_config() {
                    Some(ModelInvocationJobInputDataConfig::S3InputDataConfig(s3)) => {
                        s3.s3_uri() == input_uri
                    }
                    _ => false,
                };
                if summary.job_name() == name && reads_ours {
                    return Ok(Some(summary.job_arn().to_string()));
                }
            }
        }
        Ok(None)
    }

    pub async fn job_status(&self, arn: &str) -> Result<JobStatus, String> {
        let job = self
            .bedrock
            .get_model_invocation_job()
            .job_identifier(arn)
            .send()
            .await
            .map_err(|err| said(&err))?;
        let elapsed = job.end_time().map(|end| {
            let secs = end.as_secs_f64() - job.submit_time().as_secs_f64();
            Duration::from_secs_f64(secs.max(0.0))
        });
        Ok(JobStatus {
            status: job
                .status()
                .map_or("Submitted".to_string(), |s| s.as_str().to_string()),
            message: job.message().map(str::to_string),
            processed: job.processed_record_count().map(|n| n.max(0) as u64),
            elapsed,
        })
    }

    pub async fn stop_job(&self, arn: &str) -> Result<(), String> {
        self.bedrock
            .stop_model_invocation_job()
            .job_identifier(arn)
            .send()
            .await
            .map_err(|err| said(&err))?;
        Ok(())
    }
}
