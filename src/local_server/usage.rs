//! The tokens one answer uses: the counts the fake model computes (`fake_answer`) and the
//! server records once the answer is delivered whole (`shared_state`). Plain data,
//! importing nothing, so the model's pure functions need nothing of the server's state.

/// How one call uses the prompt cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheUse {
    pub read: u64,
    pub write: u64,
}

/// The usage of one delivered answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Input tokens not read from or written to the cache.
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache: CacheUse,
}
