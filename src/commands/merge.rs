//! `bedrock-batch merge SHARD_DIR... --out RUN_DIR`: the run directories of the N shards
//! of one job (`run --shard I/N` on N machines) become one run directory, as if one machine
//! had run the whole job: results.jsonl holds every shard's committed lines, summary.json
//! their totals (latency percentiles recomputed from the lines), and the state says every
//! record is done, so `status` reads it and `run --retry-failed` on it goes on from there.
//!
//! Shards are checked before anything is written: each must be a finished shard of the same
//! job file with the same parameters, every index from 0 to N-1 exactly once.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::MergeArgs;
use crate::commands::{Failure, emit};
use crate::exit;
use crate::prices::PriceTable;
use crate::store::state::{self, Checkpoint, LockState, Manifest, RecordSet, RunLock};
use crate::store::{self, StoreError};
use crate::summary::{self, Summary, new_histogram, percentiles, record_ms};
use crate::vocab::{RESULTS_FILE, SUMMARY_FILE, Shard, unix_now};

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// The shards given cannot be merged (exit 2): the message names the directory.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One shard's run directory, as read.
struct ShardDir {
    dir: PathBuf,
    shard: Shard,
    manifest: Manifest,
    checkpoint: Checkpoint,
}

fn refused(message: String) -> MergeError {
    MergeError::Refused(message)
}

/// Reads and checks one shard directory.
fn read_shard(dir: &Path) -> Result<ShardDir, MergeError> {
    let manifest = state::read_manifest(dir)?.ok_or_else(|| {
        refused(format!(
            "{} is not a bedrock-batch run directory (no {}/{} in it)",
            dir.display(),
            state::STATE_DIR,
            state::MANIFEST_FILE
        ))
    })?;
    let shard = manifest.params.shard.ok_or_else(|| {
        refused(format!(
            "{} is not a shard: it was run without --shard",
            dir.display()
        ))
    })?;
    let checkpoint = state::read_checkpoint(dir)?.ok_or_else(|| {
        refused(format!(
            "{} (shard {shard}) has no checkpoint: it never ran",
            dir.display()
        ))
    })?;
    if let LockState::HeldBy(holder) = RunLock::probe(dir) {
        return Err(refused(format!(
            "{} (shard {shard}) is still running ({holder}); merge when it has finished",
            dir.display()
        )));
    }
    let summary = &checkpoint.summary;
    let unfinished = summary
        .records
        .pending
        .filter(|n| *n > 0)
        .map(|n| n.to_string());
    let stopped = summary.aborted.as_ref().map(|a| a.kind.clone());
    if let Some(why) = unfinished
        .map(|n| format!("{n} records pending"))
        .or(stopped.map(|kind| format!("stopped early ({kind})")))
        .or(summary
            .budget
            .as_ref()
            .map(|_| "stopped at --budget-usd".to_string()))
    {
        return Err(refused(format!(
            "{} (shard {shard}) is not finished: {why}; rerun its command to finish it, then merge",
            dir.display()
        )));
    }
    Ok(ShardDir {
        dir: dir.to_path_buf(),
        shard,
        manifest,
        checkpoint,
    })
}

/// Checks that `shards` are all the shards of one job, once each; returns them in order.
fn check_set(mut shards: Vec<ShardDir>) -> Result<Vec<ShardDir>, MergeError> {
    let first = &shards[0];
    let count = first.shard.count;
    let mut params = first.manifest.params.clone();
    params.shard = None;
    for other in &shards[1..] {
        if other.shard.count != count {
            return Err(refused(format!(
                "{} is shard {} but {} is shard {}: the shards of one job share their N",
                other.dir.display(),
                other.shard,
                first.dir.display(),
                first.shard
            )));
        }
        if !other.manifest.job.same_content(&first.manifest.job) {
            return Err(refused(format!(
                "{} ran another job file ({}) than {} ({})",
                other.dir.display(),
                other.manifest.job.path,
                first.dir.display(),
                first.manifest.job.path
            )));
        }
        let mut theirs = other.manifest.params.clone();
        theirs.shard = None;
        let differences = theirs.differences(&params);
        if !differences.is_empty() {
            return Err(refused(format!(
                "{} ran with other parameters than {}: {}",
                other.dir.display(),
                first.dir.display(),
                differences.join("; ")
            )));
        }
    }
    shards.sort_by_key(|s| s.shard.index);
    for pair in shards.windows(2) {
        if pair[0].shard.index == pair[1].shard.index {
            return Err(refused(format!(
                "shard {} is given twice: {} and {}",
                pair[0].shard,
                pair[0].dir.display(),
                pair[1].dir.display()
            )));
        }
    }
    let missing: Vec<String> = (0..count)
        .filter(|i| !shards.iter().any(|s| s.shard.index == *i))
        .map(|i| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(refused(format!(
            "missing shard{} {} of {count}: give every shard's run directory",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", ")
        )));
    }
    Ok(shards)
}

/// What merge needs of each result line.
#[derive(Deserialize)]
struct LineTimes {
    #[serde(default)]
    latency_ms: Option<u64>,
    #[serde(default)]
    ttft_ms: Option<u64>,
}

