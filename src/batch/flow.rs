//! The engine's course from its tasks to its last outcome: spool the records into parts
//! (a rerun's earlier parts kept as they were), submit each part, poll the jobs until each
//! is collected, and record the timings of each phase.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::job_state::{PREPARED, PartState};
use super::parts::Spool;
use super::{Inner, Stopped, failed, local_files, parts};
use crate::bedrock::wire::{self, BatchKind};
use crate::store::state::RecordSet;
use crate::vocab::{CallError, CallOutcome, ErrorKind, RecordMeta, RegionTries, Task};

impl Inner {
    pub(super) async fn go(
        &self,
        mut tasks: mpsc::Receiver<Task>,
        outcomes: &mpsc::Sender<CallOutcome>,
    ) -> Result<(), Stopped> {
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
                return Err(Stopped::Interrupted);
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
            return Err(Stopped::Interrupted);
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
    pub(super) fn earlier_members(&self) -> Result<(Vec<RecordSet>, u32), Stopped> {
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

    pub(super) fn outcome(&self, model: &str, meta: RecordMeta, error: CallError) -> CallOutcome {
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
}
