//! The price files the ecosystem already keeps, read as `--prices` files: LiteLLM's
//! `model_prices_and_context_window.json` (its Bedrock entries) and pydantic genai-prices'
//! `data.json` (its AWS Bedrock provider). Each becomes entries of our own format, so they
//! override the built-in table field by field like any `--prices` file, and a file of ours
//! given after them can still correct a single field.
//!
//! Both keep a model's `global.` and regional prices as separate entries; here they become
//! one entry: the `global.` prices, and the regional ones as its `regional_premium`.
//! Entries for one region only (LiteLLM's `bedrock/us-east-1/...`), commitments and other
//! providers are left out: a run's price does not depend on them.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use super::file::FileEntry;
use super::{LongContext, Rates};
use crate::rules::model_id::{ModelId, Scope};

/// Our entries of a `--prices` JSON file of the ecosystem's, told from its shape: an object
/// of entries with `litellm_provider` is LiteLLM's, an array of providers genai-prices'.
/// Any other file comes back as it was, to be read as ours.
pub(super) fn read(path: &Path, file: Value) -> Result<BTreeMap<String, FileEntry>, Value> {
    match file {
        Value::Object(map)
            if !map.contains_key("models")
                && map
                    .values()
                    .any(|entry| entry.get("litellm_provider").is_some()) =>
        {
            Ok(litellm(
                &map,
                &format!("LiteLLM price file {}", path.display()),
            ))
        }
        Value::Array(providers) => {
            let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
            let source = format!("genai-prices data file {}", path.display());
            Ok(genai_prices(&providers, &source, &today))
        }
        other => Err(other),
    }
}

/// One model's prices as a file gives them in one scope, USD per million tokens.
#[derive(Debug, Clone, Default)]
struct Scoped {
    input: Option<f64>,
    output: Option<f64>,
    cache_read: Option<f64>,
    cache_write: Option<f64>,
    cache_write_1h: Option<f64>,
    batch: (Option<f64>, Option<f64>),
    priority: (Option<f64>, Option<f64>),
    flex: (Option<f64>, Option<f64>),
    long_context: Option<LongContext>,
    date: Option<String>,
}

/// A model's entries by scope: `global.` and the rest (in-region ids and geographic
/// profiles, which share one price for the models with a premium).
#[derive(Default)]
struct ByScope {
    global: Option<Scoped>,
    regional: Option<Scoped>,
}

impl ByScope {
    fn put(&mut self, global: bool, scoped: Scoped) {
        let slot = if global {
            &mut self.global
        } else {
            &mut self.regional
        };
        // The first entry of a scope wins (`us.` and in-region before other geographies
        // is how both files list them).
        slot.get_or_insert(scoped);
    }

    /// One entry: the `global.` prices with the regional factor, or the one scope given.
    fn entry(self, source: &str) -> Option<FileEntry> {
        let (base, premium) = match (self.global, self.regional) {
            (Some(global), Some(regional)) => {
                let premium = match (global.input, regional.input) {
                    (Some(g), Some(r)) if g > 0.0 && (r / g - 1.0).abs() > 1e-9 => {
                        Some((r / g * 10_000.0).round() / 10_000.0)
                    }
                    _ => None,
                };
                (global, premium)
            }
            (Some(only), None) | (None, Some(only)) => (only, None),
            (None, None) => return None,
        };
        base.input?;
        Some(FileEntry {
            input: base.input,
            output: base.output.or(Some(0.0)),
            cache_read: base.cache_read,
            cache_write: base.cache_write,
            cache_write_1h: base.cache_write_1h,
            batch_input: base.batch.0,
            batch_output: base.batch.1.or(base.batch.0.map(|_| 0.0)),
            priority_input: base.priority.0,
            priority_output: base.priority.1,
            flex_input: base.flex.0,
            flex_output: base.flex.1,
            regional_premium: premium,
            long_context: base.long_context,
            source: Some(source.to_string()),
            date: base.date,
            ..FileEntry::default()
        })
    }
}

