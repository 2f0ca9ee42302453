//! `--budget-usd`: the spend this invocation may reach. Before a call is sent its worst
//! case (estimated input plus its output ceiling, at the model's price) is reserved; when it
//! ends the reservation is replaced by what it really cost. A call whose worst case would
//! pass the budget is not sent, and the run stops there, resumable.

use std::sync::{Arc, Mutex};

use crate::bedrock::Usage;
use crate::report::prices::PriceTable;

#[derive(Clone)]
pub struct Budget {
    limit: f64,
    prices: Arc<PriceTable>,
    state: Arc<Mutex<Spend>>,
}

#[derive(Default)]
struct Spend {
    spent: f64,
    reserved: f64,
}

/// A call's share of the budget, to settle when it ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hold(f64);

impl Budget {
    pub fn new(limit: f64, prices: Arc<PriceTable>) -> Budget {
        Budget {
            limit,
            prices,
            state: Arc::new(Mutex::new(Spend::default())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Spend> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves the worst case of a call on `model`; `None` when it would pass the budget
    /// (or the model has no price, so the spend cannot be bounded).
    pub fn hold(&self, model: &str, worst_case: &Usage) -> Option<Hold> {
        let cost = self.prices.cost(model, worst_case)?;
        let mut spend = self.lock();
        if spend.spent + spend.reserved + cost > self.limit {
            return None;
        }
        spend.reserved += cost;
        Some(Hold(cost))
    }

    /// Replaces a hold by what the call cost (`used` on `model`).
    pub fn settle(&self, hold: Hold, model: &str, used: &Usage) {
        let cost = self.prices.cost(model, used).unwrap_or(hold.0);
        let mut spend = self.lock();
        spend.reserved = (spend.reserved - hold.0).max(0.0);
        spend.spent += cost;
    }

    pub fn spent(&self) -> f64 {
        self.lock().spent
    }

    pub fn limit(&self) -> f64 {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_worst_case_and_settles_the_real_cost() {
        let budget = Budget::new(0.01, Arc::new(PriceTable::built_in()));
        let model = "anthropic.claude-3-haiku-20240307-v1:0";
        // 1,000 in + 4,000 out at 0.25 / 1.25 per million: $0.00525.
        let worst = Usage {
            input_tokens: 1_000,
            output_tokens: 4_000,
            ..Usage::default()
        };
        let first = budget.hold(model, &worst).unwrap();
        assert!(
            budget.hold(model, &worst).is_none(),
            "two worst cases pass $0.01"
        );
        // It really used 1,000 + 200: $0.0005.
        budget.settle(
            first,
            model,
            &Usage {
                input_tokens: 1_000,
                output_tokens: 200,
                ..Usage::default()
            },
        );
        assert!((budget.spent() - 0.0005).abs() < 1e-12);
        assert!(budget.hold(model, &worst).is_some());
        assert!(budget.hold("acme.unpriced", &worst).is_none());
    }
}
