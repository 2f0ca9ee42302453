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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::{BinaryArray, Date32Array, Float32Array, Float64Array, Int32Array};
    use arrow_array::{StringArray, StructArray};
    use arrow_schema::Field;
    use parquet::arrow::ArrowWriter;
    use serde_json::json;

    use super::*;

    /// Writes `columns` as one Parquet file; returns its directory (kept alive) and path.
    fn parquet(columns: Vec<(&str, ArrayRef)>) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.parquet");
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let mut writer =
            ArrowWriter::try_new(File::create(&path).unwrap(), batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        (dir, path)
    }

    fn fields(path: &Path) -> Vec<Value> {
        ParquetRecords::open(path)
            .unwrap()
            .map(|r| Value::Object(r.unwrap().unwrap().fields))
            .collect()
    }

    #[test]
    fn nulls_leave_the_field_out_and_lists_drop_null_items() {
        let mut images = ListBuilder::new(StringBuilder::new());
        images.values().append_value("a.png");
        images.values().append_null();
        images.values().append_value("b.png");
        images.append(true);
        images.append(false);
        images.append(true);
        let (_dir, path) = parquet(vec![
            (
                "id",
                Arc::new(StringArray::from(vec![Some("r1"), None, Some("r3")])) as ArrayRef,
            ),
            (
                "max_tokens",
                Arc::new(Int32Array::from(vec![None, Some(50), None])),
            ),
            ("images", Arc::new(images.finish())),
        ]);
        assert_eq!(
            fields(&path),
            vec![
                json!({"id": "r1", "images": ["a.png", "b.png"]}),
                json!({"max_tokens": 50}),
                json!({"id": "r3", "images": []}),
            ]
        );
    }

    #[test]
    fn columns_of_other_types_are_skipped_and_never_read() {
        let point = StructArray::from(vec![(
            Arc::new(Field::new("x", DataType::Int32, false)),
            Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef,
        )]);
        let (_dir, path) = parquet(vec![
            (
                "id",
                Arc::new(StringArray::from(vec!["r1", "r2"])) as ArrayRef,
            ),
            (
                "blob",
                Arc::new(BinaryArray::from(vec![b"\x00\x01".as_ref(), b"\x02"])),
            ),
            ("day", Arc::new(Date32Array::from(vec![19_000, 19_001]))),
            ("point", Arc::new(point)),
            ("text", Arc::new(StringArray::from(vec!["one", "two"]))),
        ]);
        let records = ParquetRecords::open(&path).unwrap();
        assert_eq!(records.names(), ["id", "text"]);
        assert_eq!(
            fields(&path),
            vec![
                json!({"id": "r1", "text": "one"}),
                json!({"id": "r2", "text": "two"})
            ]
        );
    }

    #[test]
    fn nan_and_infinite_floats_leave_the_field_out_like_nulls() {
        let (_dir, path) = parquet(vec![
            (
                "temperature",
                Arc::new(Float64Array::from(vec![0.5, f64::NAN, f64::INFINITY])) as ArrayRef,
            ),
            (
                "top_p",
                Arc::new(Float32Array::from(vec![f32::NAN, 0.25, f32::NEG_INFINITY])),
            ),
        ]);
        assert_eq!(
            fields(&path),
            vec![
                json!({"temperature": 0.5}),
                json!({"top_p": 0.25}),
                json!({}),
            ]
        );
    }
}
