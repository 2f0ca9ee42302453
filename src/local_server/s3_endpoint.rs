//! The local server's S3 endpoint: `s3s-fs` (objects as files under one directory) behind
//! `s3s`'s S3 protocol layer, served on its own 127.0.0.1 listener with path-style
//! addressing. Batch Inference jobs read their input and write their output through it, as
//! they do through S3 on AWS.
//!
//! SigV4 needs the secret key to check a signature, so the endpoint knows one pair,
//! [`ACCESS_KEY`] / [`SECRET_KEY`] (what `run --local` signs with). A request signed with
//! any other key has its signature set aside and is served unsigned, so any static
//! credentials work too, except for uploads sent in `aws-chunked` encoding
//! (`x-amz-content-sha256: STREAMING-...`: `s3s` decodes those only while checking their
//! signature), which must use the known pair.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3Result, s3_error};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The access key whose signatures the endpoint checks.
pub const ACCESS_KEY: &str = "LOCAL";
/// Its secret key.
pub const SECRET_KEY: &str = "LOCAL";

/// Knows the one local key pair.
struct LocalKey;

#[async_trait::async_trait]
impl S3Auth for LocalKey {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if access_key == ACCESS_KEY {
            Ok(SecretKey::from(SECRET_KEY))
        } else {
            Err(s3_error!(
                InvalidAccessKeyId,
                "The local S3 endpoint checks chunk-signed uploads with access key {ACCESS_KEY} and secret key {SECRET_KEY} only"
            ))
        }
    }
}

/// Everyone may do everything: the endpoint is on loopback, for tests and local runs.
struct Open;

#[async_trait::async_trait]
impl S3Access for Open {
    async fn check(&self, _cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        Ok(())
    }
}

/// The access key of a SigV4 `Authorization` header.
fn access_key(authorization: &str) -> Option<&str> {
    let credential = authorization.split("Credential=").nth(1)?;
    credential.split('/').next()
}

/// Sets aside the signature of a request signed with a key the endpoint does not know,
/// unless its body is `aws-chunked` (then it cannot be read without checking the key).
fn unsign<B>(request: &mut http::Request<B>) {
    let headers = request.headers();
    let unknown = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| access_key(v) != Some(ACCESS_KEY));
    let chunk_signed = headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("STREAMING-"));
    if unknown && !chunk_signed {
        request.headers_mut().remove(http::header::AUTHORIZATION);
    }
}

/// A running S3 endpoint.
pub struct S3Endpoint {
    pub addr: SocketAddr,
    /// The temporary directory holding the objects when none was given: removed on drop.
    _temp: Option<tempfile::TempDir>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl S3Endpoint {
    /// Binds 127.0.0.1:`port`, serving the objects under `dir` (a temporary directory when
    /// `None`), with `buckets` created.
    pub async fn start(
        port: u16,
        dir: Option<&Path>,
        buckets: &[String],
    ) -> std::io::Result<S3Endpoint> {
        let invalid = |err: Box<dyn std::error::Error + Send + Sync>| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, err)
        };
        let (temp, root): (Option<tempfile::TempDir>, PathBuf) = match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                (None, dir.to_path_buf())
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("bedrock-batch-s3-")
                    .tempdir()?;
                let root = temp.path().to_path_buf();
                (Some(temp), root)
            }
        };
        for bucket in buckets {
            check_bucket_name(bucket).map_err(|err| invalid(Box::new(err)))?;
            std::fs::create_dir_all(root.join(bucket))?;
        }
        let fs = s3s_fs::FileSystem::new(&root)
            // s3s-fs's error is no `std::error::Error`: only its description can travel.
            .map_err(|err| {
                invalid(format!("cannot serve S3 from {}: {err:?}", root.display()).into())
            })?;
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(LocalKey);
        builder.set_access(Open);
        let service = builder.build();
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(serve(listener, service, stopped));
        Ok(S3Endpoint {
            addr,
            _temp: temp,
            stop,
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting and waits for the accept loop to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// A `--s3-bucket` name S3 would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--s3-bucket {name:?}: a bucket name is 3 to 63 lowercase letters, digits, '-' or '.', starting with a letter or digit"
)]
pub struct BucketNameError {
    pub name: String,
}

/// S3's bucket naming rules, the part that matters for a directory name.
fn check_bucket_name(name: &str) -> Result<(), BucketNameError> {
    let ok = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(BucketNameError {
            name: name.to_string(),
        })
    }
}

async fn serve(listener: TcpListener, service: S3Service, stop: watch::Receiver<bool>) {
    super::accept::accept_loop(listener, stop, "local S3", move |stream, mut stop| {
        let service = service.clone();
        async move {
            let handler =
                hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
                    unsign(&mut request);
                    hyper::service::Service::call(&service, request)
                });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), handler);
            tokio::select! {
                _ = connection => {}
                _ = stop.changed() => {}
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_key_comes_from_the_credential() {
        let header = "AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=abc";
        assert_eq!(access_key(header), Some("AKIDTEST"));
        assert_eq!(access_key("Bearer x"), None);
    }

    #[test]
    fn unknown_keys_are_unsigned_unless_the_body_is_chunk_signed() {
        let signed = |key: &str, sha: &str| {
            let mut request = http::Request::builder()
                .header(
                    "authorization",
                    format!("AWS4-HMAC-SHA256 Credential={key}/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=abc"),
                )
                .header("x-amz-content-sha256", sha)
                .body(())
                .unwrap();
            unsign(&mut request);
            request.headers().contains_key("authorization")
        };
        assert!(signed(ACCESS_KEY, "UNSIGNED-PAYLOAD"));
        assert!(!signed("AKIDOTHER", "UNSIGNED-PAYLOAD"));
        assert!(signed("AKIDOTHER", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"));
    }

    #[test]
    fn bucket_names() {
        assert!(check_bucket_name("my-bucket.1").is_ok());
        assert!(check_bucket_name("ab").is_err());
        assert!(check_bucket_name("Upper").is_err());
        assert!(check_bucket_name("-lead").is_err());
    }
}
