//! `bedrock-batch prices [MODEL...]`: the price table, or what given ids resolve to, one
//! line per pricing variant, with each entry's source and date, so a user can check what a
//! report will charge before a run. Building the listing ([`list`]) is apart from printing
//! it ([`render`]).

use serde::Serialize;

use crate::cli::PricesArgs;
use crate::commands::{Failure, emit};
use crate::exit;
use crate::prices::{PriceTable, UNPRICED, VariantRates};
use crate::report::text_table::{self, Format, TableError};

/// One model (an id asked about, or an entry of the table) and how it bills.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listed {
    /// The id as given, or the entry's key when listing the whole table.
    pub model: String,
    /// The entry it resolved to; `null`: no price, a run reports its cost as unknown.
    pub entry: Option<String>,
    pub variants: Vec<VariantRates>,
    pub source: Option<String>,
    pub date: Option<String>,
}

impl Listed {
    pub fn is_priced(&self) -> bool {
        self.entry.is_some()
    }
}

/// The entries for `models` as resolved, or every entry of `table` when none is given.
pub fn list(table: &PriceTable, models: &[String]) -> Vec<Listed> {
    if models.is_empty() {
        return table
            .entries()
            .into_iter()
            .map(|(key, price)| {
                let mut variants: Vec<VariantRates> = Vec::new();
                for scope in price.scopes() {
                    for variant in price.variants_in(scope) {
                        if !variants.iter().any(|v| v.variant == variant.variant) {
                            variants.push(variant);
                        }
                    }
                }
                Listed {
                    model: key.to_string(),
                    entry: Some(key.to_string()),
                    variants,
                    source: Some(price.source.clone()),
                    date: Some(price.date.clone()),
                }
            })
            .collect();
    }
    models
        .iter()
        .map(|model| match table.resolve(model) {
            Some(resolved) => Listed {
                model: model.clone(),
                entry: Some(resolved.entry.to_string()),
                variants: resolved.price.variants_in(resolved.id.scope),
                source: Some(resolved.price.source.clone()),
                date: Some(resolved.price.date.clone()),
            },
            None => Listed {
                model: model.clone(),
                entry: None,
                variants: Vec::new(),
                source: None,
                date: None,
            },
        })
        .collect()
}

/// A price per million tokens: at least two decimals, as many as it has up to six
/// (`3.30`, `4.125`, `0.00875`).
fn usd(price: Option<f64>) -> String {
    let Some(price) = price else {
        return "-".to_string();
    };
    let mut text = format!("{price:.6}");
    while text.ends_with('0') && text.len() - text.find('.').unwrap_or(0) > 3 {
        text.pop();
    }
    text
}

const HEADERS: [&str; 10] = [
    "model",
    "entry",
    "variant",
    "input",
    "output",
    "cache read",
    "cache write 5m",
    "cache write 1h",
    "source",
    "date",
];

/// Renders `listed` in `format`; prices are USD per million tokens.
pub fn render(listed: &[Listed], format: Format) -> Result<String, TableError> {
    if format == Format::Json {
        return Ok(serde_json::to_string_pretty(listed)? + "\n");
    }
    let mut rows = Vec::new();
    for item in listed {
        let text = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_string());
        if item.variants.is_empty() {
            rows.push(vec![
                item.model.clone(),
                "-".to_string(),
                UNPRICED.to_string(),
                "-".to_string(),
                "-".to_string(),
                "-".to_string(),
                "-".to_string(),
                "-".to_string(),
                "no price: its cost is reported as unknown; give one with --prices FILE"
                    .to_string(),
                "-".to_string(),
            ]);
        }
        for v in &item.variants {
            let variant = match v.above_input_tokens {
                Some(above) => format!(
                    "{} (input > {})",
                    v.variant,
                    crate::summary::thousands(above)
                ),
                None => v.variant.clone(),
            };
            rows.push(vec![
                item.model.clone(),
                text(&item.entry),
                variant,
                usd(Some(v.rates.input)),
                usd(Some(v.rates.output)),
                usd(v.rates.cache_read),
                usd(v.rates.cache_write),
                usd(v.rates.cache_write_1h),
                text(&item.source),
                text(&item.date),
            ]);
        }
    }
    if format != Format::Table {
        return text_table::render(&HEADERS, &rows, 3..8, format);
    }
    // On a terminal: no entry and no source columns (the widest), so a line fits; the
    // other formats keep both.
    let narrow = |row: &Vec<String>| {
        let mut row = row.clone();
        if row[2] == UNPRICED {
            row[2] = format!("{} ({})", row[2], row[8]);
        }
        row.remove(8);
        row.remove(1);
        row
    };
    let headers: Vec<&str> = HEADERS
        .iter()
        .enumerate()
        .filter(|(i, _)| ![1, 8].contains(i))
        .map(|(_, h)| *h)
        .collect();
    let rows: Vec<Vec<String>> = rows.iter().map(narrow).collect();
    let mut out = text_table::render(&headers, &rows, 2..7, format)?;
    out += "USD per million tokens; --format markdown, csv or json shows where each price comes from\n";
    Ok(out)
}

/// The `prices` command, from its flags to an exit code.
pub fn execute(args: PricesArgs) -> Result<u8, Failure> {
    let table = PriceTable::with_files(&args.prices).map_err(Failure::usage_error)?;
    let listed = list(&table, &args.models);
    let text = render(&listed, args.format).map_err(Failure::usage_error)?;
    emit(&text)?;
    Ok(if listed.iter().all(Listed::is_priced) {
        exit::OK
    } else {
        exit::SOME_FAILED
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SONNET_4_5: &str = "anthropic.claude-sonnet-4-5-20250929-v1:0";

    #[test]
    fn the_listing_shows_each_variant_with_its_source() {
        let table = PriceTable::built_in();
        let listed = list(
            &table,
            &[format!("us.{SONNET_4_5}"), "acme.unknown-v1:0".to_string()],
        );
        assert_eq!(
            listed[0].entry.as_deref(),
            Some("anthropic.claude-sonnet-4-5")
        );
        let names: Vec<&str> = listed[0]
            .variants
            .iter()
            .map(|v| v.variant.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "on_demand+regional",
                "on_demand+regional+long_context",
                "batch+regional"
            ]
        );
        assert!(!listed[1].is_priced());
        let text = render(&listed, Format::Table).unwrap();
        assert!(
            text.contains("on_demand+regional+long_context (input > 200,000)"),
            "{text}"
        );
        assert!(text.contains("no price"), "{text}");
        let csv = render(&listed, Format::Csv).unwrap();
        assert!(
            csv.contains(",on_demand+regional,3.30,16.50,0.33,4.125,6.60,\"aws bedrock pricing page, us-east-1\",2025-11\n"),
            "{csv}"
        );

        let all = list(&table, &[]);
        let haiku = all
            .iter()
            .find(|l| l.model == "anthropic.claude-3-haiku")
            .unwrap();
        let names: Vec<&str> = haiku.variants.iter().map(|v| v.variant.as_str()).collect();
        assert_eq!(names, ["on_demand", "batch"]);
        let opus = all
            .iter()
            .find(|l| l.model == "anthropic.claude-opus-4-5")
            .unwrap();
        let names: Vec<&str> = opus.variants.iter().map(|v| v.variant.as_str()).collect();
        assert_eq!(
            names,
            [
                "on_demand+global",
                "batch+global",
                "on_demand+regional",
                "batch+regional"
            ]
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(&all, Format::Json).unwrap()).unwrap();
        assert!(json[0]["variants"][0]["input"].as_f64().is_some(), "{json}");
    }
}
