//! The event schema: what `--events` writes as JSON Lines and what every run keeps in
//! `RUN_DIR/events.jsonl` (the timeline `report --format html` draws). One object a line;
//! every event carries `schema_version`, `run_id`, `ts` (RFC 3339, UTC, milliseconds),
//! `since_start_s` (since this invocation started) and `event`, its kind. docs/events.md is the
//! documentation of these types; a field is added, never renamed, within a version.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::summary::{RecordCounts, StopReport, Summary};
use crate::vocab::{LearnedQuota, Shard, Usage};

/// The version of this schema, in every event.
pub const SCHEMA_VERSION: u32 = 1;

/// The file in a run directory that keeps every invocation's events.
pub const TIMELINE_FILE: &str = crate::vocab::EVENTS_FILE;

/// One line of the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub schema_version: u32,
    /// The run directory's run: the same across the invocations that resume it, new with
    /// `--fresh`.
    pub run_id: String,
    pub ts: String,
    /// Seconds since this invocation started.
    pub since_start_s: f64,
    #[serde(flatten)]
    pub body: Body,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Body {
    RunStarted(RunStarted),
    Progress(Progress),
    Quota(QuotaChange),
    BatchJob(BatchJobChange),
    Stall(Stall),
    RunEnded(RunEnded),
}

/// An invocation starts sending (after the run directory is opened and the engine built).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunStarted {
    /// bedrock-batch's version.
    pub version: String,
    /// 1 for the first invocation on the run directory, 2 for the first resume...
    pub invocation: u32,
    /// `on_demand` or `batch`.
    pub engine: String,
    pub mode: String,
    pub model: String,
    pub job_file: String,
    pub out_dir: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// Regions or endpoints.
    pub lanes: Vec<String>,
    pub concurrency: usize,
    pub max_concurrency: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    /// Records with a line before this invocation (a resumed run's).
    pub records_done_before: u64,
}

/// A snapshot of the run as it goes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Records with a line (`total`, `ok`, `failed`) and the job's size when counted
    /// (`pending` is what is left of it).
    pub records: RecordCounts,
    /// Records a Batch Inference job reports answered that have no line yet.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub answered: u64,
    pub usage: Usage,
    /// `null` while a model has no price.
    pub cost_usd: Option<f64>,
    pub calls: u64,
    pub attempts: u64,
    /// Attempts throttled, calls still going included.
    pub throttles: u64,
    pub retries: u64,
    /// Attempts in flight now, and the limit they may reach (on-demand runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_limit: Option<usize>,
    /// Lines a second since this invocation started.
    pub records_per_s: f64,
    /// Each region or endpoint: its concurrency limit and each model's learned quota.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lanes: Vec<LaneState>,
    /// Cost so far by model (`null`: no price).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cost_by_model: BTreeMap<String, Option<f64>>,
}

/// One region or endpoint in a progress snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LaneState {
    pub lane: String,
    pub concurrency_limit: usize,
    /// `false` once the lane was dropped (the model is not served there).
    pub in_use: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub learned: BTreeMap<String, LearnedQuota>,
}

/// What changed in a lane's knowledge of a model's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaChangeKind {
    /// The lane's first throttled attempt.
    FirstThrottle,
    /// A rate learned for the first time (or given with --tpm / --rpm).
    Learned,
    /// The learned rate fell (the quota shrank, or the service pushed back).
    Drop,
    /// The learned rate rose again.
    Recovery,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaChange {
    pub lane: String,
    /// Empty for a lane's first throttle when the model is not known yet.
    pub model: String,
    pub change: QuotaChangeKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_tokens_per_minute: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_requests_per_minute: Option<f64>,
}

/// A Batch Inference job seen in a new status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchJobChange {
    pub part: String,
    pub model: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub job_arn: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_status: Option<String>,
    pub records: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed: Option<u64>,
    pub ok: u64,
    pub failed: u64,
}

/// Nothing finished for a while although attempts went out; `stopped` when
/// `--stall-timeout` ended the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stall {
    pub seconds_without_a_line: f64,
    pub throttles_meanwhile: u64,
    pub stopped: bool,
    pub message: String,
}

