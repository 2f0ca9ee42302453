//! A batch job's S3 I/O, through the S3 API of the local endpoint (never its files): the
//! input objects under an `s3://` URI, read line by line as they stream in, and output
//! objects written in parts of a few MiB (a multipart upload once there is more than one),
//! each part's lines shuffled, so memory stays bounded however many records a job has.

use std::pin::Pin;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, Lines};

/// Output is uploaded in parts of at least this many bytes (S3's minimum is 5 MiB).
const PART_BYTES: usize = 8 * 1024 * 1024;
/// At most this many listing pages are read for one input prefix.
const MAX_LIST_PAGES: usize = 10_000;

/// A client of the local S3 endpoint at `url`, signing with the endpoint's own key.
pub fn client(url: &str) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .force_path_style(true)
        .credentials_provider(Credentials::new(
            super::super::s3_endpoint::ACCESS_KEY,
            super::super::s3_endpoint::SECRET_KEY,
            None,
            None,
            "bedrock-batch-local",
        ))
        .build();
    Client::from_conf(config)
}

/// `s3://bucket/key`, the key possibly empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Uri {
    pub bucket: String,
    pub key: String,
}

impl S3Uri {
    /// Parses an S3 URI as Bedrock accepts it: `s3://` then a bucket name, then an optional
    /// `/key`.
    pub fn parse(uri: &str) -> Option<S3Uri> {
        let rest = uri.strip_prefix("s3://")?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        let bytes = bucket.as_bytes();
        let valid = (3..=63).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric();
        valid.then(|| S3Uri {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    /// `key` under this URI taken as a folder.
    pub fn join(&self, key: &str) -> String {
        let base = self.key.trim_end_matches('/');
        if base.is_empty() {
            key.to_string()
        } else {
            format!("{base}/{key}")
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An S3 call of a job that failed. The message quotes the whole chain of causes, as a
/// job's failure message shows it; the cause is kept as the source too.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("cannot list s3://{bucket}/{prefix}: {}", chain(.source.as_ref()))]
    List {
        bucket: String,
        prefix: String,
        #[source]
        source: BoxError,
    },
    #[error("cannot read s3://{bucket}/{key}: {}", chain(.source.as_ref()))]
    Read {
        bucket: String,
        key: String,
        #[source]
        source: BoxError,
    },
    #[error("cannot write s3://{bucket}/{key}: {}", chain(.source.as_ref()))]
    Write {
        bucket: String,
        key: String,
        #[source]
        source: BoxError,
    },
    #[error("cannot write s3://{bucket}/{key}: no upload id")]
    NoUploadId { bucket: String, key: String },
}

/// `err` and each of its causes, joined by `: `.
fn chain(err: &(dyn std::error::Error + Send + Sync)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

/// The `.jsonl` objects of an input URI: the object itself when it is one, otherwise every
/// `.jsonl` object under it as a prefix, sorted by key.
pub async fn input_keys(client: &Client, uri: &S3Uri) -> Result<Vec<String>, ObjectError> {
    if uri.key.ends_with(".jsonl")
        && client
            .head_object()
            .bucket(&uri.bucket)
            .key(&uri.key)
            .send()
            .await
            .is_ok()
    {
        return Ok(vec![uri.key.clone()]);
    }
    let mut keys = Vec::new();
    let mut token = None;
    for _ in 0..MAX_LIST_PAGES {
        let page = client
            .list_objects_v2()
            .bucket(&uri.bucket)
            .prefix(&uri.key)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|err| ObjectError::List {
                bucket: uri.bucket.clone(),
                prefix: uri.key.clone(),
                source: err.into(),
            })?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|object| object.key())
                .filter(|key| key.ends_with(".jsonl"))
                .map(str::to_string),
        );
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    keys.sort();
    Ok(keys)
}

pub type ObjectLines = Lines<Pin<Box<dyn AsyncBufRead + Send>>>;

/// The lines of an object, read as they stream in.
pub async fn lines(client: &Client, bucket: &str, key: &str) -> Result<ObjectLines, ObjectError> {
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|err| ObjectError::Read {
            bucket: bucket.to_string(),
            key: key.to_string(),
            source: err.into(),
        })?;
    let reader: Pin<Box<dyn AsyncBufRead + Send>> = Box::pin(object.body.into_async_read());
    Ok(reader.lines())
}

/// Writes one object from lines, a part at a time.
pub struct ObjectWriter {
    client: Client,
    bucket: String,
    key: String,
    shuffle: fastrand::Rng,
    lines: Vec<String>,
    bytes: usize,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
}

impl ObjectWriter {
    /// A writer of `s3://bucket/key` whose lines are shuffled with `seed`.
    pub fn new(client: &Client, bucket: &str, key: &str, seed: u64) -> ObjectWriter {
        ObjectWriter {
            client: client.clone(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            shuffle: fastrand::Rng::with_seed(seed),
            lines: Vec::new(),
            bytes: 0,
            upload_id: None,
            parts: Vec::new(),
        }
    }

    pub async fn push(&mut self, line: String) -> Result<(), ObjectError> {
        self.bytes += line.len() + 1;
        self.lines.push(line);
        if self.bytes >= PART_BYTES {
            self.upload_part().await?;
        }
        Ok(())
    }

    fn write_error(&self, err: impl std::error::Error + Send + Sync + 'static) -> ObjectError {
        ObjectError::Write {
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            source: err.into(),
        }
    }

    /// The buffered lines, shuffled, as one body; the buffer emptied.
    fn take_body(&mut self) -> Vec<u8> {
        self.shuffle.shuffle(&mut self.lines);
        let mut body = Vec::with_capacity(self.bytes);
        for line in self.lines.drain(..) {
            body.extend_from_slice(line.as_bytes());
            body.push(b'\n');
        }
        self.bytes = 0;
        body
    }

    async fn upload_part(&mut self) -> Result<(), ObjectError> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let created = self
                    .client
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .content_type("application/jsonl")
                    .send()
                    .await
                    .map_err(|err| self.write_error(err))?;
                let id = created
                    .upload_id()
                    .ok_or_else(|| ObjectError::NoUploadId {
                        bucket: self.bucket.clone(),
                        key: self.key.clone(),
                    })?
                    .to_string();
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = self.parts.len() as i32 + 1;
        let body = self.take_body();
        let uploaded = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|err| self.write_error(err))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(uploaded.e_tag().map(str::to_string))
                .build(),
        );
        Ok(())
    }

    /// Writes what is left and completes the object.
    pub async fn finish(mut self) -> Result<(), ObjectError> {
        if self.upload_id.is_none() {
            let body = self.take_body();
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .content_type("application/jsonl")
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|err| self.write_error(err))?;
            return Ok(());
        }
        if !self.lines.is_empty() {
            self.upload_part().await?;
        }
        let parts = std::mem::take(&mut self.parts);
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .set_upload_id(self.upload_id.clone())
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|err| self.write_error(err))?;
        Ok(())
    }
}

/// Writes a small object at once.
pub async fn put(
    client: &Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<(), ObjectError> {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|err| ObjectError::Write {
            bucket: bucket.to_string(),
            key: key.to_string(),
            source: err.into(),
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_uris() {
        let uri = S3Uri::parse("s3://my-bucket/runs/1/input/").unwrap();
        assert_eq!(uri.bucket, "my-bucket");
        assert_eq!(uri.key, "runs/1/input/");
        assert_eq!(uri.join("x.out"), "runs/1/input/x.out");
        let bare = S3Uri::parse("s3://my-bucket").unwrap();
        assert_eq!(bare.key, "");
        assert_eq!(bare.join("job/x.out"), "job/x.out");
        assert!(S3Uri::parse("https://my-bucket/x").is_none());
        assert!(S3Uri::parse("s3://My_Bucket/x").is_none());
        assert!(S3Uri::parse("s3://ab/x").is_none());
    }
}
