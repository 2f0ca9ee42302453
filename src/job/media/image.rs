//! A record's images, checked as Bedrock checks them before a call: at most
//! `MAX_IMAGES` a request, a png, jpeg, gif or webp whose real format is taken from the
//! bytes' magic number (a declared format or extension that disagrees is corrected, with a
//! warning), within the byte and pixel limits.

use serde_json::Value;

use super::loader::sent_as;
use super::{MediaError, MediaLoader, error, specs};
use crate::rules::media::{
    MAX_IMAGE_BYTES, MAX_IMAGE_SIDE, MAX_IMAGES, image_format_name, image_size, sniff_image_format,
};
use crate::vocab::ImageInput;

impl MediaLoader {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::media::test_images::png;
    use base64::Engine;
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
}
