//! A record's images and documents, read and checked before any call: paths (relative to
//! the job file), URLs (fetched ahead by [`crate::fetch`], handed in with
//! [`MediaLoader::set_fetched`]), `data:` URIs or base64, the real format taken from the
//! bytes' magic number (a declared format or extension that disagrees is corrected, with a
//! warning), and Bedrock's limits. A file used by many records is read once: a bounded cache
//! keeps recent files.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use serde_json::Value;

use crate::fetch::{FetchFailure, Fetched, is_url};
use crate::rules::media::{
    DOCUMENT_FORMATS, MAX_DOCUMENT_BYTES, MAX_DOCUMENTS, MAX_IMAGE_BYTES, MAX_IMAGE_SIDE,
    MAX_IMAGES, document_name, image_format_name, image_size, sniff_image_format,
};
use crate::vocab::{DocumentInput, ImageInput};

/// Bytes of files kept for reuse.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Why a record's media cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaError {
    pub kind: &'static str,
    pub message: String,
}

fn error(kind: &'static str, message: String) -> MediaError {
    MediaError { kind, message }
}

/// Where bytes come from.
enum Source {
    Path(String),
    Base64(String),
    /// `https://...`, `s3://...`: fetched before the record is prepared.
    Url(String),
}

impl Source {
    /// How messages name an item: `images[0] (media/a.png)`.
    fn describe(&self, field: &str, i: usize) -> String {
        match self {
            Source::Path(path) | Source::Url(path) => format!("{field}[{i}] ({path})"),
            Source::Base64(_) => format!("{field}[{i}]"),
        }
    }

    /// The file name a path or URL ends with.
    fn file_name(&self) -> Option<String> {
        match self {
            Source::Path(path) => Path::new(path)
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string),
            Source::Url(url) => url::Url::parse(url)
                .ok()?
                .path_segments()?
                .next_back()
                .filter(|n| !n.is_empty())
                .map(str::to_string),
            Source::Base64(_) => None,
        }
    }
}

/// What happens to URL media: fetched ahead and handed in, or left out (a dry run).
enum Remote {
    Fetched(HashMap<String, Fetched>),
    NotFetched { skipped: u64 },
}

