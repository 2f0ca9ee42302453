//! The `--via batch` flags, checked before anything is read or uploaded: an S3 URI that is
//! `s3://bucket/prefix`, an IAM role ARN, the per-job record count and timeout within
//! Bedrock's limits, and the flags that mean nothing for a batch job refused by name.

use std::time::Duration;

use super::aws::S3Location;
use super::parts::{MAX_RECORDS, MIN_RECORDS};
use crate::cli::{RunArgs, Via};
use crate::vocab::Mode;

/// How the run uses Batch Inference.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchSettings {
    pub location: S3Location,
    pub role_arn: String,
    pub records_per_job: u64,
    pub poll: Duration,
    pub timeout_hours: i32,
}

/// The bucket `--local` serves and uses when no --s3 is given.
pub const LOCAL_BUCKET: &str = "bedrock-batch-local";
const LOCAL_ROLE: &str = "arn:aws:iam::000000000000:role/bedrock-batch-local";

/// Whether `arn` is an IAM role ARN as Bedrock's API accepts it (the service model's
/// `RoleArn`: `arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+`).
pub fn is_role_arn(arn: &str) -> bool {
    let value = serde_json::Value::from(arn);
    crate::rules::check_shape(crate::rules::Service::Control, "RoleArn", &value, "roleArn").is_ok()
}

/// The batch settings of a run that may use Batch Inference (`None` for `--via on-demand`).
pub fn from_args(args: &RunArgs, mode: Mode) -> Result<Option<BatchSettings>, String> {
    let batch_flags = args.s3.is_some() || args.role_arn.is_some();
    if args.via == Via::OnDemand {
        // Nothing is sent or paid differently for them: the previous command with one flag
        // changed (`--via on-demand` to finish a batch run now) must work as copied.
        if batch_flags {
            eprintln!(
                "warning: --s3 and --role-arn are for --via batch or auto: ignored by this on-demand run"
            );
        }
        return Ok(None);
    }
    let via = if args.via == Via::Batch {
        "batch"
    } else {
        "auto"
    };
    if matches!(mode, Mode::Retrieve | Mode::Rag) {
        return Err(format!(
            "--via {via}: Batch Inference runs models, not knowledge-base queries; drop --via for --mode retrieve or rag"
        ));
    }
    if args.stream {
        // Nothing sent or paid changes: the batch job answers whole.
        eprintln!(
            "warning: --stream applies to on-demand calls: ignored by the Batch Inference jobs of --via {via} (a job streams nothing)"
        );
    }
    if args.budget_usd.is_some() {
        return Err(format!(
            "--via {via}: --budget-usd cannot stop a Batch Inference job halfway (its cost is known when it ends); see the batch price with `bedrock-batch prices MODEL`"
        ));
    }
    if args.region.len() > 1 || args.endpoint_url.len() > 1 {
        return Err(format!(
            "--via {via} runs in one region: give one --region (a job already uses AWS's fleet, not your on-demand quota)"
        ));
    }
    let s3 = match (&args.s3, args.local) {
        (Some(uri), _) => uri.clone(),
        (None, true) => format!("s3://{LOCAL_BUCKET}/runs"),
        (None, false) => {
            return Err(format!(
                "--via {via} needs --s3 s3://BUCKET/PREFIX: where the input files go and Bedrock writes the output"
            ));
        }
    };
    let location = S3Location::parse(&s3)?;
    let role_arn = match (&args.role_arn, args.local) {
        (Some(arn), _) => arn.clone(),
        (None, true) => LOCAL_ROLE.to_string(),
        (None, false) => {
            return Err(format!(
                "--via {via} needs --role-arn arn:aws:iam::ACCOUNT:role/NAME: the service role Bedrock assumes to read and write {s3} (README: Batch runs)"
            ));
        }
    };
    if !is_role_arn(&role_arn) {
        return Err(format!(
            "--role-arn {role_arn:?} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"
        ));
    }
    if !(MIN_RECORDS..=MAX_RECORDS).contains(&args.records_per_job) {
        return Err(format!(
            "--records-per-job must be between {MIN_RECORDS} and {MAX_RECORDS} (Bedrock's limits per job), got {}",
            args.records_per_job
        ));
    }
    if !(24..=168).contains(&args.batch_timeout_hours) {
        return Err(format!(
            "--batch-timeout-hours must be between 24 and 168, got {}",
            args.batch_timeout_hours
        ));
    }
    if !(args.poll_secs.is_finite() && args.poll_secs > 0.0) {
        return Err(format!(
            "--poll-secs must be a positive number of seconds, got {}",
            args.poll_secs
        ));
    }
    Ok(Some(BatchSettings {
        location,
        role_arn,
        records_per_job: args.records_per_job,
        poll: Duration::from_secs_f64(args.poll_secs),
        timeout_hours: args.batch_timeout_hours,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_follow_the_api_pattern() {
        assert!(is_role_arn("arn:aws:iam::123456789012:role/BedrockBatch"));
        assert!(is_role_arn("arn:aws-cn:iam::123456789012:role/path/r"));
        assert!(!is_role_arn("arn:aws:iam::123:role/r"));
        assert!(!is_role_arn("arn:aws:iam::123456789012:user/r"));
        assert!(!is_role_arn("BedrockBatch"));
        assert!(!is_role_arn("arn:aws:iam::123456789012:role/"));
    }
}
