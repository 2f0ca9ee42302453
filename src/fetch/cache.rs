//! The run's one door to remote media: each URL is fetched once while it stays in a cache
//! bounded in bytes and in entries (least recently used leaves first), and records asking
//! for a URL already on its way wait for that same fetch. Failures are kept too, so a dead
//! URL named by a thousand records costs one request. At most `--fetch-concurrency`
//! fetches are in flight; each runs as its own task, so it keeps going (and its timeout
//! keeps counting) whoever is waiting for it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::sync::Semaphore;
use url::Url;

use super::{FetchFailure, FetchSettings, Fetched, Fetchers};

/// Entries kept at most, whatever their size (failures and tiny bodies).
const MAX_ENTRIES: usize = 10_000;

type Pending = Shared<BoxFuture<'static, Fetched>>;

struct Entry {
    body: Pending,
    /// Which fetch made it (a URL evicted and fetched again gets a new one).
    fetch: u64,
    /// When it was last used, in `State::clock` ticks.
    used: u64,
    /// Bytes of its body once fetched.
    size: usize,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// (URL, tick of a use), oldest first; a pair whose tick is no longer the entry's last
    /// use is stale and skipped.
    uses: VecDeque<(String, u64)>,
    clock: u64,
    bytes: usize,
    fetched: u64,
    reused: u64,
}

impl State {
    fn tick(&mut self, url: &str) -> u64 {
        self.clock += 1;
        self.uses.push_back((url.to_string(), self.clock));
        if self.uses.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.uses
                .retain(|(url, tick)| entries.get(url).is_some_and(|e| e.used == *tick));
        }
        self.clock
    }

    /// Drops least recently used entries until the cache is within its bounds.
    fn evict(&mut self, max_bytes: usize) {
        while self.bytes > max_bytes || self.entries.len() > MAX_ENTRIES {
            let Some((url, tick)) = self.uses.pop_front() else {
                break;
            };
            if self.entries.get(&url).is_some_and(|e| e.used == tick)
                && let Some(gone) = self.entries.remove(&url)
            {
                self.bytes -= gone.size;
            }
        }
    }
}

/// Remote media for one run: fetchers by scheme, the limits, the cache.
pub struct RemoteMedia {
    fetchers: Fetchers,
    settings: FetchSettings,
    permits: Arc<Semaphore>,
    state: Mutex<State>,
}

