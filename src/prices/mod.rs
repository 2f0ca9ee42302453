//! What tokens cost. A [`PriceTable`] maps model ids to [`Price`] entries: the built-in
//! table ([`built_in`]), extended or overridden field by field by `--prices FILE` (TOML or
//! JSON, [`file`]; or LiteLLM's and genai-prices' files, [`ecosystem`]). Ids are parsed ([`ModelId`]), never matched by prefix: an entry names
//! one model (every version of it when the entry gives no date or version), so a new model
//! stays unpriced until an entry names it instead of inheriting an elder's price.
//!
//! Usage is priced one request at a time ([`PriceTable::charge`]) because some rules depend
//! on the request: the long-context tier bills a whole request at its premium rates once
//! its input passes a threshold, which a sum over requests cannot tell. Each charge names
//! its pricing variant (`on_demand`, `on_demand+regional`, `on_demand+global+long_context`,
//! `flex`, `priority+regional`, `batch`) so summaries can say what was billed how. A model or a usage without a price
//! costs `None`, never a silent 0.

pub mod built_in;
mod ecosystem;
mod file;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use file::PricesError;

use crate::rules::model_id::{ModelId, Scope, base_model_id};
use crate::vocab::{ServiceTier, Usage};

/// The variant of a usage that could not be priced.
pub const UNPRICED: &str = "unpriced";

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
    fn scaled(self, factor: f64) -> Rates {
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
    fn premium(&self, scope: Scope) -> (f64, Option<String>) {
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
    fn on_demand_in(&self, scope: Scope, long_context: Option<&LongContext>) -> (Rates, String) {
        let rates = long_context.map_or(self.on_demand(), |tier| tier.rates);
        self.placed("on_demand", rates, scope, long_context.is_some())
    }

    /// `rates` with the premium of `scope`, and the variant's name: `head`, the place,
    /// then `long_context` when it applies.
    fn placed(
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
    fn tier(&self, tier: ServiceTier) -> Option<Rates> {
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
    fn rates(self) -> Rates {
        Rates {
            input: self.input,
            output: self.output,
            cache_read: None,
            cache_write: None,
            cache_write_1h: None,
        }
    }
}

/// How a request is sent, which decides its price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// On demand in the default tier.
    OnDemand,
    /// On demand in the priority service tier.
    Priority,
    /// On demand in the flex service tier.
    Flex,
    /// Bedrock Batch Inference: the model's batch prices (with its regional premium).
    Batch,
}

impl Route {
    /// The on-demand route of calls served in `tier` (`None`: no tier reported, so default).
    pub fn on_demand(tier: Option<ServiceTier>) -> Route {
        match tier.unwrap_or_default() {
            ServiceTier::Default => Route::OnDemand,
            ServiceTier::Priority => Route::Priority,
            ServiceTier::Flex => Route::Flex,
        }
    }

    /// The head of the route's variant names, off the default route.
    fn name(self) -> Option<&'static str> {
        match self {
            Route::OnDemand => None,
            Route::Priority => Some("priority"),
            Route::Flex => Some("flex"),
            Route::Batch => Some("batch"),
        }
    }

    /// The tier (or `batch`) a variant name was charged under: `on_demand...` and
    /// `unpriced` are the default tier; `None` for lines no route priced (usage not
    /// reported, lines of runs before variants were kept).
    pub fn tier_of_variant(variant: &str) -> Option<&'static str> {
        match variant.split('+').next()? {
            "on_demand" | UNPRICED => Some("default"),
            "priority" => Some("priority"),
            "flex" => Some("flex"),
            "batch" => Some("batch"),
            _ => None,
        }
    }

    /// The route of a result line: `batch` by its `via`, else by its `service_tier`.
    pub fn of_line(via: Option<&str>, service_tier: Option<&str>) -> Route {
        match via {
            Some("batch") => Route::Batch,
            _ => Route::on_demand(service_tier.and_then(ServiceTier::parse)),
        }
    }
}

/// What one request (or result line) cost and under which pricing variant.
#[derive(Debug, Clone, PartialEq)]
pub struct Charge {
    /// [`UNPRICED`] when `usd` is `None`.
    pub variant: String,
    pub usd: Option<f64>,
}

impl Charge {
    /// No price for a request sent by `route`: `unpriced`, or `flex+unpriced` and the like
    /// off the default route, so the tier of every line still shows.
    fn unpriced(route: Route) -> Charge {
        let variant = match route.name() {
            None => UNPRICED.to_string(),
            Some(head) => format!("{head}+{UNPRICED}"),
        };
        Charge { variant, usd: None }
    }
}

