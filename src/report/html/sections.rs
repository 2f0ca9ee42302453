//! The page's tables below the charts: cost by model, tier, route and day with one column a
//! run; error kinds with example records; Batch Inference jobs with their phases and the time
//! each job spent in each status.

use std::collections::{BTreeMap, BTreeSet};

use super::{RunPage, escape, money, num};
use crate::report::progress::duration_text;
use crate::summary::Summary;

/// Records (when known) and cost (`None`: no price) of one row for one run.
type Share = (Option<u64>, Option<f64>);

/// Rows of one cost table, for one run.
type Shares = fn(&RunPage) -> BTreeMap<String, Share>;

/// A table with one row per key and one column per run.
fn side_by_side(
    title: &str,
    key: &str,
    runs: &[RunPage],
    shares: &[BTreeMap<String, Share>],
) -> String {
    let keys: BTreeSet<&String> = shares.iter().flat_map(|s| s.keys()).collect();
    let mut out = format!("<h3>{title}</h3><table><thead><tr><th>{key}</th>");
    for run in runs {
        out += &format!("<th>{}</th>", escape(&run.label));
    }
    out += "</tr></thead><tbody>\n";
    for k in keys {
        out += &format!("<tr><td class=\"text\">{}</td>", escape(k));
        for share in shares {
            let cell = match share.get(k) {
                None => "—".to_string(),
                Some((records, cost)) => {
                    let cost = cost.map_or("unknown (no price)".to_string(), money);
                    match records {
                        Some(n) => format!("{cost}<br><small>{} records</small>", num(*n)),
                        None => cost,
                    }
                }
            };
            out += &format!("<td>{cell}</td>");
        }
        out += "</tr>\n";
    }
    out + "</tbody></table>\n"
}

fn by_model(s: &Summary) -> BTreeMap<String, Share> {
    s.by_model
        .iter()
        .map(|(model, t)| (model.clone(), (Some(t.records), t.cost_usd)))
        .collect()
}

/// By service tier; a summary without `by_tier` went on demand in the default tier only.
fn by_tier(s: &Summary) -> BTreeMap<String, Share> {
    if s.by_tier.is_empty() {
        return [("default".to_string(), (Some(s.records.total), s.cost_usd))].into();
    }
    s.by_tier
        .iter()
        .map(|(tier, t)| (tier.clone(), (Some(t.records), t.cost_usd)))
        .collect()
}

/// By route: the pricing variants of every model's lines added up.
fn by_route(s: &Summary) -> BTreeMap<String, Share> {
    let mut routes: BTreeMap<String, Share> = BTreeMap::new();
    for totals in s.by_model.values() {
        for (variant, v) in &totals.cost_by_variant {
            let entry = routes
                .entry(variant.clone())
                .or_insert((Some(0), Some(0.0)));
            entry.0 = entry.0.map(|n| n + v.records);
            entry.1 = entry.1.zip(v.cost_usd).map(|(a, b)| a + b);
        }
    }
    routes
}

/// The cost section.
pub fn cost(runs: &[RunPage]) -> String {
    let mut out = String::from("<h2 id=\"cost\">Cost</h2>\n");
    let tables: [(&str, &str, Shares); 4] = [
        ("By model", "model", |r| by_model(&r.summary)),
        ("By service tier", "tier", |r| by_tier(&r.summary)),
        (
            "By route (pricing variant: on demand, cross-region, batch…)",
            "route",
            |r| by_route(&r.summary),
        ),
        (
            "By day (UTC, from the timeline's cumulative cost)",
            "day",
            |r| {
                r.cost_by_day
                    .iter()
                    .flatten()
                    .map(|(day, c)| (day.clone(), (None, Some(*c))))
                    .collect()
            },
        ),
    ];
    for (title, key, shares) in tables {
        let shares: Vec<_> = runs.iter().map(shares).collect();
        out += &side_by_side(title, key, runs, &shares);
    }
    out
}

/// The errors section: kinds with counts and a few example records, then retries by reason.
pub fn errors(runs: &[RunPage]) -> String {
    let mut out = String::from("<h2 id=\"errors\">Errors</h2>\n");
    for run in runs {
        let s = &run.summary;
        out += &format!("<h3>{}</h3>\n", escape(&run.label));
        if let Some(stop) = &s.aborted {
            out += &format!(
                "<p class=\"note\">Stopped early ({}): {} {}</p>\n",
                escape(&stop.kind),
                escape(&stop.message),
                escape(&stop.hint)
            );
        }
        if s.errors_by_kind.is_empty() {
            out += "<p>No failed records.</p>\n";
        } else {
            out += "<table><thead><tr><th>error kind</th><th>records</th>\
                    <th>examples (record number, id: message)</th></tr></thead><tbody>\n";
            for (kind, n) in &s.errors_by_kind {
                let examples: Vec<String> = run
                    .examples
                    .get(kind)
                    .into_iter()
                    .flatten()
                    .map(|e| {
                        format!(
                            "<li data-kind=\"{}\" data-id=\"{}\">{}<code>{}</code>: {}</li>",
                            escape(kind),
                            escape(&e.id),
                            e.record
                                .map_or(String::new(), |r| format!("record {} · ", num(r))),
                            escape(&e.id),
                            escape(&e.message)
                        )
                    })
                    .collect();
                out += &format!(
                    "<tr><td class=\"text\"><code>{}</code></td><td>{}</td><td class=\"text\"><ul>{}</ul></td></tr>\n",
                    escape(kind),
                    num(*n),
                    examples.concat()
                );
            }
            out += "</tbody></table>\n";
        }
        if !s.retries_by_reason.is_empty() {
            let reasons: Vec<String> = s
                .retries_by_reason
                .iter()
                .map(|(why, n)| format!("{} {}", escape(why), num(*n)))
                .collect();
            out += &format!("<p>Retries by reason: {}.</p>\n", reasons.join(", "));
        }
    }
    out
}

