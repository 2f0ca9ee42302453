//! Which model ids the local server answers, in which region: the ids of
//! [`crate::rules::known_models`], in the region the request was signed for (SigV4's credential
//! scope). A request without a signature (raw HTTP in tests) is held to "known anywhere".
//! The refusals are AWS's: an id no region serves, or one this region does not, is "The
//! provided model identifier is invalid."; a base id of a model this region serves only
//! through inference profiles gets the on-demand refusal that points at a profile (except
//! from CountTokens, which takes base ids and calls no model).

use super::api_error::ApiError;
use crate::rules::known_models::{self, Availability};
use crate::rules::model_id::base_model_id;

/// What Bedrock answers for a model id it does not serve (in this region).
pub const INVALID_MODEL: &str = "The provided model identifier is invalid.";

/// The region of a SigV4 `Authorization` header's credential scope.
pub fn signed_region(headers: &http::HeaderMap) -> Option<String> {
    let authorization = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let scope = authorization.split("Credential=").nth(1)?;
    let region = scope.split('/').nth(2)?;
    (!region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    .then(|| region.to_string())
}

/// AWS's refusal of an on-demand call to a model served only through inference profiles.
pub fn on_demand_refusal(model_id: &str) -> String {
    format!(
        "Invocation of model ID {} with on-demand throughput isn't supported. Retry your request with the ID or ARN of an inference profile that contains this model.",
        base_model_id(model_id)
    )
}

/// Refuses `model_id` (an id, a profile id or an ARN) as Bedrock would in `region`.
pub fn check(model_id: &str, region: Option<&str>) -> Result<(), ApiError> {
    match known_models::availability(model_id, region) {
        Availability::Offered => Ok(()),
        Availability::ProfileOnly => Err(ApiError::validation(on_demand_refusal(model_id))),
        Availability::NotInRegion | Availability::Unknown => {
            Err(ApiError::validation(INVALID_MODEL))
        }
    }
}

/// Refuses `model_id` as CountTokens would in `region`. It takes foundation-model ids and
/// calls no model, so a base id counts wherever its model is served, through a profile too.
pub fn check_countable(model_id: &str, region: Option<&str>) -> Result<(), ApiError> {
    match known_models::availability(model_id, region) {
        Availability::Offered | Availability::ProfileOnly => Ok(()),
        Availability::NotInRegion | Availability::Unknown => {
            Err(ApiError::validation(INVALID_MODEL))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_comes_from_the_credential_scope() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=AKID/20261206/eu-west-3/bedrock/aws4_request, SignedHeaders=host, Signature=abc"
                .parse()
                .unwrap(),
        );
        assert_eq!(signed_region(&headers).as_deref(), Some("eu-west-3"));
        assert_eq!(signed_region(&http::HeaderMap::new()), None);
    }

    #[test]
    fn refusals_read_as_bedrock_writes_them() {
        let haiku = "anthropic.claude-3-haiku-20240307-v1:0";
        assert!(check(haiku, Some("us-east-1")).is_ok());
        assert!(check(haiku, None).is_ok());
        let unknown = check("anthropic.claude-opus-4-9-v1:0", None).unwrap_err();
        assert_eq!(unknown.message, INVALID_MODEL);
        let elsewhere = check("eu.amazon.nova-lite-v1:0", Some("us-east-1")).unwrap_err();
        assert_eq!(elsewhere.message, INVALID_MODEL);
        let sonnet = "anthropic.claude-sonnet-4-5-20250929-v1:0";
        let profile_only = check(sonnet, Some("us-west-2")).unwrap_err();
        assert!(check_countable(sonnet, Some("us-west-2")).is_ok());
        assert!(check_countable("acme.nothing-v1", Some("us-west-2")).is_err());
        assert_eq!(
            profile_only.message,
            format!(
                "Invocation of model ID {sonnet} with on-demand throughput isn't supported. Retry your request with the ID or ARN of an inference profile that contains this model."
            )
        );
    }
}
