//! Parquet job files and `export`, end to end: a Parquet job gives the same results as the
//! same records in JSONL; `export` to Parquet, CSV and JSONL reads back with the contract's
//! columns, types and record order, `data.<name>` from the schema, embeddings as
//! `list<float32>` and the job file's fields joined as `input.<name>`.

mod common;

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int64Type, UInt64Type};
use arrow_array::{ArrayRef, BooleanArray, Int64Array, ListArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use bedrock_batch::local_server::ServerConfig;
use common::*;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};

const N: usize = 30;

fn text(i: usize) -> String {
    format!(
        "Ticket {i}: the export of report {i} fails with an error after the upgrade. Please help."
    )
}

/// Written by hand: `export` keeps the order of the properties as the file gives them.
const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "category": {"type": "string", "enum": ["billing", "bug", "question"]},
    "urgency": {"type": "integer", "minimum": 1, "maximum": 5},
    "needs_human": {"type": "boolean"},
    "tags": {"type": "array", "items": {"type": "string"}}
  },
  "required": ["category", "urgency", "needs_human"]
}"#;

/// The same records as JSONL and as Parquet (strings, integers, booleans, a list of
/// image paths), with one image on every fifth record.
fn write_jobs(dir: &std::path::Path) -> (String, String) {
    std::fs::write(dir.join("chart.png"), png(64, 48)).unwrap();
    let images = |i: usize| -> Vec<&str> {
        if i.is_multiple_of(5) {
            vec!["chart.png"]
        } else {
            vec![]
        }
    };
    let records: Vec<Value> = (0..N)
        .map(|i| json!({"id": format!("t{i}"), "text": text(i), "priority": i as i64, "vip": i % 3 == 0, "images": images(i)}))
        .collect();
    let jsonl = write_jsonl(dir, "tickets.jsonl", &records);

    let item = Arc::new(Field::new("item", DataType::Utf8, true));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("priority", DataType::Int64, false),
        Field::new("vip", DataType::Boolean, false),
        Field::new("images", DataType::List(item.clone()), true),
        // Bytes are no field a record can use: skipped, with a warning.
        Field::new("blob", DataType::Binary, false),
    ]));
    let mut list =
        arrow_array::builder::ListBuilder::new(arrow_array::builder::StringBuilder::new());
    for i in 0..N {
        for image in images(i) {
            list.values().append_value(image);
        }
        list.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            (0..N).map(|i| format!("t{i}")),
        )),
        Arc::new(StringArray::from_iter_values((0..N).map(text))),
        Arc::new(Int64Array::from_iter_values((0..N).map(|i| i as i64))),
        Arc::new(BooleanArray::from_iter((0..N).map(|i| Some(i % 3 == 0)))),
        Arc::new(list.finish()),
        Arc::new(arrow_array::BinaryArray::from_iter_values(
            (0..N).map(|i| vec![i as u8]),
        )),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let file = std::fs::File::create(dir.join("tickets.parquet")).unwrap();
    // Small row groups, so reading crosses several of them.
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(7))
        .build();
    let mut writer = ArrowWriter::try_new(file, schema, Some(properties)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    (jsonl, "tickets.parquet".to_string())
}

/// `bedrock-batch export ARGS`, which must succeed.
async fn export(work: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut full = vec!["export"];
    full.extend_from_slice(args);
    let output = bb(work, &full).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    output
}

fn read_parquet(path: &std::path::Path) -> (Arc<Schema>, Vec<RecordBatch>) {
    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let schema = reader.schema().clone();
    let batches = reader.build().unwrap().map(Result::unwrap).collect();
    (schema, batches)
}

