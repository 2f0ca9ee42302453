//! The walk of a value down its shape: a structure's members in the model's order (a
//! missing required one is a violation), list items as `NAME.N.member`, a map's keys and
//! string values (each side reported once for the whole map), every string, number and
//! blob against its constraints. Violations are collected and worded by
//! [`super::refusal`]; a value of the wrong JSON type ends the walk.

use base64::Engine;
use serde_json::{Map, Value};

use super::constraints::{length_rules, range_rules, string_rules};
use super::refusal::{Refusal, Shown, validation_errors, violation, wrong_type};
use crate::rules::service_model::{Kind, ServiceModel, Shape};

/// Walks a value down its shape, collecting violations.
pub(super) struct Walker<'m> {
    model: &'m ServiceModel,
    errors: Vec<String>,
    /// How many sensitive shapes enclose the value being walked: AWS shows none of theirs.
    sensitive: usize,
}

impl<'m> Walker<'m> {
    pub(super) fn new(model: &'m ServiceModel) -> Self {
        Walker {
            model,
            errors: Vec::new(),
            sensitive: 0,
        }
    }

    /// Every violation found, as AWS reports them; none is a pass.
    pub(super) fn finish(self) -> Result<(), Refusal> {
        match self.errors.len() {
            0 => Ok(()),
            _ => Err(validation_errors(&self.errors)),
        }
    }

    fn violation(&mut self, shape: &Shape, value: Option<&Value>, path: &str, rule: &str) {
        let shown = match value {
            None | Some(Value::Null) => Shown::Null,
            Some(_) if shape.sensitive || self.sensitive > 0 => Shown::Hidden,
            Some(value) => Shown::Value(value),
        };
        self.errors.push(violation(shown, path, rule));
    }

