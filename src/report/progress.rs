//! Progress on stderr: an indicatif bar on a terminal (done/total, records/s, ETA, tokens,
//! failures), plain periodic lines when stderr is a file or a pipe, nothing with --quiet.
//!
//! The numbers are the run's as they are now: the bar counts lines plus what a batch job
//! says it has answered, throttles include calls still going, the ETA comes from the
//! average pace since the first line (not the last second's, which swings on a throttled
//! run), a cost is never negative, and the line is cut to the terminal's width instead of
//! wrapping. Pure formatting ([`message`]) is apart from drawing, for tests.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::Live;
use crate::summary::{Summary, thousands};

/// How often the bar's message is rebuilt.
const MESSAGE_EVERY: Duration = Duration::from_millis(200);

pub struct Progress {
    bar: Option<ProgressBar>,
    /// When stderr is not a terminal: a plain line this often (`--progress-every`).
    plain: Option<Duration>,
    total: Option<u64>,
    started: Instant,
    last: Instant,
    /// Lines when this invocation started (a resumed run's earlier ones), for the pace.
    first_done: Option<u64>,
    /// The engine's own word (a batch run's jobs), shown after the counts.
    note: Option<String>,
}

/// What the progress line is made of, at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot<'a> {
    pub done: u64,
    pub total: Option<u64>,
    pub elapsed_s: f64,
    /// Lines written by this invocation, for the pace.
    pub done_here: u64,
    pub live: Live,
    pub note: Option<&'a str>,
}

