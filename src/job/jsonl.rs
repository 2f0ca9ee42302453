//! JSONL job files: one JSON object a line. Blank lines are skipped; CRLF endings and a
//! UTF-8 byte-order mark are accepted.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{JobError, Record};
use crate::vocab::InvalidRecord;

pub struct JsonlRecords<R> {
    reader: R,
    path: PathBuf,
    buffer: Vec<u8>,
    line: u64,
    number: u64,
    failed: bool,
}

impl<R: BufRead> JsonlRecords<R> {
    pub fn new(reader: R, path: &Path) -> Self {
        JsonlRecords {
            reader,
            path: path.to_path_buf(),
            buffer: Vec::with_capacity(4096),
            line: 0,
            number: 0,
            failed: false,
        }
    }
}

fn trim(mut bytes: &[u8], first_line: bool) -> &[u8] {
    if first_line {
        bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    }
    bytes.trim_ascii()
}

impl<R: BufRead> Iterator for JsonlRecords<R> {
    type Item = Result<Result<Record, InvalidRecord>, JobError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            self.buffer.clear();
            match self.reader.read_until(b'\n', &mut self.buffer) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(source) => {
                    self.failed = true;
                    return Some(Err(JobError::Read {
                        path: self.path.clone(),
                        source,
                    }));
                }
            }
            self.line += 1;
            let bytes = trim(&self.buffer, self.line == 1);
            if bytes.is_empty() {
                continue;
            }
            self.number += 1;
            let (number, line) = (self.number, self.line);
            let invalid = |kind, message| InvalidRecord {
                number,
                line,
                id: None,
                kind,
                message,
            };
            let text = match std::str::from_utf8(bytes) {
                Ok(text) => text,
                Err(err) => {
                    return Some(Ok(Err(invalid(
                        "invalid_utf8",
                        format!("line {line} is not valid UTF-8 ({err})"),
                    ))));
                }
            };
            let record = match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(fields)) => Ok(Record {
                    number,
                    line,
                    fields,
                }),
                Ok(other) => Err(invalid(
                    "invalid_record",
                    format!(
                        "line {line} is a JSON {}, not an object: each line of a JSONL job file is one object such as {{\"id\": \"a1\", \"text\": \"...\"}}",
                        kind_of(&other)
                    ),
                )),
                Err(err) => Err(invalid(
                    "invalid_json",
                    format!("line {line} is not valid JSON: {err}"),
                )),
            };
            return Some(Ok(record));
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Counts non-blank lines.
pub fn count<R: BufRead>(mut reader: R, path: &Path) -> Result<u64, JobError> {
    let mut buffer = Vec::with_capacity(4096);
    let mut records = 0;
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer) {
            Ok(0) => return Ok(records),
            Ok(_) => {
                if !buffer.trim_ascii().is_empty() && buffer != b"\xEF\xBB\xBF\n" {
                    records += 1;
                }
            }
            Err(source) => {
                return Err(JobError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &[u8]) -> Vec<Result<Record, InvalidRecord>> {
        JsonlRecords::new(input, Path::new("job.jsonl"))
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn reads_objects_and_reports_bad_lines() {
        let input = b"\xEF\xBB\xBF{\"id\": 1, \"text\": \"a\"}\r\n\n{bad json\n[1,2]\n{\"text\": \"\xff\"}\n{\"text\": \"z\"}";
        let records = read(input);
        assert_eq!(records.len(), 5);
        let first = records[0].as_ref().unwrap();
        assert_eq!((first.number, first.line), (1, 1));
        assert_eq!(first.fields["text"], "a");
        let bad = records[1].as_ref().unwrap_err();
        assert_eq!((bad.kind, bad.number, bad.line), ("invalid_json", 2, 3));
        assert!(bad.message.starts_with("line 3 is not valid JSON"));
        assert_eq!(records[2].as_ref().unwrap_err().kind, "invalid_record");
        assert!(
            records[2]
                .as_ref()
                .unwrap_err()
                .message
                .contains("JSON array")
        );
        assert_eq!(records[3].as_ref().unwrap_err().kind, "invalid_utf8");
        let last = records[4].as_ref().unwrap();
        assert_eq!((last.number, last.line), (5, 6));
    }

    #[test]
    fn counts_non_blank_lines() {
        let input: &[u8] = b"{}\n\n  \n{}\r\n{}";
        assert_eq!(count(input, Path::new("x")).unwrap(), 3);
    }
}
