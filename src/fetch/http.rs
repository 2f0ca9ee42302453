//! `http://` and `https://` media: a GET with hyper-util's pooled client (TLS by rustls with
//! the machine's root certificates), redirects followed up to a bound, the Content-Length
//! checked before the body and the body read only up to the cap. The clients are built on
//! first use, so a run without URL media never loads certificates.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Empty};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use url::Url;

use super::{Body, FetchFailure, FetchSettings, Fetched, Fetcher};

type PlainClient = Client<HttpConnector, Empty<Bytes>>;
type TlsClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Why https URLs cannot be fetched on this machine: its trusted roots could not be read.
#[derive(Debug, thiserror::Error)]
#[error("no trusted root certificates on this machine: {source}")]
struct NoRootCertificates {
    #[source]
    source: std::io::Error,
}

/// Fetches http and https URLs.
pub struct HttpFetcher {
    connect_timeout: Duration,
    max_redirects: usize,
    plain: OnceLock<PlainClient>,
    tls: OnceLock<Result<TlsClient, NoRootCertificates>>,
}

impl HttpFetcher {
    pub fn new(settings: &FetchSettings) -> HttpFetcher {
        HttpFetcher {
            connect_timeout: settings.connect_timeout,
            max_redirects: settings.max_redirects,
            plain: OnceLock::new(),
            tls: OnceLock::new(),
        }
    }

    fn connector(&self) -> HttpConnector {
        let mut connector = HttpConnector::new();
        connector.enforce_http(false);
        connector.set_connect_timeout(Some(self.connect_timeout));
        connector
    }

    /// Sends a GET for `url` with the client of its scheme.
    async fn get(&self, url: &Url) -> Result<http::Response<hyper::body::Incoming>, FetchFailure> {
        let request = http::Request::get(url.as_str())
            .header(http::header::USER_AGENT, "bedrock-batch")
            .body(Empty::<Bytes>::new())
            .map_err(|err| FetchFailure::Failed(format!("not a valid HTTP URL: {err}")))?;
        let sent = match url.scheme() {
            "http" => {
                let client = self
                    .plain
                    .get_or_init(|| Client::builder(TokioExecutor::new()).build(self.connector()));
                client.request(request).await
            }
            "https" => {
                let client = self
                    .tls
                    .get_or_init(|| {
                        let provider = rustls::crypto::aws_lc_rs::default_provider();
                        let tls = hyper_rustls::HttpsConnectorBuilder::new()
                            .with_provider_and_native_roots(provider)
                            .map_err(|source| NoRootCertificates { source })?
                            .https_only()
                            .enable_http1()
                            .wrap_connector(self.connector());
                        Ok(Client::builder(TokioExecutor::new()).build(tls))
                    })
                    .as_ref()
                    .map_err(|err| FetchFailure::Failed(chain(err)))?;
                client.request(request).await
            }
            other => {
                return Err(FetchFailure::Failed(format!(
                    "{other}:// is not fetched over HTTP"
                )));
            }
        };
        sent.map_err(|err| FetchFailure::Failed(format!("the request failed: {}", chain(&err))))
    }

    async fn fetch_url(&self, url: &Url, max_bytes: usize) -> Fetched {
        let mut url = url.clone();
        for _ in 0..=self.max_redirects {
            let response = self.get(&url).await?;
            let status = response.status();
            if status.is_redirection()
                && let Some(location) = response.headers().get(http::header::LOCATION)
            {
                let next = location
                    .to_str()
                    .ok()
                    .and_then(|location| url.join(location).ok())
                    .filter(|next| matches!(next.scheme(), "http" | "https"))
                    .ok_or_else(|| {
                        FetchFailure::Failed(format!(
                            "HTTP {status} to an unusable location {location:?}"
                        ))
                    })?;
                url = next;
                continue;
            }
            if !status.is_success() {
                return Err(FetchFailure::Failed(format!("HTTP {status}")));
            }
            let content_type = response
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let declared = response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > max_bytes as u64) {
                return Err(FetchFailure::TooLarge {
                    limit: max_bytes,
                    declared,
                });
            }
            let mut body = response.into_body();
            let mut bytes = Vec::with_capacity(declared.map_or(0, |n| n as usize));
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|err| {
                    FetchFailure::Failed(format!("the body broke off: {}", chain(&err)))
                })?;
                if let Some(data) = frame.data_ref() {
                    if bytes.len() + data.len() > max_bytes {
                        return Err(FetchFailure::TooLarge {
                            limit: max_bytes,
                            declared: None,
                        });
                    }
                    bytes.extend_from_slice(data);
                }
            }
            return Ok(Body {
                bytes: bytes.into(),
                content_type,
            });
        }
        Err(FetchFailure::Failed(format!(
            "more than {} redirects",
            self.max_redirects
        )))
    }
}

impl Fetcher for HttpFetcher {
    fn fetch<'a>(&'a self, url: &'a Url, max_bytes: usize) -> BoxFuture<'a, Fetched> {
        Box::pin(self.fetch_url(url, max_bytes))
    }
}

/// An error and its causes on one line ("client error (Connect): tcp connect error: ...").
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}
