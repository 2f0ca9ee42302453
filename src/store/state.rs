//! A run's state in RUN_DIR/state: the manifest (fingerprints of the job file and of the
//! parameters that change results), the checkpoint (which records have a committed line, how
//! long results.jsonl was then, and the totals of those lines), and the lock that keeps two
//! runs from writing one RUN_DIR. Reading the state costs a few kilobytes whatever the size
//! of results.jsonl, so a resume starts at once.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use super::{StoreError, write_json_atomically};
use crate::summary::Summary;
use crate::vocab::Shard;

pub const STATE_DIR: &str = "state";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const CHECKPOINT_FILE: &str = "checkpoint.json";
pub const LOCK_FILE: &str = "lock";
/// The checkpoint of a `--retry-failed` rewrite, until the new results.jsonl is in place.
pub const REWRITE_FILE: &str = "rewrite.json";

/// A set of record numbers, one bit each: a million records take 125 KB.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordSet {
    words: Vec<u64>,
    len: u64,
}

impl RecordSet {
    pub fn contains(&self, n: u64) -> bool {
        let (word, bit) = ((n / 64) as usize, n % 64);
        self.words.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    pub fn insert(&mut self, n: u64) {
        let (word, bit) = ((n / 64) as usize, n % 64);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        if self.words[word] & (1 << bit) == 0 {
            self.words[word] |= 1 << bit;
            self.len += 1;
        }
    }

    pub fn remove(&mut self, n: u64) {
        let (word, bit) = ((n / 64) as usize, n % 64);
        if let Some(w) = self.words.get_mut(word)
            && *w & (1 << bit) != 0
        {
            *w &= !(1 << bit);
            self.len -= 1;
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The members as inclusive `[first, last]` ranges, in order.
    pub fn ranges(&self) -> Vec<[u64; 2]> {
        let mut ranges: Vec<[u64; 2]> = Vec::new();
        for (i, word) in self.words.iter().enumerate() {
            if *word == 0 {
                continue;
            }
            for bit in 0..64 {
                if word & (1 << bit) == 0 {
                    continue;
                }
                let n = i as u64 * 64 + bit;
                match ranges.last_mut() {
                    Some(last) if last[1] + 1 == n => last[1] = n,
                    _ => ranges.push([n, n]),
                }
            }
        }
        ranges
    }

    pub fn from_ranges(ranges: &[[u64; 2]]) -> RecordSet {
        let mut set = RecordSet::default();
        for [first, last] in ranges {
            for n in *first..=*last {
                set.insert(n);
            }
        }
        set
    }

    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.ranges().into_iter().flat_map(|[a, b]| a..=b)
    }
}

/// The parameters that change what a record's result is. A resume with different ones
/// would mix two kinds of answers in one results.jsonl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunParams {
    pub model: String,
    pub mode: String,
    pub format: String,
    pub template: String,
    pub system: Option<String>,
    pub max_tokens: Option<i32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub stop: Vec<String>,
    pub dimensions: Option<u32>,
    pub normalize: bool,
    pub input_type: String,
    #[serde(default)]
    pub shared_documents: Vec<String>,
    /// The part of the job file this run directory holds (`--shard`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// A fingerprint of `--schema`, absent without one (so older runs read the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Knowledge-base runs only, so earlier runs' parameters read the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knowledge_base: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_template: Option<String>,
    /// `--id-field`: another field gives the records other ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_field: Option<String>,
}

impl RunParams {
    /// Human lines naming each parameter that differs: `model: now X, was Y`.
    pub fn differences(&self, earlier: &RunParams) -> Vec<String> {
        let now = serde_json::to_value(self).unwrap_or_default();
        let was = serde_json::to_value(earlier).unwrap_or_default();
        let mut lines = Vec::new();
        if let (Some(now), Some(was)) = (now.as_object(), was.as_object()) {
            for (key, value) in now {
                let before = was.get(key).cloned().unwrap_or_default();
                if *value != before {
                    lines.push(format!(
                        "{key}: now {}, was {}",
                        param_text(key, value),
                        param_text(key, &before)
                    ));
                }
            }
        }
        lines
    }
}

/// A run parameter as a person writes it: a shard as `I/N`, nothing as `none`.
fn param_text(key: &str, value: &serde_json::Value) -> String {
    match (key, value) {
        (_, serde_json::Value::Null) => "none".to_string(),
        ("shard", shard) => match (shard["index"].as_u64(), shard["count"].as_u64()) {
            (Some(index), Some(count)) => format!("--shard {index}/{count}"),
            _ => shard.to_string(),
        },
        (_, other) => other.to_string(),
    }
}

/// The job file's identity: its size and a hash of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFingerprint {
    pub path: String,
    /// The path resolved when the run started, so `status` finds the file from anywhere.
    #[serde(default)]
    pub absolute_path: String,
    pub bytes: u64,
    pub xxh3_128: String,
}

