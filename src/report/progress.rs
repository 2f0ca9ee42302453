//! Progress on stderr: an indicatif bar on a terminal (done/total, records/s, ETA, tokens,
//! failures), plain periodic lines when stderr is a file or a pipe, nothing with --quiet.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::summary::{Summary, thousands};

/// How often plain progress lines are printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(10);
/// How often the bar's message is rebuilt.
const MESSAGE_EVERY: Duration = Duration::from_millis(200);

pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    total: Option<u64>,
    started: Instant,
    last: Instant,
    /// The engine's own word (a batch run's jobs), shown after the counts.
    note: Option<String>,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        let now = Instant::now();
        let terminal = std::io::stderr().is_terminal();
        let bar = (!quiet && terminal).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} eta {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Progress {
            bar,
            plain: !quiet && !terminal,
            total: None,
            started: now,
            last: now,
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

    fn message(&self, summary: &Summary, limit: usize) -> String {
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 {
            summary.records.total as f64 / elapsed
        } else {
            0.0
        };
        let costs: Option<f64> = summary
            .by_model
            .values()
            .map(|totals| totals.cost_of_lines())
            .sum();
        let cost = costs.map_or("cost ?".to_string(), |c| format!("${c:.4}"));
        let mut message = format!(
            "{rate:.0}/s | limit {limit} | throttled {} | tokens in {} out {} | {cost} | failed {}",
            thousands(summary.throttles),
            thousands(summary.usage.input_tokens),
            thousands(summary.usage.output_tokens),
            thousands(summary.records.failed)
        );
        if summary.by_region.len() > 1 {
            // Requests (throttled) per region: where the work goes, and which one pushes back.
            let regions: Vec<String> = summary
                .by_region
                .iter()
                .map(|(name, r)| {
                    format!(
                        "{name} {} ({})",
                        thousands(r.requests),
                        thousands(r.throttles)
                    )
                })
                .collect();
            message.push_str(&format!(" | {}", regions.join(", ")));
        }
        if let Some(note) = &self.note {
            message.push_str(&format!(" | {note}"));
        }
        message
    }

    pub fn update(&mut self, summary: &Summary, limit: usize) {
        let now = Instant::now();
        if let Some(bar) = &self.bar {
            bar.set_position(summary.records.total);
            if now.duration_since(self.last) >= MESSAGE_EVERY {
                self.last = now;
                bar.set_message(self.message(summary, limit));
            }
        } else if self.plain && now.duration_since(self.last) >= PLAIN_EVERY {
            self.last = now;
            eprintln!("{}", self.line(summary, limit));
        }
    }

    fn line(&self, summary: &Summary, limit: usize) -> String {
        let elapsed = self.started.elapsed().as_secs_f64();
        let done = summary.records.total;
        let rate = if elapsed > 0.0 {
            done as f64 / elapsed
        } else {
            0.0
        };
        let done_of_total = match self.total {
            Some(total) => {
                let eta = if rate > 0.0 && total > done {
                    format!(", eta {:.0} s", (total - done) as f64 / rate)
                } else {
                    String::new()
                };
                format!(
                    "{}/{} records ({:.1}%){eta}",
                    thousands(done),
                    thousands(total),
                    100.0 * done as f64 / total.max(1) as f64
                )
            }
            None => format!("{} records", thousands(done)),
        };
        format!(
            "[{elapsed:.0} s] {done_of_total}, {}",
            self.message(summary, limit)
        )
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
