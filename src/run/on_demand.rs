//! Building the on-demand engine for a run: the service it calls (bedrock-runtime, or a
//! knowledge base through bedrock-agent-runtime for `--mode retrieve|rag`) against AWS, any
//! endpoint, or the built-in local server started here, and the pool's limiter, pacer,
//! retry policy and budget from the run's settings. Both services go through the same
//! pool.

use std::sync::Arc;

use crate::bedrock::{self, Bedrock, CallOptions, Connection, Endpoint};
use crate::config::{LOCAL_KNOWLEDGE_BASE, RunConfig};
use crate::engine::{Engine, Stops};
use crate::knowledge_base::{self, Generation, KnowledgeBase};
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
    pub engine: Box<dyn Engine>,
    pub region: String,
    pub server: Option<LocalServer>,
}

pub async fn build(config: &RunConfig, stops: &Stops) -> Result<Built, RunError> {
    let server = match config.endpoint {
        Endpoint::Local => {
            let knowledge_bases = config
                .knowledge_base
                .as_ref()
                .and_then(|kb| kb.local_dir.clone())
                .map(|dir| vec![(LOCAL_KNOWLEDGE_BASE.to_string(), dir)])
                .unwrap_or_default();
            Some(
                LocalServer::start(ServerConfig {
                    knowledge_bases,
                    ..ServerConfig::default()
                })
                .await
                .map_err(RunError::LocalServer)?,
            )
        }
        _ => None,
    };
    let local_url = server.as_ref().map(LocalServer::url);
    let connection = Connection {
        endpoint: &config.endpoint,
        local_url: local_url.as_deref(),
        region: config.region.as_deref(),
        profile: config.profile.as_deref(),
        connect_timeout: config.connect_timeout,
    };
    let controls = Arc::new(controls(config, stops));
    let alive = config.max_concurrency * 2;
    let request = &config.request;
    let (engine, region): (Box<dyn Engine>, String) = match &config.knowledge_base {
        Some(kb) => {
            let (sdk_config, region) = bedrock::shared_config(connection)
                .await
                .map_err(RunError::Usage)?;
            let service = KnowledgeBase::new(
                &sdk_config,
                knowledge_base::Settings {
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
            let engine = OnDemand {
                service,
                controls,
                alive,
            };
            (Box::new(engine), region)
        }
        None => {
            let (client, region) = bedrock::connect(connection)
                .await
                .map_err(RunError::Usage)?;
            let service = Bedrock::new(
                client,
                CallOptions {
                    dimensions: request.dimensions,
                    normalize: request.normalize,
                    input_type: request.input_type.clone(),
                    shared_documents: request.shared_documents.clone(),
                    cache_prompt: request.cache_prompt,
                    stream: request.stream,
                },
            );
            let engine = OnDemand {
                service,
                controls,
                alive,
            };
            (Box::new(engine), region)
        }
    };
    Ok(Built {
        engine,
        region,
        server,
    })
}

/// The pool's limiter, pacer, retry policy, budget and stop flags from the run's settings.
fn controls(config: &RunConfig, stops: &Stops) -> Controls {
    Controls {
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
    }
}
