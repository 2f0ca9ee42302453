//! Turning a record into a request: its id, model, the rendered prompt (or raw messages,
//! text to embed, native body), inference settings with per-record overrides, and the
//! fields kept for the result line. Everything that can be wrong with a record is found
//! here, before any call and in `--dry-run`.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::Record;
use super::media::{MediaLoader, check_document_count};
use super::messages::{messages_from_json, text_len};
use crate::job::template::Template;
use crate::vocab::schema::{OutputSchema, SchemaRoute};
use crate::vocab::{
    ConverseInput, DocumentInput, InvalidRecord, Mode, Payload, Prepared, Prompt, RecordMeta,
    ServiceTier,
};

/// The record's id: its `id_field` (`--id-field`) when given, else `id`, else `recordId`;
/// its number when the field is missing or empty.
pub fn record_id(record: &Record, id_field: Option<&str>) -> Value {
    let field = match id_field {
        Some(name) => record.fields.get(name),
        None => record
            .fields
            .get("id")
            .or_else(|| record.fields.get("recordId")),
    };
    match field {
        Some(Value::Null) | None => Value::from(record.number),
        Some(Value::String(s)) if s.is_empty() => Value::from(record.number),
        Some(id) => id.clone(),
    }
}

/// A field that may be absent: CSV gives empty strings for empty cells.
fn optional<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    match fields.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(value) => Some(value),
    }
}

/// A numeric field, from a JSON number or a CSV string.
fn number<T: std::str::FromStr>(
    fields: &Map<String, Value>,
    name: &str,
) -> Result<Option<T>, String> {
    let Some(value) = optional(fields, name) else {
        return Ok(None);
    };
    let text = match value {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        other => return Err(format!("field {name:?} must be a number, got {other}")),
    };
    text.parse()
        .map(Some)
        .map_err(|_| format!("field {name:?} must be a number, got {text:?}"))
}

