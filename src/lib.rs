//! bedrock-batch: a batch runner for Amazon Bedrock. A JSONL or CSV job file drives a
//! bounded pool of workers calling the Converse API or the embedding models; results,
//! usage and totals land in a run directory.
//!
//! Data flows one way: flags ([`cli`]) -> a checked run configuration ([`config`]) -> the
//! run ([`run`]): job file -> records ([`job`]) -> an engine ([`pool`] on demand, [`batch`]
//! for Batch Inference, behind the seam in [`engine`]) -> the SDK clients ([`bedrock`]) ->
//! outcomes -> results and state ([`store`]) and the summary ([`summary`], priced by
//! [`prices`], shown by [`report`]); [`watch`] tells the world outside as the run goes. What Bedrock accepts is in [`rules`], the words every
//! stage shares in [`vocab`]; the other subcommands are in [`commands`]. The
//! Bedrock-compatible [`local_server`] stands in for AWS in tests, benchmarks and `--local`.
//! `tests/architecture.rs` holds the modules to this flow.

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
pub mod watch;
