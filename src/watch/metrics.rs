//! The run as Prometheus metrics (`--metrics-addr`): the families under `bedrock_batch_`,
//! what feeds each (the summary as of now, the engine's live numbers and report, each call's
//! outcome), and the registry [`scrape`](super::scrape) encodes. Counters count what this
//! process did: a resumed run's earlier totals are primed in and never counted, so a
//! restart reads to Prometheus as a counter reset, which `rate()` and `increase()` expect.
//! Every metric carries `engine` (`on_demand` or `batch`) and, with `--shard`, `shard`.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use super::LATENCY_BUCKETS_S;
use super::cumulative::{Cumulative, Feed};
use super::events::RunStarted;
use crate::engine::{EngineReport, Live};
use crate::summary::Summary;
use crate::vocab::CallOutcome;

/// Every metric's name starts with this (and `_`).
pub const PREFIX: &str = "bedrock_batch";

/// No label (a gauge with no sample until its value is known), one, or two.
type Zero = [(&'static str, String); 0];
type One = [(&'static str, String); 1];
type Two = [(&'static str, String); 2];

fn one(key: &'static str, value: &str) -> One {
    [(key, value.to_string())]
}

fn two(key: &'static str, value: &str, key2: &'static str, value2: &str) -> Two {
    [(key, value.to_string()), (key2, value2.to_string())]
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS_S)
}

/// The families and what the counters last saw.
pub struct Metrics {
    records: Cumulative<Two>,
    tokens: Cumulative<Two>,
    cost: Cumulative<One, f64>,
    calls: Cumulative<One>,
    attempts: Cumulative<One>,
    throttles: Cumulative<One>,
    retries: Cumulative<One>,
    errors: Cumulative<One>,
    in_flight: Family<Zero, Gauge>,
    concurrency_limit: Family<One, Gauge>,
    learned_tpm: Family<Two, FloatGauge>,
    learned_rpm: Family<Two, FloatGauge>,
    pending: Family<Zero, Gauge>,
    batch_jobs: Family<One, Gauge>,
    /// Every status a batch job was seen in: one no job is in any more reads 0.
    job_statuses: BTreeSet<String>,
    latency: Family<Two, Histogram, fn() -> Histogram>,
}

impl Metrics {
    /// The families, registered in a registry labeled for this run; `before` is the
    /// summary as the run directory left it (what earlier invocations counted).
    pub fn new(started: &RunStarted, run_id: &str, before: &Summary) -> (Metrics, Registry) {
        let mut labels = vec![(Cow::Borrowed("engine"), Cow::Owned(started.engine.clone()))];
        if let Some(shard) = started.shard {
            labels.push((Cow::Borrowed("shard"), Cow::Owned(shard.to_string())));
        }
        let mut registry = Registry::with_prefix_and_labels(PREFIX, labels.into_iter());
        let mut metrics = Metrics {
            records: Cumulative::new(),
            tokens: Cumulative::new(),
            cost: Cumulative::new(),
            calls: Cumulative::new(),
            attempts: Cumulative::new(),
            throttles: Cumulative::new(),
            retries: Cumulative::new(),
            errors: Cumulative::new(),
            in_flight: Family::default(),
            concurrency_limit: Family::default(),
            learned_tpm: Family::default(),
            learned_rpm: Family::default(),
            pending: Family::default(),
            batch_jobs: Family::default(),
            job_statuses: BTreeSet::new(),
            latency: Family::new_with_constructor(latency_histogram),
        };
        metrics.register(&mut registry, started, run_id);
        metrics.count(before, Feed::Prime);
        (metrics, registry)
    }

    fn register(&self, registry: &mut Registry, started: &RunStarted, run_id: &str) {
        let r = registry;
        r.register(
            "run",
            "The run: bedrock-batch's version, the run directory's run id, the model and mode",
            Info::new(vec![
                ("version", started.version.clone()),
                ("run_id", run_id.to_string()),
                ("model", started.model.clone()),
                ("mode", started.mode.clone()),
            ]),
        );
        let records = "Records given a line in results.jsonl, by model and outcome (ok or failed)";
        r.register("records", records, self.records.family());
        let tokens = "Tokens billed, by model and kind (input, output, cache_read, cache_write)";
        r.register("tokens", tokens, self.tokens.family());
        let cost = "Cost in US dollars by model at the price table's prices; no sample while a model has no price";
        r.register("cost_usd", cost, self.cost.family());
        let calls = "Calls that reached an outcome, by model (a call answers one record, or several for a batch of embeddings)";
        r.register("calls", calls, self.calls.family());
        let attempts = "Attempts sent, throttled ones included, by region (or endpoint)";
        r.register("attempts", attempts, self.attempts.family());
        let throttles =
            "Attempts throttled, by region (or endpoint), of calls that reached an outcome";
        r.register("throttles", throttles, self.throttles.family());
        let retries = "Attempts after a call's first, by the reason of the retry";
        r.register("retries", retries, self.retries.family());
        let errors = "Records that failed, by error kind";
        r.register("errors", errors, self.errors.family());
        let in_flight = "Attempts in flight now (on-demand runs)";
        r.register("in_flight", in_flight, self.in_flight.clone());
        let limit = "Calls the adaptive limit allows in flight now, by region (or endpoint)";
        r.register("concurrency_limit", limit, self.concurrency_limit.clone());
        let tpm =
            "Tokens a minute the pacer learned (or was given with --tpm), by region and model";
        r.register("learned_tokens_per_minute", tpm, self.learned_tpm.clone());
        let rpm =
            "Requests a minute the pacer learned (or was given with --rpm), by region and model";
        r.register("learned_requests_per_minute", rpm, self.learned_rpm.clone());
        let pending =
            "Records of the job file (or shard) without a line yet, once the file is counted";
        r.register("records_pending", pending, self.pending.clone());
        let jobs = "Batch Inference jobs of the run by status (--via batch)";
        r.register("batch_jobs", jobs, self.batch_jobs.clone());
        r.register_with_unit(
            "call_latency",
            "Duration of each call's last attempt (waits excluded), by model and region",
            Unit::Seconds,
            self.latency.clone(),
        );
    }

    /// The summary's totals into the counters.
    fn count(&mut self, summary: &Summary, feed: Feed) {
        for (model, totals) in &summary.by_model {
            let records = &mut self.records;
            records.feed(feed, two("model", model, "outcome", "ok"), totals.ok);
            records.feed(
                feed,
                two("model", model, "outcome", "failed"),
                totals.failed,
            );
            let usage = &totals.usage;
            for (kind, tokens) in [
                ("input", usage.input_tokens),
                ("output", usage.output_tokens),
                ("cache_read", usage.cache_read_input_tokens),
                ("cache_write", usage.cache_write_input_tokens),
            ] {
                self.tokens
                    .feed(feed, two("model", model, "kind", kind), tokens);
            }
            if let Some(cost) = totals.cost_usd {
                self.cost.feed(feed, one("model", model), cost);
            }
            self.calls.feed(feed, one("model", model), totals.requests);
        }
        for (region, totals) in &summary.by_region {
            self.attempts
                .feed(feed, one("region", region), totals.requests);
            self.throttles
                .feed(feed, one("region", region), totals.throttles);
        }
        feed_each(
            &mut self.retries,
            feed,
            "reason",
            &summary.retries_by_reason,
        );
        feed_each(&mut self.errors, feed, "kind", &summary.errors_by_kind);
    }

    /// The run as it is now.
    pub fn look(&mut self, summary: &Summary, live: Live, report: &EngineReport) {
        self.count(summary, Feed::Advance);
        if let Some(in_flight) = live.in_flight {
            self.in_flight
                .get_or_create(&[])
                .set(gauge_value(in_flight as u64));
        }
        if let Some(pending) = summary.records.pending {
            self.pending.get_or_create(&[]).set(gauge_value(pending));
        }
        for (lane, limit, _) in &report.lanes {
            self.concurrency_limit
                .get_or_create(&one("region", lane))
                .set(gauge_value(*limit as u64));
            for (model, quota) in super::learned_on(report, lane) {
                let labels = two("region", lane, "model", model);
                if let Some(tpm) = quota.tokens_per_minute {
                    self.learned_tpm.get_or_create(&labels).set(tpm);
                }
                if let Some(rpm) = quota.requests_per_minute {
                    self.learned_rpm.get_or_create(&labels).set(rpm);
                }
            }
        }
        if let Some(batch) = &report.batch {
            let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
            for job in &batch.jobs {
                *by_status.entry(job.status.as_str()).or_default() += 1;
                self.job_statuses.insert(job.status.clone());
            }
            for status in &self.job_statuses {
                let jobs = by_status.get(status.as_str()).copied().unwrap_or(0);
                self.batch_jobs
                    .get_or_create(&one("status", status))
                    .set(gauge_value(jobs));
            }
        }
    }

    /// A call ended: its latency in the histogram.
    pub fn outcome(&mut self, outcome: &CallOutcome) {
        self.latency
            .get_or_create(&two("model", &outcome.model, "region", &outcome.region))
            .observe(outcome.latency.as_secs_f64());
    }
}

fn feed_each(
    counters: &mut Cumulative<One>,
    feed: Feed,
    key: &'static str,
    totals: &BTreeMap<String, u64>,
) {
    for (value, total) in totals {
        counters.feed(feed, one(key, value), *total);
    }
}

/// Gauges hold an i64.
fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::{ModelTotals, RegionTotals};

    fn started() -> RunStarted {
        RunStarted {
            engine: "on_demand".to_string(),
            shard: Some(crate::vocab::Shard::new(1, 4).expect("a shard")),
            ..RunStarted::default()
        }
    }

    fn summary(ok: u64, cost: Option<f64>) -> Summary {
        let mut summary = Summary::default();
        summary.by_model.insert(
            "m".to_string(),
            ModelTotals {
                requests: ok,
                ok,
                cost_usd: cost,
                ..ModelTotals::default()
            },
        );
        summary.by_region.insert(
            "us-east-1".to_string(),
            RegionTotals {
                requests: ok * 2,
                throttles: ok,
                ..RegionTotals::default()
            },
        );
        summary
    }

    fn scrape(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).expect("encodes");
        text
    }

    /// The value of `name{engine,shard,labels}`.
    fn sample<'a>(text: &'a str, name: &str, labels: &str) -> Option<&'a str> {
        let series = format!(r#"{name}{{engine="on_demand",shard="1/4",{labels}}} "#);
        text.lines().find_map(|line| line.strip_prefix(&series))
    }

    #[test]
    fn counters_count_this_process_from_the_summaries() {
        let (mut metrics, registry) = Metrics::new(&started(), "r1", &summary(10, Some(1.0)));
        metrics.look(
            &summary(12, Some(1.5)),
            Live::default(),
            &EngineReport::default(),
        );
        let text = scrape(&registry);
        let ok = sample(
            &text,
            "bedrock_batch_records_total",
            r#"model="m",outcome="ok""#,
        );
        assert_eq!(ok, Some("2"), "{text}");
        let attempts = sample(
            &text,
            "bedrock_batch_attempts_total",
            r#"region="us-east-1""#,
        );
        assert_eq!(attempts, Some("4"), "{text}");
        let cost = sample(&text, "bedrock_batch_cost_usd_total", r#"model="m""#);
        assert_eq!(cost, Some("0.5"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn an_unknown_price_gives_no_cost_sample() {
        let (mut metrics, registry) = Metrics::new(&started(), "r1", &Summary::default());
        metrics.look(&summary(3, None), Live::default(), &EngineReport::default());
        let text = scrape(&registry);
        assert!(!text.contains("bedrock_batch_cost_usd_total{"), "{text}");
        assert!(
            !text.contains("bedrock_batch_records_pending{"),
            "no pending sample while the job's size is unknown: {text}"
        );
        assert!(text.contains("bedrock_batch_records_total{"), "{text}");
    }

    #[test]
    fn a_total_that_falls_leaves_the_counter() {
        let (mut metrics, registry) = Metrics::new(&started(), "r1", &Summary::default());
        metrics.look(
            &summary(5, Some(2.0)),
            Live::default(),
            &EngineReport::default(),
        );
        metrics.look(
            &summary(3, Some(1.0)),
            Live::default(),
            &EngineReport::default(),
        );
        let text = scrape(&registry);
        let ok = sample(
            &text,
            "bedrock_batch_records_total",
            r#"model="m",outcome="ok""#,
        );
        assert_eq!(ok, Some("5"), "{text}");
    }
}
