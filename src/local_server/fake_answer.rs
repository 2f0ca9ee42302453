//! The fake model's answer to one request, as pure functions shared by the on-demand routes
//! (`exchange`), CountTokens (`exchange::count_tokens`) and Batch Inference jobs
//! (`batch::job`): the request validated and reduced to the work to do (the service tier
//! that serves it included), and the JSON body Converse or InvokeModel answers with. The
//! answer's text is a summary of the prompt, or, under `outputConfig.textFormat`, a JSON
//! document conforming to the schema. What depends on the server's state (the prompt cache,
//! quotas, faults, timing) stays with the callers.

use serde_json::{Value, json};

use super::api_error::ApiError;
use super::attachments::Attachment;
use super::converse::{self, CachePrefix};
use super::native::{self, NativeRequest};
use super::text::{Generation, generate, write_out};
use super::tier_policy;
use super::tools::{self, ForcedTool};
use super::usage::{CacheUse, Delivered};
use crate::rules::catalogue::{self, Offer};
use crate::rules::model_id::Family;
use crate::vocab::ServiceTier;

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

    /// The operation's name in bedrock-runtime's service model.
    pub fn operation(self) -> &'static str {
        match self {
            Route::Converse => "Converse",
            Route::ConverseStream => "ConverseStream",
            Route::Invoke => "InvokeModel",
            Route::InvokeStream => "InvokeModelWithResponseStream",
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
    /// Under `outputConfig.textFormat`: the answer's text breaking the schema, for the
    /// schema-violation fault (the answer itself conforms).
    pub violating_text: Option<Generation>,
    /// The tier that serves the request.
    pub service_tier: ServiceTier,
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
    /// Makes the answer break its schema (the schema-violation fault): a forced tool's
    /// input, or the JSON text of a structured answer. Other answers have no schema.
    pub fn break_schema(&mut self) {
        if let Some(tool) = &mut self.tool_use {
            tool.violate = true;
        } else if let Some(violating) = self.violating_text.take() {
            self.answer = Answer::Text(violating);
        }
    }

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

/// Validates `body` sent to `model_id` on `route` and decides the answer. `tier_header` is
/// InvokeModel's `X-Amzn-Bedrock-Service-Tier` (Converse names its tier in the body). The
/// prompt cache is left unused; the on-demand path fills [`Work::cache`] from the
/// server's state.
pub fn prepare(
    route: Route,
    model_id: &str,
    body: &[u8],
    tier_header: Option<&str>,
) -> Result<Work, ApiError> {
    let family = Family::of(model_id)
        .ok_or_else(|| ApiError::validation("The provided model identifier is invalid."))?;
    let work = |input_tokens, max_tokens, attachments, answer, service_tier| Work {
        family,
        input_tokens,
        max_tokens,
        cache_prefixes: Vec::new(),
        cache: CacheUse::default(),
        attachments,
        answer,
        tool_use: None,
        violating_text: None,
        service_tier,
    };
    match route {
        Route::Converse | Route::ConverseStream => {
            if family.is_embedding() {
                return Err(ApiError::validation(
                    "This action doesn't support the model that you provided. Try again with a supported text or chat model.",
                ));
            }
            let request = converse::parse(body)?;
            let service_tier = tier_policy::resolve(model_id, request.service_tier.as_deref())?;
            if request.output_schema.is_some()
                && catalogue::structured_output(model_id) == Offer::No
            {
                return Err(ApiError::validation(format!(
                    "The model {model_id} doesn't support structured outputs (outputConfig.textFormat). Remove outputConfig.textFormat or try again with a model that supports it."
                )));
            }
            let max_tokens = request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
            let stops = &request.stop_sequences;
            // A forced tool call is the whole answer: the text format has no text to shape.
            let structured = request
                .output_schema
                .as_ref()
                .filter(|_| request.forced_tool.is_none());
            let (generation, violating_text) = match structured {
                Some(schema) => {
                    let json = |value: Value| serde_json::to_string(&value).unwrap_or_default();
                    (
                        write_out(
                            json(tools::conforming(schema, &request.prompt)),
                            max_tokens,
                            stops,
                        ),
                        Some(write_out(
                            json(tools::violating(schema, &request.prompt)),
                            max_tokens,
                            stops,
                        )),
                    )
                }
                None => (generate(&request.prompt, max_tokens, stops), None),
            };
            let mut prepared = work(
                request.input_tokens,
                max_tokens,
                request.attachments,
                Answer::Text(generation),
                service_tier,
            );
            prepared.violating_text = violating_text;
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
            let service_tier = tier_policy::resolve(model_id, tier_header)?;
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
                    service_tier,
                ),
                NativeRequest::Embedding {
                    input_tokens,
                    response,
                } => work(
                    input_tokens,
                    0,
                    Vec::new(),
                    Answer::Embedding(response),
                    service_tier,
                ),
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
    let work = prepare(route, model_id, body, None)?;
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

    fn structured_body(schema: &Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "messages": [{"role": "user", "content": [{"text": "My invoice is wrong. Please fix it soon."}]}],
            "outputConfig": {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {
                "schema": schema.to_string(), "name": "ticket"}}}},
        }))
        .unwrap()
    }

    fn text_of(work: &Work) -> &str {
        match &work.answer {
            Answer::Text(generation) => &generation.text,
            Answer::Embedding(_) => panic!("not a text answer"),
        }
    }

    #[test]
    fn structured_output_answers_json_text_that_conforms_or_breaks_on_demand() {
        let schema = json!({"type": "object", "properties": {
            "category": {"type": "string", "enum": ["billing", "bug"]},
            "urgency": {"type": "integer", "minimum": 1, "maximum": 5}},
            "required": ["category", "urgency"]});
        let validator = jsonschema::validator_for(&schema).unwrap();
        let model = "anthropic.claude-sonnet-4-5-20250929-v1:0";
        let mut work = prepare(Route::Converse, model, &structured_body(&schema), None).unwrap();
        let answer: Value = serde_json::from_str(text_of(&work)).unwrap();
        assert!(validator.is_valid(&answer), "{answer}");
        assert_eq!(
            work.output_tokens(),
            (text_of(&work).len() as u64).div_ceil(4)
        );
        work.break_schema();
        let broken: Value = serde_json::from_str(text_of(&work)).unwrap();
        assert!(!validator.is_valid(&broken), "{broken}");

        // A model the catalogue says has no structured output refuses it.
        let err = prepare(
            Route::Converse,
            "anthropic.claude-3-haiku-20240307-v1:0",
            &structured_body(&schema),
            None,
        )
        .err()
        .expect("refused");
        assert!(
            err.message.contains("structured outputs"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_forced_tool_wins_over_the_text_format() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let mut body: Value = serde_json::from_slice(&structured_body(&schema)).unwrap();
        body["toolConfig"] = json!({"tools": [{"toolSpec": {"name": "t", "inputSchema": {"json": schema}}}],
            "toolChoice": {"tool": {"name": "t"}}});
        let work = prepare(
            Route::Converse,
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            &serde_json::to_vec(&body).unwrap(),
            None,
        )
        .unwrap();
        assert!(work.tool_use.is_some());
        assert!(work.violating_text.is_none());
    }

    #[test]
    fn the_tier_comes_from_the_body_or_the_header() {
        let converse = br#"{"messages": [{"role": "user", "content": [{"text": "Hi."}]}], "serviceTier": {"type": "flex"}}"#;
        let nova = "amazon.nova-pro-v1:0";
        let work = prepare(Route::Converse, nova, converse, None).unwrap();
        assert_eq!(work.service_tier, ServiceTier::Flex);
        let err = prepare(
            Route::Converse,
            "anthropic.claude-3-haiku-20240307-v1:0",
            converse,
            None,
        )
        .err()
        .expect("haiku has no flex tier");
        assert!(err.message.contains("flex"));
        let llama = br#"{"prompt": "Hello there.", "max_gen_len": 20}"#;
        let work = prepare(Route::Invoke, "meta.llama3-1-8b-instruct-v1:0", llama, None).unwrap();
        assert_eq!(work.service_tier, ServiceTier::Default);
        assert!(
            prepare(
                Route::Invoke,
                "meta.llama3-1-8b-instruct-v1:0",
                llama,
                Some("priority")
            )
            .is_err()
        );
    }
}