#[tokio::test]
async fn a_parquet_job_gives_the_same_results_as_jsonl() {
    let work = tempfile::tempdir().unwrap();
    let (jsonl, parquet) = write_jobs(work.path());
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    let template = "Priority {priority}, VIP {vip}: {text}";
    let from_jsonl = run_fresh(
        work.path(),
        &[
            &jsonl,
            "--model",
            CLAUDE,
            "--endpoint-url",
            &url,
            "--prompt-template",
            template,
        ],
    )
    .await;
    let from_parquet = run_fresh(
        work.path(),
        &[
            &parquet,
            "--model",
            CLAUDE,
            "--endpoint-url",
            &url,
            "--prompt-template",
            template,
        ],
    )
    .await;
    assert_eq!(from_jsonl.code(), 0, "{}", from_jsonl.stderr());
    assert_eq!(from_parquet.code(), 0, "{}", from_parquet.stderr());
    // A warning a person reads, not a log record with a timestamp and a module path.
    let warning = from_parquet
        .stderr()
        .lines()
        .find(|l| l.contains("\"blob\""))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(
        warning.starts_with("warning: tickets.parquet: column \"blob\""),
        "{}",
        from_parquet.stderr()
    );
    assert!(
        !from_parquet.stderr().contains("WARN"),
        "{}",
        from_parquet.stderr()
    );
    let essence = |run: &Run| -> Vec<(String, Value, Value, Value)> {
        run.by_id()
            .into_iter()
            .map(|(id, l)| {
                (
                    id,
                    l["record"].clone(),
                    l["output"].clone(),
                    l["usage"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(essence(&from_jsonl).len(), N);
    assert_eq!(essence(&from_jsonl), essence(&from_parquet));
    assert_eq!(
        server.stats().attachments["image/png"].count as usize,
        2 * N / 5,
        "images reach the server from both"
    );

    let dry = bb(
        work.path(),
        &[
            "run",
            &parquet,
            "--model",
            CLAUDE,
            "--dry-run",
            "--json",
            "--out",
            "dry",
        ],
    )
    .await;
    let estimate: Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(estimate["records"], N, "{estimate}");
}

#[tokio::test]
async fn export_writes_typed_columns_in_record_order() {
    let work = tempfile::tempdir().unwrap();
    let (jsonl, _) = write_jobs(work.path());
    std::fs::write(work.path().join("schema.json"), SCHEMA).unwrap();
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    let run = run_fresh(
        work.path(),
        &[
            &jsonl,
            "--model",
            CLAUDE,
            "--endpoint-url",
            &url,
            "--schema",
            "schema.json",
            "--concurrency",
            "8",
        ],
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let by_record: std::collections::BTreeMap<u64, Value> = run
        .lines()
        .into_iter()
        .map(|l| (l["record"].as_u64().unwrap(), l))
        .collect();
    let dir = run.dir.display().to_string();

    // Parquet, with the job file's fields.
    let out = work.path().join("tickets-out.parquet");
    export(
        work.path(),
        &[
            &dir,
            "--format",
            "parquet",
            "--out",
            out.to_str().unwrap(),
            "--with-input",
        ],
    )
    .await;
    let (schema, batches) = read_parquet(&out);
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "id",
            "record",
            "status",
            "model",
            "output",
            "stop_reason",
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_write_input_tokens",
            "latency_ms",
            "attempts",
            "error_kind",
            "error_message",
            "cost_usd",
            "service_tier",
            "data.category",
            "data.urgency",
            "data.needs_human",
            "data.tags",
            "input.id",
            "input.images",
            "input.priority",
            "input.text",
            "input.vip"
        ]
    );
    let kind = |name: &str| schema.field_with_name(name).unwrap().data_type().clone();
    assert_eq!(kind("record"), DataType::UInt64);
    assert_eq!(kind("input_tokens"), DataType::UInt64);
    assert_eq!(kind("data.urgency"), DataType::Int64);
    assert_eq!(kind("data.needs_human"), DataType::Boolean);
    assert_eq!(kind("data.category"), DataType::Utf8);
    assert_eq!(
        kind("data.tags"),
        DataType::Utf8,
        "structured fields stay JSON text"
    );
    assert_eq!(kind("cost_usd"), DataType::Float64);
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, N);
    // Each row's cost; together, the run's.
    let costs: f64 = batches
        .iter()
        .map(|batch| {
            let column = batch.column(schema.index_of("cost_usd").unwrap());
            column
                .as_primitive::<Float64Type>()
                .iter()
                .flatten()
                .sum::<f64>()
        })
        .sum();
    let total = run.summary()["cost_usd"].as_f64().unwrap();
    assert!((costs - total).abs() < 1e-6, "{costs} != {total}");
    let mut expected_record = 1u64;
    for batch in &batches {
        let column = |name: &str| batch.column(schema.index_of(name).unwrap()).clone();
        let records = column("record");
        let urgency = column("data.urgency");
        let category = column("data.category");
        let input_text = column("input.text");
        for row in 0..batch.num_rows() {
            let record = records.as_primitive::<UInt64Type>().value(row);
            assert_eq!(record, expected_record, "record order");
            let line = &by_record[&record];
            assert_eq!(
                urgency.as_primitive::<Int64Type>().value(row),
                line["data"]["urgency"].as_i64().unwrap()
            );
            assert_eq!(
                category.as_string::<i32>().value(row),
                line["data"]["category"]
            );
            assert_eq!(
                input_text.as_string::<i32>().value(row),
                text(record as usize - 1)
            );
            expected_record += 1;
        }
    }

    // CSV to stdout: the same columns (without input), the same order.
    let csv_out = export(work.path(), &[&dir, "--format", "csv", "--out", "-"]).await;
    let mut reader = csv::Reader::from_reader(csv_out.stdout.as_slice());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        names[..20]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), N);
    for (i, row) in rows.iter().enumerate() {
        let line = &by_record[&(i as u64 + 1)];
        assert_eq!(&row[1], (i + 1).to_string());
        assert_eq!(&row[17], line["data"]["urgency"].to_string());
        assert_eq!(&row[18], line["data"]["needs_human"].to_string());
        let tags: Value = serde_json::from_str(&row[19]).unwrap();
        assert_eq!(tags, line["data"]["tags"]);
    }

    // JSONL: flat objects in record order, to the default file in RUN_DIR.
    export(work.path(), &[&dir, "--format", "jsonl"]).await;
    let text = std::fs::read_to_string(run.dir.join("export.jsonl")).unwrap();
    let records: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["record"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(records, (1..=N as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn embeddings_export_as_float32_lists() {
    let work = tempfile::tempdir().unwrap();
    let records: Vec<Value> = (0..12)
        .map(|i| json!({"text": format!("Document number {i}.")}))
        .collect();
    let job = write_jsonl(work.path(), "docs.jsonl", &records);
    let server = server(ServerConfig::default()).await;
    let url = server.url();
    let run = run_fresh(
        work.path(),
        &[
            &job,
            "--model",
            TITAN_V2,
            "--dimensions",
            "256",
            "--endpoint-url",
            &url,
        ],
    )
    .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let dir = run.dir.display().to_string();
    let out = work.path().join("vectors.parquet");
    export(
        work.path(),
        &[&dir, "--format", "parquet", "--out", out.to_str().unwrap()],
    )
    .await;
    let (schema, batches) = read_parquet(&out);
    assert_eq!(
        schema.field_with_name("embedding").unwrap().data_type(),
        &DataType::List(Arc::new(Field::new("item", DataType::Float32, true)))
    );
    let by_record: std::collections::BTreeMap<u64, Value> = run
        .lines()
        .into_iter()
        .map(|l| (l["record"].as_u64().unwrap(), l))
        .collect();
    let batch = &batches[0];
    let vectors: &ListArray = batch
        .column(schema.index_of("embedding").unwrap())
        .as_list();
    for row in 0..batch.num_rows() {
        let vector = vectors.value(row);
        let vector = vector.as_primitive::<Float32Type>();
        assert_eq!(vector.len(), 256);
        let expected = by_record[&(row as u64 + 1)]["embedding"][0]
            .as_f64()
            .unwrap() as f32;
        assert_eq!(vector.value(0), expected);
    }

    let csv_out = export(work.path(), &[&dir, "--format", "csv", "--out", "-"]).await;
    let mut reader = csv::Reader::from_reader(csv_out.stdout.as_slice());
    let at = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "embedding")
        .unwrap();
    let first = reader.records().next().unwrap().unwrap();
    let vector: Vec<f32> = serde_json::from_str(&first[at]).unwrap();
    assert_eq!(vector.len(), 256);
}

#[tokio::test]
async fn export_of_a_directory_without_results_is_a_usage_error() {
    let work = tempfile::tempdir().unwrap();
    let output = bb(work.path(), &["export", "nowhere", "--format", "csv"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("results.jsonl"),
        "{}",
        stderr(&output)
    );
}
