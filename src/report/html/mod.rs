//! `report --format html`: one self-contained page comparing run directories side by side
//! (last night against the night before): a table of their numbers, charts over run time
//! from each run's timeline (events.jsonl), latency, cost by model, tier, route and day,
//! errors with example records, and Batch Inference jobs. Nothing on the page is fetched:
//! the style is inline and the charts are SVG drawn by plotters. Everything here turns data
//! into text; [`load`] is the one place that reads the run directories.

pub mod charts;
mod compare;
pub mod load;
mod sections;
pub mod timeline;

use std::collections::BTreeMap;

use crate::summary::{Summary, thousands};
use crate::watch::events::Event;
use charts::Line;
use timeline::{StatusSpell, Timeline};

/// A failed record the page shows as an example of its error kind.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorExample {
    pub id: String,
    /// The record's number in the job file (1-based), when the line says it.
    pub record: Option<u64>,
    pub message: String,
}

/// Everything the page shows of one run directory.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPage {
    /// The directory as given on the command line.
    pub label: String,
    pub summary: Summary,
    /// `None` when the directory has no timeline (a run older than events.jsonl).
    pub timeline: Option<Timeline>,
    /// Why the timeline is missing or partial.
    pub timeline_note: Option<String>,
    pub cost_by_day: Option<BTreeMap<String, f64>>,
    pub batch_spells: BTreeMap<String, Vec<StatusSpell>>,
    /// Up to [`load::EXAMPLES_PER_KIND`] failed records per error kind.
    pub examples: BTreeMap<String, Vec<ErrorExample>>,
}

impl RunPage {
    /// A run known only by its summary.
    pub fn new(label: &str, summary: Summary) -> RunPage {
        RunPage {
            label: label.to_string(),
            cost_by_day: timeline::cost_by_day(&[], &summary),
            summary,
            timeline: None,
            timeline_note: None,
            batch_spells: BTreeMap::new(),
            examples: BTreeMap::new(),
        }
    }

    /// Adds what the run's timeline shows.
    pub fn with_events(mut self, events: &[Event]) -> RunPage {
        self.timeline = Some(timeline::derive(events));
        self.cost_by_day = timeline::cost_by_day(events, &self.summary);
        self.batch_spells = timeline::batch_job_spells(events);
        self
    }
}

/// `s` with `&`, `<`, `>`, `"` and `'` escaped: safe in element text and quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A count with thousands separators.
pub fn num(n: u64) -> String {
    thousands(n)
}

