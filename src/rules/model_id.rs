//! Model identifiers as Bedrock accepts them: plain base ids
//! (`anthropic.claude-3-haiku-20240307-v1:0`), cross-region inference profiles
//! (`us.anthropic...`, `global.anthropic...`) and ARNs of foundation models or profiles.
//! Everything that needs "which model is this really" (model families in the local server,
//! prices) goes through [`base_model_id`] or [`ModelId::parse`] so the rules live in one
//! place.

/// Geography prefixes of cross-region inference profiles.
const PROFILE_PREFIXES: &[&str] = &[
    "us-gov.", "global.", "apac.", "us.", "eu.", "jp.", "au.", "ca.",
];

/// The foundation model behind `id`: strips an ARN down to its resource name and removes a
/// cross-region inference-profile prefix.
pub fn base_model_id(id: &str) -> &str {
    let id = resource(id);
    PROFILE_PREFIXES
        .iter()
        .find_map(|prefix| id.strip_prefix(prefix))
        .unwrap_or(id)
}

/// `id` without an ARN's `arn:...:kind/` head.
fn resource(id: &str) -> &str {
    let id = id.trim();
    if id.starts_with("arn:") {
        id.rsplit('/').next().unwrap_or(id)
    } else {
        id
    }
}

/// Where an id sends its calls, which is what regional prices depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// A `global.` inference profile: any commercial region.
    Global,
    /// A geographic inference profile (`us`, `eu`, `apac`, `jp`, ...), without its dot.
    Geography(&'a str),
    /// A plain id or a foundation-model ARN: the caller's own region.
    InRegion,
}

/// A model id taken apart: `[arn:...:resource/][profile.]provider.name[-YYYYMMDD][-vN[:M]]`.
///
/// Prices need the model's name on its own: matching ids by prefix made
/// `anthropic.claude-opus-4-5-...` inherit the price of `anthropic.claude-opus-4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelId<'a> {
    pub scope: Scope<'a>,
    pub provider: &'a str,
    /// `claude-opus-4-5`, `llama3-1-8b-instruct`, `titan-embed-text`.
    pub name: &'a str,
    /// The release date some providers put in ids (`20250929`).
    pub date: Option<&'a str>,
    /// The revision suffix without its dash: `v1:0`, `v2`, `1:0` (gpt-oss), `v1:0:200k`.
    pub version: Option<&'a str>,
}

