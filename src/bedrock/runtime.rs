//! The bedrock-runtime client of a run: one [`Bedrock`] per endpoint turns a prepared
//! record into its call (InvokeModel, the embedding models, CountTokens; Converse in
//! [`super::converse_call`]) and reads the answer, its usage and its tier back.

use std::sync::{Arc, Mutex};

use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::interceptors::BeforeDeserializationInterceptorContextRef;
use aws_sdk_bedrockruntime::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    CacheTtl, ConverseTokensRequest, CountTokensInput, InvokeModelTokensRequest, ServiceTierType,
};
use serde_json::Value;

use super::errors::classify;
use super::wire;
use crate::rules::model_id::Family;
use crate::vocab::Payload;
use crate::vocab::RequestSettings;
use crate::vocab::{Answer, ServiceTier, Usage};
use crate::vocab::{CallError, ErrorKind};

/// What InvokeModel brought back.
pub(super) struct Invoked {
    response: Value,
    tokens: TokenCounts,
    service_tier: Option<ServiceTier>,
}

/// Converse's `serviceTier` for `tier`.
pub(super) fn service_tier(
    tier: ServiceTier,
) -> Result<aws_sdk_bedrockruntime::types::ServiceTier, CallError> {
    aws_sdk_bedrockruntime::types::ServiceTier::builder()
        .r#type(ServiceTierType::from(tier.as_str()))
        .build()
        .map_err(|err| CallError::new(ErrorKind::Other, err.to_string()))
}

#[derive(Clone)]
pub struct Bedrock {
    pub(super) client: Client,
    pub(super) options: Arc<RequestSettings>,
}

/// Converse's token usage as results report it.
pub(super) fn usage_of(u: &aws_sdk_bedrockruntime::types::TokenUsage) -> Usage {
    Usage {
        input_tokens: u.input_tokens().max(0) as u64,
        output_tokens: u.output_tokens().max(0) as u64,
        cache_read_input_tokens: u.cache_read_input_tokens().unwrap_or(0).max(0) as u64,
        cache_write_input_tokens: u.cache_write_input_tokens().unwrap_or(0).max(0) as u64,
        cache_write_1h_input_tokens: u
            .cache_details()
            .iter()
            .filter(|detail| *detail.ttl() == CacheTtl::OneHour)
            .map(|detail| detail.input_tokens().max(0) as u64)
            .sum(),
    }
}

/// Input and output token counts from Bedrock's response headers, when present.
pub(super) type TokenCounts = (Option<u64>, Option<u64>);

/// Reads Bedrock's token-count headers off one InvokeModel response.
#[derive(Debug, Clone, Default)]
pub(super) struct TokenHeaders(Arc<Mutex<TokenCounts>>);

impl TokenHeaders {
    pub(super) fn get(&self) -> TokenCounts {
        self.0.lock().map(|seen| *seen).unwrap_or_default()
    }
}

impl Intercept for TokenHeaders {
    fn name(&self) -> &'static str {
        "TokenHeaders"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let headers = context.response().headers();
        let read = |name| headers.get(name).and_then(|v: &str| v.trim().parse().ok());
        if let Ok(mut seen) = self.0.lock() {
            *seen = (
                read("x-amzn-bedrock-input-token-count"),
                read("x-amzn-bedrock-output-token-count"),
            );
        }
        Ok(())
    }
}

pub(super) fn parse_json(bytes: &[u8]) -> Result<Value, CallError> {
    serde_json::from_slice(bytes).map_err(|err| {
        CallError::new(
            ErrorKind::BadResponse,
            format!("the model's response body is not valid JSON: {err}"),
        )
    })
}

pub(super) fn u64_at(value: &Value, path: &[&str]) -> Option<u64> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_u64)
}

