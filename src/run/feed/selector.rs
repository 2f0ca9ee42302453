//! Which records of the job file a run takes, in file order: the first `--limit`, this
//! `--shard`'s, not the ones done in an earlier run (read, so their ids still count), and
//! never a second record with an id already used (it becomes an error line). Ids are kept as
//! 8-byte hashes, so a million of them cost about 20 MB.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use serde_json::Value;
use xxhash_rust::xxh3::xxh3_64;

use crate::job::prepare::record_id;
use crate::job::{JobError, Record, Records};
use crate::store::state::RecordSet;
use crate::vocab::{InvalidRecord, Shard};

/// The run's records of the job file, in file order, with duplicate ids reported.
pub struct Selector {
    records: Records,
    limit: Option<u64>,
    /// Records already done in an earlier run: read (their ids count) but not sent.
    skip: RecordSet,
    /// Only this shard's records are taken.
    shard: Option<Shard>,
    seen: u64,
    /// Hash of each id seen: 8 bytes an id, so a million ids cost about 20 MB.
    ids: HashSet<u64, BuildHasherDefault<PassThrough>>,
    /// `--id-field`.
    id_field: Option<String>,
}

/// The keys are already xxh3 hashes: use them as they are.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn id_key(id: &Value) -> u64 {
    match id {
        Value::String(s) => xxh3_64(s.as_bytes()),
        other => xxh3_64(other.to_string().as_bytes()),
    }
}

impl Selector {
    pub fn new(records: Records, limit: Option<u64>, skip: RecordSet) -> Selector {
        Selector {
            records,
            limit,
            skip,
            shard: None,
            seen: 0,
            ids: HashSet::default(),
            id_field: None,
        }
    }

    /// Ids come from `id_field` (`--id-field`) when given.
    pub fn with_id_field(mut self, id_field: Option<String>) -> Selector {
        self.id_field = id_field;
        self
    }

    /// Takes only `shard`'s records (all when `None`).
    pub fn in_shard(mut self, shard: Option<Shard>) -> Selector {
        self.shard = shard;
        self
    }
}

impl Iterator for Selector {
    /// A record to prepare, or one that cannot be sent (unreadable, or a duplicate id).
    type Item = Result<Result<Record, InvalidRecord>, JobError>;

    fn next(&mut self) -> Option<Self::Item> {
        let record = loop {
            if self.limit.is_some_and(|limit| self.seen >= limit) {
                return None;
            }
            let record = match self.records.next()? {
                Ok(record) => record,
                Err(err) => return Some(Err(err)),
            };
            self.seen += 1;
            let number = match &record {
                Ok(record) => record.number,
                Err(invalid) => invalid.number,
            };
            if self.shard.is_some_and(|shard| !shard.contains(number)) {
                // Another machine's record: not even prepared.
                continue;
            }
            if !self.skip.contains(number) {
                break record;
            }
            if let Ok(record) = &record {
                self.ids
                    .insert(id_key(&record_id(record, self.id_field.as_deref())));
            }
        };
        // Ids are checked here, in file order, before the stages that may reorder records.
        // A duplicate is not prepared (nor its media fetched): it is not sent anyway.
        let selected = match record {
            Ok(record) => {
                let id = record_id(&record, self.id_field.as_deref());
                if self.ids.insert(id_key(&id)) {
                    Ok(record)
                } else {
                    let line = record.line;
                    Err(InvalidRecord {
                        number: record.number,
                        line,
                        id: Some(id.clone()),
                        kind: "duplicate_id",
                        message: format!(
                            "line {line}: id {id} was already used by an earlier record; this record was not sent (ids must be unique so results join back to the input)"
                        ),
                    })
                }
            }
            Err(invalid) => {
                if let Some(id) = &invalid.id {
                    self.ids.insert(id_key(id));
                }
                Err(invalid)
            }
        };
        Some(Ok(selected))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{records, settings};
    use super::super::{Fed, Feed};
    use crate::job::media::MediaLoader;
    use crate::store::state::RecordSet;
    use crate::vocab::Mode;
    use serde_json::json;

    #[test]
    fn duplicate_ids_are_reported_and_limit_applies() {
        let feed = Feed::new(
            records(vec![
                json!({"id": "a", "text": "1"}),
                json!({"id": "b", "text": "2"}),
                json!({"id": "a", "text": "3"}),
                json!({"id": "c", "text": "4"}),
            ]),
            settings("anthropic.claude-3-haiku-20240307-v1:0", Mode::Converse, 1),
            Some(3),
            RecordSet::default(),
            MediaLoader::new(std::path::Path::new("job.jsonl")),
        );
        let fed: Vec<Fed> = feed.map(|f| f.unwrap()).collect();
        assert_eq!(fed.len(), 3);
        let Fed::Invalid(dup) = &fed[2] else {
            panic!("duplicate expected")
        };
        assert_eq!(dup.kind, "duplicate_id");
        assert!(
            dup.message.contains("already used by an earlier record"),
            "{}",
            dup.message
        );
    }

    #[test]
    fn done_records_are_skipped_but_their_ids_still_count() {
        let feed = Feed::new(
            records(vec![
                json!({"id": "a", "text": "1"}),
                json!({"id": "b", "text": "2"}),
                json!({"id": "a", "text": "3"}),
            ]),
            settings("anthropic.claude-3-haiku-20240307-v1:0", Mode::Converse, 1),
            None,
            RecordSet::from_ranges(&[[1, 1]]),
            MediaLoader::new(std::path::Path::new("job.jsonl")),
        );
        let fed: Vec<Fed> = feed.map(|f| f.unwrap()).collect();
        assert_eq!(fed.len(), 2);
        assert!(matches!(&fed[0], Fed::Ready(p) if p.meta.id == "b"));
        assert!(matches!(&fed[1], Fed::Invalid(i) if i.kind == "duplicate_id"));
    }
}
