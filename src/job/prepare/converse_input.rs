//! A record's Converse request: its system prompt, the rendered prompt or the record's raw
//! `messages`, inference settings (the record's own over the run's, checked against their
//! ranges), its images and documents (beside the run's shared documents), and the
//! characters the input estimate counts for all of them (media as Bedrock counts them).

use serde_json::Value;

use super::record_fields::{FieldError, number, optional};
use super::{RecordAt, RequestSettings};
use crate::job::media::{MediaError, MediaLoader, check_document_count};
use crate::job::messages::{messages_from_json, text_len};
use crate::vocab::{ConverseInput, InvalidRecord, Payload, Prompt};

/// The Converse payload of the record `at`, and the characters of its input; warnings
/// about its media (a format corrected, a name changed) go to `warnings`.
pub(super) fn converse(
    at: &RecordAt,
    settings: &RequestSettings,
    media: &mut MediaLoader,
    warnings: &mut Vec<String>,
) -> Result<(Payload, usize), InvalidRecord> {
    let fields = &at.record.fields;
    let system = match optional(fields, "system") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(at.invalid(
                "invalid_field",
                format!("field \"system\" must be a string, got {other}"),
            ));
        }
        None => settings.system.clone(),
    };
    let (prompt, prompt_chars) = match optional(fields, "messages") {
        Some(raw) => {
            let raw = match raw {
                // CSV cells hold JSON text.
                Value::String(text) => serde_json::from_str(text).map_err(|err| {
                    at.invalid(
                        "invalid_messages",
                        format!("field \"messages\" is not valid JSON: {err}"),
                    )
                })?,
                other => other.clone(),
            };
            let messages =
                messages_from_json(&raw).map_err(|err| at.invalid("invalid_messages", err))?;
            let chars = text_len(&messages);
            (Prompt::Messages(messages), chars)
        }
        None => {
            let text = at.render(&settings.template)?;
            if text.trim().is_empty() {
                return Err(at.invalid("empty_prompt", "the rendered prompt is empty".to_string()));
            }
            let chars = text.chars().count();
            (Prompt::Text(text), chars)
        }
    };
    let field_error = |e: FieldError| at.invalid("invalid_field", e);
    let max_tokens = number::<i32>(fields, "max_tokens")
        .map_err(field_error)?
        .or(settings.max_tokens);
    if max_tokens.is_some_and(|m| m < 1) {
        return Err(at.invalid("invalid_field", "field \"max_tokens\" must be at least 1"));
    }
    let temperature = number::<f32>(fields, "temperature")
        .map_err(field_error)?
        .or(settings.temperature);
    let top_p = number::<f32>(fields, "top_p")
        .map_err(field_error)?
        .or(settings.top_p);
    for (name, value) in [("temperature", temperature), ("top_p", top_p)] {
        if value.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
            return Err(at.invalid(
                "invalid_field",
                format!("field {name:?} must be between 0 and 1"),
            ));
        }
    }
    let system_chars = system.as_ref().map_or(0, |s| s.chars().count());
    let media_error = |e: MediaError| at.invalid(e.kind, e.message);
    let images = match optional(fields, &settings.image_field) {
        Some(value) => media.images(value, warnings).map_err(media_error)?,
        None => Vec::new(),
    };
    let documents = match optional(fields, &settings.document_field) {
        Some(value) => media.documents(value, warnings).map_err(media_error)?,
        None => Vec::new(),
    };
    check_document_count(documents.len() + settings.shared_documents.len()).map_err(media_error)?;
    if matches!(prompt, Prompt::Messages(_)) && !(images.is_empty() && documents.is_empty()) {
        return Err(at.invalid(
            "invalid_field",
            "a record with raw \"messages\" carries its images and documents inside them, not in separate fields",
        ));
    }
    // Tokens the way Bedrock counts media: width x height / 750, four bytes a token.
    let media_chars = images
        .iter()
        .map(|i| (i.width * i.height).div_ceil(750).max(1) * 4)
        .chain(
            documents
                .iter()
                .chain(&settings.shared_documents)
                .map(|d| d.bytes.len()),
        )
        .sum::<usize>();
    Ok((
        Payload::Converse(ConverseInput {
            system,
            prompt,
            images,
            documents,
            max_tokens,
            temperature,
            top_p,
            stop: settings.stop.clone(),
        }),
        prompt_chars + system_chars + media_chars,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::prepare;
    use super::super::tests::{media, record, settings};
    use crate::vocab::{Mode, Payload, Prompt};
    use serde_json::json;

    #[test]
    fn converse_with_overrides() {
        let r = record(
            json!({"recordId": "r-1", "body": "Hello there", "max_tokens": "20",
            "system": "Custom.", "customer": 42, "model": "meta.llama3-1-8b-instruct-v1:0"}),
        );
        let p = prepare(
            &r,
            &settings(Mode::Converse, "Summarize: {body}"),
            &mut media(),
        )
        .unwrap();
        assert_eq!(p.meta.id, json!("r-1"));
        assert_eq!(p.model, "meta.llama3-1-8b-instruct-v1:0");
        assert_eq!(
            p.meta.kept.unwrap(),
            json!({"customer": 42, "absent": null})
                .as_object()
                .unwrap()
                .clone()
        );
        let Payload::Converse(input) = p.payload else {
            panic!()
        };
        assert_eq!(input.max_tokens, Some(20));
        assert_eq!(input.system.as_deref(), Some("Custom."));
        let Prompt::Text(text) = input.prompt else {
            panic!()
        };
        assert_eq!(text, "Summarize: Hello there");
        // 22 + 7 characters.
        assert_eq!(p.estimated_input_tokens, 8);
    }

    #[test]
    fn bad_records() {
        let s = settings(Mode::Converse, "{text}");
        let err = prepare(&record(json!({"body": "x"})), &s, &mut media()).unwrap_err();
        assert_eq!(err.kind, "missing_field");
        assert_eq!(err.id, Some(json!(7)));
        assert!(
            err.message
                .starts_with("line 9: the prompt template uses {text}"),
            "{}",
            err.message
        );
        let err = prepare(
            &record(json!({"text": "x", "temperature": "hot"})),
            &s,
            &mut media(),
        )
        .unwrap_err();
        assert_eq!(err.kind, "invalid_field");
        let err = prepare(&record(json!({"text": "x", "top_p": 2})), &s, &mut media()).unwrap_err();
        assert!(err.message.contains("top_p"));
        let err = prepare(
            &record(json!({"messages": [{"role": "user"}]})),
            &s,
            &mut media(),
        )
        .unwrap_err();
        assert_eq!(err.kind, "invalid_messages");
    }
}
