//! Where exported rows go: CSV (through the one CSV writer the project builds), JSONL (one
//! flat object a row) or Parquet (typed columns, written a batch at a time so memory stays
//! flat). Each sink takes rows in order and is finished once.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int64Builder, ListBuilder,
    StringBuilder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::Value;

use super::ExportError;
use super::columns::{Cell, Column, Kind};

/// Rows per Parquet batch, and per row group: a bounded amount held before writing.
const BATCH_ROWS: usize = 8192;
const ROW_GROUP_ROWS: usize = 64 * 1024;

pub trait Sink {
    fn write_row(&mut self, row: &[Cell]) -> Result<(), ExportError>;
    fn finish(self: Box<Self>) -> Result<(), ExportError>;
}

fn write_error(path: &Path) -> impl Fn(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Write {
        path: path.to_path_buf(),
        source,
    }
}

pub struct CsvSink<W: Write> {
    path: PathBuf,
    writer: csv::Writer<W>,
    record: Vec<String>,
}

impl<W: Write> CsvSink<W> {
    pub fn new(out: W, path: &Path, columns: &[Column]) -> Result<CsvSink<W>, ExportError> {
        let mut writer = crate::job::csv_writer(out);
        writer
            .write_record(columns.iter().map(|c| c.name.as_str()))
            .map_err(|err| csv_error(path, err))?;
        Ok(CsvSink {
            path: path.to_path_buf(),
            writer,
            record: Vec::with_capacity(columns.len()),
        })
    }
}

fn csv_error(path: &Path, err: csv::Error) -> ExportError {
    ExportError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(err),
    }
}

impl<W: Write> Sink for CsvSink<W> {
    fn write_row(&mut self, row: &[Cell]) -> Result<(), ExportError> {
        self.record.clear();
        self.record.extend(row.iter().map(|cell| match cell {
            Cell::Null => String::new(),
            Cell::Text(s) => s.clone(),
            Cell::Count(n) => n.to_string(),
            Cell::Integer(n) => n.to_string(),
            Cell::Float(x) => x.to_string(),
            Cell::Bool(b) => b.to_string(),
            Cell::Vector(v) => serde_json::to_string(v).unwrap_or_default(),
        }));
        self.writer
            .write_record(&self.record)
            .map_err(|err| csv_error(&self.path, err))
    }

    fn finish(mut self: Box<Self>) -> Result<(), ExportError> {
        self.writer.flush().map_err(write_error(&self.path))
    }
}

pub struct JsonlSink<W: Write> {
    path: PathBuf,
    out: BufWriter<W>,
    names: Vec<String>,
}

impl<W: Write> JsonlSink<W> {
    pub fn new(out: W, path: &Path, columns: &[Column]) -> JsonlSink<W> {
        JsonlSink {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, out),
            names: columns.iter().map(|c| c.name.clone()).collect(),
        }
    }
}

impl<W: Write> Sink for JsonlSink<W> {
    fn write_row(&mut self, row: &[Cell]) -> Result<(), ExportError> {
        // Written by hand so the keys keep the columns' order (`Map` would sort them).
        let mut line = Vec::with_capacity(256);
        line.push(b'{');
        for (i, (name, cell)) in self.names.iter().zip(row).enumerate() {
            if i > 0 {
                line.push(b',');
            }
            let value = match cell {
                Cell::Null => Value::Null,
                Cell::Text(s) => Value::String(s.clone()),
                Cell::Count(n) => Value::from(*n),
                Cell::Integer(n) => Value::from(*n),
                Cell::Float(x) => Value::from(*x),
                Cell::Bool(b) => Value::Bool(*b),
                Cell::Vector(v) => Value::from(v.clone()),
            };
            let json_error = |err: serde_json::Error| ExportError::Write {
                path: self.path.clone(),
                source: std::io::Error::other(err),
            };
            serde_json::to_writer(&mut line, name).map_err(json_error)?;
            line.push(b':');
            serde_json::to_writer(&mut line, &value).map_err(json_error)?;
        }
        line.extend_from_slice(b"}\n");
        self.out.write_all(&line).map_err(write_error(&self.path))
    }

    fn finish(mut self: Box<Self>) -> Result<(), ExportError> {
        self.out.flush().map_err(write_error(&self.path))
    }
}

