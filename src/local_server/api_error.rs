//! Errors exactly as Bedrock Runtime (and its control plane) sends them over restJson1: the status code, an
//! `x-amzn-errortype: Name:namespace` header (what the SDKs read first), a JSON body with
//! `message`, and a request id. Inside event streams the same errors travel as exception
//! frames named by their union member (`throttlingException`).

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;

/// The error shapes of the Bedrock Runtime service model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Validation,
    /// A body that is not JSON, or a member of the wrong JSON type.
    Serialization,
    Throttling,
    AccessDenied,
    ResourceNotFound,
    ModelTimeout,
    InternalServer,
    ServiceUnavailable,
    ModelError,
    /// The control plane's: a job name already in use.
    Conflict,
    /// The control plane's: too many jobs at once for a model.
    ServiceQuotaExceeded,
    /// A request body over the size the front end takes: a `ValidationException` (the
    /// request can never succeed as it is) with status 413.
    RequestTooLarge,
}

impl ErrorKind {
    pub fn shape_name(self) -> &'static str {
        match self {
            ErrorKind::Validation | ErrorKind::RequestTooLarge => "ValidationException",
            ErrorKind::Serialization => "SerializationException",
            ErrorKind::Throttling => "ThrottlingException",
            ErrorKind::AccessDenied => "AccessDeniedException",
            ErrorKind::ResourceNotFound => "ResourceNotFoundException",
            ErrorKind::ModelTimeout => "ModelTimeoutException",
            ErrorKind::InternalServer => "InternalServerException",
            ErrorKind::ServiceUnavailable => "ServiceUnavailableException",
            ErrorKind::ModelError => "ModelErrorException",
            ErrorKind::Conflict => "ConflictException",
            ErrorKind::ServiceQuotaExceeded => "ServiceQuotaExceededException",
        }
    }

    /// The member name of this error in the event-stream unions.
    pub fn stream_member_name(self) -> String {
        let name = self.shape_name();
        let mut chars = name.chars();
        match chars.next() {
            Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
            None => String::new(),
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::Validation | ErrorKind::Serialization => StatusCode::BAD_REQUEST,
            ErrorKind::Throttling => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::AccessDenied => StatusCode::FORBIDDEN,
            ErrorKind::ResourceNotFound => StatusCode::NOT_FOUND,
            ErrorKind::ModelTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::InternalServer => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::ModelError => StatusCode::FAILED_DEPENDENCY,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::ServiceQuotaExceeded => StatusCode::BAD_REQUEST,
            ErrorKind::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

/// An error answer: its shape and the human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
        }
    }

    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::Validation, message)
    }

    /// Smithy's wording of one constraint violation, as Bedrock's front end sends it:
    /// `value` breaks `rule` ("satisfy enum value set: [a, b]") at `field`; `None` for a
    /// member that is missing.
    pub fn constraint(value: Option<&str>, field: &str, rule: &str) -> ApiError {
        let value = value.map_or("null".to_string(), |v| format!("'{v}'"));
        ApiError::validation(format!(
            "1 validation error detected: Value {value} at '{field}' failed to satisfy constraint: Member must {rule}"
        ))
    }

    /// A required member that is missing.
    pub fn missing(field: &str) -> ApiError {
        ApiError::constraint(None, field, "not be null")
    }

    /// AWS's answer to a request its service model refuses (see [`crate::rules`]).
    pub fn refusal(refusal: crate::rules::Refusal) -> ApiError {
        match refusal {
            crate::rules::Refusal::Validation(m) => ApiError::new(ErrorKind::Validation, m),
            crate::rules::Refusal::Serialization(m) => ApiError::new(ErrorKind::Serialization, m),
        }
    }

    /// Checks a request against its operation's input shape in AWS's service model.
    pub fn check(
        service: crate::rules::Service,
        operation: &str,
        labels: &[(&str, &str)],
        query: Option<&str>,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<(), ApiError> {
        let request = crate::rules::HttpRequest {
            labels,
            query,
            headers,
            body,
        };
        crate::rules::check_request(service, operation, &request).map_err(ApiError::refusal)
    }

    /// The JSON body Bedrock sends with an error.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "message": self.message }))
            .unwrap_or_else(|_| b"{}".to_vec())
    }

    pub fn into_response(self, request_id: &str) -> Response {
        let errortype = format!(
            "{}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            self.kind.shape_name()
        );
        Response::builder()
            .status(self.kind.status())
            .header("content-type", "application/json")
            .header("x-amzn-errortype", errortype)
            .header("x-amzn-requestid", request_id)
            .body(Body::from(self.body()))
            .unwrap_or_else(|_| Response::new(Body::empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_statuses() {
        assert_eq!(
            ErrorKind::Throttling.stream_member_name(),
            "throttlingException"
        );
        assert_eq!(ErrorKind::ModelTimeout.status().as_u16(), 408);
        let response = ApiError::new(ErrorKind::AccessDenied, "no").into_response("rid");
        assert_eq!(response.status().as_u16(), 403);
        assert_eq!(
            response.headers()["x-amzn-errortype"],
            "AccessDeniedException:http://internal.amazon.com/coral/com.amazon.bedrock/"
        );
        assert_eq!(response.headers()["x-amzn-requestid"], "rid");
    }
}
