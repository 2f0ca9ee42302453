//! The human summary a run prints on stderr at its end (and `merge` after joining shards):
//! pure formatting of a [`Summary`] (`render(&Summary) -> String`), apart from the I/O that
//! writes it, so it can be tested as text. Tokens and costs read the same wherever they
//! are shown ([`usage_text`], [`cost_text`]).

use std::collections::BTreeMap;

use crate::summary::{Summary, plural, thousands};
use crate::vocab::Usage;

/// `1,234 in, 567 out` (and the cache tokens when there are any).
pub fn usage_text(u: &Usage) -> String {
    let mut text = format!(
        "{} in, {} out",
        thousands(u.input_tokens),
        thousands(u.output_tokens)
    );
    if u.cache_read_input_tokens + u.cache_write_input_tokens > 0 {
        text += &format!(
            ", {} cache read, {} cache write",
            thousands(u.cache_read_input_tokens),
            thousands(u.cache_write_input_tokens)
        );
    }
    text
}

/// `$1.2345`, or what is known when some prices are missing.
pub fn cost_text(summary: &Summary) -> String {
    // With tiers in play, each tier's part: "$0.0123 (flex $0.0100, default $0.0023)".
    let tiers = || {
        let parts: Vec<String> = summary
            .by_tier
            .iter()
            .map(|(tier, lines)| match lines.cost_usd {
                Some(cost) => format!("{tier} ${cost:.4}"),
                None => format!("{tier} unknown"),
            })
            .collect();
        match parts.as_slice() {
            [_, _, ..] => format!(" ({})", parts.join(", ")),
            // One tier: said once, without repeating the amount.
            [one] => format!(" ({})", one.split(' ').next().unwrap_or_default()),
            [] => String::new(),
        }
    };
    match (summary.cost_usd, summary.cost_partial_usd) {
        (Some(cost), _) => format!("${cost:.4}{}", tiers()),
        (None, Some(partial)) if partial > 0.0 => format!(
            "partial: ${partial:.4} for priced models; no price for {} (give one with --prices FILE)",
            summary.unpriced_models.join(", ")
        ),
        _ => format!(
            "unknown: no price for {} (give one with --prices FILE)",
            if summary.unpriced_models.is_empty() {
                "this model".to_string()
            } else {
                summary.unpriced_models.join(", ")
            }
        ),
    }
}

