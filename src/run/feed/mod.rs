//! The reading stages. A blocking thread reads the job file, takes this run's records
//! (`--limit`, `--shard`, not done before) and checks their ids for duplicates, in file
//! order; [`super::resolve`] fetches the media they name by URL, several records at once;
//! a second blocking thread prepares them and (for Cohere Embed) packs them into batches,
//! then hands them to the pool as tasks. Records that cannot be sent go straight to the
//! results as error lines.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use serde_json::Value;
use xxhash_rust::xxh3::xxh3_64;

use super::RunError;
use super::resolve::{self, Resolved};
use crate::fetch::RemoteMedia;
use crate::job::media::MediaLoader;
use crate::job::prepare::RequestSettings;
use crate::job::prepare::{prepare, record_id};
use crate::job::{JobError, Record, Records};
use crate::rules::model_id::Family;
use crate::store::state::RecordSet;
use crate::vocab::FilesRead;
use crate::vocab::InvalidRecord;
use crate::vocab::Mode;
use crate::vocab::Prepared;
use crate::vocab::{Shard, Task};

/// What the feed produces for each record.
#[derive(Debug)]
pub enum Fed {
    /// Boxed: a prepared record is several times the size of an invalid one.
    Ready(Box<Prepared>),
    Invalid(InvalidRecord),
}

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

/// Prepared records, one per record the [`Selector`] takes (`--dry-run` and tests: the
/// run itself fetches URL media between selecting and preparing, see [`spawn`]).
pub struct Feed {
    selector: Selector,
    settings: RequestSettings,
    /// Reads the records' images and documents.
    pub media: MediaLoader,
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

impl Feed {
    pub fn new(
        records: Records,
        settings: RequestSettings,
        limit: Option<u64>,
        skip: RecordSet,
        media: MediaLoader,
    ) -> Feed {
        Feed {
            selector: Selector::new(records, limit, skip).with_id_field(settings.id_field.clone()),
            settings,
            media,
        }
    }

    /// Takes only `shard`'s records (all when `None`).
    pub fn in_shard(mut self, shard: Option<Shard>) -> Feed {
        self.selector = self.selector.in_shard(shard);
        self
    }
}

impl Iterator for Feed {
    type Item = Result<Fed, JobError>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.selector.next()?.map(|selected| match selected {
            Ok(record) => match prepare(&record, &self.settings, &mut self.media) {
                Ok(prepared) => Fed::Ready(Box::new(prepared)),
                Err(invalid) => Fed::Invalid(invalid),
            },
            Err(invalid) => Fed::Invalid(invalid),
        }))
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

/// Packs prepared records into tasks: Cohere Embed records of one model share a call, up to
/// `batch_size`; everything else is one record a call.
pub struct Batcher {
    batch_size: usize,
    pending: Vec<Prepared>,
}

impl Batcher {
    pub fn new(settings: &RequestSettings) -> Batcher {
        let batch_size = if settings.mode == Mode::Embed {
            settings.batch_size
        } else {
            1
        };
        Batcher {
            batch_size,
            pending: Vec::new(),
        }
    }

    /// Adds a record; returns the tasks now ready (zero, one, or two when the model or the
    /// tier changed).
    pub fn push(&mut self, prepared: Prepared) -> Vec<Task> {
        let batched =
            self.batch_size > 1 && Family::of(&prepared.model) == Some(Family::CohereEmbed);
        if !batched {
            let mut ready = self.flush();
            ready.push(Task {
                model: prepared.model.clone(),
                service_tier: prepared.service_tier,
                records: vec![prepared],
            });
            return ready;
        }
        let mut ready = Vec::new();
        if self
            .pending
            .first()
            .is_some_and(|p| p.model != prepared.model || p.service_tier != prepared.service_tier)
        {
            ready.extend(self.flush());
        }
        self.pending.push(prepared);
        if self.pending.len() >= self.batch_size {
            ready.extend(self.flush());
        }
        ready
    }

    /// The partial batch, if any.
    pub fn flush(&mut self) -> Vec<Task> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let records = std::mem::take(&mut self.pending);
        vec![Task {
            model: records[0].model.clone(),
            service_tier: records[0].service_tier,
            records,
        }]
    }
}

/// Which records of the job file a run sends.
pub struct Selection {
    /// Only the first N records (`--limit`).
    pub limit: Option<u64>,
    /// Only this shard's records (`--shard`).
    pub shard: Option<Shard>,
    /// Not the records done in an earlier run.
    pub done: RecordSet,
}

/// Records waiting between two stages.
const STAGE_QUEUE: usize = 256;

