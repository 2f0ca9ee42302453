//! Bedrock's service tiers: how an on-demand call asks to be served (and priced), and how
//! the answer says it was.

/// Bedrock's service tiers for on-demand calls (`serviceTier.type` in Converse, the
/// `X-Amzn-Bedrock-Service-Tier` header of InvokeModel). Batch Inference is not a tier.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ServiceTier {
    /// The standard tier: what a call without a tier gets.
    #[default]
    Default,
    /// Faster answers and first claim on capacity, at a premium.
    Priority,
    /// Discounted, slower, and shed first when capacity is short: for work that can wait.
    Flex,
}

impl ServiceTier {
    /// The wire name (`default`, `priority`, `flex`).
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceTier::Default => "default",
            ServiceTier::Priority => "priority",
            ServiceTier::Flex => "flex",
        }
    }

    /// The tier named `text` on the wire; `None` for any other name.
    pub fn parse(text: &str) -> Option<ServiceTier> {
        match text {
            "default" => Some(ServiceTier::Default),
            "priority" => Some(ServiceTier::Priority),
            "flex" => Some(ServiceTier::Flex),
            _ => None,
        }
    }
}
