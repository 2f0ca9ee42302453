//! The command line, as clap derive structs: raw flags only. Nothing here opens a file or
//! a socket; turning flags into working configuration happens where they are used.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::local_server::{FaultRates, ServerConfig};

/// Batch runner for Amazon Bedrock: job files in, results and usage totals out.
#[derive(Debug, Parser)]
#[command(name = "bedrock-batch", version, about, long_about = None)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a Bedrock Runtime-compatible endpoint on 127.0.0.1 for trying bedrock-batch
    /// without an AWS account, for tests and for benchmarks.
    ///
    /// It answers Converse, ConverseStream, InvokeModel and InvokeModelWithResponseStream
    /// with a deterministic fake model (extractive summaries, hashed embeddings), meters
    /// per-model quotas the way Bedrock does and injects seeded faults. Point any AWS SDK at
    /// it with an endpoint URL and any credentials. `GET /_local/stats` shows what it saw;
    /// `POST /_local/reset` clears it.
    ///
    /// Example: bedrock-batch local-server --port 8787 --tpm 60000 --latency-ms 300 --tokens-per-sec 80
    LocalServer(LocalServerArgs),
}

#[derive(Debug, Args)]
pub struct LocalServerArgs {
    /// Port on 127.0.0.1 (0 picks a free one; the URL is printed).
    #[arg(long, default_value_t = 8787)]
    pub port: u16,
    /// Tokens per minute per model: input tokens + maxTokens x burndown are reserved when a
    /// call starts, the unused part refunded when it ends (no limit when omitted).
    #[arg(long, value_name = "N")]
    pub tpm: Option<u64>,
    /// Requests per minute per model (no limit when omitted).
    #[arg(long, value_name = "N")]
    pub rpm: Option<u64>,
    /// Quota tokens burned per output token (some models burn 5).
    #[arg(long, default_value_t = 1.0, value_name = "X")]
    pub burndown: f64,
    /// Time to first token, in milliseconds.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub latency_ms: u64,
    /// Generation speed in output tokens per second (0: instant).
    #[arg(long, default_value_t = 0.0, value_name = "N")]
    pub tokens_per_sec: f64,
    /// Share of calls answered 500 InternalServerException or 503 ServiceUnavailableException.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub fail_rate: f64,
    /// Share of calls answered 408 ModelTimeoutException after --timeout-delay-ms.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub timeout_rate: f64,
    /// How long a ModelTimeoutException takes to arrive.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub timeout_delay_ms: u64,
    /// Share of calls whose connection is closed without a response.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub reset_rate: f64,
    /// Share of calls answered 200 with a body that is not valid JSON.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub garbage_rate: f64,
    /// Share of streams cut halfway by a throttlingException frame.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub stream_throttle_rate: f64,
    /// Answer AccessDeniedException for model ids matching PATTERN (`*` wildcards; matched
    /// against the id as sent and its base model). Repeatable.
    #[arg(long, value_name = "PATTERN")]
    pub deny_model: Vec<String>,
    /// Seed of the fault draws: the same seed gives the same faults to the same requests.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl LocalServerArgs {
    /// The server configuration these flags describe (validated by the server on start).
    pub fn to_config(&self) -> ServerConfig {
        ServerConfig {
            port: self.port,
            tpm: self.tpm,
            rpm: self.rpm,
            burndown: self.burndown,
            latency: Duration::from_millis(self.latency_ms),
            tokens_per_sec: self.tokens_per_sec,
            timeout_delay: Duration::from_millis(self.timeout_delay_ms),
            faults: FaultRates {
                fail: self.fail_rate,
                timeout: self.timeout_rate,
                reset: self.reset_rate,
                garbage: self.garbage_rate,
                stream_throttle: self.stream_throttle_rate,
            },
            deny_models: self.deny_model.clone(),
            seed: self.seed,
        }
    }
}