/// Runs the reading stages: tasks go to `tasks`, records that cannot be sent to `invalid`.
/// They stop early when either receiver is gone (the run stopped), and return how many
/// media files were read and URLs fetched. A stage that panicked is an error naming it,
/// never a short read: the run must not end looking complete with records missing.
pub fn spawn(
    records: Records,
    settings: RequestSettings,
    selection: Selection,
    mut media: MediaLoader,
    remote: Arc<RemoteMedia>,
    tasks: mpsc::Sender<Task>,
    invalid: mpsc::Sender<InvalidRecord>,
) -> JoinHandle<Result<FilesRead, RunError>> {
    let (selected_tx, selected_rx) = mpsc::channel::<Record>(STAGE_QUEUE);
    let (resolved_tx, mut resolved_rx) = mpsc::channel::<Resolved>(STAGE_QUEUE);
    let invalid_of_reading = invalid.clone();
    let id_field = settings.id_field.clone();
    let reading = tokio::task::spawn_blocking(move || -> Result<(), JobError> {
        let Selection { limit, shard, done } = selection;
        let selector = Selector::new(records, limit, done)
            .in_shard(shard)
            .with_id_field(id_field);
        for (n, selected) in (1..).zip(selector) {
            crate::engine::test_panic("reader", n);
            let sent = match selected? {
                Ok(record) => selected_tx.blocking_send(record).is_ok(),
                Err(record) => invalid_of_reading.blocking_send(record).is_ok(),
            };
            if !sent {
                break;
            }
        }
        Ok(())
    });
    let fields = [
        settings.image_field.clone(),
        settings.document_field.clone(),
    ];
    let resolving = tokio::spawn(resolve::resolve(
        selected_rx,
        resolved_tx,
        remote.clone(),
        fields,
    ));
    let preparing = tokio::task::spawn_blocking(move || {
        let mut batcher = Batcher::new(&settings);
        let mut n = 0;
        while let Some(Resolved { record, bodies }) = resolved_rx.blocking_recv() {
            n += 1;
            crate::engine::test_panic("preparer", n);
            media.set_fetched(bodies);
            let sent = match prepare(&record, &settings, &mut media) {
                Ok(prepared) => batcher
                    .push(prepared)
                    .into_iter()
                    .all(|task| tasks.blocking_send(task).is_ok()),
                Err(record) => invalid.blocking_send(record).is_ok(),
            };
            if !sent {
                return media.files_read();
            }
        }
        for task in batcher.flush() {
            let _ = tasks.blocking_send(task);
        }
        media.files_read()
    });
    tokio::spawn(async move {
        // In pipeline order: a stage that failed first makes the later ones end early.
        let read = reading.await.map_err(|err| RunError::lost("reading", err));
        let resolved = resolving
            .await
            .map_err(|err| RunError::lost("media fetching", err));
        let prepared = preparing
            .await
            .map_err(|err| RunError::lost("preparing", err));
        read??;
        resolved?;
        let mut files = prepared?;
        (files.urls_fetched, files.urls_reused) = remote.counts();
        Ok(files)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_settings;
    use crate::job::Record;
    use serde_json::json;

    fn settings(model: &str, mode: Mode, batch_size: usize) -> RequestSettings {
        RequestSettings {
            batch_size,
            ..test_settings(model, mode, "{text}")
        }
    }

    fn records(values: Vec<Value>) -> Records {
        let items: Vec<_> = values
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                Ok(Ok(Record {
                    number: i as u64 + 1,
                    line: i as u64 + 1,
                    fields: v.as_object().unwrap().clone(),
                }))
            })
            .collect();
        Box::new(items.into_iter())
    }

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

    #[test]
    fn cohere_records_are_batched_per_model() {
        let s = settings("cohere.embed-english-v3", Mode::Embed, 2);
        let mut batcher = Batcher::new(&s);
        let feed = Feed::new(
            records(vec![
                json!({"text": "1"}),
                json!({"text": "2"}),
                json!({"text": "3"}),
                json!({"text": "4", "model": "cohere.embed-multilingual-v3"}),
            ]),
            s,
            None,
            RecordSet::default(),
            MediaLoader::new(std::path::Path::new("job.jsonl")),
        );
        let mut tasks = Vec::new();
        for fed in feed {
            let Fed::Ready(p) = fed.unwrap() else {
                panic!()
            };
            tasks.extend(batcher.push(*p));
        }
        tasks.extend(batcher.flush());
        let sizes: Vec<(String, usize)> = tasks
            .iter()
            .map(|t| (t.model.clone(), t.records.len()))
            .collect();
        assert_eq!(
            sizes,
            vec![
                ("cohere.embed-english-v3".to_string(), 2),
                ("cohere.embed-english-v3".to_string(), 1),
                ("cohere.embed-multilingual-v3".to_string(), 1)
            ]
        );
    }

    #[test]
    fn titan_records_go_one_a_call() {
        let s = settings("amazon.titan-embed-text-v2:0", Mode::Embed, 96);
        let mut batcher = Batcher::new(&s);
        let feed = Feed::new(
            records(vec![json!({"text": "1"}), json!({"text": "2"})]),
            s,
            None,
            RecordSet::default(),
            MediaLoader::new(std::path::Path::new("job.jsonl")),
        );
        let mut tasks = Vec::new();
        for fed in feed {
            let Fed::Ready(p) = fed.unwrap() else {
                panic!()
            };
            tasks.extend(batcher.push(*p));
        }
        assert_eq!(tasks.len(), 2);
        assert!(batcher.flush().is_empty());
    }
}
