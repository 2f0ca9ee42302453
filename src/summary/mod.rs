//! Running totals of a run and the summary built from them. The totals are fed the same
//! values that go into result lines, so summary.json always equals the sum of results.jsonl.
//! Each line is priced as it lands ([`Totals::charge`]), so rules that depend on a single
//! request (the long-context tier) hold, and costs are kept per model and pricing variant.
//! Rendering is pure (`render(&Summary) -> String`) so it can be tested without I/O.

pub mod retrieval;

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::prices::{Charge, PriceTable, Route};
use crate::vocab::BatchReport;
use crate::vocab::FilesRead;
use crate::vocab::LearnedQuota;
use crate::vocab::LimiterReport;
use crate::vocab::Usage;
use crate::vocab::{ErrorKind, RegionTries, Shard};
use retrieval::{Retrieval, Scored};

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
pub struct Aborted {
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
const EARLIER_LINES: &str = "earlier_runs";

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<Aborted>,
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

/// Totals kept while the run goes.
pub struct Totals {
    pub summary: Summary,
    latency: Histogram<u64>,
    ttft: Histogram<u64>,
    /// Time spent by earlier runs on the same RUN_DIR.
    earlier_elapsed: f64,
}

/// Fills in the costs of `summary`: each model's from its lines' charges, the total from the
/// models'. `prices` only decides for a model without lines (a call that ended the run)
/// whether it is priced at all.
pub fn apply_prices(summary: &mut Summary, prices: &PriceTable) {
    let mut total = 0.0;
    let mut unpriced = Vec::new();
    for (model, totals) in summary.by_model.iter_mut() {
        if !totals.cost_by_variant.is_empty() {
            totals.cost_usd = totals.cost_of_lines();
        } else if totals.records == 0 {
            totals.cost_usd = prices.cost(model, &Usage::default());
        }
        match totals.cost_usd {
            Some(cost) => total += cost,
            None => unpriced.push(model.clone()),
        }
    }
    summary.by_tier = by_tier(&summary.by_model);
    let round = |x: f64| (x * 1e6).round() / 1e6;
    if unpriced.is_empty() {
        summary.cost_usd = Some(round(total));
        summary.cost_partial_usd = None;
    } else {
        summary.cost_usd = None;
        summary.cost_partial_usd = Some(round(total));
    }
    summary.unpriced_models = unpriced;
}

/// The lines of `by_model` regrouped by tier; empty when all went the default tier.
fn by_tier(by_model: &BTreeMap<String, ModelTotals>) -> BTreeMap<String, VariantTotals> {
    let mut tiers: BTreeMap<String, VariantTotals> = BTreeMap::new();
    for totals in by_model.values() {
        for (variant, lines) in &totals.cost_by_variant {
            let Some(tier) = Route::tier_of_variant(variant) else {
                continue;
            };
            let sum = tiers
                .entry(tier.to_string())
                .or_insert_with(|| VariantTotals {
                    cost_usd: Some(0.0),
                    ..VariantTotals::default()
                });
            sum.records += lines.records;
            sum.usage.add(&lines.usage);
            sum.cost_usd = sum.cost_usd.zip(lines.cost_usd).map(|(a, b)| a + b);
        }
    }
    if tiers.keys().all(|tier| tier == "default") {
        tiers.clear();
    }
    tiers
}

/// `region`'s totals, new ones costing 0 until a line without a price comes.
fn region_totals<'a>(
    by_region: &'a mut BTreeMap<String, RegionTotals>,
    region: &str,
) -> &'a mut RegionTotals {
    by_region
        .entry(region.to_string())
        .or_insert_with(|| RegionTotals {
            cost_usd: Some(0.0),
            ..RegionTotals::default()
        })
}

