//! The ledger of a run: the one owner of results.jsonl, the totals and the sets of done
//! and failed records. Each outcome becomes result lines and is counted; every checkpoint
//! interval the lines are synced to disk and the checkpoint records exactly what they hold,
//! so a crash at any instant loses at most the lines after the last checkpoint, and a rerun
//! sends their records again instead of duplicating them.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::run_dir::OpenRunDir;
use super::state::{self, Checkpoint, RecordSet};
use super::{LineError, ResultLine, ResultsWriter, StoreError};
use crate::prices::{Charge, PriceTable, Route};
use crate::summary::retrieval;
use crate::summary::{Summary, Totals, USAGE_NOT_REPORTED, apply_prices};
use crate::vocab::CallOutcome;
use crate::vocab::ErrorKind;
use crate::vocab::InvalidRecord;
use crate::vocab::LimiterReport;
use crate::vocab::RecordMeta;
use crate::vocab::{Answer, ServiceTier, Usage};

/// A line's cost to a hundred-millionth of a dollar: enough for any sum of lines, without
/// float noise (`3.3000000000000003e-5`) in the file.
fn round_usd(usd: f64) -> f64 {
    (usd * 1e8).round() / 1e8 + 0.0
}

pub struct Ledger {
    run_dir: PathBuf,
    writer: ResultsWriter,
    pub totals: Totals,
    done: RecordSet,
    failed_retryable: RecordSet,
    failed_other: RecordSet,
    runs: u32,
    started: Instant,
    last_checkpoint: Instant,
    prices: Arc<PriceTable>,
    /// How the run sends its calls, for the price warning.
    route: Route,
    /// Models already warned about for lacking a price.
    unpriced: BTreeSet<String>,
}

/// A result line for `meta` with nothing filled in yet.
fn base_line<'a>(
    meta: &'a RecordMeta,
    model: &'a str,
    latency_ms: u64,
    attempts: u32,
) -> ResultLine<'a> {
    ResultLine {
        latency_ms,
        attempts,
        fields: meta.kept.as_ref(),
        warnings: &meta.warnings,
        ..ResultLine::new(&meta.id, meta.number, model)
    }
}

impl Ledger {
    /// A ledger going on from what `opened` holds; `fresh` makes the totals of a new run.
    pub fn new(
        run_dir: PathBuf,
        opened: &OpenRunDir,
        (prices, route): (Arc<PriceTable>, Route),
        fresh: impl FnOnce() -> Totals,
    ) -> Result<Ledger, StoreError> {
        let writer = ResultsWriter::create(&run_dir)?;
        let totals = match &opened.earlier {
            Some(earlier) => Totals::resume(earlier.clone()),
            None => fresh(),
        };
        let now = Instant::now();
        let mut ledger = Ledger {
            run_dir,
            writer,
            totals,
            done: opened.done.clone(),
            failed_retryable: opened.failed_retryable.clone(),
            failed_other: opened.failed_other.clone(),
            runs: opened.runs + 1,
            started: now,
            last_checkpoint: now,
            prices,
            route,
            unpriced: BTreeSet::new(),
        };
        let model = ledger.totals.summary.model.clone();
        ledger.check_price(&model);
        Ok(ledger)
    }

    /// Whether the service reports token usage (not for Knowledge Bases).
    fn usage_reported(&self) -> bool {
        self.totals.summary.usage_reported != Some(false)
    }

    /// Warns once for each model that has no price on the run's route (a price means
    /// nothing without usage): a `warning:` line for the person at the terminal, the run's
    /// own model's at the start.
    fn check_price(&mut self, model: &str) {
        let probe = Usage {
            input_tokens: 1,
            output_tokens: 1,
            ..Usage::default()
        };
        if self.usage_reported()
            && self.prices.charge(model, &probe, self.route).usd.is_none()
            && self.unpriced.insert(model.to_string())
        {
            let which = match self.route {
                Route::OnDemand => "",
                Route::Priority => "priority-tier ",
                Route::Flex => "flex-tier ",
                Route::Batch => "Batch Inference ",
            };
            eprintln!(
                "warning: no {which}price known for {model}: its cost will be reported as unknown (null), not 0; give it with --prices FILE (`bedrock-batch prices --help` says how)"
            );
        }
    }

