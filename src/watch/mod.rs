//! Watching a run from outside: the event stream (`--events`), the timeline every run keeps
//! in `RUN_DIR/events.jsonl` for `report --format html`, the Prometheus metrics
//! (`--metrics-addr`), and stall warnings on stderr. The
//! run hands a [`Watch`] what it sees (the summary as of now, the engine's live numbers and
//! report, each call's outcome); the watch turns that into [`events`] and never calls back
//! into the run. One task (the run's drive loop) owns it, so events come out in order.

mod cumulative;
pub mod events;
mod metrics;
mod observer;
pub mod scrape;
pub mod sink;

use std::time::Instant;

use crate::engine::{EngineReport, Live};
use crate::summary::Summary;
use crate::vocab::{CallOutcome, LearnedQuota};
use events::{Body, Event, LaneState, Progress, RunEnded, RunStarted, SCHEMA_VERSION, Stall};
use observer::Observer;
use sink::{Pace, Sink, Target};

/// How often the run looks at itself for the watch: the finest pace a sink may ask for.
const LOOK_EVERY_S: f64 = 1.0;

/// Upper bounds (seconds) of the call-latency buckets, in `run_ended` and the metrics.
pub const LATENCY_BUCKETS_S: [f64; 14] = [
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
];

/// What the flags ask to watch.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchSettings {
    pub events: Option<Target>,
    /// Seconds between progress events in the `--events` stream.
    pub events_every: f64,
    /// Between plain progress lines on stderr when it is not a terminal.
    pub progress_every: std::time::Duration,
    pub stall_timeout_s: f64,
    pub quiet: bool,
    /// Where to serve the metrics (`--metrics-addr`).
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// The metrics of the run and the server that shows them.
struct Exposed {
    metrics: metrics::Metrics,
    _server: scrape::Server,
}

pub struct Watch {
    run_id: String,
    started: Instant,
    last_look: Option<f64>,
    sinks: Vec<Sink>,
    observer: Observer,
    quiet: bool,
    /// Calls by latency bucket (the last one: longer than every bound).
    latency: [u64; LATENCY_BUCKETS_S.len() + 1],
    exposed: Option<Exposed>,
}

impl Watch {
    /// Opens the sinks: the `--events` target and the timeline in `out_dir`. A sink that
    /// cannot be opened is an error the run reports before sending anything.
    pub fn open(
        settings: &WatchSettings,
        out_dir: &std::path::Path,
        run_id: String,
    ) -> std::io::Result<Watch> {
        let mut sinks = vec![Sink::append(
            &out_dir.join(events::TIMELINE_FILE),
            Pace::Timeline,
        )?];
        match &settings.events {
            Some(Target::Stdout) => sinks.push(Sink::stdout(Pace::Every(settings.events_every))),
            Some(Target::File(path)) => {
                sinks.push(Sink::create(path, Pace::Every(settings.events_every))?)
            }
            None => {}
        }
        Ok(Watch {
            run_id,
            started: Instant::now(),
            last_look: None,
            sinks,
            observer: Observer::new(settings.stall_timeout_s),
            quiet: settings.quiet,
            latency: [0; LATENCY_BUCKETS_S.len() + 1],
            exposed: None,
        })
    }

    /// Serves the run's metrics on `listener` (bound from `--metrics-addr`) until the
    /// watch is dropped; `before` is the summary as the run directory left it, whose totals
    /// the counters do not count (see [`metrics`]). Says where, unless quiet.
    pub fn serve_metrics(
        &mut self,
        listener: std::net::TcpListener,
        started: &RunStarted,
        before: &Summary,
    ) -> std::io::Result<()> {
        let addr = listener.local_addr()?;
        let (metrics, registry) = metrics::Metrics::new(started, &self.run_id, before);
        let server = scrape::serve(listener, std::sync::Arc::new(registry))?;
        if !self.quiet {
            eprintln!("metrics: http://{addr}{}", scrape::PATH);
        }
        self.exposed = Some(Exposed {
            metrics,
            _server: server,
        });
        Ok(())
    }

    fn elapsed_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn emit(&mut self, body: Body) {
        self.emit_to(body, false);
    }

    /// Writes `body` to every sink; a progress snapshot only to those whose pace has come,
    /// unless `every_sink`.
    fn emit_to(&mut self, body: Body, every_sink: bool) {
        let event = Event {
            schema_version: SCHEMA_VERSION,
            run_id: self.run_id.clone(),
            ts: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            since_start_s: (self.elapsed_s() * 1000.0).round() / 1000.0,
            body,
        };
        let progress = matches!(event.body, Body::Progress(_));
        for sink in &mut self.sinks {
            if !progress || every_sink || sink.wants_progress(event.since_start_s) {
                sink.write(&event);
            }
        }
    }

