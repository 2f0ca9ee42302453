//! The table at the top of the page: one column per run directory, one row per number an
//! operator looks at first. Each cell carries `data-run` (the column), `data-field` (the
//! row) and `data-value` (the number unformatted) so scripts and tests read it back.

use super::{RunPage, escape, money, num};
use crate::report::progress::duration_text;
use crate::summary::Summary;

/// What a cell shows, and the number behind it.
struct Cell {
    text: String,
    value: String,
}

fn count(n: u64) -> Cell {
    Cell {
        text: num(n),
        value: n.to_string(),
    }
}

fn plain(text: String, value: String) -> Cell {
    Cell { text, value }
}

/// How the run ended, and its exit code: `run_ended`'s when the timeline has one, else what
/// summary.json says.
pub fn status(run: &RunPage) -> (String, u8) {
    if let Some(end) = run.timeline.as_ref().and_then(|t| t.last_end.as_ref()) {
        return (end.outcome.replace('_', " "), end.exit_code);
    }
    let s = &run.summary;
    if let Some(stop) = &s.aborted {
        (format!("aborted ({})", stop.kind), crate::exit::FATAL)
    } else if s.budget.is_some() {
        ("stopped at --budget-usd".to_string(), crate::exit::BUDGET)
    } else if s.records.pending.is_some_and(|p| p > 0) {
        // Stopped before the end (Ctrl-C, a crash): rerunning resumes.
        ("incomplete".to_string(), crate::exit::INTERRUPTED)
    } else if s.records.failed > 0 {
        ("some failed".to_string(), crate::exit::SOME_FAILED)
    } else {
        ("completed".to_string(), crate::exit::OK)
    }
}

/// `2026-12-07 08:00:00 UTC`, or a dash for an unknown time.
fn utc(unix: u64) -> String {
    match chrono::DateTime::<chrono::Utc>::from_timestamp(unix as i64, 0) {
        Some(t) if unix > 0 => t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        _ => "—".to_string(),
    }
}

fn cost(s: &Summary) -> Cell {
    match (s.cost_usd, s.cost_partial_usd) {
        (Some(c), _) => plain(money(c), format!("{c}")),
        (None, Some(p)) => plain(
            format!("{} + unpriced ({})", money(p), s.unpriced_models.join(", ")),
            String::new(),
        ),
        _ => plain("unknown (no price)".to_string(), String::new()),
    }
}

type Field = (&'static str, &'static str, fn(&RunPage) -> Cell);

/// The rows: (data-field, heading, cell).
const FIELDS: &[Field] = &[
    ("status", "Status (exit code)", |r| {
        let (text, code) = status(r);
        plain(format!("{text} (exit {code})"), code.to_string())
    }),
    ("records.ok", "Records ok", |r| count(r.summary.records.ok)),
    ("records.failed", "Records failed", |r| {
        count(r.summary.records.failed)
    }),
    ("records.pending", "Records pending", |r| {
        match r.summary.records.pending {
            Some(p) => count(p),
            None => plain("—".to_string(), String::new()),
        }
    }),
    ("tokens.in", "Input tokens", |r| {
        count(r.summary.usage.input_tokens)
    }),
    ("tokens.out", "Output tokens", |r| {
        count(r.summary.usage.output_tokens)
    }),
    ("cost", "Cost (USD)", |r| cost(&r.summary)),
    ("elapsed", "Elapsed", |r| {
        let s = r.summary.elapsed_s;
        plain(duration_text(s), format!("{s}"))
    }),
    ("records_per_s", "Records per second", |r| {
        let v = r.summary.records_per_s;
        plain(format!("{v:.2}/s"), format!("{v}"))
    }),
    ("calls", "Calls", |r| count(r.summary.calls)),
    ("attempts", "Attempts (retries included)", |r| {
        count(r.summary.attempts)
    }),
    ("throttles", "Throttled attempts", |r| {
        count(r.summary.throttles)
    }),
    ("throttled_pct", "Throttled %", |r| {
        let s = &r.summary;
        let pct = if s.attempts == 0 {
            0.0
        } else {
            s.throttles as f64 * 100.0 / s.attempts as f64
        };
        plain(format!("{pct:.1} %"), format!("{pct}"))
    }),
    ("latency.p50", "Latency p50", |r| {
        let v = r.summary.latency_ms.p50;
        plain(format!("{} ms", num(v)), v.to_string())
    }),
    ("latency.p99", "Latency p99", |r| {
        let v = r.summary.latency_ms.p99;
        plain(format!("{} ms", num(v)), v.to_string())
    }),
    ("started", "Started", |r| {
        plain(
            utc(r.summary.started_unix),
            r.summary.started_unix.to_string(),
        )
    }),
    ("finished", "Finished (summary last written)", |r| {
        plain(
            utc(r.summary.finished_unix),
            r.summary.finished_unix.to_string(),
        )
    }),
];

/// The comparison table of `runs`.
pub fn table(runs: &[RunPage]) -> String {
    let mut out = String::from("<table class=\"compare\"><thead><tr><th></th>");
    for (i, run) in runs.iter().enumerate() {
        out += &format!(
            "<th data-run=\"{i}\"><span class=\"swatch\" style=\"background:{}\"></span>{}<br><small>{}</small></th>",
            super::charts::css_color(i),
            escape(&run.label),
            escape(&run.summary.model),
        );
    }
    out += "</tr></thead><tbody>\n";
    for (field, heading, cell) in FIELDS {
        out += &format!("<tr><th scope=\"row\">{heading}</th>");
        for (i, run) in runs.iter().enumerate() {
            let Cell { text, value } = cell(run);
            out += &format!(
                "<td data-run=\"{i}\" data-field=\"{field}\" data-value=\"{}\">{}</td>",
                escape(&value),
                escape(&text)
            );
        }
        out += "</tr>\n";
    }
    out + "</tbody></table>\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::StopReport;

    #[test]
    fn the_status_comes_from_the_summary_without_a_timeline() {
        let mut run = RunPage::new("a", Summary::default());
        assert_eq!(status(&run), ("completed".to_string(), 0));
        run.summary.records.failed = 2;
        assert_eq!(status(&run).1, 1);
        run.summary.aborted = Some(StopReport {
            kind: "access_denied".into(),
            ..StopReport::default()
        });
        assert_eq!(status(&run), ("aborted (access_denied)".to_string(), 3));
    }

    #[test]
    fn cells_carry_their_run_field_and_raw_value() {
        let mut summary = Summary::default();
        summary.records.ok = 12_345;
        summary.cost_usd = Some(0.0125);
        summary.model = "<model>".into();
        let html = table(&[RunPage::new("night & day", summary)]);
        assert!(html.contains(
            "<td data-run=\"0\" data-field=\"records.ok\" data-value=\"12345\">12,345</td>"
        ));
        assert!(html.contains("data-field=\"cost\" data-value=\"0.0125\">$0.0125</td>"));
        assert!(html.contains("night &amp; day"));
        assert!(html.contains("&lt;model&gt;"));
    }
}
