//! Every AWS SDK client of a run is built and called here (SDK types also appear where a
//! record's raw Converse messages are SDK messages, in `vocab` and `job::messages`, and
//! where `fetch` reads `s3://` media with the run's S3 client): building the
//! clients from an endpoint and credentials ([`connect`]), the bedrock-runtime calls
//! ([`runtime`], with Converse in [`converse_call`]), the Batch Inference control plane
//! ([`jobs`]), S3 ([`s3`]) and Knowledge Bases ([`agent_runtime`]); request and response
//! bodies as JSON ([`wire`]), structured output ([`tool`]) and the classification of errors
//! ([`errors`]). SDK retries are off for bedrock-runtime: the pool owns the retry policy,
//! so every throttle is seen.

pub mod agent_runtime;
pub mod connect;
mod converse_call;
pub mod errors;
pub mod jobs;
mod runtime;
pub mod s3;
mod service;
mod tool;
pub mod wire;

use aws_smithy_types::retry::RetryConfig;

pub use connect::{Connection, Endpoint, connect, shared_config};
pub use runtime::Bedrock;
use runtime::{native_usage, u64_at};

/// The clients a Batch Inference run uses: the control plane ([`jobs`]: create, read, stop
/// jobs) and S3 ([`s3`]: the bucket, input files, output), as methods of one value.
#[derive(Clone)]
pub struct Clients {
    pub bedrock: aws_sdk_bedrock::Client,
    pub s3: aws_sdk_s3::Client,
}

impl Clients {
    /// Clients from the run's SDK configuration. The control plane and S3 retry on their
    /// own (their calls are few, unlike bedrock-runtime's); S3 goes to `s3_endpoint` when
    /// given (path-style, as any custom S3 endpoint), else to AWS_ENDPOINT_URL_S3 or AWS.
    pub fn new(sdk: &aws_config::SdkConfig, s3_endpoint: Option<&str>) -> Clients {
        let retry = RetryConfig::standard().with_max_attempts(5);
        let bedrock = aws_sdk_bedrock::config::Builder::from(sdk)
            .retry_config(retry.clone())
            .build();
        Clients {
            bedrock: aws_sdk_bedrock::Client::from_conf(bedrock),
            s3: s3::s3_client(sdk, s3_endpoint),
        }
    }
}