    pub(super) fn walk(
        &mut self,
        name: &str,
        value: Option<&Value>,
        path: &str,
    ) -> Result<(), Refusal> {
        let shape = self.model.shape(name);
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return Ok(());
        };
        if shape.document {
            return Ok(());
        }
        self.sensitive += usize::from(shape.sensitive);
        let walked = self.value(shape, value, path);
        self.sensitive -= usize::from(shape.sensitive);
        walked
    }

    fn value(&mut self, shape: &Shape, value: &Value, path: &str) -> Result<(), Refusal> {
        match shape.kind {
            Kind::Structure => {
                let object = value
                    .as_object()
                    .ok_or_else(|| wrong_type(value, "a structure", path))?;
                self.structure(shape, object, path)
            }
            Kind::List => {
                let items = value
                    .as_array()
                    .ok_or_else(|| wrong_type(value, "a list", path))?;
                self.length(shape, value, items.len(), path);
                let member = &shape.member.as_ref().expect("a list has a member").shape;
                for (i, item) in items.iter().enumerate() {
                    self.walk(member, Some(item), &format!("{path}.{}.member", i + 1))?;
                }
                Ok(())
            }
            Kind::Map => {
                let entries = value
                    .as_object()
                    .ok_or_else(|| wrong_type(value, "a map", path))?;
                self.length(shape, value, entries.len(), path);
                self.map_entries(shape, value, entries, path)
            }
            Kind::String => {
                let text = value
                    .as_str()
                    .ok_or_else(|| wrong_type(value, "a string", path))?;
                for rule in string_rules(shape, text) {
                    self.violation(shape, Some(value), path, &rule);
                }
                Ok(())
            }
            Kind::Integer | Kind::Long | Kind::Float | Kind::Double => {
                let integral = matches!(shape.kind, Kind::Integer | Kind::Long);
                let number = match value {
                    Value::Number(n) if !integral || n.is_i64() || n.is_u64() => n,
                    _ => {
                        let what = if integral { "an integer" } else { "a number" };
                        return Err(wrong_type(value, what, path));
                    }
                };
                for rule in range_rules(shape, number.as_f64().unwrap_or(f64::NAN)) {
                    self.violation(shape, Some(value), path, &rule);
                }
                Ok(())
            }
            Kind::Boolean => match value {
                Value::Bool(_) => Ok(()),
                _ => Err(wrong_type(value, "a boolean", path)),
            },
            Kind::Blob => {
                let text = value
                    .as_str()
                    .ok_or_else(|| wrong_type(value, "base64 text", path))?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|_| wrong_type(value, "base64 text", path))?;
                self.length(shape, value, bytes.len(), path);
                Ok(())
            }
            Kind::Timestamp => match value {
                Value::Number(_) => Ok(()),
                Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => Ok(()),
                _ => Err(wrong_type(value, "a date-time", path)),
            },
        }
    }

    /// A structure's members: the missing required ones, then each present one.
    pub(super) fn structure(
        &mut self,
        shape: &Shape,
        object: &Map<String, Value>,
        path: &str,
    ) -> Result<(), Refusal> {
        for (name, member) in &shape.members.0 {
            // Members bound to the URI, query or headers were put under their names.
            let key = match (&member.location, &member.location_name) {
                (None, Some(wire)) => wire.as_str(),
                _ => name.as_str(),
            };
            let child = object.get(key).filter(|v| !v.is_null());
            let member_path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            if child.is_none() && shape.required.iter().any(|r| r == name) {
                let target = self.model.shape(&member.shape);
                self.violation(target, None, &member_path, "Member must not be null");
                continue;
            }
            self.walk(&member.shape, child, &member_path)?;
        }
        Ok(())
    }

    /// A map's keys and values: AWS reports each side once for the whole map.
    fn map_entries(
        &mut self,
        shape: &Shape,
        value: &Value,
        entries: &Map<String, Value>,
        path: &str,
    ) -> Result<(), Refusal> {
        let key_shape = self
            .model
            .shape(&shape.key.as_ref().expect("a map key").shape);
        let value_name = &shape.value.as_ref().expect("a map value").shape;
        let mut key_rules: Vec<String> = Vec::new();
        let mut value_rules: Vec<String> = Vec::new();
        for (key, item) in entries {
            for rule in string_rules(key_shape, key) {
                if !key_rules.contains(&rule) {
                    key_rules.push(rule);
                }
            }
            let value_shape = self.model.shape(value_name);
            match (value_shape.kind, item) {
                (Kind::String, Value::String(text)) if !value_shape.document => {
                    for rule in string_rules(value_shape, text) {
                        if !value_rules.contains(&rule) {
                            value_rules.push(rule);
                        }
                    }
                }
                _ => self.walk(value_name, Some(item), &format!("{path}.{key}.member"))?,
            }
        }
        if !key_rules.is_empty() {
            let rule = format!(
                "Map keys must satisfy constraint: [{}]",
                key_rules.join(", ")
            );
            self.violation(shape, Some(value), path, &rule);
        }
        if !value_rules.is_empty() {
            let rule = format!(
                "Map value must satisfy constraint: [{}]",
                value_rules.join(", ")
            );
            self.violation(shape, Some(value), path, &rule);
        }
        Ok(())
    }

    /// The length of a list, map or blob against `min` and `max`.
    fn length(&mut self, shape: &Shape, value: &Value, len: usize, path: &str) {
        for rule in length_rules(shape, len) {
            self.violation(shape, Some(value), path, &rule);
        }
    }

    /// A blob that is the whole body: its byte length (the bytes themselves not shown).
    pub(super) fn blob_length(&mut self, shape: &Shape, len: usize, path: &str) {
        for rule in length_rules(shape, len) {
            self.errors.push(violation(Shown::Hidden, path, &rule));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{converse, validation};
    use crate::rules::check::{HttpRequest, check_request};
    use crate::rules::service_model::Service;

    #[test]
    fn several_violations_are_counted_in_the_models_order() {
        let body = json!({
            "messages": [{"content": [{"text": "hi"}]}],
            "inferenceConfig": {"maxTokens": 0, "topP": 1.5},
        });
        assert_eq!(
            validation(converse(body)),
            "3 validation errors detected: \
             Value null at 'messages.1.member.role' failed to satisfy constraint: Member must not be null; \
             Value '0' at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than or equal to 1; \
             Value '1.5' at 'inferenceConfig.topP' failed to satisfy constraint: Member must have value less than or equal to 1"
        );
    }

    #[test]
    fn sensitive_values_are_not_repeated() {
        let body = json!({"input": {"text": "x".repeat(1001)}});
        let headers = http::HeaderMap::new();
        let body = serde_json::to_vec(&body).unwrap();
        let request = HttpRequest {
            labels: &[],
            query: None,
            headers: &headers,
            body: &body,
        };
        assert_eq!(
            validation(check_request(
                Service::AgentRuntime,
                "RetrieveAndGenerate",
                &request
            )),
            "1 validation error detected: Value at 'input.text' failed to satisfy constraint: \
             Member must have length less than or equal to 1000"
        );
    }

    #[test]
    fn map_keys_are_reported_once_for_the_map() {
        let body = json!({
            "messages": [],
            "requestMetadata": {"bad!": "x", "worse!": "y"},
        });
        let message = validation(converse(body));
        assert!(
            message.starts_with(
                "1 validation error detected: Value at 'requestMetadata' failed to satisfy \
                 constraint: Map keys must satisfy constraint: [Member must satisfy regular \
                 expression pattern: "
            ),
            "{message}"
        );
    }
}
