//! Images and documents as Bedrock accepts them, shared by the runner (which checks files
//! before any call) and the local server (which rejects what Bedrock rejects): formats known
//! by their magic numbers, Bedrock's limits, and valid document names.

/// At most this many images in one request.
pub const MAX_IMAGES: usize = 20;
/// Bytes of one image.
pub const MAX_IMAGE_BYTES: usize = 3_750_000;
/// Pixels of one side of an image.
pub const MAX_IMAGE_SIDE: usize = 8_000;
/// At most this many documents in one request.
pub const MAX_DOCUMENTS: usize = 5;
/// Bytes of one document.
pub const MAX_DOCUMENT_BYTES: usize = 4_500_000;
pub const IMAGE_FORMATS: &[&str] = &["png", "jpeg", "gif", "webp"];
pub const DOCUMENT_FORMATS: &[&str] = &[
    "pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md",
];

/// The image format named by the bytes' magic number, in Bedrock's spelling.
pub fn sniff_image_format(bytes: &[u8]) -> Option<&'static str> {
    match imagesize::image_type(bytes).ok()? {
        imagesize::ImageType::Png => Some("png"),
        imagesize::ImageType::Jpeg => Some("jpeg"),
        imagesize::ImageType::Gif => Some("gif"),
        imagesize::ImageType::Webp => Some("webp"),
        _ => None,
    }
}

/// Width and height read from the image header.
pub fn image_size(bytes: &[u8]) -> Option<(usize, usize)> {
    imagesize::blob_size(bytes)
        .ok()
        .map(|size| (size.width, size.height))
}

/// Bedrock's spelling of an image format named by a file extension or a declared format.
pub fn image_format_name(name: &str) -> Option<&'static str> {
    match name.to_ascii_lowercase().as_str() {
        "png" => Some("png"),
        "jpg" | "jpeg" => Some("jpeg"),
        "gif" => Some("gif"),
        "webp" => Some("webp"),
        _ => None,
    }
}

/// Whether `name` is a valid Bedrock document name: letters, digits, single whitespace,
/// hyphens, parentheses and square brackets.
pub fn valid_document_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains("  ")
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || "-()[]".contains(c))
}

/// A valid document name made from a file name: its stem, other characters turned into
/// spaces, runs of spaces collapsed ("Q3_report.final.pdf" becomes "Q3 report final").
pub fn document_name(file_name: &str) -> String {
    let stem = match file_name.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => file_name,
    };
    let cleaned: String = stem
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-()[]".contains(c) {
                c
            } else {
                ' '
            }
        })
        .collect();
    let name = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    let name: String = name.chars().take(200).collect();
    if name.is_empty() {
        "document".to_string()
    } else {
        name.trim_end().to_string()
    }
}

/// Image headers for tests: enough for format and size to be read.
#[cfg(test)]
pub(crate) mod test_images {
    /// A PNG signature and IHDR chunk of the given size.
    pub fn png(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
        bytes.extend_from_slice(&13u32.to_be_bytes());
        bytes.extend_from_slice(b"IHDR");
        bytes.extend_from_slice(&width.to_be_bytes());
        bytes.extend_from_slice(&height.to_be_bytes());
        bytes.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_names_are_made_valid() {
        for (file, name) in [
            ("Q3_report.final.pdf", "Q3 report final"),
            ("notes.md", "notes"),
            ("  weird@@name!!.txt", "weird name"),
            ("résumé (2024) [v2].docx", "résumé (2024) [v2]"),
            ("___.csv", "document"),
            (".hidden", "hidden"),
        ] {
            assert_eq!(document_name(file), name, "{file}");
            assert!(valid_document_name(&document_name(file)), "{file}");
        }
    }

    #[test]
    fn format_names() {
        assert_eq!(image_format_name("JPG"), Some("jpeg"));
        assert_eq!(image_format_name("bmp"), None);
        assert_eq!(
            sniff_image_format(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"),
            Some("gif")
        );
        assert_eq!(sniff_image_format(b"%PDF-1.4"), None);
    }
}
