//! The fake model's answer to one request, as pure functions shared by the on-demand routes
//! (`exchange`) and Batch Inference jobs (`batch`): the request validated and reduced to the
//! work to do, and the JSON body Converse or InvokeModel answers with. What depends on the
//! server's state (the prompt cache, quotas, faults, timing) stays with the callers.

use serde_json::{Value, json};

use super::api_error::ApiError;
use super::attachments::Attachment;
use super::converse::{self, CachePrefix};
use super::native::{self, NativeRequest};
use super::state::{CacheUse, Delivered};
use super::text::{Generation, generate};
use super::tools::{self, ForcedTool};
use crate::model_id::Family;

/// What Converse reserves when the request sets no `maxTokens`.
const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Bedrock Runtime's model routes; a batch job answers as `Converse` or `Invoke` would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Converse,
    ConverseStream,
    Invoke,
    InvokeStream,
}

impl Route {
    pub fn name(self) -> &'static str {
        match self {
            Route::Converse => "converse",
            Route::ConverseStream => "converse-stream",
            Route::Invoke => "invoke",
            Route::InvokeStream => "invoke-with-response-stream",
        }
    }

    pub fn streaming(self) -> bool {
        matches!(self, Route::ConverseStream | Route::InvokeStream)
    }
}

/// What the fake model will answer, decided before any waiting.
pub struct Work {
    pub family: Family,
    /// Every input token, cached or not.
    pub input_tokens: u64,
    /// The output ceiling the quota reserves.
    pub max_tokens: u64,
    pub cache_prefixes: Vec<CachePrefix>,
    pub cache: CacheUse,
    pub attachments: Vec<Attachment>,
    pub answer: Answer,
    /// The forced tool call that replaces the text in a Converse answer.
    pub tool_use: Option<ToolUse>,
}

/// A forced tool call: the tool's name and its input, conforming to the tool's schema
/// or, under the schema-violation fault, breaking it.
pub struct ToolUse {
    pub id: String,
    pub name: String,
    pub conforming: Value,
    pub violating: Value,
    pub violate: bool,
}

impl ToolUse {
    pub fn new(tool: ForcedTool, prompt: &str) -> ToolUse {
        ToolUse {
            id: format!(
                "tooluse_{:016x}",
                xxhash_rust::xxh3::xxh3_64(prompt.as_bytes())
            ),
            conforming: tools::conforming(&tool.schema, prompt),
            violating: tools::violating(&tool.schema, prompt),
            name: tool.name,
            violate: false,
        }
    }

    pub fn input(&self) -> &Value {
        if self.violate {
            &self.violating
        } else {
            &self.conforming
        }
    }

    /// The input as the model writes it out, for output tokens and stream deltas.
    pub fn input_text(&self) -> String {
        serde_json::to_string(self.input()).unwrap_or_default()
    }
}

pub enum Answer {
    Text(Generation),
    Embedding(Value),
}

impl Work {
    pub fn output_tokens(&self) -> u64 {
        match &self.answer {
            Answer::Text(_) if self.tool_use.is_some() => self
                .tool_use
                .as_ref()
                .map_or(0, |tool| (tool.input_text().len() as u64).div_ceil(4)),
            Answer::Text(generation) => generation.output_tokens,
            Answer::Embedding(_) => 0,
        }
    }

    pub fn delivered(&self) -> Delivered {
        Delivered {
            input_tokens: self.input_tokens - self.cache.read - self.cache.write,
            output_tokens: self.output_tokens(),
            cache: self.cache,
        }
    }

    /// Converse's `usage` object.
    pub fn converse_usage(&self) -> Value {
        let delivered = self.delivered();
        let mut usage = json!({
            "inputTokens": delivered.input_tokens,
            "outputTokens": delivered.output_tokens,
            "totalTokens": self.input_tokens + delivered.output_tokens,
        });
        if !self.cache_prefixes.is_empty() {
            usage["cacheReadInputTokens"] = json!(self.cache.read);
            usage["cacheWriteInputTokens"] = json!(self.cache.write);
        }
        usage
    }
}

