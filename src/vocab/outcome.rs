//! How a call or a record ended: the error kinds every stage classifies in, a failed
//! attempt ([`CallError`]), a finished call ([`CallOutcome`]) and a record that could not
//! be read or prepared ([`InvalidRecord`]).

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::answer::{Answer, Usage};
use super::request::RecordMeta;
use super::tier::ServiceTier;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Throttling,
    ModelNotReady,
    ModelTimeout,
    ServiceUnavailable,
    InternalServer,
    Validation,
    ModelError,
    AccessDenied,
    ResourceNotFound,
    Credentials,
    Connection,
    Timeout,
    BadResponse,
    /// The model's answer does not validate against `--schema`, twice.
    SchemaMismatch,
    /// A Batch Inference job ended (failed, expired, stopped, partially completed) without
    /// answering the record, or the record could not join a job.
    BatchIncomplete,
    /// The run stopped before this call could finish (fatal error elsewhere, Ctrl-C).
    Cancelled,
    Other,
}

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Throttling => "throttling",
            ErrorKind::ModelNotReady => "model_not_ready",
            ErrorKind::ModelTimeout => "model_timeout",
            ErrorKind::ServiceUnavailable => "service_unavailable",
            ErrorKind::InternalServer => "internal_server",
            ErrorKind::Validation => "validation",
            ErrorKind::ModelError => "model_error",
            ErrorKind::AccessDenied => "access_denied",
            ErrorKind::ResourceNotFound => "resource_not_found",
            ErrorKind::Credentials => "credentials",
            ErrorKind::Connection => "connection",
            ErrorKind::Timeout => "timeout",
            ErrorKind::BadResponse => "bad_response",
            ErrorKind::SchemaMismatch => "schema_mismatch",
            ErrorKind::BatchIncomplete => "batch_incomplete",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Other => "other",
        }
    }

    /// Worth another attempt after a backoff.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Throttling
                | ErrorKind::ModelNotReady
                | ErrorKind::ModelTimeout
                | ErrorKind::ServiceUnavailable
                | ErrorKind::InternalServer
                | ErrorKind::Connection
                | ErrorKind::Timeout
                | ErrorKind::BadResponse
                | ErrorKind::BatchIncomplete
        )
    }

    /// The service pushes back: a reason for the limiter to slow everyone down.
    pub fn congestion(self) -> bool {
        matches!(
            self,
            ErrorKind::Throttling
                | ErrorKind::ModelNotReady
                | ErrorKind::ModelTimeout
                | ErrorKind::ServiceUnavailable
                | ErrorKind::Timeout
        )
    }

    /// The model is denied or missing where the call went: another region may serve it.
    pub fn lane_fatal(self) -> bool {
        matches!(self, ErrorKind::AccessDenied | ErrorKind::ResourceNotFound)
    }

    /// Every record would fail the same way: stop the run instead.
    pub fn fatal(self) -> bool {
        matches!(
            self,
            ErrorKind::AccessDenied | ErrorKind::ResourceNotFound | ErrorKind::Credentials
        )
    }
}

/// A failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub kind: ErrorKind,
    pub message: String,
    /// How long the service asked us to wait (`Retry-After`), when it said.
    pub retry_after: Option<Duration>,
    /// The SDK's whole account of the error, when `message` is the short form of it: for
    /// `-v`, not for the one line a user reads.
    pub detail: Option<String>,
    /// What the failed call was billed (an answer that broke `--schema` was generated and
    /// paid for); zero for calls the service refused.
    pub billed: Usage,
}

impl CallError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> CallError {
        CallError {
            kind,
            message: message.into(),
            retry_after: None,
            detail: None,
            billed: Usage::default(),
        }
    }

    /// This error, for a call that was billed `usage`.
    pub fn billed(self, usage: Usage) -> CallError {
        CallError {
            billed: usage,
            ..self
        }
    }
}

/// A record that could not be read or prepared; it becomes an error line in the results.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidRecord {
    pub number: u64,
    pub line: u64,
    /// The record's id when it could be read.
    pub id: Option<Value>,
    /// Machine-readable kind: `invalid_json`, `invalid_utf8`, `ragged_row`, `missing_field`...
    pub kind: &'static str,
    pub message: String,
}

/// A finished call (or one the run stopped): its records and how it went.
#[derive(Debug)]
pub struct CallOutcome {
    /// The region (or endpoint) of the last attempt.
    pub region: String,
    /// Attempts and throttles in each region the call went to.
    pub regions: Vec<RegionTries>,
    pub model: String,
    pub records: Vec<RecordMeta>,
    /// One answer per record, or the error that ended the call.
    pub result: Result<Vec<Answer>, CallError>,
    /// Attempts sent, throttled ones included.
    pub attempts: u32,
    /// The reason of each attempt after the first, in order.
    pub retries: Vec<ErrorKind>,
    /// The last attempt's duration (waits excluded).
    pub latency: Duration,
    /// The Batch Inference job that answered, when the call went through one.
    pub batch_job: Option<String>,
    /// The service tier the call asked for.
    pub service_tier: Option<ServiceTier>,
}

/// A call's attempts in one region (or at one endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionTries {
    pub region: String,
    pub attempts: u32,
    pub throttles: u32,
}
