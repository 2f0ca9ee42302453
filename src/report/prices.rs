//! What tokens cost: a built-in table of on-demand Bedrock prices (USD per million input,
//! output, cache-read and cache-write tokens), extended or overridden by `--prices FILE`
//! (TOML or JSON). Inference-profile ids (`us.`, `eu.`, `apac.`, `global.`) and ARNs are
//! priced as their base model. A model without a price costs `None`, never a silent 0.
//!
//! Source of the built-in prices: the Amazon Bedrock pricing page, on-demand, US East
//! (N. Virginia), standard tier, as published in mid-2025. Prices change and differ by
//! region and tier (cross-region "global" profiles, batch at about half): check yours and
//! override them with `--prices`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::bedrock::Usage;
use crate::model_id::base_model_id;

/// USD per million tokens. Cache prices are `None` where the model has no prompt caching.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
}

impl Price {
    const fn tokens(input: f64, output: f64) -> Price {
        Price {
            input,
            output,
            cache_read: None,
            cache_write: None,
        }
    }

    const fn cached(input: f64, output: f64, cache_read: f64, cache_write: f64) -> Price {
        Price {
            input,
            output,
            cache_read: Some(cache_read),
            cache_write: Some(cache_write),
        }
    }

    /// The cost of `usage`, or `None` when it has cache tokens this price does not cover.
    pub fn cost(&self, usage: &Usage) -> Option<f64> {
        let cache = |tokens: u64, price: Option<f64>| match (tokens, price) {
            (0, _) => Some(0.0),
            (n, Some(price)) => Some(n as f64 * price),
            (_, None) => None,
        };
        let total = usage.input_tokens as f64 * self.input
            + usage.output_tokens as f64 * self.output
            + cache(usage.cache_read_input_tokens, self.cache_read)?
            + cache(usage.cache_write_input_tokens, self.cache_write)?;
        Some(total / 1_000_000.0)
    }
}

/// Built-in prices, keyed by base model id prefix (the longest matching key wins).
const BUILT_IN: &[(&str, Price)] = &[
    // Anthropic Claude.
    (
        "anthropic.claude-3-haiku",
        Price::cached(0.25, 1.25, 0.03, 0.30),
    ),
    (
        "anthropic.claude-3-5-haiku",
        Price::cached(0.80, 4.00, 0.08, 1.00),
    ),
    (
        "anthropic.claude-3-5-sonnet",
        Price::cached(3.00, 15.00, 0.30, 3.75),
    ),
    (
        "anthropic.claude-3-7-sonnet",
        Price::cached(3.00, 15.00, 0.30, 3.75),
    ),
    (
        "anthropic.claude-sonnet-4",
        Price::cached(3.00, 15.00, 0.30, 3.75),
    ),
    (
        "anthropic.claude-opus-4",
        Price::cached(15.00, 75.00, 1.50, 18.75),
    ),
    ("anthropic.claude-3-sonnet", Price::tokens(3.00, 15.00)),
    ("anthropic.claude-3-opus", Price::tokens(15.00, 75.00)),
    // Meta Llama 3.x.
    ("meta.llama3-8b-instruct", Price::tokens(0.30, 0.60)),
    ("meta.llama3-70b-instruct", Price::tokens(2.65, 3.50)),
    ("meta.llama3-1-8b-instruct", Price::tokens(0.22, 0.22)),
    ("meta.llama3-1-70b-instruct", Price::tokens(0.72, 0.72)),
    ("meta.llama3-1-405b-instruct", Price::tokens(2.40, 2.40)),
    ("meta.llama3-2-1b-instruct", Price::tokens(0.10, 0.10)),
    ("meta.llama3-2-3b-instruct", Price::tokens(0.15, 0.15)),
    ("meta.llama3-2-11b-instruct", Price::tokens(0.16, 0.16)),
    ("meta.llama3-2-90b-instruct", Price::tokens(0.72, 0.72)),
    ("meta.llama3-3-70b-instruct", Price::tokens(0.72, 0.72)),
    // Amazon Nova.
    (
        "amazon.nova-micro",
        Price::cached(0.035, 0.14, 0.00875, 0.035),
    ),
    ("amazon.nova-lite", Price::cached(0.06, 0.24, 0.015, 0.06)),
    ("amazon.nova-pro", Price::cached(0.80, 3.20, 0.20, 0.80)),
    // Mistral.
    ("mistral.mistral-7b-instruct", Price::tokens(0.15, 0.20)),
    ("mistral.mixtral-8x7b-instruct", Price::tokens(0.45, 0.70)),
    ("mistral.mistral-small", Price::tokens(1.00, 3.00)),
    ("mistral.mistral-large-2402", Price::tokens(4.00, 12.00)),
    ("mistral.mistral-large-2407", Price::tokens(2.00, 6.00)),
    // Embeddings: input tokens only.
    ("amazon.titan-embed-text-v1", Price::tokens(0.10, 0.0)),
    ("amazon.titan-embed-g1-text", Price::tokens(0.10, 0.0)),
    ("amazon.titan-embed-text-v2", Price::tokens(0.02, 0.0)),
    ("cohere.embed-english-v3", Price::tokens(0.10, 0.0)),
    ("cohere.embed-multilingual-v3", Price::tokens(0.10, 0.0)),
];

