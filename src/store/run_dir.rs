//! Opening a RUN_DIR for a run: take its lock, move an earlier run aside (`--fresh`), check
//! that the job file and the parameters are the ones it was started with, cut results.jsonl
//! back to its last checkpoint (lines after it belong to records that will be sent again),
//! and for `--retry-failed` take the chosen records' lines out so their new outcome
//! replaces them.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::StoreError;
use super::state::{
    self, Checkpoint, JobFingerprint, Manifest, RecordSet, RunLock, RunParams, state_dir,
};
use crate::prices::{PriceTable, Route};
use crate::summary::{Summary, Totals};
use crate::vocab::Usage;
use crate::vocab::{BATCH_DIR, RESULTS_FILE, SCHEMA_FILE, SUMMARY_FILE};

/// A RUN_DIR ready to be written.
pub struct OpenRunDir {
    pub lock: RunLock,
    pub done: RecordSet,
    pub failed_retryable: RecordSet,
    pub failed_other: RecordSet,
    /// The earlier runs' totals, when resuming.
    pub earlier: Option<Summary>,
    pub runs: u32,
    /// Where `--fresh` moved the earlier run.
    pub moved_aside: Option<PathBuf>,
    /// Bytes of results.jsonl written after the last checkpoint and discarded.
    pub discarded_bytes: u64,
    /// Records taken out by `--retry-failed`.
    pub retried: u64,
    /// Which records those are.
    pub retried_records: RecordSet,
}

/// Why a RUN_DIR cannot be used as asked: a usage error (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError {
        path: path.to_path_buf(),
        source,
    }
}

/// What an earlier run leaves in RUN_DIR besides `state/`: its results, summary and schema,
/// and the Batch Inference parts and sidecars (`batch/`).
const RUN_FILES: [&str; 5] = [
    RESULTS_FILE,
    SUMMARY_FILE,
    SCHEMA_FILE,
    BATCH_DIR,
    crate::vocab::EVENTS_FILE,
];

/// Moves every piece of an earlier run into RUN_DIR/previous-<unix time>/: the files of
/// [`RUN_FILES`] and everything in `state/` but the lock this run holds (the checkpoint,
/// the manifest, a Batch Inference run's jobs...), so nothing of it is resumed, polled or
/// collected by the new run.
fn move_aside(run_dir: &Path) -> Result<Option<PathBuf>, StoreError> {
    let state = state_dir(run_dir);
    let mut candidates: Vec<(PathBuf, PathBuf)> = RUN_FILES
        .iter()
        .map(|name| (run_dir.join(name), PathBuf::from(name)))
        .collect();
    if let Ok(entries) = std::fs::read_dir(&state) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name != state::LOCK_FILE {
                candidates.push((entry.path(), Path::new(state::STATE_DIR).join(name)));
            }
        }
    }
    candidates.retain(|(path, _)| path.exists());
    if candidates.is_empty() {
        return Ok(None);
    }
    let mut aside = run_dir.join(format!("previous-{}", crate::vocab::unix_now()));
    let mut n = 1;
    while aside.exists() {
        aside = run_dir.join(format!("previous-{}-{n}", crate::vocab::unix_now()));
        n += 1;
    }
    std::fs::create_dir_all(aside.join(state::STATE_DIR)).map_err(io_error(&aside))?;
    for (path, relative) in &candidates {
        let target = aside.join(relative);
        std::fs::rename(path, &target).map_err(io_error(path))?;
    }
    Ok(Some(aside))
}

