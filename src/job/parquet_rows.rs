//! Parquet job files: each row a record, each column a field. Strings, integers, floats,
//! booleans and lists of strings (`images`, `documents`) are read; columns of other types
//! are skipped with a warning, and never read. Rows are streamed a batch at a time, one
//! row group's pages at most in memory, so memory stays flat like JSONL.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use serde_json::{Map, Value};

use super::{JobError, Record};
use crate::vocab::InvalidRecord;

/// Rows decoded at a time.
const BATCH_ROWS: usize = 1024;

fn read_error(path: &Path, err: impl std::fmt::Display) -> JobError {
    JobError::Read {
        path: path.to_path_buf(),
        source: std::io::Error::other(err.to_string()),
    }
}

fn readable(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float32
        | DataType::Float64 => true,
        DataType::List(item) | DataType::LargeList(item) => matches!(
            item.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ),
        _ => false,
    }
}

fn builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, JobError> {
    let file = File::open(path).map_err(|source| JobError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|err| read_error(path, err))
}

/// The number of rows, from the file's footer.
pub fn count(path: &Path) -> Result<u64, JobError> {
    Ok(builder(path)?.metadata().file_metadata().num_rows().max(0) as u64)
}

pub struct ParquetRecords {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    names: Vec<String>,
    batch: Option<RecordBatch>,
    row: usize,
    number: u64,
}

impl ParquetRecords {
    pub fn open(path: &Path) -> Result<ParquetRecords, JobError> {
        let builder = builder(path)?;
        let schema = builder.schema().clone();
        let mut keep = Vec::new();
        let mut names = Vec::new();
        for (i, field) in schema.fields().iter().enumerate() {
            if readable(field.data_type()) {
                keep.push(i);
                names.push(field.name().clone());
            } else {
                tracing::warn!(
                    "{}: column {:?} ({}) is skipped: job files take strings, numbers, booleans and lists of strings",
                    path.display(),
                    field.name(),
                    field.data_type()
                );
            }
        }
        let mask = ProjectionMask::roots(builder.parquet_schema(), keep);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|err| read_error(path, err))?;
        Ok(ParquetRecords {
            path: path.to_path_buf(),
            reader,
            names,
            batch: None,
            row: 0,
            number: 0,
        })
    }

    /// The columns read, in file order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn record(&self, batch: &RecordBatch, row: usize) -> Record {
        let mut fields = Map::new();
        for (name, column) in self.names.iter().zip(batch.columns()) {
            if let Some(value) = value(column, row) {
                fields.insert(name.clone(), value);
            }
        }
        Record {
            number: self.number,
            // A Parquet file has no lines: messages name the 1-based row instead.
            line: self.number,
            fields,
        }
    }
}

/// The JSON value of one cell; `None` for a null.
fn value(column: &ArrayRef, row: usize) -> Option<Value> {
    if column.is_null(row) {
        return None;
    }
    let number = |n: Option<serde_json::Number>| n.map(Value::Number);
    match column.data_type() {
        DataType::Utf8 => Some(Value::from(column.as_string::<i32>().value(row))),
        DataType::LargeUtf8 => Some(Value::from(column.as_string::<i64>().value(row))),
        DataType::Utf8View => Some(Value::from(column.as_string_view().value(row))),
        DataType::Boolean => Some(Value::Bool(column.as_boolean().value(row))),
        DataType::Int8 => Some(Value::from(column.as_primitive::<Int8Type>().value(row))),
        DataType::Int16 => Some(Value::from(column.as_primitive::<Int16Type>().value(row))),
        DataType::Int32 => Some(Value::from(column.as_primitive::<Int32Type>().value(row))),
        DataType::Int64 => Some(Value::from(column.as_primitive::<Int64Type>().value(row))),
        DataType::UInt8 => Some(Value::from(column.as_primitive::<UInt8Type>().value(row))),
        DataType::UInt16 => Some(Value::from(column.as_primitive::<UInt16Type>().value(row))),
        DataType::UInt32 => Some(Value::from(column.as_primitive::<UInt32Type>().value(row))),
        DataType::UInt64 => Some(Value::from(column.as_primitive::<UInt64Type>().value(row))),
        DataType::Float32 => number(serde_json::Number::from_f64(f64::from(
            column.as_primitive::<Float32Type>().value(row),
        ))),
        DataType::Float64 => number(serde_json::Number::from_f64(
            column.as_primitive::<Float64Type>().value(row),
        )),
        DataType::List(_) => Some(strings(&column.as_list::<i32>().value(row))),
        DataType::LargeList(_) => Some(strings(&column.as_list::<i64>().value(row))),
        _ => None,
    }
}

fn strings(items: &ArrayRef) -> Value {
    Value::Array((0..items.len()).filter_map(|i| value(items, i)).collect())
}

impl Iterator for ParquetRecords {
    type Item = Result<Result<Record, InvalidRecord>, JobError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(batch) = &self.batch
                && self.row < batch.num_rows()
            {
                self.number += 1;
                let record = self.record(batch, self.row);
                self.row += 1;
                return Some(Ok(Ok(record)));
            }
            match self.reader.next()? {
                Ok(batch) => {
                    self.batch = Some(batch);
                    self.row = 0;
                }
                Err(err) => return Some(Err(read_error(&self.path, err))),
            }
        }
    }
}
