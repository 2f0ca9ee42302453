//! The one place that talks to `aws-sdk-bedrockagentruntime`: a Knowledge Base queried with
//! Retrieve (ranked passages) or RetrieveAndGenerate (an answer with citations), one record
//! a call, as a [`Service`] the on-demand pool drives like Bedrock Runtime. The client is
//! built from the run's shared SDK configuration (SDK retries off: the pool retries) and
//! errors are classified by `bedrock::errors`, so throttles, fatal errors and retries mean
//! the same in every mode. RetrieveAndGenerate takes a model ARN: an inference-profile id
//! becomes its profile's ARN, whose account STS GetCallerIdentity tells, asked once.

use std::future::Future;
use std::sync::Arc;

use aws_sdk_bedrockagentruntime::Client;
use aws_sdk_bedrockagentruntime::error::BuildError;
use aws_sdk_bedrockagentruntime::types::{
    GenerationConfiguration, InferenceConfig, KnowledgeBaseQuery,
    KnowledgeBaseRetrievalConfiguration, KnowledgeBaseRetrieveAndGenerateConfiguration,
    KnowledgeBaseVectorSearchConfiguration, PromptTemplate, RetrievalResultContent,
    RetrievalResultLocation, RetrieveAndGenerateConfiguration, RetrieveAndGenerateInput,
    RetrieveAndGenerateType, TextInferenceConfig,
};

use crate::bedrock::errors::classify;
use crate::engine::Service;
use crate::rules::model_id::{ModelId, Scope};
use crate::vocab::{Answer, CallError, Citation, ErrorKind, Passage, Payload, Source};

/// How RetrieveAndGenerate generates: the prompt template and the inference settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Generation {
    /// Bedrock's `promptTemplate` (with `$search_results$`); the knowledge base's own when
    /// `None`.
    pub template: Option<String>,
    pub max_tokens: Option<i32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub stop: Vec<String>,
}

/// What every call to one knowledge base shares.
#[derive(Debug, Clone)]
pub struct Settings {
    pub id: String,
    /// The region the client resolved: model ids become foundation-model ARNs there.
    pub region: String,
    /// Passages retrieved per query.
    pub top_k: u32,
    pub generation: Generation,
}

/// A knowledge base behind `bedrock-agent-runtime`.
#[derive(Clone)]
pub struct KnowledgeBase {
    client: Client,
    /// Asked the caller's account the first time a record names an inference profile.
    sts: aws_sdk_sts::Client,
    account: Arc<tokio::sync::OnceCell<String>>,
    settings: Arc<Settings>,
}

/// Whether `model` is a cross-region inference-profile id (`us.anthropic...`), which
/// RetrieveAndGenerate takes only as the profile's ARN.
fn is_profile_id(model: &str) -> bool {
    !model.starts_with("arn:")
        && ModelId::parse(model).is_some_and(|id| id.scope != Scope::InRegion)
}

/// The model ARN RetrieveAndGenerate wants: ARNs as given, inference-profile ids as
/// profiles of `account` in `region`, other ids as foundation models of `region`.
pub fn model_arn(model: &str, region: &str, account: Option<&str>) -> String {
    match account {
        _ if model.starts_with("arn:") => model.to_string(),
        Some(account) if is_profile_id(model) => {
            format!("arn:aws:bedrock:{region}:{account}:inference-profile/{model}")
        }
        _ => format!("arn:aws:bedrock:{region}::foundation-model/{model}"),
    }
}

/// The URI of a passage's source, whatever the data source kind.
fn uri_of(location: Option<&RetrievalResultLocation>) -> Option<String> {
    let location = location?;
    let uri = location
        .s3_location()
        .and_then(|l| l.uri())
        .or_else(|| location.web_location().and_then(|l| l.url()))
        .or_else(|| location.confluence_location().and_then(|l| l.url()))
        .or_else(|| location.salesforce_location().and_then(|l| l.url()))
        .or_else(|| location.share_point_location().and_then(|l| l.url()))
        .or_else(|| location.kendra_document_location().and_then(|l| l.uri()))
        .or_else(|| location.custom_document_location().and_then(|l| l.id()));
    uri.map(str::to_string)
}

fn text_of(content: Option<&RetrievalResultContent>) -> String {
    content.map(|c| c.text().to_string()).unwrap_or_default()
}

fn build_error(err: BuildError) -> CallError {
    CallError::new(ErrorKind::Other, err.to_string())
}

impl KnowledgeBase {
    pub fn new(sdk_config: &aws_config::SdkConfig, settings: Settings) -> Self {
        KnowledgeBase {
            client: Client::new(sdk_config),
            sts: aws_sdk_sts::Client::new(sdk_config),
            account: Arc::default(),
            settings: Arc::new(settings),
        }
    }

    /// The account of the credentials, from STS GetCallerIdentity: asked once, by the first
    /// record that needs it (a failure is the record's error, fatal when access is denied).
    async fn account(&self) -> Result<&str, CallError> {
        let account = self
            .account
            .get_or_try_init(|| async {
                let out = self
                    .sts
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(classify)?;
                out.account()
                    .map(str::to_string)
                    .ok_or_else(|| CallError::new(ErrorKind::Other, "no Account in the answer"))
            })
            .await
            .map_err(|err| CallError {
                message: format!(
                    "STS GetCallerIdentity, asked for the account of the inference profile's ARN RetrieveAndGenerate needs, failed: {} (or pass the profile's ARN as --model)",
                    err.message
                ),
                ..err
            })?;
        Ok(account)
    }

