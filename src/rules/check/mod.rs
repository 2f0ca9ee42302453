//! Checks a request against its operation's input shape, as AWS's front end does before
//! anything else: required members, JSON types, lengths, value ranges, patterns, enums,
//! list and map sizes, wherever the member travels (path label, query string, header or
//! JSON body). Violations are counted and worded as AWS words them:
//!
//! `2 validation errors detected: Value '0' at 'inferenceConfig.maxTokens' failed to
//! satisfy constraint: Member must have value greater than or equal to 1; Value null at
//! 'messages.1.member.role' failed to satisfy constraint: Member must not be null`
//!
//! Paths name members as the model does, list items as `NAME.N.member` (from 1); a value of
//! a sensitive shape is not repeated (`Value at 'x'`). A body that is not JSON, or a member
//! of the wrong JSON type, is a `SerializationException` as with AWS (its wording is ours).
//! Unions are checked member by member (AWS's rule of exactly one member set is not a
//! model constraint and is left to the handlers).

use base64::Engine;
use serde_json::{Map, Value};

use super::service_model::{Kind, Service, ServiceModel, Shape};

/// An HTTP request as the local server received it.
pub struct HttpRequest<'a> {
    /// The path labels of the operation's URI (`modelId`), already percent-decoded.
    pub labels: &'a [(&'a str, &'a str)],
    /// The raw query string.
    pub query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
}

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

/// Checks `request`, sent to `operation` of `service`, against the operation's input shape.
pub fn check_request(
    service: Service,
    operation: &str,
    request: &HttpRequest,
) -> Result<(), Refusal> {
    let model = service.model();
    let Some(input) = &model.operation(operation).input else {
        return Ok(());
    };
    let shape = model.shape(&input.shape);
    let payload = shape.payload.as_deref();
    let payload_is_blob = payload.is_some_and(|name| {
        shape
            .members
            .0
            .iter()
            .any(|(n, m)| n == name && model.shape(&m.shape).kind == Kind::Blob)
    });
    let mut object = if payload_is_blob {
        Map::new()
    } else {
        body_object(request.body)?
    };
    let query: Vec<(String, String)> = request
        .query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let mut walker = Walker::new(model);
    for (name, member) in &shape.members.0 {
        let target = model.shape(&member.shape);
        let wire = member.location_name.as_deref().unwrap_or(name);
        if payload_is_blob && payload == Some(name.as_str()) {
            walker.blob_length(target, request.body.len(), name);
            continue;
        }
        let bound = match member.location.as_deref() {
            Some("uri") => request
                .labels
                .iter()
                .find(|(label, _)| *label == wire)
                .map(|(_, v)| vec![v.to_string()]),
            Some("querystring") => {
                let values: Vec<String> = query
                    .iter()
                    .filter(|(k, _)| k == wire)
                    .map(|(_, v)| v.clone())
                    .collect();
                (!values.is_empty()).then_some(values)
            }
            Some("header") => request
                .headers
                .get(wire)
                .and_then(|v| v.to_str().ok())
                .map(|v| vec![v.to_string()]),
            _ => continue,
        };
        match bound {
            Some(values) => {
                if let Some(value) = bound_value(target, values, name)? {
                    object.insert(name.clone(), value);
                }
            }
            None => {
                object.remove(name);
            }
        }
    }
    walker.structure(shape, &object, "")?;
    walker.finish()
}

/// Checks an operation's input given as one JSON object of all its members by name, as the
/// runner builds a request before sending it.
pub fn check_input(service: Service, operation: &str, input: &Value) -> Result<(), Refusal> {
    let model = service.model();
    let Some(target) = &model.operation(operation).input else {
        return Ok(());
    };
    let mut walker = Walker::new(model);
    walker.walk(&target.shape, Some(input), "")?;
    walker.finish()
}

/// Checks one value against a named shape of the model, reported at `path`: a flag the
/// runner will send as that member (`RoleArn` at `roleArn`).
pub fn check_shape(
    service: Service,
    shape: &str,
    value: &Value,
    path: &str,
) -> Result<(), Refusal> {
    let mut walker = Walker::new(service.model());
    walker.walk(shape, Some(value), path)?;
    walker.finish()
}

