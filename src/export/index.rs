//! Record order over results.jsonl, whose lines come in completion order: one pass keeps
//! each line's record number, offset and length (24 bytes a line: 24 MB for a million),
//! sorted by record, so the write pass reads lines in record order without holding them.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::ExportError;
use super::columns::Extras;

/// Where one record's line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub record: u64,
    pub offset: u64,
    pub len: u32,
}

/// Only what the index needs of a line; the rest is skipped unparsed.
#[derive(Deserialize)]
struct Peek {
    record: u64,
    data: Option<IgnoredAny>,
    embedding: Option<IgnoredAny>,
    response: Option<IgnoredAny>,
    retrieved: Option<IgnoredAny>,
    citations: Option<IgnoredAny>,
    hit: Option<IgnoredAny>,
    cost_usd: Option<IgnoredAny>,
    service_tier: Option<IgnoredAny>,
    via: Option<IgnoredAny>,
    /// `--keep-fields`: their names become columns.
    fields: Option<std::collections::BTreeMap<String, IgnoredAny>>,
}

/// Every complete line of `path`, in record order (the last line of a record wins), and
/// what extra columns the lines need.
pub fn index(path: &Path, extras: &mut Extras) -> Result<Vec<Entry>, ExportError> {
    let read_error = |source| ExportError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut entries = Vec::new();
    let mut line = Vec::new();
    let (mut offset, mut number) = (0u64, 0u64);
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line).map_err(read_error)?;
        if read == 0 || line.last() != Some(&b'\n') {
            // The end, or a line cut short by a crash: the run rewrites it on resume.
            break;
        }
        number += 1;
        let start = offset;
        offset += read as u64;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let peek: Peek = serde_json::from_slice(&line).map_err(|err| ExportError::BadLine {
            path: path.to_path_buf(),
            line: number,
            message: err.to_string(),
        })?;
        extras.data |= peek.data.is_some();
        extras.embedding |= peek.embedding.is_some();
        extras.response |= peek.response.is_some();
        extras.retrieved |= peek.retrieved.is_some();
        extras.citations |= peek.citations.is_some();
        extras.scored |= peek.hit.is_some();
        extras.cost |= peek.cost_usd.is_some();
        extras.tier |= peek.service_tier.is_some();
        extras.batch |= peek.via.is_some();
        for name in peek
            .fields
            .into_iter()
            .flat_map(|fields| fields.into_keys())
        {
            if !extras.kept_fields.contains(&name) {
                extras.kept_fields.push(name);
            }
        }
        entries.push(Entry {
            record: peek.record,
            offset: start,
            len: u32::try_from(read).unwrap_or(u32::MAX),
        });
    }
    // Stable, so of two lines of one record the later stays last.
    entries.sort_by_key(|e| e.record);
    let mut kept: Vec<Entry> = Vec::with_capacity(entries.len());
    for entry in entries {
        match kept.last_mut() {
            Some(last) if last.record == entry.record => *last = entry,
            _ => kept.push(entry),
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn orders_by_record_and_keeps_the_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.jsonl");
        let mut file = File::create(&path).unwrap();
        let lines = [
            r#"{"record":3,"status":"ok"}"#,
            r#"{"record":1,"status":"error"}"#,
            r#"{"record":2,"status":"ok","embedding":[1]}"#,
            r#"{"record":1,"status":"ok"}"#,
        ];
        for line in lines {
            writeln!(file, "{line}").unwrap();
        }
        write!(file, r#"{{"record":4,"sta"#).unwrap();
        let mut extras = Extras::default();
        let entries = index(&path, &mut extras).unwrap();
        let records: Vec<u64> = entries.iter().map(|e| e.record).collect();
        assert_eq!(records, [1, 2, 3]);
        let first = lines[0].len() as u64 + 1;
        let second = first + lines[1].len() as u64 + 1;
        let third = second + lines[2].len() as u64 + 1;
        assert_eq!(
            entries[0].offset, third,
            "the retried line of record 1 wins"
        );
        assert_eq!(entries[1].offset, second);
        assert!(extras.embedding && !extras.response);
    }
}
