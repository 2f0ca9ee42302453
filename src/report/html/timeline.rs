//! The series the page draws, derived from a run directory's timeline (events.jsonl): rates
//! from the cumulative progress snapshots, the concurrency and the learned quotas as they
//! went, the latency histogram of every invocation, cost by UTC day and the time each Batch
//! Inference job spent in each status. Pure functions of the events (and the summary).
//!
//! Time on the x axis is run time: a resumed run's invocations are laid end to end (each
//! event's `since_start_s` plus the length of the invocations before it), so a night's gap
//! between two invocations does not flatten the chart. A rate is never taken across two
//! invocations.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::summary::Summary;
use crate::watch::LATENCY_BUCKETS_S;
use crate::watch::events::{Body, Event, Progress, RunEnded};

/// (x, y) points: x in seconds of run time.
pub type Points = Vec<(f64, f64)>;

/// What the charts of one run show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    pub records_per_s: Points,
    pub tokens_per_min: Points,
    /// Throttled attempts a minute over each interval between snapshots (the snapshots are
    /// 1 s apart at the start, then 5 s, then 15 s: a per-minute rate compares them).
    pub throttles_per_min: Points,
    pub concurrency_limit: Points,
    pub in_flight: Points,
    /// Learned tokens per minute, by `lane · model`.
    pub learned_tpm: BTreeMap<String, Points>,
    /// Calls by latency bucket (index into [`LATENCY_BUCKETS_S`], the last one beyond it),
    /// summed over the invocations.
    pub latency_calls: Vec<u64>,
    /// The last invocation's end, if it wrote one.
    pub last_end: Option<RunEnded>,
    pub invocations: u32,
    /// Run time at which each resumed invocation started (the first one's, 0, left out).
    pub resumed_at: Vec<f64>,
    pub stalls: u64,
}

/// Seconds since the epoch of an event's RFC 3339 timestamp.
pub fn unix_of(ts: &str) -> Option<f64> {
    let t = DateTime::parse_from_rfc3339(ts).ok()?;
    Some(t.timestamp_millis() as f64 / 1000.0)
}

/// The UTC day (YYYY-MM-DD) of an event's timestamp.
pub fn day_of_ts(ts: &str) -> Option<String> {
    let t = DateTime::parse_from_rfc3339(ts).ok()?.with_timezone(&Utc);
    Some(t.format("%Y-%m-%d").to_string())
}

/// Intervals shorter than this give no rate: two snapshots written together (the last
/// progress and `run_ended`) would divide by almost nothing.
const SHORTEST_INTERVAL_S: f64 = 0.2;

fn tokens(p: &Progress) -> u64 {
    p.usage.input_tokens + p.usage.output_tokens
}

/// The series of `events`, in their order in the file.
pub fn derive(events: &[Event]) -> Timeline {
    let mut timeline = Timeline {
        latency_calls: vec![0; LATENCY_BUCKETS_S.len() + 1],
        ..Timeline::default()
    };
    // Run time before the current invocation, and the invocation's latest `since_start_s`.
    let mut offset = 0.0;
    let mut latest = 0.0_f64;
    let mut previous: Option<(f64, &Progress)> = None;
    for event in events {
        if let Body::RunStarted(_) = event.body {
            offset += latest;
            latest = 0.0;
            previous = None;
            if timeline.invocations > 0 {
                timeline.resumed_at.push(offset);
            }
            timeline.invocations += 1;
        }
        latest = latest.max(event.since_start_s);
        let x = offset + event.since_start_s;
        match &event.body {
            Body::Progress(p) => {
                if let Some((x0, p0)) = previous {
                    let dt = x - x0;
                    if dt >= SHORTEST_INTERVAL_S {
                        let per_s = |now: u64, before: u64| now.saturating_sub(before) as f64 / dt;
                        let point = |v: f64| (x, v);
                        timeline
                            .records_per_s
                            .push(point(per_s(p.records.total, p0.records.total)));
                        timeline
                            .tokens_per_min
                            .push(point(per_s(tokens(p), tokens(p0)) * 60.0));
                        timeline
                            .throttles_per_min
                            .push(point(per_s(p.throttles, p0.throttles) * 60.0));
                    }
                }
                if let Some(limit) = p.concurrency_limit {
                    timeline.concurrency_limit.push((x, limit as f64));
                }
                if let Some(in_flight) = p.in_flight {
                    timeline.in_flight.push((x, in_flight as f64));
                }
                for lane in &p.lanes {
                    for (model, quota) in &lane.learned {
                        if let Some(tpm) = quota.tokens_per_minute {
                            timeline
                                .learned_tpm
                                .entry(format!("{} · {model}", lane.lane))
                                .or_default()
                                .push((x, tpm));
                        }
                    }
                }
                previous = Some((x, p));
            }
            Body::RunEnded(end) => {
                add_latency(&mut timeline.latency_calls, &end.latency_ms_buckets);
                timeline.last_end = Some(end.clone());
            }
            Body::Stall(_) => timeline.stalls += 1,
            _ => {}
        }
    }
    timeline
}

