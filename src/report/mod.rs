//! What the user sees: running totals, the summary written to summary.json and printed at
//! the end, and the progress display on stderr.

pub mod prices;
pub mod progress;
pub mod runs;
pub mod summary;