    /// Sends one query (knowledge bases take one a call) and returns its answer.
    pub async fn call(&self, model: &str, payloads: &[&Payload]) -> Result<Vec<Answer>, CallError> {
        match payloads {
            [Payload::Retrieve { query }] => Ok(vec![self.retrieve(query).await?]),
            [Payload::Rag { query }] => Ok(vec![self.retrieve_and_generate(model, query).await?]),
            _ => Err(CallError::new(
                ErrorKind::Other,
                "a knowledge base answers one retrieve or rag query a call",
            )),
        }
    }

    fn retrieval_configuration(&self) -> KnowledgeBaseRetrievalConfiguration {
        KnowledgeBaseRetrievalConfiguration::builder()
            .vector_search_configuration(
                KnowledgeBaseVectorSearchConfiguration::builder()
                    .number_of_results(self.settings.top_k as i32)
                    .build(),
            )
            .build()
    }

    async fn retrieve(&self, query: &str) -> Result<Answer, CallError> {
        let out = self
            .client
            .retrieve()
            .knowledge_base_id(&self.settings.id)
            .retrieval_query(KnowledgeBaseQuery::builder().text(query).build())
            .retrieval_configuration(self.retrieval_configuration())
            .send()
            .await
            .map_err(classify)?;
        let passages = out
            .retrieval_results()
            .iter()
            .map(|result| Passage {
                text: text_of(result.content()),
                score: result.score(),
                uri: uri_of(result.location()),
            })
            .collect();
        Ok(Answer::Retrieved { passages })
    }

    fn generation_configuration(&self) -> Option<GenerationConfiguration> {
        let g = &self.settings.generation;
        let inference = (g.max_tokens.is_some()
            || g.temperature.is_some()
            || g.top_p.is_some()
            || !g.stop.is_empty())
        .then(|| {
            InferenceConfig::builder()
                .text_inference_config(
                    TextInferenceConfig::builder()
                        .set_max_tokens(g.max_tokens)
                        .set_temperature(g.temperature)
                        .set_top_p(g.top_p)
                        .set_stop_sequences((!g.stop.is_empty()).then(|| g.stop.clone()))
                        .build(),
                )
                .build()
        });
        (inference.is_some() || g.template.is_some()).then(|| {
            GenerationConfiguration::builder()
                .set_prompt_template(g.template.as_ref().map(|text| {
                    PromptTemplate::builder()
                        .text_prompt_template(text.clone())
                        .build()
                }))
                .set_inference_config(inference)
                .build()
        })
    }

    async fn retrieve_and_generate(&self, model: &str, query: &str) -> Result<Answer, CallError> {
        let settings = &self.settings;
        let account = match is_profile_id(model) {
            true => Some(self.account().await?),
            false => None,
        };
        let configuration = RetrieveAndGenerateConfiguration::builder()
            .r#type(RetrieveAndGenerateType::KnowledgeBase)
            .knowledge_base_configuration(
                KnowledgeBaseRetrieveAndGenerateConfiguration::builder()
                    .knowledge_base_id(&settings.id)
                    .model_arn(model_arn(model, &settings.region, account))
                    .retrieval_configuration(self.retrieval_configuration())
                    .set_generation_configuration(self.generation_configuration())
                    .build()
                    .map_err(build_error)?,
            )
            .build()
            .map_err(build_error)?;
        let out = self
            .client
            .retrieve_and_generate()
            .input(
                RetrieveAndGenerateInput::builder()
                    .text(query)
                    .build()
                    .map_err(build_error)?,
            )
            .retrieve_and_generate_configuration(configuration)
            .send()
            .await
            .map_err(classify)?;
        let citations = out
            .citations()
            .iter()
            .map(|citation| Citation {
                text: citation
                    .generated_response_part()
                    .and_then(|part| part.text_response_part())
                    .and_then(|part| part.text())
                    .unwrap_or_default()
                    .to_string(),
                sources: citation
                    .retrieved_references()
                    .iter()
                    .map(|reference| Source {
                        uri: uri_of(reference.location()),
                        text: text_of(reference.content()),
                    })
                    .collect(),
            })
            .collect();
        Ok(Answer::Generated {
            output: out
                .output()
                .map(|o| o.text().to_string())
                .unwrap_or_default(),
            citations,
        })
    }
}

impl Service for KnowledgeBase {
    fn call(
        &self,
        model: &str,
        _tier: Option<crate::vocab::ServiceTier>,
        payloads: &[&Payload],
    ) -> impl Future<Output = Result<Vec<Answer>, CallError>> + Send {
        KnowledgeBase::call(self, model, payloads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_become_foundation_model_or_profile_arns() {
        let haiku = "anthropic.claude-3-haiku-20240307-v1:0";
        assert_eq!(
            model_arn(haiku, "eu-west-1", None),
            format!("arn:aws:bedrock:eu-west-1::foundation-model/{haiku}")
        );
        assert_eq!(
            model_arn(haiku, "eu-west-1", Some("111122223333")),
            format!("arn:aws:bedrock:eu-west-1::foundation-model/{haiku}")
        );
        for profile in [format!("eu.{haiku}"), format!("global.{haiku}")] {
            assert!(is_profile_id(&profile), "{profile}");
            assert_eq!(
                model_arn(&profile, "eu-west-1", Some("111122223333")),
                format!("arn:aws:bedrock:eu-west-1:111122223333:inference-profile/{profile}")
            );
        }
        let arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.x";
        assert!(!is_profile_id(arn));
        assert_eq!(model_arn(arn, "eu-west-1", Some("111122223333")), arn);
    }
}
