//! Saying when the output ceiling is what holds a run back. Bedrock reserves a call's input
//! plus its `maxTokens` from the tokens-per-minute quota (4,096 when a Converse call sets
//! none) and gives the unused part back only when the call ends. On a tight quota with short
//! answers most of the bucket is then held for tokens never written, and the pace the pacer
//! learns is held down by them. [`Reservations`] keeps, per model, what answered calls
//! reserved and used and whether the token quota held calls back; [`Reservations::advice`]
//! turns that into a `--max-tokens` that fits every answer seen, and how many times as many
//! calls the same quota would then hold; [`Told`] sees that a run says so once per model.

use std::collections::HashSet;

use crate::vocab::MaxTokensAdvice;

/// Fewer answers than this say too little of the answers to come.
const MIN_CALLS: u64 = 20;
/// Advice is given when the suggested ceiling admits at least this many times as many
/// calls: the answers leave at least a third of each reservation unused.
const MIN_GAIN: f64 = 1.5;
/// The suggestion leaves this much room above the largest answer seen...
const HEADROOM: f64 = 1.25;
/// ...rounded up to a multiple of 50 tokens, or of 100 from 1,000 on.
const ROUND_SMALL: u64 = 50;
const ROUND_LARGE: u64 = 100;

/// What one model's answered calls reserved and used, on one lane.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reservations {
    /// Answered calls that reserved output.
    calls: u64,
    /// Their input tokens (cache reads and writes included), and output tokens.
    input: u64,
    output: u64,
    /// The largest output ceiling a call reserved.
    ceiling: u64,
    largest_output: u64,
    /// The token quota held calls back: a throttle for tokens, or the pacer waited for it.
    token_bound: bool,
}

impl Reservations {
    /// A call that reserved `ceiling` output tokens was answered with `input` and `output`
    /// tokens. Calls that reserve no output (embeddings, retrievals) are not counted.
    pub fn answered(&mut self, input: u64, output: u64, ceiling: u64) {
        if ceiling == 0 {
            return;
        }
        self.calls += 1;
        self.input += input;
        self.output += output;
        self.ceiling = self.ceiling.max(ceiling);
        self.largest_output = self.largest_output.max(output);
    }

    /// The token quota held a call back (a throttle for tokens, or a wait for them).
    pub fn held_back(&mut self) {
        self.token_bound = true;
    }

    /// Adds another lane's calls of the same model.
    pub fn merge(&mut self, other: &Reservations) {
        self.calls += other.calls;
        self.input += other.input;
        self.output += other.output;
        self.ceiling = self.ceiling.max(other.ceiling);
        self.largest_output = self.largest_output.max(other.largest_output);
        self.token_bound |= other.token_bound;
    }

    /// A smaller `--max-tokens`, when the token quota held calls back, enough answers were
    /// seen, and a ceiling fitting them would admit at least [`MIN_GAIN`] times as many
    /// calls into the same quota.
    pub fn advice(&self) -> Option<MaxTokensAdvice> {
        if !self.token_bound || self.calls < MIN_CALLS || self.ceiling == 0 {
            return None;
        }
        let suggested = suggest(self.largest_output);
        if suggested >= self.ceiling {
            return None;
        }
        let mean_input = self.input as f64 / self.calls as f64;
        let gain = admits_times(mean_input, self.ceiling, suggested);
        (gain >= MIN_GAIN).then(|| MaxTokensAdvice {
            reserved_output: self.ceiling,
            largest_output: self.largest_output,
            mean_input: (mean_input * 10.0).round() / 10.0,
            suggested_max_tokens: suggested,
            admits_times: (gain * 10.0).round() / 10.0,
            calls: self.calls,
        })
    }
}

/// A ceiling above every answer seen: [`HEADROOM`] over the largest, rounded up.
fn suggest(largest_output: u64) -> u64 {
    let wanted = (largest_output as f64 * HEADROOM).ceil() as u64;
    let step = if wanted < 1_000 {
        ROUND_SMALL
    } else {
        ROUND_LARGE
    };
    wanted.div_ceil(step).max(1) * step
}

