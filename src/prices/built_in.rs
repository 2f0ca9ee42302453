//! The built-in price table: Amazon Bedrock on-demand prices in USD per million tokens,
//! each entry with where its numbers come from and when they were read there. Prices
//! change, and differ by region and tier: `bedrock-batch prices` shows what a run will
//! charge, and `--prices FILE` corrects any field.
//!
//! Keys name a model exactly: `provider.name` covers every version of that model (the
//! provider prices them alike), a date or `-vN:M` suffix narrows it. What is not known for
//! sure is left out rather than guessed: no batch price means no batch, no cache price
//! means cache tokens make the cost unknown, no premium means one price everywhere.

use std::collections::BTreeMap;

use super::{BatchPrice, LongContext, Price, Rates};

/// Where an entry's numbers were read, and when.
struct Source {
    text: &'static str,
    date: &'static str,
}

const PAGE: &str = "aws bedrock pricing page, us-east-1";
/// The earlier table, checked number by number against the public pricing page (US East,
/// standard tier) and the AWS Price List data, July 2025.
const PAGE_2025_07: Source = Source {
    text: PAGE,
    date: "2025-07",
};
/// Models and rules added in November 2025, from the same page.
const PAGE_2025_11: Source = Source {
    text: PAGE,
    date: "2025-11",
};

/// Checked 2026-12-06 against three public copies that agree on every number used here
/// unless an entry says otherwise: a daily scrape of the AWS pricing page (2026-07-24),
/// LiteLLM's price data (2026-08-01) and pydantic genai-prices' AWS file (2026-08-21). Where
/// they disagree, the entry says which one it follows and why.
const PAGE_2026_07: Source = Source {
    text: "aws bedrock pricing page (2026-07-24 copy), LiteLLM and genai-prices price data",
    date: "2026-07",
};
/// Claude models released after that copy: the AWS Price List API as read on 2026-09-29
/// (us-east-1, on demand) and Anthropic's model pages; batch prices not published yet.
const PRICE_LIST_2026_09: Source = Source {
    text: "aws price list api (2026-09-29 reading), Anthropic model pages",
    date: "2026-09",
};

/// From Claude Sonnet 4.5 and Haiku 4.5 on, geographic profiles and in-region ids cost 10%
/// more than `global.` (Sonnet 4.5: 3.30 / 16.50 / 0.33 / 4.125 against 3 / 15 / 0.30 / 3.75).
const CLAUDE_REGIONAL_PREMIUM: f64 = 1.10;

/// The priority and flex tiers where AWS publishes them: 1.75x and 0.5x the standard rates
/// (the pricing page's labelled rows for gpt-oss, Qwen3, DeepSeek V3.1 and Nova, 2026-07).
const PRIORITY_FACTOR: f64 = 1.75;
const FLEX_FACTOR: f64 = 0.5;

/// Claude Sonnet 4 and 4.5 with the 1M-context beta: a request whose input (cache reads and
/// writes included) passes 200k tokens is billed entirely at these rates.
const CLAUDE_SONNET_LONG_CONTEXT: LongContext = LongContext {
    above_input_tokens: 200_000,
    rates: Rates {
        input: 6.00,
        output: 22.50,
        cache_read: Some(0.60),
        cache_write: Some(7.50),
        cache_write_1h: None,
    },
};

fn tokens(input: f64, output: f64, source: Source) -> Price {
    Price {
        input,
        output,
        cache_read: None,
        cache_write: None,
        cache_write_1h: None,
        batch: None,
        priority: None,
        flex: None,
        regional_premium: None,
        geography_premium: BTreeMap::new(),
        long_context: None,
        source: source.text.to_string(),
        date: source.date.to_string(),
    }
}

fn cached(input: f64, output: f64, cache_read: f64, cache_write: f64, source: Source) -> Price {
    Price {
        cache_read: Some(cache_read),
        cache_write: Some(cache_write),
        ..tokens(input, output, source)
    }
}

impl Price {
    /// Batch Inference at these prices.
    fn with_batch(self, input: f64, output: f64) -> Price {
        Price {
            batch: Some(BatchPrice { input, output }),
            ..self
        }
    }

