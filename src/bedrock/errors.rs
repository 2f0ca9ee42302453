//! Classifying what went wrong with a call, once, in the vocabulary the retry policy and
//! the result lines use: retried (throttles, timeouts, 5xx, broken connections, bodies that
//! do not parse), a bad record (validation), or fatal for the whole run (access denied,
//! unknown model, no credentials).

use std::error::Error as StdError;
use std::time::Duration;

use aws_sdk_bedrockruntime::config::http::HttpResponse;
use aws_sdk_bedrockruntime::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_types::event_stream::RawMessage;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Throttling,
    ModelNotReady,
    ModelTimeout,
    ServiceUnavailable,
    InternalServer,
    Validation,
    ModelError,
    AccessDenied,
    ResourceNotFound,
    Credentials,
    Connection,
    Timeout,
    BadResponse,
    /// The run stopped before this call could finish (fatal error elsewhere, Ctrl-C).
    Cancelled,
    Other,
}

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Throttling => "throttling",
            ErrorKind::ModelNotReady => "model_not_ready",
            ErrorKind::ModelTimeout => "model_timeout",
            ErrorKind::ServiceUnavailable => "service_unavailable",
            ErrorKind::InternalServer => "internal_server",
            ErrorKind::Validation => "validation",
            ErrorKind::ModelError => "model_error",
            ErrorKind::AccessDenied => "access_denied",
            ErrorKind::ResourceNotFound => "resource_not_found",
            ErrorKind::Credentials => "credentials",
            ErrorKind::Connection => "connection",
            ErrorKind::Timeout => "timeout",
            ErrorKind::BadResponse => "bad_response",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Other => "other",
        }
    }

    /// Worth another attempt after a backoff.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Throttling
                | ErrorKind::ModelNotReady
                | ErrorKind::ModelTimeout
                | ErrorKind::ServiceUnavailable
                | ErrorKind::InternalServer
                | ErrorKind::Connection
                | ErrorKind::Timeout
                | ErrorKind::BadResponse
        )
    }

    /// The service pushes back: a reason for the limiter to slow everyone down.
    pub fn congestion(self) -> bool {
        matches!(
            self,
            ErrorKind::Throttling
                | ErrorKind::ModelNotReady
                | ErrorKind::ModelTimeout
                | ErrorKind::ServiceUnavailable
                | ErrorKind::Timeout
        )
    }

    /// Every record would fail the same way: stop the run instead.
    pub fn fatal(self) -> bool {
        matches!(
            self,
            ErrorKind::AccessDenied | ErrorKind::ResourceNotFound | ErrorKind::Credentials
        )
    }

    fn from_code(code: &str) -> ErrorKind {
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
}

/// A failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub kind: ErrorKind,
    pub message: String,
    /// How long the service asked us to wait (`Retry-After`), when it said.
    pub retry_after: Option<Duration>,
}

impl CallError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> CallError {
        CallError {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }
}

/// The service's own word that the model id names no model it serves.
const INVALID_MODEL: &str = "model identifier is invalid";

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
                Some(code) => ErrorKind::from_code(code),
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
                Some(code) => ErrorKind::from_code(code),
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
        assert_eq!(
            ErrorKind::from_code("ThrottlingException"),
            ErrorKind::Throttling
        );
        assert_eq!(
            ErrorKind::from_code("ExpiredTokenException"),
            ErrorKind::Credentials
        );
        assert_eq!(ErrorKind::from_code("Whatever"), ErrorKind::Other);
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
