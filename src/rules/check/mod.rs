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
//!
//! This file holds the entry points for an input the runner builds; [`http_request`] reads
//! a request the local server received, [`walker`] walks a value down its shape,
//! [`constraints`] words the rules a value breaks and [`refusal`] the refusal.

mod constraints;
mod http_request;
mod refusal;
mod walker;

pub use http_request::{HttpRequest, check_request};
pub use refusal::Refusal;

use serde_json::Value;

use super::service_model::Service;
use walker::Walker;

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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    pub(super) fn converse(body: Value) -> Result<(), Refusal> {
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

    pub(super) fn validation(result: Result<(), Refusal>) -> String {
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
