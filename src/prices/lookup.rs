//! Finding a model's price: a [`PriceTable`] holds the built-in entries and those of the
//! `--prices` files, each under a [`Key`] parsed from its name ([`ModelId`]), never matched
//! by prefix. A key without a date or version covers every one; a model id in any form
//! (profile, ARN, in-region) resolves to the most specific entry of the latest file that
//! names it, else of the built-in table, else to none. Near names are suggested for a
//! `--model` that is no model id.

use std::collections::BTreeMap;
use std::path::Path;

use super::charge::{Charge, Resolved, Route};
use super::file::{self, PricesError};
use super::rates::{BatchPrice, Price};
use super::{built_in, ecosystem};
use crate::rules::model_id::{ModelId, base_model_id};
use crate::vocab::Usage;

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
pub(super) struct Key {
    provider: String,
    name: String,
    date: Option<String>,
    version: Option<String>,
}

impl Key {
    /// The key `text` names: a model id (profile prefixes are ignored), optionally ending in
    /// `-*` or `*`, which mean what leaving out the date and version means.
    pub(super) fn parse(text: &str) -> Option<Key> {
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
