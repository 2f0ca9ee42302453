//! What a run remembers of its Batch Inference jobs, in RUN_DIR/state/batch.json: the run's
//! own id (part of every job name, request token and S3 key), where the jobs live, and each
//! part of the input: its model, records, content hash, job ARN and last known status. A
//! part is written here before its job is created and its ARN right after, so a rerun after
//! a crash or Ctrl-C polls and collects the same jobs and never creates a second one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::parts::{self, part_name};
use crate::bedrock::wire::BatchKind;
use crate::store::{self, StoreError};
use crate::vocab::BatchJobReport;

pub const BATCH_FILE: &str = "batch.json";

/// Statuses after which a job changes no more.
pub const ENDED: [&str; 5] = [
    "Completed",
    "PartiallyCompleted",
    "Failed",
    "Stopped",
    "Expired",
];

/// Status of a part whose job is not created yet.
pub const PREPARED: &str = "Prepared";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchState {
    pub version: u32,
    /// Lowercase letters and digits, fixed for the life of the run directory.
    pub run_id: String,
    /// Where the jobs were created, so `cancel` and reruns find them.
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// The jobs ran on the built-in server of `--local`, which lives only as long as the
    /// run that started it: they end with it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local: bool,
    /// `s3://BUCKET/PREFIX` as given.
    pub s3: String,
    pub role_arn: String,
    pub parts: Vec<PartState>,
}

/// One input file and its job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartState {
    /// 1-based; the file is `part-NNNNN.jsonl`.
    pub index: u32,
    pub model: String,
    pub kind: BatchKind,
    pub records: u64,
    pub bytes: u64,
    /// Hash of the input file: part of the job's request token, so another content can
    /// never be mistaken for this job.
    pub hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_arn: Option<String>,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed: Option<u64>,
    #[serde(default)]
    pub ok: u64,
    #[serde(default)]
    pub failed: u64,
    /// Every answer of the ended job was handed to the run.
    #[serde(default)]
    pub collected: bool,
}

impl PartState {
    pub fn name(&self) -> String {
        part_name(self.index)
    }

    /// Prepared or submitted, and not collected yet.
    pub fn unfinished(&self) -> bool {
        !self.collected && (self.job_arn.is_some() || self.status == PREPARED)
    }

    pub fn ended(&self) -> bool {
        ENDED.contains(&self.status.as_str())
    }

    /// The job id: the ARN's last segment.
    pub fn job_id(&self) -> Option<&str> {
        self.job_arn
            .as_deref()
            .map(|arn| arn.rsplit('/').next().unwrap_or(arn))
    }

    pub fn report(&self) -> BatchJobReport {
        BatchJobReport {
            part: self.name(),
            model: self.model.clone(),
            job_arn: self.job_arn.clone().unwrap_or_default(),
            status: self.status.clone(),
            records: self.records,
            processed: self.processed,
            ok: self.ok,
            failed: self.failed,
        }
    }
}

/// The directory of the local copies of the parts (input lines and record sidecars).
pub fn parts_dir(run_dir: &Path) -> PathBuf {
    run_dir.join(crate::vocab::BATCH_DIR)
}

pub fn read(run_dir: &Path) -> Result<Option<BatchState>, StoreError> {
    let path = store::state::state_dir(run_dir).join(BATCH_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StoreError { path, source }),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|err| StoreError {
            path,
            source: std::io::Error::other(format!("not a valid batch state file: {err}")),
        })
}

pub fn write(run_dir: &Path, state: &BatchState) -> Result<(), StoreError> {
    store::write_json_atomically(&store::state::state_dir(run_dir), BATCH_FILE, state)
}

impl BatchState {
    /// Jobs a rerun --via on-demand would pay for twice: created and not collected.
    pub fn unfinished(&self) -> Vec<&PartState> {
        self.parts.iter().filter(|p| p.unfinished()).collect()
    }

    /// Forgets the parts whose jobs were created but not collected, with their local
    /// files, and returns how many jobs and records that was: for a `--local` run, whose
    /// jobs ended with the built-in server of the run that created them. Their records
    /// are no part's members any more, so the run sends them again in new parts.
    pub fn forget_lost_jobs(&mut self, run_dir: &Path) -> (usize, u64) {
        let dir = parts_dir(run_dir);
        let (lost, kept): (Vec<PartState>, Vec<PartState>) = std::mem::take(&mut self.parts)
            .into_iter()
            .partition(|p| !p.collected && p.job_arn.is_some());
        self.parts = kept;
        for part in &lost {
            let _ = std::fs::remove_file(parts::input_path(&dir, part.index));
            let _ = std::fs::remove_file(parts::sidecar_path(&dir, part.index));
        }
        (lost.len(), lost.iter().map(|p| p.records).sum())
    }

    pub fn reports(&self) -> Vec<BatchJobReport> {
        self.parts.iter().map(PartState::report).collect()
    }
}

/// A fresh run id: ten lowercase letters and digits.
pub fn new_run_id() -> String {
    let alphabet: Vec<char> = ('a'..='z').chain('0'..='9').collect();
    (0..10)
        .map(|_| alphabet[fastrand::usize(..alphabet.len())])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(status: &str, arn: Option<&str>, collected: bool) -> PartState {
        PartState {
            index: 3,
            model: "m".into(),
            kind: BatchKind::Converse,
            records: 100,
            bytes: 1,
            hash: "h".into(),
            job_arn: arn.map(str::to_string),
            status: status.into(),
            message: None,
            processed: None,
            ok: 0,
            failed: 0,
            collected,
        }
    }

    #[test]
    fn state_round_trips_and_knows_unfinished_parts() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let state = BatchState {
            version: 1,
            run_id: new_run_id(),
            region: "us-east-1".into(),
            endpoint_url: None,
            local: false,
            s3: "s3://b/p".into(),
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            parts: vec![
                part(PREPARED, None, false),
                part(
                    "InProgress",
                    Some("arn:aws:bedrock:us-east-1:1:model-invocation-job/abc"),
                    false,
                ),
                part("Completed", Some("arn:x/def"), true),
            ],
        };
        std::fs::create_dir_all(store::state::state_dir(dir.path())).unwrap();
        write(dir.path(), &state).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(state.clone()));
        assert_eq!(state.unfinished().len(), 2);
        assert_eq!(state.parts[1].job_id(), Some("abc"));
        assert_eq!(state.parts[0].name(), "part-00003");
        assert!(state.parts[2].ended() && !state.parts[1].ended());
        assert_eq!(state.run_id.len(), 10);
    }
}