fn body_object(body: &[u8]) -> Result<Map<String, Value>, Refusal> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Refusal::Serialization(
            "The request body must be a JSON object.".into(),
        )),
        Err(err) => Err(Refusal::Serialization(format!(
            "The request body is not valid JSON: {err}"
        ))),
    }
}

/// A member bound to the URI, query string or a header, as the JSON value the body would
/// carry. Map-typed headers (JSON in a header) are not checked.
fn bound_value(shape: &Shape, values: Vec<String>, name: &str) -> Result<Option<Value>, Refusal> {
    let first = values.first().cloned().unwrap_or_default();
    let wrong =
        |what: &str| Refusal::Serialization(format!("Value '{first}' at '{name}' is not {what}."));
    Ok(Some(match shape.kind {
        Kind::List => Value::Array(values.into_iter().map(Value::String).collect()),
        Kind::Integer | Kind::Long => {
            Value::from(first.parse::<i64>().map_err(|_| wrong("an integer"))?)
        }
        Kind::Float | Kind::Double => {
            Value::from(first.parse::<f64>().map_err(|_| wrong("a number"))?)
        }
        Kind::Boolean => Value::Bool(first.parse::<bool>().map_err(|_| wrong("a boolean"))?),
        Kind::Timestamp => {
            chrono::DateTime::parse_from_rfc3339(&first).map_err(|_| wrong("a date-time"))?;
            Value::String(first)
        }
        Kind::Map | Kind::Structure => return Ok(None),
        Kind::String | Kind::Blob => Value::String(first),
    }))
}

/// Walks a value down its shape, collecting violations.
struct Walker<'m> {
    model: &'m ServiceModel,
    errors: Vec<String>,
    /// How many sensitive shapes enclose the value being walked: AWS shows none of theirs.
    sensitive: usize,
}

impl<'m> Walker<'m> {
    fn new(model: &'m ServiceModel) -> Self {
        Walker {
            model,
            errors: Vec::new(),
            sensitive: 0,
        }
    }

    fn finish(self) -> Result<(), Refusal> {
        match self.errors.len() {
            0 => Ok(()),
            n => Err(Refusal::Validation(format!(
                "{n} validation error{} detected: {}",
                if n == 1 { "" } else { "s" },
                self.errors.join("; ")
            ))),
        }
    }

    fn violation(&mut self, shape: &Shape, value: Option<&Value>, path: &str, rule: &str) {
        let shown = match value {
            None | Some(Value::Null) => "Value null".to_string(),
            Some(_) if shape.sensitive || self.sensitive > 0 => "Value".to_string(),
            Some(Value::String(s)) => format!("Value '{s}'"),
            Some(other) => format!("Value '{other}'"),
        };
        self.errors.push(format!(
            "{shown} at '{path}' failed to satisfy constraint: {rule}"
        ));
    }

