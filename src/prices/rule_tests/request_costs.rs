//! What one request costs under the built-in table's rules: the arithmetic of a usage, the
//! regional premium of geographic profiles, the long-context tier billing a whole request,
//! batch prices (and no batch without one), 1-hour cache writes, cache tokens without a
//! price making the cost unknown, and the 2026 models against their hand computation.

use super::*;

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
