//! Every AWS SDK client of a run, and the one place its types are used: building the
//! clients from an endpoint and credentials ([`connect`]), the bedrock-runtime calls
//! ([`runtime`], with Converse in [`converse`]), the Batch Inference control plane
//! ([`jobs`]), S3 ([`s3`]) and Knowledge Bases ([`agent_runtime`]); request and response
//! bodies as JSON ([`wire`]), structured output ([`tool`]) and the classification of errors
//! ([`errors`]). SDK retries are off for bedrock-runtime: the pool owns the retry policy,
//! so every throttle is seen.

pub mod agent_runtime;
pub mod connect;
mod converse;
pub mod errors;
pub mod jobs;
mod runtime;
pub mod s3;
mod tool;
pub mod wire;

use std::sync::Arc;

use crate::vocab::DocumentInput;
use crate::vocab::schema::{OutputSchema, SchemaRoute};

pub use connect::{Connection, Endpoint, connect, shared_config};
pub use runtime::Bedrock;
use runtime::{native_usage, u64_at};

/// Options that apply to every call.
#[derive(Debug, Clone)]
pub struct CallOptions {
    pub dimensions: Option<u32>,
    pub normalize: bool,
    pub input_type: String,
    /// Documents sent ahead of every record's own.
    pub shared_documents: Vec<DocumentInput>,
    pub cache_prompt: bool,
    pub stream: bool,
    /// `--schema`: every Converse call asks for answers in this JSON schema ...
    pub schema: Option<Arc<OutputSchema>>,
    /// ... through Bedrock's structured output or a forced tool.
    pub schema_route: SchemaRoute,
}
