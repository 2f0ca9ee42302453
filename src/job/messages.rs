//! Raw Converse `messages` from a job record (the JSON shape of the Converse API) turned
//! into the SDK's types, so a bad record is caught before any call with a message that
//! names the offending path.

use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    CachePointBlock, CachePointType, ContentBlock, ConversationRole, DocumentBlock, DocumentFormat,
    DocumentSource, ImageBlock, ImageFormat, ImageSource, Message,
};
use base64::Engine;
use serde_json::Value;

fn field<'a>(value: &'a Value, name: &str, path: &str) -> Result<&'a str, String> {
    value
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{path}.{name} is required and must be a string"))
}

fn bytes(value: &Value, path: &str) -> Result<Blob, String> {
    let encoded = value
        .get("source")
        .and_then(|s| s.get("bytes"))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{path}.source.bytes is required (base64 of the file's bytes)"))?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map(Blob::new)
        .map_err(|err| format!("{path}.source.bytes is not valid base64: {err}"))
}

fn block(value: &Value, path: &str) -> Result<ContentBlock, String> {
    let object = value.as_object().filter(|o| o.len() == 1).ok_or_else(|| {
        format!("{path} must be an object with exactly one key (text, image, document, cachePoint)")
    })?;
    let (key, inner) = object.iter().next().expect("one key");
    let path = format!("{path}.{key}");
    Ok(match key.as_str() {
        "text" => ContentBlock::Text(
            inner
                .as_str()
                .ok_or_else(|| format!("{path} must be a string"))?
                .to_string(),
        ),
        "image" => {
            let format = field(inner, "format", &path)?;
            ContentBlock::Image(
                ImageBlock::builder()
                    .format(ImageFormat::from(format))
                    .source(ImageSource::Bytes(bytes(inner, &path)?))
                    .build()
                    .map_err(|err| format!("{path}: {err}"))?,
            )
        }
        "document" => ContentBlock::Document(
            DocumentBlock::builder()
                .format(DocumentFormat::from(field(inner, "format", &path)?))
                .name(field(inner, "name", &path)?)
                .source(DocumentSource::Bytes(bytes(inner, &path)?))
                .build()
                .map_err(|err| format!("{path}: {err}"))?,
        ),
        "cachePoint" => ContentBlock::CachePoint(
            CachePointBlock::builder()
                .r#type(CachePointType::Default)
                .build()
                .map_err(|err| format!("{path}: {err}"))?,
        ),
        other => {
            return Err(format!(
                "{path}: content block {other:?} is not supported in job files (use text, image, document or cachePoint)"
            ));
        }
    })
}

/// Converts a record's `messages` array.
pub fn messages_from_json(value: &Value) -> Result<Vec<Message>, String> {
    let list = value
        .as_array()
        .filter(|l| !l.is_empty())
        .ok_or("messages must be a non-empty array of {\"role\", \"content\"} objects")?;
    list.iter()
        .enumerate()
        .map(|(i, message)| {
            let path = format!("messages.{i}");
            let role = match message.get("role").and_then(Value::as_str) {
                Some("user") => ConversationRole::User,
                Some("assistant") => ConversationRole::Assistant,
                _ => return Err(format!("{path}.role must be \"user\" or \"assistant\"")),
            };
            let content = match message.get("content") {
                Some(Value::String(text)) => vec![ContentBlock::Text(text.clone())],
                Some(Value::Array(blocks)) if !blocks.is_empty() => blocks
                    .iter()
                    .enumerate()
                    .map(|(j, b)| block(b, &format!("{path}.content.{j}")))
                    .collect::<Result<_, _>>()?,
                _ => {
                    return Err(format!(
                        "{path}.content must be a string or a non-empty array of content blocks"
                    ));
                }
            };
            Message::builder()
                .role(role)
                .set_content(Some(content))
                .build()
                .map_err(|err| format!("{path}: {err}"))
        })
        .collect()
}

/// All the text of some messages, for token estimates.
pub fn text_len(messages: &[Message]) -> usize {
    messages
        .iter()
        .flat_map(|m| m.content())
        .map(|block| match block {
            ContentBlock::Text(t) => t.chars().count(),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_roles_and_blocks() {
        let messages = messages_from_json(&json!([
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [{"text": "Hello"}]},
            {"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": "iVBORw=="}}}, {"text": "What?"}]}
        ]))
        .unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[1].role(), &ConversationRole::Assistant);
        assert!(messages[2].content()[0].is_image());
        assert_eq!(text_len(&messages), 2 + 5 + 5);
    }

    #[test]
    fn errors_name_the_path() {
        let err = messages_from_json(&json!([{"role": "bot", "content": "x"}])).unwrap_err();
        assert!(err.starts_with("messages.0.role"));
        let err =
            messages_from_json(&json!([{"role": "user", "content": [{"video": {}}]}])).unwrap_err();
        assert!(err.contains("messages.0.content.0.video"), "{err}");
        let err = messages_from_json(&json!([{"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": "@@"}}}]}])).unwrap_err();
        assert!(err.contains("not valid base64"));
        assert!(messages_from_json(&json!([])).is_err());
    }
}