    /// Claude's 1-hour cache writes: twice the input price (5-minute writes are 1.25x).
    fn with_one_hour_cache(self) -> Price {
        Price {
            cache_write_1h: Some(2.0 * self.input),
            long_context: self.long_context.map(|tier| LongContext {
                rates: Rates {
                    cache_write_1h: Some(2.0 * tier.rates.input),
                    ..tier.rates
                },
                ..tier
            }),
            ..self
        }
    }

    /// Priority at 1.75x and flex at 0.5x the on-demand input and output (cache tokens in
    /// those tiers stay unpriced: no tier publishes them).
    fn with_service_tiers(self) -> Price {
        let tier = |factor: f64| Rates {
            input: self.input * factor,
            output: self.output * factor,
            cache_read: None,
            cache_write: None,
            cache_write_1h: None,
        };
        Price {
            priority: Some(tier(PRIORITY_FACTOR)),
            flex: Some(tier(FLEX_FACTOR)),
            ..self
        }
    }

    /// Batch Inference at half the on-demand input and output, as AWS prices every batch
    /// model that publishes a batch column.
    fn with_half_price_batch(self) -> Price {
        let (input, output) = (self.input / 2.0, self.output / 2.0);
        self.with_batch(input, output)
    }

    fn with_regional_premium(self, factor: f64) -> Price {
        Price {
            regional_premium: Some(factor),
            ..self
        }
    }

    fn with_long_context(self, tier: LongContext) -> Price {
        Price {
            long_context: Some(tier),
            ..self
        }
    }
}

