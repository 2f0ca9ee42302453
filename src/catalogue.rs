//! What Bedrock offers each model beyond a plain on-demand call: Batch Inference, the
//! service tiers, native structured output (`outputConfig`) and CountTokens. This is a
//! catalogue of its own, read from AWS's lists of supported models, and deliberately apart
//! from prices: a model the price table lacks may still offer batch, and a price says
//! nothing about what a model accepts. An id the catalogue does not know is [`Offer::Unknown`]:
//! the runner tries it and lets the service's answer decide.
//!
//! Entries name models as price keys do (`provider.name` covers every version; a version
//! in the key, as in `amazon.titan-embed-text-v2`, narrows it), through
//! [`ModelId::parse`], so `us.anthropic.claude-sonnet-4-6` and an ARN of it resolve alike.
//! The local server reads the same catalogue to decide what it refuses.

use crate::model_id::ModelId;
use crate::vocab::ServiceTier;

/// Whether a model offers something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Yes,
    No,
    /// The catalogue does not know the model: try, and let the service say.
    Unknown,
}

impl Offer {
    fn of(flag: bool) -> Offer {
        if flag { Offer::Yes } else { Offer::No }
    }
}

/// One model's offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offers {
    /// Bedrock Batch Inference.
    pub batch: bool,
    /// Service tiers beyond `default` (which every model has).
    pub priority: bool,
    pub flex: bool,
    /// `outputConfig.textFormat` with a JSON schema on Converse and ConverseStream.
    pub structured_output: bool,
    /// The CountTokens API.
    pub count_tokens: bool,
}

const fn offers(
    batch: bool,
    priority: bool,
    flex: bool,
    structured_output: bool,
    count_tokens: bool,
) -> Offers {
    Offers {
        batch,
        priority,
        flex,
        structured_output,
        count_tokens,
    }
}

/// Batch only: the older models.
const BATCH: Offers = offers(true, false, false, false, false);
/// No extras at all.
const PLAIN: Offers = offers(false, false, false, false, false);

/// `(provider.name, offers)`, one entry a model.
const ENTRIES: &[(&str, Offers)] = &[
    // Anthropic Claude.
    ("anthropic.claude-3-haiku", BATCH),
    ("anthropic.claude-3-sonnet", BATCH),
    ("anthropic.claude-3-opus", BATCH),
    ("anthropic.claude-3-5-haiku", BATCH),
    (
        "anthropic.claude-3-5-sonnet",
        offers(true, false, false, false, true),
    ),
    (
        "anthropic.claude-3-7-sonnet",
        offers(true, false, false, false, true),
    ),
    (
        "anthropic.claude-sonnet-4",
        offers(true, false, false, false, true),
    ),
    (
        "anthropic.claude-opus-4",
        offers(true, false, false, false, true),
    ),
    (
        "anthropic.claude-opus-4-1",
        offers(true, false, false, false, true),
    ),
    (
        "anthropic.claude-sonnet-4-5",
        offers(true, false, false, true, true),
    ),
    (
        "anthropic.claude-haiku-4-5",
        offers(true, false, false, true, true),
    ),
    (
        "anthropic.claude-opus-4-5",
        offers(true, false, false, true, true),
    ),
    (
        "anthropic.claude-sonnet-4-6",
        offers(true, false, false, true, true),
    ),
    (
        "anthropic.claude-opus-4-6",
        offers(true, false, false, true, true),
    ),
    // Meta Llama.
    ("meta.llama3-8b-instruct", PLAIN),
    ("meta.llama3-70b-instruct", PLAIN),
    ("meta.llama3-1-8b-instruct", BATCH),
    ("meta.llama3-1-70b-instruct", BATCH),
    ("meta.llama3-1-405b-instruct", BATCH),
    ("meta.llama3-2-1b-instruct", BATCH),
    ("meta.llama3-2-3b-instruct", BATCH),
    ("meta.llama3-2-11b-instruct", BATCH),
    ("meta.llama3-2-90b-instruct", BATCH),
    ("meta.llama3-3-70b-instruct", BATCH),
    ("meta.llama4-maverick-17b-instruct", BATCH),
    ("meta.llama4-scout-17b-instruct", BATCH),
    // Amazon Nova.
    ("amazon.nova-micro", offers(true, true, true, false, false)),
    ("amazon.nova-lite", offers(true, true, true, false, false)),
    ("amazon.nova-pro", offers(true, true, true, false, false)),
    (
        "amazon.nova-premier",
        offers(true, false, false, false, false),
    ),
    ("amazon.nova-2-lite", offers(true, true, true, true, false)),
    // Open-weight models.
    ("openai.gpt-oss-120b", offers(true, true, true, true, false)),
    ("openai.gpt-oss-20b", offers(true, true, true, true, false)),
    ("mistral.mistral-7b-instruct", PLAIN),
    ("mistral.mixtral-8x7b-instruct", PLAIN),
    ("mistral.mistral-small-2402", BATCH),
    ("mistral.mistral-large-2402", PLAIN),
    ("mistral.mistral-large-2407", BATCH),
    // Embeddings.
    ("amazon.titan-embed-text-v1", PLAIN),
    ("amazon.titan-embed-g1-text-02", PLAIN),
    ("amazon.titan-embed-text-v2", BATCH),
    ("amazon.titan-embed-image-v1", BATCH),
    ("cohere.embed-english-v3", PLAIN),
    ("cohere.embed-multilingual-v3", PLAIN),
];

