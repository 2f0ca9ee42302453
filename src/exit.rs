//! The exit codes of the contract, named.

/// Every record ok.
pub const OK: u8 = 0;
/// Some records failed; results are still complete. For `prices`: some model has no price.
pub const SOME_FAILED: u8 = 1;
/// Usage, configuration or input error.
pub const USAGE: u8 = 2;
/// Aborted on a fatal service error (access denied, unknown model).
pub const FATAL: u8 = 3;
/// Stopped at --budget-usd.
pub const BUDGET: u8 = 4;
/// Interrupted (Ctrl-C).
pub const INTERRUPTED: u8 = 130;