struct Spec {
    source: Source,
    declared: Option<String>,
    name: Option<String>,
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
    fn skips(&mut self, spec: &Spec) -> bool {
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
    fn bytes(
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

    /// The record's images (field value `value`), in order.
    pub fn images(
        &mut self,
        value: &Value,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<ImageInput>, MediaError> {
        let specs = specs(value, "images")?;
        if specs.len() > MAX_IMAGES {
            return Err(error(
                "too_many_images",
                format!(
                    "the record has {} images; Bedrock takes at most {MAX_IMAGES} a request",
                    specs.len()
                ),
            ));
        }
        let mut images = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            if self.skips(spec) {
                continue;
            }
            let what = spec.source.describe("images", i);
            let (bytes, content_type) = self.bytes(spec, &what, "image")?;
            let format = sniff_image_format(&bytes).ok_or_else(|| {
                error(
                    "invalid_image",
                    format!(
                        "{what}: not a png, jpeg, gif or webp image (unsupported format or corrupt bytes){}",
                        sent_as(&content_type)
                    ),
                )
            })?;
            let declared = spec.declared.clone().or_else(|| {
                let name = spec.source.file_name()?;
                name.rsplit_once('.').map(|(_, ext)| ext.to_string())
            });
            if let Some(declared) = declared
                && image_format_name(&declared) != Some(format)
            {
                warnings.push(format!(
                    "{what}: declared as {declared} but the bytes are {format}; sent as {format}"
                ));
            }
            if bytes.len() > MAX_IMAGE_BYTES {
                return Err(error(
                    "image_too_large",
                    format!(
                        "{what}: {} bytes; Bedrock takes images up to 3.75 MB",
                        bytes.len()
                    ),
                ));
            }
            let (width, height) = image_size(&bytes).ok_or_else(|| {
                error(
                    "invalid_image",
                    format!("{what}: the {format} header is corrupt (no dimensions)"),
                )
            })?;
            if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
                return Err(error(
                    "image_too_large",
                    format!(
                        "{what}: {width}x{height} pixels; Bedrock takes at most {MAX_IMAGE_SIDE} pixels a side"
                    ),
                ));
            }
            images.push(ImageInput {
                format,
                bytes,
                width,
                height,
            });
        }
        Ok(images)
    }

    /// The record's documents (field value `value`), with valid, distinct names.
    pub fn documents(
        &mut self,
        value: &Value,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<DocumentInput>, MediaError> {
        let specs = specs(value, "documents")?;
        let mut documents: Vec<DocumentInput> = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            if self.skips(spec) {
                continue;
            }
            let what = spec.source.describe("documents", i);
            let file_name = spec.source.file_name();
            // A URL's body comes before its format: a name without an extension can still
            // be known by its Content-Type.
            let (fetched, content_type) = match spec.source {
                Source::Url(_) => {
                    let (bytes, content_type) = self.bytes(spec, &what, "document")?;
                    (Some(bytes), content_type)
                }
                _ => (None, None),
            };
            let format = spec
                .declared
                .clone()
                .or_else(|| {
                    file_name
                        .as_deref()
                        .and_then(|n| n.rsplit_once('.'))
                        .map(|(_, ext)| ext.to_string())
                        // A URL's last segment may be a script ("download.php"): its
                        // Content-Type says more.
                        .filter(|ext| {
                            fetched.is_none()
                                || DOCUMENT_FORMATS.contains(&ext.to_ascii_lowercase().as_str())
                        })
                })
                .or_else(|| content_type.as_deref().and_then(document_format_of))
                .map(|f| f.to_ascii_lowercase())
                .ok_or_else(|| {
                    error(
                        "invalid_document",
                        format!(
                            "{what}: no format: give \"format\" (one of {})",
                            DOCUMENT_FORMATS.join(", ")
                        ),
                    )
                })?;
            if !DOCUMENT_FORMATS.contains(&format.as_str()) {
                return Err(error(
                    "invalid_document",
                    format!(
                        "{what}: format {format:?} is not one Bedrock takes ({})",
                        DOCUMENT_FORMATS.join(", ")
                    ),
                ));
            }
            let bytes = match fetched {
                Some(bytes) => bytes,
                None => self.bytes(spec, &what, "document")?.0,
            };
            if format == "pdf" && !bytes.starts_with(b"%PDF") {
                return Err(error(
                    "invalid_document",
                    format!(
                        "{what}: not a PDF (no %PDF header){}",
                        sent_as(&content_type)
                    ),
                ));
            }
            if bytes.len() > MAX_DOCUMENT_BYTES {
                return Err(error(
                    "document_too_large",
                    format!(
                        "{what}: {} bytes; Bedrock takes documents up to 4.5 MB",
                        bytes.len()
                    ),
                ));
            }
            let wanted = spec
                .name
                .clone()
                .or(file_name)
                .unwrap_or_else(|| format!("document {}", i + 1));
            let mut name = match &spec.name {
                // A given name keeps its dots; a file name loses its extension.
                Some(given) => document_name(&format!("{given}.x")),
                None => document_name(&wanted),
            };
            if let Some(given) = &spec.name
                && *given != name
            {
                warnings.push(format!("{what}: name {given:?} sent as {name:?} (Bedrock allows letters, digits, single spaces, hyphens, parentheses and square brackets)"));
            }
            let base = name.clone();
            let mut n = 2;
            while documents.iter().any(|d| d.name == name) {
                name = format!("{base} ({n})");
                n += 1;
            }
            documents.push(DocumentInput {
                format,
                name,
                bytes,
            });
        }
        Ok(documents)
    }
}

/// " (the server sent text/html)": why a fetched body may not be what was asked for.
fn sent_as(content_type: &Option<String>) -> String {
    match content_type {
        Some(content_type) => format!(" (the server sent {content_type})"),
        None => String::new(),
    }
}

/// The document format a Content-Type names.
fn document_format_of(content_type: &str) -> Option<String> {
    let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
    let format = match essence.as_str() {
        "application/pdf" => "pdf",
        "text/csv" => "csv",
        "text/html" => "html",
        "text/plain" => "txt",
        "text/markdown" => "md",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        _ => return None,
    };
    Some(format.to_string())
}

/// The URLs a record's `images` or `documents` field names, for fetching ahead (an item
/// that cannot be read is left to [`MediaLoader`] to report).
pub fn remote_urls(value: &Value, field: &str) -> Vec<String> {
    specs(value, field)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|spec| match spec.source {
            Source::Url(url) => Some(url),
            _ => None,
        })
        .collect()
}

/// Checks the count of documents (the record's and the shared ones together).
pub fn check_document_count(count: usize) -> Result<(), MediaError> {
    if count > MAX_DOCUMENTS {
        return Err(error(
            "too_many_documents",
            format!(
                "the record has {count} documents; Bedrock takes at most {MAX_DOCUMENTS} a request"
            ),
        ));
    }
    Ok(())
}

