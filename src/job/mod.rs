//! Reading job files: JSONL (one object a line) or CSV (a header row, then one record a
//! row), streamed one record at a time so memory stays flat however large the file. A line
//! that cannot be read becomes an [`InvalidRecord`] naming its line; the reading goes on.

mod csv_rows;

pub use csv_rows::writer as csv_writer;
pub use keys::ordered_keys;
mod jsonl;
mod keys;
pub mod media;
pub mod messages;
mod parquet_rows;
pub mod prepare;

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
    Parquet,
}

impl JobFormat {
    /// The format named by the file's extension.
    pub fn from_path(path: &Path) -> Option<JobFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "jsonl" | "ndjson" | "json" => Some(JobFormat::Jsonl),
            "csv" => Some(JobFormat::Csv),
            "parquet" | "pq" => Some(JobFormat::Parquet),
            _ => None,
        }
    }

    /// The format as a run's manifest names it (`RunParams::format`).
    pub fn from_name(name: &str) -> JobFormat {
        match name {
            "csv" => JobFormat::Csv,
            "parquet" => JobFormat::Parquet,
            _ => JobFormat::Jsonl,
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
    Ok(match format {
        JobFormat::Jsonl => Box::new(jsonl::JsonlRecords::new(buffered(path)?, path)),
        JobFormat::Csv => Box::new(csv_rows::CsvRecords::new(buffered(path)?, path)?),
        JobFormat::Parquet => Box::new(parquet_rows::ParquetRecords::open(path)?),
    })
}

/// The job file, opened with a large buffer (the text formats are read line by line).
fn buffered(path: &Path) -> Result<BufReader<File>, JobError> {
    let file = File::open(path).map_err(|source| JobError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(BufReader::with_capacity(256 * 1024, file))
}

/// Counts the records of a job file quickly (no JSON parsing), for progress totals.
pub fn count(path: &Path, format: JobFormat) -> Result<u64, JobError> {
    match format {
        JobFormat::Jsonl => jsonl::count(buffered(path)?, path),
        JobFormat::Csv => csv_rows::count(buffered(path)?, path),
        JobFormat::Parquet => parquet_rows::count(path),
    }
}

/// The field names of a job file in file order: the CSV header, the Parquet columns read,
/// or the keys of JSONL records in order of first appearance (a pass over the file).
pub fn field_names(path: &Path, format: JobFormat) -> Result<Vec<String>, JobError> {
    match format {
        JobFormat::Csv => Ok(csv_rows::CsvRecords::new(buffered(path)?, path)?
            .headers()
            .to_vec()),
        JobFormat::Parquet => Ok(parquet_rows::ParquetRecords::open(path)?.names().to_vec()),
        JobFormat::Jsonl => {
            use std::io::BufRead;
            let mut names: Vec<String> = Vec::new();
            for line in buffered(path)?.split(b'\n') {
                let line = line.map_err(|source| JobError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                // A line that is not an object is an invalid record: it has no fields.
                for key in ordered_keys(&line, &[]).unwrap_or_default() {
                    if !names.contains(&key) {
                        names.push(key);
                    }
                }
            }
            Ok(names)
        }
    }
}
