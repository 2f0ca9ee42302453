//! Classifying what went wrong with a call, once, in the vocabulary the retry policy and
//! the result lines use: retried (throttles, timeouts, 5xx, broken connections, bodies that
//! do not parse), a bad record (validation), or fatal for the whole run (access denied,
//! unknown model, no credentials).

use std::error::Error as StdError;
use std::time::Duration;

use crate::vocab::{CallError, ErrorKind};
use aws_sdk_bedrockruntime::config::http::HttpResponse;
use aws_sdk_bedrockruntime::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_types::event_stream::RawMessage;

/// The service's own word that the model id names no model it serves.
const INVALID_MODEL: &str = "model identifier is invalid";

/// The kind of an error named by its AWS error code.
fn kind_of_code(code: &str) -> ErrorKind {
    match code {
        "ThrottlingException" | "TooManyRequestsException" => ErrorKind::Throttling,
        "ModelNotReadyException" => ErrorKind::ModelNotReady,
        "ModelTimeoutException" => ErrorKind::ModelTimeout,
        "ServiceUnavailableException" => ErrorKind::ServiceUnavailable,
        "InternalServerException" => ErrorKind::InternalServer,
        "ValidationException" => ErrorKind::Validation,
        "ModelErrorException" => ErrorKind::ModelError,
        "AccessDeniedException" => ErrorKind::AccessDenied,
        "ResourceNotFoundException" => ErrorKind::ResourceNotFound,
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "ExpiredTokenException"
        | "IncompleteSignature"
        | "MissingAuthenticationToken" => ErrorKind::Credentials,
        _ => ErrorKind::Other,
    }
}

/// A `Retry-After` header in seconds (fractions allowed); HTTP dates are not used by Bedrock.
fn retry_after(response: &HttpResponse) -> Option<Duration> {
    let value = response.headers().get("retry-after")?;
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(300.0)))
}

/// Whether an error the SDK raised before any answer is about resolving credentials.
fn about_credentials(context: &str) -> bool {
    context.contains("credentials") || context.contains("identity")
}

/// Classifies an SDK error from any operation.
pub fn classify<E>(err: SdkError<E, HttpResponse>) -> CallError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let context = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let message = service.err().message();
            let kind = match service.err().code() {
                // Bedrock answers an unknown model id with a ValidationException; every
                // record would get it.
                Some("ValidationException")
                    if message.is_some_and(|m| m.contains(INVALID_MODEL)) =>
                {
                    ErrorKind::ResourceNotFound
                }
                Some(code) => kind_of_code(code),
                // The SDK could not read the body of a success: a garbled answer.
                None if (200..300).contains(&status) => ErrorKind::BadResponse,
                None if status == 429 => ErrorKind::Throttling,
                None if status >= 500 => ErrorKind::InternalServer,
                None => ErrorKind::Other,
            };
            let message = match (kind, message) {
                (ErrorKind::BadResponse, _) => {
                    format!("the response (HTTP {status}) could not be parsed: {context}")
                }
                (_, Some(message)) => message.to_string(),
                (_, None) => context,
            };
            CallError {
                retry_after: retry_after(service.raw()),
                ..CallError::new(kind, message)
            }
        }
        SdkError::TimeoutError(_) => CallError::new(ErrorKind::Timeout, context),
        SdkError::ResponseError(_) => CallError::new(ErrorKind::BadResponse, context),
        SdkError::DispatchFailure(failure) => {
            let kind = if failure.is_timeout() {
                ErrorKind::Timeout
            } else if about_credentials(&context) {
                ErrorKind::Credentials
            } else {
                ErrorKind::Connection
            };
            CallError::new(kind, context)
        }
        SdkError::ConstructionFailure(_) => {
            let kind = if about_credentials(&context) {
                ErrorKind::Credentials
            } else {
                ErrorKind::Other
            };
            CallError::new(kind, context)
        }
        _ => CallError::new(ErrorKind::Other, context),
    }
}

/// Classifies an error met inside an event stream (an exception frame or a broken frame).
pub fn classify_stream<E>(err: SdkError<E, RawMessage>) -> CallError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let context = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().map(|code| {
                // Stream members are named like `throttlingException`.
                let mut chars = code.chars();
                chars
                    .next()
                    .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            });
            let kind = match code.as_deref() {
                Some("ModelStreamErrorException") => ErrorKind::ModelError,
                Some(code) => kind_of_code(code),
                None => ErrorKind::BadResponse,
            };
            let message = service.err().message().map_or(context, str::to_string);
            CallError::new(kind, message)
        }
        SdkError::TimeoutError(_) => CallError::new(ErrorKind::Timeout, context),
        SdkError::DispatchFailure(_) => CallError::new(ErrorKind::Connection, context),
        _ => CallError::new(ErrorKind::BadResponse, context),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_kinds() {
        assert_eq!(kind_of_code("ThrottlingException"), ErrorKind::Throttling);
        assert_eq!(
            kind_of_code("ExpiredTokenException"),
            ErrorKind::Credentials
        );
        assert_eq!(kind_of_code("Whatever"), ErrorKind::Other);
        assert!(ErrorKind::Throttling.retryable());
        assert!(ErrorKind::BadResponse.retryable());
        assert!(!ErrorKind::Validation.retryable());
        assert!(!ErrorKind::AccessDenied.retryable());
        assert!(ErrorKind::AccessDenied.fatal());
        assert!(ErrorKind::Credentials.fatal());
        assert!(!ErrorKind::Validation.fatal());
        assert!(ErrorKind::Throttling.congestion());
        assert!(!ErrorKind::InternalServer.congestion());
        assert_eq!(ErrorKind::ModelTimeout.name(), "model_timeout");
    }
}