/// Adds `run_ended`'s (upper bound in ms, calls) buckets to `calls` by bucket index.
fn add_latency(calls: &mut [u64], buckets: &[(f64, u64)]) {
    for (bound_ms, n) in buckets {
        let index = LATENCY_BUCKETS_S
            .iter()
            .position(|b| (b * 1000.0 - bound_ms).abs() < 1e-6)
            .unwrap_or(LATENCY_BUCKETS_S.len());
        calls[index] += n;
    }
}

/// Cost by UTC day: each rise of the cumulative cost (progress snapshots and `run_ended`)
/// goes to the day of the event that shows it; what the summary holds beyond the last
/// event (or everything, without a timeline) goes to the day the summary was last written.
/// `None` when the run's cost is unknown.
pub fn cost_by_day(events: &[Event], summary: &Summary) -> Option<BTreeMap<String, f64>> {
    let total = summary.cost_usd.or(summary.cost_partial_usd)?;
    let mut days: BTreeMap<String, f64> = BTreeMap::new();
    let mut seen = 0.0;
    for event in events {
        let cost = match &event.body {
            Body::Progress(p) => p.cost_usd,
            Body::RunEnded(end) => end.cost_usd.or(end.cost_partial_usd),
            _ => None,
        };
        let (Some(cost), Some(day)) = (cost, day_of_ts(&event.ts)) else {
            continue;
        };
        // A timeline restarted by --fresh starts again from zero.
        if cost > seen {
            *days.entry(day).or_default() += cost - seen;
        }
        seen = cost;
    }
    if total - seen > 1e-9 {
        *days
            .entry(crate::report::runs::day_of(summary.finished_unix))
            .or_default() += total - seen;
    }
    Some(days)
}

/// Time a Batch Inference job spent in one status.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusSpell {
    pub status: String,
    /// `None` for the status the timeline ends in.
    pub seconds: Option<f64>,
}

