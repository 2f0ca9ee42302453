//! Building the on-demand engine for a run: one lane per region or endpoint, each with its
//! own client, limiter and pacer, all in one pool; the retry policy and the budget are
//! shared. The service a lane calls is bedrock-runtime, or a knowledge base through
//! bedrock-agent-runtime for `--mode retrieve|rag`, against AWS, any endpoint, or a built-in
//! local server started here (one per region with `--local`).

use std::sync::Arc;

use crate::bedrock::agent_runtime::{self, Generation, KnowledgeBase};
use crate::bedrock::{self, Bedrock, Connection, Endpoint};
use crate::config::{LOCAL_KNOWLEDGE_BASE, LaneSpec, RunConfig};
use crate::engine::{Engine, Service, Stops};
use crate::local_server::{LocalServer, ServerConfig};
use crate::pool::budget::Budget;
use crate::pool::limiter::Limiter;
use crate::pool::pacer::Pacer;
use crate::pool::retry::RetryPolicy;
use crate::pool::{Controls, Lane, OnDemand};
use crate::vocab::Mode;

use super::{Built, RunError};

/// `recently_used`: an earlier invocation used the quota moments ago (see
/// `Pacer::after_recent_use`).
pub async fn build(
    config: &RunConfig,
    stops: &Stops,
    recently_used: bool,
) -> Result<Built, RunError> {
    let mut servers = Vec::new();
    let mut local_urls = Vec::new();
    for spec in &config.lanes {
        local_urls.push(match spec.endpoint {
            Endpoint::Local => {
                let knowledge_bases = config
                    .knowledge_base
                    .as_ref()
                    .and_then(|kb| kb.local_dir.clone())
                    .map(|dir| vec![(LOCAL_KNOWLEDGE_BASE.to_string(), dir)])
                    .unwrap_or_default();
                let server = LocalServer::start(ServerConfig {
                    knowledge_bases,
                    ..ServerConfig::default()
                })
                .await
                .map_err(RunError::LocalServer)?;
                let url = server.url();
                servers.push(server);
                Some(url)
            }
            _ => None,
        });
    }
    let request = &config.request;
    let mut regions = Vec::new();
    let engine: Box<dyn Engine> = match &config.knowledge_base {
        Some(kb) => {
            let mut lanes = Vec::new();
            for (spec, local_url) in config.lanes.iter().zip(&local_urls) {
                let connection = connection(config, spec, local_url.as_deref());
                let (sdk_config, region) = bedrock::shared_config(connection)
                    .await
                    .map_err(RunError::Usage)?;
                let service = KnowledgeBase::new(
                    &sdk_config,
                    agent_runtime::Settings {
                        id: kb.id.clone(),
                        region: region.clone(),
                        top_k: kb.top_k,
                        generation: Generation {
                            template: kb.generation_template.clone(),
                            max_tokens: request.max_tokens,
                            temperature: request.temperature,
                            top_p: request.top_p,
                            stop: request.stop.clone(),
                        },
                    },
                );
                lanes.push(lane(config, spec, region, service, recently_used));
            }
            regions.extend(lanes.iter().map(|l| l.name.to_string()));
            Box::new(engine(config, stops, lanes))
        }
        None => {
            let options = request.clone();
            let mut lanes = Vec::new();
            for (spec, local_url) in config.lanes.iter().zip(&local_urls) {
                let connection = connection(config, spec, local_url.as_deref());
                let (client, region) = bedrock::connect(connection)
                    .await
                    .map_err(RunError::Usage)?;
                let service = Bedrock::new(client, options.clone());
                lanes.push(lane(config, spec, region, service, recently_used));
            }
            regions.extend(lanes.iter().map(|l| l.name.to_string()));
            Box::new(engine(config, stops, lanes))
        }
    };
    Ok(Built {
        engine,
        regions,
        servers,
        s3: None,
    })
}

pub(super) fn connection<'a>(
    config: &'a RunConfig,
    spec: &'a LaneSpec,
    local_url: Option<&'a str>,
) -> Connection<'a> {
    Connection {
        endpoint: &spec.endpoint,
        local_url,
        region: spec.region.as_deref(),
        profile: config.profile.as_deref(),
        connect_timeout: config.connect_timeout,
    }
}

/// A lane for `service` in `region`, with the run's limits and quota knowledge. Several
/// endpoints in one region are told apart by their URL.
fn lane<S>(
    config: &RunConfig,
    spec: &LaneSpec,
    region: String,
    service: S,
    recently_used: bool,
) -> Lane<S> {
    let name = match &spec.endpoint {
        Endpoint::Url(url) if config.lanes.len() > 1 && spec.region.is_none() => url.clone(),
        _ => region,
    };
    Lane::new(
        &name,
        service,
        Limiter::new(
            config.concurrency,
            config.min_concurrency,
            config.max_concurrency,
        ),
        // Shards of one job are started together on one account: they share its quota.
        Pacer::new(config.tpm, config.rpm)
            .shared_by(
                config
                    .shard
                    .map_or(1, |s| s.count.min(u32::MAX as u64) as u32),
            )
            .after_recent_use(recently_used),
    )
}

/// The pool over `lanes`, with the retry policy, budget and stop flags of the run.
fn engine<S: Service>(config: &RunConfig, stops: &Stops, lanes: Vec<Lane<S>>) -> OnDemand<S> {
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
        throttled: Arc::default(),
        // `--max-tokens` sets what a Converse call reserves; a native body or a knowledge
        // base reserves what it reserves.
        max_tokens_advice: config.knowledge_base.is_none() && config.request.mode == Mode::Converse,
    };
    OnDemand {
        alive: config.max_concurrency * 2 * lanes.len(),
        lanes: Arc::new(lanes),
        controls: Arc::new(controls),
    }
}
