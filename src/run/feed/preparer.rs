//! The preparer stage: a blocking thread that takes each record with the bodies of the URLs
//! it names, prepares it (its images and documents read and checked, see
//! [`crate::job::prepare`]) and packs it into tasks for the pool ([`Batcher`]); a record
//! that cannot be sent goes to the results as an error line. It stops early when either
//! receiver is gone, and returns how many media files were read.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Batcher;
use crate::job::media::MediaLoader;
use crate::job::prepare::prepare;
use crate::run::resolve::Resolved;
use crate::vocab::RequestSettings;
use crate::vocab::{FilesRead, InvalidRecord, Task};

/// Starts the preparer: records come from `resolved`, tasks go to `tasks` and records that
/// cannot be sent to `invalid`.
pub(super) fn spawn(
    mut resolved: mpsc::Receiver<Resolved>,
    settings: RequestSettings,
    mut media: MediaLoader,
    tasks: mpsc::Sender<Task>,
    invalid: mpsc::Sender<InvalidRecord>,
) -> JoinHandle<FilesRead> {
    tokio::task::spawn_blocking(move || {
        let mut batcher = Batcher::new(&settings);
        let mut n = 0;
        while let Some(Resolved { record, bodies }) = resolved.blocking_recv() {
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
    })
}
