//! Bedrock Batch Inference as an engine (`run --via batch`): the same prepared records an
//! on-demand run sends become input files in S3, one model invocation job per part, at half
//! the price and on AWS's own fleet. The engine spools the records into parts
//! ([`parts`]), saves them in RUN_DIR/state/batch.json ([`state`]), uploads each part and
//! creates its job with a request token derived from the run and the part's content (its
//! ARN saved at once), polls the jobs every `--poll-secs`, and turns each ended job's output
//! into the same outcomes an on-demand call gives ([`collect`]). A rerun after a crash or
//! Ctrl-C finds the parts and jobs in the state: records of an existing part are never
//! spooled again, and a part's job is never created twice.

mod collect;
pub mod parts;
pub mod state;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::bedrock::CallOptions;
use crate::bedrock::Clients;
use crate::bedrock::jobs::{NewJob, NotCreated};
use crate::bedrock::s3::S3Location;
use crate::bedrock::wire::{self, BatchKind};
use crate::engine::{Engine, EngineReport, Halt, Live, Stops};
use crate::store::state::RecordSet;
use crate::summary::thousands;
use crate::vocab::{BatchReport, CallError, CallOutcome, ErrorKind, RecordMeta, RegionTries, Task};
use collect::{Collected, Collector};
use parts::Spool;
use state::{BatchState, PREPARED, PartState};

/// How the run uses Batch Inference.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchSettings {
    pub location: S3Location,
    pub role_arn: String,
    pub records_per_job: u64,
    pub poll: Duration,
    pub timeout_hours: i32,
}

/// The Batch Inference engine of one run.
pub struct BatchInference {
    inner: Arc<Inner>,
}

struct Inner {
    clients: Clients,
    settings: BatchSettings,
    options: Arc<CallOptions>,
    run_dir: PathBuf,
    region: String,
    stops: Stops,
    state: Mutex<BatchState>,
    /// Records `--retry-failed` took out of results.jsonl for this run: they go into new
    /// parts even when an earlier part holds them.
    retried: RecordSet,
    halt: Mutex<Option<Halt>>,
    timings: Mutex<Timings>,
    /// Parts uploaded by this run (a part waiting for room under the jobs quota is not
    /// uploaded again at each try).
    uploaded: Mutex<std::collections::HashSet<u32>>,
}

/// Where this run's time went, in seconds.
#[derive(Debug, Default, Clone, Copy)]
struct Timings {
    prepare: f64,
    submit: f64,
    wait: f64,
    collect: f64,
}

/// Polls of one job that may fail in a row before the run stops (resumable).
const MAX_POLL_FAILURES: u32 = 10;

/// Why the engine stopped early.
enum Stop {
    /// Ctrl-C: leave the jobs running, keep the state.
    Interrupted,
    Failed(Halt),
}

fn failed(kind: &str, message: impl Into<String>, hint: impl Into<String>) -> Stop {
    Stop::Failed(Halt::Failed {
        kind: kind.to_string(),
        message: message.into(),
        hint: hint.into(),
    })
}

fn local_files(err: std::io::Error) -> Stop {
    failed(
        "batch_files",
        format!("cannot write the batch input files: {err}"),
        "Check the space and permissions of RUN_DIR/batch, then rerun to resume.",
    )
}

/// Everything the engine works with, built by the run.
pub struct Setup {
    pub clients: Clients,
    pub settings: BatchSettings,
    pub options: Arc<CallOptions>,
    pub run_dir: PathBuf,
    pub region: String,
    pub stops: Stops,
    pub state: BatchState,
    /// Records `--retry-failed` took out of results.jsonl for this run.
    pub retried: RecordSet,
}

impl BatchInference {
    pub fn new(setup: Setup) -> BatchInference {
        BatchInference {
            inner: Arc::new(Inner {
                clients: setup.clients,
                settings: setup.settings,
                options: setup.options,
                run_dir: setup.run_dir,
                region: setup.region,
                stops: setup.stops,
                state: Mutex::new(setup.state),
                retried: setup.retried,
                halt: Mutex::new(None),
                timings: Mutex::new(Timings::default()),
                uploaded: Mutex::new(std::collections::HashSet::new()),
            }),
        }
    }
}

