//! `--dry-run`: every record read and prepared, nothing called. Reports the invalid
//! records and, per model, the estimated input tokens (four characters a token), the output
//! ceiling (`max_tokens`, or 1,024 where a record sets none) and what they would cost,
//! priced record by record as the run would (a long request is billed at its own tier).
//! Media named by URL are not fetched (fetching is calling): they are counted and left out
//! of the checks and the estimate, and the report says so.
//!
//! With `--count-tokens` each record's input tokens come from Bedrock's CountTokens API
//! instead (free, no model call; a few in flight at once), for models that offer it; the
//! others keep the estimate, and the report tells the two apart.

use std::collections::BTreeMap;

use serde::Serialize;

use super::RunError;
use super::feed::{Fed, Feed};
use crate::config::RunConfig;
use crate::exit;
use crate::job::media::MediaLoader;
use crate::job::{self, JobError};
use crate::prices::{PriceTable, Route};
use crate::store::state::RecordSet;
use crate::summary::thousands;
use std::time::Duration;

use futures::StreamExt;

use crate::bedrock::{Bedrock, Endpoint};
use crate::local_server::{LocalServer, ServerConfig};
use crate::rules::catalogue::{self, Offer};
use crate::vocab::Mode;
use crate::vocab::Payload;
use crate::vocab::Task;
use crate::vocab::Usage;

/// Invalid records listed.
const LISTED: usize = 20;

#[derive(Debug, Serialize)]
struct ModelEstimate {
    records: u64,
    /// Input tokens by the four-characters rule, of the records CountTokens did not count.
    estimated_input_tokens: u64,
    /// With `--count-tokens`: the records CountTokens counted, and their input tokens.
    #[serde(skip_serializing_if = "is_zero")]
    counted_records: u64,
    #[serde(skip_serializing_if = "is_zero")]
    counted_input_tokens: u64,
    /// Why CountTokens did not count this model's records, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    not_counted: Option<String>,
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
            counted_records: 0,
            counted_input_tokens: 0,
            not_counted: None,
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
    /// With `--count-tokens`: records counted by CountTokens, and their input tokens.
    #[serde(skip_serializing_if = "is_zero")]
    counted_records: u64,
    #[serde(skip_serializing_if = "is_zero")]
    counted_input_tokens: u64,
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
    /// Counts one request whose worst case is `worst` (its input counted by CountTokens when
    /// `counted`), priced on its own.
    fn add(
        &mut self,
        model: &str,
        (worst, counted): (&Usage, bool),
        prices: &PriceTable,
        route: Route,
    ) {
        let input_only = Usage {
            input_tokens: worst.input_tokens,
            ..Usage::default()
        };
        let plus = |sum: Option<f64>, cost: Option<f64>| sum.zip(cost).map(|(a, b)| a + b);
        self.records += 1;
        if counted {
            self.counted_records += 1;
            self.counted_input_tokens += worst.input_tokens;
        } else {
            self.estimated_input_tokens += worst.input_tokens;
        }
        self.max_output_tokens += worst.output_tokens;
        let cost = |usage: &Usage| prices.charge(model, usage, route).usd;
        self.input_cost_usd = plus(self.input_cost_usd, cost(&input_only));
        self.cost_ceiling_usd = plus(self.cost_ceiling_usd, cost(worst));
    }
}

/// A prepared record with its counted input tokens, or why they were not counted (`None`:
/// not asked to count).
enum Measured {
    Ready(Box<crate::vocab::Prepared>, Result<u64, Option<String>>),
    Invalid(crate::vocab::InvalidRecord),
}

/// The CountTokens client of a `--count-tokens` dry run (and the local server it talks to
/// with `--local`).
struct Counter {
    bedrock: Bedrock,
    server: Option<LocalServer>,
}

impl Counter {
    async fn connect(config: &RunConfig) -> Result<Counter, RunError> {
        let spec = &config.lanes[0];
        let server = match spec.endpoint {
            Endpoint::Local => Some(
                LocalServer::start(ServerConfig::default())
                    .await
                    .map_err(RunError::LocalServer)?,
            ),
            _ => None,
        };
        let local_url = server.as_ref().map(LocalServer::url);
        let connection = super::on_demand_engine::connection(config, spec, local_url.as_deref());
        let (client, _) = crate::bedrock::connect(connection)
            .await
            .map_err(RunError::Usage)?;
        let options = config.request.clone();
        Ok(Counter {
            bedrock: Bedrock::new(client, options),
            server,
        })
    }

    /// The input tokens of one record, or why they were not counted. Models the catalogue
    /// says cannot count are not asked; throttled counts are tried again a few times.
    async fn count(&self, model: &str, payload: &Payload) -> Result<u64, Option<String>> {
        if catalogue::count_tokens(model) == Offer::No {
            return Err(Some("the model does not offer CountTokens".to_string()));
        }
        let mut delay = Duration::from_millis(100);
        for _ in 0..5 {
            match self.bedrock.count_tokens(model, payload).await {
                Ok(tokens) => return Ok(tokens),
                Err(err) if err.kind.retryable() => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(err) => return Err(Some(format!("CountTokens: {}", err.message))),
            }
        }
        Err(Some("CountTokens kept throttling".to_string()))
    }
}

