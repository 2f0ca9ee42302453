//! Reading what the page shows from the run directories: summary.json (as the table
//! report reads it), the timeline (events.jsonl) when the run has one, and a few failed
//! records per error kind from results.jsonl, streamed line by line and left as soon as
//! every kind has its examples (the file can hold millions of lines).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ErrorExample, RunPage};
use crate::report::runs::{self, RunsError};
use crate::vocab::RESULTS_FILE;
use crate::watch::events::{TIMELINE_FILE, read_timeline};

/// Examples shown per error kind.
pub const EXAMPLES_PER_KIND: usize = 3;

/// Messages longer than this are cut: a model's whole answer can sit in one.
const MESSAGE_CHARS: usize = 300;

/// The pages of `dirs` last written on or after `since`, and a warning for each directory
/// left out. An error only when none is left.
pub fn read(
    dirs: &[PathBuf],
    since: Option<u64>,
) -> Result<(Vec<RunPage>, Vec<String>), RunsError> {
    let (summaries, mut warnings) = runs::read_runs(dirs)?;
    let mut pages = Vec::new();
    for run in summaries {
        if since.is_some_and(|since| run.summary.finished_unix < since) {
            warnings.push(format!(
                "leaving out {}: last written before --since",
                run.dir.display()
            ));
            continue;
        }
        let mut page = RunPage::new(&run.dir.display().to_string(), run.summary);
        let timeline = run.dir.join(TIMELINE_FILE);
        match read_timeline(&timeline) {
            Ok((events, skipped)) => {
                page = page.with_events(&events);
                if skipped > 0 {
                    page.timeline_note = Some(format!(
                        "{skipped} line(s) of {} could not be read (cut by a crash, or from a \
                         newer version) and are left out.",
                        timeline.display()
                    ));
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                page.timeline_note = Some(
                    "The run predates events.jsonl (runs keep their timeline since \
                     version 0.1.0 of Dec 2026)."
                        .to_string(),
                );
            }
            Err(err) => {
                warnings.push(format!("cannot read {}: {err}", timeline.display()));
                page.timeline_note =
                    Some(format!("{} could not be read: {err}", timeline.display()));
            }
        }
        if !page.summary.errors_by_kind.is_empty() {
            match examples(&run.dir.join(RESULTS_FILE), &page.summary.errors_by_kind) {
                Ok(found) => page.examples = found,
                Err(err) => warnings.push(format!(
                    "no error examples for {}: cannot read {RESULTS_FILE}: {err}",
                    run.dir.display()
                )),
            }
        }
        pages.push(page);
    }
    if pages.is_empty() {
        return Err(RunsError::NoRun { skipped: warnings });
    }
    Ok((pages, warnings))
}

/// What an error line says of itself.
#[derive(Deserialize)]
struct ErrorLine {
    #[serde(default)]
    id: serde_json::Value,
    #[serde(default)]
    record: Option<u64>,
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct ErrorBody {
    kind: String,
    #[serde(default)]
    message: String,
}

/// Up to [`EXAMPLES_PER_KIND`] failed records of each kind in the results file at `path`,
/// reading until each kind of `counts` (summary.json's `errors_by_kind`) has as many as it
/// can have (or the file ends).
pub fn examples(
    path: &Path,
    counts: &BTreeMap<String, u64>,
) -> std::io::Result<BTreeMap<String, Vec<ErrorExample>>> {
    let file = std::fs::File::open(path)?;
    examples_in(std::io::BufReader::new(file), counts)
}

fn examples_in(
    mut reader: impl BufRead,
    counts: &BTreeMap<String, u64>,
) -> std::io::Result<BTreeMap<String, Vec<ErrorExample>>> {
    let mut found: BTreeMap<String, Vec<ErrorExample>> = BTreeMap::new();
    let full = |found: &BTreeMap<String, Vec<ErrorExample>>| {
        counts.iter().all(|(kind, n)| {
            let want = (*n).min(EXAMPLES_PER_KIND as u64) as usize;
            found.get(kind).map_or(0, Vec::len) >= want
        })
    };
    let mut line = String::new();
    while !full(&found) {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        // Only error lines are parsed: ok lines (most of them, and the long ones) are
        // passed over on a byte search.
        if memchr::memmem::find(line.as_bytes(), b"\"status\":\"error\"").is_none() {
            continue;
        }
        let Ok(ErrorLine {
            id,
            record,
            error: Some(error),
        }) = serde_json::from_str::<ErrorLine>(&line)
        else {
            continue;
        };
        let examples = found.entry(error.kind).or_default();
        if examples.len() < EXAMPLES_PER_KIND {
            let id = match id {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            let mut message: String = error.message.chars().take(MESSAGE_CHARS).collect();
            if message.len() < error.message.len() {
                message.push('…');
            }
            examples.push(ErrorExample {
                id,
                record,
                message,
            });
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_are_a_few_per_kind_and_reading_stops_once_every_kind_has_them() {
        let mut text = String::new();
        text += "{\"id\":\"ok1\",\"record\":1,\"status\":\"ok\",\"output\":\"fine\"}\n";
        for i in 2..8 {
            text += &format!(
                "{{\"id\":\"r{i}\",\"record\":{i},\"status\":\"error\",\"error\":{{\"kind\":\"validation\",\"message\":\"bad {i}\"}}}}\n"
            );
        }
        text += "{\"id\":9,\"record\":9,\"status\":\"error\",\"error\":{\"kind\":\"throttled\",\"message\":\"x\"}}\n";
        // Reading past the line that completes the last kind fails.
        struct Unreadable;
        impl std::io::Read for Unreadable {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("read past the examples"))
            }
        }
        let stops = std::io::BufReader::new(std::io::Read::chain(text.as_bytes(), Unreadable));
        let counts: BTreeMap<String, u64> =
            [("validation".to_string(), 6), ("throttled".to_string(), 1)].into();
        let found = examples_in(stops, &counts).unwrap();
        let ids: Vec<&str> = found["validation"].iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["r2", "r3", "r4"]);
        assert_eq!(found["validation"][0].record, Some(2));
        assert_eq!(found["throttled"][0].id, "9");
        // A kind the file lacks (lines replaced since) reads to the end.
        let more: BTreeMap<String, u64> = [("schema_mismatch".to_string(), 1)].into();
        let past = std::io::BufReader::new(std::io::Read::chain(text.as_bytes(), Unreadable));
        assert!(examples_in(past, &more).is_err());
    }
}
