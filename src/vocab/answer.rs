//! What a call brings back: one [`Answer`] per record, and the token [`Usage`] that
//! results, summaries, prices and the pacer all count in.

use serde::Serialize;
use serde_json::Value;

/// Token usage as results and summaries report it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_input_tokens: u64,
    /// Every token written to the prompt cache, whatever its TTL (as Bedrock reports it).
    pub cache_write_input_tokens: u64,
    /// The part of `cache_write_input_tokens` written with a 1-hour TTL, which costs more
    /// than the default 5 minutes. Absent from results when 0, so lines read as before.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_1h_input_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Usage {
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_input_tokens += other.cache_read_input_tokens;
        self.cache_write_input_tokens += other.cache_write_input_tokens;
        self.cache_write_1h_input_tokens += other.cache_write_1h_input_tokens;
    }

    pub fn subtract(&mut self, other: &Usage) {
        self.input_tokens = self.input_tokens.saturating_sub(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_sub(other.output_tokens);
        self.cache_read_input_tokens = self
            .cache_read_input_tokens
            .saturating_sub(other.cache_read_input_tokens);
        self.cache_write_input_tokens = self
            .cache_write_input_tokens
            .saturating_sub(other.cache_write_input_tokens);
        self.cache_write_1h_input_tokens = self
            .cache_write_1h_input_tokens
            .saturating_sub(other.cache_write_1h_input_tokens);
    }
}

/// One record's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Text {
        output: String,
        /// With `--schema`: the tool input, validated against the schema.
        data: Option<Value>,
        stop_reason: String,
        usage: Usage,
        /// Time to first token, for streamed calls.
        ttft_ms: Option<u64>,
    },
    Embedding {
        vector: Value,
        usage: Usage,
    },
    Invoke {
        response: Value,
        usage: Usage,
    },
}

impl Answer {
    pub fn usage(&self) -> &Usage {
        match self {
            Answer::Text { usage, .. }
            | Answer::Embedding { usage, .. }
            | Answer::Invoke { usage, .. } => usage,
        }
    }
}
