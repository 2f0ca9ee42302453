//! What the local server saw, as served by `GET /_local/stats` and returned by
//! [`LocalServer::stats`](super::LocalServer::stats): tests assert on it, benchmarks read it.
//! Token totals count answers delivered whole (a 200 with a valid body or a completed
//! stream); faults and throttles are counted apart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A snapshot of the server's counters since start or the last `POST /_local/reset`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Every request that reached a model route, CountTokens included.
    pub requests: u64,
    /// Responses by HTTP status (a reset connection has none and is counted in `faults`).
    pub by_status: BTreeMap<u16, u64>,
    /// Requests by route: `converse`, `converse-stream`, `invoke`,
    /// `invoke-with-response-stream`, `count-tokens`.
    pub by_route: BTreeMap<String, u64>,
    /// Model calls (Converse, ConverseStream, InvokeModel, InvokeModelWithResponseStream)
    /// by the service tier that serves them (`default` when a call names none), counted
    /// once the request passed validation: what tier the server saw.
    #[serde(default)]
    pub by_tier: BTreeMap<String, TierStats>,
    /// Requests and usage by model id, as the client sent it (model calls only:
    /// CountTokens calls are counted in `requests`, `by_route` and `by_status`).
    pub by_model: BTreeMap<String, ModelStats>,
    /// `ThrottlingException`s sent, as HTTP 429s or mid-stream frames.
    pub throttles: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Quota tokens (input + output x burndown) of calls admitted past the quota, counted
    /// at admission: what a quota benchmark measures, calls still running included.
    #[serde(default)]
    pub admitted_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_write_input_tokens: u64,
    /// Requests being answered right now.
    pub in_flight: u64,
    /// The most requests ever answered at once.
    pub max_in_flight: u64,
    /// Successful answers to a request body (same route and model) already answered
    /// successfully before: work a client paid for twice.
    pub duplicate_successes: u64,
    pub faults: FaultCounts,
    /// Images and documents received, keyed `image/png`, `document/pdf`, ...
    pub attachments: BTreeMap<String, AttachmentStats>,
    /// Answered requests in which an image or document came after text in its message.
    #[serde(default)]
    pub attachments_after_text: u64,
    /// Batch Inference jobs.
    #[serde(default)]
    pub batch: BatchStats,
    /// RetrieveAndGenerate requests by the `modelArn` they sent.
    #[serde(default)]
    pub model_arns: BTreeMap<String, u64>,
    /// STS GetCallerIdentity requests.
    #[serde(default)]
    pub caller_identity_calls: u64,
}

/// What the Batch Inference control plane did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchStats {
    /// Jobs made (an idempotent repeat of a create makes none).
    pub jobs_created: u64,
    /// CreateModelInvocationJob calls that passed validation, repeats included.
    pub create_calls: u64,
    /// Creates answered with the job an earlier create of the same clientRequestToken made.
    pub creates_by_token: u64,
    /// Creates refused with ConflictException: another token's job has the name.
    pub creates_name_in_use: u64,
    /// Jobs that ended, by final status (`Completed`, `Failed`, ...).
    pub by_status: BTreeMap<String, u64>,
    /// Records answered (with output or an error line) by jobs that ended.
    pub records_processed: u64,
    /// StopModelInvocationJob calls that named a job, refused ones included.
    pub stop_calls: u64,
}

/// One service tier's calls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TierStats {
    pub requests: u64,
    /// Answers delivered whole.
    pub ok: u64,
    /// Calls turned away by the quota (flex ones first, to keep a reserve for the others).
    pub throttled: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelStats {
    pub requests: u64,
    /// Answers delivered whole.
    pub ok: u64,
    pub throttled: u64,
    /// Error responses other than throttles (validation, faults, access denied...).
    pub errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultCounts {
    pub internal_server: u64,
    pub service_unavailable: u64,
    pub timeout: u64,
    pub reset: u64,
    pub garbage: u64,
    #[serde(default)]
    pub model_error: u64,
    pub stream_throttle: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttachmentStats {
    pub count: u64,
    pub bytes: u64,
    /// Document names as received (documents only; the first 1,000).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

impl Stats {
    /// Calls served in `tier` (`default`, `priority`, `flex`).
    pub fn tier(&self, tier: &str) -> TierStats {
        self.by_tier.get(tier).cloned().unwrap_or_default()
    }

    /// Responses with `status`.
    pub fn status(&self, status: u16) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }
}
