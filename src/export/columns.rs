//! The table `export` writes: its columns in the contract's order (the result line's own,
//! then what the run's lines carry beyond them (cost, tier, route, knowledge-base passages,
//! citations and scores, `field.<name>` for `--keep-fields`), `data.<name>` from the run's
//! schema, the embedding, then `input.<name>` from the job file), each with a type, and one
//! row of cells made from a result line.

use serde_json::{Map, Value};

/// What a column holds, which decides its Parquet type and how CSV spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Count,
    Integer,
    Float,
    Bool,
    /// Any JSON value, written as its JSON text.
    Json,
    /// An embedding: `list<float32>` in Parquet, a JSON array in CSV.
    Vector,
}

/// Where a column's value comes from.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    /// A member of the result line, at this path.
    Line(&'static [&'static str]),
    /// A member of the line's `data`.
    Data(String),
    /// A `--keep-fields` value the line carries.
    Kept(String),
    /// A field of the job file's record.
    Input(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
    source: Source,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    Count(u64),
    Integer(i64),
    Float(f64),
    Bool(bool),
    Vector(Vec<f32>),
}

const LINE_COLUMNS: &[(&str, Kind, &[&str])] = &[
    ("id", Kind::Text, &["id"]),
    ("record", Kind::Count, &["record"]),
    ("status", Kind::Text, &["status"]),
    ("model", Kind::Text, &["model"]),
    ("output", Kind::Text, &["output"]),
    ("stop_reason", Kind::Text, &["stop_reason"]),
    ("input_tokens", Kind::Count, &["usage", "input_tokens"]),
    ("output_tokens", Kind::Count, &["usage", "output_tokens"]),
    (
        "cache_read_input_tokens",
        Kind::Count,
        &["usage", "cache_read_input_tokens"],
    ),
    (
        "cache_write_input_tokens",
        Kind::Count,
        &["usage", "cache_write_input_tokens"],
    ),
    ("latency_ms", Kind::Count, &["latency_ms"]),
    ("attempts", Kind::Count, &["attempts"]),
    ("error_kind", Kind::Text, &["error", "kind"]),
    ("error_message", Kind::Text, &["error", "message"]),
];

/// What the results hold beyond the contract's fixed columns.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// The run's `--schema`, when it had one, with its property names in file order.
    pub schema: Option<(Value, Vec<String>)>,
    /// Some line carries `data` (needed when the schema is missing).
    pub data: bool,
    pub embedding: bool,
    pub response: bool,
    /// Knowledge-base lines: passages retrieved, citations, and `hit` / `rank` with
    /// `--expected-field`.
    pub retrieved: bool,
    pub citations: bool,
    pub scored: bool,
    /// Lines carry their cost, their service tier, their route (`via`, `batch_job`).
    pub cost: bool,
    pub tier: bool,
    pub batch: bool,
    /// `--keep-fields` names, in the order lines first show them.
    pub kept_fields: Vec<String>,
    /// The job file's field names, with `--with-input`.
    pub input_fields: Vec<String>,
}

/// The columns of the export, in order.
pub fn columns(extras: &Extras) -> Vec<Column> {
    let mut columns: Vec<Column> = LINE_COLUMNS
        .iter()
        .map(|(name, kind, path)| Column {
            name: name.to_string(),
            kind: *kind,
            source: Source::Line(path),
        })
        .collect();
    let line = |name: &str, kind: Kind, path: &'static [&'static str]| Column {
        name: name.to_string(),
        kind,
        source: Source::Line(path),
    };
    // What a line says beyond the contract's columns, where the run's lines say it.
    let optional: [(bool, Column); 8] = [
        (extras.cost, line("cost_usd", Kind::Float, &["cost_usd"])),
        (
            extras.tier,
            line("service_tier", Kind::Text, &["service_tier"]),
        ),
        (extras.batch, line("via", Kind::Text, &["via"])),
        (extras.batch, line("batch_job", Kind::Text, &["batch_job"])),
        (
            extras.retrieved,
            line("retrieved", Kind::Json, &["retrieved"]),
        ),
        (
            extras.citations,
            line("citations", Kind::Json, &["citations"]),
        ),
        (extras.scored, line("hit", Kind::Bool, &["hit"])),
        (extras.scored, line("rank", Kind::Count, &["rank"])),
    ];
    columns.extend(
        optional
            .into_iter()
            .filter_map(|(wanted, column)| wanted.then_some(column)),
    );
    for name in &extras.kept_fields {
        columns.push(Column {
            name: format!("field.{name}"),
            kind: Kind::Text,
            source: Source::Kept(name.clone()),
        });
    }
    match &extras.schema {
        Some((schema, names)) => {
            for name in names {
                let property = schema
                    .get("properties")
                    .and_then(|p| p.get(name))
                    .unwrap_or(&Value::Null);
                columns.push(Column {
                    name: format!("data.{name}"),
                    kind: kind_of(property),
                    source: Source::Data(name.clone()),
                });
            }
        }
        None if extras.data => columns.push(Column {
            name: "data".into(),
            kind: Kind::Json,
            source: Source::Line(&["data"]),
        }),
        None => {}
    }
    if extras.embedding {
        columns.push(Column {
            name: "embedding".into(),
            kind: Kind::Vector,
            source: Source::Line(&["embedding"]),
        });
    }
    if extras.response {
        columns.push(Column {
            name: "response".into(),
            kind: Kind::Json,
            source: Source::Line(&["response"]),
        });
    }
    for field in &extras.input_fields {
        columns.push(Column {
            name: format!("input.{field}"),
            kind: Kind::Text,
            source: Source::Input(field.clone()),
        });
    }
    columns
}