/// The totals over models; `null` when any model lacks a price.
fn total_estimates(estimate: &mut Estimate) {
    let models = estimate.by_model.values();
    estimate.input_cost_usd = models.clone().map(|m| m.input_cost_usd).sum();
    estimate.cost_ceiling_usd = models.map(|m| m.cost_ceiling_usd).sum();
}

/// Records on their way from the reading thread to the counting.
const IN_FLIGHT: usize = 16;

pub async fn check(config: RunConfig, records: job::Records) -> Result<u8, RunError> {
    let settings = config.request.clone();
    let limit = config.limit;
    let shard = config.shard;
    let job_path = config.job_path.clone();
    let prices = config.prices.clone();
    // `--via batch` is priced at batch prices (`auto` may still call on demand: the higher).
    let route = if config.via == crate::engine::Via::Batch {
        Route::Batch
    } else {
        Route::on_demand(config.request.service_tier)
    };
    let counter = match config.count_tokens {
        true => Some(Counter::connect(&config).await?),
        false => None,
    };
    // Reading and preparing stay on a blocking thread; what it prepares streams over a
    // bounded channel, so memory holds a few records whatever the job's size.
    let (sender, mut receiver) = tokio::sync::mpsc::channel(IN_FLIGHT * 4);
    let reader = tokio::task::spawn_blocking(move || -> Result<u64, JobError> {
        let media = MediaLoader::new(&job_path).without_fetching();
        let mut feed =
            Feed::new(records, settings, limit, RecordSet::default(), media).in_shard(shard);
        for fed in feed.by_ref() {
            if sender.blocking_send(fed?).is_err() {
                break;
            }
        }
        Ok(feed.media.not_fetched())
    });
    let incoming = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    let counting = counter.as_ref();
    let mut measured = incoming
        .map(|fed| async move {
            match fed {
                Fed::Ready(prepared) => {
                    let counted = match counting {
                        Some(counter) => counter.count(&prepared.model, &prepared.payload).await,
                        None => Err(None),
                    };
                    Measured::Ready(prepared, counted)
                }
                Fed::Invalid(record) => Measured::Invalid(record),
            }
        })
        .buffered(IN_FLIGHT);
    let mut estimate = Estimate::default();
    while let Some(measured) = measured.next().await {
        match measured {
            Measured::Ready(prepared, counted) => {
                estimate.valid += 1;
                if let crate::vocab::Payload::Converse(input) = &prepared.payload
                    && input.max_tokens.is_none()
                {
                    estimate.records_without_max_tokens += 1;
                }
                let model = prepared.model.clone();
                let mut worst = Task {
                    model: model.clone(),
                    service_tier: prepared.service_tier,
                    records: vec![*prepared],
                }
                .worst_case();
                let by_model = estimate.by_model.entry(model.clone()).or_default();
                let counted_ok = counted.is_ok();
                match counted {
                    Ok(tokens) => {
                        worst.input_tokens = tokens;
                        estimate.counted_records += 1;
                        estimate.counted_input_tokens += tokens;
                    }
                    Err(Some(why)) => {
                        by_model.not_counted.get_or_insert(why);
                        estimate.estimated_input_tokens += worst.input_tokens;
                    }
                    Err(None) => estimate.estimated_input_tokens += worst.input_tokens,
                }
                by_model.add(&model, (&worst, counted_ok), &prices, route);
                estimate.max_output_tokens += worst.output_tokens;
            }
            Measured::Invalid(record) => {
                estimate.invalid += 1;
                if estimate.errors.len() < LISTED {
                    estimate.errors.push(serde_json::json!({"line": record.line, "id": record.id, "kind": record.kind, "message": record.message}));
                }
            }
        }
    }
    drop(measured);
    estimate.media_urls_not_fetched = reader
        .await
        .map_err(|err| RunError::Usage(format!("the dry run stopped: {err}")))??;
    estimate.records = estimate.valid + estimate.invalid;
    if let Some(server) = counter.and_then(|counter| counter.server) {
        server.shutdown().await;
    }
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
        if estimate.counted_records > 0 || config.count_tokens {
            eprintln!(
                "input tokens: {} counted by CountTokens ({} records), {} estimated (about 4 characters a token; {} records)",
                thousands(estimate.counted_input_tokens),
                thousands(estimate.counted_records),
                thousands(estimate.estimated_input_tokens),
                thousands(estimate.valid - estimate.counted_records),
            );
            for (model, by_model) in &estimate.by_model {
                if let Some(why) = &by_model.not_counted {
                    eprintln!("  {model}: estimated, not counted: {why}");
                }
            }
        } else {
            eprintln!(
                "estimated input tokens: {} (about 4 characters a token)",
                thousands(estimate.estimated_input_tokens)
            );
        }
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
