//! Running totals of a run and the summary built from them: summary.json's types are the
//! contract ([`contract`]), the totals kept while a run goes are in [`totals`], and the
//! arithmetic that adds summaries up and prices them is in [`sums`]. How a summary reads
//! as text is `report::render`'s; the ways a count is written for people
//! ([`thousands`], [`plural`]) are here, where the engines below `report` reach them too.

mod contract;
pub mod retrieval;
mod sums;
mod totals;

pub use contract::{
    BudgetStop, LatencyMs, ModelTotals, RecordCounts, RegionTotals, StopReport, Summary, TtftMs,
    USAGE_NOT_REPORTED, VariantTotals,
};
pub use sums::{add_counts, apply_prices};
pub use totals::{Totals, new_histogram, percentiles, record_ms};

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `one` or `many` as `n` asks.
pub fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}
