//! Reading job files: JSONL (one object a line) or CSV (a header row, then one record a
//! row), streamed one record at a time so memory stays flat however large the file. A line
//! that cannot be read becomes an [`InvalidRecord`] naming its line; the reading goes on.

mod csv_rows;
mod jsonl;
pub mod media;
pub mod messages;
pub mod prepare;
pub mod template;

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::vocab::InvalidRecord;
use serde_json::{Map, Value};

/// How a job file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JobFormat {
    Jsonl,
    Csv,
}

impl JobFormat {
    /// The format named by the file's extension.
    pub fn from_path(path: &Path) -> Option<JobFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "jsonl" | "ndjson" | "json" => Some(JobFormat::Jsonl),
            "csv" => Some(JobFormat::Csv),
            _ => None,
        }
    }
}

/// One record of the job file, its fields as JSON values (CSV fields are strings).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// 1-based position among the file's records.
    pub number: u64,
    /// 1-based line where the record starts.
    pub line: u64,
    pub fields: Map<String, Value>,
}

/// A file-level failure: the job file cannot be opened or read at all.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("cannot open job file {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read job file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("job file {path} has no header row: a CSV job file starts with its column names")]
    NoHeader { path: PathBuf },
    #[error("job file {path}: bad CSV header: {message}")]
    BadHeader { path: PathBuf, message: String },
}

/// Each record of a job file, in order.
pub type Records = Box<dyn Iterator<Item = Result<Result<Record, InvalidRecord>, JobError>> + Send>;

/// Opens `path` and streams its records.
pub fn read(path: &Path, format: JobFormat) -> Result<Records, JobError> {
    let file = File::open(path).map_err(|source| JobError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let reader = BufReader::with_capacity(256 * 1024, file);
    Ok(match format {
        JobFormat::Jsonl => Box::new(jsonl::JsonlRecords::new(reader, path)),
        JobFormat::Csv => Box::new(csv_rows::CsvRecords::new(reader, path)?),
    })
}

/// Counts the records of a job file quickly (no JSON parsing), for progress totals.
pub fn count(path: &Path, format: JobFormat) -> Result<u64, JobError> {
    let file = File::open(path).map_err(|source| JobError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let reader = BufReader::with_capacity(256 * 1024, file);
    match format {
        JobFormat::Jsonl => jsonl::count(reader, path),
        JobFormat::Csv => csv_rows::count(reader, path),
    }
}
