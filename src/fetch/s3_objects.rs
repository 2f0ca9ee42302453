//! `s3://BUCKET/KEY` media: a GetObject with the run's S3 client (its credentials, region
//! and S3 endpoint, the same client Batch Inference uploads with), the object's size
//! checked before its body and the body read only up to the cap. A missing object, a
//! denied one or a bucket in another region is a failure that names the cause.

use futures::future::BoxFuture;
use url::Url;

use super::{Body, FetchFailure, Fetched, Fetcher};

/// Fetches s3 URLs.
pub struct S3Fetcher {
    client: aws_sdk_s3::Client,
}

impl S3Fetcher {
    pub fn new(client: aws_sdk_s3::Client) -> S3Fetcher {
        S3Fetcher { client }
    }

    async fn get(&self, url: &Url, max_bytes: usize) -> Fetched {
        let bucket = url.host_str().unwrap_or_default();
        let key = url.path().trim_start_matches('/');
        let key = percent_decode(key);
        if bucket.is_empty() || key.is_empty() {
            return Err(FetchFailure::Failed(
                "an s3 URL names a bucket and a key: s3://BUCKET/KEY".into(),
            ));
        }
        let object =
            self.client
                .get_object()
                .bucket(bucket)
                .key(&key)
                .send()
                .await
                .map_err(|err| {
                    let status = err.raw_response().map(|r| r.status().as_u16());
                    FetchFailure::Failed(match status {
                        Some(404) => "no such object (or bucket)".to_string(),
                        Some(403) => "access denied: the run's credentials need s3:GetObject on it"
                            .to_string(),
                        Some(301) => "the bucket is in another region".to_string(),
                        _ => format!("S3 said: {}", aws_sdk_s3::error::DisplayErrorContext(&err)),
                    })
                })?;
        let declared = object.content_length().map(|n| n.max(0) as u64);
        if declared.is_some_and(|n| n > max_bytes as u64) {
            return Err(FetchFailure::TooLarge {
                limit: max_bytes,
                declared,
            });
        }
        let content_type = object.content_type().map(str::to_string);
        let mut body = object.body;
        let mut bytes = Vec::new();
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|err| FetchFailure::Failed(format!("reading the object: {err}")))?
        {
            if bytes.len() + chunk.len() > max_bytes {
                return Err(FetchFailure::TooLarge {
                    limit: max_bytes,
                    declared: None,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Body {
            bytes: std::sync::Arc::new(bytes),
            content_type,
        })
    }
}

/// `%XX` escapes in a key decoded (keys with spaces arrive as `%20`).
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

impl Fetcher for S3Fetcher {
    fn fetch<'a>(&'a self, url: &'a Url, max_bytes: usize) -> BoxFuture<'a, Fetched> {
        Box::pin(self.get(url, max_bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_percent_decoded() {
        assert_eq!(percent_decode("a%20b/c.png"), "a b/c.png");
        assert_eq!(percent_decode("plain/key.jpg"), "plain/key.jpg");
        assert_eq!(percent_decode("bad%2"), "bad%2");
        assert_eq!(percent_decode("%E2%82%AC"), "€");
    }
}
