//! Watching the jobs: poll each every `--poll-secs` until it ends, then collect its output
//! into outcomes; a job that cannot be polled ten times in a row stops the run (resumable).

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::collect::{Collected, Collector};
use super::job_state::PartState;
use super::{Inner, MAX_POLL_FAILURES, Stopped, failed, parts};
use crate::store::state::RecordSet;
use crate::vocab::CallOutcome;

impl Inner {
    /// Polls the jobs of `todo` until each ended and was collected.
    pub(super) async fn poll(
        &self,
        todo: &[usize],
        wanted: &RecordSet,
        outcomes: &mpsc::Sender<CallOutcome>,
    ) -> Result<(), Stopped> {
        let parts = self.state().parts.len();
        let mut elapsed: Vec<Duration> = vec![Duration::ZERO; parts];
        let mut poll_failures: Vec<u32> = vec![0; parts];
        loop {
            // Parts waiting for room under the model's jobs quota, in order.
            for &i in todo {
                if !self.submit(i).await? {
                    break;
                }
            }
            let mut left = 0;
            for &i in todo {
                let part = self.state().parts[i].clone();
                if part.collected {
                    continue;
                }
                let Some(arn) = part.job_arn.clone() else {
                    left += 1;
                    continue;
                };
                if !part.ended() {
                    match self.clients.job_status(&arn).await {
                        Ok(status) => {
                            poll_failures[i] = 0;
                            let changed = {
                                let mut state = self.state();
                                let p = &mut state.parts[i];
                                let changed = p.status != status.status;
                                p.status = status.status;
                                p.message = status.message;
                                p.processed = status.processed.or(p.processed);
                                changed
                            };
                            if let Some(took) = status.elapsed {
                                elapsed[i] = took;
                            }
                            if changed {
                                self.save()?;
                            }
                        }
                        Err(err) => {
                            poll_failures[i] += 1;
                            if poll_failures[i] >= MAX_POLL_FAILURES {
                                return Err(failed(
                                    "batch_poll",
                                    format!("cannot read the status of job {arn}: {err}"),
                                    "Check bedrock:GetModelInvocationJob in your policy and the region of the run; the job keeps running, and a rerun polls it again.",
                                ));
                            }
                            tracing::warn!("polling {arn}: {err} (trying again)");
                        }
                    }
                }
                let part = self.state().parts[i].clone();
                if part.ended() {
                    let collecting = Instant::now();
                    let counts = self.collect(&part, wanted, outcomes, elapsed[i]).await?;
                    self.timings().collect += collecting.elapsed().as_secs_f64();
                    {
                        let mut state = self.state();
                        let p = &mut state.parts[i];
                        p.ok += counts.ok;
                        p.failed += counts.failed;
                        p.collected = true;
                    }
                    self.save()?;
                } else {
                    left += 1;
                }
            }
            if left == 0 {
                return Ok(());
            }
            let waiting = Instant::now();
            let slept = self.sleep(self.settings.poll).await;
            self.timings().wait += waiting.elapsed().as_secs_f64();
            slept?;
        }
    }

    /// Waits `pause`, or less when Ctrl-C comes.
    pub(super) async fn sleep(&self, pause: Duration) -> Result<(), Stopped> {
        let until = tokio::time::Instant::now() + pause;
        while tokio::time::Instant::now() < until {
            if self.stops.stopped() {
                return Err(Stopped::Interrupted);
            }
            tokio::time::sleep(Duration::from_millis(100).min(pause)).await;
        }
        Ok(())
    }

    pub(super) async fn collect(
        &self,
        part: &PartState,
        wanted: &RecordSet,
        outcomes: &mpsc::Sender<CallOutcome>,
        latency: Duration,
    ) -> Result<Collected, Stopped> {
        let location = &self.settings.location;
        let run_id = self.state().run_id.clone();
        let job_id = part.job_id().unwrap_or_default().to_string();
        let prefix = location.key(&format!("{run_id}/output/{job_id}/"));
        let unreadable = |err: String| {
            failed(
                "batch_output",
                format!("cannot read the output of job {job_id}: {err}"),
                format!(
                    "Check s3:ListBucket and s3:GetObject on {}; then rerun to collect again.",
                    location.uri(&prefix)
                ),
            )
        };
        let metas = parts::read_sidecar(&self.parts_dir(), part.index)
            .map_err(|err| unreadable(format!("the records of {}: {err}", part.name())))?;
        let mut seen = vec![false; metas.len()];
        let mut counts = Collected::default();
        let collector = Collector {
            options: &self.options,
            region: &self.region,
            outcomes,
            wanted,
        };
        let keys = self
            .clients
            .list(&location.bucket, &prefix)
            .await
            .map_err(unreadable)?;
        for key in keys.iter().filter(|k| k.ends_with(".jsonl.out")) {
            let lines = self
                .clients
                .read(&location.bucket, key)
                .await
                .map_err(unreadable)?;
            collector
                .read(part, &metas, &mut seen, lines, latency, &mut counts)
                .await
                .map_err(unreadable)?;
        }
        if counts.stray > 0 {
            tracing::warn!(
                "job {job_id}: {} output lines named no record of {} (or one twice); they were skipped",
                counts.stray,
                part.name()
            );
        }
        collector
            .unanswered(part, metas, &seen, &mut counts)
            .await
            .map_err(unreadable)?;
        Ok(counts)
    }
}
