//! `--dry-run`: every record read and prepared, nothing called. Reports the invalid
//! records and, per model, the estimated input tokens (four characters a token), the output
//! ceiling (`max_tokens`, or 1,024 where a record sets none) and what they would cost,
//! priced record by record as the run would (a long request is billed at its own tier).
//! Media named by URL are not fetched (fetching is calling): they are counted and left out
//! of the checks and the estimate, and the report says so.

use std::collections::BTreeMap;

use serde::Serialize;

use super::RunError;
use super::feed::{Fed, Feed};
use crate::config::RunConfig;
use crate::exit;
use crate::job::media::MediaLoader;
use crate::job::{self, JobError};
use crate::report::prices::{PriceTable, Route};
use crate::report::summary::thousands;
use crate::store::state::RecordSet;
use crate::vocab::Mode;
use crate::vocab::Task;
use crate::vocab::Usage;

/// Invalid records listed.
const LISTED: usize = 20;

#[derive(Debug, Serialize)]
struct ModelEstimate {
    records: u64,
    estimated_input_tokens: u64,
    max_output_tokens: u64,
    /// Cost of the estimated input, `null` without a price.
    input_cost_usd: Option<f64>,
    /// Cost if every record used its whole output ceiling.
    cost_ceiling_usd: Option<f64>,
}

impl Default for ModelEstimate {
    /// Nothing yet, which costs nothing.
    fn default() -> ModelEstimate {
        ModelEstimate {
            records: 0,
            estimated_input_tokens: 0,
            max_output_tokens: 0,
            input_cost_usd: Some(0.0),
            cost_ceiling_usd: Some(0.0),
        }
    }
}

