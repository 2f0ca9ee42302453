//! What tokens cost. A [`PriceTable`] maps model ids to [`Price`] entries: the built-in
//! table ([`built_in`]), extended or overridden field by field by `--prices FILE` (TOML or
//! JSON, `file`; or LiteLLM's and genai-prices' files, `ecosystem`). Ids are parsed
//! (`rules::model_id`), never matched by prefix: an entry names one model (every version
//! of it when the entry gives no date or version), so a new model stays unpriced until an
//! entry names it instead of inheriting an elder's price. Finding an entry is `lookup`'s;
//! what a price is and the arithmetic on rates, `rates`'.
//!
//! Usage is priced one request at a time ([`PriceTable::charge`], in `charge`) because
//! some rules depend on the request: the long-context tier bills a whole request at its
//! premium rates once its input passes a threshold, which a sum over requests cannot tell.
//! Each charge names its pricing variant (`on_demand`, `on_demand+regional`,
//! `on_demand+global+long_context`, `flex`, `priority+regional`, `batch`) so summaries can
//! say what was billed how. A model or a usage without a price costs `None`, never a
//! silent 0.

pub mod built_in;
mod charge;
mod ecosystem;
mod file;
mod lookup;
mod rates;

pub use charge::{Charge, Resolved, Route, UNPRICED};
pub use file::PricesError;
pub use lookup::PriceTable;
pub use rates::{BatchPrice, LongContext, Price, Rates, VariantRates};

#[cfg(test)]
mod rule_tests;