impl JobFingerprint {
    pub fn of(path: &Path) -> Result<JobFingerprint, StoreError> {
        let error = |source| StoreError {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(error)?;
        let mut hasher = Xxh3::new();
        let mut buffer = vec![0u8; 1 << 20];
        let mut bytes = 0u64;
        loop {
            let n = file.read(&mut buffer).map_err(error)?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
            hasher.update(&buffer[..n]);
        }
        Ok(JobFingerprint {
            path: path.display().to_string(),
            absolute_path: std::fs::canonicalize(path)
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            bytes,
            xxh3_128: format!("{:032x}", hasher.digest128()),
        })
    }

    pub fn same_content(&self, other: &JobFingerprint) -> bool {
        self.bytes == other.bytes && self.xxh3_128 == other.xxh3_128
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub job: JobFingerprint,
    pub params: RunParams,
    pub created_unix: u64,
}

/// Everything committed at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    /// results.jsonl's length when the checkpoint was taken; anything after it is discarded
    /// on resume, and its records sent again.
    pub results_len: u64,
    /// Records with a line in results.jsonl.
    pub done: Vec<[u64; 2]>,
    /// Of those, the ones whose line is a retryable error.
    pub failed_retryable: Vec<[u64; 2]>,
    /// Of those, the ones whose line is another error (validation, bad input).
    pub failed_other: Vec<[u64; 2]>,
    /// Totals of the committed lines (and the run history so far).
    pub summary: Summary,
    pub runs: u32,
    pub updated_unix: u64,
}

pub fn state_dir(run_dir: &Path) -> PathBuf {
    run_dir.join(STATE_DIR)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, StoreError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreError {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|err| StoreError {
            path: path.to_path_buf(),
            source: std::io::Error::other(format!("not a valid state file: {err}")),
        })
}

/// The run's id in events: when its manifest was written and a hash of it, so the same
/// across the invocations that resume a run directory and new with `--fresh`.
pub fn run_id(manifest: &Manifest) -> String {
    let text = serde_json::to_vec(manifest).unwrap_or_default();
    let hash = xxhash_rust::xxh3::xxh3_64(&text);
    let when = chrono::DateTime::from_timestamp(manifest.created_unix as i64, 0)
        .map_or_else(String::new, |t| t.format("%Y%m%dT%H%M%SZ").to_string());
    format!("{when}-{:08x}", hash >> 32)
}

pub fn read_manifest(run_dir: &Path) -> Result<Option<Manifest>, StoreError> {
    read_json(&state_dir(run_dir).join(MANIFEST_FILE))
}

pub fn read_checkpoint(run_dir: &Path) -> Result<Option<Checkpoint>, StoreError> {
    read_json(&state_dir(run_dir).join(CHECKPOINT_FILE))
}

pub fn read_rewrite(run_dir: &Path) -> Result<Option<Checkpoint>, StoreError> {
    read_json(&state_dir(run_dir).join(REWRITE_FILE))
}

pub fn write_rewrite(run_dir: &Path, checkpoint: &Checkpoint) -> Result<(), StoreError> {
    write_json_atomically(&state_dir(run_dir), REWRITE_FILE, checkpoint)
}

pub fn write_manifest(run_dir: &Path, manifest: &Manifest) -> Result<(), StoreError> {
    write_json_atomically(&state_dir(run_dir), MANIFEST_FILE, manifest)
}

pub fn write_checkpoint(run_dir: &Path, checkpoint: &Checkpoint) -> Result<(), StoreError> {
    write_json_atomically(&state_dir(run_dir), CHECKPOINT_FILE, checkpoint)
}

/// The exclusive lock of a RUN_DIR, held while a run writes it; the OS releases it when the
/// process ends, however it ends.
pub struct RunLock {
    _file: File,
}

/// Who holds a RUN_DIR's lock.
pub enum LockState {
    Free,
    HeldBy(String),
}

impl RunLock {
    pub fn acquire(run_dir: &Path) -> Result<RunLock, String> {
        let dir = state_dir(run_dir);
        std::fs::create_dir_all(&dir)
            .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|err| format!("cannot open {}: {err}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(format!(
                    "another bedrock-batch run is writing {} ({}): wait for it to finish, or choose another --out",
                    run_dir.display(),
                    holder.trim()
                ));
            }
            Err(std::fs::TryLockError::Error(err)) => {
                return Err(format!("cannot lock {}: {err}", path.display()));
            }
        }
        let _ = file.set_len(0);
        let _ = write!(file, "pid {}", std::process::id());
        let _ = file.flush();
        Ok(RunLock { _file: file })
    }

    /// Whether a run holds the lock right now (without taking it for long).
    pub fn probe(run_dir: &Path) -> LockState {
        let path = state_dir(run_dir).join(LOCK_FILE);
        let Ok(mut file) = OpenOptions::new().read(true).write(true).open(&path) else {
            return LockState::Free;
        };
        match file.try_lock() {
            Ok(()) => LockState::Free,
            Err(_) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                LockState::HeldBy(holder.trim().to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_sets_round_trip_through_ranges() {
        let mut set = RecordSet::default();
        for n in [1, 2, 3, 5, 64, 65, 66, 200] {
            set.insert(n);
        }
        set.insert(2);
        assert_eq!(set.len(), 8);
        assert_eq!(set.ranges(), vec![[1, 3], [5, 5], [64, 66], [200, 200]]);
        let back = RecordSet::from_ranges(&set.ranges());
        assert_eq!(back, set);
        set.remove(65);
        set.remove(1000);
        assert!(!set.contains(65));
        assert!(set.contains(66));
        assert_eq!(set.len(), 7);
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![1, 2, 3, 5, 64, 66, 200]
        );
    }

    #[test]
    fn a_million_records_in_a_few_ranges() {
        let mut set = RecordSet::default();
        for n in 1..=1_000_000 {
            if n != 500_000 {
                set.insert(n);
            }
        }
        assert_eq!(set.ranges(), vec![[1, 499_999], [500_001, 1_000_000]]);
    }

    #[test]
    fn lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let lock = RunLock::acquire(dir.path()).unwrap();
        let err = RunLock::acquire(dir.path()).err().unwrap();
        assert!(
            err.contains("another bedrock-batch run is writing"),
            "{err}"
        );
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(matches!(RunLock::probe(dir.path()), LockState::HeldBy(_)));
        drop(lock);
        assert!(matches!(RunLock::probe(dir.path()), LockState::Free));
        assert!(RunLock::acquire(dir.path()).is_ok());
    }

    #[test]
    fn fingerprints_see_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.jsonl");
        std::fs::write(&path, "{\"text\": \"a\"}\n").unwrap();
        let a = JobFingerprint::of(&path).unwrap();
        std::fs::write(&path, "{\"text\": \"b\"}\n").unwrap();
        let b = JobFingerprint::of(&path).unwrap();
        assert_eq!(a.bytes, b.bytes);
        assert!(!a.same_content(&b));
        assert!(a.same_content(&a.clone()));
    }
}