/// The Batch Inference section: each run's phases and jobs.
pub fn batch(runs: &[RunPage]) -> String {
    let mut out = String::from("<h2 id=\"batch\">Batch Inference jobs</h2>\n");
    let mut without = Vec::new();
    for run in runs {
        let Some(batch) = &run.summary.batch else {
            without.push(escape(&run.label));
            continue;
        };
        out += &format!(
            "<h3>{}</h3><p>Time spent: preparing input {}, uploading and creating jobs {}, \
             waiting for jobs {}, collecting output {}.</p>\n",
            escape(&run.label),
            duration_text(batch.prepare_s),
            duration_text(batch.submit_s),
            duration_text(batch.wait_s),
            duration_text(batch.collect_s)
        );
        out += "<table><thead><tr><th>part</th><th>model</th><th>job</th><th>status</th>\
                <th>records</th><th>ok</th><th>failed</th><th>time in each status</th></tr>\
                </thead><tbody>\n";
        for job in &batch.jobs {
            let seen = run.batch_spells.get(&job.part);
            let mut spells: Vec<String> = seen
                .into_iter()
                .flatten()
                .map(|s| match s.seconds {
                    Some(secs) => format!("{} {}", escape(&s.status), duration_text(secs)),
                    None => escape(&s.status),
                })
                .collect();
            // A job can end between two looks of the run: the timeline's last status is
            // then not the summary's.
            let last = seen.and_then(|s| s.last()).map(|s| s.status.as_str());
            if last.is_some_and(|last| last != job.status) {
                spells.push(format!("{} (by the run's end)", escape(&job.status)));
            }
            let spells = if spells.is_empty() {
                "— (no timeline)".to_string()
            } else {
                spells.join(" → ")
            };
            out += &format!(
                "<tr><td class=\"text\">{}</td><td class=\"text\">{}</td><td class=\"text\"><code>{}</code></td>\
                 <td class=\"text\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"text\">{}</td></tr>\n",
                escape(&job.part),
                escape(&job.model),
                escape(&job.job_arn),
                escape(&job.status),
                num(job.records),
                num(job.ok),
                num(job.failed),
                spells
            );
        }
        out += "</tbody></table>\n";
    }
    if !without.is_empty() {
        out += &format!(
            "<p class=\"muted\">No Batch Inference jobs in {} (on-demand runs).</p>\n",
            without.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::{ModelTotals, VariantTotals};

    #[test]
    fn routes_add_up_across_models_and_an_unknown_price_stays_unknown() {
        let mut s = Summary::default();
        let variant = |records, cost| VariantTotals {
            records,
            cost_usd: cost,
            ..VariantTotals::default()
        };
        let mut a = ModelTotals::default();
        a.cost_by_variant
            .insert("batch".into(), variant(3, Some(0.5)));
        a.cost_by_variant
            .insert("on_demand".into(), variant(1, Some(0.25)));
        let mut b = ModelTotals::default();
        b.cost_by_variant
            .insert("on_demand".into(), variant(2, None));
        s.by_model.insert("a".into(), a);
        s.by_model.insert("b".into(), b);
        let routes = by_route(&s);
        assert_eq!(routes["batch"], (Some(3), Some(0.5)));
        assert_eq!(routes["on_demand"], (Some(3), None));
    }

    #[test]
    fn a_job_that_ended_between_two_looks_shows_its_final_status() {
        use super::super::timeline::StatusSpell;
        use crate::vocab::{BatchJobReport, BatchReport};
        let summary = Summary {
            batch: Some(BatchReport {
                jobs: vec![BatchJobReport {
                    part: "part-00001".into(),
                    status: "Completed".into(),
                    ..BatchJobReport::default()
                }],
                ..BatchReport::default()
            }),
            ..Summary::default()
        };
        let mut run = RunPage::new("r", summary);
        let spell = |status: &str, seconds| StatusSpell {
            status: status.into(),
            seconds,
        };
        run.batch_spells.insert(
            "part-00001".into(),
            vec![spell("Submitted", Some(90.0)), spell("InProgress", None)],
        );
        let html = batch(&[run]);
        assert!(
            html.contains("Submitted 1m 30s → InProgress → Completed (by the run's end)"),
            "{html}"
        );
    }

    #[test]
    fn error_examples_are_escaped_and_name_their_record() {
        let mut s = Summary::default();
        s.errors_by_kind.insert("validation".into(), 4);
        let mut run = RunPage::new("r", s);
        run.examples.insert(
            "validation".into(),
            vec![super::super::ErrorExample {
                id: "t<1>".into(),
                record: Some(1234),
                message: "bad <script>".into(),
            }],
        );
        let html = errors(&[run]);
        assert!(html.contains("record 1,234 · <code>t&lt;1&gt;</code>: bad &lt;script&gt;"));
        assert!(!html.contains("<script>"));
    }
}
