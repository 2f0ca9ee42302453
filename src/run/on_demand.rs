//! Building the on-demand engine for a run: the bedrock-runtime client (against AWS, any
//! endpoint, or the built-in local server started here), and the pool's limiter, pacer,
//! retry policy and budget from the run's settings.

use std::sync::Arc;

use crate::bedrock::{self, Bedrock, CallOptions, Connection, Endpoint};
use crate::config::RunConfig;
use crate::engine::Stops;
use crate::local_server::{LocalServer, ServerConfig};
use crate::pool::budget::Budget;
use crate::pool::limiter::Limiter;
use crate::pool::pacer::Pacer;
use crate::pool::retry::RetryPolicy;
use crate::pool::{Controls, OnDemand};

use super::RunError;

/// The engine, the region its client resolved, and the local server it talks to (when
/// `--local`), to shut down at the end.
pub struct Built {
    pub engine: OnDemand<Bedrock>,
    pub region: String,
    pub server: Option<LocalServer>,
}

pub async fn build(config: &RunConfig, stops: &Stops) -> Result<Built, RunError> {
    let server = match config.endpoint {
        Endpoint::Local => Some(
            LocalServer::start(ServerConfig::default())
                .await
                .map_err(RunError::LocalServer)?,
        ),
        _ => None,
    };
    let local_url = server.as_ref().map(LocalServer::url);
    let (client, region) = bedrock::connect(Connection {
        endpoint: &config.endpoint,
        local_url: local_url.as_deref(),
        region: config.region.as_deref(),
        profile: config.profile.as_deref(),
        connect_timeout: config.connect_timeout,
    })
    .await
    .map_err(RunError::Usage)?;
    let request = &config.request;
    let service = Bedrock::new(
        client,
        CallOptions {
            dimensions: request.dimensions,
            normalize: request.normalize,
            input_type: request.input_type.clone(),
            shared_documents: request.shared_documents.clone(),
            cache_prompt: request.cache_prompt,
            stream: request.stream,
            schema: request.schema.clone(),
        },
    );
    let controls = Controls {
        limiter: Limiter::new(
            config.concurrency,
            config.min_concurrency,
            config.max_concurrency,
        ),
        pacer: Pacer::new(config.tpm, config.rpm),
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
    Ok(Built {
        engine: OnDemand {
            service,
            controls: Arc::new(controls),
            alive: config.max_concurrency * 2,
        },
        region,
        server,
    })
}
