//! The exit codes of the contract, named.

/// Every record ok.
pub const OK: u8 = 0;
/// Some records failed; results are still complete. For `prices`: some model has no price.
pub const SOME_FAILED: u8 = 1;
/// Usage, configuration or input error.
pub const USAGE: u8 = 2;
/// StopReport on a fatal service error (access denied, unknown model).
pub const FATAL: u8 = 3;
/// Stopped at --budget-usd.
pub const BUDGET: u8 = 4;
/// A local file could not be read or written (a full disk, a lost permission): sysexits'
/// EX_IOERR.
pub const LOCAL_IO: u8 = 74;
/// A fault of bedrock-batch itself (a stage panicked or was lost): sysexits' EX_SOFTWARE.
/// The state holds what was committed; a rerun resumes.
pub const INTERNAL: u8 = 70;
/// Interrupted (Ctrl-C).
pub const INTERRUPTED: u8 = 130;
