//! What changed since the last look: a lane's first throttle, a quota learned, dropped or
//! recovered, a Batch Inference job in a new status, a stall. Pure: it compares snapshots
//! (the progress event, the engine's report) and keeps only what it needs to compare the
//! next one, so the event stream says each change once.

use std::collections::{BTreeMap, BTreeSet};

use super::events::{
    BatchJobChange, Body, LaneState, Progress, QuotaChange, QuotaChangeKind, Stall,
};
use crate::summary::Summary;
use crate::vocab::{BatchReport, LearnedQuota};

/// A learned rate has dropped or recovered when it moved this far from the one last
/// reported: the pacer refines its rate on every throttle, and each refinement is not news.
const CHANGE: f64 = 0.10;

/// Warn of a stall after this long without a line while attempts are throttled (or
/// `--stall-timeout`'s half, when that is shorter).
const STALL_WARNING_S: f64 = 60.0;

#[derive(Debug, Default)]
pub struct Observer {
    /// The rate last reported for each lane and model.
    reported: BTreeMap<(String, String), LearnedQuota>,
    /// Lanes throttled so far; `None` before the first look, which takes the lanes a
    /// resumed run's earlier invocations throttled as they are (not news now).
    throttled_lanes: Option<BTreeSet<String>>,
    /// Lanes and models whose last reported change was a drop.
    dropped: BTreeSet<(String, String)>,
    batch_status: BTreeMap<String, String>,
    stall: StallWatch,
}

#[derive(Debug, Default)]
struct StallWatch {
    warn_after_s: f64,
    lines: u64,
    since_s: f64,
    throttles_then: u64,
    warned: bool,
}

impl Observer {
    /// `stall_timeout_s`: `--stall-timeout`, which ends a run that stalls.
    pub fn new(stall_timeout_s: f64) -> Observer {
        Observer {
            stall: StallWatch {
                warn_after_s: STALL_WARNING_S.min(stall_timeout_s / 2.0),
                ..StallWatch::default()
            },
            ..Observer::default()
        }
    }

    /// The changes between the last snapshot and this one (taken `elapsed_s` into the
    /// invocation), in the order they are reported.
    pub fn changes(
        &mut self,
        elapsed_s: f64,
        progress: &Progress,
        summary: &Summary,
        batch: Option<&BatchReport>,
    ) -> Vec<Body> {
        let mut changes = Vec::new();
        self.throttles(progress, summary, &mut changes);
        for lane in &progress.lanes {
            self.quotas(lane, &mut changes);
        }
        if let Some(batch) = batch {
            self.jobs(batch, &mut changes);
        }
        changes.extend(self.stall.look(elapsed_s, progress).map(Body::Stall));
        changes
    }

    fn throttles(&mut self, progress: &Progress, summary: &Summary, changes: &mut Vec<Body>) {
        // A lane's own count arrives with the call's outcome; a single lane's shows at once.
        let mut throttled: Vec<String> = summary
            .by_region
            .iter()
            .filter(|(_, totals)| totals.throttles > 0)
            .map(|(lane, _)| lane.clone())
            .collect();
        if progress.throttles > 0 && progress.lanes.len() == 1 {
            throttled.push(progress.lanes[0].lane.clone());
        }
        let model = match summary.by_model.len() {
            0 | 1 => summary.model.clone(),
            _ => String::new(),
        };
        let Some(known) = &mut self.throttled_lanes else {
            self.throttled_lanes = Some(throttled.into_iter().collect());
            return;
        };
        for lane in throttled {
            if known.insert(lane.clone()) {
                changes.push(Body::Quota(QuotaChange {
                    lane,
                    model: model.clone(),
                    change: QuotaChangeKind::FirstThrottle,
                    tokens_per_minute: None,
                    requests_per_minute: None,
                    previous_tokens_per_minute: None,
                    previous_requests_per_minute: None,
                }));
            }
        }
    }

