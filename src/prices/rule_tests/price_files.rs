//! Where prices come from: `--prices` files (TOML or JSON) override the built-in table
//! field by field and add new models, bad files are refused with what to write, and every
//! built-in entry names a model and says where its numbers were read.

use super::*;
use crate::prices::built_in;
use crate::prices::lookup::Key;

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
fn every_built_in_entry_says_where_it_comes_from() {
    for (key, price) in built_in::entries() {
        assert!(Key::parse(key).is_some(), "{key}");
        assert!(!price.source.is_empty() && price.date.len() == 7, "{key}");
    }
}