/// The human summary printed on stderr at the end of a run.
pub fn render(summary: &Summary) -> String {
    let r = &summary.records;
    let mut out = match r.pending {
        // A stopped run: what is done of the whole, and what is left.
        Some(left) if left > 0 => format!(
            "{} of {} records done ({} left: rerun to resume): {} ok, {} failed\n",
            thousands(r.total),
            thousands(r.total + left),
            thousands(left),
            thousands(r.ok),
            thousands(r.failed)
        ),
        _ => format!(
            "{} {}: {} ok, {} failed\n",
            thousands(r.total),
            plural(r.total, "record", "records"),
            thousands(r.ok),
            thousands(r.failed)
        ),
    };
    if summary.usage_reported == Some(false) {
        out += "tokens: not reported by Knowledge Bases\n";
        out += "cost: unknown (no token usage to price)\n";
    } else {
        out += &format!("tokens: {}\n", usage_text(&summary.usage));
        out += &format!("cost: {}\n", cost_text(summary));
    }
    if let Some(r) = &summary.retrieval
        && let (Some(hit_rate), Some(mrr)) = (r.hit_rate, r.mrr)
    {
        out += &format!(
            "retrieval: hit rate {:.1}%, MRR {mrr:.3} at k={} ({} records scored)\n",
            hit_rate * 100.0,
            r.k,
            thousands(r.scored)
        );
    }
    if let Some(batch) = &summary.batch {
        let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
        for job in &batch.jobs {
            *by_status.entry(job.status.as_str()).or_default() += 1;
        }
        let statuses: Vec<String> = by_status
            .iter()
            .map(|(status, n)| format!("{n} {status}"))
            .collect();
        out += &format!(
            "batch {}: {} ({}); at batch prices; prepare {:.1} s, submit {:.1} s, wait {:.1} s, collect {:.1} s\n",
            plural(batch.jobs.len() as u64, "job", "jobs"),
            batch.jobs.len(),
            statuses.join(", "),
            batch.prepare_s,
            batch.submit_s,
            batch.wait_s,
            batch.collect_s
        );
    }
    out += &format!(
        "calls: {} ({} retries, {} throttled), latency p50 {} ms, p99 {} ms\n",
        thousands(summary.calls),
        thousands(summary.retries),
        thousands(summary.throttles),
        summary.latency_ms.p50,
        summary.latency_ms.p99
    );
    if let Some(ttft) = &summary.ttft_ms {
        out += &format!(
            "time to first token: p50 {} ms, p99 {} ms\n",
            ttft.p50, ttft.p99
        );
    }
    // A batch run has jobs, not calls in flight; a merged run has no one limiter.
    if summary.batch.is_none() && summary.limiter.peak > 0 {
        out += &format!(
            "concurrency: {} at the end, {} at the peak ({} {})\n",
            summary.limiter.final_limit,
            summary.limiter.peak,
            summary.limiter.decreases,
            plural(summary.limiter.decreases, "cut", "cuts")
        );
    }
    if summary.warnings > 0 {
        out += &format!(
            "warnings: {} {} made before sending (each in its record's line, as `warnings`)\n",
            thousands(summary.warnings),
            plural(summary.warnings, "correction", "corrections"),
        );
    }
    if !summary.errors_by_kind.is_empty() {
        let kinds: Vec<String> = summary
            .errors_by_kind
            .iter()
            .map(|(kind, n)| format!("{kind} {}", thousands(*n)))
            .collect();
        out += &format!("errors: {}\n", kinds.join(", "));
    }
    out += &format!(
        "elapsed: {:.1} s, {:.1} records/s\n",
        summary.elapsed_s, summary.records_per_s
    );
    if let Some(budget) = &summary.budget {
        out += &format!(
            "stopped at the budget: spent ${:.4} of --budget-usd {:.4}{}; rerun to continue (the budget applies to each invocation)\n",
            budget.spent_usd,
            budget.limit_usd,
            match summary.records.pending {
                Some(n) => format!(", {} records not sent", thousands(n)),
                None => String::new(),
            }
        );
    }
    if let Some(aborted) = &summary.aborted {
        let stopped = format!(
            "stopped early: {} for {}: {}\n{}{}\n",
            aborted.kind,
            aborted.model,
            aborted.message,
            match summary.records.pending {
                Some(n) => format!("{} records were not sent. ", thousands(n)),
                None => String::new(),
            },
            aborted.hint
        );
        // Nothing done: the reason is the news, not a line of zeros before it.
        if summary.records.total == 0 {
            return stopped + &out;
        }
        out += &stopped;
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::prices::PriceTable;
    use crate::summary::{RecordCounts, Totals, apply_prices};
    use crate::vocab::ErrorKind;

    #[test]
    fn totals_add_up_and_render() {
        let mut totals = Totals::new("job.jsonl", "m", "converse");
        let usage = Usage {
            input_tokens: 10,
            output_tokens: 5,
            ..Usage::default()
        };
        totals.record("m", &usage, None);
        totals.record("m", &Usage::default(), Some("validation"));
        totals.call(
            "m",
            3,
            &[ErrorKind::Throttling, ErrorKind::InternalServer],
            Duration::from_millis(40),
        );
        totals.call("m", 1, &[], Duration::from_millis(20));
        let s = totals.snapshot(Duration::from_secs(2));
        assert_eq!(
            s.records,
            RecordCounts {
                total: 2,
                ok: 1,
                failed: 1,
                pending: None
            }
        );
        assert_eq!(s.usage.input_tokens, 10);
        assert_eq!(s.by_model["m"].requests, 2);
        assert_eq!(s.retries, 2);
        assert_eq!(s.throttles, 1);
        assert_eq!(s.attempts, 4);
        assert_eq!(s.errors_by_kind["validation"], 1);
        assert_eq!(s.latency_ms.max, 40);
        assert_eq!(s.records_per_s, 1.0);
        let text = render(&s);
        assert!(text.starts_with("2 records: 1 ok, 1 failed\n"), "{text}");
        assert!(text.contains("cost: unknown"));
        let mut priced = s.clone();
        apply_prices(&mut priced, &PriceTable::built_in());
        assert_eq!(priced.cost_usd, None, "model m has no price");
        assert_eq!(priced.unpriced_models, vec!["m"]);
        assert!(text.contains("errors: validation 1"));
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12), "12");
    }
}
