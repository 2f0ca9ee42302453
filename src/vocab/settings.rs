//! The request settings of a run: the one parameter list every stage reads.

use std::sync::Arc;

use super::schema::{OutputSchema, SchemaRoute};
use super::template::{Template, TemplateError};
use super::{DocumentInput, Mode, ServiceTier};

/// How records become requests, and what every call sends beyond its record: built once by
/// `config` from the flags, read by `job` (preparing records), the engines and the SDK
/// calls (`bedrock`), and the store (the run's parameters a rerun must match).
#[derive(Debug, Clone)]
pub struct RequestSettings {
    pub model: String,
    pub mode: Mode,
    pub template: Template,
    /// The template as given, for the run's fingerprint.
    pub template_text: String,
    pub system: Option<String>,
    pub max_tokens: Option<i32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub stop: Vec<String>,
    pub dimensions: Option<u32>,
    pub normalize: bool,
    pub input_type: String,
    pub batch_size: usize,
    pub keep_fields: Vec<String>,
    /// The record field (or CSV column) holding images, and the one holding documents.
    pub image_field: String,
    pub document_field: String,
    /// Documents sent with every record (`--document`), ahead of the record's own.
    pub shared_documents: Vec<DocumentInput>,
    /// Where they came from, for the run's fingerprint.
    pub shared_document_paths: Vec<String>,
    pub cache_prompt: bool,
    pub stream: bool,
    /// `--schema`: sent with every Converse call, so counted in every input estimate.
    pub schema: Option<Arc<OutputSchema>>,
    /// `--id-field`: the field holding each record's id.
    pub id_field: Option<String>,
    /// How the schema is sent: native structured output or a forced tool.
    pub schema_route: SchemaRoute,
    /// `--service-tier`, for records that name none.
    pub service_tier: Option<ServiceTier>,
    /// The record field naming the sources a good knowledge-base answer retrieves or cites.
    pub expected_field: Option<String>,
}

impl RequestSettings {
    /// Settings for `model` in `mode` with `template`, everything else as the flags'
    /// defaults are: what `config` starts from, and what tests use.
    pub fn plain(
        model: &str,
        mode: Mode,
        template: &str,
    ) -> Result<RequestSettings, TemplateError> {
        Ok(RequestSettings {
            model: model.into(),
            mode,
            template: Template::parse(template)?,
            template_text: template.into(),
            system: None,
            max_tokens: None,
            temperature: None,
            top_p: None,
            stop: vec![],
            dimensions: None,
            normalize: true,
            input_type: "search_document".into(),
            batch_size: 96,
            keep_fields: vec![],
            image_field: "images".into(),
            document_field: "documents".into(),
            shared_documents: vec![],
            shared_document_paths: vec![],
            cache_prompt: false,
            stream: false,
            schema: None,
            schema_route: SchemaRoute::Tool,
            service_tier: None,
            id_field: None,
            expected_field: None,
        })
    }
}