/// Adds `other`'s counts to `summary`: records, usage, models, regions, calls, retries,
/// errors, files. Latency percentiles, timing and the limiter are not additive: the caller
/// sets them.
pub fn add_counts(summary: &mut Summary, other: &Summary) {
    let plus = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a + b);
    summary.records.total += other.records.total;
    summary.records.ok += other.records.ok;
    summary.records.failed += other.records.failed;
    summary.usage.add(&other.usage);
    for (model, theirs) in &other.by_model {
        let ours = summary
            .by_model
            .entry(model.clone())
            .or_insert_with(|| ModelTotals {
                cost_usd: Some(0.0),
                ..ModelTotals::default()
            });
        ours.requests += theirs.requests;
        ours.records += theirs.records;
        ours.ok += theirs.ok;
        ours.failed += theirs.failed;
        ours.usage.add(&theirs.usage);
        ours.cost_usd = plus(ours.cost_usd, theirs.cost_usd);
        for (variant, lines) in &theirs.cost_by_variant {
            let kept = ours
                .cost_by_variant
                .entry(variant.clone())
                .or_insert_with(|| VariantTotals {
                    cost_usd: Some(0.0),
                    ..VariantTotals::default()
                });
            kept.records += lines.records;
            kept.usage.add(&lines.usage);
            kept.cost_usd = plus(kept.cost_usd, lines.cost_usd);
        }
    }
    for (region, theirs) in &other.by_region {
        let ours = region_totals(&mut summary.by_region, region);
        ours.requests += theirs.requests;
        ours.throttles += theirs.throttles;
        ours.usage.add(&theirs.usage);
        ours.cost_usd = plus(ours.cost_usd, theirs.cost_usd);
    }
    summary.calls += other.calls;
    summary.warnings += other.warnings;
    summary.attempts += other.attempts;
    summary.throttles += other.throttles;
    summary.retries += other.retries;
    for (reason, n) in &other.retries_by_reason {
        *summary.retries_by_reason.entry(reason.clone()).or_default() += n;
    }
    for (kind, n) in &other.errors_by_kind {
        *summary.errors_by_kind.entry(kind.clone()).or_default() += n;
    }
    summary.files.read += other.files.read;
    summary.files.reused += other.files.reused;
    summary.files.urls_fetched += other.files.urls_fetched;
    summary.files.urls_reused += other.files.urls_reused;
}

impl Totals {
    pub fn new(job_file: &str, model: &str, mode: &str) -> Totals {
        Totals {
            summary: Summary {
                job_file: job_file.to_string(),
                model: model.to_string(),
                mode: mode.to_string(),
                started_unix: crate::vocab::unix_now(),
                ..Summary::default()
            },
            latency: new_histogram(),
            ttft: new_histogram(),
            earlier_elapsed: 0.0,
        }
    }

    /// Totals that go on from an earlier run's (a resume). Latency percentiles describe the
    /// latest run that made calls.
    pub fn resume(mut earlier: Summary) -> Totals {
        let earlier_elapsed = earlier.elapsed_s;
        for totals in earlier.by_model.values_mut() {
            // Written by a version that priced totals at the end: keep what it charged.
            if totals.cost_by_variant.is_empty() && totals.records > 0 {
                totals.cost_by_variant.insert(
                    EARLIER_LINES.to_string(),
                    VariantTotals {
                        records: totals.records,
                        usage: totals.usage,
                        cost_usd: totals.cost_usd,
                    },
                );
            }
        }
        Totals {
            summary: Summary {
                aborted: None,
                budget: None,
                ..earlier
            },
            latency: new_histogram(),
            ttft: new_histogram(),
            earlier_elapsed,
        }
    }

    /// Totals of a knowledge-base run: no usage reported, and with `scored`, retrieval
    /// scores at `k`.
    pub fn for_knowledge_base(mut self, k: u32, scored: bool) -> Totals {
        let s = &mut self.summary;
        s.usage_reported = Some(false);
        s.usage_note = Some(
            "Knowledge Bases (Retrieve, RetrieveAndGenerate) report no token usage: usage stays 0 and cost is null (unknown); see the knowledge base's own costs (vector store, embedding and generation models) in AWS Cost Explorer".into(),
        );
        s.retrieval = scored.then(|| Retrieval::new(k));
        self
    }

    /// Counts one scored line of a run with `--expected-field`.
    pub fn scored(&mut self, scored: Scored) {
        if let Some(retrieval) = &mut self.summary.retrieval {
            retrieval.add(scored);
        }
    }

