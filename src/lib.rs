//! bedrock-batch: a batch runner for Amazon Bedrock. A JSONL or CSV job file drives a
//! bounded, self-tuning pool of workers calling the Converse API or the embedding models;
//! results, usage and cost land in a run directory that survives crashes.
//!
//! The library exposes the pieces the binary is made of, chiefly the Bedrock-compatible
//! [`local_server`] that tests, benchmarks and `run --local` use instead of AWS.

pub mod cli;
pub mod local_server;
pub mod model_id;
