//! The one place that talks to the AWS SDK: building the client for an endpoint, turning
//! prepared records into Converse / InvokeModel calls, reading answers and usage back, and
//! classifying errors. SDK retries are off: the pool owns the retry policy, so every
//! throttle is seen.

pub mod errors;
mod service;
mod tool;
pub mod wire;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::interceptors::BeforeDeserializationInterceptorContextRef;
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::timeout::TimeoutConfig;
use aws_sdk_bedrockruntime::config::{
    ConfigBag, Credentials, Intercept, Region, RuntimeComponents,
};
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    CachePointBlock, CachePointType, CacheTtl, ContentBlock, ContentBlockDelta, ContentBlockStart,
    ConversationRole, ConverseStreamOutput, ConverseTokensRequest, CountTokensInput, DocumentBlock,
    DocumentFormat, DocumentSource, ImageBlock, ImageFormat, ImageSource, InferenceConfiguration,
    InvokeModelTokensRequest, Message, OutputConfig, ServiceTierType, SystemContentBlock,
    ToolConfiguration,
};
use serde_json::Value;

use crate::rules::model_id::Family;
use crate::vocab::schema::{OutputSchema, SchemaRoute};
use crate::vocab::{Answer, DocumentInput, ServiceTier, Usage};
use crate::vocab::{CallError, ErrorKind};
use crate::vocab::{ConverseInput, Payload, Prompt};
use errors::{classify, classify_stream};

/// Options that apply to every call.
#[derive(Debug, Clone)]
pub struct CallOptions {
    pub dimensions: Option<u32>,
    pub normalize: bool,
    pub input_type: String,
    /// Documents sent ahead of every record's own.
    pub shared_documents: Vec<DocumentInput>,
    pub cache_prompt: bool,
    pub stream: bool,
    /// `--schema`: every Converse call asks for answers in this JSON schema ...
    pub schema: Option<Arc<OutputSchema>>,
    /// ... through Bedrock's structured output or a forced tool.
    pub schema_route: SchemaRoute,
}

/// What InvokeModel brought back.
struct Invoked {
    response: Value,
    tokens: TokenCounts,
    service_tier: Option<ServiceTier>,
}

/// Converse's `serviceTier` for `tier`.
fn service_tier(
    tier: ServiceTier,
) -> Result<aws_sdk_bedrockruntime::types::ServiceTier, CallError> {
    aws_sdk_bedrockruntime::types::ServiceTier::builder()
        .r#type(ServiceTierType::from(tier.as_str()))
        .build()
        .map_err(|err| CallError::new(ErrorKind::Other, err.to_string()))
}

#[derive(Clone)]
pub struct Bedrock {
    client: Client,
    options: Arc<CallOptions>,
}

/// Converse's token usage as results report it.
fn usage_of(u: &aws_sdk_bedrockruntime::types::TokenUsage) -> Usage {
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

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Connection<'a> {
    pub endpoint: &'a Endpoint,
    /// The local server's URL when `endpoint` is `Endpoint::Local`.
    pub local_url: Option<&'a str>,
    pub region: Option<&'a str>,
    pub profile: Option<&'a str>,
    pub connect_timeout: Duration,
}

/// Builds the SDK client; returns it with the region it resolved.
pub async fn connect(connection: Connection<'_>) -> Result<(Client, String), String> {
    let (sdk_config, region) = shared_config(connection).await?;
    Ok((Client::new(&sdk_config), region))
}

