//! Model identifiers as Bedrock accepts them: plain base ids
//! (`anthropic.claude-3-haiku-20240307-v1:0`), cross-region inference profiles
//! (`us.anthropic...`, `global.anthropic...`) and ARNs of foundation models or profiles.
//! Everything that needs "which model is this really" (model families in the local server,
//! prices) goes through [`base_model_id`] so the rules live in one place.

/// Geography prefixes of cross-region inference profiles.
const PROFILE_PREFIXES: &[&str] = &[
    "us-gov.", "global.", "apac.", "us.", "eu.", "jp.", "au.", "ca.",
];

/// The foundation model behind `id`: strips an ARN down to its resource name and removes a
/// cross-region inference-profile prefix.
pub fn base_model_id(id: &str) -> &str {
    let id = id.trim();
    let id = if id.starts_with("arn:") {
        id.rsplit('/').next().unwrap_or(id)
    } else {
        id
    };
    PROFILE_PREFIXES
        .iter()
        .find_map(|prefix| id.strip_prefix(prefix))
        .unwrap_or(id)
}

/// The kinds of model the product (and the local server) knows how to talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Anthropic Claude: Converse, or InvokeModel with the Messages body.
    Anthropic,
    /// Meta Llama: Converse, or InvokeModel with `prompt` / `max_gen_len`.
    Llama,
    /// Amazon Nova, Mistral, Titan Text, Cohere Command, AI21...: Converse only here.
    OtherText,
    /// Amazon Titan Text Embeddings v1: `inputText`, 1536 dimensions.
    TitanEmbedV1,
    /// Amazon Titan Text Embeddings v2: `inputText`, `dimensions`, `normalize`.
    TitanEmbedV2,
    /// Cohere Embed v3: up to 96 `texts` per call.
    CohereEmbed,
}

impl Family {
    /// The family of a model id, or `None` when the id names no model Bedrock serves.
    pub fn of(model_id: &str) -> Option<Family> {
        let base = base_model_id(model_id);
        let family = if base.starts_with("anthropic.") {
            Family::Anthropic
        } else if base.starts_with("meta.llama") {
            Family::Llama
        } else if base.starts_with("amazon.titan-embed-text-v2") {
            Family::TitanEmbedV2
        } else if base.starts_with("amazon.titan-embed-text-v1")
            || base.starts_with("amazon.titan-embed-g1-text")
        {
            Family::TitanEmbedV1
        } else if base.starts_with("cohere.embed-") {
            Family::CohereEmbed
        } else if [
            "amazon.nova-",
            "amazon.titan-text-",
            "mistral.",
            "cohere.command",
            "ai21.",
            "deepseek.",
            "writer.",
            "qwen.",
            "openai.",
        ]
        .iter()
        .any(|prefix| base.starts_with(prefix))
        {
            Family::OtherText
        } else {
            return None;
        };
        Some(family)
    }

    pub fn is_embedding(self) -> bool {
        matches!(
            self,
            Family::TitanEmbedV1 | Family::TitanEmbedV2 | Family::CohereEmbed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_profiles_and_arns() {
        assert_eq!(
            base_model_id("us.anthropic.claude-3-5-haiku-20241022-v1:0"),
            "anthropic.claude-3-5-haiku-20241022-v1:0"
        );
        assert_eq!(
            base_model_id("global.anthropic.claude-sonnet-4-20250514-v1:0"),
            "anthropic.claude-sonnet-4-20250514-v1:0"
        );
        assert_eq!(
            base_model_id(
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.meta.llama3-2-3b-instruct-v1:0"
            ),
            "meta.llama3-2-3b-instruct-v1:0"
        );
        assert_eq!(
            base_model_id(
                "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0"
            ),
            "amazon.titan-embed-text-v2:0"
        );
        assert_eq!(
            base_model_id("amazon.nova-lite-v1:0"),
            "amazon.nova-lite-v1:0"
        );
    }

    #[test]
    fn families() {
        assert_eq!(
            Family::of("us.anthropic.claude-3-haiku-20240307-v1:0"),
            Some(Family::Anthropic)
        );
        assert_eq!(
            Family::of("meta.llama3-1-8b-instruct-v1:0"),
            Some(Family::Llama)
        );
        assert_eq!(
            Family::of("amazon.titan-embed-text-v2:0"),
            Some(Family::TitanEmbedV2)
        );
        assert_eq!(
            Family::of("amazon.titan-embed-text-v1"),
            Some(Family::TitanEmbedV1)
        );
        assert_eq!(
            Family::of("cohere.embed-multilingual-v3"),
            Some(Family::CohereEmbed)
        );
        assert_eq!(
            Family::of("amazon.nova-micro-v1:0"),
            Some(Family::OtherText)
        );
        assert_eq!(Family::of("openai.gpt-9"), Some(Family::OtherText));
        assert_eq!(Family::of("acme.unknown-model"), None);
        assert!(Family::CohereEmbed.is_embedding());
        assert!(!Family::Llama.is_embedding());
    }
}
