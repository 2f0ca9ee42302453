//! Charging one request: the [`Route`] it was sent by (on demand in a tier, or batch)
//! picks the rates of the entry its model id was [`Resolved`] to, the long-context tier
//! applies when the request's own input passes its threshold, and the [`Charge`] names its
//! pricing variant (`on_demand+regional`, `flex`, `batch`...), or [`UNPRICED`] with no
//! price: never a silent 0.

use super::rates::Price;
use crate::rules::model_id::ModelId;
use crate::vocab::{ServiceTier, Usage};

/// The variant of a usage that could not be priced.
pub const UNPRICED: &str = "unpriced";

/// How a request is sent, which decides its price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// On demand in the default tier.
    OnDemand,
    /// On demand in the priority service tier.
    Priority,
    /// On demand in the flex service tier.
    Flex,
    /// Bedrock Batch Inference: the model's batch prices (with its regional premium).
    Batch,
}

impl Route {
    /// The on-demand route of calls served in `tier` (`None`: no tier reported, so default).
    pub fn on_demand(tier: Option<ServiceTier>) -> Route {
        match tier.unwrap_or_default() {
            ServiceTier::Default => Route::OnDemand,
            ServiceTier::Priority => Route::Priority,
            ServiceTier::Flex => Route::Flex,
        }
    }

    /// The head of the route's variant names, off the default route.
    fn name(self) -> Option<&'static str> {
        match self {
            Route::OnDemand => None,
            Route::Priority => Some("priority"),
            Route::Flex => Some("flex"),
            Route::Batch => Some("batch"),
        }
    }

    /// The tier (or `batch`) a variant name was charged under: `on_demand...` and
    /// `unpriced` are the default tier; `None` for lines no route priced (usage not
    /// reported, lines of runs before variants were kept).
    pub fn tier_of_variant(variant: &str) -> Option<&'static str> {
        match variant.split('+').next()? {
            "on_demand" | UNPRICED => Some("default"),
            "priority" => Some("priority"),
            "flex" => Some("flex"),
            "batch" => Some("batch"),
            _ => None,
        }
    }

    /// The route of a result line: `batch` by its `via`, else by its `service_tier`.
    pub fn of_line(via: Option<&str>, service_tier: Option<&str>) -> Route {
        match via {
            Some("batch") => Route::Batch,
            _ => Route::on_demand(service_tier.and_then(ServiceTier::parse)),
        }
    }
}

/// What one request (or result line) cost and under which pricing variant.
#[derive(Debug, Clone, PartialEq)]
pub struct Charge {
    /// [`UNPRICED`] when `usd` is `None`.
    pub variant: String,
    pub usd: Option<f64>,
}

impl Charge {
    /// No price for a request sent by `route`: `unpriced`, or `flex+unpriced` and the like
    /// off the default route, so the tier of every line still shows.
    pub(super) fn unpriced(route: Route) -> Charge {
        let variant = match route.name() {
            None => UNPRICED.to_string(),
            Some(head) => format!("{head}+{UNPRICED}"),
        };
        Charge { variant, usd: None }
    }
}

/// A model id resolved to its entry.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'t, 'i> {
    /// The entry's key as written (`anthropic.claude-sonnet-4-5`).
    pub entry: &'t str,
    pub price: &'t Price,
    pub id: ModelId<'i>,
}

impl Resolved<'_, '_> {
    /// What `usage`, one request's, costs sent by `route`.
    pub fn charge(&self, usage: &Usage, route: Route) -> Charge {
        let (rates, variant) = match route {
            // Batch prices carry the regional premium too (Claude 4.5 and later: `us.`
            // batch costs 10% more than `global.` batch).
            Route::Batch => match self.price.batch {
                Some(batch) => self
                    .price
                    .placed("batch", batch.rates(), self.id.scope, false),
                None => return Charge::unpriced(route),
            },
            Route::Priority | Route::Flex => {
                let tier = if route == Route::Flex {
                    ServiceTier::Flex
                } else {
                    ServiceTier::Priority
                };
                match self.price.tier(tier) {
                    Some(rates) => self
                        .price
                        .placed(tier.as_str(), rates, self.id.scope, false),
                    None => return Charge::unpriced(route),
                }
            }
            Route::OnDemand => {
                let input = usage.input_tokens
                    + usage.cache_read_input_tokens
                    + usage.cache_write_input_tokens;
                let tier = self
                    .price
                    .long_context
                    .as_ref()
                    .filter(|tier| input > tier.above_input_tokens);
                self.price.on_demand_in(self.id.scope, tier)
            }
        };
        match rates.cost(usage) {
            Some(usd) => Charge {
                variant,
                usd: Some(usd),
            },
            None => Charge::unpriced(route),
        }
    }
}
