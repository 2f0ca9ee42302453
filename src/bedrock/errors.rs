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

/// A credentials failure: the causes on one line, the SDK's dump kept as the detail.
fn credentials_error(err: &(dyn StdError + 'static), context: String) -> CallError {
    CallError {
        detail: Some(context),
        ..CallError::new(ErrorKind::Credentials, causes(err))
    }
}

/// What the SDK wraps a cause in: words that tell a user nothing.
const SDK_WRAPPERS: &[&str] = &["dispatch failure", "failed to construct request", "other"];

/// `err` and its causes on one line, each in its own words and only its first line.
/// `DisplayErrorContext` ends with the SDK's `Debug` dump of the whole chain, and a provider
/// chain lists every provider it tried: a dozen lines before the hint a user needs.
fn causes(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(err) = next {
        next = err.source();
        let text = err.to_string();
        let line = text.lines().next().unwrap_or_default().trim();
        // "no credentials found in chain. Attempted:" introduces the listing left out.
        let line = match line.strip_suffix(':') {
            Some(head) => head.rsplit_once(". ").map_or(head, |(first, _)| first),
            None => line,
        };
        // Wrappers often end with their source's message; say it once.
        if line.is_empty()
            || SDK_WRAPPERS.contains(&line)
            || parts.last().is_some_and(|last| last.ends_with(line))
        {
            continue;
        }
        parts.push(line.to_string());
    }
    if parts.is_empty() {
        err.to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    } else {
        parts.join(": ")
    }
}
/// The service's own words that the model id names no model it serves (here), or one it
/// serves only through an inference profile: every record would get them.
const WRONG_MODEL: &[&str] = &[
    "model identifier is invalid",
    "with on-demand throughput isn't supported",
];

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
                    if message.is_some_and(|m| WRONG_MODEL.iter().any(|w| m.contains(w))) =>
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
            if failure.is_timeout() {
                CallError::new(ErrorKind::Timeout, context)
            } else if about_credentials(&context) {
                credentials_error(&err, context)
            } else {
                CallError::new(ErrorKind::Connection, context)
            }
        }
        SdkError::ConstructionFailure(_) if about_credentials(&context) => {
            credentials_error(&err, context)
        }
        SdkError::ConstructionFailure(_) => CallError::new(ErrorKind::Other, context),
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

    /// An error with an optional cause, as the SDK nests them.
    #[derive(Debug)]
    struct Nested(&'static str, Option<Box<Nested>>);

    impl std::fmt::Display for Nested {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl StdError for Nested {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn StdError + 'static))
        }
    }

    #[test]
    fn causes_fit_on_one_line_without_the_providers_listing() {
        let chain = Nested(
            "dispatch failure",
            Some(Box::new(Nested(
                "other",
                Some(Box::new(Nested(
                    "the credential provider was not enabled",
                    Some(Box::new(Nested(
                        "no credentials found in chain. Attempted:\n  Environment: environment variable not set\n  Profile: the credential provider was not enabled",
                        None,
                    ))),
                ))),
            ))),
        );
        assert_eq!(
            causes(&chain),
            "the credential provider was not enabled: no credentials found in chain"
        );
        assert_eq!(causes(&Nested("other", None)), "other", "never empty");
    }
}