    pub fn started(&mut self, started: RunStarted) {
        self.emit(Body::RunStarted(started));
    }

    /// A call ended: its latency goes in the distribution.
    pub fn outcome(&mut self, outcome: &CallOutcome) {
        let s = outcome.latency.as_secs_f64();
        let bucket = LATENCY_BUCKETS_S
            .iter()
            .position(|bound| s <= *bound)
            .unwrap_or(LATENCY_BUCKETS_S.len());
        self.latency[bucket] += 1;
        if let Some(exposed) = &mut self.exposed {
            exposed.metrics.outcome(outcome);
        }
    }

    /// Whether it is time to look at the run again ([`Watch::look`] is not free: it asks
    /// for the summary and the engine's report).
    pub fn due(&self) -> bool {
        self.last_look
            .is_none_or(|last| self.elapsed_s() - last >= LOOK_EVERY_S)
    }

    /// The run as it is now: a progress snapshot for the sinks whose pace has come, and
    /// whatever changed since the last look.
    pub fn look(&mut self, summary: &Summary, live: Live, report: &EngineReport) {
        let elapsed_s = self.elapsed_s();
        self.last_look = Some(elapsed_s);
        if let Some(exposed) = &mut self.exposed {
            exposed.metrics.look(summary, live, report);
        }
        let progress = progress(summary, live, report);
        let changes = self
            .observer
            .changes(elapsed_s, &progress, summary, report.batch.as_ref());
        for change in changes {
            if let Body::Stall(stall) = &change
                && !self.quiet
            {
                eprintln!("warning: {}", stall.message);
            }
            self.emit(change);
        }
        if self.sinks.iter().any(|s| s.wants_progress(elapsed_s)) {
            self.emit(Body::Progress(progress));
        }
    }

    /// `--stall-timeout` ended the run.
    pub fn stalled(&mut self, after_s: f64, message: String) {
        self.emit(Body::Stall(Stall {
            seconds_without_a_line: after_s,
            throttles_meanwhile: 0,
            stopped: true,
            message,
        }));
    }

    /// The invocation ends: what changed since the last look (a job's last status), a last
    /// snapshot for every sink, then the totals of the summary.json just written and the
    /// exit code.
    pub fn ended(&mut self, summary: &Summary, live: Live, report: &EngineReport, exit_code: u8) {
        if let Some(exposed) = &mut self.exposed {
            exposed.metrics.look(summary, live, report);
        }
        let last = progress(summary, live, report);
        let changes =
            self.observer
                .changes(self.elapsed_s(), &last, summary, report.batch.as_ref());
        for change in changes {
            self.emit(change);
        }
        self.emit_to(Body::Progress(last), true);
        let buckets = self.latency_buckets();
        self.emit(Body::RunEnded(RunEnded::of(summary, exit_code, buckets)));
    }

    /// Calls by latency (upper bound in ms; calls longer than every bound under `f64::MAX`,
    /// as JSON has no infinity), buckets with no call left out.
    fn latency_buckets(&self) -> Vec<(f64, u64)> {
        self.latency
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| {
                let bound = LATENCY_BUCKETS_S.get(i).map_or(f64::MAX, |s| s * 1000.0);
                (bound, *n)
            })
            .collect()
    }
}

/// The progress event of the run as it is now.
fn progress(summary: &Summary, live: Live, report: &EngineReport) -> Progress {
    let lanes = report
        .lanes
        .iter()
        .map(|(name, limit, in_use)| LaneState {
            lane: name.clone(),
            concurrency_limit: *limit,
            in_use: *in_use,
            learned: learned_on(report, name)
                .map(|(model, quota)| (model.to_string(), quota.clone()))
                .collect(),
        })
        .collect();
    Progress {
        records: summary.records.clone(),
        answered: live.answered,
        usage: summary.usage,
        cost_usd: summary.cost_usd,
        calls: summary.calls,
        attempts: summary.attempts,
        throttles: summary.throttles.max(live.throttles),
        retries: summary.retries,
        in_flight: live.in_flight,
        concurrency_limit: live.limit,
        records_per_s: summary.records_per_s,
        lanes,
        cost_by_model: summary
            .by_model
            .iter()
            .map(|(model, totals)| (model.clone(), totals.cost_usd))
            .collect(),
    }
}

/// Each model's learned quota on `lane`: the report keys them `model @ lane`, or `model`
/// when the run has one lane.
fn learned_on<'a>(
    report: &'a EngineReport,
    lane: &'a str,
) -> impl Iterator<Item = (&'a str, &'a LearnedQuota)> {
    report.learned_quota.iter().filter_map(move |(key, quota)| {
        let model = match key.split_once(" @ ") {
            Some((model, on)) if on == lane => model,
            Some(_) => return None,
            None if report.lanes.len() == 1 => key.as_str(),
            None => return None,
        };
        Some((model, quota))
    })
}
