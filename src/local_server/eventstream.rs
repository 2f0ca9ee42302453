//! AWS event-stream frames for the streaming routes, encoded by the SDK's own codec
//! (`aws-smithy-eventstream`): events carry `:event-type`, exceptions `:exception-type`.

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;

use super::api_error::ApiError;

fn frame(headers: Vec<Header>, payload: Vec<u8>) -> Bytes {
    let message = Message::new_from_parts(headers, payload);
    let mut buffer = Vec::new();
    // Encoding only fails for oversized headers or payloads, which we never build.
    if let Err(err) = aws_smithy_eventstream::frame::write_message_to(&message, &mut buffer) {
        tracing::error!("event-stream encoding failed: {err}");
    }
    Bytes::from(buffer)
}

fn string_header(name: &'static str, value: impl Into<String>) -> Header {
    Header::new(name, HeaderValue::String(value.into().into()))
}

/// An event frame, e.g. `contentBlockDelta` with its JSON payload.
pub fn event(event_type: &str, payload: &serde_json::Value) -> Bytes {
    frame(
        vec![
            string_header(":event-type", event_type),
            string_header(":content-type", "application/json"),
            string_header(":message-type", "event"),
        ],
        serde_json::to_vec(payload).unwrap_or_default(),
    )
}

/// An exception frame ending a stream.
pub fn exception(error: &ApiError) -> Bytes {
    frame(
        vec![
            string_header(":exception-type", error.kind.stream_member_name()),
            string_header(":content-type", "application/json"),
            string_header(":message-type", "exception"),
        ],
        error.body(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local_server::api_error::ErrorKind;
    use aws_smithy_eventstream::frame::read_message_from;
    use aws_smithy_eventstream::smithy::parse_response_headers;

    #[test]
    fn frames_round_trip_through_the_sdk_codec() {
        let bytes = event(
            "messageStop",
            &serde_json::json!({"stopReason": "end_turn"}),
        );
        let message = read_message_from(bytes).unwrap();
        let headers = parse_response_headers(&message).unwrap();
        assert_eq!(headers.message_type.as_str(), "event");
        assert_eq!(headers.smithy_type.as_str(), "messageStop");
        assert_eq!(&message.payload()[..], br#"{"stopReason":"end_turn"}"#);

        let bytes = exception(&ApiError::new(ErrorKind::Throttling, "slow down"));
        let message = read_message_from(bytes).unwrap();
        let headers = parse_response_headers(&message).unwrap();
        assert_eq!(headers.message_type.as_str(), "exception");
        assert_eq!(headers.smithy_type.as_str(), "throttlingException");
    }
}