/// Each job's statuses in order (by its part, `part-00001`), from the `batch_job` events'
/// timestamps: a status lasts until the next one is seen.
pub fn batch_job_spells(events: &[Event]) -> BTreeMap<String, Vec<StatusSpell>> {
    let mut seen: BTreeMap<String, Vec<(f64, String)>> = BTreeMap::new();
    for event in events {
        if let (Body::BatchJob(job), Some(t)) = (&event.body, unix_of(&event.ts)) {
            seen.entry(job.part.clone())
                .or_default()
                .push((t, job.status.clone()));
        }
    }
    seen.into_iter()
        .map(|(part, changes)| {
            let spells = changes
                .iter()
                .enumerate()
                .map(|(i, (t, status))| StatusSpell {
                    status: status.clone(),
                    seconds: changes.get(i + 1).map(|(next, _)| (next - t).max(0.0)),
                })
                .collect();
            (part, spells)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::RecordCounts;
    use crate::vocab::Usage;
    use crate::watch::events::{BatchJobChange, RunStarted};

    fn event(ts: &str, since_start_s: f64, body: Body) -> Event {
        Event {
            schema_version: 1,
            run_id: "r".into(),
            ts: ts.into(),
            since_start_s,
            body,
        }
    }

    fn progress(records: u64, tokens: u64, throttles: u64, cost: f64) -> Body {
        Body::Progress(Progress {
            records: RecordCounts {
                total: records,
                ok: records,
                ..RecordCounts::default()
            },
            usage: Usage {
                input_tokens: tokens,
                ..Usage::default()
            },
            throttles,
            cost_usd: Some(cost),
            in_flight: Some(3),
            concurrency_limit: Some(8),
            ..Progress::default()
        })
    }

    fn started() -> Body {
        Body::RunStarted(RunStarted::default())
    }

    #[test]
    fn rates_come_from_differences_and_never_span_two_invocations() {
        let events = [
            event("2026-12-06T23:59:50Z", 0.0, started()),
            event("2026-12-06T23:59:50Z", 0.0, progress(0, 0, 0, 0.0)),
            event("2026-12-06T23:59:55Z", 5.0, progress(10, 600, 2, 0.5)),
            // Resumed the next morning: run time goes on from 5 s.
            event("2026-12-07T08:00:00Z", 0.0, started()),
            event("2026-12-07T08:00:00Z", 0.0, progress(10, 600, 2, 0.5)),
            event("2026-12-07T08:00:10Z", 10.0, progress(30, 1800, 2, 1.25)),
        ];
        let t = derive(&events);
        assert_eq!(t.invocations, 2);
        assert_eq!(t.resumed_at, vec![5.0]);
        assert_eq!(t.records_per_s, vec![(5.0, 2.0), (15.0, 2.0)]);
        assert_eq!(t.tokens_per_min, vec![(5.0, 7200.0), (15.0, 7200.0)]);
        assert_eq!(t.throttles_per_min, vec![(5.0, 24.0), (15.0, 0.0)]);
        assert_eq!(t.concurrency_limit.len(), 4);
        let days = cost_by_day(
            &events,
            &Summary {
                cost_usd: Some(1.5),
                finished_unix: 1_765_098_000,
                ..Summary::default()
            },
        )
        .unwrap();
        assert_eq!(days["2026-12-06"], 0.5);
        assert_eq!(days["2026-12-07"], 0.75);
        // The 0.25 the summary holds beyond the last event goes to its day.
        assert!((days[&crate::report::runs::day_of(1_765_098_000)] - 0.25).abs() < 1e-9);
    }

    #[test]
    fn latency_buckets_add_up_by_bound_over_invocations() {
        let end = |buckets: Vec<(f64, u64)>| {
            Body::RunEnded(RunEnded {
                latency_ms_buckets: buckets,
                ..RunEnded::default()
            })
        };
        let events = [
            event(
                "2026-12-07T08:00:00Z",
                1.0,
                end(vec![(25.0, 2), (500.0, 3)]),
            ),
            event("2026-12-07T09:00:00Z", 1.0, end(vec![(500.0, 1), (1e9, 4)])),
        ];
        let calls = derive(&events).latency_calls;
        assert_eq!(calls[0], 2);
        assert_eq!(calls[4], 4);
        assert_eq!(calls[LATENCY_BUCKETS_S.len()], 4);
        assert_eq!(calls.iter().sum::<u64>(), 10);
    }

    #[test]
    fn a_job_stays_in_a_status_until_the_next_is_seen() {
        let job = |status: &str| {
            Body::BatchJob(BatchJobChange {
                part: "part-00001".into(),
                status: status.into(),
                ..BatchJobChange::default()
            })
        };
        let events = [
            event("2026-12-07T08:00:00Z", 0.0, job("Submitted")),
            event("2026-12-07T08:00:30Z", 30.0, job("InProgress")),
            event("2026-12-07T08:10:30Z", 630.0, job("Completed")),
        ];
        let spells = &batch_job_spells(&events)["part-00001"];
        let seconds: Vec<Option<f64>> = spells.iter().map(|s| s.seconds).collect();
        assert_eq!(seconds, vec![Some(30.0), Some(600.0), None]);
        assert_eq!(spells[2].status, "Completed");
    }
}
