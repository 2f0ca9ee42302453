//! The stage between reading and preparing that fetches the media records name by URL.
//! Records without URLs pass straight through; the others wait here for their bodies, up
//! to a bounded number of records at a time, while [`RemoteMedia`] keeps at most
//! `--fetch-concurrency` fetches in flight. A record leaves as soon as its own bodies are
//! in, so a slow URL holds back only the records that name it. Failures travel with the
//! record: preparing it turns them into its error line.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::mpsc;

use crate::fetch::{Fetched, RemoteMedia};
use crate::job::Record;
use crate::job::media::remote_urls;

/// Records waiting for their media at once, per fetch allowed in flight: enough to keep
/// every fetch busy while records naming the same URL wait together.
const RECORDS_PER_FETCH: usize = 4;

/// A record and the bodies of the URLs it names.
pub struct Resolved {
    pub record: Record,
    pub bodies: HashMap<String, Fetched>,
}

/// Moves records from `records` to `resolved`, fetching the URLs in their `fields`
/// (the image and document fields). Ends when `records` is closed and every record has
/// left, or when `resolved` is gone (the run stopped).
pub async fn resolve(
    mut records: mpsc::Receiver<Record>,
    resolved: mpsc::Sender<Resolved>,
    remote: Arc<RemoteMedia>,
    fields: [String; 2],
) {
    let window = remote.concurrency() * RECORDS_PER_FETCH;
    let mut waiting = FuturesUnordered::new();
    let mut open = true;
    loop {
        tokio::select! {
            Some(done) = waiting.next(), if !waiting.is_empty() => {
                if resolved.send(done).await.is_err() {
                    return;
                }
            }
            record = records.recv(), if open && waiting.len() < window => match record {
                Some(record) => {
                    let urls: Vec<String> = fields
                        .iter()
                        .filter_map(|field| record.fields.get(field))
                        .flat_map(|value| remote_urls(value, "media"))
                        .collect();
                    if urls.is_empty() {
                        let passed = Resolved { record, bodies: HashMap::new() };
                        if resolved.send(passed).await.is_err() {
                            return;
                        }
                    } else {
                        waiting.push(fetch_all(remote.clone(), record, urls));
                    }
                }
                None => open = false,
            },
            else => return,
        }
    }
}

/// The record once every URL it names has a body or a failure.
async fn fetch_all(remote: Arc<RemoteMedia>, record: Record, mut urls: Vec<String>) -> Resolved {
    urls.sort_unstable();
    urls.dedup();
    let fetched = futures::future::join_all(urls.iter().map(|url| remote.get(url))).await;
    Resolved {
        record,
        bodies: urls.into_iter().zip(fetched).collect(),
    }
}
