//! What a price is: [`Rates`] (USD per million tokens for one way of billing) and a
//! model's [`Price`] with its tiers (long context, priority, flex, batch) and its regional
//! or geographic premium, and the arithmetic on them: the cost of a usage under some rates,
//! the rates and the variant name of a call in a scope, every variant a model bills in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::rules::model_id::Scope;
use crate::vocab::{ServiceTier, Usage};

/// USD per million tokens for one way of billing a request. Cache prices are `None` where
/// the model has no such caching: cache tokens then make the cost unknown.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub input: f64,
    pub output: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<f64>,
    /// Cache writes with the default 5-minute TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
    /// Cache writes with a 1-hour TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_1h: Option<f64>,
}

impl Rates {
    pub(super) fn scaled(self, factor: f64) -> Rates {
        // To a billionth of a dollar per million tokens: 3.30, not 3.3000000000000003.
        let round = |p: f64| (p * factor * 1e9).round() / 1e9;
        let scale = |price: Option<f64>| price.map(round);
        Rates {
            input: round(self.input),
            output: round(self.output),
            cache_read: scale(self.cache_read),
            cache_write: scale(self.cache_write),
            cache_write_1h: scale(self.cache_write_1h),
        }
    }

    /// The cost of `usage`, or `None` when it has cache tokens these rates do not cover.
    pub fn cost(&self, usage: &Usage) -> Option<f64> {
        let cache = |tokens: u64, price: Option<f64>| match (tokens, price) {
            (0, _) => Some(0.0),
            (n, Some(price)) => Some(n as f64 * price),
            (_, None) => None,
        };
        let one_hour = usage
            .cache_write_1h_input_tokens
            .min(usage.cache_write_input_tokens);
        let five_minutes = usage.cache_write_input_tokens - one_hour;
        let total = usage.input_tokens as f64 * self.input
            + usage.output_tokens as f64 * self.output
            + cache(usage.cache_read_input_tokens, self.cache_read)?
            + cache(five_minutes, self.cache_write)?
            + cache(one_hour, self.cache_write_1h)?;
        Some(total / 1_000_000.0)
    }
}

/// The long-context tier: a request whose input, cache reads and cache writes together pass
/// `above_input_tokens` is billed entirely at these rates (not only the tokens past it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LongContext {
    pub above_input_tokens: u64,
    #[serde(flatten)]
    pub rates: Rates,
}

/// Bedrock Batch Inference prices, USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BatchPrice {
    pub input: f64,
    pub output: f64,
}

/// One model's prices, USD per million tokens. For a model with a regional premium the
/// on-demand rates are the `global.` ones.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<f64>,
    /// Cache writes with the default 5-minute TTL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
    /// Cache writes with a 1-hour TTL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_1h: Option<f64>,
    /// Batch Inference prices; `None`: not published (or not offered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchPrice>,
    /// The priority service tier's rates (before any regional premium); `None`: not
    /// published, so priority calls cost unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<Rates>,
    /// The flex service tier's rates (before any regional premium).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flex: Option<Rates>,
    /// The factor over the `global.` price for geographic profiles (`us.`, `eu.`...) and
    /// in-region ids; `None`: one price wherever the call runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regional_premium: Option<f64>,
    /// Factors of single geographies (`eu`), replacing `regional_premium` for their profiles.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub geography_premium: BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub long_context: Option<LongContext>,
    /// Where the numbers come from, and when they were read there.
    pub source: String,
    pub date: String,
}

/// One way a model bills, as `prices` lists it: the variant's name, the rates, and the
/// input size past which it applies (the long-context tier).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantRates {
    pub variant: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub above_input_tokens: Option<u64>,
    #[serde(flatten)]
    pub rates: Rates,
}

impl Price {
    /// The on-demand rates before any regional premium or long-context tier.
    pub fn on_demand(&self) -> Rates {
        Rates {
            input: self.input,
            output: self.output,
            cache_read: self.cache_read,
            cache_write: self.cache_write,
            cache_write_1h: self.cache_write_1h,
        }
    }

