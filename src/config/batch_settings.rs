//! The `--via batch` and `--via auto` flags -> [`BatchSettings`], checked before anything is
//! read or uploaded: an S3 URI that is `s3://bucket/prefix`, an IAM role ARN, the per-job
//! record count and timeout within Bedrock's limits. Flags of the other route that change nothing sent or paid are ignored
//! with one warning line that names them.

use std::time::Duration;

use super::ConfigError;
use crate::batch::BatchSettings;
use crate::batch::parts::{MAX_RECORDS, MIN_RECORDS};
use crate::bedrock::s3::S3Location;
use crate::cli::RunArgs;
use crate::engine::Via;
use crate::vocab::Mode;

/// The bucket `--local` serves and uses when no --s3 is given.
pub const LOCAL_BUCKET: &str = "bedrock-batch-local";
const LOCAL_ROLE: &str = "arn:aws:iam::000000000000:role/bedrock-batch-local";
/// Defaults of the batch-only flags (they have no clap default; see [`RunArgs`]).
const RECORDS_PER_JOB: u64 = 50_000;
const POLL_SECS: f64 = 60.0;
const TIMEOUT_HOURS: i32 = 24;

/// Whether `arn` is an IAM role ARN as Bedrock's API accepts it (the service model's
/// `RoleArn`: `arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+`).
pub fn is_role_arn(arn: &str) -> bool {
    let value = serde_json::Value::from(arn);
    crate::rules::check_shape(crate::rules::Service::Control, "RoleArn", &value, "roleArn").is_ok()
}

/// The batch settings of a run that may use Batch Inference (`None` for `--via on-demand`).
pub fn settings(args: &RunArgs, mode: Mode) -> Result<Option<BatchSettings>, ConfigError> {
    if args.via == Via::OnDemand {
        // Nothing is sent or paid differently for them: the previous command with one flag
        // changed (`--via on-demand` to finish a batch run now) must work as copied.
        if let Some(warning) = ignored_on_demand(args) {
            eprintln!("{warning}");
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
        ).into());
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
        ).into());
    }
    if args.region.len() > 1 || args.endpoint_url.len() > 1 {
        return Err(format!(
            "--via {via} runs in one region: give one --region (a job already uses AWS's fleet, not your on-demand quota)"
        ).into());
    }
    let s3 = match (&args.s3, args.local) {
        (Some(uri), _) => uri.clone(),
        (None, true) => format!("s3://{LOCAL_BUCKET}/runs"),
        (None, false) => {
            return Err(format!(
                "--via {via} needs --s3 s3://BUCKET/PREFIX: where the input files go and Bedrock writes the output"
            ).into());
        }
    };
    let location = S3Location::parse(&s3)?;
    let role_arn = match (&args.role_arn, args.local) {
        (Some(arn), _) => arn.clone(),
        (None, true) => LOCAL_ROLE.to_string(),
        (None, false) => {
            return Err(format!(
                "--via {via} needs --role-arn arn:aws:iam::ACCOUNT:role/NAME: the service role Bedrock assumes to read and write {s3} (README: Batch runs)"
            ).into());
        }
    };
    if !is_role_arn(&role_arn) {
        return Err(format!(
            "--role-arn {role_arn:?} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"
        )
        .into());
    }
    let records_per_job = args.records_per_job.unwrap_or(RECORDS_PER_JOB);
    if !(MIN_RECORDS..=MAX_RECORDS).contains(&records_per_job) {
        return Err(format!(
            "--records-per-job must be between {MIN_RECORDS} and {MAX_RECORDS} (Bedrock's limits per job), got {records_per_job}"
        ).into());
    }
    let timeout_hours = args.batch_timeout_hours.unwrap_or(TIMEOUT_HOURS);
    if !(24..=168).contains(&timeout_hours) {
        return Err(format!(
            "--batch-timeout-hours must be between 24 and 168, got {timeout_hours}"
        )
        .into());
    }
    let poll_secs = args.poll_secs.unwrap_or(POLL_SECS);
    if !(poll_secs.is_finite() && poll_secs > 0.0) {
        return Err(
            format!("--poll-secs must be a positive number of seconds, got {poll_secs}").into(),
        );
    }
    Ok(Some(BatchSettings {
        location,
        role_arn,
        records_per_job,
        poll: Duration::from_secs_f64(poll_secs),
        timeout_hours,
    }))
}

/// The one warning line for the batch-only flags an on-demand run was given, naming them.
fn ignored_on_demand(args: &RunArgs) -> Option<String> {
    let given: Vec<&str> = [
        ("--s3", args.s3.is_some()),
        ("--role-arn", args.role_arn.is_some()),
        ("--records-per-job", args.records_per_job.is_some()),
        ("--poll-secs", args.poll_secs.is_some()),
        ("--batch-timeout-hours", args.batch_timeout_hours.is_some()),
    ]
    .into_iter()
    .filter_map(|(flag, given)| given.then_some(flag))
    .collect();
    let (last, rest) = given.split_last()?;
    let (flags, verb) = match rest {
        [] => (last.to_string(), "is"),
        _ => (format!("{} and {last}", rest.join(", ")), "are"),
    };
    Some(format!(
        "warning: {flags} {verb} for --via batch or auto: ignored by this on-demand run"
    ))
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

    use crate::cli::tests::run_args;

    #[test]
    fn an_on_demand_run_names_the_batch_flags_it_ignores_in_one_line() {
        assert_eq!(ignored_on_demand(&run_args(&[])), None);
        assert_eq!(
            ignored_on_demand(&run_args(&["--poll-secs", "5"])).as_deref(),
            Some("warning: --poll-secs is for --via batch or auto: ignored by this on-demand run")
        );
        let all = run_args(&[
            "--s3",
            "s3://b/p",
            "--role-arn",
            "arn:aws:iam::123456789012:role/R",
            "--records-per-job",
            "100",
            "--poll-secs",
            "5",
            "--batch-timeout-hours",
            "48",
        ]);
        assert_eq!(
            ignored_on_demand(&all).as_deref(),
            Some(
                "warning: --s3, --role-arn, --records-per-job, --poll-secs and --batch-timeout-hours are for --via batch or auto: ignored by this on-demand run"
            )
        );
    }

    #[test]
    fn batch_flags_left_out_take_their_defaults() {
        let settings = settings(&run_args(&["--via", "batch", "--local"]), Mode::Converse)
            .unwrap()
            .unwrap();
        assert_eq!(settings.records_per_job, 50_000);
        assert_eq!(settings.poll, Duration::from_secs(60));
        assert_eq!(settings.timeout_hours, 24);
    }
}
