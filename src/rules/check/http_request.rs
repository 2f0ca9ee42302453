//! A request as the local server received it, checked as AWS's front end checks it: the
//! members bound to the URI's path labels, the query string or headers are read into the
//! input by their names and types, the JSON body (or a blob payload's length) beside them,
//! and the whole walked down the operation's input shape.

use serde_json::{Map, Value};

use super::refusal::Refusal;
use super::walker::Walker;
use crate::rules::service_model::{Kind, Service, Shape};

/// An HTTP request as the local server received it.
pub struct HttpRequest<'a> {
    /// The path labels of the operation's URI (`modelId`), already percent-decoded.
    pub labels: &'a [(&'a str, &'a str)],
    /// The raw query string.
    pub query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
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

/// The body as a JSON object (an empty body is an empty one).
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

#[cfg(test)]
mod tests {
    use super::super::tests::validation;
    use super::*;

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
}