/// Merges `dirs` into `out`; returns the merged summary.
pub fn merge(dirs: &[PathBuf], out: &Path, prices: &PriceTable) -> Result<Summary, MergeError> {
    if dirs.is_empty() {
        return Err(refused("give the shards' run directories to merge".into()));
    }
    let shards = check_set(
        dirs.iter()
            .map(|d| read_shard(d))
            .collect::<Result<_, _>>()?,
    )?;
    if out.join(RESULTS_FILE).exists() || state::read_manifest(out)?.is_some() {
        return Err(refused(format!(
            "{} already holds a run: merge into a new directory",
            out.display()
        )));
    }
    std::fs::create_dir_all(state::state_dir(out)).map_err(|source| MergeError::Read {
        path: state::state_dir(out),
        source,
    })?;

    let (mut latency, mut ttft) = (new_histogram(), new_histogram());
    let results_path = out.join(RESULTS_FILE);
    let mut writer =
        BufWriter::new(
            File::create(&results_path).map_err(|source| MergeError::Read {
                path: results_path.clone(),
                source,
            })?,
        );
    let (mut done, mut failed_retryable, mut failed_other) = (
        RecordSet::default(),
        RecordSet::default(),
        RecordSet::default(),
    );
    let mut merged = Summary::default();
    let mut runs = 0;
    for shard in &shards {
        let path = shard.dir.join(RESULTS_FILE);
        let read_error = |source| MergeError::Read {
            path: path.clone(),
            source,
        };
        // Only the committed part: a crash may have left lines after the checkpoint.
        let file = File::open(&path).map_err(read_error)?;
        let reader = BufReader::new(file.take(shard.checkpoint.results_len));
        for line in reader.lines() {
            let line = line.map_err(read_error)?;
            if let Ok(times) = serde_json::from_str::<LineTimes>(&line) {
                if let Some(ms) = times.latency_ms {
                    record_ms(&mut latency, ms);
                }
                if let Some(ms) = times.ttft_ms {
                    record_ms(&mut ttft, ms);
                }
            }
            writeln!(writer, "{line}").map_err(read_error)?;
        }
        for (set, ranges) in [
            (&mut done, &shard.checkpoint.done),
            (&mut failed_retryable, &shard.checkpoint.failed_retryable),
            (&mut failed_other, &shard.checkpoint.failed_other),
        ] {
            for n in RecordSet::from_ranges(ranges).iter() {
                set.insert(n);
            }
        }
        let theirs = &shard.checkpoint.summary;
        summary::add_counts(&mut merged, theirs);
        merged.started_unix = match merged.started_unix {
            0 => theirs.started_unix,
            ours => ours.min(theirs.started_unix),
        };
        merged.finished_unix = merged.finished_unix.max(theirs.finished_unix);
        // The shards ran side by side: the job took as long as the slowest.
        merged.elapsed_s = merged.elapsed_s.max(theirs.elapsed_s);
        runs += shard.checkpoint.runs;
    }
    writer
        .into_inner()
        .map_err(|err| MergeError::Read {
            path: results_path.clone(),
            source: err.into_error(),
        })?
        .sync_all()
        .map_err(|source| MergeError::Read {
            path: results_path.clone(),
            source,
        })?;
    let results_len = std::fs::metadata(&results_path)
        .map_err(|source| MergeError::Read {
            path: results_path.clone(),
            source,
        })?
        .len();

    let first = &shards[0].checkpoint.summary;
    merged.job_file = first.job_file.clone();
    merged.model = first.model.clone();
    merged.mode = first.mode.clone();
    if !latency.is_empty() {
        merged.latency_ms = percentiles(&latency);
    }
    if !ttft.is_empty() {
        merged.ttft_ms = Some(percentiles(&ttft));
    }
    merged.records_per_s = if merged.elapsed_s > 0.0 {
        (merged.records.total as f64 / merged.elapsed_s * 10.0).round() / 10.0
    } else {
        0.0
    };
    summary::apply_prices(&mut merged, prices);

    let mut manifest = shards[0].manifest.clone();
    manifest.params.shard = None;
    manifest.created_unix = unix_now();
    state::write_manifest(out, &manifest)?;
    state::write_checkpoint(
        out,
        &Checkpoint {
            version: 1,
            results_len,
            done: done.ranges(),
            failed_retryable: failed_retryable.ranges(),
            failed_other: failed_other.ranges(),
            summary: merged.clone(),
            runs,
            updated_unix: unix_now(),
        },
    )?;
    store::write_json_atomically(out, SUMMARY_FILE, &merged)?;
    Ok(merged)
}

/// The `merge` command, from its flags to an exit code.
pub fn execute(args: MergeArgs) -> Result<u8, Failure> {
    use crate::prices::PriceTable;
    use crate::report::render;
    let prices = PriceTable::with_files(&args.prices).map_err(Failure::usage_error)?;
    let summary = merge(&args.shards, &args.out, &prices).map_err(|err| match err {
        MergeError::Refused(message) => Failure::usage(message),
        other => Failure::usage_error(other),
    })?;
    if !args.quiet {
        eprint!("{}", render(&summary));
        eprintln!(
            "merged {} shards into {}",
            args.shards.len(),
            args.out.display()
        );
    }
    if args.json {
        emit(&(serde_json::to_string_pretty(&summary).unwrap_or_default() + "\n"))?;
    }
    Ok(if summary.records.failed == 0 {
        exit::OK
    } else {
        exit::SOME_FAILED
    })
}