    /// Takes back one result line (replaced by `--retry-failed`).
    pub fn forget(&mut self, model: &str, usage: &Usage, error: Option<&str>) {
        let s = &mut self.summary;
        s.records.total = s.records.total.saturating_sub(1);
        s.usage.subtract(usage);
        if let Some(by_model) = s.by_model.get_mut(model) {
            by_model.records = by_model.records.saturating_sub(1);
            by_model.usage.subtract(usage);
            match error {
                None => by_model.ok = by_model.ok.saturating_sub(1),
                Some(_) => by_model.failed = by_model.failed.saturating_sub(1),
            }
        }
        match error {
            None => s.records.ok = s.records.ok.saturating_sub(1),
            Some(kind) => {
                s.records.failed = s.records.failed.saturating_sub(1);
                if let Some(n) = s.errors_by_kind.get_mut(kind) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        s.errors_by_kind.remove(kind);
                    }
                }
            }
        }
    }

    /// Counts one result line.
    pub fn record(&mut self, model: &str, usage: &Usage, error: Option<&str>) {
        let s = &mut self.summary;
        s.records.total += 1;
        s.usage.add(usage);
        let by_model = s.by_model.entry(model.to_string()).or_default();
        by_model.records += 1;
        by_model.usage.add(usage);
        match error {
            None => {
                s.records.ok += 1;
                by_model.ok += 1;
            }
            Some(kind) => {
                s.records.failed += 1;
                by_model.failed += 1;
                *s.errors_by_kind.entry(kind.to_string()).or_default() += 1;
            }
        }
    }

    /// Adds what one line (`usage`, charged `charge`) cost to its model's variant.
    pub fn charge(&mut self, model: &str, usage: &Usage, charge: &Charge) {
        let by_model = self.summary.by_model.entry(model.to_string()).or_default();
        let variant = by_model
            .cost_by_variant
            .entry(charge.variant.clone())
            .or_default();
        variant.records += 1;
        variant.usage.add(usage);
        variant.cost_usd = match (variant.records, variant.cost_usd, charge.usd) {
            (1, _, usd) => usd,
            (_, Some(sum), Some(usd)) => Some(sum + usd),
            _ => None,
        };
    }

    /// Takes back the charge of a line taken back by [`Totals::forget`].
    pub fn refund(&mut self, model: &str, usage: &Usage, charge: &Charge) {
        let Some(by_model) = self.summary.by_model.get_mut(model) else {
            return;
        };
        let Some(variant) = by_model.cost_by_variant.get_mut(&charge.variant) else {
            return;
        };
        variant.records = variant.records.saturating_sub(1);
        variant.usage.subtract(usage);
        variant.cost_usd = variant.cost_usd.zip(charge.usd).map(|(sum, usd)| sum - usd);
        if variant.records == 0 {
            by_model.cost_by_variant.remove(&charge.variant);
        }
    }

    /// Counts one finished call.
    pub fn call(&mut self, model: &str, attempts: u32, retries: &[ErrorKind], latency: Duration) {
        self.abandoned(attempts, retries);
        let s = &mut self.summary;
        s.calls += 1;
        s.by_model.entry(model.to_string()).or_default().requests += 1;
        record_ms(&mut self.latency, latency.as_millis() as u64);
    }

    /// Counts the attempts of a call the run stopped before it finished: they reached the
    /// service, so they count, but the call has no outcome and no line.
    pub fn abandoned(&mut self, attempts: u32, retries: &[ErrorKind]) {
        let s = &mut self.summary;
        s.attempts += attempts as u64;
        for reason in retries {
            s.retries += 1;
            *s.retries_by_reason
                .entry(reason.name().to_string())
                .or_default() += 1;
            if *reason == ErrorKind::Throttling {
                s.throttles += 1;
            }
        }
    }

    /// Counts a call's attempts and throttles in each region it went to.
    pub fn regions(&mut self, tries: &[RegionTries]) {
        for tries in tries {
            let region = region_totals(&mut self.summary.by_region, &tries.region);
            region.requests += tries.attempts as u64;
            region.throttles += tries.throttles as u64;
        }
    }

    /// Counts a line answered in `region`, and what it cost.
    pub fn region_line(&mut self, region: &str, usage: &Usage, usd: Option<f64>) {
        if region.is_empty() {
            return;
        }
        let region = region_totals(&mut self.summary.by_region, region);
        region.usage.add(usage);
        region.cost_usd = region.cost_usd.zip(usd).map(|(sum, usd)| sum + usd);
    }

    /// Counts one streamed answer's time to first token.
    pub fn ttft(&mut self, ms: u64) {
        record_ms(&mut self.ttft, ms);
    }

    /// The summary as of `elapsed` into this run.
    pub fn snapshot(&self, elapsed: Duration) -> Summary {
        let elapsed = Duration::from_secs_f64(self.earlier_elapsed) + elapsed;
        let mut summary = self.summary.clone();
        if !self.latency.is_empty() {
            summary.latency_ms = percentiles(&self.latency);
        }
        if !self.ttft.is_empty() {
            summary.ttft_ms = Some(percentiles(&self.ttft));
        }
        summary.elapsed_s = (elapsed.as_secs_f64() * 1000.0).round() / 1000.0;
        summary.finished_unix = crate::vocab::unix_now();
        summary.records_per_s = if elapsed.as_secs_f64() > 0.0 {
            (summary.records.total as f64 / elapsed.as_secs_f64() * 10.0).round() / 10.0
        } else {
            0.0
        };
        summary
    }
}

