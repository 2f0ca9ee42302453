//! Where a record's media bytes come from: files read relative to the job file (a bounded
//! cache keeps recent ones, so a file used by many records is read once), base64 decoded,
//! and URLs taken from the bodies fetched ahead by [`crate::fetch`] (handed in with
//! [`MediaLoader::set_fetched`]) or, in a dry run, left out and counted.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;

use super::{MediaError, Source, Spec, error};
use crate::fetch::{FetchFailure, Fetched};

/// Bytes of files kept for reuse.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// What happens to URL media: fetched ahead and handed in, or left out (a dry run).
enum Remote {
    Fetched(HashMap<String, Fetched>),
    NotFetched { skipped: u64 },
}

/// Reads media files relative to the job file, keeping recent ones.
pub struct MediaLoader {
    base: PathBuf,
    files: HashMap<PathBuf, Arc<Vec<u8>>>,
    order: VecDeque<PathBuf>,
    cached_bytes: usize,
    /// Files read from disk, and uses served from the cache.
    pub reads: u64,
    pub hits: u64,
    remote: Remote,
}

impl MediaLoader {
    pub fn new(job_file: &Path) -> MediaLoader {
        MediaLoader {
            base: job_file.parent().map(Path::to_path_buf).unwrap_or_default(),
            files: HashMap::new(),
            order: VecDeque::new(),
            cached_bytes: 0,
            reads: 0,
            hits: 0,
            remote: Remote::Fetched(HashMap::new()),
        }
    }

    /// A loader that leaves URL media out instead of expecting their bodies (`--dry-run`
    /// calls nothing, fetches included): see [`MediaLoader::not_fetched`].
    pub fn without_fetching(mut self) -> MediaLoader {
        self.remote = Remote::NotFetched { skipped: 0 };
        self
    }

    /// The bodies of the next record's URLs, fetched ahead (see [`remote_urls`]).
    pub fn set_fetched(&mut self, bodies: HashMap<String, Fetched>) {
        self.remote = Remote::Fetched(bodies);
    }

    /// URL media left out by a loader made [`MediaLoader::without_fetching`].
    pub fn not_fetched(&self) -> u64 {
        match self.remote {
            Remote::NotFetched { skipped } => skipped,
            Remote::Fetched(_) => 0,
        }
    }

    /// Whether `spec` is left out (counted) because nothing fetches in this run.
    pub(super) fn skips(&mut self, spec: &Spec) -> bool {
        match (&spec.source, &mut self.remote) {
            (Source::Url(_), Remote::NotFetched { skipped }) => {
                *skipped += 1;
                true
            }
            _ => false,
        }
    }

    fn read(&mut self, path: &str, what: &str) -> Result<Arc<Vec<u8>>, MediaError> {
        let full = self.base.join(path);
        if let Some(bytes) = self.files.get(&full) {
            self.hits += 1;
            return Ok(bytes.clone());
        }
        let bytes = std::fs::read(&full).map_err(|err| {
            error(
                "missing_file",
                format!("{what} {}: cannot read it: {err}", full.display()),
            )
        })?;
        self.reads += 1;
        let bytes = Arc::new(bytes);
        if bytes.len() <= CACHE_BYTES / 4 {
            self.cached_bytes += bytes.len();
            self.files.insert(full.clone(), bytes.clone());
            self.order.push_back(full);
            while self.cached_bytes > CACHE_BYTES
                && let Some(oldest) = self.order.pop_front()
                && let Some(evicted) = self.files.remove(&oldest)
            {
                self.cached_bytes -= evicted.len();
            }
        }
        Ok(bytes)
    }

    /// The bytes of `spec`, and the Content-Type a server sent them with.
    pub(super) fn bytes(
        &mut self,
        spec: &Spec,
        what: &str,
        kind: &str,
    ) -> Result<(Arc<Vec<u8>>, Option<String>), MediaError> {
        let bytes = match &spec.source {
            Source::Url(url) => return self.fetched(url, what, kind),
            Source::Path(path) => self.read(path, what),
            Source::Base64(data) => base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map(Arc::new)
                .map_err(|err| {
                    error(
                        "invalid_media",
                        format!("{what}: the base64 data is not valid: {err}"),
                    )
                }),
        };
        bytes.map(|bytes| (bytes, None))
    }

