//! Seeded faults of model and knowledge-base requests (`--fail-rate` and the other rates),
//! and the `--deny-model` glob. Each draw hashes the seed, the request body and how many
//! times that body has been seen, so a run gives the same faults to the same requests
//! whatever order concurrent calls arrive in, and a retried request gets a fresh draw.

use xxhash_rust::xxh3::Xxh3;

/// Fault probabilities, each in `0.0..=1.0`, their sum at most 1.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultRates {
    /// 500 `InternalServerException` or 503 `ServiceUnavailableException`.
    pub fail: f64,
    /// A delay, then 408 `ModelTimeoutException`.
    pub timeout: f64,
    /// The connection is closed without a response.
    pub reset: f64,
    /// A 200 whose body is not valid JSON (or not a valid event stream).
    pub garbage: f64,
    /// 424 `ModelErrorException`: the model failed on this input.
    pub model_error: f64,
    /// A stream cut after its first deltas by a `throttlingException` frame.
    pub stream_throttle: f64,
    /// A forced tool call answered with input that breaks the tool's schema, or a
    /// structured-output answer whose JSON text breaks `outputConfig`'s schema.
    pub schema_violation: f64,
}

/// Why fault rates were refused; the message names the flag.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultRatesError {
    #[error("{flag} must be between 0 and 1, got {rate}")]
    OutOfRange { flag: &'static str, rate: f64 },
    #[error(
        "--fail-rate, --timeout-rate, --reset-rate, --garbage-rate and --model-error-rate add up to {sum}, more than 1"
    )]
    OverOne { sum: f64 },
}

impl FaultRates {
    /// Checks every rate is a probability and the exclusive ones sum to at most 1.
    pub fn validate(&self) -> Result<(), FaultRatesError> {
        for (flag, rate) in [
            ("--fail-rate", self.fail),
            ("--timeout-rate", self.timeout),
            ("--reset-rate", self.reset),
            ("--garbage-rate", self.garbage),
            ("--model-error-rate", self.model_error),
            ("--stream-throttle-rate", self.stream_throttle),
            ("--schema-violation-rate", self.schema_violation),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(FaultRatesError::OutOfRange { flag, rate });
            }
        }
        let sum = self.fail + self.timeout + self.reset + self.garbage + self.model_error;
        if sum > 1.0 + 1e-9 {
            return Err(FaultRatesError::OverOne { sum });
        }
        Ok(())
    }
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    InternalServer,
    ServiceUnavailable,
    Timeout,
    Reset,
    Garbage,
    ModelError,
}

/// A uniform number in `[0, 1)` for this (seed, body, occurrence, salt).
fn unit(seed: u64, body_hash: u64, occurrence: u32, salt: u8) -> f64 {
    let mut hasher = Xxh3::with_seed(seed);
    hasher.update(&body_hash.to_le_bytes());
    hasher.update(&occurrence.to_le_bytes());
    hasher.update(&[salt]);
    (hasher.digest() >> 11) as f64 / (1u64 << 53) as f64
}

/// Draws the fault for the `occurrence`-th arrival of the body hashed to `body_hash`.
pub fn draw(rates: &FaultRates, seed: u64, body_hash: u64, occurrence: u32) -> Fault {
    let u = unit(seed, body_hash, occurrence, 0);
    let mut edge = rates.reset;
    if u < edge {
        return Fault::Reset;
    }
    edge += rates.fail;
    if u < edge {
        // Split failures between the two 5xx kinds, by another bit of the same draw.
        return if unit(seed, body_hash, occurrence, 1) < 0.5 {
            Fault::InternalServer
        } else {
            Fault::ServiceUnavailable
        };
    }
    edge += rates.timeout;
    if u < edge {
        return Fault::Timeout;
    }
    edge += rates.garbage;
    if u < edge {
        return Fault::Garbage;
    }
    edge += rates.model_error;
    if u < edge {
        return Fault::ModelError;
    }
    Fault::None
}

