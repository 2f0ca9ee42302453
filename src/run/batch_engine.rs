//! Building the Batch Inference engine for a run (`--via batch`, or `auto` when enough
//! records are left): the checks that must pass before anything is uploaded (a model with
//! batch support, a bucket we can use, the same S3 place and role as the run's earlier
//! jobs), the control-plane and S3 clients, and with `--local` the built-in server with its
//! S3. The run's batch state is read here, or started with a fresh run id.

use std::sync::Arc;

use crate::batch::job_state::{self, BatchState};
use crate::batch::{BatchInference, BatchSettings, Setup};
use crate::bedrock::Clients;
use crate::bedrock::{self, Endpoint};
use crate::config::RunConfig;
use crate::engine::Stops;
use crate::local_server::{LocalServer, ServerConfig};
use crate::rules::catalogue::{self, Offer};
use crate::store::state::RecordSet;
use crate::vocab::schema::SchemaRoute;

use super::on_demand_engine::connection;
use super::{Built, RunError};

/// Why the run's model cannot go through Batch Inference, when the catalogue says it
/// does not offer it (a batch price in `--prices` says it does). A model the catalogue
/// does not know is tried: the create call's answer is the verdict.
pub fn batch_refusal(config: &RunConfig) -> Option<String> {
    let model = &config.request.model;
    if let Some(schema) = &config.request.schema
        && config.request.schema_route == SchemaRoute::Tool
    {
        let why = match schema.native_obstacle() {
            _ if catalogue::structured_output(model) == Offer::No => {
                format!("{model} has no native structured output")
            }
            Some(obstacle) => {
                format!("native structured output refuses the schema ({obstacle})")
            }
            None => "--schema-mode tool asks for a forced tool".to_string(),
        };
        return Some(format!(
            "--schema through Batch Inference needs native structured output, and {why}: AWS fails every Converse batch record that carries a toolConfig (with a 400, hours later). Run it with --via on-demand (the forced tool works there), or use a model with native structured output"
        ));
    }
    let priced = config.prices.batch_price(model).is_some();
    (catalogue::batch(model) == Offer::No && !priced).then(|| {
        format!(
            "{model} does not offer Bedrock Batch Inference (AWS's list of batch models leaves it out): run it with --via on-demand, or --service-tier flex for a discount without a bucket; if AWS now offers batch for it, give batch_input and batch_output for it with --prices FILE"
        )
    })
}

/// A `--local` run's earlier state, without the jobs its built-in server took with it
/// when that run ended (they cannot be polled or collected: the server ran inside the run):
/// their records go again, and the user is told so. Saved at once, so `--retry-failed` and
/// a plain rerun see the same.
pub fn local_jobs_lost(config: &RunConfig, mut state: BatchState) -> Result<BatchState, RunError> {
    if !state.local {
        return Ok(state);
    }
    let (jobs, records) = state.forget_lost_jobs(&config.out_dir);
    if jobs > 0 {
        job_state::write(&config.out_dir, &state)?;
        if !config.quiet {
            eprintln!(
                "the built-in server's {jobs} Batch Inference job(s) ended with the run that created them (--local runs its server inside bedrock-batch): their {records} records are sent again"
            );
        }
    }
    Ok(state)
}

/// How many of the earlier parts still owe lines: not collected yet, or collected by a run
/// that died before all of their lines were committed. A part is marked collected when its
/// answers are handed to the writer, and the checkpoint (`done`) commits them a moment
/// later, so a kill in between leaves a collected part whose records are not done: their
/// answers are in its job's output, to be read again, not sent again. Records taken out by
/// `--retry-failed` are the rerun's to send, not a part's to give.
pub fn parts_owing(
    config: &RunConfig,
    state: &BatchState,
    done: &RecordSet,
    retried: &RecordSet,
) -> Result<usize, RunError> {
    let dir = job_state::parts_dir(&config.out_dir);
    let mut owing = 0;
    for part in &state.parts {
        if !part.collected {
            owing += usize::from(part.unfinished());
            continue;
        }
        let metas = crate::batch::parts::read_sidecar(&dir, part.index).map_err(|err| {
            RunError::Usage(format!(
                "cannot read {}, the records of {}: {err}; RUN_DIR/batch holds what each job was sent. Restore it, or start over with --fresh",
                crate::batch::parts::sidecar_path(&dir, part.index).display(),
                part.name()
            ))
        })?;
        owing += usize::from(
            metas
                .iter()
                .any(|meta| !done.contains(meta.number) && !retried.contains(meta.number)),
        );
    }
    Ok(owing)
}

pub async fn build(
    config: &RunConfig,
    settings: &BatchSettings,
    stops: &Stops,
    retried: RecordSet,
) -> Result<Built, RunError> {
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
    let state = match job_state::read(&config.out_dir)? {
        Some(earlier) => {
            if earlier.s3 != s3 || earlier.role_arn != settings.role_arn {
                return Err(RunError::Usage(format!(
                    "{} has Batch Inference jobs in {} with the role {}: rerun with that --s3 and --role-arn (or --fresh to start over)",
                    config.out_dir.display(),
                    earlier.s3,
                    earlier.role_arn
                )));
            }
            local_jobs_lost(config, earlier)?
        }
        None => BatchState {
            version: 1,
            run_id: job_state::new_run_id(),
            region: region.clone(),
            endpoint_url: match &spec.endpoint {
                Endpoint::Url(url) => Some(url.clone()),
                _ => None,
            },
            local: spec.endpoint == Endpoint::Local,
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
        options: Arc::new(config.request.clone()),
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
