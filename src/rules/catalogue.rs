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
//! The local server reads the same catalogue to decide what it refuses. Which ids exist,
//! and where, is `known_models`' business (generated from AWS's model cards); every entry
//! here names a model of that table.

use crate::rules::model_id::ModelId;
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

/// `(model, what it offers)`: `batch`, `priority`, `flex`, `structured` (native structured
/// output), `count` (CountTokens), as words; an empty list offers none of them.
///
/// Sources, read 2026-12-06: AWS's user guide pages "Supported Regions and models for
/// batch inference", "Service tiers for optimizing performance and cost" (its November 2025
/// table of priority and flex models), "Get validated JSON results from models" (its list of
/// structured-output models) and "count-tokens" (its list of models); where those pages now
/// defer to the per-model cards, the cards as a public scrape of them had them on
/// 2026-08-20. Two later reports are taken in: Claude Opus 5 offers batch and Sonnet 5 does
/// not (2026-09); CountTokens refuses Opus 5 and Sonnet 5 on bedrock-runtime (2026-07/08).
/// Models whose batch support no source settles (Claude 3.5 / 3.7 Sonnet, Opus 4 / 4.1 /
/// 4.7 / 4.8) are left out: unknown, so tried.
const ENTRIES: &[(&str, &str)] = &[
    ("amazon.nova-2-lite", "batch priority flex"),
    ("amazon.nova-2-multimodal-embeddings", "batch"),
    ("amazon.nova-lite", "batch"),
    ("amazon.nova-micro", "batch"),
    ("amazon.nova-premier", "batch priority flex"),
    ("amazon.nova-pro", "batch priority flex"),
    ("amazon.titan-embed-image", "batch"),
    ("amazon.titan-embed-text-v2", "batch"),
    ("amazon.titan-embed-text-v1", ""),
    ("amazon.titan-embed-g1-text-02", ""),
    ("cohere.embed-english-v3", ""),
    ("cohere.embed-multilingual-v3", ""),
    ("anthropic.claude-3-5-haiku", "batch"),
    ("anthropic.claude-3-haiku", "batch"),
    ("anthropic.claude-haiku-4-5", "batch structured count"),
    ("anthropic.claude-opus-4-5", "batch structured count"),
    ("anthropic.claude-opus-4-6", "batch structured count"),
    ("anthropic.claude-opus-5", "batch"),
    ("anthropic.claude-sonnet-4", "batch count"),
    ("anthropic.claude-sonnet-4-5", "batch structured count"),
    ("anthropic.claude-sonnet-4-6", "batch structured count"),
    ("anthropic.claude-sonnet-5", ""),
    ("deepseek.v3", "batch priority flex structured"),
    ("deepseek.v3.2", "batch priority flex structured"),
    ("google.gemma-3-12b-it", "batch priority flex structured"),
    ("google.gemma-3-27b-it", "batch priority flex structured"),
    ("google.gemma-3-4b-it", "batch priority flex"),
    ("meta.llama3-8b-instruct", ""),
    ("meta.llama3-70b-instruct", ""),
    ("meta.llama3-1-405b-instruct", "batch"),
    ("meta.llama3-1-70b-instruct", "batch"),
    ("meta.llama3-1-8b-instruct", "batch"),
    ("meta.llama3-2-11b-instruct", "batch"),
    ("meta.llama3-2-1b-instruct", "batch"),
    ("meta.llama3-2-3b-instruct", "batch"),
    ("meta.llama3-2-90b-instruct", "batch"),
    ("meta.llama3-3-70b-instruct", "batch"),
    ("meta.llama4-maverick-17b-instruct", "batch"),
    ("meta.llama4-scout-17b-instruct", "batch"),
    ("minimax.minimax-m2", "batch priority flex structured"),
    ("minimax.minimax-m2.1", "batch priority flex structured"),
    ("minimax.minimax-m2.5", "priority flex structured"),
    ("mistral.devstral-2-123b", "batch priority flex structured"),
    (
        "mistral.magistral-small-2509",
        "batch priority flex structured",
    ),
    (
        "mistral.ministral-3-14b-instruct",
        "batch priority flex structured",
    ),
    (
        "mistral.ministral-3-3b-instruct",
        "batch priority flex structured",
    ),
    (
        "mistral.ministral-3-8b-instruct",
        "batch priority flex structured",
    ),
    ("mistral.mistral-7b-instruct", "priority flex"),
    ("mistral.mistral-large-2402", "priority flex"),
    (
        "mistral.mistral-large-3-675b-instruct",
        "batch priority flex structured",
    ),
    ("mistral.mistral-small-2402", "batch priority flex"),
    ("mistral.mixtral-8x7b-instruct", "priority flex"),
    ("mistral.pixtral-large-2502", "priority flex"),
    (
        "mistral.voxtral-mini-3b-2507",
        "batch priority flex structured",
    ),
    (
        "mistral.voxtral-small-24b-2507",
        "batch priority flex structured",
    ),
    (
        "moonshot.kimi-k2-thinking",
        "batch priority flex structured",
    ),
    ("moonshotai.kimi-k2.5", "batch priority flex structured"),
    (
        "nvidia.nemotron-nano-12b-v2",
        "batch priority flex structured",
    ),
    (
        "nvidia.nemotron-nano-3-30b",
        "batch priority flex structured",
    ),
    (
        "nvidia.nemotron-nano-9b-v2",
        "batch priority flex structured",
    ),
    ("nvidia.nemotron-super-3-120b", "priority flex structured"),
    ("openai.gpt-oss-120b", "batch priority flex structured"),
    ("openai.gpt-oss-20b", "batch priority flex structured"),
    (
        "openai.gpt-oss-safeguard-120b",
        "batch priority flex structured",
    ),
    (
        "openai.gpt-oss-safeguard-20b",
        "batch priority flex structured",
    ),
    (
        "qwen.qwen3-235b-a22b-2507",
        "batch priority flex structured",
    ),
    ("qwen.qwen3-32b", "batch priority flex structured"),
    ("qwen.qwen3-coder-30b-a3b", "batch priority flex structured"),
    (
        "qwen.qwen3-coder-480b-a35b",
        "batch priority flex structured",
    ),
    ("qwen.qwen3-coder-next", "batch structured"),
    ("qwen.qwen3-next-80b-a3b", "batch priority flex structured"),
    ("qwen.qwen3-vl-235b-a22b", "batch priority flex structured"),
    ("writer.palmyra-vision-7b", "priority flex structured"),
    ("zai.glm-4.7", "batch priority flex structured"),
    ("zai.glm-4.7-flash", "batch priority flex structured"),
    ("zai.glm-5", "priority flex structured"),
];