impl Progress {
    /// `plain_every`: how often a plain line is printed when stderr is not a terminal.
    pub fn new(quiet: bool, plain_every: Duration) -> Progress {
        let now = Instant::now();
        let terminal = std::io::stderr().is_terminal();
        let bar = (!quiet && terminal).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            // `wide_msg` takes what the terminal has left and cuts the message to it: the
            // line never wraps, however many regions or jobs it names.
            bar.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:20}] {human_pos}/{human_len} {wide_msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Progress {
            bar,
            plain: (!quiet && !terminal).then_some(plain_every),
            total: None,
            started: now,
            last: now,
            first_done: None,
            note: None,
        }
    }

    pub fn set_total(&mut self, total: u64) {
        self.total = Some(total);
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
    }

    /// What the engine says of itself (`None`: nothing).
    pub fn set_note(&mut self, note: Option<String>) {
        self.note = note;
    }

    pub fn update(&mut self, summary: &Summary, live: Live) {
        let now = Instant::now();
        let lines = summary.records.total;
        let first = *self.first_done.get_or_insert(lines);
        let done = match self.total {
            Some(total) => (lines + live.answered).min(total),
            None => lines + live.answered,
        };
        let snapshot = Snapshot {
            done,
            total: self.total,
            elapsed_s: self.started.elapsed().as_secs_f64(),
            done_here: lines.saturating_sub(first),
            live,
            note: self.note.as_deref(),
        };
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            if now.duration_since(self.last) >= MESSAGE_EVERY {
                self.last = now;
                bar.set_message(message(summary, &snapshot));
            }
        } else if let Some(every) = self.plain
            && now.duration_since(self.last) >= every
        {
            self.last = now;
            eprintln!("{}", line(summary, &snapshot));
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// `s` seconds as `42s`, `3m 05s` or `2h 10m`.
pub fn duration_text(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// A region or endpoint as the progress line names it: an endpoint URL without its scheme.
fn lane_name(name: &str) -> &str {
    name.strip_prefix("http://")
        .or_else(|| name.strip_prefix("https://"))
        .unwrap_or(name)
        .trim_end_matches('/')
}

/// The bar's message: pace and ETA, the engine's own numbers, tokens, cost, failures.
pub fn message(summary: &Summary, snapshot: &Snapshot) -> String {
    let rate = match snapshot.elapsed_s {
        e if e > 0.0 => snapshot.done_here as f64 / e,
        _ => 0.0,
    };
    let mut parts = Vec::new();
    let eta = match snapshot.total {
        Some(total) if rate > 0.0 && total > snapshot.done => {
            format!(
                " eta {}",
                duration_text((total - snapshot.done) as f64 / rate)
            )
        }
        _ => String::new(),
    };
    // A batch run (no limit): its jobs say where it is; rate, limit and throttles mean
    // nothing there.
    if let Some(limit) = snapshot.live.limit {
        parts.push(format!("{rate:.0}/s{eta}"));
        parts.push(format!(
            "limit {limit} | throttled {}",
            thousands(snapshot.live.throttles.max(summary.throttles))
        ));
    }
    if let Some(note) = snapshot.note {
        parts.push(note.to_string());
    }
    parts.push(format!(
        "tokens in {} out {}",
        thousands(summary.usage.input_tokens),
        thousands(summary.usage.output_tokens)
    ));
    let costs: Option<f64> = summary
        .by_model
        .values()
        .map(|totals| totals.cost_of_lines())
        .sum();
    // Refunds of retried lines can leave -0.0 or a float crumb below zero.
    parts.push(costs.map_or("cost ?".to_string(), |c| {
        format!("${:.4}", c.max(0.0) + 0.0)
    }));
    parts.push(format!("failed {}", thousands(summary.records.failed)));
    if summary.by_region.len() > 1 {
        // Requests (throttled) per region: where the work goes, and which one pushes back.
        let regions: Vec<String> = summary
            .by_region
            .iter()
            .map(|(name, r)| {
                format!(
                    "{} {} ({})",
                    lane_name(name),
                    thousands(r.requests),
                    thousands(r.throttles)
                )
            })
            .collect();
        parts.push(regions.join(", "));
    }
    parts.join(" | ")
}

/// A plain progress line, for logs.
pub fn line(summary: &Summary, snapshot: &Snapshot) -> String {
    let done = snapshot.done;
    let done_of_total = match snapshot.total {
        Some(total) => format!(
            "{}/{} records ({:.1}%)",
            thousands(done),
            thousands(total),
            100.0 * done as f64 / total.max(1) as f64
        ),
        None => format!("{} records", thousands(done)),
    };
    format!(
        "[{}] {done_of_total}, {}",
        duration_text(snapshot.elapsed_s),
        message(summary, snapshot)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::ModelTotals;

    fn summary() -> Summary {
        let mut summary = Summary::default();
        summary.records.total = 48;
        summary.by_model.insert("m".into(), ModelTotals::default());
        summary
    }

    #[test]
    fn a_batch_run_shows_its_jobs_counts_and_no_pace() {
        let snapshot = Snapshot {
            done: 34,
            total: Some(150),
            elapsed_s: 20.0,
            live: Live {
                limit: None,
                throttles: 0,
                answered: 34,
                in_flight: None,
            },
            note: Some("batch jobs: 0 collected of 1 | part-00001 InProgress 34/150"),
            ..Snapshot::default()
        };
        let text = line(&summary(), &snapshot);
        assert!(text.starts_with("[20s] 34/150 records"), "{text}");
        assert!(text.contains("InProgress 34/150"), "{text}");
        for absent in ["/s", "limit", "throttled", "eta", "$-"] {
            assert!(!text.contains(absent), "{absent}: {text}");
        }
    }

    #[test]
    fn throttles_of_calls_still_going_show_and_the_eta_uses_the_average_pace() {
        let snapshot = Snapshot {
            done: 48,
            total: Some(288),
            elapsed_s: 20.0,
            done_here: 48,
            live: Live {
                limit: Some(4),
                throttles: 17,
                answered: 0,
                in_flight: Some(4),
            },
            note: None,
        };
        let text = message(&summary(), &snapshot);
        assert!(text.contains("throttled 17"), "{text}");
        // 240 left at 2.4 a second.
        assert!(text.contains("2/s eta 1m 40s"), "{text}");
    }

    #[test]
    fn a_cost_never_shows_negative_and_endpoints_lose_their_scheme() {
        let mut summary = summary();
        summary
            .by_model
            .get_mut("m")
            .unwrap()
            .cost_by_variant
            .insert(
                "on_demand".into(),
                crate::summary::VariantTotals {
                    records: 1,
                    usage: Default::default(),
                    cost_usd: Some(-1e-12),
                },
            );
        for name in ["http://127.0.0.1:8001", "http://127.0.0.1:8002"] {
            summary.by_region.insert(name.into(), Default::default());
        }
        let text = message(&summary, &Snapshot::default());
        assert!(text.contains("$0.0000"), "{text}");
        assert!(!text.contains("$-"), "{text}");
        assert!(text.contains("127.0.0.1:8001 0 (0)"), "{text}");
        assert!(!text.contains("http://"), "{text}");
    }
}