/// Every built-in entry, by key.
pub fn entries() -> Vec<(&'static str, Price)> {
    vec![
        // Anthropic Claude. Batch Inference is listed only where the page listed it
        // (3 Haiku, 3.5 Sonnet); 3.5 Haiku, 3.7 Sonnet and the 4.x models are left without
        // a batch price until checked.
        //
        // Claude 3 Haiku has no prompt caching on Bedrock: no cache prices (the old table
        // had some Bedrock never charged).
        (
            "anthropic.claude-3-haiku",
            tokens(0.25, 1.25, PAGE_2025_07).with_batch(0.125, 0.625),
        ),
        (
            "anthropic.claude-3-5-haiku",
            cached(0.80, 4.00, 0.08, 1.00, PAGE_2025_07),
        ),
        (
            "anthropic.claude-3-5-sonnet",
            cached(3.00, 15.00, 0.30, 3.75, PAGE_2025_07).with_batch(1.50, 7.50),
        ),
        (
            "anthropic.claude-3-7-sonnet",
            cached(3.00, 15.00, 0.30, 3.75, PAGE_2025_07),
        ),
        (
            "anthropic.claude-sonnet-4",
            cached(3.00, 15.00, 0.30, 3.75, PAGE_2025_11)
                .with_long_context(CLAUDE_SONNET_LONG_CONTEXT),
        ),
        // Global prices; the premium and the long-context tier are from the issue text
        // (16) and the page. 1-hour cache writes are offered on Bedrock for the 4.5 models.
        // Batch prices from the 2026-07 page (half price, with the same premium).
        (
            "anthropic.claude-sonnet-4-5",
            cached(3.00, 15.00, 0.30, 3.75, PAGE_2025_11)
                .with_long_context(CLAUDE_SONNET_LONG_CONTEXT)
                .with_regional_premium(CLAUDE_REGIONAL_PREMIUM)
                .with_one_hour_cache()
                .with_batch(1.50, 7.50),
        ),
        (
            "anthropic.claude-haiku-4-5",
            cached(1.00, 5.00, 0.10, 1.25, PAGE_2025_11)
                .with_regional_premium(CLAUDE_REGIONAL_PREMIUM)
                .with_one_hour_cache()
                .with_batch(0.50, 2.50),
        ),
        // Claude 4.6 and later: one price up to the whole context window (the long-context
        // tier ended in March 2026), 10% more outside `global.`, 1-hour cache writes at
        // twice the input price. Batch Inference only where the page prices it.
        (
            "anthropic.claude-sonnet-4-6",
            cached(3.00, 15.00, 0.30, 3.75, PAGE_2026_07)
                .with_regional_premium(CLAUDE_REGIONAL_PREMIUM)
                .with_one_hour_cache()
                .with_batch(1.50, 7.50),
        ),
        (
            "anthropic.claude-opus-4-6",
            cached(5.00, 25.00, 0.50, 6.25, PAGE_2026_07)
                .with_regional_premium(CLAUDE_REGIONAL_PREMIUM)
                .with_one_hour_cache()
                .with_batch(2.50, 12.50),
        ),
        (
            "anthropic.claude-opus-4-7",
            cached(5.00, 25.00, 0.50, 6.25, PAGE_2026_07)
                .with_regional_premium(CLAUDE_REGIONAL_PREMIUM)
                .with_one_hour_cache(),
        ),
        (
            "anthropic.claude-opus-4-8",
            cached(5.00, 25.00, 0.50, 6.25, PAGE_2026_07)
                .with_regional_premium(CLAUDE_REGIONAL_PREMIUM)
                .with_one_hour_cache(),
        ),
        (
            "anthropic.claude-opus-5",
            cached(5.00, 25.00, 0.50, 6.25, PRICE_LIST_2026_09)
                .with_regional_premium(CLAUDE_REGIONAL_PREMIUM)
                .with_one_hour_cache(),
        ),
        // Sonnet 5: genai-prices moved it to $3 / $15 from 2026-09-01 after the launch
        // announcement; the Price List read on 2026-09-29 and Anthropic's pages still say
        // $2 / $10, which this follows.
        (
            "anthropic.claude-sonnet-5",
            cached(2.00, 10.00, 0.20, 2.50, PRICE_LIST_2026_09)
                .with_regional_premium(CLAUDE_REGIONAL_PREMIUM)
                .with_one_hour_cache(),
        ),
        // Opus 5.5 and Sonnet 5.5 (September 2026): no Bedrock 1-hour cache price found.
        (
            "anthropic.claude-opus-5-5",
            cached(4.00, 20.00, 0.20, 5.00, PRICE_LIST_2026_09)
                .with_regional_premium(CLAUDE_REGIONAL_PREMIUM),
        ),
        (
            "anthropic.claude-sonnet-5-5",
            cached(2.00, 10.00, 0.20, 2.50, PRICE_LIST_2026_09)
                .with_regional_premium(CLAUDE_REGIONAL_PREMIUM),
        ),
        (
            "anthropic.claude-opus-4",
            cached(15.00, 75.00, 1.50, 18.75, PAGE_2025_07),
        ),
        (
            "anthropic.claude-opus-4-1",
            cached(15.00, 75.00, 1.50, 18.75, PAGE_2025_11),
        ),
        // Opus 4.5 is a third of Opus 4's price: $5 / $25 global.
        (
            "anthropic.claude-opus-4-5",
            cached(5.00, 25.00, 0.50, 6.25, PAGE_2025_11)
                .with_regional_premium(CLAUDE_REGIONAL_PREMIUM)
                .with_one_hour_cache()
                .with_batch(2.50, 12.50),
        ),
        (
            "anthropic.claude-3-sonnet",
            tokens(3.00, 15.00, PAGE_2025_07),
        ),
        (
            "anthropic.claude-3-opus",
            tokens(15.00, 75.00, PAGE_2025_07),
        ),
        // Meta Llama. Batch Inference at half price for 3.1, 3.3 and 4; 3 and 3.2 without.
        ("meta.llama3-8b-instruct", tokens(0.30, 0.60, PAGE_2025_07)),
        ("meta.llama3-70b-instruct", tokens(2.65, 3.50, PAGE_2025_07)),
        (
            "meta.llama3-1-8b-instruct",
            tokens(0.22, 0.22, PAGE_2025_07).with_batch(0.11, 0.11),
        ),
        (
            "meta.llama3-1-70b-instruct",
            tokens(0.72, 0.72, PAGE_2025_07).with_batch(0.36, 0.36),
        ),
        (
            "meta.llama3-1-405b-instruct",
            tokens(2.40, 2.40, PAGE_2025_07).with_batch(1.20, 1.20),
        ),
        (
            "meta.llama3-2-1b-instruct",
            tokens(0.10, 0.10, PAGE_2025_07),
        ),
        (
            "meta.llama3-2-3b-instruct",
            tokens(0.15, 0.15, PAGE_2025_07),
        ),
        (
            "meta.llama3-2-11b-instruct",
            tokens(0.16, 0.16, PAGE_2025_07),
        ),
        (
            "meta.llama3-2-90b-instruct",
            tokens(0.72, 0.72, PAGE_2025_07),
        ),
        (
            "meta.llama3-3-70b-instruct",
            tokens(0.72, 0.72, PAGE_2025_07).with_batch(0.36, 0.36),
        ),
        (
            "meta.llama4-maverick-17b-instruct",
            tokens(0.24, 0.97, PAGE_2025_11).with_batch(0.12, 0.485),
        ),
        (
            "meta.llama4-scout-17b-instruct",
            tokens(0.17, 0.66, PAGE_2025_11).with_batch(0.085, 0.33),
        ),
        // Amazon Nova: cache reads at a quarter of input, cache writes at the input price;
        // Batch Inference at half price. Nova costs more through some source regions
        // (`eu.`), by amounts not checked here: give them with geography_premium in
        // --prices.
        (
            "amazon.nova-micro",
            cached(0.035, 0.14, 0.00875, 0.035, PAGE_2025_07).with_batch(0.0175, 0.07),
        ),
        (
            "amazon.nova-lite",
            cached(0.06, 0.24, 0.015, 0.06, PAGE_2025_07).with_batch(0.03, 0.12),
        ),
        // Nova Pro and Premier offer the priority and flex tiers (2026-07 page).
        (
            "amazon.nova-pro",
            cached(0.80, 3.20, 0.20, 0.80, PAGE_2025_07)
                .with_batch(0.40, 1.60)
                .with_service_tiers(),
        ),
        // Nova Premier: cache reads at a quarter of input (2026-07 page); no cache-write
        // price published, so cache writes leave its cost unknown. Marked Legacy, end of
        // life 2026-09-14, on its model card.
        (
            "amazon.nova-premier",
            Price {
                cache_read: Some(0.625),
                ..tokens(2.50, 12.50, PAGE_2026_07)
            }
            .with_batch(1.25, 6.25)
            .with_service_tiers(),
        ),
        // Nova 2: 10% more outside `global.` (0.30 global, 0.33 `us.`), cache reads at a
        // quarter of input, no cache-write price published; batch, priority and flex at
        // 0.5x / 1.75x / 0.5x (the page's rows for them lost their labels in the copy: the
        // tiers are read from the ratios).
        (
            "amazon.nova-2-lite",
            Price {
                cache_read: Some(0.075),
                ..tokens(0.30, 2.50, PAGE_2026_07)
            }
            .with_regional_premium(1.10)
            .with_half_price_batch()
            .with_service_tiers(),
        ),
        // Nova 2 Pro (preview): LiteLLM gives 2.1875 / 17.50, which is the page's
        // priority row; the standard row is 1.25 / 10.00.
        (
            "amazon.nova-2-pro-preview",
            tokens(1.25, 10.00, PAGE_2026_07)
                .with_regional_premium(1.10)
                .with_half_price_batch()
                .with_service_tiers(),
        ),
        // Mistral.
        (
            "mistral.mistral-7b-instruct",
            tokens(0.15, 0.20, PAGE_2025_07),
        ),
        (
            "mistral.mixtral-8x7b-instruct",
            tokens(0.45, 0.70, PAGE_2025_07),
        ),
        (
            "mistral.mistral-small-2402",
            tokens(1.00, 3.00, PAGE_2025_07),
        ),
        (
            "mistral.mistral-large-2402",
            tokens(4.00, 12.00, PAGE_2025_07),
        ),
        (
            "mistral.mistral-large-2407",
            tokens(2.00, 6.00, PAGE_2025_07),
        ),
        // Mistral, 2026: one price in the US regions (others differ by region).
        (
            "mistral.mistral-large-3-675b-instruct",
            tokens(0.50, 1.50, PAGE_2026_07),
        ),
        (
            "mistral.pixtral-large-2502",
            tokens(2.00, 6.00, PAGE_2026_07),
        ),
        (
            "mistral.ministral-3-3b-instruct",
            tokens(0.10, 0.10, PAGE_2026_07),
        ),
        (
            "mistral.ministral-3-8b-instruct",
            tokens(0.15, 0.15, PAGE_2026_07),
        ),
        (
            "mistral.ministral-3-14b-instruct",
            tokens(0.20, 0.20, PAGE_2026_07),
        ),
        (
            "mistral.magistral-small-2509",
            tokens(0.50, 1.50, PAGE_2026_07),
        ),
        // Open-weight models, US-region prices: the page lists other regions apart, and
        // a second set of rows at 1.03x whose region the copy does not say. Batch,
        // priority and flex where the page's labelled rows give them.
        (
            "openai.gpt-oss-120b",
            tokens(0.15, 0.60, PAGE_2026_07)
                .with_half_price_batch()
                .with_service_tiers(),
        ),
        (
            "openai.gpt-oss-20b",
            tokens(0.07, 0.30, PAGE_2026_07)
                .with_half_price_batch()
                .with_service_tiers(),
        ),
        (
            "qwen.qwen3-32b",
            tokens(0.15, 0.60, PAGE_2026_07)
                .with_half_price_batch()
                .with_service_tiers(),
        ),
        (
            "qwen.qwen3-coder-30b-a3b",
            tokens(0.15, 0.60, PAGE_2026_07)
                .with_half_price_batch()
                .with_service_tiers(),
        ),
        (
            "qwen.qwen3-235b-a22b-2507",
            tokens(0.22, 0.88, PAGE_2026_07)
                .with_half_price_batch()
                .with_service_tiers(),
        ),
        // LiteLLM has 0.22 input for Coder 480B; the page and genai-prices say 0.45.
        (
            "qwen.qwen3-coder-480b-a35b",
            tokens(0.45, 1.80, PAGE_2026_07)
                .with_half_price_batch()
                .with_service_tiers(),
        ),
        ("qwen.qwen3-next-80b-a3b", tokens(0.15, 1.20, PAGE_2026_07)),
        ("qwen.qwen3-vl-235b-a22b", tokens(0.53, 2.66, PAGE_2026_07)),
        ("qwen.qwen3-coder-next", tokens(0.50, 1.20, PAGE_2026_07)),
        // DeepSeek V3.1 (`deepseek.v3-v1:0`) with its tiers; V3.2 and R1 without.
        (
            "deepseek.v3",
            tokens(0.58, 1.68, PAGE_2026_07).with_service_tiers(),
        ),
        ("deepseek.v3.2", tokens(0.62, 1.85, PAGE_2026_07)),
        ("deepseek.r1", tokens(1.35, 5.40, PAGE_2026_07)),
        (
            "moonshot.kimi-k2-thinking",
            tokens(0.60, 2.50, PAGE_2026_07),
        ),
        ("moonshotai.kimi-k2.5", tokens(0.60, 3.00, PAGE_2026_07)),
        ("minimax.minimax-m2", tokens(0.30, 1.20, PAGE_2026_07)),
        ("minimax.minimax-m2.1", tokens(0.30, 1.20, PAGE_2026_07)),
        ("minimax.minimax-m2.5", tokens(0.30, 1.20, PAGE_2026_07)),
        ("zai.glm-4.7", tokens(0.60, 2.20, PAGE_2026_07)),
        ("zai.glm-4.7-flash", tokens(0.07, 0.40, PAGE_2026_07)),
        ("zai.glm-5", tokens(1.00, 3.20, PAGE_2026_07)),
        // Embeddings: input tokens only.
        (
            "amazon.titan-embed-text-v1",
            tokens(0.10, 0.0, PAGE_2025_07),
        ),
        (
            "amazon.titan-embed-g1-text-02",
            tokens(0.10, 0.0, PAGE_2025_07),
        ),
        // Titan Text Embeddings V2 is offered through Batch Inference at half price.
        (
            "amazon.titan-embed-text-v2:0",
            tokens(0.02, 0.0, PAGE_2025_07).with_batch(0.01, 0.0),
        ),
        // Titan Multimodal Embeddings G1: text tokens at $0.0008 per thousand. Images are
        // billed per image ($0.00006 each), which a token price cannot express: a cost
        // with images in it is short by that much.
        (
            "amazon.titan-embed-image-v1",
            tokens(0.80, 0.0, PAGE_2025_11),
        ),
        // Nova Multimodal Embeddings: text tokens (images, audio and video are billed by
        // other units, which a token price cannot express).
        (
            "amazon.nova-2-multimodal-embeddings",
            tokens(0.135, 0.0, PAGE_2026_07).with_batch(0.0675, 0.0),
        ),
        ("cohere.embed-v4:0", tokens(0.12, 0.0, PAGE_2026_07)),
        ("cohere.embed-english-v3", tokens(0.10, 0.0, PAGE_2025_07)),
        (
            "cohere.embed-multilingual-v3",
            tokens(0.10, 0.0, PAGE_2025_07),
        ),
    ]
}
