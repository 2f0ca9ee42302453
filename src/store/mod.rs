//! What a run leaves in RUN_DIR: `results.jsonl`, one line per record (written as outcomes
//! arrive, in any order), `summary.json`, replaced atomically so a reader never sees half
//! of it, and the state that lets a rerun resume ([`state`], [`run_dir`]).

pub mod ledger;
pub mod run_dir;
pub mod state;

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::summary::retrieval::Scored;
use crate::vocab::RESULTS_FILE;
use crate::vocab::Usage;
use crate::vocab::{Citation, Passage};

#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct StoreError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// The error object of an error line.
#[derive(Debug, Serialize)]
pub struct LineError<'a> {
    pub kind: &'a str,
    pub message: &'a str,
}

/// One line of results.jsonl, as the contract spells it.
#[derive(Debug, Serialize)]
pub struct ResultLine<'a> {
    pub id: &'a Value,
    /// The record's 1-based position in the job file.
    pub record: u64,
    pub status: &'static str,
    pub model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<&'a str>,
    /// With `--schema`: the tool input, validated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<&'a Value>,
    /// Retrieve's passages, best first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retrieved: Option<&'a [Passage]>,
    /// RetrieveAndGenerate's citations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub citations: Option<&'a [Citation]>,
    /// With --expected-field: `hit` and `rank`.
    #[serde(flatten)]
    pub scored: Option<Scored>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<&'a str>,
    /// Absent when the service reports none (Knowledge Bases), rather than zeros.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    pub latency_ms: u64,
    /// Time to first token, with --stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<u64>,
    pub attempts: u32,
    /// The region (or endpoint) that answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<&'a str>,
    /// `batch` when a Batch Inference job answered (absent on-demand).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<&'static str>,
    /// The Batch Inference job id that answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_job: Option<&'a str>,
    /// What this line cost, priced as it landed (`null`: no price known; absent for
    /// knowledge-base lines, whose usage is not reported).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<Option<f64>>,
    /// The service tier that answered (as the answer reports it, else as asked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<LineError<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<&'a Map<String, Value>>,
    /// What was corrected before sending (a mislabeled image, a renamed document).
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub warnings: &'a [String],
}

impl<'a> ResultLine<'a> {
    /// An ok line for record `record` with nothing filled in yet.
    pub fn new(id: &'a Value, record: u64, model: &'a str) -> ResultLine<'a> {
        ResultLine {
            id,
            record,
            status: "ok",
            model,
            output: None,
            data: None,
            embedding: None,
            response: None,
            retrieved: None,
            citations: None,
            scored: None,
            stop_reason: None,
            usage: Some(Usage::default()),
            latency_ms: 0,
            ttft_ms: None,
            attempts: 0,
            region: None,
            via: None,
            batch_job: None,
            cost_usd: None,
            service_tier: None,
            line: None,
            error: None,
            fields: None,
            warnings: &[],
        }
    }
}

/// Appends result lines.
pub struct ResultsWriter {
    path: PathBuf,
    out: BufWriter<File>,
    buffer: Vec<u8>,
    /// The file's length once everything written is flushed.
    len: u64,
}

impl ResultsWriter {
    /// Creates RUN_DIR if needed and opens a new results file in it.
    pub fn create(dir: &Path) -> Result<ResultsWriter, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(RESULTS_FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| StoreError {
                path: path.clone(),
                source,
            })?;
        let len = file
            .metadata()
            .map_err(|source| StoreError {
                path: path.clone(),
                source,
            })?
            .len();
        Ok(ResultsWriter {
            path,
            out: BufWriter::with_capacity(256 * 1024, file),
            buffer: Vec::with_capacity(4096),
            len,
        })
    }

    pub fn write(&mut self, line: &ResultLine) -> Result<(), StoreError> {
        self.buffer.clear();
        serde_json::to_writer(&mut self.buffer, line)
            .map_err(|err| self.error(std::io::Error::other(err)))?;
        self.buffer.push(b'\n');
        // One write of a whole line: a crash leaves at most a torn last line.
        let buffer = std::mem::take(&mut self.buffer);
        let written = self.out.write_all(&buffer);
        self.len += buffer.len() as u64;
        self.buffer = buffer;
        written.map_err(|err| self.error(err))
    }

    /// Flushes and syncs every line written so far; returns the file's committed length.
    pub fn commit(&mut self) -> Result<u64, StoreError> {
        self.flush()?;
        self.out
            .get_ref()
            .sync_data()
            .map_err(|err| self.error(err))?;
        Ok(self.len)
    }

    pub fn flush(&mut self) -> Result<(), StoreError> {
        self.out.flush().map_err(|err| self.error(err))
    }

    /// Flushes and syncs to disk.
    pub fn finish(mut self) -> Result<(), StoreError> {
        self.flush()?;
        self.out.get_ref().sync_all().map_err(|err| self.error(err))
    }

    fn error(&self, source: std::io::Error) -> StoreError {
        StoreError {
            path: self.path.clone(),
            source,
        }
    }
}

/// Writes `value` as pretty JSON to `dir/name` through a temporary file and a rename.
pub fn write_json_atomically<T: Serialize>(
    dir: &Path,
    name: &str,
    value: &T,
) -> Result<(), StoreError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError {
        path: dir.join(name),
        source: std::io::Error::other(e),
    })?;
    bytes.push(b'\n');
    write_atomically(dir, name, &bytes)
}

/// How the temporary file of an atomic write begins: a run killed in the middle of one
/// leaves it behind, and the next run that opens the directory removes it.
pub const TEMP_PREFIX: &str = ".unfinished-";

/// Removes what atomic writes in `dir` left when their run was killed.
pub fn remove_unfinished_writes(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes `bytes` to `dir/name` through a temporary file and a rename, so a reader never
/// sees half of it.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let path = dir.join(name);
    let error = |source| StoreError {
        path: path.clone(),
        source,
    };
    let mut file = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(error)?;
    file.write_all(bytes).map_err(error)?;
    file.as_file().sync_all().map_err(error)?;
    file.persist(&path).map_err(|e| error(e.error))?;
    // The rename itself survives a power loss once the directory is synced.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_lines_and_atomic_json() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = ResultsWriter::create(&dir.path().join("run")).unwrap();
        let id = json!("a");
        writer
            .write(&ResultLine {
                output: Some("hi"),
                stop_reason: Some("end_turn"),
                usage: Some(Usage {
                    input_tokens: 1,
                    output_tokens: 2,
                    ..Usage::default()
                }),
                latency_ms: 3,
                attempts: 1,
                ..ResultLine::new(&id, 1, "m")
            })
            .unwrap();
        writer.finish().unwrap();
        let text = std::fs::read_to_string(dir.path().join("run").join(RESULTS_FILE)).unwrap();
        let line: Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(line["output"], "hi");
        assert_eq!(line["usage"]["output_tokens"], 2);
        assert!(line.get("error").is_none());
        write_json_atomically(dir.path(), "s.json", &json!({"x": 1})).unwrap();
        let s: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("s.json")).unwrap())
                .unwrap();
        assert_eq!(s["x"], 1);
    }
}
