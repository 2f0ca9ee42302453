//! Service tiers on the local server: the tier a request asks for (Converse's
//! `serviceTier.type`, InvokeModel's `X-Amzn-Bedrock-Service-Tier` header) checked against
//! the wire's enum and the catalogue, and what a tier changes: flex answers slower and is
//! shed first when the model's quota runs short, priority answers faster.

use super::api_error::ApiError;
use crate::rules::catalogue::{self, Offer};
use crate::vocab::ServiceTier;

/// The request header InvokeModel and InvokeModelWithResponseStream carry the tier in, and
/// the response header that reports the tier that served.
pub const HEADER: &str = "x-amzn-bedrock-service-tier";

/// The share of each quota bucket a flex request may not dip into: it stays for default
/// and priority requests, so flex is throttled first when the quota runs short.
pub const FLEX_RESERVE: f64 = 0.25;

/// The tier that serves a request: the one it asked for, or `default` when it asked none.
/// `reserved` exists on the wire but needs a reservation, which the local server never
/// has, so it never serves.
pub fn resolve(model_id: &str, requested: Option<&str>) -> Result<ServiceTier, ApiError> {
    let Some(name) = requested else {
        return Ok(ServiceTier::Default);
    };
    let tier = match (ServiceTier::parse(name), name) {
        (Some(tier), _) => tier,
        // What Bedrock answers a reserved tier without a reservation.
        (None, "reserved") => return Err(ApiError::validation("Reservation not found.")),
        // Other names never get here: the service model's enum refuses them first
        // (`crate::rules`).
        (None, _) => {
            return Err(ApiError::validation(format!(
                "Unknown service tier {name}."
            )));
        }
    };
    match catalogue::tier(model_id, tier) {
        Offer::Yes | Offer::Unknown => Ok(tier),
        Offer::No => Err(ApiError::validation(format!(
            "Invocation of model ID {model_id} with the {} service tier isn't supported. Retry your request with a service tier the model supports, or without one.",
            tier.as_str()
        ))),
    }
}

/// How much longer (above 1) or shorter (below 1) than the default tier the model takes
/// to answer in `tier`, first token and generation alike.
pub fn pace(tier: ServiceTier) -> f64 {
    match tier {
        ServiceTier::Default => 1.0,
        ServiceTier::Priority => 0.5,
        ServiceTier::Flex => 2.0,
    }
}

/// The share of a quota bucket that must remain after admitting a request in `tier`.
pub fn reserve(tier: ServiceTier) -> f64 {
    match tier {
        ServiceTier::Flex => FLEX_RESERVE,
        ServiceTier::Default | ServiceTier::Priority => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOVA: &str = "amazon.nova-pro-v1:0";
    const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";

    #[test]
    fn tiers_resolve_against_the_catalogue() {
        assert_eq!(resolve(HAIKU, None), Ok(ServiceTier::Default));
        assert_eq!(resolve(HAIKU, Some("default")), Ok(ServiceTier::Default));
        assert_eq!(resolve(NOVA, Some("flex")), Ok(ServiceTier::Flex));
        assert_eq!(resolve(NOVA, Some("priority")), Ok(ServiceTier::Priority));
        // A model the catalogue does not know is served in any tier.
        assert_eq!(
            resolve("acme.frontier-v9:0", Some("flex")),
            Ok(ServiceTier::Flex)
        );
        let refused = resolve(HAIKU, Some("flex")).unwrap_err();
        assert!(
            refused.message.contains(HAIKU) && refused.message.contains("flex"),
            "{}",
            refused.message
        );
        assert_eq!(
            resolve(NOVA, Some("reserved")).unwrap_err().message,
            "Reservation not found."
        );
        // Tier names are case-sensitive on the wire.
        assert!(resolve(NOVA, Some("Flex")).is_err());
    }

    #[test]
    fn flex_is_slower_and_keeps_off_the_reserve() {
        assert!(pace(ServiceTier::Flex) > pace(ServiceTier::Default));
        assert!(pace(ServiceTier::Priority) < pace(ServiceTier::Default));
        assert_eq!(reserve(ServiceTier::Default), 0.0);
        assert_eq!(reserve(ServiceTier::Priority), 0.0);
        assert!(reserve(ServiceTier::Flex) > 0.0);
    }
}
