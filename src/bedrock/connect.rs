//! Building the SDK configuration a run's clients share: the endpoint (the built-in local
//! server, a URL, or AWS), credentials, region and timeouts, with SDK retries off.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::timeout::TimeoutConfig;
use aws_sdk_bedrockruntime::config::{Credentials, Region};

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Connection<'a> {
    pub endpoint: &'a Endpoint,
    /// The local server's URL when `endpoint` is `Endpoint::Local`.
    pub local_url: Option<&'a str>,
    pub region: Option<&'a str>,
    pub profile: Option<&'a str>,
    pub connect_timeout: Duration,
}

/// Builds the SDK client; returns it with the region it resolved.
pub async fn connect(connection: Connection<'_>) -> Result<(Client, String), String> {
    let (sdk_config, region) = shared_config(connection).await?;
    Ok((Client::new(&sdk_config), region))
}

/// The configuration every SDK client of a run is built from (bedrock-runtime here, the
/// knowledge-base client in `knowledge_base`): the endpoint, credentials, region and
/// timeouts, with SDK retries off so the pool sees every throttle. Returns it with the
/// region it resolved; the configuration always carries that region.
pub async fn shared_config(
    connection: Connection<'_>,
) -> Result<(aws_config::SdkConfig, String), String> {
    let Connection {
        endpoint,
        local_url,
        region,
        profile,
        connect_timeout,
    } = connection;
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(connect_timeout)
                .build(),
        );
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_string()));
    }
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    match endpoint {
        Endpoint::Local => {
            let url = local_url.ok_or("the local server is not running")?;
            loader = loader
                .endpoint_url(url)
                .credentials_provider(Credentials::new(
                    "LOCAL",
                    "LOCAL",
                    None,
                    None,
                    "bedrock-batch-local",
                ));
            if region.is_none() {
                loader = loader.region(Region::new("us-east-1"));
            }
        }
        Endpoint::Url(url) => loader = loader.endpoint_url(url),
        Endpoint::Aws => {}
    }
    let sdk_config = loader.load().await;
    match sdk_config.region() {
        Some(region) => {
            let region = region.to_string();
            Ok((sdk_config, region))
        }
        // Any endpoint other than AWS still signs with a region: any will do.
        None if matches!(endpoint, Endpoint::Url(_)) => Ok((
            sdk_config
                .into_builder()
                .region(Region::new("us-east-1"))
                .build(),
            "us-east-1".to_string(),
        )),
        None => Err(
            "no AWS region is configured: pass --region (e.g. --region us-east-1), set AWS_REGION, or set region in your AWS profile".into(),
        ),
    }
}

/// Where the Bedrock client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The built-in local server, started in-process.
    Local,
    /// Any Bedrock-compatible endpoint.
    Url(String),
    /// AWS, through the standard credential and endpoint chain.
    Aws,
}