/// The column type a schema property maps to; anything structured stays JSON text.
fn kind_of(property: &Value) -> Kind {
    let kind = match property.get("type") {
        Some(Value::String(kind)) => Some(kind.as_str()),
        Some(Value::Array(kinds)) => {
            let mut named = kinds
                .iter()
                .filter_map(Value::as_str)
                .filter(|k| *k != "null");
            match (named.next(), named.next()) {
                (Some(one), None) => Some(one),
                _ => None,
            }
        }
        _ => None,
    };
    match kind {
        Some("string") => Kind::Text,
        Some("integer") => Kind::Integer,
        Some("number") => Kind::Float,
        Some("boolean") => Kind::Bool,
        _ => Kind::Json,
    }
}

/// One row: the result `line` and, with `--with-input`, its record's fields.
pub fn row(columns: &[Column], line: &Value, input: Option<&Map<String, Value>>) -> Vec<Cell> {
    columns
        .iter()
        .map(|column| {
            let value = match &column.source {
                Source::Line(path) => path.iter().try_fold(line, |v, key| v.get(key)),
                Source::Data(name) => line.get("data").and_then(|d| d.get(name)),
                Source::Kept(name) => line.get("fields").and_then(|f| f.get(name)),
                Source::Input(name) => input.and_then(|fields| fields.get(name)),
            };
            cell(column.kind, value)
        })
        .collect()
}

fn cell(kind: Kind, value: Option<&Value>) -> Cell {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Cell::Null;
    };
    let cell = match kind {
        Kind::Text => Some(Cell::Text(match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })),
        Kind::Count => value.as_u64().map(Cell::Count),
        Kind::Integer => value.as_i64().map(Cell::Integer),
        Kind::Float => value.as_f64().map(Cell::Float),
        Kind::Bool => value.as_bool().map(Cell::Bool),
        Kind::Json => Some(Cell::Text(value.to_string())),
        Kind::Vector => value.as_array().map(|items| {
            Cell::Vector(
                items
                    .iter()
                    .map(|x| x.as_f64().unwrap_or(f64::NAN) as f32)
                    .collect(),
            )
        }),
    };
    cell.unwrap_or(Cell::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_follow_the_contract_then_schema_then_input() {
        let extras = Extras {
            schema: Some((
                json!({"type": "object", "properties": {
                "category": {"type": "string"}, "urgency": {"type": "integer"},
                "tags": {"type": "array"}}}),
                vec!["category".into(), "urgency".into(), "tags".into()],
            )),
            input_fields: vec!["text".into()],
            ..Extras::default()
        };
        let columns = columns(&extras);
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names[..3], ["id", "record", "status"]);
        assert_eq!(
            names[14..],
            ["data.category", "data.urgency", "data.tags", "input.text"]
        );
        let line = json!({"id": "t1", "record": 4, "status": "ok",
            "usage": {"input_tokens": 9}, "data": {"category": "bug", "urgency": 2, "tags": ["a"]}});
        let input = json!({"text": "hello"});
        let cells = row(&columns, &line, input.as_object());
        assert_eq!(cells[0], Cell::Text("t1".into()));
        assert_eq!(cells[1], Cell::Count(4));
        assert_eq!(cells[6], Cell::Count(9));
        assert_eq!(cells[12], Cell::Null);
        assert_eq!(cells[15], Cell::Integer(2));
        assert_eq!(cells[16], Cell::Text("[\"a\"]".into()));
        assert_eq!(cells[17], Cell::Text("hello".into()));
    }
}