impl RemoteMedia {
    pub fn new(fetchers: Fetchers, settings: FetchSettings) -> Arc<RemoteMedia> {
        Arc::new(RemoteMedia {
            permits: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            fetchers,
            settings,
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent between statements: a panic elsewhere leaves it usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The body of `url`: from the cache, from a fetch already on its way, or fetched now.
    pub async fn get(self: &Arc<Self>, url: &str) -> Fetched {
        let pending = {
            let mut state = self.state();
            let tick = state.tick(url);
            if let Some(entry) = state.entries.get_mut(url) {
                entry.used = tick;
                let body = entry.body.clone();
                state.reused += 1;
                body
            } else {
                state.fetched += 1;
                let fetch = state.fetched;
                let task = tokio::spawn(self.clone().fetch(url.to_string(), fetch));
                let body: Pending = async move {
                    task.await.unwrap_or_else(|err| {
                        Err(FetchFailure::Failed(format!("the fetch stopped: {err}")))
                    })
                }
                .boxed()
                .shared();
                state.entries.insert(
                    url.to_string(),
                    Entry {
                        body: body.clone(),
                        fetch,
                        used: tick,
                        size: 0,
                    },
                );
                state.evict(self.settings.cache_bytes);
                body
            }
        };
        pending.await
    }

    /// Fetches `url` under a permit and the timeout, then counts its bytes in the cache.
    async fn fetch(self: Arc<Self>, url: String, fetch: u64) -> Fetched {
        let fetched = match Url::parse(&url) {
            Err(err) => Err(FetchFailure::Failed(format!("not a valid URL: {err}"))),
            Ok(parsed) => match self.fetchers.get(&parsed) {
                Err(failure) => Err(failure),
                Ok(fetcher) => {
                    let _permit = self.permits.acquire().await;
                    let timeout = self.settings.timeout;
                    tokio::time::timeout(timeout, fetcher.fetch(&parsed, self.settings.max_bytes))
                        .await
                        .unwrap_or_else(|_| {
                            Err(FetchFailure::Failed(format!(
                                "no complete answer within {} s (--fetch-timeout)",
                                timeout.as_secs_f64()
                            )))
                        })
                }
            },
        };
        if let Ok(body) = &fetched {
            let mut state = self.state();
            if let Some(entry) = state.entries.get_mut(&url)
                && entry.fetch == fetch
            {
                entry.size = body.bytes.len();
                state.bytes += body.bytes.len();
                state.evict(self.settings.cache_bytes);
            }
        }
        fetched
    }

    /// Fetches allowed in flight at once.
    pub fn concurrency(&self) -> usize {
        self.settings.concurrency.max(1)
    }

    /// URLs fetched, and uses served by the cache or by a fetch already on its way.
    pub fn counts(&self) -> (u64, u64) {
        let state = self.state();
        (state.fetched, state.reused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::{Body, Fetcher};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Answers every URL with a body of `len` bytes after `delay`, counting the fetches.
    struct Counting {
        fetches: AtomicUsize,
        in_flight: AtomicUsize,
        peak: AtomicUsize,
        delay: Duration,
        len: usize,
    }

    impl Fetcher for Counting {
        fn fetch<'a>(&'a self, url: &'a Url, _max_bytes: usize) -> BoxFuture<'a, Fetched> {
            Box::pin(async move {
                self.fetches.fetch_add(1, Ordering::SeqCst);
                let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                self.peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(self.delay).await;
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                if url.path() == "/missing" {
                    return Err(FetchFailure::Failed("HTTP 404 Not Found".into()));
                }
                Ok(Body {
                    bytes: Arc::new(vec![0; self.len]),
                    content_type: None,
                })
            })
        }
    }

    fn remote(len: usize, settings: FetchSettings) -> (Arc<Counting>, Arc<RemoteMedia>) {
        let counting = Arc::new(Counting {
            fetches: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            delay: Duration::from_millis(50),
            len,
        });
        let fetchers = Fetchers::empty().with("http", counting.clone());
        (counting, RemoteMedia::new(fetchers, settings))
    }

    #[tokio::test(start_paused = true)]
    async fn one_fetch_for_many_waiters_and_failures_are_kept() {
        let (counting, remote) = remote(10, FetchSettings::default());
        let gets = (0..100).map(|_| {
            let remote = remote.clone();
            async move { remote.get("http://h/a.png").await }
        });
        let bodies = futures::future::join_all(gets).await;
        assert!(bodies.iter().all(|b| b.as_ref().unwrap().bytes.len() == 10));
        assert!(Arc::ptr_eq(
            &bodies[0].as_ref().unwrap().bytes,
            &bodies[99].as_ref().unwrap().bytes
        ));
        for _ in 0..3 {
            assert!(remote.get("http://h/missing").await.is_err());
        }
        assert_eq!(counting.fetches.load(Ordering::SeqCst), 2);
        assert_eq!(remote.counts(), (2, 101));
    }

    #[tokio::test(start_paused = true)]
    async fn fetches_in_flight_are_bounded() {
        let settings = FetchSettings {
            concurrency: 3,
            ..FetchSettings::default()
        };
        let (counting, remote) = remote(10, settings);
        let gets = (0..20).map(|i| {
            let remote = remote.clone();
            async move { remote.get(&format!("http://h/{i}.png")).await }
        });
        futures::future::join_all(gets).await;
        assert_eq!(counting.fetches.load(Ordering::SeqCst), 20);
        assert_eq!(counting.peak.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_cache_keeps_recent_urls_within_its_bytes() {
        let settings = FetchSettings {
            cache_bytes: 250,
            ..FetchSettings::default()
        };
        let (counting, remote) = remote(100, settings);
        for url in ["a", "b", "a", "c", "a", "b"] {
            remote.get(&format!("http://h/{url}")).await.unwrap();
        }
        // Two bodies fit: c pushes out b (a was used since), then b pushes out c.
        assert_eq!(counting.fetches.load(Ordering::SeqCst), 4);
        assert!(remote.state().bytes <= 250);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_fetch_times_out() {
        let settings = FetchSettings {
            timeout: Duration::from_millis(10),
            ..FetchSettings::default()
        };
        let (_, remote) = remote(1, settings);
        let err = remote.get("http://h/slow").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "no complete answer within 0.01 s (--fetch-timeout)"
        );
    }
}
