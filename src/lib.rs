//! bedrock-batch: a batch runner for Amazon Bedrock. A JSONL or CSV job file drives a
//! bounded pool of workers calling the Converse API or the embedding models; results,
//! usage and totals land in a run directory.
//!
//! Data flows one way: job file -> records ([`job`]) -> pool ([`pool`]) -> Bedrock client
//! ([`bedrock`], or [`knowledge_base`] for Knowledge Bases) -> outcomes -> results and summary ([`store`], [`report`]). The
//! Bedrock-compatible [`local_server`] stands in for AWS in tests, benchmarks and `--local`.

pub mod batch;
pub mod bedrock;
pub mod cli;
pub mod commands;
pub mod config;
pub mod engine;
pub mod exit;
pub mod export;
pub mod fetch;
pub mod job;
pub mod local_server;
pub mod pool;
pub mod prices;
pub mod report;
pub mod rules;
pub mod run;
pub mod signals;
pub mod store;
pub mod summary;
pub mod vocab;
