//! Submitting a part: upload its input file (once), then create its job with the part's
//! request token, saving the ARN at once; a jobs quota with no room leaves the part for
//! the next poll, and a name already taken finds the job it names.

use std::time::Instant;

use super::job_state::PartState;
use super::{Inner, Stopped, failed, parts};
use crate::bedrock::jobs::{NewJob, NotCreated};
use crate::bedrock::wire::BatchKind;

impl Inner {
    /// Uploads part `i` and creates its job, unless it has one; `false` when the model's
    /// jobs quota has no room now (the part waits, and is tried again at the next poll).
    pub(super) async fn submit(&self, i: usize) -> Result<bool, Stopped> {
        if self.stops.stopped() {
            return Err(Stopped::Interrupted);
        }
        let part = self.state().parts[i].clone();
        if part.job_arn.is_some() {
            return Ok(true);
        }
        let started = Instant::now();
        let submitted = self.upload_and_create(i, part).await;
        self.timings().submit += started.elapsed().as_secs_f64();
        submitted
    }

    pub(super) async fn upload_and_create(
        &self,
        i: usize,
        part: PartState,
    ) -> Result<bool, Stopped> {
        let (run_id, role_arn) = {
            let state = self.state();
            (state.run_id.clone(), state.role_arn.clone())
        };
        let location = &self.settings.location;
        let name = part.name();
        let input_key = location.key(&format!("{run_id}/input/{name}.jsonl"));
        let path = parts::input_path(&self.parts_dir(), part.index);
        let job_name = format!("bedrock-batch-{run_id}-{name}");
        let token = format!("{run_id}-{name}-{}", part.hash);
        let output_uri = location.uri(&location.key(&format!("{run_id}/output/")));
        let input_uri = location.uri(&input_key);
        let job = NewJob {
            name: &job_name,
            token: &token,
            model: &part.model,
            role_arn: &role_arn,
            input_uri: &input_uri,
            output_uri: &output_uri,
            timeout_hours: self.settings.timeout_hours,
            converse: part.kind == BatchKind::Converse,
        };
        // What the create call would refuse is refused before the upload it would waste.
        if let Some(refusal) = job.refusal() {
            return Err(failed(
                "batch_create",
                format!("Bedrock would refuse the Batch Inference job {job_name}: {refusal}"),
                "Nothing was uploaded for it. Fix the value named (the --s3 prefix, --role-arn or --model) and rerun.",
            ));
        }
        let uploaded = self.uploaded().contains(&part.index);
        if !uploaded {
            self.clients
                .upload(&location.bucket, &input_key, &path)
                .await
                .map_err(|err| {
                    failed(
                        "batch_upload",
                        err,
                        "Check the bucket, its region and your s3:PutObject permission; then rerun to resume.",
                    )
                })?;
            self.uploaded().insert(part.index);
        }
        let created = self.clients.create_job(&job).await;
        let arn = match created {
            Ok(arn) => arn,
            Err(NotCreated::Later(why)) => {
                let mut state = self.state();
                let part = &mut state.parts[i];
                if part.message.is_none() {
                    tracing::info!("{job_name} waits for room under the jobs quota: {why}");
                }
                part.message = Some(format!("waiting for room under the jobs quota: {why}"));
                return Ok(false);
            }
            Err(NotCreated::Refused(err)) => {
                return Err(failed(
                    "batch_create",
                    format!(
                        "creating the Batch Inference job {job_name} for {} failed: {err}",
                        part.model
                    ),
                    format!(
                        "Check that {} offers Batch Inference in {}, that the role {role_arn} can be passed (iam:PassRole) and trusts bedrock.amazonaws.com, and that it can read and write {}; then rerun to resume (parts already created are not created again). A model that does not offer batch runs with --via on-demand (or --service-tier flex, where offered, for a discount).",
                        part.model,
                        self.region,
                        location.uri(&location.key(""))
                    ),
                ));
            }
        };
        {
            let mut state = self.state();
            let part = &mut state.parts[i];
            part.job_arn = Some(arn);
            part.status = "Submitted".into();
            part.message = None;
        }
        self.save()?;
        // S3 has the input now; the sidecar stays to join the answers.
        let _ = std::fs::remove_file(path);
        Ok(true)
    }
}
