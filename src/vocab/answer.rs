//! What a call brings back: one [`Answer`] per record, and the token [`Usage`] that
//! results, summaries, prices and the pacer all count in. Knowledge-base answers carry the
//! passages retrieved or cited ([`Passage`], [`Citation`]) and no usage: the service
//! reports none.

use serde::Serialize;
use serde_json::Value;

use super::tier::ServiceTier;

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

/// No usage: what knowledge-base answers report.
static NO_USAGE: Usage = Usage {
    input_tokens: 0,
    output_tokens: 0,
    cache_read_input_tokens: 0,
    cache_write_input_tokens: 0,
    cache_write_1h_input_tokens: 0,
};

/// A passage a knowledge base retrieved, as result lines show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Passage {
    pub text: String,
    /// The relevance score, when the vector store gives one.
    pub score: Option<f64>,
    /// Where the passage comes from (`s3://...`), when the source has a URI.
    pub uri: Option<String>,
}

/// A source a part of a generated answer cites.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Source {
    pub uri: Option<String>,
    pub text: String,
}

/// A part of a generated answer and the sources it rests on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Citation {
    pub text: String,
    pub sources: Vec<Source>,
}

impl Answer {
    /// The source URIs of a knowledge-base answer in rank order, each once: the passages
    /// retrieved, or the sources cited (in the order the answer cites them). Empty for
    /// other answers.
    pub fn source_uris(&self) -> Vec<&str> {
        let uris: Vec<&str> = match self {
            Answer::Retrieved { passages } => {
                passages.iter().filter_map(|p| p.uri.as_deref()).collect()
            }
            Answer::Generated { citations, .. } => citations
                .iter()
                .flat_map(|c| &c.sources)
                .filter_map(|s| s.uri.as_deref())
                .collect(),
            _ => Vec::new(),
        };
        let mut seen = std::collections::HashSet::new();
        uris.into_iter().filter(|uri| seen.insert(*uri)).collect()
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
        /// The service tier the answer reports (`None` when it reports none).
        service_tier: Option<ServiceTier>,
    },
    Embedding {
        vector: Value,
        usage: Usage,
        service_tier: Option<ServiceTier>,
    },
    Invoke {
        response: Value,
        usage: Usage,
        service_tier: Option<ServiceTier>,
    },
    /// What Retrieve found, best first.
    Retrieved { passages: Vec<Passage> },
    /// What RetrieveAndGenerate answered.
    Generated {
        output: String,
        citations: Vec<Citation>,
    },
}

impl Answer {
    /// The tier the service says served the call.
    pub fn service_tier(&self) -> Option<ServiceTier> {
        match self {
            Answer::Text { service_tier, .. }
            | Answer::Embedding { service_tier, .. }
            | Answer::Invoke { service_tier, .. } => *service_tier,
            Answer::Retrieved { .. } | Answer::Generated { .. } => None,
        }
    }

    /// Adds `billed` (earlier attempts of the same call that were paid for) to the usage.
    pub fn add_billed(&mut self, billed: &Usage) {
        match self {
            Answer::Text { usage, .. }
            | Answer::Embedding { usage, .. }
            | Answer::Invoke { usage, .. } => usage.add(billed),
            Answer::Retrieved { .. } | Answer::Generated { .. } => {}
        }
    }

    pub fn usage(&self) -> &Usage {
        match self {
            Answer::Text { usage, .. }
            | Answer::Embedding { usage, .. }
            | Answer::Invoke { usage, .. } => usage,
            Answer::Retrieved { .. } | Answer::Generated { .. } => &NO_USAGE,
        }
    }
}
