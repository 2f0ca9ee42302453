//! The reader stage: a blocking thread that reads the job file through a [`Selector`]
//! (`--limit`, `--shard`, not done before, ids checked for duplicates in file order), sends
//! this run's records on to have their media fetched, and the records that cannot be sent
//! (unreadable, a duplicate id) straight to the results. It stops early when either
//! receiver is gone (the run stopped).

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Selection, Selector};
use crate::job::{JobError, Record, Records};
use crate::vocab::InvalidRecord;

/// Starts the reader: records go to `to_resolve`, records that cannot be sent to `invalid`;
/// ids come from `id_field` (`--id-field`) when given.
pub(super) fn spawn(
    records: Records,
    selection: Selection,
    id_field: Option<String>,
    to_resolve: mpsc::Sender<Record>,
    invalid: mpsc::Sender<InvalidRecord>,
) -> JoinHandle<Result<(), JobError>> {
    tokio::task::spawn_blocking(move || -> Result<(), JobError> {
        let Selection { limit, shard, done } = selection;
        let selector = Selector::new(records, limit, done)
            .in_shard(shard)
            .with_id_field(id_field);
        for (n, selected) in (1..).zip(selector) {
            crate::engine::test_panic("reader", n);
            let sent = match selected? {
                Ok(record) => to_resolve.blocking_send(record).is_ok(),
                Err(record) => invalid.blocking_send(record).is_ok(),
            };
            if !sent {
                break;
            }
        }
        Ok(())
    })
}
