//! What a record becomes on its way to the service: the [`Mode`] of the run, the
//! [`Payload`] of one request (a Converse prompt with its images and documents, a text to
//! embed, a native body, or a question for a knowledge base), the [`Prepared`] record with its [`RecordMeta`], and the
//! [`Task`] of one call (one record, or a batch of texts for Cohere Embed).

use std::sync::Arc;

use aws_sdk_bedrockruntime::types::Message;
use serde_json::{Map, Value};

use super::answer::Usage;
use super::tier::ServiceTier;

/// What kind of call each record becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The Converse API: a prompt (or raw messages) in, text out.
    Converse,
    /// Embedding models (Titan Text Embeddings v1/v2, Cohere Embed v3): text in, vector out.
    Embed,
    /// InvokeModel with the record's native `body` (or `modelInput`) sent as-is.
    Invoke,
    /// Knowledge Bases Retrieve: the prompt is the query, the ranked passages come back.
    Retrieve,
    /// Knowledge Bases RetrieveAndGenerate: an answer with its citations.
    Rag,
}

/// Who a result line belongs to.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RecordMeta {
    pub number: u64,
    pub line: u64,
    /// `id` or `recordId` as given, else the record number.
    pub id: Value,
    /// `--keep-fields` copied from the record.
    pub kept: Option<Map<String, Value>>,
    /// Things corrected before sending (a mislabeled image, a renamed document).
    pub warnings: Vec<String>,
    /// With `--expected-field`: the source URIs a good answer retrieves or cites (`None`
    /// when the record has no such field, so it is left out of the retrieval scores).
    pub expected: Option<Vec<String>>,
}

/// A Converse prompt: a rendered template or the record's own messages.
#[derive(Debug, Clone)]
pub enum Prompt {
    Text(String),
    Messages(Vec<Message>),
}

#[derive(Debug, Clone)]
pub struct ConverseInput {
    pub system: Option<String>,
    pub prompt: Prompt,
    /// The record's images and documents, sent before the text.
    pub images: Vec<ImageInput>,
    pub documents: Vec<DocumentInput>,
    pub max_tokens: Option<i32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub stop: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum Payload {
    Converse(ConverseInput),
    Embed {
        text: String,
    },
    Invoke {
        body: Vec<u8>,
    },
    /// A query for Retrieve.
    Retrieve {
        query: String,
    },
    /// A question for RetrieveAndGenerate.
    Rag {
        query: String,
    },
}

/// A record ready to send.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub meta: RecordMeta,
    pub model: String,
    /// `--service-tier` or the record's `service_tier` (`None`: none sent, the default).
    pub service_tier: Option<ServiceTier>,
    pub payload: Payload,
    /// Input tokens by the four-characters rule, for estimates.
    pub estimated_input_tokens: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImageInput {
    pub format: &'static str,
    pub bytes: Arc<Vec<u8>>,
    pub width: usize,
    pub height: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DocumentInput {
    pub format: String,
    pub name: String,
    pub bytes: Arc<Vec<u8>>,
}

/// One call's worth of records: one record, or a batch of texts for Cohere Embed.
#[derive(Debug, Clone)]
pub struct Task {
    pub model: String,
    /// The service tier every record of the call asks for.
    pub service_tier: Option<ServiceTier>,
    pub records: Vec<Prepared>,
}

impl Task {
    /// The most this call can use: estimated input plus the output ceiling.
    pub fn worst_case(&self) -> Usage {
        let mut usage = Usage::default();
        for record in &self.records {
            usage.input_tokens += record.estimated_input_tokens;
            usage.output_tokens += match &record.payload {
                Payload::Converse(input) => input
                    .max_tokens
                    .map_or(DEFAULT_OUTPUT_RESERVE, |m| m.max(0) as u64),
                Payload::Embed { .. } | Payload::Retrieve { .. } => 0,
                Payload::Invoke { .. } | Payload::Rag { .. } => DEFAULT_OUTPUT_RESERVE,
            };
        }
        usage
    }
}
/// Output tokens counted for the budget when a record sets no `max_tokens`.
pub const DEFAULT_OUTPUT_RESERVE: u64 = 1024;

/// Why a shard cannot be: the words name `--shard`, where users give one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ShardError {
    #[error("the number of shards must be at least 1")]
    NoShards,
    #[error("shard index {index} is out of range for {count} shards (0 to {})", count - 1)]
    OutOfRange { index: u64, count: u64 },
    #[error("--shard takes I/N (e.g. 0/4), got {0:?}")]
    NotIOverN(String),
    #[error("--shard takes I/N with whole numbers (e.g. 0/4), got {text:?}")]
    NotANumber {
        text: String,
        #[source]
        source: std::num::ParseIntError,
    },
}

/// One of `count` parts of a job file for machines working side by side: the records whose
/// number minus one is `index` modulo `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// `index` must be below `count`.
    pub fn new(index: u64, count: u64) -> Result<Shard, ShardError> {
        if count == 0 {
            return Err(ShardError::NoShards);
        }
        if index >= count {
            return Err(ShardError::OutOfRange { index, count });
        }
        Ok(Shard { index, count })
    }

    /// `I/N`, as `--shard` takes it.
    pub fn parse(text: &str) -> Result<Shard, ShardError> {
        let (index, count) = text
            .split_once('/')
            .ok_or_else(|| ShardError::NotIOverN(text.to_string()))?;
        let number = |part: &str| {
            part.trim()
                .parse::<u64>()
                .map_err(|source| ShardError::NotANumber {
                    text: text.to_string(),
                    source,
                })
        };
        Shard::new(number(index)?, number(count)?)
    }

    /// Whether record number `number` (1-based) belongs to this shard.
    pub fn contains(&self, number: u64) -> bool {
        number >= 1 && (number - 1) % self.count == self.index
    }

    /// How many of the first `total` records belong to this shard.
    pub fn records_of(&self, total: u64) -> u64 {
        if total <= self.index {
            0
        } else {
            (total - self.index).div_ceil(self.count)
        }
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_the_records_exactly() {
        let shards: Vec<Shard> = (0..4).map(|i| Shard::new(i, 4).unwrap()).collect();
        for total in [0, 1, 3, 4, 5, 10, 11] {
            for n in 1..=total {
                assert_eq!(shards.iter().filter(|s| s.contains(n)).count(), 1);
            }
            let sum: u64 = shards.iter().map(|s| s.records_of(total)).sum();
            assert_eq!(sum, total);
            for shard in &shards {
                let counted = (1..=total).filter(|n| shard.contains(*n)).count() as u64;
                assert_eq!(shard.records_of(total), counted);
            }
        }
        assert_eq!(Shard::parse("1/4").unwrap(), Shard { index: 1, count: 4 });
        assert_eq!(Shard::parse("1/4").unwrap().to_string(), "1/4");
        assert!(
            Shard::parse("4/4")
                .unwrap_err()
                .to_string()
                .contains("out of range")
        );
        assert!(Shard::parse("x").unwrap_err().to_string().contains("I/N"));
        assert!(Shard::parse("0/0").is_err());
    }
}
