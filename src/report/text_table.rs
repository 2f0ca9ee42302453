//! Text tables as reports print them: aligned columns for a terminal, Markdown, or CSV.
//! Callers give headers and cells already formatted; JSON output is theirs to serialize.

use std::ops::Range;

/// Why a report could not be rendered: as a table here, or as JSON by its caller.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("a JSON report is serialized by its caller")]
    Json,
    /// The caller's JSON.
    #[error("{0}")]
    Serialize(#[from] serde_json::Error),
    #[error("{0}")]
    Csv(#[from] csv::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Utf8(#[from] std::string::FromUtf8Error),
}

/// How a report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Markdown,
    Csv,
    Json,
}

/// Renders `rows` under `headers` in `format` (not JSON). The columns in `numbers` are
/// right-aligned, the others (text) left-aligned.
pub fn render(
    headers: &[&str],
    rows: &[Vec<String>],
    numbers: Range<usize>,
    format: Format,
) -> Result<String, TableError> {
    Ok(match format {
        Format::Json => return Err(TableError::Json),
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(Vec::new());
            writer.write_record(headers)?;
            for cells in rows {
                writer.write_record(cells)?;
            }
            // The flush error, which the wrapper shows as its own text.
            String::from_utf8(writer.into_inner().map_err(|e| e.into_error())?)?
        }
        Format::Markdown => {
            let mut out = format!("| {} |\n", headers.join(" | "));
            out += &format!(
                "|{}\n",
                (0..headers.len())
                    .map(|i| if numbers.contains(&i) {
                        "---:|"
                    } else {
                        "---|"
                    })
                    .collect::<String>()
            );
            for cells in rows {
                out += &format!("| {} |\n", cells.join(" | "));
            }
            out
        }
        Format::Table => {
            let widths: Vec<usize> = (0..headers.len())
                .map(|i| {
                    rows.iter()
                        .map(|c| c[i].chars().count())
                        .chain([headers[i].len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |cells: Vec<&str>| {
                cells
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        if numbers.contains(&i) {
                            format!("{c:>w$}", w = widths[i])
                        } else {
                            format!("{c:<w$}", w = widths[i])
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_string()
                    + "\n"
            };
            let mut out = line(headers.to_vec());
            for cells in rows {
                out += &line(cells.iter().map(String::as_str).collect());
            }
            out
        }
    })
}