    /// The factor calls in `scope` pay over the base rates, and the name of that place in
    /// variant names (`None` for models with one price everywhere).
    pub(super) fn premium(&self, scope: Scope) -> (f64, Option<String>) {
        if let Scope::Geography(geography) = scope
            && let Some(factor) = self.geography_premium.get(geography)
        {
            return (*factor, Some(geography.to_string()));
        }
        match (scope, self.regional_premium) {
            (_, None) => (1.0, None),
            (Scope::Global, Some(_)) => (1.0, Some("global".to_string())),
            (_, Some(factor)) => (factor, Some("regional".to_string())),
        }
    }

    /// The on-demand rates of a call in `scope`, long-context tier included when
    /// `long_context`, and the variant's name.
    pub(super) fn on_demand_in(
        &self,
        scope: Scope,
        long_context: Option<&LongContext>,
    ) -> (Rates, String) {
        let rates = long_context.map_or(self.on_demand(), |tier| tier.rates);
        self.placed("on_demand", rates, scope, long_context.is_some())
    }

    /// `rates` with the premium of `scope`, and the variant's name: `head`, the place,
    /// then `long_context` when it applies.
    pub(super) fn placed(
        &self,
        head: &str,
        rates: Rates,
        scope: Scope,
        long_context: bool,
    ) -> (Rates, String) {
        let (factor, place) = self.premium(scope);
        let name = std::iter::once(head)
            .chain(place.as_deref())
            .chain(long_context.then_some("long_context"))
            .collect::<Vec<_>>()
            .join("+");
        (rates.scaled(factor), name)
    }

    /// The rates of a service tier other than default, when published.
    pub(super) fn tier(&self, tier: ServiceTier) -> Option<Rates> {
        match tier {
            ServiceTier::Default => Some(self.on_demand()),
            ServiceTier::Priority => self.priority,
            ServiceTier::Flex => self.flex,
        }
    }

    /// Every way a call in `scope` can be billed: on demand, in the long-context tier, in
    /// batch.
    pub fn variants_in(&self, scope: Scope) -> Vec<VariantRates> {
        let variant = |tier: Option<&LongContext>| {
            let (rates, variant) = self.on_demand_in(scope, tier);
            VariantRates {
                variant,
                above_input_tokens: tier.map(|t| t.above_input_tokens),
                rates,
            }
        };
        let mut variants = vec![variant(None)];
        variants.extend(self.long_context.as_ref().map(|tier| variant(Some(tier))));
        for tier in [ServiceTier::Priority, ServiceTier::Flex] {
            variants.extend(self.tier(tier).map(|rates| {
                let (rates, variant) = self.placed(tier.as_str(), rates, scope, false);
                VariantRates {
                    variant,
                    above_input_tokens: None,
                    rates,
                }
            }));
        }
        variants.extend(self.batch.map(|batch| {
            let (rates, variant) = self.placed("batch", batch.rates(), scope, false);
            VariantRates {
                variant,
                above_input_tokens: None,
                rates,
            }
        }));
        variants
    }

    /// The scopes whose prices differ for this model: one for most models; global and
    /// regional (and each geography with its own factor) for those with a premium.
    pub fn scopes(&self) -> Vec<Scope<'_>> {
        let mut scopes = Vec::new();
        if self.regional_premium.is_some() {
            scopes.extend([Scope::Global, Scope::InRegion]);
        } else {
            scopes.push(Scope::InRegion);
        }
        scopes.extend(
            self.geography_premium
                .keys()
                .map(|geography| Scope::Geography(geography)),
        );
        scopes
    }
}

impl BatchPrice {
    pub(super) fn rates(self) -> Rates {
        Rates {
            input: self.input,
            output: self.output,
            cache_read: None,
            cache_write: None,
            cache_write_1h: None,
        }
    }
}
