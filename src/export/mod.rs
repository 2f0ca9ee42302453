//! `bedrock-batch export RUN_DIR`: results.jsonl as one table a data person can load, one
//! row per record in record order: the contract's columns, `data.<name>` from the run's
//! schema, the embedding as `list<float32>` in Parquet, and with `--with-input` the job
//! file's fields joined on the record number. Memory stays bounded: the lines are put in
//! order through a small index ([`index`]), then read one at a time.

mod columns;
mod index;
mod sinks;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::job::{self, JobError, JobFormat};
use crate::store::state;
use crate::vocab::{RESULTS_FILE, SCHEMA_FILE};
use columns::Extras;
use sinks::{CsvSink, JsonlSink, ParquetSink, Sink};

/// The table formats `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Csv,
    Parquet,
    Jsonl,
}

impl ExportFormat {
    fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Parquet => "parquet",
            ExportFormat::Jsonl => "jsonl",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0} has no {RESULTS_FILE}: is it a run directory given to `run --out`?")]
    NoResults(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} line {line} is not a result line: {message}")]
    BadLine {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("--with-input: {0}")]
    Input(String),
    #[error(transparent)]
    Job(#[from] JobError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write Parquet to {path}: {message}")]
    Parquet { path: PathBuf, message: String },
}

#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub run_dir: PathBuf,
    pub format: ExportFormat,
    /// Default: RUN_DIR/export.<format>; `-` is stdout (CSV and JSONL).
    pub out: Option<PathBuf>,
    pub with_input: bool,
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    pub rows: u64,
    pub columns: usize,
    pub out: PathBuf,
}

/// The job file a run read, and its format, from the run's manifest.
fn job_file(run_dir: &Path) -> Result<(PathBuf, JobFormat), ExportError> {
    let manifest = state::read_manifest(run_dir)
        .map_err(|err| ExportError::Input(err.to_string()))?
        .ok_or_else(|| {
            ExportError::Input(format!(
                "{} has no run manifest, so the job file is unknown",
                run_dir.display()
            ))
        })?;
    let path = [&manifest.job.absolute_path, &manifest.job.path]
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| {
            ExportError::Input(format!(
                "the job file {} is no longer there",
                manifest.job.path
            ))
        })?;
    let format = JobFormat::from_name(&manifest.params.format);
    Ok((path, format))
}

/// Job records in order, looked up by ascending record number.
struct Inputs {
    records: job::Records,
    current: Option<(u64, Map<String, Value>)>,
}

impl Inputs {
    fn fields(&mut self, number: u64) -> Result<Option<&Map<String, Value>>, ExportError> {
        while self.current.as_ref().is_none_or(|(n, _)| *n < number) {
            match self.records.next() {
                None => {
                    self.current = None;
                    return Ok(None);
                }
                Some(record) => {
                    self.current = Some(match record? {
                        Ok(record) => (record.number, record.fields),
                        Err(invalid) => (invalid.number, Map::new()),
                    });
                }
            }
        }
        Ok(self
            .current
            .as_ref()
            .filter(|(n, _)| *n == number)
            .map(|(_, fields)| fields))
    }
}

pub fn export(options: &ExportOptions) -> Result<Exported, ExportError> {
    let results = options.run_dir.join(RESULTS_FILE);
    if !results.exists() {
        return Err(ExportError::NoResults(options.run_dir.clone()));
    }
    // The schema as the user wrote it: its properties give the data columns, in order.
    let schema = std::fs::read(options.run_dir.join(SCHEMA_FILE)).ok();
    let mut extras = Extras {
        schema: schema.as_deref().and_then(|bytes| {
            Some((
                serde_json::from_slice(bytes).ok()?,
                job::ordered_keys(bytes, &["properties"]).ok()?,
            ))
        }),
        ..Extras::default()
    };
    let entries = index::index(&results, &mut extras)?;
    let mut inputs = match options.with_input {
        true => {
            let (path, format) = job_file(&options.run_dir)?;
            extras.input_fields = job::field_names(&path, format)?;
            Some(Inputs {
                records: job::read(&path, format)?,
                current: None,
            })
        }
        false => None,
    };
    let columns = columns::columns(&extras);
    let out = options.out.clone().unwrap_or_else(|| {
        options
            .run_dir
            .join(format!("export.{}", options.format.extension()))
    });
    let to_stdout = out.as_os_str() == "-";
    let mut sink: Box<dyn Sink> = match (options.format, to_stdout) {
        (ExportFormat::Parquet, true) => {
            return Err(ExportError::Write {
                path: out,
                source: std::io::Error::other("Parquet is binary: give --out FILE"),
            });
        }
        (ExportFormat::Parquet, false) => Box::new(ParquetSink::create(&out, &columns)?),
        (ExportFormat::Csv, true) => Box::new(CsvSink::new(std::io::stdout(), &out, &columns)?),
        (ExportFormat::Jsonl, true) => Box::new(JsonlSink::new(std::io::stdout(), &out, &columns)),
        (format, false) => {
            let file = File::create(&out).map_err(|source| ExportError::Write {
                path: out.clone(),
                source,
            })?;
            match format {
                ExportFormat::Csv => Box::new(CsvSink::new(file, &out, &columns)?),
                _ => Box::new(JsonlSink::new(file, &out, &columns)),
            }
        }
    };
    let file = File::open(&results).map_err(|source| ExportError::Read {
        path: results.clone(),
        source,
    })?;
    let mut buffer = Vec::new();
    for entry in &entries {
        buffer.resize(entry.len as usize, 0);
        file.read_exact_at(&mut buffer, entry.offset)
            .map_err(|source| ExportError::Read {
                path: results.clone(),
                source,
            })?;
        let line: Value = serde_json::from_slice(&buffer).map_err(|err| ExportError::BadLine {
            path: results.clone(),
            line: 0,
            message: err.to_string(),
        })?;
        let input = match &mut inputs {
            Some(inputs) => inputs.fields(entry.record)?,
            None => None,
        };
        sink.write_row(&columns::row(&columns, &line, input))?;
    }
    sink.finish()?;
    Ok(Exported {
        rows: entries.len() as u64,
        columns: columns.len(),
        out,
    })
}
