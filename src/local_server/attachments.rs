//! Images and documents inside requests, checked the way Bedrock checks them: base64 that
//! decodes, a declared format that matches the bytes' magic number, and Bedrock's size,
//! pixel, count and document-name limits. Also how many input tokens each one costs.

use base64::Engine;

use super::api_error::ApiError;
use super::text::count_bytes_tokens;

use crate::rules::media::{
    DOCUMENT_FORMATS, IMAGE_FORMATS, MAX_DOCUMENT_BYTES, MAX_DOCUMENTS, MAX_IMAGE_BYTES,
    MAX_IMAGE_SIDE, MAX_IMAGES, sniff_image_format, valid_document_name,
};

/// An image or document that passed the checks, for usage and for `/_local/stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub kind: AttachmentKind,
    pub format: String,
    pub bytes: usize,
    pub name: Option<String>,
    pub tokens: u64,
    /// It came after a text block of the same message (models do better with media first).
    pub after_text: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentKind {
    Image,
    Document,
}

/// Decodes a base64 field found at `path` (e.g. `messages.0.content.1.image.source.bytes`).
pub fn decode_base64(encoded: &str, path: &str) -> Result<Vec<u8>, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|err| ApiError::validation(format!("{path} is not valid base64: {err}")))
}

/// Checks an image block's bytes against its declared `format`; costs width*height/750.
pub fn check_image(format: &str, bytes: &[u8], path: &str) -> Result<Attachment, ApiError> {
    if !IMAGE_FORMATS.contains(&format) {
        return Err(ApiError::validation(format!(
            "{path}.format must be one of png, jpeg, gif, webp; got {format:?}"
        )));
    }
    let actual = sniff_image_format(bytes).ok_or_else(|| {
        ApiError::validation(format!(
            "{path}: the image bytes are not a png, jpeg, gif or webp image (unrecognized or corrupt header)"
        ))
    })?;
    if actual != format {
        return Err(ApiError::validation(format!(
            "{path}: the declared image format {format} does not match the image bytes, which are {actual}. Declare format {actual:?}."
        )));
    }
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(ApiError::validation(format!(
            "{path}: the image is {} bytes; images are limited to 3.75 MB",
            bytes.len()
        )));
    }
    let size = imagesize::blob_size(bytes).map_err(|err| {
        ApiError::validation(format!(
            "{path}: could not read the image dimensions: {err}"
        ))
    })?;
    if size.width > MAX_IMAGE_SIDE || size.height > MAX_IMAGE_SIDE {
        return Err(ApiError::validation(format!(
            "{path}: the image is {}x{} pixels; each side is limited to {MAX_IMAGE_SIDE} pixels",
            size.width, size.height
        )));
    }
    let tokens = ((size.width as u64 * size.height as u64).div_ceil(750)).max(1);
    Ok(Attachment {
        kind: AttachmentKind::Image,
        format: format.to_string(),
        bytes: bytes.len(),
        name: None,
        tokens,
        after_text: false,
    })
}

/// Checks a document block; costs one token per four bytes.
pub fn check_document(
    format: &str,
    name: &str,
    bytes: &[u8],
    path: &str,
) -> Result<Attachment, ApiError> {
    if !DOCUMENT_FORMATS.contains(&format) {
        return Err(ApiError::validation(format!(
            "{path}.format must be one of {}; got {format:?}",
            DOCUMENT_FORMATS.join(", ")
        )));
    }
    if !valid_document_name(name) {
        return Err(ApiError::validation(format!(
            "{path}.name {name:?} is not valid: the document name can only contain alphanumeric characters, single whitespace characters, hyphens, parentheses, and square brackets"
        )));
    }
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(ApiError::validation(format!(
            "{path}: the document is {} bytes; documents are limited to 4.5 MB",
            bytes.len()
        )));
    }
    Ok(Attachment {
        kind: AttachmentKind::Document,
        format: format.to_string(),
        bytes: bytes.len(),
        name: Some(name.to_string()),
        tokens: count_bytes_tokens(bytes.len()),
        after_text: false,
    })
}

/// Checks the per-request counts of images and documents.
pub fn check_counts(attachments: &[Attachment]) -> Result<(), ApiError> {
    let images = attachments
        .iter()
        .filter(|a| a.kind == AttachmentKind::Image)
        .count();
    let documents = attachments.len() - images;
    if images > MAX_IMAGES {
        return Err(ApiError::validation(format!(
            "the request holds {images} images; at most {MAX_IMAGES} are allowed"
        )));
    }
    if documents > MAX_DOCUMENTS {
        return Err(ApiError::validation(format!(
            "the request holds {documents} documents; at most {MAX_DOCUMENTS} are allowed"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::media::test_images::png;

    #[test]
    fn image_checks() {
        let ok = check_image("png", &png(750, 2), "img").unwrap();
        assert_eq!(ok.tokens, 2);
        assert_eq!(ok.bytes, png(1, 1).len());
        let err = check_image("jpeg", &png(10, 10), "messages.0.content.0.image").unwrap_err();
        assert!(err.message.contains("which are png"), "{}", err.message);
        let err = check_image("png", b"not an image at all", "img").unwrap_err();
        assert!(err.message.contains("corrupt"), "{}", err.message);
        let err = check_image("png", &png(9_000, 10), "img").unwrap_err();
        assert!(err.message.contains("9000x10"), "{}", err.message);
        let err = check_image("bmp", &png(1, 1), "img").unwrap_err();
        assert!(err.message.contains("must be one of"), "{}", err.message);
    }

    #[test]
    fn document_names() {
        assert!(valid_document_name("Quarterly report (2024) [final]-v2"));
        assert!(!valid_document_name("report.pdf"));
        assert!(!valid_document_name("two  spaces"));
        assert!(!valid_document_name(""));
        let err = check_document("pdf", "a_b", b"%PDF", "doc").unwrap_err();
        assert!(err.message.contains("not valid"));
        assert_eq!(
            check_document("txt", "notes", b"12345", "doc")
                .unwrap()
                .tokens,
            2
        );
    }

    #[test]
    fn base64_errors_name_the_field() {
        let err = decode_base64("@@@", "messages.0.content.0.image.source.bytes").unwrap_err();
        assert!(
            err.message
                .starts_with("messages.0.content.0.image.source.bytes is not valid base64")
        );
    }
}