/// One column's values of the batch being built.
enum Builder {
    Text(StringBuilder),
    Count(UInt64Builder),
    Integer(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Vector(ListBuilder<Float32Builder>),
}

impl Builder {
    fn new(kind: Kind) -> Builder {
        match kind {
            Kind::Text | Kind::Json => Builder::Text(StringBuilder::new()),
            Kind::Count => Builder::Count(UInt64Builder::new()),
            Kind::Integer => Builder::Integer(Int64Builder::new()),
            Kind::Float => Builder::Float(Float64Builder::new()),
            Kind::Bool => Builder::Bool(BooleanBuilder::new()),
            Kind::Vector => Builder::Vector(ListBuilder::new(Float32Builder::new())),
        }
    }

    fn data_type(kind: Kind) -> DataType {
        match kind {
            Kind::Text | Kind::Json => DataType::Utf8,
            Kind::Count => DataType::UInt64,
            Kind::Integer => DataType::Int64,
            Kind::Float => DataType::Float64,
            Kind::Bool => DataType::Boolean,
            Kind::Vector => DataType::List(Arc::new(Field::new("item", DataType::Float32, true))),
        }
    }

    /// Appends `cell`; a cell of another type than the column's is a null.
    fn append(&mut self, cell: &Cell) {
        match (self, cell) {
            (Builder::Text(b), Cell::Text(s)) => b.append_value(s),
            (Builder::Text(b), _) => b.append_null(),
            (Builder::Count(b), Cell::Count(n)) => b.append_value(*n),
            (Builder::Count(b), _) => b.append_null(),
            (Builder::Integer(b), Cell::Integer(n)) => b.append_value(*n),
            (Builder::Integer(b), _) => b.append_null(),
            (Builder::Float(b), Cell::Float(x)) => b.append_value(*x),
            (Builder::Float(b), _) => b.append_null(),
            (Builder::Bool(b), Cell::Bool(x)) => b.append_value(*x),
            (Builder::Bool(b), _) => b.append_null(),
            (Builder::Vector(b), Cell::Vector(v)) => {
                b.values().append_slice(v);
                b.append(true);
            }
            (Builder::Vector(b), _) => b.append(false),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::Count(b) => Arc::new(b.finish()),
            Builder::Integer(b) => Arc::new(b.finish()),
            Builder::Float(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Vector(b) => Arc::new(b.finish()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Builder::Text(b) => b.len(),
            Builder::Count(b) => b.len(),
            Builder::Integer(b) => b.len(),
            Builder::Float(b) => b.len(),
            Builder::Bool(b) => b.len(),
            Builder::Vector(b) => b.len(),
        }
    }
}

pub struct ParquetSink {
    path: PathBuf,
    schema: Arc<Schema>,
    builders: Vec<Builder>,
    writer: ArrowWriter<BufWriter<File>>,
}

impl ParquetSink {
    pub fn create(path: &Path, columns: &[Column]) -> Result<ParquetSink, ExportError> {
        let file = File::create(path).map_err(write_error(path))?;
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Field::new(&c.name, Builder::data_type(c.kind), true))
                .collect::<Vec<_>>(),
        ));
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let writer = ArrowWriter::try_new(
            BufWriter::with_capacity(1 << 20, file),
            schema.clone(),
            Some(properties),
        )
        .map_err(|err| parquet_error(path, err))?;
        Ok(ParquetSink {
            path: path.to_path_buf(),
            schema,
            builders: columns.iter().map(|c| Builder::new(c.kind)).collect(),
            writer,
        })
    }

    fn flush_batch(&mut self) -> Result<(), ExportError> {
        if self.builders.first().is_none_or(|b| b.len() == 0) {
            return Ok(());
        }
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|err| parquet_error(&self.path, err))?;
        self.writer
            .write(&batch)
            .map_err(|err| parquet_error(&self.path, err))
    }
}

fn parquet_error(path: &Path, err: impl std::fmt::Display) -> ExportError {
    ExportError::Parquet {
        path: path.to_path_buf(),
        message: err.to_string(),
    }
}

impl Sink for ParquetSink {
    fn write_row(&mut self, row: &[Cell]) -> Result<(), ExportError> {
        for (builder, cell) in self.builders.iter_mut().zip(row) {
            builder.append(cell);
        }
        if self.builders.first().map_or(0, Builder::len) >= BATCH_ROWS {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), ExportError> {
        self.flush_batch()?;
        let path = self.path.clone();
        self.writer
            .close()
            .map_err(|err| parquet_error(&path, err))?;
        Ok(())
    }
}
