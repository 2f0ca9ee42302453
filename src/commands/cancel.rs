//! `bedrock-batch cancel RUN_DIR`: StopModelInvocationJob for each of a run's jobs that has
//! not ended, in the region (and at the endpoint) the run used. It only asks Bedrock: the
//! run's own state is left to the run, which sees the jobs stop at its next poll (or on the
//! next rerun) and collects what they answered.

use std::path::Path;
use std::time::Duration;

use crate::batch::job_state;
use crate::bedrock::Clients;
use crate::bedrock::{self, Connection, Endpoint};
use crate::cli::CancelArgs;
use crate::commands::Failure;
use crate::exit;

/// What `cancel` did, for the exit code and the lines it printed.
#[derive(Debug, Default, PartialEq)]
pub struct Cancelled {
    pub stopped: usize,
    pub already_ended: usize,
    pub failed: usize,
}

pub async fn cancel(
    run_dir: &Path,
    endpoint_url: Option<&str>,
    profile: Option<&str>,
) -> Result<Cancelled, String> {
    let state = job_state::read(run_dir)
        .map_err(|err| err.to_string())?
        .ok_or_else(|| {
            format!(
                "{} has no Batch Inference jobs (it was not run with --via batch)",
                run_dir.display()
            )
        })?;
    let running: Vec<&job_state::PartState> = state
        .parts
        .iter()
        .filter(|p| p.job_arn.is_some() && !p.ended())
        .collect();
    let created = state.parts.iter().filter(|p| p.job_arn.is_some()).count();
    if running.is_empty() {
        eprintln!(
            "nothing to cancel: {} has no Batch Inference job that has not ended ({created} job(s) in all)",
            run_dir.display(),
        );
        say_never_submitted(&state);
        return Ok(Cancelled {
            already_ended: created,
            ..Cancelled::default()
        });
    }
    if state.local && endpoint_url.is_none() {
        eprintln!(
            "nothing to cancel: {} ran its jobs on the built-in server of --local, which ends with the run that started it; rerun the run's command to send their records again",
            run_dir.display()
        );
        return Ok(Cancelled {
            already_ended: running.len(),
            ..Cancelled::default()
        });
    }
    let endpoint = match endpoint_url
        .map(str::to_string)
        .or(state.endpoint_url.clone())
    {
        Some(url) => Endpoint::Url(url),
        None => Endpoint::Aws,
    };
    let (sdk, _) = bedrock::shared_config(Connection {
        endpoint: &endpoint,
        local_url: None,
        region: Some(&state.region),
        profile,
        connect_timeout: Duration::from_secs(10),
    })
    .await?;
    let clients = Clients::new(&sdk, None);
    let mut done = Cancelled::default();
    for part in &state.parts {
        let Some(arn) = part.job_arn.as_deref() else {
            continue;
        };
        let status = match clients.job_status(arn).await {
            Ok(status) => status.status,
            Err(err) => {
                eprintln!("{}: cannot read job {arn}: {err}", part.name());
                done.failed += 1;
                continue;
            }
        };
        if job_state::ENDED.contains(&status.as_str()) || status == "Stopping" {
            eprintln!("{}: job {arn} already {status}", part.name());
            done.already_ended += 1;
            continue;
        }
        match clients.stop_job(arn).await {
            Ok(()) => {
                eprintln!("{}: stopping job {arn} (was {status})", part.name());
                done.stopped += 1;
            }
            Err(err) => {
                eprintln!("{}: cannot stop job {arn}: {err}", part.name());
                done.failed += 1;
            }
        }
    }
    say_never_submitted(&state);
    eprintln!(
        "{} stopped, {} already ended{}. What the jobs answered is kept: rerun the run's command (--via batch) to collect it, then --retry-failed --via on-demand for the rest.",
        done.stopped,
        done.already_ended,
        match done.failed {
            0 => String::new(),
            n => format!(", {n} could not be stopped"),
        }
    );
    Ok(done)
}

/// Names the parts that have no job: cancel leaves them alone, and a rerun would submit them.
fn say_never_submitted(state: &job_state::BatchState) {
    let prepared = state.parts.iter().filter(|p| p.job_arn.is_none()).count();
    if prepared > 0 {
        eprintln!(
            "{prepared} parts were prepared but never submitted: a rerun with --via batch would submit them"
        );
    }
}

/// The `cancel` command, from its flags to an exit code.
pub async fn execute(args: CancelArgs) -> Result<u8, Failure> {
    let done = cancel(
        &args.run_dir,
        args.endpoint_url.as_deref(),
        args.profile.as_deref(),
    )
    .await
    .map_err(Failure::usage)?;
    Ok(if done.failed == 0 {
        exit::OK
    } else {
        exit::FATAL
    })
}
