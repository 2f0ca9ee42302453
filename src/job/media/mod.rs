//! A record's images and documents, read and checked before any call. This file is the
//! spec: what a record's `images` or `documents` field may name (paths relative to the job
//! file, URLs, `data:` URIs or base64, alone or as objects with a format and a name, or
//! from CSV one cell of paths separated by `;`) and how each item is told apart. The
//! [`loader`] gets the bytes (files through a bounded cache, URLs from the bodies
//! [`crate::fetch`] fetched ahead); [`image`] and [`document`] check them against Bedrock's
//! limits, the real format taken from the bytes.

mod document;
mod image;
mod loader;

pub use document::check_document_count;
pub use loader::MediaLoader;

use std::path::Path;

use serde_json::Value;

use crate::fetch::is_url;

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

struct Spec {
    source: Source,
    declared: Option<String>,
    name: Option<String>,
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
