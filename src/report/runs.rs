//! `bedrock-batch report RUN_DIR...`: one table across runs from their summary.json files,
//! by model (and by day or by run): requests, records, failures, tokens and cost. Pure
//! rendering (`render(&[Row], format)`) is kept apart from reading the run directories.
//! A run counts on the day (UTC) its summary was last written.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::text_table::{self, TableError};
use crate::prices::Route;
use crate::summary::{Summary, VariantTotals, thousands};
use crate::vocab::SUMMARY_FILE;
use crate::vocab::Usage;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    Model,
    Day,
    Run,
    /// The service tier that served the lines (`default`, `priority`, `flex`) or `batch`:
    /// records, tokens and cost (calls and failures are not kept by tier).
    Tier,
}

/// How `report` prints: a table in one of the text formats, JSON rows, or the HTML page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    Markdown,
    Csv,
    /// The rows as a JSON array.
    Json,
    /// One self-contained page (charts, costs, errors, batch jobs) for a browser: needs
    /// --out FILE, or stdout redirected to a file.
    Html,
}

impl Format {
    /// The text table format, for the formats that are tables.
    fn table(self) -> Option<text_table::Format> {
        match self {
            Format::Table => Some(text_table::Format::Table),
            Format::Markdown => Some(text_table::Format::Markdown),
            Format::Csv => Some(text_table::Format::Csv),
            Format::Json | Format::Html => None,
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Row {
    /// The day (YYYY-MM-DD) or run directory, when grouping by those.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub model: String,
    pub runs: u64,
    pub requests: u64,
    pub records: u64,
    pub failed: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_write_input_tokens: u64,
    /// `null` when any contributing run lacked a price for this model.
    pub cost_usd: Option<f64>,
}

/// Why `report` has nothing to show, or cannot show it.
#[derive(Debug, thiserror::Error)]
pub enum RunsError {
    /// Every directory was skipped (each reason as its warning says it), or none given.
    #[error("no run directory to report: {}", if skipped.is_empty() { "none given".to_string() } else { skipped.join("; ") })]
    NoRun { skipped: Vec<String> },
    #[error("--since {text:?} is not a date like 2026-11-21: {source}")]
    Since {
        text: String,
        #[source]
        source: chrono::ParseError,
    },
    #[error("{0}")]
    Table(#[from] TableError),
    /// The page is built by `report::html`, not from rows.
    #[error("--format html is a page, not a table of rows")]
    NotATable,
}

/// Why one run directory was skipped.
#[derive(Debug, thiserror::Error)]
enum Unreadable {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a bedrock-batch summary: {source}", path.display())]
    NotSummary {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// A run directory's summary.
pub struct RunSummary {
    pub dir: PathBuf,
    pub summary: Summary,
}

/// The summaries of `dirs`, and a warning for each directory that has none it can read (a
/// run refused before it started, a run still in its first seconds, another folder caught
/// by a glob): one bad directory must not blank a nightly report. An error only when no
/// directory has a summary.
pub fn read_runs(dirs: &[PathBuf]) -> Result<(Vec<RunSummary>, Vec<String>), RunsError> {
    let mut runs = Vec::new();
    let mut skipped = Vec::new();
    for dir in dirs {
        let path = dir.join(SUMMARY_FILE);
        let summary = std::fs::read_to_string(&path)
            .map_err(|source| Unreadable::Read {
                path: path.clone(),
                source,
            })
            .and_then(|text| {
                serde_json::from_str(&text).map_err(|source| Unreadable::NotSummary {
                    path: path.clone(),
                    source,
                })
            });
        match summary {
            Ok(summary) => runs.push(RunSummary {
                dir: dir.clone(),
                summary,
            }),
            Err(why) => skipped.push(format!("skipping {}: {why}", dir.display())),
        }
    }
    if runs.is_empty() {
        return Err(RunsError::NoRun { skipped });
    }
    Ok((runs, skipped))
}

pub fn day_of(unix: u64) -> String {
    DateTime::<Utc>::from_timestamp(unix as i64, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Parses `--since YYYY-MM-DD` into the first second of that day (UTC).
pub fn parse_since(text: &str) -> Result<u64, RunsError> {
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|source| RunsError::Since {
        text: text.to_string(),
        source,
    })?;
    let start = date
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp())
        .unwrap_or(0);
    Ok(start.max(0) as u64)
}

fn add_usage(row: &mut Row, usage: &Usage) {
    row.input_tokens += usage.input_tokens;
    row.output_tokens += usage.output_tokens;
    row.cache_read_input_tokens += usage.cache_read_input_tokens;
    row.cache_write_input_tokens += usage.cache_write_input_tokens;
}

/// Groups the runs finished since `since` into rows, with a total row last.
pub fn rows(runs: &[RunSummary], by: GroupBy, since: Option<u64>) -> Vec<Row> {
    let mut grouped: BTreeMap<(Option<String>, String), Row> = BTreeMap::new();
    let mut total = Row {
        group: (by != GroupBy::Model).then(|| "total".to_string()),
        model: "total".to_string(),
        cost_usd: Some(0.0),
        ..Row::default()
    };
    for run in runs {
        let summary = &run.summary;
        if since.is_some_and(|since| summary.finished_unix < since) {
            continue;
        }
        total.runs += 1;
        let group = match by {
            GroupBy::Model => None,
            GroupBy::Day => Some(day_of(summary.finished_unix)),
            GroupBy::Run => Some(run.dir.display().to_string()),
            GroupBy::Tier => {
                tier_rows(&mut grouped, &mut total, summary);
                continue;
            }
        };
        for (model, totals) in &summary.by_model {
            let row = grouped
                .entry((group.clone(), model.clone()))
                .or_insert_with(|| Row {
                    group: group.clone(),
                    model: model.clone(),
                    cost_usd: Some(0.0),
                    ..Row::default()
                });
            for row in [&mut *row, &mut total] {
                row.requests += totals.requests;
                row.records += totals.records;
                row.failed += totals.failed;
                add_usage(row, &totals.usage);
                row.cost_usd = row.cost_usd.zip(totals.cost_usd).map(|(a, b)| a + b);
            }
            row.runs += 1;
        }
    }
    let mut rows: Vec<Row> = grouped.into_values().collect();
    rows.push(total);
    for row in &mut rows {
        row.cost_usd = row.cost_usd.map(|c| (c * 1e6).round() / 1e6);
    }
    rows
}

/// Adds `summary`'s lines to the rows of their tier (and to `total`).
fn tier_rows(
    grouped: &mut BTreeMap<(Option<String>, String), Row>,
    total: &mut Row,
    summary: &Summary,
) {
    for (model, totals) in &summary.by_model {
        let mut lines: Vec<(&str, &VariantTotals)> = totals
            .cost_by_variant
            .iter()
            .map(|(variant, lines)| (Route::tier_of_variant(variant).unwrap_or("unknown"), lines))
            .collect();
        let whole;
        if lines.is_empty() {
            // A summary without variants: every line went the default way.
            whole = VariantTotals {
                records: totals.records,
                usage: totals.usage,
                cost_usd: totals.cost_usd,
            };
            lines.push(("default", &whole));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (tier, variant) in lines {
            let group = Some(tier.to_string());
            let row = grouped
                .entry((group.clone(), model.clone()))
                .or_insert_with(|| Row {
                    group,
                    model: model.clone(),
                    cost_usd: Some(0.0),
                    ..Row::default()
                });
            for row in [&mut *row, &mut *total] {
                row.records += variant.records;
                add_usage(row, &variant.usage);
                row.cost_usd = row.cost_usd.zip(variant.cost_usd).map(|(a, b)| a + b);
            }
            if seen.insert(tier) {
                row.runs += 1;
            }
        }
        total.requests += totals.requests;
        total.failed += totals.failed;
    }
}

fn cost_cell(cost: Option<f64>) -> String {
    cost.map_or("unknown".to_string(), |c| format!("{c:.4}"))
}

const HEADERS: [&str; 9] = [
    "model",
    "runs",
    "requests",
    "records",
    "failed",
    "input tokens",
    "output tokens",
    "cache tokens",
    "cost usd",
];

fn cells(row: &Row, human: bool) -> Vec<String> {
    let n = |v: u64| if human { thousands(v) } else { v.to_string() };
    vec![
        row.model.clone(),
        n(row.runs),
        n(row.requests),
        n(row.records),
        n(row.failed),
        n(row.input_tokens),
        n(row.output_tokens),
        n(row.cache_read_input_tokens + row.cache_write_input_tokens),
        cost_cell(row.cost_usd),
    ]
}

/// Renders rows in `format`.
pub fn render(rows: &[Row], by: GroupBy, format: Format) -> Result<String, RunsError> {
    let group_header = match by {
        GroupBy::Model => None,
        GroupBy::Day => Some("day"),
        GroupBy::Run => Some("run"),
        GroupBy::Tier => Some("tier"),
    };
    let headers: Vec<&str> = group_header.into_iter().chain(HEADERS).collect();
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let mut cells = cells(row, format != Format::Csv);
            if group_header.is_some() {
                cells.insert(0, row.group.clone().unwrap_or_default());
            }
            cells
        })
        .collect();
    match format.table() {
        None if format == Format::Json => {
            Ok(serde_json::to_string_pretty(rows).map_err(TableError::from)? + "\n")
        }
        None => Err(RunsError::NotATable),
        Some(table_format) => Ok(text_table::render(
            &headers,
            &table,
            usize::from(group_header.is_some()) + 1..headers.len(),
            table_format,
        )?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::ModelTotals;

    fn run(dir: &str, finished: u64, models: &[(&str, u64, Option<f64>)]) -> RunSummary {
        let mut summary = Summary {
            finished_unix: finished,
            ..Summary::default()
        };
        for (model, tokens, cost) in models {
            summary.by_model.insert(
                model.to_string(),
                ModelTotals {
                    requests: 2,
                    records: 2,
                    ok: 2,
                    failed: 0,
                    usage: Usage {
                        input_tokens: *tokens,
                        output_tokens: 1,
                        ..Usage::default()
                    },
                    cost_usd: *cost,
                    ..ModelTotals::default()
                },
            );
        }
        RunSummary {
            dir: PathBuf::from(dir),
            summary,
        }
    }

    #[test]
    fn groups_and_totals() {
        let day1 = parse_since("2026-11-20").unwrap() + 3600;
        let day2 = parse_since("2026-11-21").unwrap() + 3600;
        let runs = vec![
            run("runs/a", day1, &[("m1", 100, Some(0.5)), ("m2", 10, None)]),
            run("runs/b", day2, &[("m1", 50, Some(0.25))]),
        ];
        let by_model = rows(&runs, GroupBy::Model, None);
        assert_eq!(by_model.len(), 3);
        assert_eq!(by_model[0].model, "m1");
        assert_eq!(by_model[0].input_tokens, 150);
        assert_eq!(by_model[0].cost_usd, Some(0.75));
        assert_eq!(by_model[0].runs, 2);
        assert_eq!(by_model[1].cost_usd, None);
        let total = by_model.last().unwrap();
        assert_eq!(total.input_tokens, 160);
        assert_eq!(
            total.cost_usd, None,
            "a model without a price makes the total unknown"
        );
        assert_eq!(total.runs, 2);

        let by_day = rows(&runs, GroupBy::Day, None);
        assert_eq!(by_day[0].group.as_deref(), Some("2026-11-20"));
        assert_eq!(by_day[2].group.as_deref(), Some("2026-11-21"));
        let since = rows(
            &runs,
            GroupBy::Model,
            Some(parse_since("2026-11-21").unwrap()),
        );
        assert_eq!(since.last().unwrap().input_tokens, 50);
        assert!(parse_since("21/11/2026").is_err());
    }

    #[test]
    fn formats() {
        let runs = vec![run("runs/a", 0, &[("m1", 1234, Some(0.5))])];
        let r = rows(&runs, GroupBy::Model, None);
        let table = render(&r, GroupBy::Model, Format::Table).unwrap();
        assert!(table.starts_with("model  runs"), "{table}");
        assert!(table.contains("1,234"));
        let markdown = render(&r, GroupBy::Model, Format::Markdown).unwrap();
        assert!(markdown.starts_with("| model | runs |"));
        assert!(markdown.contains("|---|---:|"));
        let by_run = rows(&runs, GroupBy::Run, None);
        let csv = render(&by_run, GroupBy::Run, Format::Csv).unwrap();
        assert!(csv.starts_with("run,model,runs"), "{csv}");
        assert!(csv.contains("runs/a,m1,1,2,2,0,1234,1,0,0.5000"), "{csv}");
        assert!(
            csv.ends_with("total,total,1,2,2,0,1234,1,0,0.5000\n"),
            "{csv}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(&r, GroupBy::Model, Format::Json).unwrap()).unwrap();
        assert_eq!(json[0]["input_tokens"], 1234);
    }

    /// The errors say word for word what they said as strings, and keep their causes.
    #[test]
    fn unreadable_directories_are_skipped_with_their_reason_and_none_left_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let garbled = dir.path().join("garbled");
        std::fs::create_dir(&garbled).unwrap();
        std::fs::write(garbled.join(SUMMARY_FILE), "not json").unwrap();
        let err = read_runs(&[missing.clone(), garbled.clone()])
            .err()
            .expect("no directory has a summary");
        let text = err.to_string();
        let read = format!(
            "skipping {}: cannot read {}: ",
            missing.display(),
            missing.join(SUMMARY_FILE).display()
        );
        let parse = format!(
            "; skipping {}: {} is not a bedrock-batch summary: expected ident at line 1 column 2",
            garbled.display(),
            garbled.join(SUMMARY_FILE).display()
        );
        assert!(
            text.starts_with(&format!("no run directory to report: {read}")),
            "{text}"
        );
        assert!(text.ends_with(&parse), "{text}");
        assert_eq!(
            read_runs(&[]).err().unwrap().to_string(),
            "no run directory to report: none given"
        );

        let err = parse_since("2026-13-01").unwrap_err();
        assert_eq!(
            err.to_string(),
            "--since \"2026-13-01\" is not a date like 2026-11-21: input is out of range"
        );
        assert!(
            std::error::Error::source(&err).is_some(),
            "the parse error is kept"
        );
    }
}