    /// The fetched body of `url` (`kind`: "image" or "document", for a body over the cap).
    fn fetched(
        &self,
        url: &str,
        what: &str,
        kind: &str,
    ) -> Result<(Arc<Vec<u8>>, Option<String>), MediaError> {
        let Remote::Fetched(bodies) = &self.remote else {
            return Err(error("fetch_failed", format!("{what}: not fetched")));
        };
        match bodies.get(url) {
            Some(Ok(body)) => Ok((body.bytes.clone(), body.content_type.clone())),
            Some(Err(failure @ FetchFailure::TooLarge { .. })) => Err(error(
                if kind == "image" {
                    "image_too_large"
                } else {
                    "document_too_large"
                },
                format!(
                    "{what}: {failure}; Bedrock takes {}",
                    if kind == "image" {
                        "images up to 3.75 MB"
                    } else {
                        "documents up to 4.5 MB"
                    }
                ),
            )),
            Some(Err(failure)) => Err(error("fetch_failed", format!("{what}: {failure}"))),
            None => Err(error(
                "fetch_failed",
                format!("{what}: the URL was not fetched before the record was prepared"),
            )),
        }
    }

    /// How many files were read, and how many uses were served from the cache.
    pub fn files_read(&self) -> crate::vocab::FilesRead {
        crate::vocab::FilesRead {
            read: self.reads,
            reused: self.hits,
            ..Default::default()
        }
    }
}

/// " (the server sent text/html)": why a fetched body may not be what was asked for.
pub(super) fn sent_as(content_type: &Option<String>) -> String {
    match content_type {
        Some(content_type) => format!(" (the server sent {content_type})"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::media::remote_urls;
    use crate::rules::media::test_images::png;
    use serde_json::json;

    #[test]
    fn urls_use_the_bodies_fetched_ahead() {
        use crate::fetch::Body;
        let body = |bytes: Vec<u8>, content_type: &str| {
            Ok(Body {
                bytes: Arc::new(bytes),
                content_type: Some(content_type.to_string()),
            })
        };
        let value = json!(["https://h/a.jpg", {"url": "https://h/page"}]);
        assert_eq!(
            remote_urls(&value, "images"),
            vec!["https://h/a.jpg".to_string(), "https://h/page".to_string()]
        );
        let mut loader = MediaLoader::new(Path::new("job.jsonl"));
        loader.set_fetched(HashMap::from([
            ("https://h/a.jpg".to_string(), body(png(4, 4), "image/png")),
            (
                "https://h/page".to_string(),
                body(b"<html>".to_vec(), "text/html"),
            ),
            (
                "https://h/big.png".to_string(),
                Err(FetchFailure::TooLarge {
                    limit: 10,
                    declared: Some(11),
                }),
            ),
            (
                "https://h/gone.png".to_string(),
                Err(FetchFailure::Failed("HTTP 404 Not Found".into())),
            ),
            (
                "https://h/download".to_string(),
                body(b"%PDF-1.7".to_vec(), "application/pdf; qs=1"),
            ),
        ]));
        let mut warnings = Vec::new();
        let images = loader
            .images(&json!(["https://h/a.jpg"]), &mut warnings)
            .unwrap();
        assert_eq!(images[0].format, "png");
        assert!(warnings[0].contains("declared as jpg"), "{warnings:?}");
        let err = loader.images(&value, &mut warnings).unwrap_err();
        assert_eq!(err.kind, "invalid_image");
        assert!(
            err.message
                .starts_with("images[1] (https://h/page): not a png")
                && err.message.ends_with("(the server sent text/html)"),
            "{}",
            err.message
        );
        let err = loader
            .images(&json!("https://h/big.png"), &mut warnings)
            .unwrap_err();
        assert_eq!(err.kind, "image_too_large");
        let err = loader
            .documents(&json!(["https://h/gone.png"]), &mut warnings)
            .unwrap_err();
        assert_eq!(
            (err.kind, err.message.as_str()),
            (
                "fetch_failed",
                "documents[0] (https://h/gone.png): HTTP 404 Not Found"
            )
        );
        let docs = loader
            .documents(&json!(["https://h/download"]), &mut warnings)
            .unwrap();
        assert_eq!(
            (docs[0].format.as_str(), docs[0].name.as_str()),
            ("pdf", "download")
        );

        let mut dry = MediaLoader::new(Path::new("job.jsonl")).without_fetching();
        assert!(dry.images(&value, &mut warnings).unwrap().is_empty());
        assert_eq!(dry.not_fetched(), 2);
    }
}