/// The specs in a field: an array of paths, `data:` URIs or objects, or (from CSV) one
/// string of paths separated by `;`.
fn specs(value: &Value, field: &str) -> Result<Vec<Spec>, MediaError> {
    let items: Vec<Value> = match value {
        Value::Array(items) => items.clone(),
        Value::String(text) => text
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| Value::String(p.to_string()))
            .collect(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(text) => Ok(match text.strip_prefix("data:") {
                Some(rest) => {
                    let (meta, data) = rest.split_once(',').ok_or_else(|| {
                        error(
                            "invalid_media",
                            format!("{field}[{i}]: a data: URI needs a comma before its data"),
                        )
                    })?;
                    if !meta.ends_with(";base64") {
                        return Err(error(
                            "invalid_media",
                            format!("{field}[{i}]: only base64 data: URIs are supported"),
                        ));
                    }
                    let media_type = meta.trim_end_matches(";base64");
                    Spec {
                        source: Source::Base64(data.to_string()),
                        declared: media_type
                            .rsplit('/')
                            .next()
                            .filter(|s| !s.is_empty())
                            .map(str::to_string),
                        name: None,
                    }
                }
                None => Spec {
                    source: if is_url(text) {
                        Source::Url(text.clone())
                    } else {
                        Source::Path(text.clone())
                    },
                    declared: None,
                    name: None,
                },
            }),
            Value::Object(object) => {
                let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_string);
                let source = match (text("path"), text("url"), text("base64")) {
                    (Some(path), None, None) if is_url(&path) => Source::Url(path),
                    (Some(path), None, None) => Source::Path(path),
                    (None, Some(url), None) => Source::Url(url),
                    (None, None, Some(data)) => Source::Base64(data),
                    _ => {
                        return Err(error(
                            "invalid_media",
                            format!(
                                "{field}[{i}]: give exactly one of \"path\", \"url\" or \"base64\""
                            ),
                        ));
                    }
                };
                Ok(Spec {
                    source,
                    declared: text("format"),
                    name: text("name"),
                })
            }
            other => Err(error(
                "invalid_media",
                format!(
                    "{field}[{i}]: expected a path, a URL, a data: URI or an object, got {other}"
                ),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::media::test_images::png;
    use serde_json::json;

    #[test]
    fn images_from_paths_and_data_uris() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.png"), png(10, 20)).unwrap();
        std::fs::write(dir.path().join("mislabeled.jpg"), png(5, 5)).unwrap();
        std::fs::write(dir.path().join("bad.png"), b"not an image").unwrap();
        let mut loader = MediaLoader::new(&dir.path().join("job.jsonl"));
        let mut warnings = Vec::new();
        let data = format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(png(1, 1))
        );
        let images = loader
            .images(
                &json!(["a.png", data, {"path": "mislabeled.jpg"}, "a.png"]),
                &mut warnings,
            )
            .unwrap();
        assert_eq!(images.len(), 4);
        assert_eq!((images[0].width, images[0].height), (10, 20));
        assert_eq!(images[2].format, "png");
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("declared as jpg but the bytes are png"),
            "{warnings:?}"
        );
        assert_eq!((loader.reads, loader.hits), (2, 1), "a.png is read once");

        let err = loader
            .images(&json!(["bad.png"]), &mut warnings)
            .unwrap_err();
        assert_eq!(err.kind, "invalid_image");
        let err = loader
            .images(&json!(["missing.png"]), &mut warnings)
            .unwrap_err();
        assert_eq!(err.kind, "missing_file");
        assert!(err.message.contains("missing.png"));
        std::fs::write(dir.path().join("huge.png"), png(9000, 10)).unwrap();
        let err = loader
            .images(&json!("huge.png"), &mut warnings)
            .unwrap_err();
        assert_eq!(err.kind, "image_too_large");
        let many: Vec<&str> = vec!["a.png"; 21];
        assert_eq!(
            loader.images(&json!(many), &mut warnings).unwrap_err().kind,
            "too_many_images"
        );
        // CSV cells: paths separated by semicolons.
        assert_eq!(
            loader
                .images(&json!("a.png; a.png"), &mut warnings)
                .unwrap()
                .len(),
            2
        );
    }

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

    #[test]
    fn documents_get_valid_distinct_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Q3_report.final.pdf"), b"%PDF-1.4 body").unwrap();
        std::fs::write(dir.path().join("fake.pdf"), b"hello").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"some notes").unwrap();
        let mut loader = MediaLoader::new(&dir.path().join("job.jsonl"));
        let mut warnings = Vec::new();
        let docs = loader
            .documents(&json!(["Q3_report.final.pdf", "notes.txt", {"path": "notes.txt", "name": "notes"}]), &mut warnings)
            .unwrap();
        assert_eq!(docs[0].name, "Q3 report final");
        assert_eq!(docs[0].format, "pdf");
        assert_eq!(docs[1].name, "notes");
        assert_eq!(docs[2].name, "notes (2)");
        let err = loader
            .documents(&json!(["fake.pdf"]), &mut warnings)
            .unwrap_err();
        assert!(err.message.contains("not a PDF"));
        let err = loader
            .documents(
                &json!([{"path": "notes.txt", "format": "exe"}]),
                &mut warnings,
            )
            .unwrap_err();
        assert_eq!(err.kind, "invalid_document");
        assert!(check_document_count(6).is_err());
        assert!(check_document_count(5).is_ok());
    }
}