fn estimate(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

/// Prepares `record` under `settings`, reading its images and documents with `media`.
pub fn prepare(
    record: &Record,
    settings: &RequestSettings,
    media: &mut MediaLoader,
) -> Result<Prepared, InvalidRecord> {
    let id = record_id(record, settings.id_field.as_deref());
    let invalid = |kind: &'static str, message: String| InvalidRecord {
        number: record.number,
        line: record.line,
        id: Some(id.clone()),
        kind,
        message: format!("line {}: {message}", record.line),
    };
    let fields = &record.fields;
    let mut warnings = Vec::new();
    let model = match optional(fields, "model") {
        // A retrieval is counted and paced under its knowledge base, whatever the record says.
        _ if settings.mode == Mode::Retrieve => settings.model.clone(),
        None => settings.model.clone(),
        Some(Value::String(m)) => m.trim().to_string(),
        Some(other) => {
            return Err(invalid(
                "invalid_field",
                format!("field \"model\" must be a string, got {other}"),
            ));
        }
    };
    let render = || {
        settings.template.render(fields).map_err(|missing| {
            invalid(
                "missing_field",
                format!(
                    "the prompt template uses {{{}}} but the record has no {:?} field",
                    missing.field, missing.field
                ),
            )
        })
    };
    let (payload, estimated_chars) = match settings.mode {
        Mode::Converse => {
            let system = match optional(fields, "system") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => {
                    return Err(invalid(
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
                            invalid(
                                "invalid_messages",
                                format!("field \"messages\" is not valid JSON: {err}"),
                            )
                        })?,
                        other => other.clone(),
                    };
                    let messages =
                        messages_from_json(&raw).map_err(|err| invalid("invalid_messages", err))?;
                    let chars = text_len(&messages);
                    (Prompt::Messages(messages), chars)
                }
                None => {
                    let text = render()?;
                    if text.trim().is_empty() {
                        return Err(invalid(
                            "empty_prompt",
                            "the rendered prompt is empty".to_string(),
                        ));
                    }
                    let chars = text.chars().count();
                    (Prompt::Text(text), chars)
                }
            };
            let field_error = |e: String| invalid("invalid_field", e);
            let max_tokens = number::<i32>(fields, "max_tokens")
                .map_err(field_error)?
                .or(settings.max_tokens);
            if max_tokens.is_some_and(|m| m < 1) {
                return Err(invalid(
                    "invalid_field",
                    "field \"max_tokens\" must be at least 1".into(),
                ));
            }
            let temperature = number::<f32>(fields, "temperature")
                .map_err(field_error)?
                .or(settings.temperature);
            let top_p = number::<f32>(fields, "top_p")
                .map_err(field_error)?
                .or(settings.top_p);
            for (name, value) in [("temperature", temperature), ("top_p", top_p)] {
                if value.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
                    return Err(invalid(
                        "invalid_field",
                        format!("field {name:?} must be between 0 and 1"),
                    ));
                }
            }
            let system_chars = system.as_ref().map_or(0, |s| s.chars().count());
            let media_error = |e: super::media::MediaError| invalid(e.kind, e.message);
            let images = match optional(fields, &settings.image_field) {
                Some(value) => media.images(value, &mut warnings).map_err(media_error)?,
                None => Vec::new(),
            };
            let documents = match optional(fields, &settings.document_field) {
                Some(value) => media.documents(value, &mut warnings).map_err(media_error)?,
                None => Vec::new(),
            };
            check_document_count(documents.len() + settings.shared_documents.len())
                .map_err(media_error)?;
            if matches!(prompt, Prompt::Messages(_)) && !(images.is_empty() && documents.is_empty())
            {
                return Err(invalid(
                    "invalid_field",
                    "a record with raw \"messages\" carries its images and documents inside them, not in separate fields".into(),
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
            (
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
            )
        }
        Mode::Embed => {
            let text = render()?;
            if text.is_empty() {
                return Err(invalid(
                    "empty_prompt",
                    "the text to embed is empty".to_string(),
                ));
            }
            let chars = text.chars().count();
            (Payload::Embed { text }, chars)
        }
        Mode::Invoke => {
            let body = optional(fields, "body")
                .or_else(|| optional(fields, "modelInput"))
                .ok_or_else(|| {
                    invalid(
                        "missing_field",
                        "--mode invoke sends the record's \"body\" (or \"modelInput\") object, and this record has neither".into(),
                    )
                })?;
            let body = match body {
                Value::Object(_) => body.clone(),
                Value::String(text) => match serde_json::from_str::<Value>(text) {
                    Ok(value @ Value::Object(_)) => value,
                    _ => {
                        return Err(invalid(
                            "invalid_field",
                            "field \"body\" must be a JSON object (or, in CSV, the text of one)"
                                .into(),
                        ));
                    }
                },
                other => {
                    return Err(invalid(
                        "invalid_field",
                        format!("field \"body\" must be a JSON object, got {other}"),
                    ));
                }
            };
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            let chars = bytes.len();
            (Payload::Invoke { body: bytes }, chars)
        }
        Mode::Retrieve | Mode::Rag => {
            let query = render()?;
            if query.trim().is_empty() {
                return Err(invalid("empty_prompt", "the query is empty".to_string()));
            }
            let chars = query.chars().count();
            let payload = match settings.mode {
                Mode::Rag => Payload::Rag { query },
                _ => Payload::Retrieve { query },
            };
            (payload, chars)
        }
    };
    let expected = match &settings.expected_field {
        Some(name) => expected_uris(fields, name).map_err(|e| invalid("invalid_field", e))?,
        None => None,
    };
    let kept = (!settings.keep_fields.is_empty()).then(|| {
        settings
            .keep_fields
            .iter()
            .map(|name| {
                (
                    name.clone(),
                    fields.get(name).cloned().unwrap_or(Value::Null),
                )
            })
            .collect()
    });
    let service_tier = match optional(fields, "service_tier") {
        _ if matches!(settings.mode, Mode::Retrieve | Mode::Rag) => None,
        None | Some(Value::Null) => settings.service_tier,
        Some(Value::String(tier)) if tier.trim().is_empty() => settings.service_tier,
        Some(Value::String(tier)) => Some(ServiceTier::parse(tier.trim()).ok_or_else(|| {
            invalid(
                "invalid_field",
                format!("field \"service_tier\" must be default, priority or flex, got {tier:?}"),
            )
        })?),
        Some(other) => {
            return Err(invalid(
                "invalid_field",
                format!("field \"service_tier\" must be default, priority or flex, got {other}"),
            ));
        }
    };
    // The schema rides along with every Converse call as the tool's input schema.
    let schema_chars = match (&settings.schema, settings.mode) {
        (Some(schema), Mode::Converse) => schema.chars(),
        _ => 0,
    };
    Ok(Prepared {
        meta: RecordMeta {
            number: record.number,
            line: record.line,
            id,
            kept,
            warnings,
            expected,
        },
        model,
        service_tier,
        payload,
        estimated_input_tokens: estimate(estimated_chars + schema_chars),
    })
}