/// 1 ms to 1 hour at 3 significant figures: a few tens of KB, whatever the run size.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000, 3).expect("valid histogram bounds")
}

/// Records `ms` in a [`new_histogram`], clamped to its bounds.
pub fn record_ms(histogram: &mut Histogram<u64>, ms: u64) {
    let _ = histogram.record(ms.clamp(1, 3_600_000));
}

/// The percentiles summary.json reports of a histogram.
pub fn percentiles(histogram: &Histogram<u64>) -> LatencyMs {
    LatencyMs {
        p50: histogram.value_at_quantile(0.5),
        p90: histogram.value_at_quantile(0.9),
        p99: histogram.value_at_quantile(0.99),
        max: histogram.max(),
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1,234 in, 567 out` (and the cache tokens when there are any).
pub fn usage_text(u: &Usage) -> String {
    let mut text = format!(
        "{} in, {} out",
        thousands(u.input_tokens),
        thousands(u.output_tokens)
    );
    if u.cache_read_input_tokens + u.cache_write_input_tokens > 0 {
        text += &format!(
            ", {} cache read, {} cache write",
            thousands(u.cache_read_input_tokens),
            thousands(u.cache_write_input_tokens)
        );
    }
    text
}

/// `$1.2345`, or what is known when some prices are missing.
pub fn cost_text(summary: &Summary) -> String {
    // With tiers in play, each tier's part: "$0.0123 (flex $0.0100, default $0.0023)".
    let tiers = || {
        let parts: Vec<String> = summary
            .by_tier
            .iter()
            .map(|(tier, lines)| match lines.cost_usd {
                Some(cost) => format!("{tier} ${cost:.4}"),
                None => format!("{tier} unknown"),
            })
            .collect();
        match parts.as_slice() {
            [_, _, ..] => format!(" ({})", parts.join(", ")),
            // One tier: said once, without repeating the amount.
            [one] => format!(" ({})", one.split(' ').next().unwrap_or_default()),
            [] => String::new(),
        }
    };
    match (summary.cost_usd, summary.cost_partial_usd) {
        (Some(cost), _) => format!("${cost:.4}{}", tiers()),
        (None, Some(partial)) if partial > 0.0 => format!(
            "partial: ${partial:.4} for priced models; no price for {} (give one with --prices FILE)",
            summary.unpriced_models.join(", ")
        ),
        _ => format!(
            "unknown: no price for {} (give one with --prices FILE)",
            if summary.unpriced_models.is_empty() {
                "this model".to_string()
            } else {
                summary.unpriced_models.join(", ")
            }
        ),
    }
}

/// `one` or `many` as `n` asks.
pub fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// The human summary printed on stderr at the end of a run.
pub fn render(summary: &Summary) -> String {
    let r = &summary.records;
    let mut out = match r.pending {
        // A stopped run: what is done of the whole, and what is left.
        Some(left) if left > 0 => format!(
            "{} of {} records done ({} left: rerun to resume): {} ok, {} failed\n",
            thousands(r.total),
            thousands(r.total + left),
            thousands(left),
            thousands(r.ok),
            thousands(r.failed)
        ),
        _ => format!(
            "{} {}: {} ok, {} failed\n",
            thousands(r.total),
            plural(r.total, "record", "records"),
            thousands(r.ok),
            thousands(r.failed)
        ),
    };
    if summary.usage_reported == Some(false) {
        out += "tokens: not reported by Knowledge Bases\n";
        out += "cost: unknown (no token usage to price)\n";
    } else {
        out += &format!("tokens: {}\n", usage_text(&summary.usage));
        out += &format!("cost: {}\n", cost_text(summary));
    }
    if let Some(r) = &summary.retrieval
        && let (Some(hit_rate), Some(mrr)) = (r.hit_rate, r.mrr)
    {
        out += &format!(
            "retrieval: hit rate {:.1}%, MRR {mrr:.3} at k={} ({} records scored)\n",
            hit_rate * 100.0,
            r.k,
            thousands(r.scored)
        );
    }
    if let Some(batch) = &summary.batch {
        let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
        for job in &batch.jobs {
            *by_status.entry(job.status.as_str()).or_default() += 1;
        }
        let statuses: Vec<String> = by_status
            .iter()
            .map(|(status, n)| format!("{n} {status}"))
            .collect();
        out += &format!(
            "batch {}: {} ({}); at batch prices; prepare {:.1} s, submit {:.1} s, wait {:.1} s, collect {:.1} s\n",
            plural(batch.jobs.len() as u64, "job", "jobs"),
            batch.jobs.len(),
            statuses.join(", "),
            batch.prepare_s,
            batch.submit_s,
            batch.wait_s,
            batch.collect_s
        );
    }
    out += &format!(
        "calls: {} ({} retries, {} throttled), latency p50 {} ms, p99 {} ms\n",
        thousands(summary.calls),
        thousands(summary.retries),
        thousands(summary.throttles),
        summary.latency_ms.p50,
        summary.latency_ms.p99
    );
    if let Some(ttft) = &summary.ttft_ms {
        out += &format!(
            "time to first token: p50 {} ms, p99 {} ms\n",
            ttft.p50, ttft.p99
        );
    }
    // A batch run has jobs, not calls in flight; a merged run has no one limiter.
    if summary.batch.is_none() && summary.limiter.peak > 0 {
        out += &format!(
            "concurrency: {} at the end, {} at the peak ({} {})\n",
            summary.limiter.final_limit,
            summary.limiter.peak,
            summary.limiter.decreases,
            plural(summary.limiter.decreases, "cut", "cuts")
        );
    }
    if summary.warnings > 0 {
        out += &format!(
            "warnings: {} {} made before sending (each in its record's line, as `warnings`)\n",
            thousands(summary.warnings),
            plural(summary.warnings, "correction", "corrections"),
        );
    }
    if !summary.errors_by_kind.is_empty() {
        let kinds: Vec<String> = summary
            .errors_by_kind
            .iter()
            .map(|(kind, n)| format!("{kind} {}", thousands(*n)))
            .collect();
        out += &format!("errors: {}\n", kinds.join(", "));
    }
    out += &format!(
        "elapsed: {:.1} s, {:.1} records/s\n",
        summary.elapsed_s, summary.records_per_s
    );
    if let Some(budget) = &summary.budget {
        out += &format!(
            "stopped at the budget: spent ${:.4} of --budget-usd {:.4}{}; rerun to continue (the budget applies to each invocation)\n",
            budget.spent_usd,
            budget.limit_usd,
            match summary.records.pending {
                Some(n) => format!(", {} records not sent", thousands(n)),
                None => String::new(),
            }
        );
    }
    if let Some(aborted) = &summary.aborted {
        let stopped = format!(
            "stopped early: {} for {}: {}\n{}{}\n",
            aborted.kind,
            aborted.model,
            aborted.message,
            match summary.records.pending {
                Some(n) => format!("{} records were not sent. ", thousands(n)),
                None => String::new(),
            },
            aborted.hint
        );
        // Nothing done: the reason is the news, not a line of zeros before it.
        if summary.records.total == 0 {
            return stopped + &out;
        }
        out += &stopped;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_up_and_render() {
        let mut totals = Totals::new("job.jsonl", "m", "converse");
        let usage = Usage {
            input_tokens: 10,
            output_tokens: 5,
            ..Usage::default()
        };
        totals.record("m", &usage, None);
        totals.record("m", &Usage::default(), Some("validation"));
        totals.call(
            "m",
            3,
            &[ErrorKind::Throttling, ErrorKind::InternalServer],
            Duration::from_millis(40),
        );
        totals.call("m", 1, &[], Duration::from_millis(20));
        let s = totals.snapshot(Duration::from_secs(2));
        assert_eq!(
            s.records,
            RecordCounts {
                total: 2,
                ok: 1,
                failed: 1,
                pending: None
            }
        );
        assert_eq!(s.usage.input_tokens, 10);
        assert_eq!(s.by_model["m"].requests, 2);
        assert_eq!(s.retries, 2);
        assert_eq!(s.throttles, 1);
        assert_eq!(s.attempts, 4);
        assert_eq!(s.errors_by_kind["validation"], 1);
        assert_eq!(s.latency_ms.max, 40);
        assert_eq!(s.records_per_s, 1.0);
        let text = render(&s);
        assert!(text.starts_with("2 records: 1 ok, 1 failed\n"), "{text}");
        assert!(text.contains("cost: unknown"));
        let mut priced = s.clone();
        apply_prices(&mut priced, &PriceTable::built_in());
        assert_eq!(priced.cost_usd, None, "model m has no price");
        assert_eq!(priced.unpriced_models, vec!["m"]);
        assert!(text.contains("errors: validation 1"));
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12), "12");
    }

    #[test]
    fn lines_are_priced_one_by_one_and_kept_by_variant() {
        let prices = PriceTable::built_in();
        let model = "anthropic.claude-sonnet-4-20250514-v1:0";
        let mut totals = Totals::new("job.jsonl", model, "converse");
        let line = |input| Usage {
            input_tokens: input,
            output_tokens: 1_000,
            ..Usage::default()
        };
        let charge_line = |totals: &mut Totals, usage: &Usage| {
            totals.charge(model, usage, &prices.charge(model, usage, Route::OnDemand));
        };
        let priced = |totals: &Totals| {
            let mut s = totals.snapshot(Duration::from_secs(1));
            apply_prices(&mut s, &prices);
            s
        };
        // Two requests of 150k and one of 250k: summed, all 550k would look long.
        for input in [150_000, 150_000, 250_000] {
            let usage = line(input);
            totals.record(model, &usage, None);
            charge_line(&mut totals, &usage);
        }
        let s = priced(&totals);
        let variants = &s.by_model[model].cost_by_variant;
        assert_eq!(variants["on_demand"].records, 2);
        assert_eq!(
            variants["on_demand+long_context"].usage.input_tokens,
            250_000
        );
        let expected = (300_000.0 * 3.0 + 2_000.0 * 15.0 + 250_000.0 * 6.0 + 1_000.0 * 22.5) / 1e6;
        assert!((s.cost_usd.unwrap() - expected).abs() < 1e-9, "{s:?}");
        assert_eq!(s.by_model[model].cost_usd, s.cost_usd);

        // An unpriced line (cache tokens without a 1-hour price) makes the model unknown
        // until it is taken back.
        let odd = Usage {
            cache_write_input_tokens: 10,
            cache_write_1h_input_tokens: 10,
            ..Usage::default()
        };
        let charge = prices.charge(model, &odd, Route::OnDemand);
        totals.record(model, &odd, Some("validation"));
        totals.charge(model, &odd, &charge);
        let s = priced(&totals);
        assert_eq!((s.cost_usd, s.by_model[model].cost_usd), (None, None));
        assert!((s.cost_partial_usd.unwrap() - 0.0).abs() < 1e-9);
        totals.forget(model, &odd, Some("validation"));
        totals.refund(model, &odd, &charge);
        let s = priced(&totals);
        assert!((s.cost_usd.unwrap() - expected).abs() < 1e-9);
        assert!(!s.by_model[model].cost_by_variant.contains_key("unpriced"));

        // A summary from before costs were kept by variant keeps its cost on resume.
        let mut old = s.clone();
        let m = old.by_model.get_mut(model).unwrap();
        m.cost_by_variant.clear();
        m.cost_usd = Some(1.5);
        let mut resumed = Totals::resume(old);
        charge_line(&mut resumed, &line(100));
        let s = priced(&resumed);
        let more = (100.0 * 3.0 + 1_000.0 * 15.0) / 1e6;
        assert!((s.by_model[model].cost_usd.unwrap() - (1.5 + more)).abs() < 1e-9);
    }
}