/// An invocation ends: the totals are summary.json's as it was just written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunEnded {
    pub exit_code: u8,
    /// `completed`, `some_failed`, `interrupted`, `budget`, `aborted` or `failed` (a
    /// fault that left no summary of this invocation's end).
    pub outcome: String,
    pub records: RecordCounts,
    pub usage: Usage,
    pub cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_partial_usd: Option<f64>,
    pub calls: u64,
    pub attempts: u64,
    pub throttles: u64,
    pub retries: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors_by_kind: BTreeMap<String, u64>,
    pub elapsed_s: f64,
    pub records_per_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<StopReport>,
    /// Latency of this invocation's calls: (upper bound in ms, calls) per bucket, the
    /// buckets of the `bedrock_batch_call_latency_seconds` histogram.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency_ms_buckets: Vec<(f64, u64)>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl RunEnded {
    /// The end of an invocation as `summary` says it, with its exit code.
    pub fn of(summary: &Summary, exit_code: u8, latency_ms_buckets: Vec<(f64, u64)>) -> RunEnded {
        RunEnded {
            exit_code,
            outcome: outcome(summary, exit_code).to_string(),
            records: summary.records.clone(),
            usage: summary.usage,
            cost_usd: summary.cost_usd,
            cost_partial_usd: summary.cost_partial_usd,
            calls: summary.calls,
            attempts: summary.attempts,
            throttles: summary.throttles,
            retries: summary.retries,
            errors_by_kind: summary.errors_by_kind.clone(),
            elapsed_s: summary.elapsed_s,
            records_per_s: summary.records_per_s,
            aborted: summary.aborted.clone(),
            latency_ms_buckets,
        }
    }
}

/// The word for how an invocation ended, from its exit code (README "Exit codes").
fn outcome(summary: &Summary, exit_code: u8) -> &'static str {
    use crate::exit;
    match exit_code {
        exit::OK => "completed",
        exit::SOME_FAILED => "some_failed",
        exit::INTERRUPTED => "interrupted",
        exit::BUDGET => "budget",
        exit::FATAL if summary.aborted.is_some() => "aborted",
        _ => "failed",
    }
}

/// The events of a timeline file, in order; lines that do not parse (a line cut by a
/// crash, a newer schema's event kind) are counted, not fatal.
pub fn read_timeline(path: &Path) -> std::io::Result<(Vec<Event>, usize)> {
    let text = std::fs::read_to_string(path)?;
    let mut events = Vec::new();
    let mut skipped = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Event>(line) {
            Ok(event) => events.push(event),
            Err(_) => skipped += 1,
        }
    }
    Ok((events, skipped))
}