    /// Counts one result line and prices it as it lands: per line is per request (a Cohere
    /// batch splits one request's usage over its lines, and embeddings have no per-request
    /// rule), so the long-context tier is decided on each request, not on a sum.
    fn count(&mut self, model: &str, usage: &Usage, error: Option<&str>) -> Option<f64> {
        self.count_via(model, usage, error, Route::OnDemand)
    }

    /// [`Ledger::count`] for a line that came by `route` (Batch Inference is priced apart).
    fn count_via(
        &mut self,
        model: &str,
        usage: &Usage,
        error: Option<&str>,
        route: Route,
    ) -> Option<f64> {
        self.totals.record(model, usage, error);
        let charge = self.prices.charge(model, usage, route);
        self.totals.charge(model, usage, &charge);
        charge.usd
    }

    /// Counts an ok line whose usage the service did not report: its cost is unknown, so
    /// the model's stays `null` instead of a measured-looking 0.
    fn count_unreported(&mut self, model: &str) {
        let usage = Usage::default();
        self.totals.record(model, &usage, None);
        let charge = Charge {
            variant: USAGE_NOT_REPORTED.to_string(),
            usd: None,
        };
        self.totals.charge(model, &usage, &charge);
    }

    fn mark(&mut self, record: u64, error: Option<ErrorKind>) {
        self.done.insert(record);
        match error {
            None => {}
            Some(kind) if kind.retryable() => self.failed_retryable.insert(record),
            Some(_) => self.failed_other.insert(record),
        }
    }

    /// A record that could not be read or prepared.
    pub fn invalid(&mut self, model: &str, invalid: &InvalidRecord) -> Result<(), StoreError> {
        let id = invalid.id.clone().unwrap_or(Value::from(invalid.number));
        self.count(model, &Usage::default(), Some(invalid.kind));
        self.writer.write(&ResultLine {
            status: "error",
            line: Some(invalid.line),
            error: Some(LineError {
                kind: invalid.kind,
                message: &invalid.message,
            }),
            ..ResultLine::new(&id, invalid.number, model)
        })?;
        self.mark(invalid.number, Some(ErrorKind::Validation));
        Ok(())
    }

