//! The price table's rules, one test a rule: id forms, exact names, regional premiums, the
//! long-context tier, batch, 1-hour cache writes, and `--prices` files.

use super::*;

fn usage(input: u64, output: u64, read: u64, write: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        cache_read_input_tokens: read,
        cache_write_input_tokens: write,
        cache_write_1h_input_tokens: 0,
    }
}

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
fn costs() {
    let table = PriceTable::built_in();
    let cost = table.cost(
        "anthropic.claude-3-5-sonnet-20241022-v2:0",
        &usage(1_000_000, 100_000, 2_000_000, 1_000_000),
    );
    // 3 + 1.5 + 0.6 + 3.75.
    assert!((cost.unwrap() - 8.85).abs() < 1e-9);
    let titan = table
        .cost("amazon.titan-embed-text-v2:0", &usage(500_000, 0, 0, 0))
        .unwrap();
    assert!((titan - 0.01).abs() < 1e-12);
    // Cache tokens on a model without cache prices: unknown, not zero.
    assert_eq!(
        table.cost("meta.llama3-1-8b-instruct-v1:0", &usage(1, 1, 1, 0)),
        None
    );
    assert_eq!(table.cost("acme.unknown", &usage(1, 1, 0, 0)), None);
}

#[test]
fn files_override_and_extend() {
    let dir = tempfile::tempdir().unwrap();
    let toml_path = dir.path().join("prices.toml");
    std::fs::write(
        &toml_path,
        "[models.\"anthropic.claude-3-haiku-20240307-v1:0\"]\ninput = 0.2\noutput = 1.0\n\n[models.\"acme.custom\"]\ninput = 1\noutput = 2\ncache_read = 0.1\n",
    )
    .unwrap();
    let table = PriceTable::with_file(&toml_path).unwrap();
    assert_eq!(
        table
            .price("us.anthropic.claude-3-haiku-20240307-v1:0")
            .unwrap()
            .input,
        0.2
    );
    assert_eq!(table.price("acme.custom-v2").unwrap().cache_read, Some(0.1));
    assert_eq!(table.price("amazon.nova-lite-v1:0").unwrap().input, 0.06);

    let json_path = dir.path().join("prices.json");
    std::fs::write(
        &json_path,
        r#"{"models": {"acme.x": {"input": 5, "output": 6}}}"#,
    )
    .unwrap();
    assert_eq!(
        PriceTable::with_file(&json_path)
            .unwrap()
            .price("acme.x")
            .unwrap()
            .output,
        6.0
    );

    std::fs::write(
        &json_path,
        r#"{"models": {"acme.x": {"input": -1, "output": 6}}}"#,
    )
    .unwrap();
    assert!(
        PriceTable::with_file(&json_path)
            .unwrap_err()
            .to_string()
            .contains("non-negative")
    );
    std::fs::write(&json_path, r#"{"acme.x": 1}"#).unwrap();
    assert!(
        PriceTable::with_file(&json_path)
            .unwrap_err()
            .to_string()
            .contains("Expected [models")
    );
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

const SONNET_4: &str = "anthropic.claude-sonnet-4-20250514-v1:0";
const SONNET_4_5: &str = "anthropic.claude-sonnet-4-5-20250929-v1:0";
const OPUS_4: &str = "anthropic.claude-opus-4-20250514-v1:0";
const OPUS_4_5: &str = "anthropic.claude-opus-4-5-20251101-v1:0";

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
fn sonnet_4_5_through_a_geographic_profile_costs_the_regional_rate() {
    let table = PriceTable::built_in();
    // Some of each kind, 190k of input: below the long-context threshold.
    let u = usage(100_000, 100_000, 50_000, 40_000);
    let at = |input: f64, output: f64, read: f64, write: f64| {
        (100_000.0 * input + 100_000.0 * output + 50_000.0 * read + 40_000.0 * write) / 1e6
    };
    let regional = table.charge(&format!("us.{SONNET_4_5}"), &u, Route::OnDemand);
    assert_eq!(regional.variant, "on_demand+regional");
    assert!(close(regional.usd.unwrap(), at(3.30, 16.50, 0.33, 4.125)));
    let global = table.charge(&format!("global.{SONNET_4_5}"), &u, Route::OnDemand);
    assert_eq!(global.variant, "on_demand+global");
    assert!(close(global.usd.unwrap(), at(3.0, 15.0, 0.30, 3.75)));
    // In-region ids pay the regional rate too; older models have one price everywhere.
    assert!(close(
        table.cost(SONNET_4_5, &u).unwrap(),
        regional.usd.unwrap()
    ));
    let sonnet_4 = table.charge(&format!("us.{SONNET_4}"), &u, Route::OnDemand);
    assert_eq!(sonnet_4.variant, "on_demand");
    assert_eq!(table.cost(&format!("global.{SONNET_4}"), &u), sonnet_4.usd);
    // Haiku 4.5: 1 / 5 global, 1.10 / 5.50 regional.
    let haiku = "anthropic.claude-haiku-4-5-20251001-v1:0";
    let u = usage(1_000_000, 1_000_000, 0, 0);
    assert!(close(
        table.cost(&format!("global.{haiku}"), &u).unwrap(),
        6.0
    ));
    assert!(close(table.cost(&format!("eu.{haiku}"), &u).unwrap(), 6.6));
}

#[test]
fn a_long_request_is_priced_entirely_at_the_long_context_rate() {
    let table = PriceTable::built_in();
    // 250k input (200k fresh + 30k read + 20k written) and 10k output: all premium.
    let long = usage(200_000, 10_000, 30_000, 20_000);
    let charge = table.charge(SONNET_4, &long, Route::OnDemand);
    assert_eq!(charge.variant, "on_demand+long_context");
    let expected = (200_000.0 * 6.0 + 10_000.0 * 22.5 + 30_000.0 * 0.6 + 20_000.0 * 7.5) / 1e6;
    assert!(close(charge.usd.unwrap(), expected), "{charge:?}");
    // Exactly 200k is not past the threshold.
    let at = usage(200_000, 10_000, 0, 0);
    let standard = table.charge(SONNET_4, &at, Route::OnDemand);
    assert_eq!(standard.variant, "on_demand");
    assert!(close(
        standard.usd.unwrap(),
        (200_000.0 * 3.0 + 10_000.0 * 15.0) / 1e6
    ));
    // Per request: two 125k requests are standard, where their sum would not be.
    let half = usage(125_000, 0, 0, 0);
    assert!(close(table.cost(SONNET_4, &half).unwrap() * 2.0, 0.75));
    // Sonnet 4.5 through us.: the tier and the regional premium together.
    let charge = table.charge(&format!("us.{SONNET_4_5}"), &long, Route::OnDemand);
    assert_eq!(charge.variant, "on_demand+regional+long_context");
    assert!(close(charge.usd.unwrap(), expected * 1.1));
    // Models without the tier are not affected.
    let opus = table.charge(OPUS_4, &long, Route::OnDemand);
    assert_eq!(opus.variant, "on_demand");
}

#[test]
fn batch_lines_cost_batch_prices_and_models_without_batch_are_refused() {
    let table = PriceTable::built_in();
    let u = usage(1_000_000, 1_000_000, 0, 0);
    let haiku = "anthropic.claude-3-haiku-20240307-v1:0";
    let batch = table.charge(haiku, &u, Route::Batch);
    assert_eq!(batch.variant, "batch");
    assert!(close(batch.usd.unwrap(), 0.125 + 0.625));
    assert_eq!(
        table.batch_price(&format!("us.{haiku}")),
        Some(BatchPrice {
            input: 0.125,
            output: 0.625
        })
    );
    for (model, input) in [
        ("anthropic.claude-3-5-sonnet-20241022-v2:0", 1.50),
        ("amazon.nova-pro-v1:0", 0.40),
        ("meta.llama3-1-70b-instruct-v1:0", 0.36),
        ("meta.llama3-3-70b-instruct-v1:0", 0.36),
        ("meta.llama4-scout-17b-instruct-v1:0", 0.085),
    ] {
        assert_eq!(
            table.batch_price(model).map(|b| b.input),
            Some(input),
            "{model}"
        );
    }
    assert_eq!(table.batch_price("acme.model-v1:0"), None);
    // A batch line on a model without a batch price is unpriced, not priced on demand.
    let opus_4_7 = table.charge("anthropic.claude-opus-4-7", &u, Route::Batch);
    assert_eq!(
        (opus_4_7.usd, opus_4_7.variant.as_str()),
        (None, "batch+unpriced")
    );
}

#[test]
fn one_hour_cache_writes_cost_twice_the_input() {
    let table = PriceTable::built_in();
    // 1M written: 400k with a 1-hour TTL, the rest with 5 minutes.
    let u = Usage {
        cache_write_input_tokens: 1_000_000,
        cache_write_1h_input_tokens: 400_000,
        ..Usage::default()
    };
    let haiku = "global.anthropic.claude-haiku-4-5-20251001-v1:0";
    assert!(close(
        table.cost(haiku, &u).unwrap(),
        0.6 * 1.25 + 0.4 * 2.0
    ));
    let opus = "global.anthropic.claude-opus-4-5-20251101-v1:0";
    assert!(close(
        table.cost(opus, &u).unwrap(),
        0.6 * 6.25 + 0.4 * 10.0
    ));
    // Where the 1-hour price is not known, the cost is not either.
    assert_eq!(table.cost(SONNET_4, &u), None);
    assert_eq!(
        table.charge(SONNET_4, &u, Route::OnDemand).variant,
        UNPRICED
    );
}

#[test]
fn claude_3_haiku_has_no_cache_prices() {
    let price = PriceTable::built_in()
        .price("anthropic.claude-3-haiku-20240307-v1:0")
        .cloned()
        .unwrap();
    assert_eq!((price.cache_read, price.cache_write), (None, None));
}

#[test]
fn every_built_in_entry_says_where_it_comes_from() {
    for (key, price) in built_in::entries() {
        assert!(Key::parse(key).is_some(), "{key}");
        assert!(!price.source.is_empty() && price.date.len() == 7, "{key}");
    }
}

#[test]
fn files_override_single_fields_and_add_the_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prices.toml");
    std::fs::write(
        &path,
        r#"
[models."anthropic.claude-sonnet-4-5"]
input = 2.0
regional_premium = 1.2
source = "our contract"
date = "2026-01"

[models."amazon.nova-lite-v1:0"]
geography_premium = { eu = 1.5 }

[models."anthropic.claude-sonnet-4-5-20250929-v1:0"]
batch_input = 1.0
batch_output = 5.0

[models."acme.model-*"]
input = 1
output = 2
long_context = { above_input_tokens = 10, input = 10, output = 20 }
"#,
    )
    .unwrap();
    let table = PriceTable::with_file(&path).unwrap();
    let sonnet = table.price(&format!("global.{SONNET_4_5}")).unwrap();
    assert_eq!(sonnet.input, 2.0);
    assert_eq!(sonnet.output, 15.0, "fields the file does not give stay");
    // The narrower entry (batch) starts from the broader one (input, premium, source).
    assert!(
        sonnet
            .source
            .ends_with("(fields it does not give: our contract)"),
        "{}",
        sonnet.source
    );
    assert_eq!(sonnet.date, "2026-01");
    // 100k input (below the long-context tier) at 2.0 x 1.2.
    assert!(close(
        table
            .cost(&format!("us.{SONNET_4_5}"), &usage(100_000, 0, 0, 0))
            .unwrap(),
        0.24
    ));
    let u = usage(1_000_000, 0, 0, 0);
    // The date-and-version entry is more specific and wins for that id.
    assert_eq!(table.batch_price(SONNET_4_5).map(|b| b.output), Some(5.0));
    let eu = table.charge("eu.amazon.nova-lite-v1:0", &u, Route::OnDemand);
    assert_eq!(eu.variant, "on_demand+eu");
    assert!(close(eu.usd.unwrap(), 0.09));
    assert!(close(
        table.cost("us.amazon.nova-lite-v1:0", &u).unwrap(),
        0.06
    ));
    let acme = table.charge("acme.model-v3", &usage(11, 1, 0, 0), Route::OnDemand);
    assert_eq!(acme.variant, "on_demand+long_context");
    assert!(close(acme.usd.unwrap(), (110.0 + 20.0) / 1e6));

    for (text, expected) in [
        (
            "[models.\"acme.x\"]\ninput = 1\n",
            "input and output are needed",
        ),
        (
            "[models.\"acme.x\"]\ninput = 1\noutput = 1\nbatch_input = 1\n",
            "batch_input and batch_output go together",
        ),
        (
            "[models.\"acme.x\"]\ninput = 1\noutput = 1\ncache_write_5m = 1\n",
            "unknown field",
        ),
        (
            "[models.\"acme.x\"]\ninput = 1\noutput = 1\nregional_premium = -1\n",
            "acme.x.regional_premium must be a non-negative number",
        ),
        (
            "[models.\"nodot\"]\ninput = 1\noutput = 1\n",
            "does not name a model",
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        let err = PriceTable::with_file(&path).unwrap_err().to_string();
        assert!(err.contains(expected), "{text}: {err}");
    }
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

#[test]
fn the_2026_models_cost_their_hand_computation_global_regional_and_by_tier() {
    let table = PriceTable::built_in();
    // 2M input, 1M output, 1M cache read, 400k cache write.
    let u = usage(2_000_000, 1_000_000, 1_000_000, 400_000);
    for (id, expected, variant) in [
        // Sonnet 4.6: 3 / 15 / 0.30 / 3.75 global, 10% more regional.
        (
            "global.anthropic.claude-sonnet-4-6",
            2.0 * 3.0 + 15.0 + 0.30 + 0.4 * 3.75,
            "on_demand+global",
        ),
        (
            "us.anthropic.claude-sonnet-4-6",
            1.1 * (2.0 * 3.0 + 15.0 + 0.30 + 0.4 * 3.75),
            "on_demand+regional",
        ),
        // Opus 4.6: 5 / 25 / 0.50 / 6.25.
        (
            "global.anthropic.claude-opus-4-6-v1",
            2.0 * 5.0 + 25.0 + 0.50 + 0.4 * 6.25,
            "on_demand+global",
        ),
        (
            "anthropic.claude-opus-4-6-v1",
            1.1 * (2.0 * 5.0 + 25.0 + 0.50 + 0.4 * 6.25),
            "on_demand+regional",
        ),
    ] {
        let charge = table.charge(id, &u, Route::OnDemand);
        assert_eq!(charge.variant, variant, "{id}");
        assert!(close(charge.usd.unwrap(), expected), "{id}: {charge:?}");
    }
    // No long-context tier from 4.6 on: 300k input costs the plain rate.
    let long = usage(300_000, 0, 0, 0);
    let charge = table.charge("global.anthropic.claude-sonnet-4-6", &long, Route::OnDemand);
    assert!(close(charge.usd.unwrap(), 0.3 * 3.0), "{charge:?}");
    // Batch keeps the premium: 1.50 / 7.50 global, 1.65 / 8.25 `us.`.
    let plain = usage(1_000_000, 1_000_000, 0, 0);
    let batch = table.charge("us.anthropic.claude-sonnet-4-6", &plain, Route::Batch);
    assert_eq!(batch.variant, "batch+regional");
    assert!(close(batch.usd.unwrap(), 1.65 + 8.25), "{batch:?}");
    // Service tiers: flex at half, priority at 1.75x; a tier without a price is unknown.
    let flex = table.charge("openai.gpt-oss-120b-1:0", &plain, Route::Flex);
    assert_eq!(flex.variant, "flex");
    assert!(close(flex.usd.unwrap(), 0.075 + 0.30), "{flex:?}");
    let priority = table.charge("qwen.qwen3-32b-v1:0", &plain, Route::Priority);
    assert_eq!(priority.variant, "priority");
    assert!(close(priority.usd.unwrap(), 0.2625 + 1.05), "{priority:?}");
    let nova = table.charge("us.amazon.nova-2-lite-v1:0", &plain, Route::Flex);
    assert_eq!(nova.variant, "flex+regional");
    assert!(close(nova.usd.unwrap(), 1.1 * (0.15 + 1.25)), "{nova:?}");
    let unpriced = table.charge("anthropic.claude-sonnet-4-6", &plain, Route::Flex);
    assert_eq!(
        (unpriced.usd, unpriced.variant.as_str()),
        (None, "flex+unpriced")
    );
    // Nova 2 Lite: 0.30 global, 0.33 regional, cache reads at 0.075 / 0.0825.
    let reads = usage(1_000_000, 0, 1_000_000, 0);
    for (id, expected) in [
        ("global.amazon.nova-2-lite-v1:0", 0.30 + 0.075),
        ("us.amazon.nova-2-lite-v1:0", 0.33 + 0.0825),
    ] {
        let cost = table.charge(id, &reads, Route::OnDemand).usd.unwrap();
        assert!(close(cost, expected), "{id}: {cost}");
    }
    // Every built-in entry says where its numbers come from and when.
    for (name, price) in table.entries() {
        assert!(!price.source.is_empty() && !price.date.is_empty(), "{name}");
    }
}