/// The last progress snapshot in a timeline file, read from its last 256 KB only (the file
/// of a night's run is megabytes): what `status` shows of a run going on.
pub fn last_progress(path: &Path) -> Option<Event> {
    use std::io::{Read, Seek, SeekFrom};
    const TAIL: u64 = 256 * 1024;
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL))).ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    String::from_utf8_lossy(&tail)
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<Event>(line).ok())
        .find(|event| matches!(event.body, Body::Progress(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::LearnedQuota;

    #[test]
    fn an_event_is_one_flat_object_with_its_kind_and_reads_back() {
        let event = Event {
            schema_version: SCHEMA_VERSION,
            run_id: "r1".into(),
            ts: "2026-12-07T08:00:00.000Z".into(),
            since_start_s: 1.5,
            body: Body::Quota(QuotaChange {
                lane: "us-east-1".into(),
                model: "m".into(),
                change: QuotaChangeKind::FirstThrottle,
                tokens_per_minute: None,
                requests_per_minute: None,
                previous_tokens_per_minute: None,
                previous_requests_per_minute: None,
            }),
        };
        let line = serde_json::to_string(&event).unwrap();
        assert_eq!(
            line,
            r#"{"schema_version":1,"run_id":"r1","ts":"2026-12-07T08:00:00.000Z","since_start_s":1.5,"event":"quota","lane":"us-east-1","model":"m","change":"first_throttle"}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), event);
    }

    /// One event of every kind with every optional field present.
    fn every_kind() -> Vec<Body> {
        let quota = LearnedQuota {
            tokens_per_minute: Some(1e5),
            requests_per_minute: Some(50.0),
            updates: 2,
        };
        let usage = Usage {
            input_tokens: 1,
            output_tokens: 2,
            cache_read_input_tokens: 3,
            cache_write_input_tokens: 4,
            cache_write_1h_input_tokens: 1,
        };
        let records = RecordCounts {
            total: 3,
            ok: 2,
            failed: 1,
            pending: Some(4),
        };
        vec![
            Body::RunStarted(RunStarted {
                version: "0.1.0".into(),
                invocation: 2,
                engine: "batch".into(),
                shard: Some(Shard { index: 0, count: 4 }),
                tpm: Some(1),
                rpm: Some(1),
                service_tier: Some("flex".into()),
                ..RunStarted::default()
            }),
            Body::Progress(Progress {
                records: records.clone(),
                answered: 3,
                usage,
                cost_usd: Some(0.5),
                in_flight: Some(3),
                concurrency_limit: Some(16),
                lanes: vec![LaneState {
                    lane: "us-east-1".into(),
                    concurrency_limit: 16,
                    in_use: true,
                    learned: BTreeMap::from([("m".to_string(), quota.clone())]),
                }],
                cost_by_model: BTreeMap::from([("m".to_string(), None)]),
                ..Progress::default()
            }),
            Body::Quota(QuotaChange {
                lane: "l".into(),
                model: "m".into(),
                change: QuotaChangeKind::Recovery,
                tokens_per_minute: Some(1.0),
                requests_per_minute: Some(1.0),
                previous_tokens_per_minute: Some(1.0),
                previous_requests_per_minute: Some(1.0),
            }),
            Body::BatchJob(BatchJobChange {
                job_arn: "arn".into(),
                previous_status: Some("Submitted".into()),
                processed: Some(1),
                ..BatchJobChange::default()
            }),
            Body::Stall(Stall::default()),
            Body::RunEnded(RunEnded {
                outcome: "aborted".into(),
                records,
                usage,
                cost_partial_usd: Some(0.1),
                errors_by_kind: BTreeMap::from([("throttled".to_string(), 1)]),
                aborted: Some(StopReport::default()),
                latency_ms_buckets: vec![(25.0, 3), (f64::MAX, 1)],
                ..RunEnded::default()
            }),
        ]
    }

    fn validator() -> jsonschema::Validator {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/events.schema.json");
        let schema = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        jsonschema::validator_for(&schema).unwrap()
    }

    #[test]
    fn docs_events_schema_describes_every_field_of_every_event_and_no_other() {
        let validator = validator();
        for body in every_kind() {
            let event = Event {
                schema_version: SCHEMA_VERSION,
                run_id: "20261207T080000Z-0123abcd".into(),
                ts: "2026-12-07T08:00:00.000Z".into(),
                since_start_s: 0.5,
                body,
            };
            let line = serde_json::to_string(&event).unwrap();
            // What is written reads back (the timeline is read by `report`), the open-ended
            // latency bucket included.
            assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), event);
            let mut value = serde_json::to_value(&event).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{value}: {errors:?}");
            // A field the documentation does not name is refused.
            value["surprise"] = 1.into();
            assert!(!validator.is_valid(&value), "{value}");
        }
    }

    #[test]
    fn the_last_progress_is_found_in_the_tail_past_a_cut_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let event = |n: u64| {
            let mut progress = Progress::default();
            progress.records.total = n;
            serde_json::to_string(&Event {
                schema_version: SCHEMA_VERSION,
                run_id: "r".into(),
                ts: String::new(),
                since_start_s: 0.0,
                body: Body::Progress(progress),
            })
            .unwrap()
        };
        // 400 KB of snapshots, then a line a crash cut short.
        let lines: Vec<String> = (0..2_000).map(event).collect();
        let text = lines.join("\n") + "\n{\"schema_version\":1,\"run_id";
        std::fs::write(&path, text).unwrap();
        let Some(Event {
            body: Body::Progress(last),
            ..
        }) = last_progress(&path)
        else {
            panic!("no progress found")
        };
        assert_eq!(last.records.total, 1_999);
        assert!(last_progress(&dir.path().join("missing")).is_none());
    }

    #[test]
    fn the_outcome_follows_the_exit_code() {
        let mut summary = Summary::default();
        assert_eq!(outcome(&summary, 0), "completed");
        assert_eq!(outcome(&summary, 1), "some_failed");
        assert_eq!(outcome(&summary, 3), "failed");
        summary.aborted = Some(StopReport::default());
        assert_eq!(outcome(&summary, 3), "aborted");
        assert_eq!(outcome(&summary, 130), "interrupted");
    }
}