/// The catalogue's entry for `model_id`, or `None` when it does not know the model.
pub fn offers_of(model_id: &str) -> Option<Offers> {
    let id = ModelId::parse(model_id)?;
    ENTRIES.iter().find_map(|(key, offers)| {
        let key = ModelId::parse(key)?;
        let same = key.provider == id.provider
            && key.name == id.name
            && key.date.is_none_or(|date| id.date == Some(date))
            && key.version.is_none_or(|version| {
                // `v2` covers `v2:0`.
                id.version.is_some_and(|given| {
                    given == version
                        || given
                            .strip_prefix(version)
                            .is_some_and(|rest| rest.starts_with(':'))
                })
            });
        same.then_some(*offers)
    })
}

fn offer(model_id: &str, pick: impl Fn(&Offers) -> bool) -> Offer {
    offers_of(model_id).map_or(Offer::Unknown, |offers| Offer::of(pick(&offers)))
}

/// Whether `model_id` can go through Bedrock Batch Inference.
pub fn batch(model_id: &str) -> Offer {
    offer(model_id, |o| o.batch)
}

/// Whether `model_id` is served in `tier` (every model has `default`).
pub fn tier(model_id: &str, tier: ServiceTier) -> Offer {
    match tier {
        ServiceTier::Default => Offer::Yes,
        ServiceTier::Priority => offer(model_id, |o| o.priority),
        ServiceTier::Flex => offer(model_id, |o| o.flex),
    }
}

/// Whether `model_id` takes `outputConfig.textFormat` (native structured output).
pub fn structured_output(model_id: &str) -> Offer {
    offer(model_id, |o| o.structured_output)
}

/// Whether `model_id` answers CountTokens.
pub fn count_tokens(model_id: &str) -> Offer {
    offer(model_id, |o| o.count_tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_and_versions_resolve_to_their_model() {
        for id in [
            "anthropic.claude-sonnet-4-6",
            "us.anthropic.claude-sonnet-4-6",
            "global.anthropic.claude-sonnet-4-6",
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-6",
        ] {
            assert_eq!(batch(id), Offer::Yes, "{id}");
        }
        assert_eq!(batch("amazon.nova-lite-v1:0"), Offer::Yes);
        assert_eq!(batch("cohere.embed-english-v3"), Offer::No);
        assert_eq!(batch("amazon.titan-embed-text-v2:0"), Offer::Yes);
        assert_eq!(batch("amazon.titan-embed-text-v1"), Offer::No);
    }

    #[test]
    fn unknown_models_are_unknown_not_refused() {
        assert_eq!(batch("acme.frontier-v9:0"), Offer::Unknown);
        assert_eq!(
            tier("acme.frontier-v9:0", ServiceTier::Flex),
            Offer::Unknown
        );
        assert_eq!(tier("acme.frontier-v9:0", ServiceTier::Default), Offer::Yes);
        // A name that only starts like a known one is another model.
        assert_eq!(batch("anthropic.claude-opus-4-9-v1:0"), Offer::Unknown);
    }

    #[test]
    fn entries_name_models_once() {
        let mut keys: Vec<&str> = ENTRIES.iter().map(|(key, _)| *key).collect();
        keys.sort_unstable();
        let before = keys.len();
        keys.dedup();
        assert_eq!(before, keys.len());
        for key in keys {
            assert!(ModelId::parse(key).is_some(), "{key}");
        }
    }
}
