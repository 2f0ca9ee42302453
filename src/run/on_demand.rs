//! Building the on-demand engine for a run: one lane per region or endpoint, each with its
//! bedrock-runtime client (against AWS, any endpoint, or a built-in local server started
//! here), its own limiter and its own pacer; the retry policy and the budget are shared.

use std::sync::Arc;

use crate::bedrock::{self, Bedrock, CallOptions, Connection, Endpoint};
use crate::config::RunConfig;
use crate::engine::Stops;
use crate::local_server::{LocalServer, ServerConfig};
use crate::pool::budget::Budget;
use crate::pool::limiter::Limiter;
use crate::pool::pacer::Pacer;
use crate::pool::retry::RetryPolicy;
use crate::pool::{Controls, Lane, OnDemand};

use super::RunError;

/// The engine, the names of its regions (or endpoints), and the local servers it talks to
/// (with `--local`), to shut down at the end.
pub struct Built {
    pub engine: OnDemand<Bedrock>,
    pub regions: Vec<String>,
    pub servers: Vec<LocalServer>,
}

pub async fn build(config: &RunConfig, stops: &Stops) -> Result<Built, RunError> {
    let request = &config.request;
    let options = CallOptions {
        dimensions: request.dimensions,
        normalize: request.normalize,
        input_type: request.input_type.clone(),
        shared_documents: request.shared_documents.clone(),
        cache_prompt: request.cache_prompt,
        stream: request.stream,
        schema: request.schema.clone(),
    };
    let several = config.lanes.len() > 1;
    let mut lanes = Vec::new();
    let mut servers = Vec::new();
    for spec in &config.lanes {
        let local_url = match spec.endpoint {
            Endpoint::Local => {
                let server = LocalServer::start(ServerConfig::default())
                    .await
                    .map_err(RunError::LocalServer)?;
                let url = server.url();
                servers.push(server);
                Some(url)
            }
            _ => None,
        };
        let (client, region) = bedrock::connect(Connection {
            endpoint: &spec.endpoint,
            local_url: local_url.as_deref(),
            region: spec.region.as_deref(),
            profile: config.profile.as_deref(),
            connect_timeout: config.connect_timeout,
        })
        .await
        .map_err(RunError::Usage)?;
        // Several endpoints in one region are told apart by their URL.
        let name = match &spec.endpoint {
            Endpoint::Url(url) if several && spec.region.is_none() => url.clone(),
            _ => region,
        };
        lanes.push(Lane::new(
            &name,
            Bedrock::new(client, options.clone()),
            Limiter::new(
                config.concurrency,
                config.min_concurrency,
                config.max_concurrency,
            ),
            Pacer::new(config.tpm, config.rpm),
        ));
    }
    let controls = Controls {
        policy: RetryPolicy::new(config.max_attempts),
        timeout: config.timeout,
        stall_timeout: config.stall_timeout,
        stops: stops.clone(),
        budget: config
            .budget_usd
            .map(|limit| Budget::new(limit, config.prices.clone())),
        over_budget: Arc::default(),
        stalled: Arc::default(),
    };
    let regions = lanes.iter().map(|l| l.name.to_string()).collect();
    Ok(Built {
        engine: OnDemand {
            lanes: Arc::new(lanes),
            controls: Arc::new(controls),
            alive: config.max_concurrency * 2 * config.lanes.len(),
        },
        regions,
        servers,
    })
}