/// Validates `body` for `route` and decides the answer. The prompt cache is left unused;
/// the on-demand path fills [`Work::cache`] from the server's state.
pub fn prepare(route: Route, family: Family, body: &[u8]) -> Result<Work, ApiError> {
    let work = |input_tokens, max_tokens, attachments, answer| Work {
        family,
        input_tokens,
        max_tokens,
        cache_prefixes: Vec::new(),
        cache: CacheUse::default(),
        attachments,
        answer,
        tool_use: None,
    };
    match route {
        Route::Converse | Route::ConverseStream => {
            if family.is_embedding() {
                return Err(ApiError::validation(
                    "This action doesn't support the model that you provided. Try again with a supported text or chat model.",
                ));
            }
            let request = converse::parse(body)?;
            let max_tokens = request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
            let generation = generate(&request.prompt, max_tokens, &request.stop_sequences);
            let mut prepared = work(
                request.input_tokens,
                max_tokens,
                request.attachments,
                Answer::Text(generation),
            );
            prepared.cache_prefixes = request.cache_prefixes;
            prepared.tool_use = request
                .forced_tool
                .map(|tool| ToolUse::new(tool, &request.prompt));
            Ok(prepared)
        }
        Route::Invoke | Route::InvokeStream => {
            if route == Route::InvokeStream && family.is_embedding() {
                return Err(ApiError::validation(
                    "This model doesn't support response streaming. Call InvokeModel instead.",
                ));
            }
            Ok(match native::parse(family, body)? {
                NativeRequest::Text {
                    input_tokens,
                    max_tokens,
                    stop_sequences,
                    prompt,
                    attachments,
                } => work(
                    input_tokens,
                    max_tokens,
                    attachments,
                    Answer::Text(generate(&prompt, max_tokens, &stop_sequences)),
                ),
                NativeRequest::Embedding {
                    input_tokens,
                    response,
                } => work(input_tokens, 0, Vec::new(), Answer::Embedding(response)),
            })
        }
    }
}

/// The JSON body of a non-streaming answer: Converse's response on the Converse route,
/// the family's native body on InvokeModel.
pub fn response_body(work: &Work, route: Route, model_id: &str, latency_ms: u64) -> Value {
    match (&work.answer, route) {
        (Answer::Text(generation), Route::Converse | Route::ConverseStream) => {
            let (content, stop_reason) = match &work.tool_use {
                Some(tool) => (
                    json!([{"toolUse": {"toolUseId": tool.id, "name": tool.name, "input": tool.input()}}]),
                    "tool_use",
                ),
                None => (
                    json!([{"text": generation.text}]),
                    generation.stop_reason.converse_name(),
                ),
            };
            json!({
                "output": {"message": {"role": "assistant", "content": content}},
                "stopReason": stop_reason,
                "usage": work.converse_usage(),
                "metrics": {"latencyMs": latency_ms},
            })
        }
        (Answer::Text(generation), _) => {
            native::text_body(work.family, model_id, generation, work.input_tokens)
        }
        (Answer::Embedding(response), _) => response.clone(),
    }
}

/// A whole answer with nothing but the request: what a batch record gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered {
    pub body: Value,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// Answers `body` sent to `model_id` on `route` (`Converse` or `Invoke`) as an on-demand
/// call with no cache and no latency would be answered.
pub fn answer(route: Route, model_id: &str, body: &[u8]) -> Result<Answered, ApiError> {
    let family = Family::of(model_id)
        .ok_or_else(|| ApiError::validation("The provided model identifier is invalid."))?;
    let work = prepare(route, family, body)?;
    Ok(Answered {
        body: response_body(&work, route, model_id, 0),
        input_tokens: work.input_tokens,
        output_tokens: work.output_tokens(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_need_a_known_model_and_a_fitting_route() {
        let converse =
            br#"{"messages": [{"role": "user", "content": [{"text": "Hi there. Bye."}]}]}"#;
        let answered = answer(
            Route::Converse,
            "anthropic.claude-3-haiku-20240307-v1:0",
            converse,
        )
        .expect("a valid Converse body");
        assert_eq!(answered.body["stopReason"], "end_turn");
        assert_eq!(
            answered.body["usage"]["inputTokens"].as_u64(),
            Some(answered.input_tokens)
        );
        assert!(answer(Route::Converse, "acme.nothing-v1", converse).is_err());
        assert!(answer(Route::Converse, "amazon.titan-embed-text-v2:0", converse).is_err());
        let embedded = answer(
            Route::Invoke,
            "amazon.titan-embed-text-v2:0",
            br#"{"inputText": "hello", "dimensions": 256}"#,
        )
        .expect("a valid Titan body");
        assert_eq!(
            embedded.body["embedding"].as_array().map(Vec::len),
            Some(256)
        );
        assert_eq!(embedded.output_tokens, 0);
    }
}
