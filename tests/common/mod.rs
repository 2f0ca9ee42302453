//! Shared test plumbing: a real `aws-sdk-bedrockruntime` client pointed at a local server
//! (test credentials, SDK retries disabled), raw HTTP for the `/_local` routes, and tiny
//! image headers for vision requests.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::interceptors::BeforeDeserializationInterceptorContextRef;
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::{
    BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RuntimeComponents,
};
use bedrock_batch::local_server::{LocalServer, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const CLAUDE: &str = "anthropic.claude-3-haiku-20240307-v1:0";
pub const LLAMA: &str = "meta.llama3-1-8b-instruct-v1:0";
pub const TITAN_V2: &str = "amazon.titan-embed-text-v2:0";
pub const TITAN_V1: &str = "amazon.titan-embed-text-v1";
pub const COHERE: &str = "cohere.embed-english-v3";

pub async fn server(config: ServerConfig) -> LocalServer {
    LocalServer::start(config)
        .await
        .expect("local server starts")
}

pub fn client(url: &str) -> Client {
    client_with(url, None)
}

/// A client that also records the response headers of every call in `headers`.
pub fn client_with(url: &str, headers: Option<SeenHeaders>) -> Client {
    let mut config = aws_sdk_bedrockruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(Credentials::new(
            "AKIDLOCALTEST",
            "local-test-secret",
            None,
            None,
            "tests",
        ))
        .retry_config(RetryConfig::disabled());
    if let Some(headers) = headers {
        config = config.interceptor(headers);
    }
    Client::from_conf(config.build())
}

/// Records response headers, in call order.
#[derive(Debug, Clone, Default)]
pub struct SeenHeaders(pub Arc<Mutex<Vec<http::HeaderMap>>>);

impl SeenHeaders {
    pub fn last(&self, name: &str) -> Option<String> {
        let seen = self.0.lock().unwrap();
        seen.last()?
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
}

impl Intercept for SeenHeaders {
    fn name(&self) -> &'static str {
        "SeenHeaders"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let mut map = http::HeaderMap::new();
        for (name, value) in context.response().headers() {
            map.insert(
                http::HeaderName::from_bytes(name.as_bytes())?,
                http::HeaderValue::from_str(value)?,
            );
        }
        self.0.lock().unwrap().push(map);
        Ok(())
    }
}

/// A raw HTTP/1.1 request; returns (status, body).
pub async fn raw_http(url: &str, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, response[split + 4..].to_vec())
}

/// A PNG signature and IHDR chunk: enough for the server to read format and size.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    bytes.extend_from_slice(&13u32.to_be_bytes());
    bytes.extend_from_slice(b"IHDR");
    bytes.extend_from_slice(&width.to_be_bytes());
    bytes.extend_from_slice(&height.to_be_bytes());
    bytes.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    bytes
}

/// A GIF89a header with the given logical screen size.
pub fn gif(width: u16, height: u16) -> Vec<u8> {
    let mut bytes = b"GIF89a".to_vec();
    bytes.extend_from_slice(&width.to_le_bytes());
    bytes.extend_from_slice(&height.to_le_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 0x3B]);
    bytes
}