/// Whether a stream answering this request is cut by a throttling frame.
pub fn stream_throttled(rates: &FaultRates, seed: u64, body_hash: u64, occurrence: u32) -> bool {
    rates.stream_throttle > 0.0 && unit(seed, body_hash, occurrence, 2) < rates.stream_throttle
}

/// Whether a forced tool answer (or structured-output answer) to this request breaks its
/// schema.
pub fn schema_violated(rates: &FaultRates, seed: u64, body_hash: u64, occurrence: u32) -> bool {
    rates.schema_violation > 0.0 && unit(seed, body_hash, occurrence, 3) < rates.schema_violation
}

/// `*`-wildcard match of a `--deny-model` pattern.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    if !text.ends_with(last) {
        return false;
    }
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_respected_and_reproducible() {
        let rates = FaultRates {
            fail: 0.2,
            timeout: 0.1,
            reset: 0.1,
            garbage: 0.1,
            model_error: 0.05,
            stream_throttle: 0.0,
            schema_violation: 0.0,
        };
        let draws: Vec<Fault> = (0..10_000u64).map(|i| draw(&rates, 7, i, 0)).collect();
        let again: Vec<Fault> = (0..10_000u64).map(|i| draw(&rates, 7, i, 0)).collect();
        assert_eq!(draws, again);
        let share = |f: &dyn Fn(&Fault) -> bool| draws.iter().filter(|d| f(d)).count() as f64 / 1e4;
        let fail = share(&|d| matches!(d, Fault::InternalServer | Fault::ServiceUnavailable));
        assert!((fail - 0.2).abs() < 0.02, "fail {fail}");
        assert!((share(&|d| *d == Fault::Timeout) - 0.1).abs() < 0.02);
        assert!((share(&|d| *d == Fault::Reset) - 0.1).abs() < 0.02);
        assert!((share(&|d| *d == Fault::Garbage) - 0.1).abs() < 0.02);
        assert!((share(&|d| *d == Fault::ModelError) - 0.05).abs() < 0.015);
        assert!(share(&|d| *d == Fault::InternalServer) > 0.05);
        assert!(share(&|d| *d == Fault::ServiceUnavailable) > 0.05);
        // A retry of the same body is drawn afresh.
        let retried = (0..1_000u64)
            .filter(|i| draw(&rates, 7, *i, 0) != draw(&rates, 7, *i, 1))
            .count();
        assert!(retried > 300);
    }

    #[test]
    fn no_rates_no_faults() {
        let rates = FaultRates::default();
        assert!((0..1_000u64).all(|i| draw(&rates, 1, i, 0) == Fault::None));
        assert!((0..1_000u64).all(|i| !stream_throttled(&rates, 1, i, 0)));
    }

    #[test]
    fn validation() {
        let mut rates = FaultRates {
            fail: 0.6,
            timeout: 0.6,
            ..FaultRates::default()
        };
        assert!(
            rates
                .validate()
                .unwrap_err()
                .to_string()
                .contains("more than 1")
        );
        rates.timeout = -0.1;
        assert!(
            rates
                .validate()
                .unwrap_err()
                .to_string()
                .contains("--timeout-rate")
        );
        rates.timeout = 0.4;
        assert!(rates.validate().is_ok());
    }

    #[test]
    fn globs() {
        assert!(glob_match("anthropic.*", "anthropic.claude-3-haiku"));
        assert!(glob_match("*claude*", "us.anthropic.claude-3-haiku"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("meta.llama3", "meta.llama3"));
        assert!(!glob_match("meta.llama3", "meta.llama3-1"));
        assert!(!glob_match("anthropic.*", "meta.llama3"));
        assert!(!glob_match("a*b*c", "acb"));
        assert!(glob_match("a*b*c", "a-b-c"));
        assert!(!glob_match("ab*ba", "aba"));
    }
}
