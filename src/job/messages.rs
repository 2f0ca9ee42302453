//! Raw Converse `messages` from a job record (the JSON shape of the Converse API) turned
//! into the SDK's types, so a bad record is caught before any call with a message that
//! names the offending path.

use aws_sdk_bedrockruntime::error::BuildError;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    CachePointBlock, CachePointType, ContentBlock, ConversationRole, DocumentBlock, DocumentFormat,
    DocumentSource, ImageBlock, ImageFormat, ImageSource, Message,
};
use base64::Engine;
use serde_json::Value;

/// Why a record's `messages` cannot be sent; each names the path of the offending part
/// (`messages.0.content.1.image`).
#[derive(Debug, thiserror::Error)]
pub enum MessagesError {
    #[error("messages must be a non-empty array of {{\"role\", \"content\"}} objects")]
    NotAList,
    #[error("{path}.role must be \"user\" or \"assistant\"")]
    Role { path: String },
    #[error("{path}.content must be a string or a non-empty array of content blocks")]
    Content { path: String },
    #[error("{path} must be an object with exactly one key (text, image, document, cachePoint)")]
    NotOneKey { path: String },
    #[error("{path} must be a string")]
    NotText { path: String },
    #[error("{path}.{name} is required and must be a string")]
    Missing { path: String, name: String },
    #[error("{path}.source.bytes is required (base64 of the file's bytes)")]
    NoBytes { path: String },
    #[error("{path}.source.bytes is not valid base64: {source}")]
    Base64 {
        path: String,
        #[source]
        source: base64::DecodeError,
    },
    #[error(
        "{path}: content block {block:?} is not supported in job files (use text, image, document or cachePoint)"
    )]
    Unsupported { path: String, block: String },
    /// The SDK refused to build the part (a required member missing).
    #[error("{path}: {source}")]
    Build {
        path: String,
        #[source]
        source: BuildError,
    },
}

fn field<'a>(value: &'a Value, name: &str, path: &str) -> Result<&'a str, MessagesError> {
    value
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| MessagesError::Missing {
            path: path.to_string(),
            name: name.to_string(),
        })
}

/// What the SDK's builder says, at `path`.
fn built(path: &str) -> impl FnOnce(BuildError) -> MessagesError + '_ {
    move |source| MessagesError::Build {
        path: path.to_string(),
        source,
    }
}

fn bytes(value: &Value, path: &str) -> Result<Blob, MessagesError> {
    let encoded = value
        .get("source")
        .and_then(|s| s.get("bytes"))
        .and_then(Value::as_str)
        .ok_or_else(|| MessagesError::NoBytes {
            path: path.to_string(),
        })?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map(Blob::new)
        .map_err(|source| MessagesError::Base64 {
            path: path.to_string(),
            source,
        })
}

fn block(value: &Value, path: &str) -> Result<ContentBlock, MessagesError> {
    let object =
        value
            .as_object()
            .filter(|o| o.len() == 1)
            .ok_or_else(|| MessagesError::NotOneKey {
                path: path.to_string(),
            })?;
    let (key, inner) = object.iter().next().expect("one key");
    let path = format!("{path}.{key}");
    Ok(match key.as_str() {
        "text" => ContentBlock::Text(
            inner
                .as_str()
                .ok_or_else(|| MessagesError::NotText { path: path.clone() })?
                .to_string(),
        ),
        "image" => {
            let format = field(inner, "format", &path)?;
            ContentBlock::Image(
                ImageBlock::builder()
                    .format(ImageFormat::from(format))
                    .source(ImageSource::Bytes(bytes(inner, &path)?))
                    .build()
                    .map_err(built(&path))?,
            )
        }
        "document" => ContentBlock::Document(
            DocumentBlock::builder()
                .format(DocumentFormat::from(field(inner, "format", &path)?))
                .name(field(inner, "name", &path)?)
                .source(DocumentSource::Bytes(bytes(inner, &path)?))
                .build()
                .map_err(built(&path))?,
        ),
        "cachePoint" => ContentBlock::CachePoint(
            CachePointBlock::builder()
                .r#type(CachePointType::Default)
                .build()
                .map_err(built(&path))?,
        ),
        other => {
            return Err(MessagesError::Unsupported {
                path,
                block: other.to_string(),
            });
        }
    })
}

/// Converts a record's `messages` array.
pub fn messages_from_json(value: &Value) -> Result<Vec<Message>, MessagesError> {
    let list = value
        .as_array()
        .filter(|l| !l.is_empty())
        .ok_or(MessagesError::NotAList)?;
    list.iter()
        .enumerate()
        .map(|(i, message)| {
            let path = format!("messages.{i}");
            let role = match message.get("role").and_then(Value::as_str) {
                Some("user") => ConversationRole::User,
                Some("assistant") => ConversationRole::Assistant,
                _ => return Err(MessagesError::Role { path }),
            };
            let content = match message.get("content") {
                Some(Value::String(text)) => vec![ContentBlock::Text(text.clone())],
                Some(Value::Array(blocks)) if !blocks.is_empty() => blocks
                    .iter()
                    .enumerate()
                    .map(|(j, b)| block(b, &format!("{path}.content.{j}")))
                    .collect::<Result<_, _>>()?,
                _ => {
                    return Err(MessagesError::Content { path });
                }
            };
            Message::builder()
                .role(role)
                .set_content(Some(content))
                .build()
                .map_err(built(&path))
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
        assert!(err.to_string().starts_with("messages.0.role"));
        let err =
            messages_from_json(&json!([{"role": "user", "content": [{"video": {}}]}])).unwrap_err();
        assert!(
            err.to_string().contains("messages.0.content.0.video"),
            "{err}"
        );
        let err = messages_from_json(&json!([{"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": "@@"}}}]}])).unwrap_err();
        assert!(err.to_string().contains("not valid base64"));
        assert!(messages_from_json(&json!([])).is_err());
    }

    #[test]
    fn errors_read_word_for_word() {
        let said = |value: Value| messages_from_json(&value).unwrap_err().to_string();
        assert_eq!(
            said(json!({})),
            "messages must be a non-empty array of {\"role\", \"content\"} objects"
        );
        assert_eq!(
            said(json!([{"role": "user"}])),
            "messages.0.content must be a string or a non-empty array of content blocks"
        );
        let in_block = |block: Value| said(json!([{"role": "user", "content": [block]}]));
        assert_eq!(
            in_block(json!({"text": "a", "image": {}})),
            "messages.0.content.0 must be an object with exactly one key (text, image, document, cachePoint)"
        );
        assert_eq!(
            in_block(json!({"text": 1})),
            "messages.0.content.0.text must be a string"
        );
        assert_eq!(
            in_block(json!({"image": {"source": {"bytes": "iVBORw=="}}})),
            "messages.0.content.0.image.format is required and must be a string"
        );
        assert_eq!(
            in_block(json!({"document": {"format": "txt", "name": "n"}})),
            "messages.0.content.0.document.source.bytes is required (base64 of the file's bytes)"
        );
        assert_eq!(
            in_block(json!({"video": {}})),
            "messages.0.content.0.video: content block \"video\" is not supported in job files (use text, image, document or cachePoint)"
        );
        let err = messages_from_json(&json!([{"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": "@@"}}}]}])).unwrap_err();
        assert!(
            std::error::Error::source(&err).is_some(),
            "the base64 error is kept as the cause"
        );
    }
}