/// A `--prices` file.
#[derive(Debug, Deserialize)]
struct PricesFile {
    models: BTreeMap<String, Price>,
}

/// Prices by base model id prefix.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    entries: BTreeMap<String, Price>,
}

impl PriceTable {
    pub fn built_in() -> PriceTable {
        PriceTable {
            entries: BUILT_IN
                .iter()
                .map(|(id, price)| (id.to_string(), *price))
                .collect(),
        }
    }

    /// The built-in table with `path`'s entries added or replacing built-in ones.
    pub fn with_file(path: &Path) -> Result<PriceTable, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read --prices {}: {err}", path.display()))?;
        let is_json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let file: PricesFile = if is_json {
            serde_json::from_str(&text).map_err(|err| err.to_string())
        } else {
            toml::from_str(&text).map_err(|err| err.to_string())
        }
        .map_err(|err| {
            format!(
                "--prices {}: {err}. Expected [models.\"MODEL_ID\"] tables with input and output (and optionally cache_read, cache_write) in USD per million tokens",
                path.display()
            )
        })?;
        let mut table = PriceTable::built_in();
        for (id, price) in file.models {
            for (name, value) in [
                ("input", Some(price.input)),
                ("output", Some(price.output)),
                ("cache_read", price.cache_read),
                ("cache_write", price.cache_write),
            ] {
                if value.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
                    return Err(format!(
                        "--prices {}: {id}.{name} must be a non-negative number",
                        path.display()
                    ));
                }
            }
            table.entries.insert(base_model_id(&id).to_string(), price);
        }
        Ok(table)
    }

    /// The price of `model_id`: its base model, matched by the longest known prefix.
    pub fn price(&self, model_id: &str) -> Option<&Price> {
        let base = base_model_id(model_id);
        self.entries
            .iter()
            .filter(|(key, _)| base.starts_with(key.as_str()))
            .max_by_key(|(key, _)| key.len())
            .map(|(_, price)| price)
    }

    /// The cost of `usage` on `model_id`, or `None` when the price is unknown.
    pub fn cost(&self, model_id: &str, usage: &Usage) -> Option<f64> {
        self.price(model_id)?.cost(usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, output: u64, read: u64, write: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cache_read_input_tokens: read,
            cache_write_input_tokens: write,
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
                .contains("non-negative")
        );
        std::fs::write(&json_path, r#"{"acme.x": 1}"#).unwrap();
        assert!(
            PriceTable::with_file(&json_path)
                .unwrap_err()
                .contains("Expected [models")
        );
    }
}
