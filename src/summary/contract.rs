//! summary.json: the serialized [`Summary`] and its parts, the contract scripts read (see
//! PRODUCT.md). Every field here is what users and their tools see; names, nesting and the
//! `null`-for-unknown costs change only with the contract. The variant names the file
//! carries beyond the price table's ([`USAGE_NOT_REPORTED`], [`EARLIER_LINES`]) are here too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::retrieval::Retrieval;
use crate::vocab::{
    BatchReport, FilesRead, LearnedQuota, LimiterReport, MaxTokensAdvice, Shard, Usage,
};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordCounts {
    /// Records with a line in results.jsonl.
    pub total: u64,
    pub ok: u64,
    pub failed: u64,
    /// Records of the job file without a line yet (a stopped run), when the file's size is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<u64>,
}

/// Time to first token of streamed calls.
pub type TtftMs = LatencyMs;

/// A run stopped by --budget-usd.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BudgetStop {
    pub limit_usd: f64,
    /// What this invocation spent.
    pub spent_usd: f64,
}

/// Why a run stopped early, and what to do about it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StopReport {
    pub kind: String,
    pub model: String,
    pub message: String,
    pub hint: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelTotals {
    /// Calls that reached an outcome (a Cohere batch is one).
    pub requests: u64,
    pub records: u64,
    pub ok: u64,
    pub failed: u64,
    pub usage: Usage,
    /// `null` until prices are known: never a silent 0.
    pub cost_usd: Option<f64>,
    /// The model's lines by pricing variant (`on_demand`, `on_demand+regional`,
    /// `on_demand+global+long_context`, `batch`, `unpriced`...); `cost_usd` is their sum.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cost_by_variant: BTreeMap<String, VariantTotals>,
}

/// Lines priced under one variant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VariantTotals {
    pub records: u64,
    pub usage: Usage,
    /// `null` for the `unpriced` variant only.
    pub cost_usd: Option<f64>,
}

/// Lines of a summary written before costs were kept by variant, carried over on resume.
pub(super) const EARLIER_LINES: &str = "earlier_runs";

impl ModelTotals {
    /// The cost of the lines priced so far: `None` when any of them has no price.
    pub fn cost_of_lines(&self) -> Option<f64> {
        self.cost_by_variant.values().map(|v| v.cost_usd).sum()
    }
}

/// What went to one region (or endpoint).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionTotals {
    /// Attempts sent there, throttled ones included.
    pub requests: u64,
    pub throttles: u64,
    /// Usage of the records answered there.
    pub usage: Usage,
    /// Their cost; `null` when a price is unknown.
    pub cost_usd: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyMs {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

/// summary.json.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub job_file: String,
    pub model: String,
    pub mode: String,
    /// The part of the job file this run holds (`--shard`), when it is one of several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    pub records: RecordCounts,
    pub usage: Usage,
    pub by_model: BTreeMap<String, ModelTotals>,
    /// The total cost, or `null` when any model lacks a price (see `cost_partial_usd`).
    pub cost_usd: Option<f64>,
    /// When some models lack a price: the cost of the priced ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_partial_usd: Option<f64>,
    /// Models without a price.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unpriced_models: Vec<String>,
    /// Calls that reached an outcome.
    pub calls: u64,
    /// Attempts, first tries and retries together.
    pub attempts: u64,
    pub throttles: u64,
    pub retries: u64,
    pub retries_by_reason: BTreeMap<String, u64>,
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Corrections made before sending (a relabeled image, a renamed document), each in
    /// its record's line as `warnings`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub warnings: u64,
    pub latency_ms: LatencyMs,
    /// With --stream: time to first token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<TtftMs>,
    #[serde(default, skip_serializing_if = "FilesRead::is_empty")]
    pub files: FilesRead,
    pub limiter: LimiterReport,
    /// What went to each region (or endpoint).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_region: BTreeMap<String, RegionTotals>,
    /// Lines by the service tier that answered them (`default`, `priority`, `flex`) and
    /// `batch` for Batch Inference: the models' `cost_by_variant` regrouped. Absent when
    /// every line went on demand in the default tier.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_tier: BTreeMap<String, VariantTotals>,
    /// Each model's quota as the pacer learned it (or was told with --tpm / --rpm).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub learned_quota: BTreeMap<String, LearnedQuota>,
    /// Each model whose calls held the token quota for output their answers did not use:
    /// the `--max-tokens` that fits them and how many times as many calls it would admit.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub max_tokens_advice: BTreeMap<String, MaxTokensAdvice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<StopReport>,
    /// Set when --budget-usd stopped the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetStop>,
    /// When the first run on this RUN_DIR started and the latest one last wrote this summary.
    #[serde(default)]
    pub started_unix: u64,
    #[serde(default)]
    pub finished_unix: u64,
    pub elapsed_s: f64,
    pub records_per_s: f64,
    /// `false` when the service reports no token usage (Knowledge Bases): `usage` then
    /// counts nothing and costs are `null` (unknown), not measured zeros.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_reported: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_note: Option<String>,
    /// With --expected-field: how often, and how high, the expected sources came back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<Retrieval>,
    /// With `--via batch`: the run's Batch Inference jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchReport>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The variant of the lines whose usage the service did not report: no price applies.
pub const USAGE_NOT_REPORTED: &str = "usage_not_reported";