/// The head of a result line: enough to know whose it is and what it counted.
#[derive(Deserialize)]
struct LineHead {
    record: u64,
    model: String,
    /// Absent from lines whose usage the service did not report.
    #[serde(default)]
    usage: Usage,
    #[serde(default)]
    error: Option<LineErrorHead>,
    /// `batch` for lines of Bedrock Batch Inference jobs, which cost batch prices.
    #[serde(default)]
    via: Option<String>,
    /// The service tier that answered, which decides an on-demand line's price.
    #[serde(default)]
    service_tier: Option<String>,
    #[serde(default)]
    warnings: Vec<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct LineErrorHead {
    kind: String,
}

/// Writes a copy of results.jsonl without the lines of `dropped_records` (synced, not yet in
/// place), taking them and what they cost at `prices` out of `totals`; returns it with how
/// many lines were dropped.
fn without_lines(
    results: &Path,
    dropped_records: &RecordSet,
    totals: &mut Totals,
    prices: &PriceTable,
) -> Result<(tempfile::NamedTempFile, u64), StoreError> {
    let dir = results.parent().unwrap_or(Path::new("."));
    let input = std::fs::File::open(results).map_err(io_error(results))?;
    let output = tempfile::NamedTempFile::new_in(dir).map_err(io_error(dir))?;
    let mut writer = BufWriter::new(output.as_file());
    let mut dropped = 0;
    for line in BufReader::new(input).split(b'\n') {
        let line = line.map_err(io_error(results))?;
        if line.is_empty() {
            continue;
        }
        let head: LineHead = serde_json::from_slice(&line).map_err(|err| StoreError {
            path: results.to_path_buf(),
            source: std::io::Error::other(format!("a line is not a bedrock-batch result: {err}")),
        })?;
        if dropped_records.contains(head.record) {
            totals.forget(
                &head.model,
                &head.usage,
                head.error.as_ref().map(|e| e.kind.as_str()),
            );
            let route = Route::of_line(head.via.as_deref(), head.service_tier.as_deref());
            totals.summary.warnings = totals
                .summary
                .warnings
                .saturating_sub(head.warnings.len() as u64);
            let charge = prices.charge(&head.model, &head.usage, route);
            totals.refund(&head.model, &head.usage, &charge);
            dropped += 1;
            continue;
        }
        writer.write_all(&line).map_err(io_error(results))?;
        writer.write_all(b"\n").map_err(io_error(results))?;
    }
    writer.flush().map_err(io_error(results))?;
    drop(writer);
    output.as_file().sync_all().map_err(io_error(results))?;
    Ok((output, dropped))
}

/// Finishes a `--retry-failed` rewrite that a crash interrupted: if the new results.jsonl
/// is in place, its checkpoint is too; otherwise the rewrite never happened.
fn recover_rewrite(run_dir: &Path) -> Result<(), StoreError> {
    let pending = state::state_dir(run_dir).join(state::REWRITE_FILE);
    let Some(rewrite) = state::read_rewrite(run_dir)? else {
        return Ok(());
    };
    let results_len = std::fs::metadata(run_dir.join(RESULTS_FILE)).map_or(0, |m| m.len());
    if results_len == rewrite.results_len {
        state::write_checkpoint(run_dir, &rewrite)?;
    }
    std::fs::remove_file(&pending).map_err(io_error(&pending))
}

/// What opening a run directory needs to know of the run.
#[derive(Debug, Clone, Copy)]
pub struct Opening<'a> {
    pub out_dir: &'a Path,
    pub job_path: &'a Path,
    pub params: &'a RunParams,
    pub fresh: bool,
    pub retry_failed: Option<RetryFailed>,
    pub prices: &'a PriceTable,
}