/// The configuration every SDK client of a run is built from (bedrock-runtime here, the
/// knowledge-base client in `knowledge_base`): the endpoint, credentials, region and
/// timeouts, with SDK retries off so the pool sees every throttle. Returns it with the
/// region it resolved; the configuration always carries that region.
pub async fn shared_config(
    connection: Connection<'_>,
) -> Result<(aws_config::SdkConfig, String), String> {
    let Connection {
        endpoint,
        local_url,
        region,
        profile,
        connect_timeout,
    } = connection;
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(connect_timeout)
                .build(),
        );
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_string()));
    }
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    match endpoint {
        Endpoint::Local => {
            let url = local_url.ok_or("the local server is not running")?;
            loader = loader
                .endpoint_url(url)
                .credentials_provider(Credentials::new(
                    "LOCAL",
                    "LOCAL",
                    None,
                    None,
                    "bedrock-batch-local",
                ));
            if region.is_none() {
                loader = loader.region(Region::new("us-east-1"));
            }
        }
        Endpoint::Url(url) => loader = loader.endpoint_url(url),
        Endpoint::Aws => {}
    }
    let sdk_config = loader.load().await;
    match sdk_config.region() {
        Some(region) => {
            let region = region.to_string();
            Ok((sdk_config, region))
        }
        // Any endpoint other than AWS still signs with a region: any will do.
        None if matches!(endpoint, Endpoint::Url(_)) => Ok((
            sdk_config
                .into_builder()
                .region(Region::new("us-east-1"))
                .build(),
            "us-east-1".to_string(),
        )),
        None => Err(
            "no AWS region is configured: pass --region (e.g. --region us-east-1), set AWS_REGION, or set region in your AWS profile".into(),
        ),
    }
}

/// Input and output token counts from Bedrock's response headers, when present.
type TokenCounts = (Option<u64>, Option<u64>);

/// Reads Bedrock's token-count headers off one InvokeModel response.
#[derive(Debug, Clone, Default)]
struct TokenHeaders(Arc<Mutex<TokenCounts>>);

impl TokenHeaders {
    fn get(&self) -> TokenCounts {
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

fn parse_json(bytes: &[u8]) -> Result<Value, CallError> {
    serde_json::from_slice(bytes).map_err(|err| {
        CallError::new(
            ErrorKind::BadResponse,
            format!("the model's response body is not valid JSON: {err}"),
        )
    })
}

fn u64_at(value: &Value, path: &[&str]) -> Option<u64> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_u64)
}

