//! Why AWS would refuse a request, in AWS's exact words: the count of validation errors
//! and each violation (`Value '0' at 'inferenceConfig.maxTokens' failed to satisfy
//! constraint: ...`, a sensitive value not repeated), or a serialization error for a body
//! that is not JSON or a member of the wrong JSON type (that wording is ours).

use serde_json::Value;

/// Why AWS would refuse a request before reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `ValidationException`: every broken constraint, counted, in AWS's words.
    Validation(String),
    /// `SerializationException`: a body that is not JSON, or a member of the wrong type.
    Serialization(String),
}

impl Refusal {
    pub fn message(&self) -> &str {
        match self {
            Refusal::Validation(m) | Refusal::Serialization(m) => m,
        }
    }
}

/// How a violation shows the value it is about.
pub(super) enum Shown<'a> {
    /// Absent or null: `Value null`.
    Null,
    /// Of a sensitive shape, or the whole body: `Value`.
    Hidden,
    /// `Value 'robot'`.
    Value(&'a Value),
}

/// One broken constraint: `Value '0' at 'x' failed to satisfy constraint: RULE`.
pub(super) fn violation(shown: Shown, path: &str, rule: &str) -> String {
    let shown = match shown {
        Shown::Null => "Value null".to_string(),
        Shown::Hidden => "Value".to_string(),
        Shown::Value(Value::String(s)) => format!("Value '{s}'"),
        Shown::Value(other) => format!("Value '{other}'"),
    };
    format!("{shown} at '{path}' failed to satisfy constraint: {rule}")
}

/// The refusal for `errors` (at least one), counted: `2 validation errors detected: A; B`.
pub(super) fn validation_errors(errors: &[String]) -> Refusal {
    let n = errors.len();
    Refusal::Validation(format!(
        "{n} validation error{} detected: {}",
        if n == 1 { "" } else { "s" },
        errors.join("; ")
    ))
}

/// A member of the wrong JSON type: `Expected an integer at 'x' but found a string.`
pub(super) fn wrong_type(value: &Value, expected: &str, path: &str) -> Refusal {
    let found = match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    Refusal::Serialization(format!(
        "Expected {expected} at '{path}' but found {found}."
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::converse;
    use super::Refusal;
    use crate::rules::check::{HttpRequest, check_request};
    use crate::rules::service_model::Service;

    #[test]
    fn wrong_json_types_are_serialization_errors() {
        let body = json!({"messages": [], "inferenceConfig": {"maxTokens": "ten"}});
        assert_eq!(
            converse(body),
            Err(Refusal::Serialization(
                "Expected an integer at 'inferenceConfig.maxTokens' but found a string.".into()
            ))
        );
        let headers = http::HeaderMap::new();
        let request = HttpRequest {
            labels: &[("modelId", "m.x")],
            query: None,
            headers: &headers,
            body: b"{not json",
        };
        assert!(matches!(
            check_request(Service::Runtime, "Converse", &request),
            Err(Refusal::Serialization(_))
        ));
    }
}
