//! A record's images and documents, read and checked before any call: paths (relative to
//! the job file), `data:` URIs or base64, the real format taken from the bytes' magic number
//! (a declared format or extension that disagrees is corrected, with a warning), and
//! Bedrock's limits. A file used by many records is read once: a bounded cache keeps recent
//! files.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use serde_json::Value;

use crate::media::{
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

    fn bytes(&mut self, spec: &Spec, what: &str) -> Result<Arc<Vec<u8>>, MediaError> {
        match &spec.source {
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
        }
    }

    /// How many files were read, and how many uses were served from the cache.
    pub fn files_read(&self) -> crate::vocab::FilesRead {
        crate::vocab::FilesRead {
            read: self.reads,
            reused: self.hits,
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
            let what = match &spec.source {
                Source::Path(path) => format!("images[{i}] ({path})"),
                Source::Base64(_) => format!("images[{i}]"),
            };
            let bytes = self.bytes(spec, &what)?;
            let format = sniff_image_format(&bytes).ok_or_else(|| {
                error(
                    "invalid_image",
                    format!("{what}: not a png, jpeg, gif or webp image (unsupported format or corrupt bytes)"),
                )
            })?;
            let declared = spec.declared.clone().or_else(|| match &spec.source {
                Source::Path(path) => Path::new(path)
                    .extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_string),
                Source::Base64(_) => None,
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
            let (what, file_name) = match &spec.source {
                Source::Path(path) => (
                    format!("documents[{i}] ({path})"),
                    Path::new(path)
                        .file_name()
                        .and_then(|n| n.to_str())
                        .map(str::to_string),
                ),
                Source::Base64(_) => (format!("documents[{i}]"), None),
            };
            let format = spec
                .declared
                .clone()
                .or_else(|| {
                    file_name
                        .as_deref()
                        .and_then(|n| n.rsplit_once('.'))
                        .map(|(_, ext)| ext.to_string())
                })
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
            let bytes = self.bytes(spec, &what)?;
            if format == "pdf" && !bytes.starts_with(b"%PDF") {
                return Err(error(
                    "invalid_document",
                    format!("{what}: not a PDF (no %PDF header)"),
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
                    source: Source::Path(text.clone()),
                    declared: None,
                    name: None,
                },
            }),
            Value::Object(object) => {
                let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_string);
                let source = match (text("path"), text("base64")) {
                    (Some(path), None) => Source::Path(path),
                    (None, Some(data)) => Source::Base64(data),
                    _ => {
                        return Err(error(
                            "invalid_media",
                            format!("{field}[{i}]: give exactly one of \"path\" or \"base64\""),
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
                format!("{field}[{i}]: expected a path, a data: URI or an object, got {other}"),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::test_images::png;
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