/// Usage from a native response body, by model family, when headers are missing.
pub(super) fn native_usage(response: &Value) -> Usage {
    let first = |paths: &[&[&str]]| paths.iter().find_map(|p| u64_at(response, p)).unwrap_or(0);
    Usage {
        input_tokens: first(&[
            &["usage", "input_tokens"],
            &["usage", "inputTokens"],
            &["prompt_token_count"],
            &["inputTextTokenCount"],
        ]),
        output_tokens: first(&[
            &["usage", "output_tokens"],
            &["usage", "outputTokens"],
            &["generation_token_count"],
        ]),
        ..Usage::default()
    }
}

/// Splits `total` tokens over texts in proportion to their length; the parts sum to `total`.
pub(super) fn split_tokens(total: u64, texts: &[&str]) -> Vec<u64> {
    let lengths: Vec<u64> = texts.iter().map(|t| t.chars().count() as u64).collect();
    let sum: u64 = lengths.iter().sum::<u64>().max(1);
    let mut parts: Vec<u64> = lengths.iter().map(|l| total * l / sum).collect();
    let assigned: u64 = parts.iter().sum();
    if let Some(last) = parts.last_mut() {
        *last += total - assigned;
    }
    parts
}

impl Bedrock {
    pub fn new(client: Client, options: RequestSettings) -> Bedrock {
        Bedrock {
            client,
            options: Arc::new(options),
        }
    }

    /// Sends one call for `payloads` (several only for a Cohere Embed batch) and returns
    /// one answer per payload, in order.
    /// `tier`: the service tier to ask for (`None` sends none: the default tier).
    pub async fn call(
        &self,
        model: &str,
        tier: Option<ServiceTier>,
        payloads: &[&Payload],
    ) -> Result<Vec<Answer>, CallError> {
        match payloads {
            [Payload::Converse(input)] => Ok(vec![self.converse(model, tier, input).await?]),
            [Payload::Invoke { body }] => Ok(vec![self.invoke_native(model, tier, body).await?]),
            _ => {
                let texts: Vec<&str> = payloads
                    .iter()
                    .map(|p| match p {
                        Payload::Embed { text } => Ok(text.as_str()),
                        _ => Err(CallError::new(
                            ErrorKind::Other,
                            "mixed payloads in one call",
                        )),
                    })
                    .collect::<Result<_, _>>()?;
                self.embed(model, tier, &texts).await
            }
        }
    }

    /// The input tokens Bedrock's CountTokens API counts for `payload` on `model` (what a
    /// call would bill; it calls no model and costs nothing). CountTokens takes foundation
    /// model ids only, so an inference profile is counted on its model.
    pub async fn count_tokens(&self, model: &str, payload: &Payload) -> Result<u64, CallError> {
        let other = |err: aws_sdk_bedrockruntime::error::BuildError| {
            CallError::new(ErrorKind::Other, err.to_string())
        };
        let invoke = |body: Vec<u8>| {
            InvokeModelTokensRequest::builder()
                .body(Blob::new(body))
                .build()
                .map(CountTokensInput::InvokeModel)
                .map_err(other)
        };
        let input = match payload {
            Payload::Converse(converse) => {
                let (messages, system) = self.converse_parts(converse)?;
                CountTokensInput::Converse(
                    ConverseTokensRequest::builder()
                        .set_messages(Some(messages))
                        .set_system((!system.is_empty()).then_some(system))
                        .set_tool_config(self.tool_config()?)
                        .build(),
                )
            }
            Payload::Invoke { body } => invoke(body.clone())?,
            Payload::Embed { text } => invoke(
                serde_json::to_vec(&wire::embed_request(&self.options, model, &[text]))
                    .unwrap_or_default(),
            )?,
            Payload::Retrieve { .. } | Payload::Rag { .. } => {
                return Err(CallError::new(
                    ErrorKind::Validation,
                    "knowledge-base queries have no token count",
                ));
            }
        };
        let out = self
            .client
            .count_tokens()
            .model_id(crate::rules::model_id::base_model_id(model))
            .input(input)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.input_tokens().max(0) as u64)
    }
}

