//! S3 for Batch Inference, through the real SDK client: the `--s3` location (its URI
//! checked against AWS's pattern), checking the bucket, uploading input files (multipart
//! when large), listing and streaming job output. Errors say what failed, where, and the
//! service's own words.

use std::path::Path;

use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_smithy_types::retry::RetryConfig;
use tokio::io::AsyncBufRead;

use super::Clients;

/// `s3://BUCKET/PREFIX`, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Without leading or trailing `/`; may be empty.
    pub prefix: String,
}

impl S3Location {
    pub fn parse(uri: &str) -> Result<S3Location, String> {
        let rest = uri.strip_prefix("s3://").ok_or_else(|| {
            format!(
                "--s3 takes s3://BUCKET/PREFIX (e.g. s3://my-bucket/bedrock-batch), got {uri:?}"
            )
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !valid_bucket {
            return Err(format!(
                "--s3 {uri:?}: {bucket:?} is not an S3 bucket name (3 to 63 lowercase letters, digits, dots and hyphens)"
            ));
        }
        let prefix = prefix.trim_matches('/');
        // AWS's S3Uri for model invocation jobs, from the bedrock service model:
        // s3://[a-z0-9][-.a-z0-9]{1,61}[a-z0-9](/[-!_*'().a-zA-Z0-9]+)*/? , at most 1,024
        // characters. The run adds RUN_ID/input/part-NNNNN.jsonl (and output/): all in the
        // allowed set, so the prefix decides.
        if let Some((at, bad)) = prefix.char_indices().find(|(_, c)| !s3_uri_char(*c)) {
            return Err(format!(
                "--s3 {uri:?}: Bedrock Batch Inference takes S3 prefixes of letters, digits and - ! _ * ' ( ) . / only, and {bad:?} (at character {}) would make every create call fail: choose a prefix without it, like s3://{bucket}/{}",
                "s3://".len() + bucket.len() + 1 + at + 1,
                prefix.replace(|c: char| !s3_uri_char(c), "-")
            ));
        }
        if prefix.contains("//") {
            return Err(format!(
                "--s3 {uri:?}: an empty path segment (//) is not a valid S3Uri for Bedrock Batch Inference"
            ));
        }
        // The longest URI a job gets: the prefix, the run id and the output folder's job id.
        const RUN_PART: usize = "/0123456789/output/".len() + 64;
        if uri.len() + RUN_PART > 1024 {
            return Err(format!(
                "--s3 {uri:?}: the URIs of its jobs would pass Bedrock's 1,024 characters: choose a shorter prefix"
            ));
        }
        Ok(S3Location {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The key `rest` under the prefix.
    pub fn key(&self, rest: &str) -> String {
        if self.prefix.is_empty() {
            rest.to_string()
        } else {
            format!("{}/{rest}", self.prefix)
        }
    }

    pub fn uri(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
}

/// A character AWS's S3Uri pattern takes in a key: `[-!_*'().a-zA-Z0-9]` and `/`.
fn s3_uri_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-!_*'()./".contains(c)
}

/// Input files above this size go up in parts.
const MULTIPART_FROM: u64 = 64 * 1024 * 1024;
const PART_BYTES: u64 = 16 * 1024 * 1024;

/// An S3 client from the run's SDK configuration, retrying on its own, at `endpoint` when
/// given (path-style, as any custom S3 endpoint), else AWS_ENDPOINT_URL_S3, else AWS.
pub fn s3_client(sdk: &aws_config::SdkConfig, endpoint: Option<&str>) -> aws_sdk_s3::Client {
    let mut s3 = aws_sdk_s3::config::Builder::from(sdk)
        .retry_config(RetryConfig::standard().with_max_attempts(5));
    let env_endpoint = std::env::var("AWS_ENDPOINT_URL_S3").ok();
    match endpoint.map(str::to_string).or(env_endpoint) {
        Some(url) => s3 = s3.endpoint_url(url).force_path_style(true),
        // A custom bedrock endpoint is no S3 endpoint.
        None => {
            s3.set_endpoint_url(None);
        }
    }
    aws_sdk_s3::Client::from_conf(s3.build())
}

impl Clients {
    /// Checks the bucket exists and is ours to use.
    pub async fn check_bucket(&self, location: &S3Location) -> Result<(), String> {
        let bucket = &location.bucket;
        match self.s3.head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(()),
            Err(err) => {
                let status = err.raw_response().map(|r| r.status().as_u16());
                Err(match status {
                    Some(403) => format!(
                        "access denied on s3://{bucket}: your credentials need s3:ListBucket, s3:PutObject and s3:GetObject on it (and the --role-arn role needs s3:GetObject, s3:ListBucket and s3:PutObject too)"
                    ),
                    Some(404) => format!(
                        "the bucket s3://{bucket} does not exist (or is in another account): create it in the region of the run, or pass another --s3"
                    ),
                    _ => format!(
                        "cannot reach s3://{bucket}: {}",
                        aws_sdk_s3::error::DisplayErrorContext(&err)
                    ),
                })
            }
        }
    }

    /// Uploads `path` to `key`: one PUT, or a multipart upload for large files.
    pub async fn upload(&self, bucket: &str, key: &str, path: &Path) -> Result<(), String> {
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|err| format!("{}: {err}", path.display()))?
            .len();
        let failed =
            |err: String| format!("uploading {} to s3://{bucket}/{key}: {err}", path.display());
        if size < MULTIPART_FROM {
            let body = ByteStream::from_path(path)
                .await
                .map_err(|err| failed(err.to_string()))?;
            self.s3
                .put_object()
                .bucket(bucket)
                .key(key)
                .content_type("application/jsonl")
                .body(body)
                .send()
                .await
                .map_err(|err| failed(aws_sdk_s3::error::DisplayErrorContext(&err).to_string()))?;
            return Ok(());
        }
        let upload = self
            .s3
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|err| failed(aws_sdk_s3::error::DisplayErrorContext(&err).to_string()))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_string();
        let parts = self.upload_parts(bucket, key, &upload_id, path, size).await;
        match parts {
            Ok(parts) => {
                self.s3
                    .complete_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|err| {
                        failed(aws_sdk_s3::error::DisplayErrorContext(&err).to_string())
                    })?;
                Ok(())
            }
            Err(err) => {
                let _ = self
                    .s3
                    .abort_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                Err(failed(err))
            }
        }
    }

    async fn upload_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        path: &Path,
        size: u64,
    ) -> Result<Vec<CompletedPart>, String> {
        let mut parts = Vec::new();
        let mut offset = 0;
        let mut number = 1;
        while offset < size {
            let length = PART_BYTES.min(size - offset);
            let body = ByteStream::read_from()
                .path(path)
                .offset(offset)
                .length(Length::Exact(length))
                .build()
                .await
                .map_err(|err| err.to_string())?;
            let part = self
                .s3
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(body)
                .send()
                .await
                .map_err(|err| aws_sdk_s3::error::DisplayErrorContext(&err).to_string())?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(part.e_tag().map(str::to_string))
                    .build(),
            );
            offset += length;
            number += 1;
        }
        Ok(parts)
    }

    /// Keys under `prefix`, every page.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, String> {
        let mut keys = Vec::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| {
                format!(
                    "listing s3://{bucket}/{prefix}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(&err)
                )
            })?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
        }
        Ok(keys)
    }

    /// The object at `key`, streamed.
    pub async fn read(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<impl AsyncBufRead + Unpin + use<>, String> {
        let object = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|err| {
                format!(
                    "reading s3://{bucket}/{key}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(&err)
                )
            })?;
        Ok(tokio::io::BufReader::with_capacity(
            1 << 20,
            object.body.into_async_read(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_locations_parse_and_refuse_what_is_not_one() {
        let at = S3Location::parse("s3://my-bucket/runs/nightly/").unwrap();
        assert_eq!(at.bucket, "my-bucket");
        assert_eq!(at.prefix, "runs/nightly");
        assert_eq!(
            at.key("x/part-00001.jsonl"),
            "runs/nightly/x/part-00001.jsonl"
        );
        let bare = S3Location::parse("s3://my-bucket").unwrap();
        assert_eq!(bare.key("a"), "a");
        assert!(
            S3Location::parse("my-bucket/x")
                .unwrap_err()
                .contains("s3://BUCKET/PREFIX")
        );
        assert!(
            S3Location::parse("s3://My_Bucket/x")
                .unwrap_err()
                .contains("bucket name")
        );
        assert!(S3Location::parse("https://b/x").is_err());
        // What AWS's S3Uri pattern refuses is refused here, naming the character.
        let err = S3Location::parse("s3://bucket/dt=2026-01-01").unwrap_err();
        assert!(err.contains("'='") && err.contains("character 15"), "{err}");
        assert!(err.contains("s3://bucket/dt-2026-01-01"), "{err}");
        assert!(
            S3Location::parse("s3://bucket/a+b")
                .unwrap_err()
                .contains("'+'")
        );
        assert!(S3Location::parse("s3://bucket/a//b").is_err());
        assert!(S3Location::parse("s3://bucket/runs/2026_12(a)!/x.y*'z").is_ok());
        let long = format!("s3://bucket/{}", "a".repeat(1000));
        assert!(S3Location::parse(&long).unwrap_err().contains("1,024"));
    }
}
