//! CSV job files: a header row names the columns, each later row is one record whose
//! fields are strings. Quoted newlines, CRLF endings and a UTF-8 byte-order mark work; a row
//! with the wrong number of fields or bytes that are not UTF-8 becomes an invalid record.

use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{JobError, Record};
use crate::vocab::InvalidRecord;

/// Counts the lines before each record. The csv crate's own line numbers lag by one in CRLF
/// files (a record's position is taken at the `\n` of the terminator before it), so lines
/// are counted here from the bytes themselves.
struct LineCounter<R> {
    inner: R,
    offset: u64,
    /// Offsets of newlines read ahead of the records handed out so far.
    newlines: VecDeque<u64>,
    /// Newlines before the first entry of `newlines`.
    before: u64,
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for at in memchr::memchr_iter(b'\n', &buf[..n]) {
            self.newlines.push_back(self.offset + at as u64);
        }
        self.offset += n as u64;
        Ok(n)
    }
}

impl<R> LineCounter<R> {
    /// The 1-based line of a record whose position is byte `start`.
    fn line_at(&mut self, start: u64) -> u64 {
        while self.newlines.front().is_some_and(|at| *at < start) {
            self.newlines.pop_front();
            self.before += 1;
        }
        if self.newlines.front() == Some(&start) {
            // The position is the `\n` of a CRLF: the record starts on the next line.
            self.before + 2
        } else {
            self.before + 1
        }
    }
}

/// The one place CSV writers are configured (for `export`).
pub fn writer<W: std::io::Write>(output: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(output)
}

/// The one place CSV readers are configured.
fn reader<R: Read>(input: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(input)
}

pub struct CsvRecords<R> {
    reader: csv::Reader<LineCounter<R>>,
    path: PathBuf,
    headers: Vec<String>,
    row: csv::ByteRecord,
    number: u64,
    failed: bool,
}

impl<R: Read> CsvRecords<R> {
    /// The column names, in file order.
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    pub fn new(input: R, path: &Path) -> Result<Self, JobError> {
        let mut reader = reader(LineCounter {
            inner: input,
            offset: 0,
            newlines: VecDeque::new(),
            before: 0,
        });
        let raw = reader.byte_headers().map_err(|err| JobError::BadHeader {
            path: path.to_path_buf(),
            message: err.to_string(),
        })?;
        if raw.is_empty() {
            return Err(JobError::NoHeader {
                path: path.to_path_buf(),
            });
        }
        let mut headers = Vec::with_capacity(raw.len());
        for (i, name) in raw.iter().enumerate() {
            let name = std::str::from_utf8(name).map_err(|_| JobError::BadHeader {
                path: path.to_path_buf(),
                message: format!("column {} of the header row is not valid UTF-8", i + 1),
            })?;
            let name = name.trim().to_string();
            if headers.contains(&name) {
                return Err(JobError::BadHeader {
                    path: path.to_path_buf(),
                    message: format!("column name {name:?} appears twice"),
                });
            }
            headers.push(name);
        }
        Ok(CsvRecords {
            reader,
            path: path.to_path_buf(),
            headers,
            row: csv::ByteRecord::new(),
            number: 0,
            failed: false,
        })
    }

    fn convert(&self, number: u64, line: u64) -> Result<Record, InvalidRecord> {
        let invalid = |kind, message| InvalidRecord {
            number,
            line,
            id: None,
            kind,
            message,
        };
        if self.row.len() != self.headers.len() {
            return Err(invalid(
                "ragged_row",
                format!(
                    "line {line} has {} fields but the header row has {} columns",
                    self.row.len(),
                    self.headers.len()
                ),
            ));
        }
        let mut fields = Map::with_capacity(self.headers.len());
        for (name, bytes) in self.headers.iter().zip(self.row.iter()) {
            let value = std::str::from_utf8(bytes).map_err(|err| {
                invalid(
                    "invalid_utf8",
                    format!("line {line}, column {name:?} is not valid UTF-8 ({err})"),
                )
            })?;
            fields.insert(name.clone(), Value::String(value.to_string()));
        }
        Ok(Record {
            number,
            line,
            fields,
        })
    }
}

impl<R: Read> Iterator for CsvRecords<R> {
    type Item = Result<Result<Record, InvalidRecord>, JobError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let mut row = std::mem::take(&mut self.row);
        let read = self.reader.read_byte_record(&mut row);
        self.row = row;
        match read {
            Ok(false) => None,
            Ok(true) => {
                self.number += 1;
                let start = self.row.position().map_or(0, |p| p.byte());
                let line = self.reader.get_mut().line_at(start);
                Some(Ok(self.convert(self.number, line)))
            }
            Err(err) => {
                self.failed = true;
                Some(Err(JobError::Read {
                    path: self.path.clone(),
                    source: std::io::Error::other(err),
                }))
            }
        }
    }
}

/// Counts data rows.
pub fn count<R: Read>(input: R, path: &Path) -> Result<u64, JobError> {
    let mut reader = reader(input);
    let mut row = csv::ByteRecord::new();
    let mut rows = 0;
    loop {
        match reader.read_byte_record(&mut row) {
            Ok(true) => rows += 1,
            Ok(false) => return Ok(rows),
            Err(err) => {
                return Err(JobError::Read {
                    path: path.to_path_buf(),
                    source: std::io::Error::other(err),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_quoted_newlines_bom_and_crlf() {
        let input: &[u8] =
            b"\xEF\xBB\xBFid,text\r\n1,\"two\r\nlines\"\r\n2,plain\r\n3,a,extra\r\n4,\"\xff\"\r\n";
        let records: Vec<_> = CsvRecords::new(input, Path::new("t.csv"))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(records.len(), 4);
        let first = records[0].as_ref().unwrap();
        assert_eq!(first.fields["id"], "1");
        assert_eq!(first.fields["text"], "two\r\nlines");
        assert_eq!(first.line, 2);
        let second = records[1].as_ref().unwrap();
        assert_eq!((second.number, second.line), (2, 4));
        let ragged = records[2].as_ref().unwrap_err();
        assert_eq!((ragged.kind, ragged.line), ("ragged_row", 5));
        assert!(ragged.message.contains("3 fields but the header row has 2"));
        assert_eq!(records[3].as_ref().unwrap_err().kind, "invalid_utf8");
        assert_eq!(count(input, Path::new("t.csv")).unwrap(), 4);
    }

    #[test]
    fn line_numbers_with_lf_and_crlf() {
        for (input, expected) in [
            (&b"a,b\n1,2\n3,\"x\ny\"\n5,6\n"[..], vec![2, 3, 5]),
            (
                &b"a,b\r\n1,2\r\n3,\"x\r\ny\"\r\n5,\"\"\"q\"\"\"\r\n"[..],
                vec![2, 3, 5],
            ),
        ] {
            let lines: Vec<u64> = CsvRecords::new(input, Path::new("l.csv"))
                .unwrap()
                .map(|r| r.unwrap().unwrap().line)
                .collect();
            assert_eq!(lines, expected);
        }
    }

    #[test]
    fn header_problems_are_file_errors() {
        assert!(matches!(
            CsvRecords::new(&b""[..], Path::new("e.csv")),
            Err(JobError::NoHeader { .. })
        ));
        assert!(matches!(
            CsvRecords::new(&b"a,a\n1,2\n"[..], Path::new("d.csv")),
            Err(JobError::BadHeader { .. })
        ));
    }
}
