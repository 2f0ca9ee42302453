//! A record's documents, checked as Bedrock checks them before a call: a format Bedrock
//! takes (given, from the file name, or from a fetched body's Content-Type), a PDF that is
//! one, within the byte limit and the count a request may carry, each under a valid name
//! distinct from the others.

use serde_json::Value;

use super::loader::sent_as;
use super::{MediaError, MediaLoader, Source, error, specs};
use crate::rules::media::{DOCUMENT_FORMATS, MAX_DOCUMENT_BYTES, MAX_DOCUMENTS, document_name};
use crate::vocab::DocumentInput;

impl MediaLoader {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