    fn quotas(&mut self, lane: &LaneState, changes: &mut Vec<Body>) {
        for (model, now) in &lane.learned {
            let key = (lane.lane.clone(), model.clone());
            let change = match self.reported.get(&key) {
                None => Some(QuotaChangeKind::Learned),
                Some(before) => moved(before, now),
            };
            // A rise is a recovery only after a drop; before one it is the rate learned
            // better (the first estimate is cautious).
            let change = match change {
                Some(QuotaChangeKind::Recovery) if !self.dropped.remove(&key) => {
                    QuotaChangeKind::Learned
                }
                Some(QuotaChangeKind::Drop) => {
                    self.dropped.insert(key.clone());
                    QuotaChangeKind::Drop
                }
                Some(change) => change,
                None => continue,
            };
            let before = self.reported.insert(key, now.clone());
            changes.push(Body::Quota(QuotaChange {
                lane: lane.lane.clone(),
                model: model.clone(),
                change,
                tokens_per_minute: now.tokens_per_minute,
                requests_per_minute: now.requests_per_minute,
                previous_tokens_per_minute: before.as_ref().and_then(|b| b.tokens_per_minute),
                previous_requests_per_minute: before.and_then(|b| b.requests_per_minute),
            }));
        }
    }

    fn jobs(&mut self, batch: &BatchReport, changes: &mut Vec<Body>) {
        for job in &batch.jobs {
            let previous = self.batch_status.get(&job.part);
            if previous == Some(&job.status) {
                continue;
            }
            let previous = self
                .batch_status
                .insert(job.part.clone(), job.status.clone());
            changes.push(Body::BatchJob(BatchJobChange {
                part: job.part.clone(),
                model: job.model.clone(),
                job_arn: job.job_arn.clone(),
                status: job.status.clone(),
                previous_status: previous,
                records: job.records,
                processed: job.processed,
                ok: job.ok,
                failed: job.failed,
            }));
        }
    }
}

/// Whether a learned rate moved far enough from the one last reported to be news.
fn moved(before: &LearnedQuota, now: &LearnedQuota) -> Option<QuotaChangeKind> {
    let pairs = [
        (before.tokens_per_minute, now.tokens_per_minute),
        (before.requests_per_minute, now.requests_per_minute),
    ];
    for pair in pairs {
        match pair {
            (None, Some(_)) => return Some(QuotaChangeKind::Learned),
            (Some(b), Some(n)) if n < b * (1.0 - CHANGE) => return Some(QuotaChangeKind::Drop),
            (Some(b), Some(n)) if n > b * (1.0 + CHANGE) => {
                return Some(QuotaChangeKind::Recovery);
            }
            _ => {}
        }
    }
    None
}

