//! STS GetCallerIdentity on the local server (`POST /`, the awsQuery protocol: a form body
//! `Action=GetCallerIdentity&Version=2011-06-15`, an XML answer), so a client pointed at
//! the server learns an account to build ARNs with, as `run --mode rag` does for
//! inference profiles. Every caller is the same IAM user of [`ACCOUNT`].

use axum::body::{Body, Bytes};
use axum::response::Response;

use super::request_id;

/// The account every local caller belongs to (and the default of batch job ARNs).
pub const ACCOUNT: &str = "123456789012";
const USER_ID: &str = "AIDALOCALBEDROCKBATCH";

/// The ARN of the one local caller, as GetCallerIdentity (and an access denial) names it.
pub fn caller_arn() -> String {
    format!("arn:aws:iam::{ACCOUNT}:user/bedrock-batch-local")
}
const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// The value of `name` in an `application/x-www-form-urlencoded` body (the actions and
/// versions STS takes need no percent-decoding).
fn form_value<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn xml(status: u16, request_id: &str, body: String) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "text/xml")
        .header("x-amzn-requestid", request_id)
        .body(Body::from(body))
        .unwrap_or_default()
}

/// The awsQuery error document.
fn error(request_id: &str, status: u16, code: &str, message: &str) -> Response {
    xml(
        status,
        request_id,
        format!(
            "<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ),
    )
}

/// `POST /`: GetCallerIdentity, the one STS action served.
pub fn answer(body: &Bytes) -> Response {
    let request_id = request_id();
    let body = String::from_utf8_lossy(body);
    match (form_value(&body, "Action"), form_value(&body, "Version")) {
        (Some("GetCallerIdentity"), Some("2011-06-15")) => xml(
            200,
            &request_id,
            format!(
                "<GetCallerIdentityResponse xmlns=\"{XMLNS}\"><GetCallerIdentityResult><Arn>{}</Arn><UserId>{USER_ID}</UserId><Account>{ACCOUNT}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></GetCallerIdentityResponse>",
                caller_arn()
            ),
        ),
        (Some("GetCallerIdentity"), _) => error(
            &request_id,
            400,
            "InvalidParameterValue",
            "Version must be 2011-06-15",
        ),
        (action, _) => error(
            &request_id,
            400,
            "InvalidAction",
            &format!(
                "Could not find operation {} for version 2011-06-15 (the local server answers GetCallerIdentity only)",
                action.unwrap_or_default()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_found_by_name() {
        let body = "Action=GetCallerIdentity&Version=2011-06-15";
        assert_eq!(form_value(body, "Action"), Some("GetCallerIdentity"));
        assert_eq!(form_value(body, "Version"), Some("2011-06-15"));
        assert_eq!(form_value(body, "Missing"), None);
    }
}