/// Dollars: four decimals below $100 (a night of Haiku costs cents), two above.
pub fn money(usd: f64) -> String {
    if usd.abs() >= 100.0 {
        let cents = (usd * 100.0).round() as u64;
        format!("${}.{:02}", thousands(cents / 100), cents % 100)
    } else {
        format!("${usd:.4}")
    }
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1360px;padding:0 16px;color:#1d2330}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d5d9e0;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px}th,td{border:1px solid #d5d9e0;padding:4px 8px;vertical-align:top}
td{text-align:right;font-variant-numeric:tabular-nums}td.text{text-align:left}thead th{background:#f2f4f7}
th[scope=row]{text-align:left;font-weight:600;background:#fafbfc}
.swatch{display:inline-block;width:10px;height:10px;margin-right:6px;border-radius:2px}
.charts{display:flex;flex-wrap:wrap;gap:12px}.charts svg{border:1px solid #e3e6eb}
.note{color:#6b5300;background:#fff8e0;border-left:3px solid #e0b000;padding:4px 8px}
.muted{color:#5c6370}code{font-size:12px}nav a{margin-right:12px}
";

/// The page for `runs`, written at `generated` (UTC, as the page states it).
pub fn page(runs: &[RunPage], generated: &str) -> String {
    let title = format!(
        "bedrock-batch report: {}",
        runs.iter()
            .map(|r| r.label.as_str())
            .collect::<Vec<_>>()
            .join(" vs ")
    );
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(&title)
    );
    out += &format!(
        "<h1>bedrock-batch report</h1><p class=\"muted\">{} run {} compared, generated {}. \
         Times are UTC.</p>\n",
        runs.len(),
        if runs.len() == 1 {
            "directory"
        } else {
            "directories"
        },
        escape(generated)
    );
    out += "<nav><a href=\"#runs\">Runs</a><a href=\"#time\">Over time</a>\
            <a href=\"#latency\">Latency</a><a href=\"#cost\">Cost</a>\
            <a href=\"#errors\">Errors</a><a href=\"#batch\">Batch jobs</a></nav>\n";
    out += "<h2 id=\"runs\">Runs compared</h2>\n";
    out += &compare::table(runs);
    out += &over_time(runs);
    out += &latency(runs);
    out += &sections::cost(runs);
    out += &sections::errors(runs);
    out += &sections::batch(runs);
    out + "</body></html>\n"
}

/// One of a timeline's series.
type Series = fn(&Timeline) -> &[(f64, f64)];

/// One line a run, for a series each run has once.
fn per_run<'a>(runs: &'a [RunPage], series: Series) -> Vec<Line<'a>> {
    runs.iter()
        .enumerate()
        .filter_map(|(i, run)| {
            let t = run.timeline.as_ref()?;
            Some(Line {
                label: run.label.clone(),
                color: i,
                points: series(t),
                resumed_at: &t.resumed_at,
            })
        })
        .collect()
}

/// A chart, or a note saying there is nothing to draw.
fn chart_or_note(title: &str, svg: Option<String>) -> String {
    svg.unwrap_or_else(|| {
        format!(
            "<p class=\"note\">{}: no points in any timeline.</p>",
            escape(title)
        )
    })
}

/// The charts over run time, each run a line.
fn over_time(runs: &[RunPage]) -> String {
    let mut out = String::from(
        "<h2 id=\"time\">Over time</h2>\n<p class=\"muted\">x: run time since the run \
         started; a resumed run's invocations are laid end to end, a thin vertical line in the \
         run's color marks each resume. Rates are taken between \
         consecutive progress snapshots of events.jsonl.</p>\n",
    );
    for run in runs {
        if run.timeline.is_none() {
            out += &format!(
                "<p class=\"note\">{}: no timeline (events.jsonl), so no charts over time; \
                 everything else comes from summary.json.{}</p>\n",
                escape(&run.label),
                run.timeline_note
                    .as_deref()
                    .map(|n| format!(" {}", escape(n)))
                    .unwrap_or_default()
            );
        } else if let Some(note) = &run.timeline_note {
            out += &format!(
                "<p class=\"note\">{}: {}</p>\n",
                escape(&run.label),
                escape(note)
            );
        }
    }
    if runs.iter().all(|r| r.timeline.is_none()) {
        return out;
    }
    out += "<div class=\"charts\">\n";
    let charts: [(&str, &str, Series); 3] = [
        ("Records per second", "records/s", |t| &t.records_per_s),
        ("Tokens per minute (in + out)", "tokens/min", |t| {
            &t.tokens_per_min
        }),
        ("Throttled attempts per minute", "throttles/min", |t| {
            &t.throttles_per_min
        }),
    ];
    for (title, y, series) in charts {
        out += &chart_or_note(title, charts::lines(title, y, &per_run(runs, series)));
        out += "\n";
    }
    // Limit and in flight share a chart: the limit solid, in flight in the next color.
    let mut lines = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        if let Some(t) = &run.timeline {
            lines.push(Line {
                label: format!("{} limit", run.label),
                color: 2 * i,
                points: &t.concurrency_limit,
                resumed_at: &t.resumed_at,
            });
            lines.push(Line {
                label: format!("{} in flight", run.label),
                color: 2 * i + 1,
                points: &t.in_flight,
                resumed_at: &[],
            });
        }
    }
    let title = "Concurrency limit and calls in flight";
    out += &chart_or_note(title, charts::lines(title, "calls", &lines));
    let mut lines = Vec::new();
    for run in runs {
        if let Some(t) = &run.timeline {
            for (lane, points) in &t.learned_tpm {
                lines.push(Line {
                    label: format!("{} · {lane}", run.label),
                    color: lines.len(),
                    points,
                    resumed_at: &t.resumed_at,
                });
            }
        }
    }
    let title = "Learned tokens per minute, by lane and model";
    out += &chart_or_note(title, charts::lines(title, "tokens/min", &lines));
    out + "</div>\n"
}

/// The latency histogram from the timelines and the summaries' percentiles.
fn latency(runs: &[RunPage]) -> String {
    let mut out = String::from("<h2 id=\"latency\">Latency</h2>\n");
    let with: Vec<&RunPage> = runs.iter().filter(|r| r.timeline.is_some()).collect();
    let labels: Vec<String> = with.iter().map(|r| r.label.clone()).collect();
    let calls: Vec<Vec<u64>> = with
        .iter()
        .filter_map(|r| r.timeline.as_ref().map(|t| t.latency_calls.clone()))
        .collect();
    match charts::latency_histogram(&labels, &calls) {
        Some(svg) => out += &format!("<div class=\"charts\">{svg}</div>\n"),
        None => {
            out += "<p class=\"note\">No latency histogram: no timeline ended with calls \
                    (run_ended's latency buckets).</p>\n"
        }
    }
    out += "<table><thead><tr><th>run</th><th>p50</th><th>p90</th><th>p99</th><th>max</th>\
            </tr></thead><tbody>\n";
    for run in runs {
        let l = &run.summary.latency_ms;
        out += &format!("<tr><td class=\"text\">{}</td>", escape(&run.label));
        for v in [l.p50, l.p90, l.p99, l.max] {
            out += &format!("<td>{} ms</td>", num(v));
        }
        out += "</tr>\n";
    }
    out + "</tbody></table>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_escaped_and_money_reads_as_dollars() {
        assert_eq!(
            escape("<b onclick='x'>\"&\""),
            "&lt;b onclick=&#39;x&#39;&gt;&quot;&amp;&quot;"
        );
        assert_eq!(money(0.003663), "$0.0037");
        assert_eq!(money(12_345.678), "$12,345.68");
    }

    #[test]
    fn a_run_without_a_timeline_says_so_and_draws_no_chart() {
        let summary = Summary {
            cost_usd: Some(1.0),
            finished_unix: 1_765_000_000,
            ..Summary::default()
        };
        let html = page(&[RunPage::new("old-run", summary)], "now");
        assert!(html.contains("old-run: no timeline (events.jsonl)"));
        assert!(!html.contains("<svg"));
        assert!(html.contains("<title>bedrock-batch report: old-run</title>"));
    }
}