/// What an entry's words say.
fn parse_offers(words: &str) -> Offers {
    let has = |word: &str| words.split_whitespace().any(|w| w == word);
    Offers {
        batch: has("batch"),
        priority: has("priority"),
        flex: has("flex"),
        structured_output: has("structured"),
        count_tokens: has("count"),
    }
}

/// Whether the entry `key` names the model `id`.
fn covers(key: &str, id: &ModelId) -> bool {
    ModelId::parse(key).is_some_and(|key| {
        key.provider == id.provider
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
            })
    })
}

/// The catalogue's entry for `model_id`, or `None` when it does not know the model.
pub fn offers_of(model_id: &str) -> Option<Offers> {
    let id = ModelId::parse(model_id)?;
    ENTRIES
        .iter()
        .find_map(|(key, words)| covers(key, &id).then(|| parse_offers(words)))
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
        const WORDS: &[&str] = &["batch", "priority", "flex", "structured", "count"];
        for (key, words) in ENTRIES {
            for word in words.split_whitespace() {
                assert!(WORDS.contains(&word), "{key}: {word}");
            }
        }
        let mut keys: Vec<&str> = ENTRIES.iter().map(|(key, _)| *key).collect();
        keys.sort_unstable();
        let before = keys.len();
        keys.dedup();
        assert_eq!(before, keys.len());
        for key in keys {
            assert!(ModelId::parse(key).is_some(), "{key}");
        }
    }

    #[test]
    fn entries_name_models_bedrock_serves() {
        let known: Vec<&str> = crate::rules::known_models::all()
            .iter()
            .flat_map(|model| {
                std::iter::once(model.id)
                    .chain(model.aliases.iter().copied())
                    .chain(model.profiles.iter().map(|(id, _)| *id))
            })
            .collect();
        for (key, _) in ENTRIES {
            assert!(
                known
                    .iter()
                    .filter_map(|id| ModelId::parse(id))
                    .any(|id| covers(key, &id)),
                "{key} names no model of src/known_models"
            );
        }
    }
}