/// The model an id names without its profile (`anthropic.claude-sonnet-4-6`), and whether
/// the id is a `global.` one; `None` for what names no model.
fn model_of(id: &str) -> Option<(String, bool)> {
    let parsed = ModelId::parse(id)?;
    let base = crate::rules::model_id::base_model_id(id).to_string();
    Some((base, parsed.scope == Scope::Global))
}

fn per_token(entry: &Map<String, Value>, field: &str) -> Option<f64> {
    entry
        .get(field)
        .and_then(Value::as_f64)
        .map(|usd| (usd * 1e6 * 1e9).round() / 1e9)
}

/// LiteLLM's Bedrock entries (`litellm_provider` `bedrock` or `bedrock_converse`; prices
/// per token).
pub(super) fn litellm(file: &Map<String, Value>, source: &str) -> BTreeMap<String, FileEntry> {
    let mut models: BTreeMap<String, ByScope> = BTreeMap::new();
    for (key, entry) in file {
        let Some(entry) = entry.as_object() else {
            continue;
        };
        let provider = entry.get("litellm_provider").and_then(Value::as_str);
        if !matches!(provider, Some("bedrock" | "bedrock_converse")) {
            continue;
        }
        let id = key.strip_prefix("bedrock/").unwrap_or(key);
        let id = id.strip_prefix("converse/").unwrap_or(id);
        // Region-scoped and commitment entries price one region or a reservation.
        if id.contains('/') {
            continue;
        }
        let Some((model, global)) = model_of(id) else {
            continue;
        };
        let price = |field: &str| per_token(entry, field);
        let long_context =
            price("input_cost_per_token_above_200k_tokens").map(|input| LongContext {
                above_input_tokens: 200_000,
                rates: Rates {
                    input,
                    output: price("output_cost_per_token_above_200k_tokens")
                        .or(price("output_cost_per_token"))
                        .unwrap_or(0.0),
                    cache_read: price("cache_read_input_token_cost_above_200k_tokens"),
                    cache_write: price("cache_creation_input_token_cost_above_200k_tokens"),
                    cache_write_1h: price(
                        "cache_creation_input_token_cost_above_1hr_above_200k_tokens",
                    ),
                },
            });
        models.entry(model).or_default().put(
            global,
            Scoped {
                input: price("input_cost_per_token"),
                output: price("output_cost_per_token"),
                cache_read: price("cache_read_input_token_cost"),
                cache_write: price("cache_creation_input_token_cost"),
                cache_write_1h: price("cache_creation_input_token_cost_above_1hr"),
                batch: (
                    price("input_cost_per_token_batches"),
                    price("output_cost_per_token_batches"),
                ),
                priority: (
                    price("input_cost_per_token_priority"),
                    price("output_cost_per_token_priority"),
                ),
                flex: (
                    price("input_cost_per_token_flex"),
                    price("output_cost_per_token_flex"),
                ),
                long_context,
                date: None,
            },
        );
    }
    models
        .into_iter()
        .filter_map(|(model, scopes)| Some((model, scopes.entry(source)?)))
        .collect()
}

/// A genai-prices price: a number, or `{base, tiers: [{start, price}]}` (the base, and the
/// first tier with its threshold).
fn mtok(value: Option<&Value>) -> (Option<f64>, Option<(u64, f64)>) {
    match value {
        Some(Value::Number(n)) => (n.as_f64(), None),
        Some(Value::Object(tiered)) => {
            let base = tiered.get("base").and_then(Value::as_f64);
            let tier = tiered
                .get("tiers")
                .and_then(Value::as_array)
                .and_then(|tiers| tiers.first())
                .and_then(|tier| {
                    Some((tier.get("start")?.as_u64()?, tier.get("price")?.as_f64()?))
                });
            (base, tier)
        }
        _ => (None, None),
    }
}

/// The prices in force of a genai-prices model: a price object, or a list of conditional
/// ones of which the last whose `start_date` has come (`today`, YYYY-MM-DD) applies.
fn prices_in_force<'a>(prices: &'a Value, today: &str) -> Option<&'a Map<String, Value>> {
    match prices {
        Value::Object(map) => Some(map),
        Value::Array(list) => list
            .iter()
            .filter(|conditional| {
                conditional
                    .pointer("/constraint/start_date")
                    .and_then(Value::as_str)
                    .is_none_or(|start| start <= today)
            })
            .filter_map(|conditional| conditional.get("prices")?.as_object())
            .next_back(),
        _ => None,
    }
}

