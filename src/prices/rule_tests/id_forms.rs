//! Which entry a model id resolves to: every id form (profiles, ARNs, in-region ids) prices
//! as its base model, a name covers only that model (Opus 4.5 is not Opus 4), an id no
//! entry names has no price, and names that are no model id get the nearest entries.

use super::*;

#[test]
fn profiles_and_arns_price_as_the_base_model() {
    let table = PriceTable::built_in();
    let base = table
        .price("anthropic.claude-3-haiku-20240307-v1:0")
        .unwrap();
    assert_eq!(base.input, 0.25);
    for id in [
        "us.anthropic.claude-3-haiku-20240307-v1:0",
        "eu.anthropic.claude-3-haiku-20240307-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/apac.anthropic.claude-3-haiku-20240307-v1:0",
    ] {
        assert_eq!(table.price(id), Some(base), "{id}");
    }
    // The longest prefix wins: 3.5 Haiku is not 3 Haiku.
    assert_eq!(
        table
            .price("anthropic.claude-3-5-haiku-20241022-v1:0")
            .unwrap()
            .input,
        0.80
    );
    assert_eq!(
        table
            .price("global.anthropic.claude-sonnet-4-20250514-v1:0")
            .unwrap()
            .output,
        15.0
    );
    assert!(table.price("acme.unknown-model").is_none());
}

#[test]
fn every_id_form_resolves_to_its_entry_or_none() {
    let table = PriceTable::built_in();
    let cases: &[(&str, Option<&str>)] = &[
        (OPUS_4, Some("anthropic.claude-opus-4")),
        (OPUS_4_5, Some("anthropic.claude-opus-4-5")),
        (
            "anthropic.claude-opus-4-1-20250805-v1:0",
            Some("anthropic.claude-opus-4-1"),
        ),
        (&format!("us.{OPUS_4_5}"), Some("anthropic.claude-opus-4-5")),
        (
            &format!("global.{SONNET_4_5}"),
            Some("anthropic.claude-sonnet-4-5"),
        ),
        (
            &format!("jp.{SONNET_4_5}"),
            Some("anthropic.claude-sonnet-4-5"),
        ),
        (SONNET_4, Some("anthropic.claude-sonnet-4")),
        (
            "anthropic.claude-haiku-4-5-20251001-v1:0",
            Some("anthropic.claude-haiku-4-5"),
        ),
        (
            "anthropic.claude-3-5-haiku-20241022-v1:0",
            Some("anthropic.claude-3-5-haiku"),
        ),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0",
            Some("anthropic.claude-haiku-4-5"),
        ),
        (
            "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0",
            Some("amazon.titan-embed-text-v2:0"),
        ),
        (
            "amazon.titan-embed-text-v1",
            Some("amazon.titan-embed-text-v1"),
        ),
        ("amazon.nova-premier-v1:0", Some("amazon.nova-premier")),
        ("us.amazon.nova-2-lite-v1:0", Some("amazon.nova-2-lite")),
        ("amazon.nova-lite-v1:0", Some("amazon.nova-lite")),
        (
            "meta.llama4-maverick-17b-instruct-v1:0",
            Some("meta.llama4-maverick-17b-instruct"),
        ),
        (
            "us.meta.llama4-scout-17b-instruct-v1:0",
            Some("meta.llama4-scout-17b-instruct"),
        ),
        ("openai.gpt-oss-120b-1:0", Some("openai.gpt-oss-120b")),
        ("openai.gpt-oss-20b-1:0", Some("openai.gpt-oss-20b")),
        (
            "amazon.titan-embed-image-v1",
            Some("amazon.titan-embed-image-v1"),
        ),
        (
            "mistral.mistral-large-2407-v1:0",
            Some("mistral.mistral-large-2407"),
        ),
        // The 2026 models, in every id form they come in.
        (
            "anthropic.claude-opus-4-6-v1",
            Some("anthropic.claude-opus-4-6"),
        ),
        (
            "global.anthropic.claude-sonnet-4-6",
            Some("anthropic.claude-sonnet-4-6"),
        ),
        (
            "us.anthropic.claude-opus-5-5",
            Some("anthropic.claude-opus-5-5"),
        ),
        ("qwen.qwen3-32b-v1:0", Some("qwen.qwen3-32b")),
        ("deepseek.v3-v1:0", Some("deepseek.v3")),
        ("deepseek.v3.2", Some("deepseek.v3.2")),
        (
            "moonshot.kimi-k2-thinking",
            Some("moonshot.kimi-k2-thinking"),
        ),
        (
            "amazon.nova-2-multimodal-embeddings-v1:0",
            Some("amazon.nova-2-multimodal-embeddings"),
        ),
        ("cohere.embed-v4:0", Some("cohere.embed-v4:0")),
        // Unknown: a model no entry names, another Titan generation, a Mistral release
        // the table lacks, an application profile ARN whose model cannot be told from
        // its id.
        ("anthropic.claude-opus-4-9-v1:0", None),
        ("anthropic.claude-haiku-5-v1:0", None),
        ("amazon.titan-embed-text-v3:0", None),
        ("amazon.nova-3-lite-v1:0", None),
        ("qwen.qwen4-32b-v1:0", None),
        ("mistral.mistral-large-2411-v1:0", None),
        (
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3",
            None,
        ),
    ];
    for (id, entry) in cases {
        assert_eq!(table.resolve(id).map(|r| r.entry), *entry, "{id}");
    }
}

#[test]
fn opus_4_5_is_not_opus_4() {
    let table = PriceTable::built_in();
    let u = usage(1_000_000, 1_000_000, 0, 0);
    assert!(close(
        table.cost(&format!("global.{OPUS_4_5}"), &u).unwrap(),
        5.0 + 25.0
    ));
    assert!(close(table.cost(OPUS_4, &u).unwrap(), 15.0 + 75.0));
    // In-region Opus 4.5 pays the 10% premium: 5.50 + 27.50.
    assert!(close(table.cost(OPUS_4_5, &u).unwrap(), 33.0));
}

#[test]
fn closest_entries_for_names_that_are_no_model_id() {
    let table = PriceTable::built_in();
    assert_eq!(
        table.closest("claude-haiku", 3),
        [
            "anthropic.claude-3-haiku",
            "anthropic.claude-3-5-haiku",
            "anthropic.claude-haiku-4-5"
        ]
    );
    assert_eq!(table.closest("us.nova-lite", 2)[0], "amazon.nova-lite");
    assert_eq!(
        table.closest("titan-embed-text-v2:0", 1),
        ["amazon.titan-embed-text-v2:0"]
    );
    assert!(
        table
            .closest("haiku", 5)
            .iter()
            .all(|name| name.contains("haiku"))
    );
    assert!(table.closest("gpt-4o", 3).is_empty(), "nothing near");
}