    /// A finished call. Calls cancelled by a stop and calls that hit a fatal error get no
    /// line (their attempts still count): their records are sent again by the next run.
    pub fn outcome(&mut self, outcome: CallOutcome) -> Result<(), StoreError> {
        self.totals.regions(&outcome.regions);
        if let Err(err) = &outcome.result
            && (err.kind == ErrorKind::Cancelled || err.kind.fatal())
        {
            if err.kind.fatal() {
                self.totals.call(
                    &outcome.model,
                    outcome.attempts,
                    &outcome.retries,
                    outcome.latency,
                );
            } else {
                self.totals.abandoned(outcome.attempts, &outcome.retries);
            }
            return Ok(());
        }
        self.totals.call(
            &outcome.model,
            outcome.attempts,
            &outcome.retries,
            outcome.latency,
        );
        self.check_price(&outcome.model);
        let latency_ms = outcome.latency.as_millis() as u64;
        let region = (!outcome.region.is_empty()).then_some(outcome.region.as_str());
        let batch_job = outcome.batch_job.as_deref();
        let via = batch_job.map(|_| "batch");
        match &outcome.result {
            Ok(answers) => {
                for (meta, answer) in outcome.records.iter().zip(answers) {
                    let usage = *answer.usage();
                    // Billed at the tier the answer reports, else the one asked for.
                    let tier = answer.service_tier().or(outcome.service_tier);
                    let route = match batch_job {
                        Some(_) => Route::Batch,
                        None => Route::on_demand(tier),
                    };
                    let mut line = base_line(meta, &outcome.model, latency_ms, outcome.attempts);
                    self.totals.summary.warnings += meta.warnings.len() as u64;
                    line.region = region;
                    line.via = via;
                    line.batch_job = batch_job;
                    line.service_tier = tier.map(ServiceTier::as_str);
                    if matches!(answer, Answer::Retrieved { .. } | Answer::Generated { .. }) {
                        self.count_unreported(&outcome.model);
                        line.usage = None;
                    } else {
                        let usd = self.count_via(&outcome.model, &usage, None, route);
                        self.totals.region_line(&outcome.region, &usage, usd);
                        line.usage = Some(usage);
                        line.cost_usd = Some(usd.map(round_usd));
                    }
                    if let Some(expected) = &meta.expected {
                        let scored = retrieval::rank(expected, &answer.source_uris());
                        self.totals.scored(scored);
                        line.scored = Some(scored);
                    }
                    match answer {
                        Answer::Text {
                            output,
                            data,
                            stop_reason,
                            ttft_ms,
                            ..
                        } => {
                            line.output = Some(output);
                            line.data = data.as_ref();
                            line.stop_reason = Some(stop_reason);
                            line.ttft_ms = *ttft_ms;
                            if let Some(ttft) = ttft_ms {
                                self.totals.ttft(*ttft);
                            }
                        }
                        Answer::Embedding { vector, .. } => line.embedding = Some(vector),
                        Answer::Invoke { response, .. } => line.response = Some(response),
                        Answer::Retrieved { passages } => line.retrieved = Some(passages),
                        Answer::Generated { output, citations } => {
                            line.output = Some(output);
                            line.citations = Some(citations);
                        }
                    }
                    self.writer.write(&line)?;
                    self.mark(meta.number, None);
                }
            }
            Err(err) => {
                let route = match batch_job {
                    Some(_) => Route::Batch,
                    None => Route::on_demand(outcome.service_tier),
                };
                for (index, meta) in outcome.records.iter().enumerate() {
                    // What the failed call was billed (an answer that broke --schema) goes
                    // on its first line, so the lines still sum to what was paid.
                    let billed = if index == 0 {
                        err.billed
                    } else {
                        Usage::default()
                    };
                    let usd = self.count_via(&outcome.model, &billed, Some(err.kind.name()), route);
                    let mut line = base_line(meta, &outcome.model, latency_ms, outcome.attempts);
                    self.totals.summary.warnings += meta.warnings.len() as u64;
                    if billed != Usage::default() {
                        self.totals.region_line(&outcome.region, &billed, usd);
                        line.usage = Some(billed);
                        line.cost_usd = Some(usd.map(round_usd));
                        line.service_tier = outcome.service_tier.map(ServiceTier::as_str);
                    }
                    line.region = region;
                    line.via = via;
                    line.batch_job = batch_job;
                    line.status = "error";
                    line.line = Some(meta.line);
                    line.error = Some(LineError {
                        kind: err.kind.name(),
                        message: &err.message,
                    });
                    self.writer.write(&line)?;
                    self.mark(meta.number, Some(err.kind));
                }
            }
        }
        Ok(())
    }

    /// The summary as of now.
    pub fn summary(&self, limiter: LimiterReport) -> Summary {
        let mut summary = self.totals.snapshot(self.started.elapsed());
        summary.limiter = limiter;
        apply_prices(&mut summary, &self.prices);
        summary
    }

    /// Records with a line.
    pub fn done(&self) -> u64 {
        self.done.len()
    }

    /// Syncs the lines written so far and records them in the checkpoint.
    pub fn checkpoint(&mut self, limiter: LimiterReport) -> Result<(), StoreError> {
        let results_len = self.writer.commit()?;
        let checkpoint = Checkpoint {
            version: 1,
            results_len,
            done: self.done.ranges(),
            failed_retryable: self.failed_retryable.ranges(),
            failed_other: self.failed_other.ranges(),
            summary: self.summary(limiter),
            runs: self.runs,
            updated_unix: crate::vocab::unix_now(),
        };
        state::write_checkpoint(&self.run_dir, &checkpoint)?;
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    /// Takes a checkpoint when `interval` has passed since the last one.
    pub fn checkpoint_every(
        &mut self,
        interval: Duration,
        limiter: impl FnOnce() -> LimiterReport,
    ) -> Result<(), StoreError> {
        if self.last_checkpoint.elapsed() >= interval {
            self.checkpoint(limiter())?;
        }
        Ok(())
    }
}
