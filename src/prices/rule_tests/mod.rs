//! The price table's rules, one test a rule, by family: id forms ([`id_forms`]), what a
//! request costs ([`request_costs`]) and `--prices` files ([`price_files`]). Here: the
//! usage and the model ids they share.

mod id_forms;
mod price_files;
mod request_costs;

use crate::prices::{BatchPrice, PriceTable, Route, UNPRICED};
use crate::vocab::Usage;

fn usage(input: u64, output: u64, read: u64, write: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        cache_read_input_tokens: read,
        cache_write_input_tokens: write,
        cache_write_1h_input_tokens: 0,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

const SONNET_4: &str = "anthropic.claude-sonnet-4-20250514-v1:0";
const SONNET_4_5: &str = "anthropic.claude-sonnet-4-5-20250929-v1:0";
const OPUS_4: &str = "anthropic.claude-opus-4-20250514-v1:0";
const OPUS_4_5: &str = "anthropic.claude-opus-4-5-20251101-v1:0";