/// The source URIs of `--expected-field`: one URI, a JSON list of them, or (in CSV) URIs
/// separated by `;`. `None` when the record leaves the field empty.
fn expected_uris(fields: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, String> {
    let split = |text: &str| -> Vec<String> {
        text.split(';')
            .map(str::trim)
            .filter(|uri| !uri.is_empty())
            .map(str::to_string)
            .collect()
    };
    match optional(fields, name) {
        None => Ok(None),
        Some(Value::String(text)) => match serde_json::from_str::<Vec<String>>(text) {
            Ok(list) => Ok(Some(list)),
            Err(_) => Ok(Some(split(text))),
        },
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(uri) => Ok(uri.trim().to_string()),
                other => Err(format!(
                    "field {name:?} must list source URIs as strings, got {other}"
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(format!(
            "field {name:?} must be a source URI or a list of them, got {other}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_settings;
    use serde_json::json;

    fn settings(mode: Mode, template: &str) -> RequestSettings {
        RequestSettings {
            system: Some("Be brief.".into()),
            max_tokens: Some(100),
            keep_fields: vec!["customer".into(), "absent".into()],
            ..test_settings("anthropic.claude-3-haiku-20240307-v1:0", mode, template)
        }
    }

    fn media() -> MediaLoader {
        MediaLoader::new(std::path::Path::new("job.jsonl"))
    }

    fn record(fields: Value) -> Record {
        Record {
            number: 7,
            line: 9,
            fields: fields.as_object().unwrap().clone(),
        }
    }

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

    #[test]
    fn knowledge_base_queries_and_expected_sources() {
        let s = RequestSettings {
            expected_field: Some("expected".into()),
            ..settings(Mode::Retrieve, "{question}")
        };
        let p = prepare(
            &record(json!({"question": "How long do refunds take?", "expected": "s3://b/a.md"})),
            &s,
            &mut media(),
        )
        .unwrap();
        assert!(
            matches!(p.payload, Payload::Retrieve { ref query } if query == "How long do refunds take?")
        );
        assert_eq!(p.meta.expected, Some(vec!["s3://b/a.md".to_string()]));
        let p = prepare(
            &record(json!({"question": "q", "expected": ["s3://b/a.md", "s3://b/c.md"]})),
            &RequestSettings {
                mode: Mode::Rag,
                ..s.clone()
            },
            &mut media(),
        )
        .unwrap();
        assert!(matches!(p.payload, Payload::Rag { .. }));
        assert_eq!(p.meta.expected.map(|e| e.len()), Some(2));
        // A CSV cell lists several with ";"; an empty one leaves the record unscored.
        let p = prepare(
            &record(json!({"question": "q", "expected": "s3://b/a.md; s3://b/c.md"})),
            &s,
            &mut media(),
        )
        .unwrap();
        assert_eq!(p.meta.expected.map(|e| e.len()), Some(2));
        let p = prepare(
            &record(json!({"question": "q", "expected": ""})),
            &s,
            &mut media(),
        )
        .unwrap();
        assert_eq!(p.meta.expected, None);
        let err = prepare(
            &record(json!({"question": "q", "expected": 3})),
            &s,
            &mut media(),
        )
        .unwrap_err();
        assert_eq!(err.kind, "invalid_field");
    }

    #[test]
    fn embed_and_invoke() {
        let p = prepare(
            &record(json!({"id": 3, "text": "vector me"})),
            &settings(Mode::Embed, "{text}"),
            &mut media(),
        )
        .unwrap();
        assert!(matches!(p.payload, Payload::Embed { ref text } if text == "vector me"));
        assert_eq!(p.meta.id, json!(3));
        let s = settings(Mode::Invoke, "{text}");
        let p = prepare(
            &record(json!({"modelInput": {"inputText": "x"}})),
            &s,
            &mut media(),
        )
        .unwrap();
        assert!(
            matches!(p.payload, Payload::Invoke { ref body } if body == br#"{"inputText":"x"}"#)
        );
        let p = prepare(
            &record(json!({"body": "{\"prompt\": \"hi\"}"})),
            &s,
            &mut media(),
        )
        .unwrap();
        assert!(matches!(p.payload, Payload::Invoke { .. }));
        assert_eq!(
            prepare(&record(json!({"text": "x"})), &s, &mut media())
                .unwrap_err()
                .kind,
            "missing_field"
        );
        assert_eq!(
            prepare(&record(json!({"body": "[1]"})), &s, &mut media())
                .unwrap_err()
                .kind,
            "invalid_field"
        );
    }
}

/// How records become requests.
#[derive(Debug, Clone)]
pub struct RequestSettings {
    pub model: String,
    pub mode: Mode,
    pub template: Template,
    /// The template as given, for the run's fingerprint.
    pub template_text: String,
    pub system: Option<String>,
    pub max_tokens: Option<i32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub stop: Vec<String>,
    pub dimensions: Option<u32>,
    pub normalize: bool,
    pub input_type: String,
    pub batch_size: usize,
    pub keep_fields: Vec<String>,
    /// The record field (or CSV column) holding images, and the one holding documents.
    pub image_field: String,
    pub document_field: String,
    /// Documents sent with every record (`--document`), ahead of the record's own.
    pub shared_documents: Vec<DocumentInput>,
    /// Where they came from, for the run's fingerprint.
    pub shared_document_paths: Vec<String>,
    pub cache_prompt: bool,
    pub stream: bool,
    /// `--schema`: sent with every Converse call, so counted in every input estimate.
    pub schema: Option<Arc<OutputSchema>>,
    /// `--id-field`: the field holding each record's id.
    pub id_field: Option<String>,
    /// How the schema is sent: native structured output or a forced tool.
    pub schema_route: SchemaRoute,
    /// `--service-tier`, for records that name none.
    pub service_tier: Option<ServiceTier>,
    /// The record field naming the sources a good knowledge-base answer retrieves or cites.
    pub expected_field: Option<String>,
}
