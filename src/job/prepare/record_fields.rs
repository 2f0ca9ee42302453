//! Reading a record's own fields: its id, fields that may be absent (CSV gives empty
//! strings for empty cells), numbers given as JSON numbers or as CSV text, and the source
//! URIs of `--expected-field`. A field of the wrong shape is a [`FieldError`], worded for
//! the record's error line.

use serde_json::{Map, Value};

use crate::job::Record;

/// Why a field of a record cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(super) enum FieldError {
    #[error("field {name:?} must be a number, got {got}")]
    NotNumber { name: String, got: Value },
    #[error("field {name:?} must be a number, got {text:?}")]
    NotNumberText { name: String, text: String },
    #[error("field {name:?} must list source URIs as strings, got {got}")]
    UriNotText { name: String, got: Value },
    #[error("field {name:?} must be a source URI or a list of them, got {got}")]
    NotUris { name: String, got: Value },
}

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
pub(super) fn optional<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    match fields.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(value) => Some(value),
    }
}

/// A numeric field, from a JSON number or a CSV string.
pub(super) fn number<T: std::str::FromStr>(
    fields: &Map<String, Value>,
    name: &str,
) -> Result<Option<T>, FieldError> {
    let Some(value) = optional(fields, name) else {
        return Ok(None);
    };
    let text = match value {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(FieldError::NotNumber {
                name: name.to_string(),
                got: other.clone(),
            });
        }
    };
    text.parse()
        .map(Some)
        .map_err(|_| FieldError::NotNumberText {
            name: name.to_string(),
            text,
        })
}

pub(super) fn estimate(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

/// The source URIs of `--expected-field`: one URI, a JSON list of them, or (in CSV) URIs
/// separated by `;`. `None` when the record leaves the field empty.
pub(super) fn expected_uris(
    fields: &Map<String, Value>,
    name: &str,
) -> Result<Option<Vec<String>>, FieldError> {
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
                other => Err(FieldError::UriNotText {
                    name: name.to_string(),
                    got: other.clone(),
                }),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(FieldError::NotUris {
            name: name.to_string(),
            got: other.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_errors_read_word_for_word() {
        let fields = json!({"n": "ten", "flag": true, "list": [1], "one": 3});
        let fields = fields.as_object().unwrap();
        let said = |err: FieldError| err.to_string();
        assert_eq!(
            said(number::<i32>(fields, "n").unwrap_err()),
            "field \"n\" must be a number, got \"ten\""
        );
        assert_eq!(
            said(number::<f32>(fields, "flag").unwrap_err()),
            "field \"flag\" must be a number, got true"
        );
        assert_eq!(
            said(expected_uris(fields, "list").unwrap_err()),
            "field \"list\" must list source URIs as strings, got 1"
        );
        assert_eq!(
            said(expected_uris(fields, "one").unwrap_err()),
            "field \"one\" must be a source URI or a list of them, got 3"
        );
    }
}
