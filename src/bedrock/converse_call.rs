//! Converse and ConverseStream calls: the messages and system blocks of a record (shared
//! documents, then its own media, then its text; cache points with `--cache-prompt`),
//! structured output, and the answer with its usage and tier read back.

use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    CachePointBlock, CachePointType, ContentBlock, ContentBlockDelta, ContentBlockStart,
    ConversationRole, ConverseStreamOutput, DocumentBlock, DocumentFormat, DocumentSource,
    ImageBlock, ImageFormat, ImageSource, InferenceConfiguration, Message, OutputConfig,
    SystemContentBlock, ToolConfiguration,
};
use serde_json::Value;

use super::errors::{classify, classify_stream};
use super::runtime::{Bedrock, service_tier, usage_of};
use super::tool;
use crate::vocab::schema::SchemaRoute;
use crate::vocab::{Answer, DocumentInput, ServiceTier, Usage};
use crate::vocab::{CallError, ErrorKind};
use crate::vocab::{ConverseInput, Prompt};

impl Bedrock {
    /// The messages and system blocks of a Converse call: shared documents, then the
    /// record's documents and images, then its text (models do better with media first);
    /// with `cache_prompt`, cache points after the system prompt and the shared documents.
    pub(super) fn converse_parts(
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

    pub(super) fn tool_config(&self) -> Result<Option<ToolConfiguration>, CallError> {
        match (&self.options.schema, self.options.schema_route) {
            (Some(schema), SchemaRoute::Tool) => tool::configuration(schema).map(Some),
            _ => Ok(None),
        }
    }

    pub(super) fn output_config(&self) -> Result<Option<OutputConfig>, CallError> {
        match (&self.options.schema, self.options.schema_route) {
            (Some(schema), SchemaRoute::Native) => tool::output_config(schema).map(Some),
            _ => Ok(None),
        }
    }

    /// The schema-checked `data` of an answer: the forced tool's input, or the JSON text
    /// of a native structured answer.
    pub(super) fn data(
        &self,
        tool_input: Option<Value>,
        text: &str,
    ) -> Result<Option<Value>, CallError> {
        tool::data(&self.options, tool_input, text)
    }

    pub(super) fn inference_config(input: &ConverseInput) -> Option<InferenceConfiguration> {
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

    pub(super) async fn converse(
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
    pub(super) async fn converse_stream(
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
}
