//! `bedrock-batch status RUN_DIR`: what a run directory holds, from its state files alone
//! (and a count of the job file's records when it is still there). Calls nothing.

use std::path::Path;

use serde::Serialize;

use crate::cli::StatusArgs;
use crate::commands::{Failure, emit};
use crate::job::{self, JobFormat};
use crate::report::render::usage_text;
use crate::store::state::{self, LockState, RecordSet, RunLock};
use crate::summary::thousands;
use crate::vocab::{BatchJobReport, Shard, Usage};

#[derive(Debug, Serialize)]
pub struct Status {
    pub run_dir: String,
    pub job_file: String,
    pub model: String,
    pub mode: String,
    /// The part of the job file this run directory holds, when sharded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// Records of the job file, when it can still be read.
    pub records: Option<u64>,
    pub done: u64,
    pub ok: u64,
    pub failed: u64,
    pub failed_retryable: u64,
    pub pending: Option<u64>,
    pub usage: Usage,
    pub cost_usd: Option<f64>,
    /// The models whose lines have no price, when `cost_usd` is unknown.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unpriced: Vec<String>,
    pub runs: u32,
    /// `pid N` of the run writing it now, if any.
    pub active: Option<String>,
    pub last_checkpoint_unix: Option<u64>,
    /// The last progress snapshot of the run's timeline, while a run is active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub now: Option<crate::watch::events::Event>,
    /// A `--via batch` run's jobs, as last polled.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub batch_jobs: Vec<BatchJobReport>,
}

/// Reads the status of `run_dir`.
pub fn read(run_dir: &Path) -> Result<Status, String> {
    let manifest = state::read_manifest(run_dir)
        .map_err(|err| err.to_string())?
        .ok_or_else(|| {
            format!(
                "{} is not a bedrock-batch run directory (no {}/{} in it)",
                run_dir.display(),
                state::STATE_DIR,
                state::MANIFEST_FILE
            )
        })?;
    let checkpoint = state::read_checkpoint(run_dir).map_err(|err| err.to_string())?;
    let summary = checkpoint
        .as_ref()
        .map(|c| c.summary.clone())
        .unwrap_or_default();
    let done = checkpoint
        .as_ref()
        .map_or(0, |c| RecordSet::from_ranges(&c.done).len());
    let failed_retryable = checkpoint
        .as_ref()
        .map_or(0, |c| RecordSet::from_ranges(&c.failed_retryable).len());
    let format = JobFormat::from_name(&manifest.params.format);
    let shard = manifest.params.shard;
    let records = [&manifest.job.absolute_path, &manifest.job.path]
        .iter()
        .filter(|p| !p.is_empty())
        .find_map(|p| job::count(Path::new(p.as_str()), format).ok())
        .map(|n| shard.map_or(n, |shard| shard.records_of(n)));
    let active = match RunLock::probe(run_dir) {
        LockState::Free => None,
        LockState::HeldBy(holder) => Some(holder),
    };
    let now = active.as_ref().and_then(|_| {
        crate::watch::events::last_progress(&run_dir.join(crate::vocab::EVENTS_FILE))
    });
    Ok(Status {
        run_dir: run_dir.display().to_string(),
        now,
        job_file: manifest.job.path.clone(),
        model: manifest.params.model.clone(),
        mode: manifest.params.mode.clone(),
        shard,
        records,
        done,
        ok: summary.records.ok,
        failed: summary.records.failed,
        failed_retryable,
        pending: records.map(|r| r.saturating_sub(done)),
        usage: summary.usage,
        // Nothing sent yet costs nothing; later, what the lines cost (`None`: some model
        // of theirs has no price, named in `unpriced`).
        cost_usd: if summary.records.total == 0 {
            Some(0.0)
        } else {
            summary.cost_usd
        },
        unpriced: summary.unpriced_models.clone(),
        runs: checkpoint.as_ref().map_or(0, |c| c.runs),
        active,
        last_checkpoint_unix: checkpoint.map(|c| c.updated_unix),
        batch_jobs: crate::batch::job_state::read(run_dir)
            .map_err(|err| err.to_string())?
            .map(|batch| batch.reports())
            .unwrap_or_default(),
    })
}

/// The human rendering.
pub fn render(status: &Status) -> String {
    let mut out = format!(
        "{}: {} with {} ({}){}\n",
        status.run_dir,
        status.job_file,
        status.model,
        status.mode,
        status
            .shard
            .map_or(String::new(), |shard| format!(", shard {shard}"))
    );
    out += &format!(
        "done {} of {}: {} ok, {} failed ({} retryable)\n",
        thousands(status.done),
        status
            .records
            .map_or("? (job file not found)".to_string(), thousands),
        thousands(status.ok),
        thousands(status.failed),
        thousands(status.failed_retryable),
    );
    if let Some(pending) = status.pending {
        out += &format!("pending {}\n", thousands(pending));
    }
    out += &format!("tokens: {}\n", usage_text(&status.usage));
    if !status.batch_jobs.is_empty() {
        out += "Batch Inference jobs (as last polled):\n";
        for job in &status.batch_jobs {
            let processed = job
                .processed
                .map_or(String::new(), |n| format!(", {} processed", thousands(n)));
            let id = job.job_arn.rsplit('/').next().unwrap_or("-");
            out += &format!(
                "  {} {:<18} {} records{processed}, {} ok, {} failed  job {}\n",
                job.part,
                job.status,
                thousands(job.records),
                thousands(job.ok),
                thousands(job.failed),
                if id.is_empty() { "-" } else { id }
            );
        }
    }
    out += &match status.cost_usd {
        Some(cost) => format!("cost so far: ${cost:.4}\n"),
        None => format!(
            "cost so far: unknown (no price for {}: give one with --prices FILE)\n",
            if status.unpriced.is_empty() {
                status.model.clone()
            } else {
                status.unpriced.join(", ")
            }
        ),
    };
    if let Some(now) = &status.now {
        out += &now_line(now);
    }
    out += &match &status.active {
        Some(holder) => format!("a run is active ({holder})\n"),
        None => format!(
            "no run is active ({} run{} so far){}\n",
            status.runs,
            if status.runs == 1 { "" } else { "s" },
            match status.pending {
                Some(0) => "; complete",
                Some(_) => "; rerun the same command to resume",
                None => "",
            }
        ),
    };
    out
}

/// An active run's last snapshot: pace, calls in flight, throttles, the learned quota.
fn now_line(event: &crate::watch::events::Event) -> String {
    use crate::watch::events::Body;
    let Body::Progress(progress) = &event.body else {
        return String::new();
    };
    let mut parts = vec![format!("{:.1} records/s", progress.records_per_s)];
    if let (Some(in_flight), Some(limit)) = (progress.in_flight, progress.concurrency_limit) {
        parts.push(format!("{in_flight} in flight (limit {limit})"));
    }
    parts.push(format!("{} throttled", thousands(progress.throttles)));
    for lane in &progress.lanes {
        for (model, quota) in &lane.learned {
            if let Some(tpm) = quota.tokens_per_minute {
                parts.push(format!(
                    "{model} in {}: {} tokens/min",
                    lane.lane,
                    thousands(tpm.round() as u64)
                ));
            }
        }
    }
    format!("now ({}): {}\n", event.ts, parts.join(", "))
}

/// The `status` command, from its flags to an exit code.
pub fn execute(args: StatusArgs) -> Result<u8, Failure> {
    let status = read(&args.run_dir).map_err(Failure::usage)?;
    let text = if args.json {
        serde_json::to_string_pretty(&status).unwrap_or_default() + "\n"
    } else {
        render(&status)
    };
    emit(&text)
}
