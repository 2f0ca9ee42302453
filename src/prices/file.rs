//! `--prices FILE`: `[models."MODEL_ID"]` tables (TOML, or the same shape in JSON) of USD
//! per million tokens, or a price file of LiteLLM or genai-prices ([`super::ecosystem`]). An entry for a model the built-in table knows overrides only the
//! fields it gives; an entry for a new model needs at least `input` and `output`. Files
//! written for older versions (input, output, cache_read, cache_write) read the same.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{BatchPrice, LongContext, Price, Rates};

/// What a `--prices` file that cannot be read as one is told to look like.
const EXPECTED: &str = "Expected [models.\"MODEL_ID\"] tables with input and output (and optionally cache_read, cache_write, cache_write_1h, batch_input, batch_output, priority_input, priority_output, priority_cache_read, flex_input, flex_output, flex_cache_read, regional_premium, geography_premium, long_context, source, date) in USD per million tokens";

#[derive(Debug, thiserror::Error)]
pub enum PricesError {
    #[error("cannot read --prices {}: {error}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("--prices {}: {message}. {EXPECTED}", path.display())]
    Format { path: PathBuf, message: String },
    #[error("--prices {}: {source}. {EXPECTED}", path.display())]
    Toml {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("--prices {}: {source}. {EXPECTED}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("--prices {}: {model}.{field} must be a non-negative number", path.display())]
    Negative {
        path: PathBuf,
        model: String,
        field: String,
    },
    #[error("--prices {}: {model}: {problem}", path.display())]
    Entry {
        path: PathBuf,
        model: String,
        problem: String,
    },
    #[error(
        "--prices {}: {key:?} does not name a model (expected provider.model, like anthropic.claude-sonnet-4-5-20250929-v1:0 or anthropic.claude-sonnet-4-5 for all its versions)",
        path.display()
    )]
    Key { path: PathBuf, key: String },
}

#[derive(Debug, Deserialize)]
struct PricesFile {
    models: BTreeMap<String, FileEntry>,
}

/// An entry as written: every field optional, so it can override a built-in one.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileEntry {
    pub(super) input: Option<f64>,
    pub(super) output: Option<f64>,
    pub(super) cache_read: Option<f64>,
    pub(super) cache_write: Option<f64>,
    pub(super) cache_write_1h: Option<f64>,
    pub(super) batch_input: Option<f64>,
    pub(super) batch_output: Option<f64>,
    pub(super) priority_input: Option<f64>,
    pub(super) priority_output: Option<f64>,
    pub(super) priority_cache_read: Option<f64>,
    pub(super) flex_input: Option<f64>,
    pub(super) flex_output: Option<f64>,
    pub(super) flex_cache_read: Option<f64>,
    pub(super) regional_premium: Option<f64>,
    #[serde(default)]
    pub(super) geography_premium: BTreeMap<String, f64>,
    pub(super) long_context: Option<LongContext>,
    pub(super) source: Option<String>,
    pub(super) date: Option<String>,
}

impl FileEntry {
    /// Every number the entry gives, named as in the file.
    fn numbers(&self) -> Vec<(String, f64)> {
        let mut numbers: Vec<(String, f64)> = [
            ("input", self.input),
            ("output", self.output),
            ("cache_read", self.cache_read),
            ("cache_write", self.cache_write),
            ("cache_write_1h", self.cache_write_1h),
            ("batch_input", self.batch_input),
            ("batch_output", self.batch_output),
            ("priority_input", self.priority_input),
            ("priority_output", self.priority_output),
            ("priority_cache_read", self.priority_cache_read),
            ("flex_input", self.flex_input),
            ("flex_output", self.flex_output),
            ("flex_cache_read", self.flex_cache_read),
            ("regional_premium", self.regional_premium),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name.to_string(), value?)))
        .collect();
        numbers.extend(
            self.geography_premium
                .iter()
                .map(|(geography, factor)| (format!("geography_premium.{geography}"), *factor)),
        );
        if let Some(tier) = &self.long_context {
            let Rates {
                input,
                output,
                cache_read,
                cache_write,
                cache_write_1h,
            } = tier.rates;
            numbers.extend(
                [
                    ("input", Some(input)),
                    ("output", Some(output)),
                    ("cache_read", cache_read),
                    ("cache_write", cache_write),
                    ("cache_write_1h", cache_write_1h),
                ]
                .into_iter()
                .filter_map(|(name, value)| Some((format!("long_context.{name}"), value?))),
            );
        }
        numbers
    }
}

