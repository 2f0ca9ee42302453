//! What a record becomes on its way to the service: the [`Mode`] of the run, the
//! [`Payload`] of one request (a Converse prompt with its images and documents, a text to
//! embed, a native body, or a question for a knowledge base), the [`Prepared`] record with its [`RecordMeta`], and the
//! [`Task`] of one call (one record, or a batch of texts for Cohere Embed).

use std::sync::Arc;

use aws_sdk_bedrockruntime::types::Message;
use serde_json::{Map, Value};

use super::answer::Usage;

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
#[derive(Debug, Clone, PartialEq)]
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