/// The entries of the `--prices` file at `path`, whichever format it is in.
fn read_entries(path: &Path) -> Result<BTreeMap<String, file::FileEntry>, PricesError> {
    match file::read(path)? {
        file::Read::Entries(entries) => Ok(entries),
        file::Read::Json(value) => match ecosystem::read(path, value) {
            Ok(entries) if entries.is_empty() => Err(PricesError::Format {
                path: path.to_path_buf(),
                message: "it looks like a LiteLLM or genai-prices file, but has no Bedrock entry with a price".to_string(),
            }),
            Ok(entries) => Ok(entries),
            Err(value) => file::ours(path, value),
        },
    }
}

/// A model id as a table key: the parts of a [`ModelId`] an entry gives; a missing date or
/// version matches every one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    provider: String,
    name: String,
    date: Option<String>,
    version: Option<String>,
}

impl Key {
    /// The key `text` names: a model id (profile prefixes are ignored), optionally ending in
    /// `-*` or `*`, which mean what leaving out the date and version means.
    fn parse(text: &str) -> Option<Key> {
        let id = ModelId::parse(without_wildcard(text))?;
        Some(Key {
            provider: id.provider.to_string(),
            name: id.name.to_string(),
            date: id.date.map(str::to_string),
            version: id.version.map(str::to_string),
        })
    }

    fn matches(&self, id: &ModelId) -> bool {
        self.provider == id.provider
            && self.name == id.name
            && self.date.as_deref().is_none_or(|d| id.date == Some(d))
            && self
                .version
                .as_deref()
                .is_none_or(|v| id.version == Some(v))
    }

    /// More specific keys win over broader ones.
    fn specificity(&self) -> u8 {
        u8::from(self.date.is_some()) + u8::from(self.version.is_some())
    }
}

/// `text` without a trailing `-*` or `*`.
fn without_wildcard(text: &str) -> &str {
    let text = text.trim();
    text.strip_suffix("-*")
        .or_else(|| text.strip_suffix('*'))
        .unwrap_or(text)
}

#[derive(Debug, Clone)]
struct Entry {
    /// As written in the table or the file.
    name: String,
    key: Key,
    price: Price,
    /// 0 for built-in entries, then the place of its `--prices` file (1 for the first):
    /// entries of a later file win over earlier ones and over the built-in table.
    rank: usize,
}

/// A model id resolved to its entry.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'t, 'i> {
    /// The entry's key as written (`anthropic.claude-sonnet-4-5`).
    pub entry: &'t str,
    pub price: &'t Price,
    pub id: ModelId<'i>,
}

impl Resolved<'_, '_> {
    /// What `usage`, one request's, costs sent by `route`.
    pub fn charge(&self, usage: &Usage, route: Route) -> Charge {
        let (rates, variant) = match route {
            // Batch prices carry the regional premium too (Claude 4.5 and later: `us.`
            // batch costs 10% more than `global.` batch).
            Route::Batch => match self.price.batch {
                Some(batch) => self
                    .price
                    .placed("batch", batch.rates(), self.id.scope, false),
                None => return Charge::unpriced(route),
            },
            Route::Priority | Route::Flex => {
                let tier = if route == Route::Flex {
                    ServiceTier::Flex
                } else {
                    ServiceTier::Priority
                };
                match self.price.tier(tier) {
                    Some(rates) => self
                        .price
                        .placed(tier.as_str(), rates, self.id.scope, false),
                    None => return Charge::unpriced(route),
                }
            }
            Route::OnDemand => {
                let input = usage.input_tokens
                    + usage.cache_read_input_tokens
                    + usage.cache_write_input_tokens;
                let tier = self
                    .price
                    .long_context
                    .as_ref()
                    .filter(|tier| input > tier.above_input_tokens);
                self.price.on_demand_in(self.id.scope, tier)
            }
        };
        match rates.cost(usage) {
            Some(usd) => Charge {
                variant,
                usd: Some(usd),
            },
            None => Charge::unpriced(route),
        }
    }
}

/// Prices by model.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    entries: Vec<Entry>,
}

impl PriceTable {
    pub fn built_in() -> PriceTable {
        let mut table = PriceTable::default();
        for (name, price) in built_in::entries() {
            let key = Key::parse(name).expect("built-in price keys name models");
            table.entries.push(Entry {
                name: name.to_string(),
                key,
                price,
                rank: 0,
            });
        }
        table
    }