/// The entries of the prices file at `path`, as written.
/// `value` (our JSON shape, or an ecosystem file read as [`super::ecosystem`] entries), or
/// the text of our TOML, as entries.
pub(super) fn read(path: &Path) -> Result<Read, PricesError> {
    let text = std::fs::read_to_string(path).map_err(|error| PricesError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if !is_json {
        let file: PricesFile = toml::from_str(&text).map_err(|source| PricesError::Toml {
            path: path.to_path_buf(),
            source,
        })?;
        return Ok(Read::Entries(file.models));
    }
    serde_json::from_str(&text)
        .map(Read::Json)
        .map_err(|source| PricesError::Json {
            path: path.to_path_buf(),
            source,
        })
}

/// A `--prices` file as read: our entries, or JSON whose shape decides its format.
pub(super) enum Read {
    Entries(BTreeMap<String, FileEntry>),
    Json(serde_json::Value),
}

/// Our entries in JSON.
pub(super) fn ours(
    path: &Path,
    value: serde_json::Value,
) -> Result<BTreeMap<String, FileEntry>, PricesError> {
    let file: PricesFile = serde_json::from_value(value).map_err(|source| PricesError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(file.models)
}

/// `entry` over `base` (the entry its model resolved to before it), checked.
pub(super) fn merge(
    path: &Path,
    model: &str,
    entry: FileEntry,
    base: Option<&Price>,
) -> Result<Price, PricesError> {
    let problem = |problem: &str| PricesError::Entry {
        path: path.to_path_buf(),
        model: model.to_string(),
        problem: problem.to_string(),
    };
    for (field, value) in entry.numbers() {
        if !(value.is_finite() && value >= 0.0) {
            return Err(PricesError::Negative {
                path: path.to_path_buf(),
                model: model.to_string(),
                field,
            });
        }
    }
    let or_base =
        |value: Option<f64>, field: fn(&Price) -> Option<f64>| value.or(base.and_then(field));
    let (Some(input), Some(output)) = (
        or_base(entry.input, |p| Some(p.input)),
        or_base(entry.output, |p| Some(p.output)),
    ) else {
        return Err(problem(
            "input and output are needed for a model the built-in table does not price",
        ));
    };
    let batch = match (
        or_base(entry.batch_input, |p| p.batch.map(|b| b.input)),
        or_base(entry.batch_output, |p| p.batch.map(|b| b.output)),
    ) {
        (Some(input), Some(output)) => Some(BatchPrice { input, output }),
        (None, None) => None,
        _ => return Err(problem("batch_input and batch_output go together")),
    };
    let tier = |name: &str,
                input: Option<f64>,
                output: Option<f64>,
                cache_read: Option<f64>,
                base: Option<Rates>|
     -> Result<Option<Rates>, PricesError> {
        match (
            input.or(base.map(|b| b.input)),
            output.or(base.map(|b| b.output)),
        ) {
            (Some(input), Some(output)) => Ok(Some(Rates {
                input,
                output,
                cache_read: cache_read.or(base.and_then(|b| b.cache_read)),
                cache_write: base.and_then(|b| b.cache_write),
                cache_write_1h: base.and_then(|b| b.cache_write_1h),
            })),
            (None, None) if cache_read.is_none() => Ok(None),
            _ => Err(problem(&format!(
                "{name}_input and {name}_output go together"
            ))),
        }
    };
    let priority = tier(
        "priority",
        entry.priority_input,
        entry.priority_output,
        entry.priority_cache_read,
        base.and_then(|p| p.priority),
    )?;
    let flex = tier(
        "flex",
        entry.flex_input,
        entry.flex_output,
        entry.flex_cache_read,
        base.and_then(|p| p.flex),
    )?;
    let mut geography_premium = base
        .map(|p| p.geography_premium.clone())
        .unwrap_or_default();
    geography_premium.extend(entry.geography_premium);
    let source = match (entry.source, base) {
        (Some(source), _) => source,
        (None, Some(base)) => format!(
            "--prices {} (fields it does not give: {})",
            path.display(),
            base.source
        ),
        (None, None) => format!("--prices {}", path.display()),
    };
    Ok(Price {
        input,
        output,
        cache_read: or_base(entry.cache_read, |p| p.cache_read),
        cache_write: or_base(entry.cache_write, |p| p.cache_write),
        cache_write_1h: or_base(entry.cache_write_1h, |p| p.cache_write_1h),
        batch,
        priority,
        flex,
        regional_premium: or_base(entry.regional_premium, |p| p.regional_premium),
        geography_premium,
        long_context: entry.long_context.or(base.and_then(|p| p.long_context)),
        source,
        date: entry
            .date
            .or(base.map(|p| p.date.clone()))
            .unwrap_or_default(),
    })
}