impl Engine for BatchInference {
    fn start(
        &self,
        tasks: mpsc::Receiver<Task>,
        outcomes: mpsc::Sender<CallOutcome>,
    ) -> JoinHandle<()> {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            if let Err(Stop::Failed(halt)) = inner.go(tasks, &outcomes).await {
                *inner.halt.lock().unwrap_or_else(|e| e.into_inner()) = Some(halt);
            }
        })
    }

    /// Jobs running now.
    fn live(&self) -> Live {
        let state = self.inner.state();
        Live {
            limit: None,
            throttles: 0,
            answered: state
                .parts
                .iter()
                .filter(|p| !p.collected)
                .map(|p| p.processed.unwrap_or(0).min(p.records))
                .sum(),
        }
    }

    fn report(&self) -> EngineReport {
        let timings = *self.inner.timings();
        let round = |s: f64| (s * 1000.0).round() / 1000.0;
        EngineReport {
            batch: Some(BatchReport {
                jobs: self.inner.state().reports(),
                prepare_s: round(timings.prepare),
                submit_s: round(timings.submit),
                wait_s: round(timings.wait),
                collect_s: round(timings.collect),
            }),
            ..EngineReport::default()
        }
    }

    fn halted(&self) -> Option<Halt> {
        self.inner
            .halt
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn status_line(&self) -> Option<String> {
        let state = self.inner.state();
        if state.parts.is_empty() {
            return Some("batch: preparing input files".into());
        }
        let jobs: Vec<String> = state
            .parts
            .iter()
            .filter(|p| !p.collected)
            .take(4)
            .map(|p| {
                let processed = p
                    .processed
                    .map(|n| format!(" {}/{}", thousands(n), thousands(p.records)))
                    .unwrap_or_default();
                format!("{} {}{processed}", p.name(), p.status)
            })
            .collect();
        let collected = state.parts.iter().filter(|p| p.collected).count();
        Some(format!(
            "batch jobs: {} collected of {}{}{}",
            collected,
            state.parts.len(),
            if jobs.is_empty() { "" } else { "; " },
            jobs.join(", ")
        ))
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, BatchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn timings(&self) -> MutexGuard<'_, Timings> {
        self.timings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn uploaded(&self) -> MutexGuard<'_, std::collections::HashSet<u32>> {
        self.uploaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self) -> Result<(), Stop> {
        let state = self.state().clone();
        state::write(&self.run_dir, &state).map_err(|err| {
            failed(
                "batch_state",
                err.to_string(),
                "The jobs already created keep running on AWS; fix the run directory and rerun to resume.",
            )
        })
    }

    fn parts_dir(&self) -> PathBuf {
        state::parts_dir(&self.run_dir)
    }

    async fn go(
        &self,
        mut tasks: mpsc::Receiver<Task>,
        outcomes: &mpsc::Sender<CallOutcome>,
    ) -> Result<(), Stop> {
        let started = Instant::now();
        let (members, first_index) = self.earlier_members()?;
        let mut wanted = RecordSet::default();
        let mut owed: Vec<bool> = members.iter().map(|_| false).collect();
        let mut spool = Spool::new(
            &self.parts_dir(),
            first_index,
            self.settings.records_per_job,
        )
        .map_err(local_files)?;
        while let Some(task) = tasks.recv().await {
            if self.stops.stopped() {
                return Err(Stop::Interrupted);
            }
            for record in task.records {
                let number = record.meta.number;
                if !self.retried.contains(number)
                    && let Some(at) = members.iter().rposition(|set| set.contains(number))
                {
                    owed[at] = true;
                    wanted.insert(number);
                    continue;
                }
                match wire::batch_model_input(&self.options, &task.model, &record.payload) {
                    Ok(input) => {
                        spool
                            .push(
                                &task.model,
                                BatchKind::of(&record.payload),
                                &record.meta,
                                &input,
                            )
                            .map_err(local_files)?;
                        wanted.insert(number);
                    }
                    Err(err) => {
                        let outcome = self.outcome(&task.model, record.meta, err);
                        let _ = outcomes.send(outcome).await;
                    }
                }
            }
        }
        if self.stops.stopped() {
            return Err(Stop::Interrupted);
        }
        let spooled = spool.finish().map_err(local_files)?;
        for (model, metas) in spooled.too_few {
            let message = format!(
                "only {} records for {model} are left to send: a Batch Inference job takes at least {}; rerun with --retry-failed --via on-demand",
                metas.len(),
                parts::MIN_RECORDS
            );
            for meta in metas {
                let error = CallError::new(ErrorKind::BatchIncomplete, message.clone());
                let _ = outcomes.send(self.outcome(&model, meta, error)).await;
            }
        }
        let mut todo: Vec<usize> = owed
            .iter()
            .enumerate()
            .filter_map(|(i, owed)| owed.then_some(i))
            .collect();
        {
            let mut state = self.state();
            let first_new = state.parts.len();
            for part in spooled.parts {
                state.parts.push(PartState {
                    index: part.index,
                    model: part.model,
                    kind: part.kind,
                    records: part.records,
                    bytes: part.bytes,
                    hash: part.hash,
                    job_arn: None,
                    status: PREPARED.to_string(),
                    message: None,
                    processed: None,
                    ok: 0,
                    failed: 0,
                    collected: false,
                });
            }
            todo.extend(first_new..state.parts.len());
            for &i in &todo {
                state.parts[i].collected = false;
            }
        }
        self.save()?;
        self.timings().prepare = started.elapsed().as_secs_f64();
        for &i in &todo {
            if !self.submit(i).await? {
                break;
            }
        }
        self.poll(&todo, &wanted, outcomes).await
    }

    /// Which records each earlier part holds, and the next part's index.
    fn earlier_members(&self) -> Result<(Vec<RecordSet>, u32), Stop> {
        let parts: Vec<u32> = self.state().parts.iter().map(|p| p.index).collect();
        let mut members = Vec::with_capacity(parts.len());
        for index in &parts {
            let metas = parts::read_sidecar(&self.parts_dir(), *index).map_err(|err| {
                failed(
                    "batch_files",
                    format!("cannot read the records of {}: {err}", parts::part_name(*index)),
                    "RUN_DIR/batch holds what each job was sent; without it the job's answers cannot be joined to records. Restore it, or start over with --fresh.",
                )
            })?;
            let mut set = RecordSet::default();
            for meta in metas {
                set.insert(meta.number);
            }
            members.push(set);
        }
        Ok((members, parts.iter().max().map_or(1, |m| m + 1)))
    }

    fn outcome(&self, model: &str, meta: RecordMeta, error: CallError) -> CallOutcome {
        CallOutcome {
            region: self.region.clone(),
            regions: vec![RegionTries {
                region: self.region.clone(),
                attempts: 0,
                throttles: 0,
            }],
            model: model.to_string(),
            records: vec![meta],
            result: Err(error),
            attempts: 0,
            retries: Vec::new(),
            latency: Duration::ZERO,
            service_tier: None,
            batch_job: None,
        }
    }

    /// Uploads part `i` and creates its job, unless it has one; `false` when the model's
    /// jobs quota has no room now (the part waits, and is tried again at the next poll).
    async fn submit(&self, i: usize) -> Result<bool, Stop> {
        if self.stops.stopped() {
            return Err(Stop::Interrupted);
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

    async fn upload_and_create(&self, i: usize, part: PartState) -> Result<bool, Stop> {
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

    /// Polls the jobs of `todo` until each ended and was collected.
    async fn poll(
        &self,
        todo: &[usize],
        wanted: &RecordSet,
        outcomes: &mpsc::Sender<CallOutcome>,
    ) -> Result<(), Stop> {
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
    async fn sleep(&self, pause: Duration) -> Result<(), Stop> {
        let until = tokio::time::Instant::now() + pause;
        while tokio::time::Instant::now() < until {
            if self.stops.stopped() {
                return Err(Stop::Interrupted);
            }
            tokio::time::sleep(Duration::from_millis(100).min(pause)).await;
        }
        Ok(())
    }

    async fn collect(
        &self,
        part: &PartState,
        wanted: &RecordSet,
        outcomes: &mpsc::Sender<CallOutcome>,
        latency: Duration,
    ) -> Result<Collected, Stop> {
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