/// How many times as many calls a quota holds at once when each reserves `mean_input` plus
/// `suggested` instead of plus `ceiling`.
fn admits_times(mean_input: f64, ceiling: u64, suggested: u64) -> f64 {
    (mean_input + ceiling as f64) / (mean_input + suggested as f64)
}

/// The warning line for `model`.
pub fn warning(model: &str, advice: &MaxTokensAdvice) -> String {
    format!(
        "max_tokens is the bottleneck for {model}: each call reserves {} output tokens, answers use {} at most; --max-tokens {} would admit about {:.1}x as many calls into the same quota",
        advice.reserved_output,
        advice.largest_output,
        advice.suggested_max_tokens,
        advice.admits_times,
    )
}

/// The models a run has advised on: each is told once.
#[derive(Debug, Default)]
pub struct Told(HashSet<String>);

impl Told {
    /// Whether `model` was told already (checked before working out its advice).
    pub fn already(&self, model: &str) -> bool {
        self.0.contains(model)
    }

    /// The warning for `model` the first time; `None` ever after.
    pub fn first(&mut self, model: &str, advice: &MaxTokensAdvice) -> Option<String> {
        self.0
            .insert(model.to_string())
            .then(|| warning(model, advice))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

    /// `calls` answers of `input` in and `output` out against `ceiling`, held back or not.
    fn seen(calls: u64, input: u64, output: u64, ceiling: u64, held: bool) -> Reservations {
        let mut seen = Reservations::default();
        for _ in 0..calls {
            seen.answered(input, output, ceiling);
        }
        if held {
            seen.held_back();
        }
        seen
    }

    #[test]
    fn the_suggestion_clears_the_largest_answer_and_is_round() {
        assert_eq!(suggest(0), 50);
        assert_eq!(suggest(33), 50);
        assert_eq!(suggest(40), 50);
        assert_eq!(suggest(41), 100);
        assert_eq!(suggest(120), 150);
        assert_eq!(suggest(121), 200);
        assert_eq!(suggest(799), 1_000);
        assert_eq!(suggest(800), 1_000);
        assert_eq!(suggest(801), 1_100);
        assert_eq!(suggest(3_000), 3_800);
        for largest in 0..5_000 {
            let s = suggest(largest);
            assert!(s as f64 >= largest as f64 * HEADROOM, "{largest} -> {s}");
            assert!(s.is_multiple_of(ROUND_SMALL), "{largest} -> {s}");
        }
    }

    #[test]
    fn the_factor_is_the_reservations_ratio() {
        assert_eq!(admits_times(0.0, 4_096, 512), 8.0);
        let gain = admits_times(45.0, 4_096, 50);
        assert!((gain - 4_141.0 / 95.0).abs() < 1e-9, "{gain}");
    }

    #[test]
    fn short_answers_on_a_bound_quota_get_advice() {
        let advice = seen(30, 45, 33, 4_096, true).advice().unwrap();
        assert_eq!(
            advice,
            MaxTokensAdvice {
                reserved_output: 4_096,
                largest_output: 33,
                mean_input: 45.0,
                suggested_max_tokens: 50,
                admits_times: 43.6,
                calls: 30,
            }
        );
        assert_eq!(
            warning(MODEL, &advice),
            "max_tokens is the bottleneck for anthropic.claude-3-haiku-20240307-v1:0: each call reserves 4096 output tokens, answers use 33 at most; --max-tokens 50 would admit about 43.6x as many calls into the same quota"
        );
    }

    #[test]
    fn no_advice_without_a_bound_quota_enough_answers_or_a_gain_worth_it() {
        // The token quota never held a call back: the ceiling costs nothing.
        assert_eq!(seen(30, 45, 33, 4_096, false).advice(), None);
        // Too few answers to go by.
        assert_eq!(seen(19, 45, 33, 4_096, true).advice(), None);
        assert!(seen(20, 45, 33, 4_096, true).advice().is_some());
        // The ceiling fits the answers: 64 reserved, 50 suggested, 1.15x.
        assert_eq!(seen(30, 45, 33, 64, true).advice(), None);
        // The suggestion would be no smaller than the ceiling.
        assert_eq!(seen(30, 0, 100, 150, true).advice(), None);
        // Long inputs dwarf the ceiling: 8,000 + 4,096 against 8,000 + 150 is 1.48x.
        assert_eq!(seen(30, 8_000, 120, 4_096, true).advice(), None);
        // Long answers: 3,000 suggested against 4,096 is 1.37x.
        assert_eq!(seen(30, 0, 2_400, 4_096, true).advice(), None);
        let advice = seen(30, 1_000, 1_200, 4_096, true).advice().unwrap();
        assert_eq!(advice.suggested_max_tokens, 1_500);
        assert_eq!(advice.admits_times, 2.0);
        // Calls that reserve no output (embeddings) are not counted.
        assert_eq!(seen(30, 45, 0, 0, true).advice(), None);
    }

    #[test]
    fn the_largest_answer_and_ceiling_of_any_lane_count() {
        let mut all = seen(10, 40, 30, 4_096, false);
        all.merge(&seen(10, 60, 90, 4_096, true));
        let advice = all.advice().unwrap();
        assert_eq!(advice.calls, 20);
        assert_eq!(advice.mean_input, 50.0);
        assert_eq!(advice.largest_output, 90);
        assert_eq!(advice.suggested_max_tokens, 150);
    }

    #[test]
    fn the_pacer_counts_answers_and_what_held_them_back() {
        use super::super::pacer::{Demand, Pacer, Shortage};
        use tokio::time::Instant;

        let demand = Demand {
            estimated_input: 45,
            output_ceiling: 4_096,
        };
        let t0 = Instant::now();
        // A quota of 60,000 a minute: 30 calls taken and settled one after the other
        // never wait.
        let pacer = Pacer::new(Some(60_000), None);
        for _ in 0..30 {
            assert!(pacer.wait(MODEL, demand, t0).is_zero());
            let reservation = pacer.take(MODEL, demand, t0);
            pacer.settle(reservation, demand, Some((45, 78)), t0);
        }
        let seen = pacer.reservations()[MODEL];
        assert_eq!((seen.calls, seen.input, seen.output), (30, 1_350, 990));
        assert_eq!((seen.ceiling, seen.largest_output), (4_096, 33));
        assert_eq!(seen.advice(), None, "the quota held nothing back");
        // Unanswered calls count for nothing.
        let reservation = pacer.take(MODEL, demand, t0);
        pacer.settle(reservation, demand, None, t0);
        assert_eq!(pacer.reservations()[MODEL].calls, 30);
        // A wait for tokens holds calls back...
        let many = Demand {
            estimated_input: 100_000,
            output_ceiling: 4_096,
        };
        assert!(!pacer.wait(MODEL, many, t0).is_zero());
        assert!(pacer.reservations()[MODEL].advice().is_some());
        // ...and so does a throttle for tokens, not one for requests.
        let pacer = Pacer::new(None, None);
        for _ in 0..30 {
            let reservation = pacer.take(MODEL, demand, t0);
            pacer.settle(reservation, demand, Some((45, 78)), t0);
        }
        let reservation = pacer.take(MODEL, demand, t0);
        pacer.throttled(reservation, Shortage::Requests, t0);
        assert_eq!(pacer.reservations()[MODEL].advice(), None);
        let reservation = pacer.take(MODEL, demand, t0);
        pacer.throttled(reservation, Shortage::Tokens, t0);
        assert!(pacer.reservations()[MODEL].advice().is_some());
    }

    #[test]
    fn each_model_is_told_once() {
        let advice = seen(30, 45, 33, 4_096, true).advice().unwrap();
        let mut told = Told::default();
        assert!(!told.already(MODEL));
        assert!(told.first(MODEL, &advice).is_some());
        assert!(told.already(MODEL));
        assert_eq!(told.first(MODEL, &advice), None);
        assert!(told.first("amazon.nova-lite-v1:0", &advice).is_some());
    }
}