    /// The built-in table with the entries of `paths` added (or overriding the fields they
    /// give), each file over the ones before it: a LiteLLM file, then a file of ours that
    /// corrects one field. Within a file broad entries are read before narrow ones, so
    /// `anthropic.claude-sonnet-4-5-20250929-v1:0` in a file starts from the file's
    /// `anthropic.claude-sonnet-4-5`, not the built-in one.
    pub fn with_files(paths: &[std::path::PathBuf]) -> Result<PriceTable, PricesError> {
        let mut table = PriceTable::built_in();
        for (index, path) in paths.iter().enumerate() {
            table.add_file(path, index + 1)?;
        }
        Ok(table)
    }

    fn add_file(&mut self, path: &Path, rank: usize) -> Result<(), PricesError> {
        let mut keyed = Vec::new();
        for (name, entry) in read_entries(path)? {
            let key = Key::parse(&name).ok_or_else(|| PricesError::Key {
                path: path.to_path_buf(),
                key: name.clone(),
            })?;
            keyed.push((key, name, entry));
        }
        keyed.sort_by_key(|(key, _, _)| key.specificity());
        for (key, name, entry) in keyed {
            let base = self.price(without_wildcard(&name)).cloned();
            let price = file::merge(path, &name, entry, base.as_ref())?;
            self.entries.push(Entry {
                name,
                key,
                price,
                rank,
            });
        }
        Ok(())
    }

    /// The built-in table with `path`'s entries ([`PriceTable::with_files`] with one file).
    pub fn with_file(path: &Path) -> Result<PriceTable, PricesError> {
        PriceTable::with_files(&[path.to_path_buf()])
    }

    /// The entry `model_id` resolves to: the `--prices` file's before the built-in table's,
    /// then the most specific.
    pub fn resolve<'t, 'i>(&'t self, model_id: &'i str) -> Option<Resolved<'t, 'i>> {
        let id = ModelId::parse(model_id)?;
        let entry = self
            .entries
            .iter()
            .filter(|entry| entry.key.matches(&id))
            .max_by_key(|entry| (entry.rank, entry.key.specificity()))?;
        Some(Resolved {
            entry: &entry.name,
            price: &entry.price,
            id,
        })
    }

    /// The prices of `model_id`.
    pub fn price(&self, model_id: &str) -> Option<&Price> {
        self.resolve(model_id).map(|resolved| resolved.price)
    }

    /// What one request's `usage` on `model_id` costs sent by `route`.
    pub fn charge(&self, model_id: &str, usage: &Usage, route: Route) -> Charge {
        self.resolve(model_id).map_or_else(
            || Charge::unpriced(route),
            |resolved| resolved.charge(usage, route),
        )
    }

    /// The on-demand cost of one request's `usage` on `model_id`, or `None` when unknown.
    pub fn cost(&self, model_id: &str, usage: &Usage) -> Option<f64> {
        self.charge(model_id, usage, Route::OnDemand).usd
    }

    /// The Batch Inference price of `model_id`, when known.
    pub fn batch_price(&self, model_id: &str) -> Option<BatchPrice> {
        self.price(model_id).and_then(|price| price.batch)
    }

    /// Up to `n` entry names nearest `query` (a model name without its provider, a typo),
    /// best first: what a usage error suggests for a `--model` that is no model id. Near
    /// means a small edit distance to the name with or without its provider, or a name
    /// that contains the query (`haiku`).
    pub fn closest(&self, query: &str, n: usize) -> Vec<&str> {
        let query = base_model_id(query).to_ascii_lowercase();
        let tolerance = (query.chars().count() / 3).max(2);
        let mut near: Vec<(usize, &str)> = self
            .entries()
            .into_iter()
            .filter_map(|(name, _)| {
                let name = without_wildcard(name);
                let short = name.split_once('.').map_or(name, |(_, rest)| rest);
                let distance =
                    strsim::levenshtein(&query, name).min(strsim::levenshtein(&query, short));
                let contains = query.len() >= 4 && short.contains(query.as_str());
                (distance <= tolerance || contains).then_some((distance, name))
            })
            .collect();
        near.sort_unstable();
        near.dedup_by_key(|(_, name)| *name);
        near.into_iter().take(n).map(|(_, name)| name).collect()
    }

    /// Every entry, by key, as `prices` lists them.
    pub fn entries(&self) -> Vec<(&str, &Price)> {
        let mut winners: BTreeMap<&str, &Entry> = BTreeMap::new();
        for entry in &self.entries {
            // A file entry under the same key replaces the built-in one.
            let slot = winners.entry(&entry.name).or_insert(entry);
            if entry.rank >= slot.rank {
                *slot = entry;
            }
        }
        winners
            .into_iter()
            .map(|(name, entry)| (name, &entry.price))
            .collect()
    }
}

#[cfg(test)]
mod tests;
