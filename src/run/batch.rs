//! Building the Batch Inference engine for a run (`--via batch`, or `auto` when enough
//! records are left): the checks that must pass before anything is uploaded (a model with
//! batch support, a bucket we can use, the same S3 place and role as the run's earlier
//! jobs), the control-plane and S3 clients, and with `--local` the built-in server with its
//! S3. The run's batch state is read here, or started with a fresh run id.

use std::sync::Arc;

use crate::batch::aws::Clients;
use crate::batch::state::{self, BatchState};
use crate::batch::{BatchInference, BatchSettings, Setup};
use crate::bedrock::{self, Endpoint};
use crate::config::RunConfig;
use crate::engine::Stops;
use crate::local_server::{LocalServer, ServerConfig};
use crate::store::state::RecordSet;

use super::on_demand::{call_options, connection};
use super::{Built, RunError};

pub async fn build(
    config: &RunConfig,
    settings: &BatchSettings,
    stops: &Stops,
    retried: RecordSet,
) -> Result<Built, RunError> {
    config
        .prices
        .batch_price(&config.request.model)
        .map_err(|err| RunError::Usage(err.to_string()))?;
    let spec = &config.lanes[0];
    let mut servers = Vec::new();
    let (local_url, s3_endpoint) = match spec.endpoint {
        Endpoint::Local => {
            let server = LocalServer::start(ServerConfig {
                s3_buckets: vec![settings.location.bucket.clone()],
                ..ServerConfig::default()
            })
            .await
            .map_err(RunError::LocalServer)?;
            let urls = (Some(server.url()), Some(server.s3_url()));
            servers.push(server);
            urls
        }
        _ => (None, config.s3_endpoint_url.clone()),
    };
    let (sdk_config, region) =
        bedrock::shared_config(connection(config, spec, local_url.as_deref()))
            .await
            .map_err(RunError::Usage)?;
    let clients = Clients::new(&sdk_config, s3_endpoint.as_deref());
    let s3_client = clients.s3.clone();
    let s3 = settings.location.uri(&settings.location.prefix);
    let state = match state::read(&config.out_dir)? {
        Some(earlier) => {
            if earlier.s3 != s3 || earlier.role_arn != settings.role_arn {
                return Err(RunError::Usage(format!(
                    "{} has Batch Inference jobs in {} with the role {}: rerun with that --s3 and --role-arn (or --fresh to start over)",
                    config.out_dir.display(),
                    earlier.s3,
                    earlier.role_arn
                )));
            }
            earlier
        }
        None => BatchState {
            version: 1,
            run_id: state::new_run_id(),
            region: region.clone(),
            endpoint_url: match &spec.endpoint {
                Endpoint::Url(url) => Some(url.clone()),
                _ => None,
            },
            s3,
            role_arn: settings.role_arn.clone(),
            parts: Vec::new(),
        },
    };
    clients
        .check_bucket(&settings.location)
        .await
        .map_err(RunError::Usage)?;
    let engine = BatchInference::new(Setup {
        clients,
        settings: settings.clone(),
        options: Arc::new(call_options(&config.request)),
        run_dir: config.out_dir.clone(),
        region: region.clone(),
        stops: stops.clone(),
        state,
        retried,
    });
    Ok(Built {
        engine: Box::new(engine),
        regions: vec![region],
        servers,
        s3: Some(s3_client),
    })
}
