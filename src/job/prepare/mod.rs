//! Turning a record into a request: its id, model, the rendered prompt (or raw messages,
//! text to embed, native body), inference settings with per-record overrides, and the
//! fields kept for the result line. Everything that can be wrong with a record is found
//! here, before any call and in `--dry-run`. This file holds the run's
//! [`RequestSettings`] and what every request shares (model, service tier, kept fields,
//! expected sources, the input estimate) and the payloads of the modes other than Converse;
//! [`converse_input`] assembles a Converse request, [`record_fields`] reads the fields.

mod converse_input;
mod record_fields;

pub use record_fields::record_id;

use serde_json::Value;

use super::Record;
use super::media::MediaLoader;
use crate::vocab::template::Template;
use crate::vocab::{
    InvalidRecord, Mode, Payload, Prepared, RecordMeta, RequestSettings, ServiceTier,
};
use record_fields::{estimate, expected_uris, optional};

/// The record being prepared: every error it gets names its line and its id.
struct RecordAt<'a> {
    record: &'a Record,
    id: &'a Value,
}

impl RecordAt<'_> {
    /// The record's error line: `kind`, and `message` after the record's line.
    fn invalid(&self, kind: &'static str, message: impl std::fmt::Display) -> InvalidRecord {
        InvalidRecord {
            number: self.record.number,
            line: self.record.line,
            id: Some(self.id.clone()),
            kind,
            message: format!("line {}: {message}", self.record.line),
        }
    }

    /// `template` filled from the record's fields.
    fn render(&self, template: &Template) -> Result<String, InvalidRecord> {
        template.render(&self.record.fields).map_err(|missing| {
            self.invalid(
                "missing_field",
                format!(
                    "the prompt template uses {{{}}} but the record has no {:?} field",
                    missing.field, missing.field
                ),
            )
        })
    }
}

/// Prepares `record` under `settings`, reading its images and documents with `media`.
pub fn prepare(
    record: &Record,
    settings: &RequestSettings,
    media: &mut MediaLoader,
) -> Result<Prepared, InvalidRecord> {
    let id = record_id(record, settings.id_field.as_deref());
    let at = RecordAt { record, id: &id };
    let fields = &record.fields;
    let mut warnings = Vec::new();
    let model = match optional(fields, "model") {
        // A retrieval is counted and paced under its knowledge base, whatever the record says.
        _ if settings.mode == Mode::Retrieve => settings.model.clone(),
        None => settings.model.clone(),
        Some(Value::String(m)) => m.trim().to_string(),
        Some(other) => {
            return Err(at.invalid(
                "invalid_field",
                format!("field \"model\" must be a string, got {other}"),
            ));
        }
    };
    let (payload, estimated_chars) = match settings.mode {
        Mode::Converse => converse_input::converse(&at, settings, media, &mut warnings)?,
        Mode::Embed => {
            let text = at.render(&settings.template)?;
            if text.is_empty() {
                return Err(at.invalid("empty_prompt", "the text to embed is empty".to_string()));
            }
            let chars = text.chars().count();
            (Payload::Embed { text }, chars)
        }
        Mode::Invoke => {
            let body = optional(fields, "body")
                .or_else(|| optional(fields, "modelInput"))
                .ok_or_else(|| {
                    at.invalid(
                        "missing_field",
                        "--mode invoke sends the record's \"body\" (or \"modelInput\") object, and this record has neither",
                    )
                })?;
            let body = match body {
                Value::Object(_) => body.clone(),
                Value::String(text) => match serde_json::from_str::<Value>(text) {
                    Ok(value @ Value::Object(_)) => value,
                    _ => {
                        return Err(at.invalid(
                            "invalid_field",
                            "field \"body\" must be a JSON object (or, in CSV, the text of one)",
                        ));
                    }
                },
                other => {
                    return Err(at.invalid(
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
            let query = at.render(&settings.template)?;
            if query.trim().is_empty() {
                return Err(at.invalid("empty_prompt", "the query is empty".to_string()));
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
        Some(name) => expected_uris(fields, name).map_err(|e| at.invalid("invalid_field", e))?,
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
            at.invalid(
                "invalid_field",
                format!("field \"service_tier\" must be default, priority or flex, got {tier:?}"),
            )
        })?),
        Some(other) => {
            return Err(at.invalid(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::RequestSettings;
    use serde_json::json;

    pub(super) fn settings(mode: Mode, template: &str) -> RequestSettings {
        RequestSettings {
            system: Some("Be brief.".into()),
            max_tokens: Some(100),
            keep_fields: vec!["customer".into(), "absent".into()],
            ..RequestSettings::plain("anthropic.claude-3-haiku-20240307-v1:0", mode, template)
                .unwrap()
        }
    }

    pub(super) fn media() -> MediaLoader {
        MediaLoader::new(std::path::Path::new("job.jsonl"))
    }

    pub(super) fn record(fields: Value) -> Record {
        Record {
            number: 7,
            line: 9,
            fields: fields.as_object().unwrap().clone(),
        }
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