impl<'a> ModelId<'a> {
    /// Takes `id` apart; `None` when it names no model (an application inference profile or
    /// provisioned model ARN ends in an opaque id, without a provider).
    pub fn parse(id: &'a str) -> Option<ModelId<'a>> {
        let base = base_model_id(id);
        let scope = match base_profile(id) {
            Some("global") => Scope::Global,
            Some(geography) => Scope::Geography(geography),
            None => Scope::InRegion,
        };
        let (provider, rest) = base.split_once('.')?;
        if provider.is_empty() || rest.is_empty() {
            return None;
        }
        let (rest, version) = match rest.rsplit_once('-') {
            Some((head, last)) if is_version(last) => (head, Some(last)),
            _ => (rest, None),
        };
        let (name, date) = match rest.rsplit_once('-') {
            Some((head, last)) if is_date(last) => (head, Some(last)),
            _ => (rest, None),
        };
        (!name.is_empty()).then_some(ModelId {
            scope,
            provider,
            name,
            date,
            version,
        })
    }
}

/// Whether Bedrock could serve `id` at all: an ARN (application inference profiles and
/// provisioned models end in opaque ids), or an id with a provider (`anthropic.`, `meta.`)
/// after any profile prefix. `claude-haiku` or `us.claude-haiku` are not, and no call can
/// tell more than that, so `run` refuses them before sending anything.
pub fn could_be_bedrock_id(id: &str) -> bool {
    id.trim().starts_with("arn:") || ModelId::parse(id).is_some()
}

/// The geography of a cross-region profile id (`us`, `global`), without the dot.
fn base_profile(id: &str) -> Option<&str> {
    let id = resource(id);
    PROFILE_PREFIXES
        .iter()
        .find(|prefix| id.starts_with(*prefix))
        .map(|prefix| prefix.trim_end_matches('.'))
}

/// `v1:0`, `v2`, `v0:2`, `v1:0:200k`, and gpt-oss's `1:0` (a bare number needs the colon,
/// or `claude-opus-4` would read as the model `claude-opus` at version 4).
fn is_version(segment: &str) -> bool {
    let (digits, needs_colon) = match segment.strip_prefix('v') {
        Some(rest) => (rest, false),
        None => (segment, true),
    };
    let mut parts = digits.split(':');
    let major = parts.next().unwrap_or_default();
    let minor = parts.next();
    !major.is_empty()
        && major.bytes().all(|b| b.is_ascii_digit())
        && (minor.is_some() || !needs_colon)
        && minor.is_none_or(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
        && parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// `20250929`: eight digits.
fn is_date(segment: &str) -> bool {
    segment.len() == 8 && segment.bytes().all(|b| b.is_ascii_digit())
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
            "moonshot.",
            "moonshotai.",
            "minimax.",
            "zai.",
            "google.",
            "nvidia.",
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

    fn parts(id: &str) -> (Scope<'_>, &str, &str, Option<&str>, Option<&str>) {
        let m = ModelId::parse(id).unwrap_or_else(|| panic!("{id} parses"));
        (m.scope, m.provider, m.name, m.date, m.version)
    }

    #[test]
    fn parses_every_id_form() {
        use Scope::*;
        let cases = [
            (
                "anthropic.claude-opus-4-5-20251101-v1:0",
                (
                    InRegion,
                    "anthropic",
                    "claude-opus-4-5",
                    Some("20251101"),
                    Some("v1:0"),
                ),
            ),
            (
                "anthropic.claude-opus-4-20250514-v1:0",
                (
                    InRegion,
                    "anthropic",
                    "claude-opus-4",
                    Some("20250514"),
                    Some("v1:0"),
                ),
            ),
            (
                "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                (
                    Geography("us"),
                    "anthropic",
                    "claude-sonnet-4-5",
                    Some("20250929"),
                    Some("v1:0"),
                ),
            ),
            (
                "global.anthropic.claude-haiku-4-5-20251001-v1:0",
                (
                    Global,
                    "anthropic",
                    "claude-haiku-4-5",
                    Some("20251001"),
                    Some("v1:0"),
                ),
            ),
            (
                "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.amazon.nova-lite-v1:0",
                (Geography("eu"), "amazon", "nova-lite", None, Some("v1:0")),
            ),
            (
                "arn:aws:bedrock:us-west-2::foundation-model/meta.llama3-1-70b-instruct-v1:0",
                (
                    InRegion,
                    "meta",
                    "llama3-1-70b-instruct",
                    None,
                    Some("v1:0"),
                ),
            ),
            (
                "amazon.titan-embed-text-v2:0",
                (InRegion, "amazon", "titan-embed-text", None, Some("v2:0")),
            ),
            (
                "amazon.titan-embed-g1-text-02",
                (InRegion, "amazon", "titan-embed-g1-text-02", None, None),
            ),
            (
                "cohere.embed-english-v3",
                (InRegion, "cohere", "embed-english", None, Some("v3")),
            ),
            (
                "openai.gpt-oss-120b-1:0",
                (InRegion, "openai", "gpt-oss-120b", None, Some("1:0")),
            ),
            (
                "mistral.mistral-large-2402-v1:0",
                (
                    InRegion,
                    "mistral",
                    "mistral-large-2402",
                    None,
                    Some("v1:0"),
                ),
            ),
            (
                "anthropic.claude-3-haiku-20240307-v1:0:200k",
                (
                    InRegion,
                    "anthropic",
                    "claude-3-haiku",
                    Some("20240307"),
                    Some("v1:0:200k"),
                ),
            ),
            (
                "anthropic.claude-opus-4",
                (InRegion, "anthropic", "claude-opus-4", None, None),
            ),
            (
                "anthropic.claude-sonnet-4-20250514",
                (
                    InRegion,
                    "anthropic",
                    "claude-sonnet-4",
                    Some("20250514"),
                    None,
                ),
            ),
        ];
        for (id, expected) in cases {
            assert_eq!(parts(id), expected, "{id}");
        }
        for opaque in [
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4",
            "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/xyz",
            "no-provider",
            "acme.",
        ] {
            assert_eq!(ModelId::parse(opaque), None, "{opaque}");
        }
    }

    #[test]
    fn ids_without_a_provider_cannot_be_bedrock_ids() {
        for id in [
            "anthropic.claude-3-haiku-20240307-v1:0",
            "us.anthropic.claude-3-haiku-20240307-v1:0",
            "acme.unknown-model-v1",
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4",
        ] {
            assert!(could_be_bedrock_id(id), "{id}");
        }
        for id in [
            "claude-haiku",
            "us.claude-haiku",
            "gpt-4o",
            "anthropic.",
            "",
        ] {
            assert!(!could_be_bedrock_id(id), "{id}");
        }
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