impl Bedrock {
    /// InvokeModel with `body`; the parsed response, the token-count headers and the tier
    /// that served it.
    pub(super) async fn invoke(
        &self,
        model: &str,
        tier: Option<ServiceTier>,
        body: Vec<u8>,
    ) -> Result<Invoked, CallError> {
        let headers = TokenHeaders::default();
        let out = self
            .client
            .invoke_model()
            .model_id(model)
            .content_type("application/json")
            .accept("application/json")
            .body(Blob::new(body))
            .set_service_tier(tier.map(|t| ServiceTierType::from(t.as_str())))
            .customize()
            .interceptor(headers.clone())
            .send()
            .await
            .map_err(classify)?;
        Ok(Invoked {
            response: parse_json(out.body().as_ref())?,
            tokens: headers.get(),
            service_tier: out
                .service_tier()
                .and_then(|t| ServiceTier::parse(t.as_str())),
        })
    }

    pub(super) async fn invoke_native(
        &self,
        model: &str,
        tier: Option<ServiceTier>,
        body: &[u8],
    ) -> Result<Answer, CallError> {
        let Invoked {
            response,
            tokens: (input, output),
            service_tier,
        } = self.invoke(model, tier, body.to_vec()).await?;
        let from_body = native_usage(&response);
        let usage = Usage {
            input_tokens: input.unwrap_or(from_body.input_tokens),
            output_tokens: output.unwrap_or(from_body.output_tokens),
            ..Usage::default()
        };
        Ok(Answer::Invoke {
            response,
            usage,
            service_tier,
        })
    }

    pub(super) async fn embed(
        &self,
        model: &str,
        tier: Option<ServiceTier>,
        texts: &[&str],
    ) -> Result<Vec<Answer>, CallError> {
        let cohere = Family::of(model) == Some(Family::CohereEmbed);
        if !cohere && texts.len() != 1 {
            return Err(CallError::new(
                ErrorKind::Other,
                "Titan embeds one text per call",
            ));
        }
        let body = wire::embed_request(&self.options, model, texts);
        let Invoked {
            response,
            tokens: (input, _),
            service_tier,
        } = self
            .invoke(model, tier, serde_json::to_vec(&body).unwrap_or_default())
            .await?;
        let input = input.or_else(|| u64_at(&response, &["inputTextTokenCount"]));
        let vectors = wire::embedding_answers(model, response, texts.len())?;
        let shares = if cohere {
            let total = input.unwrap_or_else(|| {
                texts
                    .iter()
                    .map(|t| (t.chars().count() as u64).div_ceil(4))
                    .sum()
            });
            split_tokens(total, texts)
        } else {
            vec![input.unwrap_or(0)]
        };
        Ok(vectors
            .into_iter()
            .zip(shares)
            .map(|(vector, input_tokens)| Answer::Embedding {
                vector,
                usage: Usage {
                    input_tokens,
                    ..Usage::default()
                },
                service_tier,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    pub(super) fn token_split_sums_to_total() {
        let parts = split_tokens(10, &["aaaa", "aa", "aaaa"]);
        assert_eq!(parts.iter().sum::<u64>(), 10);
        assert_eq!(parts, vec![4, 2, 4]);
        assert_eq!(split_tokens(7, &["a"]), vec![7]);
        assert_eq!(split_tokens(3, &["", ""]).iter().sum::<u64>(), 3);
    }

    #[test]
    pub(super) fn native_usage_by_family() {
        let claude = json!({"usage": {"input_tokens": 5, "output_tokens": 7}});
        assert_eq!(native_usage(&claude).output_tokens, 7);
        let llama = json!({"prompt_token_count": 3, "generation_token_count": 4});
        assert_eq!(native_usage(&llama).input_tokens, 3);
        let titan = json!({"inputTextTokenCount": 9});
        assert_eq!(native_usage(&titan).input_tokens, 9);
    }
}