    fn walk(&mut self, name: &str, value: Option<&Value>, path: &str) -> Result<(), Refusal> {
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
                let x = number.as_f64().unwrap_or(f64::NAN);
                if let Some(min) = &shape.min
                    && x < min.as_f64().unwrap_or(f64::NEG_INFINITY)
                {
                    let rule = format!("Member must have value greater than or equal to {min}");
                    self.violation(shape, Some(value), path, &rule);
                }
                if let Some(max) = &shape.max
                    && x > max.as_f64().unwrap_or(f64::INFINITY)
                {
                    let rule = format!("Member must have value less than or equal to {max}");
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
    fn structure(
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
    fn blob_length(&mut self, shape: &Shape, len: usize, path: &str) {
        for rule in length_rules(shape, len) {
            self.errors.push(format!(
                "Value at '{path}' failed to satisfy constraint: {rule}"
            ));
        }
    }
}

fn wrong_type(value: &Value, expected: &str, path: &str) -> Refusal {
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

/// The rules a string breaks: enum, length (in characters), pattern (the whole string).
fn string_rules(shape: &Shape, text: &str) -> Vec<String> {
    let mut rules = Vec::new();
    if let Some(values) = &shape.enumeration
        && !values.iter().any(|v| v == text)
    {
        rules.push(format!(
            "Member must satisfy enum value set: [{}]",
            values.join(", ")
        ));
    }
    rules.extend(length_rules(shape, text.chars().count()));
    if let (Some(pattern), Some(regex)) = (&shape.pattern, shape.regex())
        && !regex.is_match(text)
    {
        rules.push(format!(
            "Member must satisfy regular expression pattern: {pattern}"
        ));
    }
    rules
}

fn length_rules(shape: &Shape, len: usize) -> Vec<String> {
    let mut rules = Vec::new();
    if let Some(min) = &shape.min
        && (len as f64) < min.as_f64().unwrap_or(0.0)
    {
        rules.push(format!(
            "Member must have length greater than or equal to {min}"
        ));
    }
    if let Some(max) = &shape.max
        && (len as f64) > max.as_f64().unwrap_or(f64::INFINITY)
    {
        rules.push(format!(
            "Member must have length less than or equal to {max}"
        ));
    }
    rules
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn converse(body: Value) -> Result<(), Refusal> {
        let body = serde_json::to_vec(&body).unwrap();
        let headers = http::HeaderMap::new();
        let request = HttpRequest {
            labels: &[("modelId", "anthropic.claude-3-haiku-20240307-v1:0")],
            query: None,
            headers: &headers,
            body: &body,
        };
        check_request(Service::Runtime, "Converse", &request)
    }

    fn validation(result: Result<(), Refusal>) -> String {
        match result {
            Err(Refusal::Validation(message)) => message,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_request_passes() {
        let body = json!({
            "messages": [{"role": "user", "content": [{"text": "hi"}]}],
            "inferenceConfig": {"maxTokens": 10, "temperature": 0.5},
        });
        assert_eq!(converse(body), Ok(()));
    }

    #[test]
    fn one_violation_reads_as_aws_writes_it() {
        let body = json!({
            "messages": [{"role": "user", "content": [{"text": "hi"}]}],
            "inferenceConfig": {"maxTokens": 0},
        });
        assert_eq!(
            validation(converse(body)),
            "1 validation error detected: Value '0' at 'inferenceConfig.maxTokens' failed to \
             satisfy constraint: Member must have value greater than or equal to 1"
        );
    }

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
    fn enums_list_their_values() {
        let body = json!({"messages": [{"role": "robot", "content": []}]});
        assert_eq!(
            validation(converse(body)),
            "1 validation error detected: Value 'robot' at 'messages.1.member.role' failed to \
             satisfy constraint: Member must satisfy enum value set: [user, assistant, system]"
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

    #[test]
    fn query_members_are_checked_by_their_types() {
        let headers = http::HeaderMap::new();
        let list = |query| {
            let request = HttpRequest {
                labels: &[],
                query: Some(query),
                headers: &headers,
                body: b"",
            };
            check_request(Service::Control, "ListModelInvocationJobs", &request)
        };
        assert_eq!(list("maxResults=5&statusEquals=Completed"), Ok(()));
        assert_eq!(
            validation(list("maxResults=0&sortOrder=Up")),
            "2 validation errors detected: Value '0' at 'maxResults' failed to satisfy \
             constraint: Member must have value greater than or equal to 1; Value 'Up' at \
             'sortOrder' failed to satisfy constraint: Member must satisfy enum value set: \
             [Ascending, Descending]"
        );
        assert!(matches!(
            list("maxResults=ten"),
            Err(Refusal::Serialization(_))
        ));
    }

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

    #[test]
    fn path_labels_and_headers_are_members() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-amzn-bedrock-service-tier", "cheap".parse().unwrap());
        let request = HttpRequest {
            labels: &[("modelId", "")],
            query: None,
            headers: &headers,
            body: b"{}",
        };
        let message = validation(check_request(Service::Runtime, "InvokeModel", &request));
        assert!(
            message.starts_with("3 validation errors detected: "),
            "{message}"
        );
        assert!(message.contains(
            "Value '' at 'modelId' failed to satisfy constraint: Member must have length greater than or equal to 1"
        ));
        assert!(message.contains("Value 'cheap' at 'serviceTier' failed to satisfy constraint: Member must satisfy enum value set: ["));
    }

    #[test]
    fn a_runner_built_input_is_checked_whole() {
        let input = json!({
            "jobName": "run-1=2",
            "roleArn": "arn:aws:iam::123456789012:role/batch",
            "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://bucket/in/"}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://bucket/out/"}},
        });
        let message = validation(check_input(
            Service::Control,
            "CreateModelInvocationJob",
            &input,
        ));
        assert!(
            message.starts_with("1 validation error detected: Value 'run-1=2' at 'jobName'"),
            "{message}"
        );
    }
}