impl StallWatch {
    fn look(&mut self, elapsed_s: f64, progress: &Progress) -> Option<Stall> {
        let lines = progress.records.total;
        if lines != self.lines || elapsed_s < self.since_s {
            self.lines = lines;
            self.since_s = elapsed_s;
            self.throttles_then = progress.throttles;
            self.warned = false;
            return None;
        }
        let waited = elapsed_s - self.since_s;
        let throttles = progress.throttles.saturating_sub(self.throttles_then);
        if self.warned || waited < self.warn_after_s || throttles == 0 {
            return None;
        }
        self.warned = true;
        Some(Stall {
            seconds_without_a_line: waited,
            throttles_meanwhile: throttles,
            stopped: false,
            message: format!(
                "no record finished for {waited:.0} s while {throttles} attempts were throttled: the quota admits almost nothing now"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::RegionTotals;
    use crate::vocab::{BatchJobReport, LearnedQuota};

    fn lane(tpm: Option<f64>) -> LaneState {
        LaneState {
            lane: "us-east-1".into(),
            concurrency_limit: 16,
            in_use: true,
            learned: tpm
                .map(|tpm| {
                    let quota = LearnedQuota {
                        tokens_per_minute: Some(tpm),
                        requests_per_minute: None,
                        updates: 1,
                    };
                    BTreeMap::from([("m".to_string(), quota)])
                })
                .unwrap_or_default(),
        }
    }

    fn kinds(changes: &[Body]) -> Vec<QuotaChangeKind> {
        changes
            .iter()
            .filter_map(|c| match c {
                Body::Quota(q) => Some(q.change),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_quota_is_news_when_first_throttled_learned_dropped_and_recovered_not_when_refined() {
        let mut observer = Observer::new(600.0);
        let summary = Summary {
            model: "m".into(),
            ..Summary::default()
        };
        let mut progress = Progress {
            lanes: vec![lane(None)],
            ..Progress::default()
        };
        assert!(observer.changes(1.0, &progress, &summary, None).is_empty());
        progress.throttles = 1;
        progress.lanes = vec![lane(Some(100_000.0))];
        let changes = observer.changes(2.0, &progress, &summary, None);
        assert_eq!(
            kinds(&changes),
            [QuotaChangeKind::FirstThrottle, QuotaChangeKind::Learned]
        );
        // A rise before any drop is the rate learned better, not a recovery.
        progress.lanes = vec![lane(Some(115_000.0))];
        let changes = observer.changes(2.5, &progress, &summary, None);
        assert_eq!(kinds(&changes), [QuotaChangeKind::Learned]);
        // Refinements within 10% of the rate last reported are not news, even in steps.
        for tpm in [110_000.0, 106_000.0] {
            progress.lanes = vec![lane(Some(tpm))];
            assert!(observer.changes(3.0, &progress, &summary, None).is_empty());
        }
        progress.lanes = vec![lane(Some(40_000.0))];
        let changes = observer.changes(4.0, &progress, &summary, None);
        assert_eq!(kinds(&changes), [QuotaChangeKind::Drop]);
        let Body::Quota(drop) = &changes[0] else {
            panic!()
        };
        assert_eq!(drop.previous_tokens_per_minute, Some(115_000.0));
        progress.lanes = vec![lane(Some(120_000.0))];
        let changes = observer.changes(5.0, &progress, &summary, None);
        assert_eq!(kinds(&changes), [QuotaChangeKind::Recovery]);
    }

    #[test]
    fn each_lane_has_its_first_throttle_once() {
        let mut observer = Observer::new(600.0);
        let mut summary = Summary::default();
        let progress = Progress {
            throttles: 3,
            lanes: vec![lane(None), lane(None)],
            ..Progress::default()
        };
        summary.by_region.insert(
            "us-west-2".into(),
            RegionTotals {
                throttles: 2,
                ..RegionTotals::default()
            },
        );
        let before = Summary::default();
        assert!(
            observer
                .changes(0.0, &Progress::default(), &before, None)
                .is_empty()
        );
        assert_eq!(observer.changes(1.0, &progress, &summary, None).len(), 1);
        assert!(observer.changes(2.0, &progress, &summary, None).is_empty());
    }

    #[test]
    fn a_resumed_runs_earlier_throttles_are_not_news() {
        let mut observer = Observer::new(600.0);
        let mut summary = Summary::default();
        summary.by_region.insert(
            "us-east-1".into(),
            RegionTotals {
                throttles: 5,
                ..RegionTotals::default()
            },
        );
        let progress = Progress {
            throttles: 5,
            lanes: vec![lane(None)],
            ..Progress::default()
        };
        assert!(observer.changes(0.0, &progress, &summary, None).is_empty());
        assert!(observer.changes(1.0, &progress, &summary, None).is_empty());
    }

    #[test]
    fn a_batch_job_is_reported_in_each_new_status() {
        let mut observer = Observer::new(600.0);
        let mut batch = BatchReport {
            jobs: vec![BatchJobReport {
                part: "part-00001".into(),
                status: "Submitted".into(),
                ..BatchJobReport::default()
            }],
            ..BatchReport::default()
        };
        let (progress, summary) = (Progress::default(), Summary::default());
        assert_eq!(
            observer
                .changes(1.0, &progress, &summary, Some(&batch))
                .len(),
            1
        );
        assert!(
            observer
                .changes(2.0, &progress, &summary, Some(&batch))
                .is_empty()
        );
        batch.jobs[0].status = "InProgress".into();
        let changes = observer.changes(3.0, &progress, &summary, Some(&batch));
        let [Body::BatchJob(job)] = &changes[..] else {
            panic!("{changes:?}")
        };
        assert_eq!(job.previous_status.as_deref(), Some("Submitted"));
    }

    #[test]
    fn a_stall_is_warned_once_after_a_minute_of_throttles_without_a_line() {
        let mut observer = Observer::new(600.0);
        let summary = Summary::default();
        let mut progress = Progress::default();
        progress.records.total = 5;
        assert!(observer.changes(1.0, &progress, &summary, None).is_empty());
        // A minute without a line but without throttles either (a batch job running).
        assert!(observer.changes(70.0, &progress, &summary, None).is_empty());
        progress.throttles = 40;
        let changes = observer.changes(71.0, &progress, &summary, None);
        let [Body::Stall(stall)] = &changes[..] else {
            panic!("{changes:?}")
        };
        assert_eq!(stall.throttles_meanwhile, 40);
        assert!(!stall.stopped);
        progress.throttles = 80;
        assert!(observer.changes(90.0, &progress, &summary, None).is_empty());
        // A line resets it.
        progress.records.total = 6;
        assert!(observer.changes(91.0, &progress, &summary, None).is_empty());
    }
}
