//! The knowledge-base flags of `--mode retrieve` and `--mode rag` -> [`KnowledgeBaseSettings`]:
//! which knowledge base, how many passages, RetrieveAndGenerate's template, and with
//! `--local` the directory the built-in server serves.

use std::path::PathBuf;

use super::ConfigError;
use crate::cli::RunArgs;
use crate::vocab::Mode;

/// The knowledge base a retrieve or rag run queries.
#[derive(Debug, Clone, PartialEq)]
pub struct KnowledgeBaseSettings {
    pub id: String,
    /// Passages retrieved per query.
    pub top_k: u32,
    /// RetrieveAndGenerate's prompt template (with `$search_results$`).
    pub generation_template: Option<String>,
    /// With --local: the directory the local server builds KB `LOCALKBASE` from.
    pub local_dir: Option<PathBuf>,
}

/// The knowledge-base id `run --local --knowledge-base-dir DIR` serves (AWS's ids are ten
/// letters and digits).
pub const LOCAL_KNOWLEDGE_BASE: &str = "LOCALKBASE";

/// The knowledge-base settings of a retrieve or rag run (`None` for other modes), checked.
pub(super) fn knowledge_base(
    args: &RunArgs,
    mode: Mode,
) -> Result<Option<KnowledgeBaseSettings>, ConfigError> {
    let kb_mode = matches!(mode, Mode::Retrieve | Mode::Rag);
    if !kb_mode {
        if args.knowledge_base_id.is_some() || args.knowledge_base_dir.is_some() {
            return Err(
                "--knowledge-base-id and --knowledge-base-dir apply to --mode retrieve or rag"
                    .into(),
            );
        }
        if args.generation_template.is_some() {
            return Err("--generation-template applies to --mode rag".into());
        }
        return Ok(None);
    }
    if mode == Mode::Retrieve && args.generation_template.is_some() {
        return Err("--generation-template applies to --mode rag, not retrieve".into());
    }
    if let Some(template) = &args.generation_template
        && !template.contains("$search_results$")
    {
        return Err(
            "--generation-template must contain $search_results$, where Bedrock puts the retrieved passages"
                .into(),
        );
    }
    if !(1..=100).contains(&args.top_k) {
        return Err(format!("--top-k must be between 1 and 100, got {}", args.top_k).into());
    }
    if args.system.is_some() {
        return Err(
            "--system does not apply to knowledge-base modes: RetrieveAndGenerate takes instructions in --generation-template".into(),
        );
    }
    if args.knowledge_base_dir.is_some() && !args.local {
        return Err("--knowledge-base-dir needs --local (the built-in server serves it)".into());
    }
    let id = match (&args.knowledge_base_id, &args.knowledge_base_dir) {
        (Some(id), _) => id.trim().to_string(),
        (None, Some(_)) => LOCAL_KNOWLEDGE_BASE.to_string(),
        (None, None) => {
            return Err(format!(
                "--mode {} needs --knowledge-base-id KB (or --local --knowledge-base-dir DIR)",
                if mode == Mode::Rag { "rag" } else { "retrieve" }
            )
            .into());
        }
    };
    if id.is_empty() {
        return Err("--knowledge-base-id is empty".into());
    }
    Ok(Some(KnowledgeBaseSettings {
        id,
        top_k: args.top_k,
        generation_template: args.generation_template.clone(),
        local_dir: args.knowledge_base_dir.clone(),
    }))
}
