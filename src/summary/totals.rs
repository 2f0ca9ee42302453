//! The running totals of a run ([`Totals`]), fed the same values that go into result
//! lines, so summary.json always equals the sum of results.jsonl. Each line is priced as it
//! lands ([`Totals::charge`]), so rules that depend on a single request (the long-context
//! tier) hold, and costs are kept per model and pricing variant; a line taken back
//! (`--retry-failed`) is taken back from every count. Latency and time to first token go
//! into histograms, reported as percentiles.

use std::time::Duration;

use hdrhistogram::Histogram;

use super::contract::{EARLIER_LINES, LatencyMs, Summary, VariantTotals};
use super::retrieval::{Retrieval, Scored};
use super::sums::region_totals;
use crate::prices::Charge;
use crate::vocab::{ErrorKind, RegionTries, Usage};

/// Totals kept while the run goes.
pub struct Totals {
    pub summary: Summary,
    latency: Histogram<u64>,
    ttft: Histogram<u64>,
    /// Time spent by earlier runs on the same RUN_DIR.
    earlier_elapsed: f64,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prices::{PriceTable, Route};
    use crate::summary::apply_prices;

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