/// Every string a genai-prices `match` clause compares ids with.
fn match_strings(clause: &Value, out: &mut Vec<String>) {
    match clause {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("equals" | "contains" | "starts_with", Value::String(text)) => {
                        out.push(text.clone())
                    }
                    ("or" | "and", Value::Array(clauses)) => {
                        clauses.iter().for_each(|c| match_strings(c, out))
                    }
                    _ => {}
                }
            }
        }
        Value::Array(clauses) => clauses.iter().for_each(|c| match_strings(c, out)),
        _ => {}
    }
}

/// genai-prices' AWS Bedrock models (prices per million tokens). A model's key is what
/// its `match` names (`contains: global.anthropic.claude-sonnet-4-6` covers every version of
/// Sonnet 4.6), else its id; `global.` and `regional.` entries of one model become one.
pub(super) fn genai_prices(
    providers: &[Value],
    source: &str,
    today: &str,
) -> BTreeMap<String, FileEntry> {
    let mut models: BTreeMap<String, ByScope> = BTreeMap::new();
    let bedrock = providers.iter().filter(|provider| {
        provider.get("id").and_then(Value::as_str) == Some("aws")
            || provider
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|name| name.contains("Bedrock"))
    });
    for provider in bedrock {
        let Some(list) = provider.get("models").and_then(Value::as_array) else {
            continue;
        };
        for model in list {
            let Some(id) = model.get("id").and_then(Value::as_str) else {
                continue;
            };
            let (global, plain_id) = match id.strip_prefix("global.") {
                Some(rest) => (true, rest),
                None => (false, id.strip_prefix("regional.").unwrap_or(id)),
            };
            let mut names = Vec::new();
            if let Some(clause) = model.get("match") {
                match_strings(clause, &mut names);
            }
            names.push(plain_id.to_string());
            let Some(key) = names
                .iter()
                .find_map(|name| model_of(name).map(|(model, _)| model))
            else {
                continue;
            };
            let Some(prices) = model
                .get("prices")
                .and_then(|prices| prices_in_force(prices, today))
            else {
                continue;
            };
            let (input, input_tier) = mtok(prices.get("input_mtok"));
            let (output, output_tier) = mtok(prices.get("output_mtok"));
            let (cache_read, read_tier) = mtok(prices.get("cache_read_mtok"));
            let (cache_write, write_tier) = mtok(
                prices
                    .get("cache_write_5m_mtok")
                    .or(prices.get("cache_write_mtok")),
            );
            let long_context = input_tier.map(|(start, tier_input)| LongContext {
                above_input_tokens: start,
                rates: Rates {
                    input: tier_input,
                    output: output_tier.map_or(output.unwrap_or(0.0), |(_, p)| p),
                    cache_read: read_tier.map(|(_, p)| p).or(cache_read),
                    cache_write: write_tier.map(|(_, p)| p).or(cache_write),
                    cache_write_1h: None,
                },
            });
            models.entry(key).or_default().put(
                global,
                Scoped {
                    input,
                    output,
                    cache_read,
                    cache_write,
                    cache_write_1h: mtok(prices.get("cache_write_1h_mtok")).0,
                    long_context,
                    date: model
                        .get("prices_checked")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    ..Scoped::default()
                },
            );
        }
    }
    models
        .into_iter()
        .filter_map(|(model, scopes)| Some((model, scopes.entry(source)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn litellm_scopes_become_one_entry_with_its_premium() {
        let file = json!({
            "sample_spec": {"input_cost_per_token": 0.0},
            "global.anthropic.claude-sonnet-4-6": {"litellm_provider": "bedrock_converse",
                "input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
                "cache_read_input_token_cost": 3e-07},
            "us.anthropic.claude-sonnet-4-6": {"litellm_provider": "bedrock_converse",
                "input_cost_per_token": 3.3e-06, "output_cost_per_token": 1.65e-05},
            "bedrock/us-east-1/deepseek.v3.2": {"litellm_provider": "bedrock",
                "input_cost_per_token": 9e-06, "output_cost_per_token": 9e-06},
            "meta.llama4-scout-17b-instruct-v1:0": {"litellm_provider": "bedrock_converse",
                "input_cost_per_token": 1.7e-07, "output_cost_per_token": 6.6e-07,
                "input_cost_per_token_batches": 8.5e-08, "output_cost_per_token_batches": 3.3e-07},
            "gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": 1e-06}
        });
        let entries = litellm(file.as_object().unwrap(), "test");
        let keys: Vec<&str> = entries.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "anthropic.claude-sonnet-4-6",
                "meta.llama4-scout-17b-instruct-v1:0"
            ]
        );
        let sonnet = &entries["anthropic.claude-sonnet-4-6"];
        assert_eq!((sonnet.input, sonnet.output), (Some(3.0), Some(15.0)));
        assert_eq!(sonnet.cache_read, Some(0.3));
        assert_eq!(sonnet.regional_premium, Some(1.1));
        let scout = &entries["meta.llama4-scout-17b-instruct-v1:0"];
        assert_eq!(
            (scout.batch_input, scout.batch_output),
            (Some(0.085), Some(0.33))
        );
        assert_eq!(scout.regional_premium, None);
    }

    #[test]
    fn genai_prices_match_names_the_model_and_dated_prices_apply_from_their_day() {
        let file = json!([
            {"id": "openai", "models": [{"id": "gpt-x", "prices": {"input_mtok": 1}}]},
            {"id": "aws", "name": "AWS Bedrock", "models": [
                {"id": "global.anthropic.claude-sonnet-5-v1:0",
                 "match": {"contains": "global.anthropic.claude-sonnet-5"},
                 "prices_checked": "2026-06-30",
                 "prices": [
                    {"prices": {"input_mtok": 2, "output_mtok": 10}},
                    {"constraint": {"start_date": "2026-09-01"},
                     "prices": {"input_mtok": 3, "output_mtok": 15}}]},
                {"id": "regional.anthropic.claude-sonnet-5-v1:0",
                 "match": {"or": [{"starts_with": "anthropic.claude-sonnet-5"},
                                  {"contains": "us.anthropic.claude-sonnet-5"}]},
                 "prices": {"input_mtok": 2.2, "output_mtok": 11}},
                {"id": "qwen.qwen3-coder-480b-a35b-v1:0",
                 "match": {"contains": "qwen.qwen3-coder-480b-a35b"},
                 "prices": {"input_mtok": 0.45, "output_mtok": 1.8}},
                {"id": "global.anthropic.claude-opus-4-6-v1:0",
                 "match": {"contains": "global.anthropic.claude-opus-4-6"},
                 "prices": {"input_mtok": {"base": 5, "tiers": [{"start": 200000, "price": 10}]},
                            "output_mtok": {"base": 25, "tiers": [{"start": 200000, "price": 37.5}]}}}
            ]}
        ]);
        let before = genai_prices(file.as_array().unwrap(), "test", "2026-08-31");
        let sonnet = &before["anthropic.claude-sonnet-5"];
        assert_eq!((sonnet.input, sonnet.output), (Some(2.0), Some(10.0)));
        assert_eq!(sonnet.regional_premium, Some(1.1));
        assert_eq!(sonnet.date.as_deref(), Some("2026-06-30"));
        let after = genai_prices(file.as_array().unwrap(), "test", "2026-09-01");
        assert_eq!(after["anthropic.claude-sonnet-5"].input, Some(3.0));
        assert_eq!(before["qwen.qwen3-coder-480b-a35b"].input, Some(0.45));
        let opus = before["anthropic.claude-opus-4-6"].long_context.unwrap();
        assert_eq!(opus.above_input_tokens, 200_000);
        assert_eq!((opus.rates.input, opus.rates.output), (10.0, 37.5));
        assert!(!before.keys().any(|k| k.contains("gpt")));
    }
}