/// Opens `config.out_dir` for this run.
pub fn open(config: Opening<'_>) -> Result<OpenRunDir, RunDirError> {
    let run_dir = config.out_dir;
    std::fs::create_dir_all(run_dir).map_err(io_error(run_dir))?;
    let lock = RunLock::acquire(run_dir).map_err(RunDirError::Refused)?;
    for dir in [run_dir.to_path_buf(), state::state_dir(run_dir)] {
        super::remove_unfinished_writes(&dir);
    }
    let moved_aside = if config.fresh {
        move_aside(run_dir)?
    } else {
        None
    };
    let job = JobFingerprint::of(config.job_path)?;
    let params = config.params.clone();
    let results = run_dir.join(RESULTS_FILE);
    let results_len = std::fs::metadata(&results).map_or(0, |m| m.len());
    let restart_hint = "rerun with --fresh to start over (the earlier results are moved aside, not deleted), or choose a new --out directory";
    match state::read_manifest(run_dir)? {
        Some(manifest) => {
            if !manifest.job.same_content(&job) {
                return Err(RunDirError::Refused(format!(
                    "{} was started with a different job file: {} ({} bytes) then, {} ({} bytes, other content) now. Resuming would mix results of two jobs: {restart_hint}",
                    run_dir.display(),
                    manifest.job.path,
                    manifest.job.bytes,
                    job.path,
                    job.bytes
                )));
            }
            let differences = params.differences(&manifest.params);
            if !differences.is_empty() {
                return Err(RunDirError::Refused(format!(
                    "{} was started with other parameters, which would change the results:\n  {}\nRerun with the earlier parameters to resume, or {restart_hint}",
                    run_dir.display(),
                    differences.join("\n  ")
                )));
            }
        }
        None => {
            if results_len > 0 {
                return Err(RunDirError::Refused(format!(
                    "{} holds results.jsonl but no run state: it was not written by this version of bedrock-batch. {restart_hint}",
                    run_dir.display()
                )));
            }
            state::write_manifest(
                run_dir,
                &Manifest {
                    version: 1,
                    job,
                    params,
                    created_unix: crate::vocab::unix_now(),
                },
            )?;
        }
    }

    recover_rewrite(run_dir)?;
    let checkpoint = state::read_checkpoint(run_dir)?.unwrap_or_default();
    if results_len < checkpoint.results_len {
        return Err(RunDirError::Refused(format!(
            "{} is shorter ({results_len} bytes) than its last checkpoint says ({} bytes): it was changed outside bedrock-batch. {restart_hint}",
            results.display(),
            checkpoint.results_len
        )));
    }
    let discarded_bytes = results_len - checkpoint.results_len;
    if discarded_bytes > 0 {
        let file = OpenOptions::new()
            .write(true)
            .open(&results)
            .map_err(io_error(&results))?;
        file.set_len(checkpoint.results_len)
            .map_err(io_error(&results))?;
        file.sync_all().map_err(io_error(&results))?;
    }
    let mut done = RecordSet::from_ranges(&checkpoint.done);
    let mut failed_retryable = RecordSet::from_ranges(&checkpoint.failed_retryable);
    let mut failed_other = RecordSet::from_ranges(&checkpoint.failed_other);
    let resumed = checkpoint.runs > 0;
    let mut earlier = resumed.then(|| checkpoint.summary.clone());

    let mut retried = 0;
    let mut retried_records = RecordSet::default();
    if let Some(which) = config.retry_failed {
        let mut retry = failed_retryable.clone();
        if which == RetryFailed::All {
            for n in failed_other.iter() {
                retry.insert(n);
            }
        }
        if !retry.is_empty() {
            let mut totals = Totals::resume(checkpoint.summary.clone());
            let (rewritten, dropped) = without_lines(&results, &retry, &mut totals, config.prices)?;
            retried = dropped;
            retried_records = retry.clone();
            for n in retry.iter() {
                done.remove(n);
                failed_retryable.remove(n);
                failed_other.remove(n);
            }
            let summary = totals.summary;
            let results_len = rewritten.as_file().metadata().map_or(0, |m| m.len());
            let next = Checkpoint {
                version: 1,
                results_len,
                done: done.ranges(),
                failed_retryable: failed_retryable.ranges(),
                failed_other: failed_other.ranges(),
                summary: summary.clone(),
                runs: checkpoint.runs,
                updated_unix: crate::vocab::unix_now(),
            };
            // Crash-safe order: the new checkpoint waits beside the old one, the new results
            // replace the old, then the checkpoint follows. `recover_rewrite` finishes the
            // job if a crash comes in between.
            state::write_rewrite(run_dir, &next)?;
            rewritten
                .persist(&results)
                .map_err(|e| io_error(&results)(e.error))?;
            recover_rewrite(run_dir)?;
            earlier = Some(summary);
        }
    }
    Ok(OpenRunDir {
        lock,
        done,
        failed_retryable,
        failed_other,
        earlier,
        runs: checkpoint.runs,
        moved_aside,
        discarded_bytes,
        retried,
        retried_records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(results_len: u64, done: u64) -> Checkpoint {
        Checkpoint {
            version: 1,
            results_len,
            done: vec![[1, done]],
            runs: 1,
            ..Checkpoint::default()
        }
    }

    #[test]
    fn an_interrupted_rewrite_is_finished_or_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = dir.path();
        std::fs::create_dir_all(state_dir(run_dir)).unwrap();
        let results = run_dir.join(RESULTS_FILE);

        // Crash before the new results were in place: the old checkpoint stays.
        std::fs::write(&results, "0123456789").unwrap();
        state::write_checkpoint(run_dir, &checkpoint(10, 3)).unwrap();
        state::write_rewrite(run_dir, &checkpoint(4, 1)).unwrap();
        recover_rewrite(run_dir).unwrap();
        assert_eq!(
            state::read_checkpoint(run_dir)
                .unwrap()
                .unwrap()
                .results_len,
            10
        );
        assert!(state::read_rewrite(run_dir).unwrap().is_none());

        // Crash after: the new checkpoint follows the new results.
        std::fs::write(&results, "0123").unwrap();
        state::write_rewrite(run_dir, &checkpoint(4, 1)).unwrap();
        recover_rewrite(run_dir).unwrap();
        let now = state::read_checkpoint(run_dir).unwrap().unwrap();
        assert_eq!((now.results_len, now.done.clone()), (4, vec![[1, 1]]));
        assert!(state::read_rewrite(run_dir).unwrap().is_none());
    }
}

/// Which failed records `--retry-failed` runs again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RetryFailed {
    /// Records whose last outcome was a retryable error (throttled, timed out, 5xx...).
    Retryable,
    /// Every failed record, validation errors and bad input too.
    All,
}
