//! Summaries added up and priced: [`add_counts`] adds one summary's counts to another's
//! (shards merged, a run resumed), [`apply_prices`] fills in the costs from the lines'
//! charges, model by model and regrouped by service tier. Percentiles and timing do not
//! add: their owners set them.

use std::collections::BTreeMap;

use super::contract::{ModelTotals, RegionTotals, Summary, VariantTotals};
use crate::prices::{PriceTable, Route};
use crate::vocab::Usage;

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
pub(super) fn region_totals<'a>(
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