/// Usage from a native response body, by model family, when headers are missing.
fn native_usage(response: &Value) -> Usage {
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
fn split_tokens(total: u64, texts: &[&str]) -> Vec<u64> {
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
    pub fn new(client: Client, options: CallOptions) -> Bedrock {
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

    /// The messages and system blocks of a Converse call: shared documents, then the
    /// record's documents and images, then its text (models do better with media first);
    /// with `cache_prompt`, cache points after the system prompt and the shared documents.
    fn converse_parts(
        &self,
        input: &ConverseInput,
    ) -> Result<(Vec<Message>, Vec<SystemContentBlock>), CallError> {
        let other = |err: aws_sdk_bedrockruntime::error::BuildError| {
            CallError::new(ErrorKind::Other, err.to_string())
        };
        let cache_point = || {
            CachePointBlock::builder()
                .r#type(CachePointType::Default)
                .build()
                .map_err(other)
        };
        let messages = match &input.prompt {
            Prompt::Text(text) => {
                let mut content = Vec::new();
                let document = |d: &DocumentInput| {
                    DocumentBlock::builder()
                        .format(DocumentFormat::from(d.format.as_str()))
                        .name(d.name.clone())
                        .source(DocumentSource::Bytes(Blob::new(d.bytes.to_vec())))
                        .build()
                        .map(ContentBlock::Document)
                        .map_err(other)
                };
                for shared in &self.options.shared_documents {
                    content.push(document(shared)?);
                }
                if self.options.cache_prompt && !self.options.shared_documents.is_empty() {
                    content.push(ContentBlock::CachePoint(cache_point()?));
                }
                for own in &input.documents {
                    content.push(document(own)?);
                }
                for image in &input.images {
                    content.push(ContentBlock::Image(
                        ImageBlock::builder()
                            .format(ImageFormat::from(image.format))
                            .source(ImageSource::Bytes(Blob::new(image.bytes.to_vec())))
                            .build()
                            .map_err(other)?,
                    ));
                }
                content.push(ContentBlock::Text(text.clone()));
                vec![
                    Message::builder()
                        .role(ConversationRole::User)
                        .set_content(Some(content))
                        .build()
                        .map_err(other)?,
                ]
            }
            Prompt::Messages(messages) => messages.clone(),
        };
        let mut system = Vec::new();
        if let Some(text) = &input.system {
            system.push(SystemContentBlock::Text(text.clone()));
            if self.options.cache_prompt {
                system.push(SystemContentBlock::CachePoint(cache_point()?));
            }
        }
        Ok((messages, system))
    }

    fn tool_config(&self) -> Result<Option<ToolConfiguration>, CallError> {
        match (&self.options.schema, self.options.schema_route) {
            (Some(schema), SchemaRoute::Tool) => tool::configuration(schema).map(Some),
            _ => Ok(None),
        }
    }

    fn output_config(&self) -> Result<Option<OutputConfig>, CallError> {
        match (&self.options.schema, self.options.schema_route) {
            (Some(schema), SchemaRoute::Native) => tool::output_config(schema).map(Some),
            _ => Ok(None),
        }
    }

    /// The schema-checked `data` of an answer: the forced tool's input, or the JSON text
    /// of a native structured answer.
    fn data(&self, tool_input: Option<Value>, text: &str) -> Result<Option<Value>, CallError> {
        tool::data(&self.options, tool_input, text)
    }

    fn inference_config(input: &ConverseInput) -> Option<InferenceConfiguration> {
        (input.max_tokens.is_some()
            || input.temperature.is_some()
            || input.top_p.is_some()
            || !input.stop.is_empty())
        .then(|| {
            InferenceConfiguration::builder()
                .set_max_tokens(input.max_tokens)
                .set_temperature(input.temperature)
                .set_top_p(input.top_p)
                .set_stop_sequences((!input.stop.is_empty()).then(|| input.stop.clone()))
                .build()
        })
    }

    async fn converse(
        &self,
        model: &str,
        tier: Option<ServiceTier>,
        input: &ConverseInput,
    ) -> Result<Answer, CallError> {
        if self.options.stream {
            return self.converse_stream(model, tier, input).await;
        }
        let (messages, system) = self.converse_parts(input)?;
        let out = self
            .client
            .converse()
            .model_id(model)
            .set_messages(Some(messages))
            .set_system((!system.is_empty()).then_some(system))
            .set_inference_config(Self::inference_config(input))
            .set_tool_config(self.tool_config()?)
            .set_output_config(self.output_config()?)
            .set_service_tier(tier.map(service_tier).transpose()?)
            .send()
            .await
            .map_err(classify)?;
        let content = out
            .output()
            .and_then(|o| o.as_message().ok())
            .map(|m| m.content())
            .unwrap_or_default();
        let output = content
            .iter()
            .filter_map(|b| b.as_text().ok())
            .cloned()
            .collect::<Vec<_>>()
            .join("");
        let usage = out.usage().map(usage_of).unwrap_or_default();
        let tool_input = content
            .iter()
            .find_map(|b| b.as_tool_use().ok())
            .map(|tool_use| tool::from_document(tool_use.input()));
        let data = self
            .data(tool_input, &output)
            .map_err(|err| err.billed(usage))?;
        Ok(Answer::Text {
            output,
            data,
            stop_reason: out.stop_reason().as_str().to_string(),
            usage,
            ttft_ms: None,
            service_tier: out
                .service_tier()
                .and_then(|t| ServiceTier::parse(t.r#type().as_str())),
        })
    }

    /// ConverseStream: the same answer assembled from the deltas, plus time to first token.
    async fn converse_stream(
        &self,
        model: &str,
        tier: Option<ServiceTier>,
        input: &ConverseInput,
    ) -> Result<Answer, CallError> {
        let (messages, system) = self.converse_parts(input)?;
        let started = std::time::Instant::now();
        let out = self
            .client
            .converse_stream()
            .model_id(model)
            .set_messages(Some(messages))
            .set_system((!system.is_empty()).then_some(system))
            .set_inference_config(Self::inference_config(input))
            .set_tool_config(self.tool_config()?)
            .set_output_config(self.output_config()?)
            .set_service_tier(tier.map(service_tier).transpose()?)
            .send()
            .await
            .map_err(classify)?;
        let mut stream = out.stream;
        let mut served = None;
        let (mut output, mut stop_reason, mut usage, mut ttft_ms) =
            (String::new(), String::new(), Usage::default(), None);
        // The tool input arrives as pieces of JSON text, after a block start naming the tool.
        let mut tool_input: Option<String> = None;
        loop {
            let event = stream.recv().await.map_err(classify_stream)?;
            match event {
                None => break,
                Some(ConverseStreamOutput::ContentBlockStart(start)) => {
                    if let Some(ContentBlockStart::ToolUse(_)) = start.start() {
                        tool_input.get_or_insert_with(String::new);
                    }
                }
                Some(ConverseStreamOutput::ContentBlockDelta(delta)) => match delta.delta() {
                    Some(ContentBlockDelta::Text(piece)) => {
                        ttft_ms.get_or_insert_with(|| started.elapsed().as_millis() as u64);
                        output.push_str(piece);
                    }
                    Some(ContentBlockDelta::ToolUse(piece)) => {
                        ttft_ms.get_or_insert_with(|| started.elapsed().as_millis() as u64);
                        tool_input
                            .get_or_insert_with(String::new)
                            .push_str(piece.input());
                    }
                    _ => {}
                },
                Some(ConverseStreamOutput::MessageStop(stop)) => {
                    stop_reason = stop.stop_reason().as_str().to_string();
                }
                Some(ConverseStreamOutput::Metadata(metadata)) => {
                    usage = metadata.usage().map(usage_of).unwrap_or_default();
                    served = metadata
                        .service_tier()
                        .and_then(|t| ServiceTier::parse(t.r#type().as_str()));
                }
                Some(_) => {}
            }
        }
        if stop_reason.is_empty() {
            return Err(CallError::new(
                ErrorKind::BadResponse,
                "the stream ended without a messageStop event",
            ));
        }
        let data = (|| {
            let input = tool_input
                .as_deref()
                .map(tool::streamed_input)
                .transpose()?;
            self.data(input, &output)
        })()
        .map_err(|err| err.billed(usage))?;
        Ok(Answer::Text {
            output,
            data,
            stop_reason,
            usage,
            ttft_ms,
            service_tier: served,
        })
    }

    /// InvokeModel with `body`; the parsed response, the token-count headers and the tier
    /// that served it.
    async fn invoke(
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

    async fn invoke_native(
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

    async fn embed(
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
    fn token_split_sums_to_total() {
        let parts = split_tokens(10, &["aaaa", "aa", "aaaa"]);
        assert_eq!(parts.iter().sum::<u64>(), 10);
        assert_eq!(parts, vec![4, 2, 4]);
        assert_eq!(split_tokens(7, &["a"]), vec![7]);
        assert_eq!(split_tokens(3, &["", ""]).iter().sum::<u64>(), 3);
    }

    #[test]
    fn native_usage_by_family() {
        let claude = json!({"usage": {"input_tokens": 5, "output_tokens": 7}});
        assert_eq!(native_usage(&claude).output_tokens, 7);
        let llama = json!({"prompt_token_count": 3, "generation_token_count": 4});
        assert_eq!(native_usage(&llama).input_tokens, 3);
        let titan = json!({"inputTextTokenCount": 9});
        assert_eq!(native_usage(&titan).input_tokens, 9);
    }
}

/// Where the Bedrock client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The built-in local server, started in-process.
    Local,
    /// Any Bedrock-compatible endpoint.
    Url(String),
    /// AWS, through the standard credential and endpoint chain.
    Aws,
}