#[derive(Debug, Default, Serialize)]
struct Estimate {
    records: u64,
    valid: u64,
    invalid: u64,
    estimated_input_tokens: u64,
    max_output_tokens: u64,
    records_without_max_tokens: u64,
    by_model: BTreeMap<String, ModelEstimate>,
    /// Totals over models; `null` when any model lacks a price.
    input_cost_usd: Option<f64>,
    cost_ceiling_usd: Option<f64>,
    errors: Vec<serde_json::Value>,
    /// Images and documents named by URL: not fetched, so neither checked nor estimated.
    #[serde(skip_serializing_if = "is_zero")]
    media_urls_not_fetched: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ModelEstimate {
    /// Counts one request whose worst case is `worst`, priced on its own.
    fn add(&mut self, model: &str, worst: &Usage, prices: &PriceTable, route: Route) {
        let input_only = Usage {
            input_tokens: worst.input_tokens,
            ..Usage::default()
        };
        let plus = |sum: Option<f64>, cost: Option<f64>| sum.zip(cost).map(|(a, b)| a + b);
        self.records += 1;
        self.estimated_input_tokens += worst.input_tokens;
        self.max_output_tokens += worst.output_tokens;
        let cost = |usage: &Usage| prices.charge(model, usage, route).usd;
        self.input_cost_usd = plus(self.input_cost_usd, cost(&input_only));
        self.cost_ceiling_usd = plus(self.cost_ceiling_usd, cost(worst));
    }
}

/// The totals over models; `null` when any model lacks a price.
fn total_estimates(estimate: &mut Estimate) {
    let models = estimate.by_model.values();
    estimate.input_cost_usd = models.clone().map(|m| m.input_cost_usd).sum();
    estimate.cost_ceiling_usd = models.map(|m| m.cost_ceiling_usd).sum();
}

pub async fn run(config: RunConfig, records: job::Records) -> Result<u8, RunError> {
    let settings = config.request.clone();
    let limit = config.limit;
    let shard = config.shard;
    let job_path = config.job_path.clone();
    let prices = config.prices.clone();
    // `--via batch` is priced at batch prices (`auto` may still call on demand: the higher).
    let route = if config.via == crate::cli::Via::Batch {
        Route::Batch
    } else {
        Route::OnDemand
    };
    let mut estimate = tokio::task::spawn_blocking(move || -> Result<Estimate, JobError> {
        let mut estimate = Estimate::default();
        let media = MediaLoader::new(&job_path).without_fetching();
        let mut feed = Feed::new(records, settings, limit, RecordSet::default(), media).in_shard(shard);
        for fed in feed.by_ref() {
            match fed? {
                Fed::Ready(prepared) => {
                    estimate.valid += 1;
                    if let crate::vocab::Payload::Converse(input) = &prepared.payload
                        && input.max_tokens.is_none()
                    {
                        estimate.records_without_max_tokens += 1;
                    }
                    let model = prepared.model.clone();
                    let worst = Task {
                        model: model.clone(),
                        records: vec![*prepared],
                    }
                    .worst_case();
                    estimate
                        .by_model
                        .entry(model.clone())
                        .or_default()
                        .add(&model, &worst, &prices, route);
                    estimate.estimated_input_tokens += worst.input_tokens;
                    estimate.max_output_tokens += worst.output_tokens;
                }
                Fed::Invalid(record) => {
                    estimate.invalid += 1;
                    if estimate.errors.len() < LISTED {
                        estimate.errors.push(serde_json::json!({"line": record.line, "id": record.id, "kind": record.kind, "message": record.message}));
                    }
                }
            }
        }
        estimate.records = estimate.valid + estimate.invalid;
        estimate.media_urls_not_fetched = feed.media.not_fetched();
        Ok(estimate)
    })
    .await
    .map_err(|err| RunError::Usage(format!("the dry run stopped: {err}")))??;
    total_estimates(&mut estimate);
    if config.knowledge_base.is_some() {
        // Knowledge-base calls report no token usage: no estimate is better than a guess.
        for model in estimate.by_model.values_mut() {
            (model.input_cost_usd, model.cost_ceiling_usd) = (None, None);
        }
        (estimate.input_cost_usd, estimate.cost_ceiling_usd) = (None, None);
    }

    if !config.quiet {
        eprintln!(
            "dry run of {}: {} records, {} valid, {} invalid",
            config.job_path.display(),
            thousands(estimate.records),
            thousands(estimate.valid),
            thousands(estimate.invalid),
        );
        eprintln!(
            "estimated input tokens: {} (about 4 characters a token)",
            thousands(estimate.estimated_input_tokens)
        );
        if !matches!(config.request.mode, Mode::Embed | Mode::Retrieve) {
            eprintln!(
                "output ceiling: {} tokens from max_tokens{}",
                thousands(estimate.max_output_tokens),
                match estimate.records_without_max_tokens {
                    0 => String::new(),
                    n => format!(
                        " ({} records set none: counted as 1,024 each)",
                        thousands(n)
                    ),
                }
            );
        }
        match (estimate.input_cost_usd, estimate.cost_ceiling_usd) {
            _ if config.knowledge_base.is_some() => eprintln!(
                "estimated cost: unknown (Knowledge Bases report no token usage to price)"
            ),
            (Some(input), Some(ceiling)) => eprintln!(
                "estimated cost{}: ${input:.4} of input, at most ${ceiling:.4} with every output ceiling reached",
                if route == Route::Batch {
                    " at batch prices"
                } else {
                    ""
                }
            ),
            _ => {
                let unpriced: Vec<&str> = estimate
                    .by_model
                    .iter()
                    .filter(|(_, m)| m.input_cost_usd.is_none())
                    .map(|(model, _)| model.as_str())
                    .collect();
                eprintln!(
                    "estimated cost: unknown, no price for {} (give one with --prices FILE)",
                    unpriced.join(", ")
                );
            }
        }
        if estimate.media_urls_not_fetched > 0 {
            eprintln!(
                "media by URL: {} not fetched (a dry run calls nothing): their bytes are not checked and not in the estimate",
                thousands(estimate.media_urls_not_fetched)
            );
        }
        for error in &estimate.errors {
            eprintln!("  {}", error["message"].as_str().unwrap_or_default());
        }
    }
    if config.json {
        let _ = crate::report::print_stdout(
            &(serde_json::to_string_pretty(&estimate).unwrap_or_default() + "\n"),
        );
    }
    Ok(if estimate.invalid == 0 {
        exit::OK
    } else {
        exit::SOME_FAILED
    })
}
