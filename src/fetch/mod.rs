//! Images and documents named by URL in a job record: Bedrock takes bytes only, so the
//! runner fetches them. A [`Fetcher`] is chosen by the URL's scheme (`http`/`https`, and
//! `s3` with the run's S3 client, which the run registers over [`Fetchers::standard`]'s); [`RemoteMedia`] puts the
//! run's limits around it (fetches in flight, a size cap, a timeout) and a bounded cache in
//! front of it, so a URL named by many records is fetched once. What the bytes are (format,
//! Bedrock's limits) is checked by the job's media code, exactly as for files.

mod cache;
mod http;
mod s3_objects;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use url::Url;

pub use cache::RemoteMedia;
pub use http::HttpFetcher;
pub use s3_objects::S3Fetcher;

/// The limits a run puts on fetching media.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchSettings {
    /// Fetches in flight at once (`--fetch-concurrency`).
    pub concurrency: usize,
    /// Bytes read from one body at most (`--max-media-bytes`); a larger body is refused.
    pub max_bytes: usize,
    /// Time one fetch may take, redirects and body included (`--fetch-timeout`).
    pub timeout: Duration,
    /// Time to wait for a connection.
    pub connect_timeout: Duration,
    /// Redirects followed before giving up.
    pub max_redirects: usize,
    /// Bytes of fetched bodies kept for reuse.
    pub cache_bytes: usize,
}

impl Default for FetchSettings {
    fn default() -> FetchSettings {
        FetchSettings {
            concurrency: 16,
            max_bytes: crate::rules::media::MAX_DOCUMENT_BYTES,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_redirects: 5,
            cache_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A fetched body.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    pub bytes: Arc<Vec<u8>>,
    /// The `Content-Type` the server sent, for messages about bodies that are not media.
    pub content_type: Option<String>,
}

/// Why a URL gave no body. The message names no URL: the caller says which one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchFailure {
    /// The body is larger than `--max-media-bytes` (`declared`: its Content-Length).
    TooLarge { limit: usize, declared: Option<u64> },
    /// A status other than 2xx, a timeout, no connection, too many redirects, a scheme
    /// nobody fetches...
    Failed(String),
}

impl std::fmt::Display for FetchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchFailure::TooLarge {
                limit,
                declared: Some(declared),
            } => write!(
                f,
                "the server declares {declared} bytes, over --max-media-bytes ({limit})"
            ),
            FetchFailure::TooLarge {
                limit,
                declared: None,
            } => write!(
                f,
                "the body is over --max-media-bytes ({limit} bytes); stopped reading there"
            ),
            FetchFailure::Failed(reason) => f.write_str(reason),
        }
    }
}

/// What a fetch gives: a body, or why not.
pub type Fetched = Result<Body, FetchFailure>;

/// Fetches the URLs of one scheme.
pub trait Fetcher: Send + Sync {
    /// The body of `url`, read up to `max_bytes` (a larger body is
    /// [`FetchFailure::TooLarge`]). The caller bounds the time it takes.
    fn fetch<'a>(&'a self, url: &'a Url, max_bytes: usize) -> BoxFuture<'a, Fetched>;
}

/// A scheme the runner knows but cannot fetch yet: every URL gets the same failure.
struct NotYet(&'static str);

impl Fetcher for NotYet {
    fn fetch<'a>(&'a self, _url: &'a Url, _max_bytes: usize) -> BoxFuture<'a, Fetched> {
        Box::pin(async move { Err(FetchFailure::Failed(self.0.to_string())) })
    }
}

/// The fetchers of a run, by URL scheme.
#[derive(Clone)]
pub struct Fetchers {
    by_scheme: HashMap<String, Arc<dyn Fetcher>>,
}

impl Fetchers {
    /// No scheme at all.
    pub fn empty() -> Fetchers {
        Fetchers {
            by_scheme: HashMap::new(),
        }
    }

    /// `http` and `https` through [`HttpFetcher`]; `s3` answers that it has no client (the
    /// run replaces it with an [`S3Fetcher`] on its S3 client).
    pub fn standard(settings: &FetchSettings) -> Fetchers {
        let http: Arc<dyn Fetcher> = Arc::new(HttpFetcher::new(settings));
        Fetchers::empty()
            .with("http", http.clone())
            .with("https", http)
            .with(
                "s3",
                Arc::new(NotYet(
                    "s3:// media need an S3 client, and none could be set up (is a region configured?): give an https:// URL (a presigned URL works) or a path",
                )),
            )
    }

    /// These fetchers, with `fetcher` for `scheme` (replacing any other).
    pub fn with(mut self, scheme: &str, fetcher: Arc<dyn Fetcher>) -> Fetchers {
        self.by_scheme.insert(scheme.to_ascii_lowercase(), fetcher);
        self
    }

    /// The fetcher for `url`'s scheme.
    pub fn get(&self, url: &Url) -> Result<&Arc<dyn Fetcher>, FetchFailure> {
        self.by_scheme.get(url.scheme()).ok_or_else(|| {
            let mut known: Vec<&str> = self.by_scheme.keys().map(String::as_str).collect();
            known.sort_unstable();
            FetchFailure::Failed(format!(
                "{}:// URLs cannot be fetched (known schemes: {})",
                url.scheme(),
                known.join(", ")
            ))
        })
    }
}

/// Whether `text` is a URL for the fetcher (`scheme://...`) rather than a path.
pub fn is_url(text: &str) -> bool {
    let Some((scheme, _)) = text.split_once("://") else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths() {
        assert!(is_url("https://example.test/a.png"));
        assert!(is_url("s3://bucket/key.png"));
        assert!(!is_url("media/a.png"));
        assert!(!is_url("C:\\media\\a.png"));
        assert!(!is_url("weird dir://a.png"));
    }

    #[tokio::test]
    async fn s3_without_a_client_says_so() {
        let fetchers = Fetchers::standard(&FetchSettings::default());
        let url = Url::parse("s3://bucket/a.png").unwrap();
        let err = fetchers.get(&url).unwrap().fetch(&url, 10).await;
        assert!(
            matches!(&err, Err(FetchFailure::Failed(m)) if m.starts_with("s3:// media need an S3 client")),
            "{err:?}"
        );
        let url = Url::parse("ftp://host/a.png").unwrap();
        let Err(err) = fetchers.get(&url) else {
            panic!("ftp has no fetcher")
        };
        assert_eq!(
            err.to_string(),
            "ftp:// URLs cannot be fetched (known schemes: http, https, s3)"
        );
    }
}
