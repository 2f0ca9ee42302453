//! The reading stages. A blocking thread reads the job file and takes this run's records
//! ([`reader`], choosing by [`Selector`]); [`super::resolve`] fetches the media they name by
//! URL, several records at once; a second blocking thread prepares them and (for Cohere
//! Embed) packs them into batches ([`preparer`], [`Batcher`]), then hands them to the pool as
//! tasks. Records that cannot be sent go straight to the results as error lines. This file
//! starts the stages and joins them: a stage that panicked is an error naming it. [`Feed`]
//! is the same reading and preparing in the caller's thread, for `--dry-run`.

mod batcher;
mod preparer;
mod reader;
mod selector;

pub use batcher::Batcher;
pub use selector::Selector;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::RunError;
use super::resolve::{self, Resolved};
use crate::fetch::RemoteMedia;
use crate::job::media::MediaLoader;
use crate::job::prepare::prepare;
use crate::job::{JobError, Record, Records};
use crate::store::state::RecordSet;
use crate::vocab::RequestSettings;
use crate::vocab::{FilesRead, InvalidRecord, Prepared, Shard, Task};

/// What the feed produces for each record.
#[derive(Debug)]
pub enum Fed {
    /// Boxed: a prepared record is several times the size of an invalid one.
    Ready(Box<Prepared>),
    Invalid(InvalidRecord),
}

/// Prepared records, one per record the [`Selector`] takes (`--dry-run` and tests: the
/// run itself fetches URL media between selecting and preparing, see [`spawn`]).
pub struct Feed {
    selector: Selector,
    settings: RequestSettings,
    /// Reads the records' images and documents.
    pub media: MediaLoader,
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
    media: MediaLoader,
    remote: Arc<RemoteMedia>,
    tasks: mpsc::Sender<Task>,
    invalid: mpsc::Sender<InvalidRecord>,
) -> JoinHandle<Result<FilesRead, RunError>> {
    let (selected_tx, selected_rx) = mpsc::channel::<Record>(STAGE_QUEUE);
    let (resolved_tx, resolved_rx) = mpsc::channel::<Resolved>(STAGE_QUEUE);
    let reading = reader::spawn(
        records,
        selection,
        settings.id_field.clone(),
        selected_tx,
        invalid.clone(),
    );
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
    let preparing = preparer::spawn(resolved_rx, settings, media, tasks, invalid);
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
    use crate::job::{Record, Records};
    use crate::vocab::Mode;
    use crate::vocab::RequestSettings;
    use serde_json::Value;

    pub(super) fn settings(model: &str, mode: Mode, batch_size: usize) -> RequestSettings {
        RequestSettings {
            batch_size,
            ..RequestSettings::plain(model, mode, "{text}").unwrap()
        }
    }

    pub(super) fn records(values: Vec<Value>) -> Records {
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
}
