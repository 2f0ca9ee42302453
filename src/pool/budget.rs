//! `--budget-usd`: the spend this invocation may reach. Before a call is sent its worst
//! case (estimated input plus its output ceiling, at the model's price) is reserved; when it
//! ends the reservation is replaced by what it really cost. A call that does not fit waits
//! for calls in flight to settle; when even with nothing in flight its worst case would
//! pass the budget, it is not sent and the run stops there, resumable.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::prices::PriceTable;
use crate::vocab::Usage;

#[derive(Clone)]
pub struct Budget {
    limit: f64,
    prices: Arc<PriceTable>,
    state: Arc<Mutex<Spend>>,
    settled: Arc<Notify>,
}

#[derive(Default)]
struct Spend {
    spent: f64,
    reserved: f64,
}

/// Whether a call fits the budget now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HoldDecision {
    Held(Hold),
    /// Not until calls in flight settle.
    Wait,
    /// Not even with nothing in flight.
    Never,
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
            settled: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Spend> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves the worst case of a call on `model` if it fits now.
    pub fn try_hold(&self, model: &str, worst_case: &Usage) -> HoldDecision {
        let Some(cost) = self.prices.cost(model, worst_case) else {
            // No price: the spend cannot be bounded.
            return HoldDecision::Never;
        };
        let mut spend = self.lock();
        if spend.spent + spend.reserved + cost <= self.limit {
            spend.reserved += cost;
            HoldDecision::Held(Hold(cost))
        } else if spend.reserved <= 0.0 {
            HoldDecision::Never
        } else {
            HoldDecision::Wait
        }
    }

    /// Reserves the worst case of a call on `model`, waiting for calls in flight to settle
    /// when it does not fit yet; `None` when it cannot fit (or the model has no price, so the
    /// spend cannot be bounded).
    pub async fn hold(&self, model: &str, worst_case: &Usage) -> Option<Hold> {
        loop {
            let settled = self.settled.notified();
            match self.try_hold(model, worst_case) {
                HoldDecision::Held(hold) => return Some(hold),
                HoldDecision::Never => return None,
                HoldDecision::Wait => settled.await,
            }
        }
    }

    /// Replaces a hold by what the call cost (`used` on `model`).
    pub fn settle(&self, hold: Hold, model: &str, used: &Usage) {
        let cost = self.prices.cost(model, used).unwrap_or(hold.0);
        let mut spend = self.lock();
        spend.reserved = (spend.reserved - hold.0).max(0.0);
        if spend.reserved < 1e-12 {
            spend.reserved = 0.0;
        }
        spend.spent += cost;
        drop(spend);
        self.settled.notify_waiters();
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

    #[tokio::test]
    async fn holds_the_worst_case_and_settles_the_real_cost() {
        let budget = Budget::new(0.01, Arc::new(PriceTable::built_in()));
        let model = "anthropic.claude-3-haiku-20240307-v1:0";
        // 1,000 in + 4,000 out at 0.25 / 1.25 per million: $0.00525.
        let worst = Usage {
            input_tokens: 1_000,
            output_tokens: 4_000,
            ..Usage::default()
        };
        let first = budget.hold(model, &worst).await.unwrap();
        // Two worst cases pass $0.01: the second waits until the first settles.
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.hold(model, &worst).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        // It really used 1,000 + 200: $0.0005.
        let used = Usage {
            input_tokens: 1_000,
            output_tokens: 200,
            ..Usage::default()
        };
        budget.settle(first, model, &used);
        assert!((budget.spent() - 0.0005).abs() < 1e-12);
        let second = waiting.await.unwrap().unwrap();
        budget.settle(second, model, &worst);
        // $0.00575 spent: another worst case can never fit, even with nothing in flight.
        assert!(budget.hold(model, &worst).await.is_none());
        assert!(budget.hold("acme.unpriced", &worst).await.is_none());
    }
}
