//! The local server's knowledge bases as data: built once at start from a directory's .txt
//! and .md files, split into chunks of whole paragraphs, each embedded with the server's
//! own hashed embeddings; a query is embedded the same way and chunks ranked by cosine.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::embed::embed;

/// Dimensions of the chunk and query embeddings.
const DIMENSIONS: usize = 1024;
/// Paragraphs are packed into one chunk up to about this many words.
const CHUNK_WORDS: usize = 120;

/// One chunk of a source file.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// `s3://knowledge-base-{id}/{path in DIR}`.
    pub uri: String,
    pub text: String,
    vector: Vec<f32>,
}

#[derive(Debug, Clone, Default)]
pub struct KnowledgeBase {
    pub chunks: Vec<Chunk>,
}

/// A knowledge base that cannot be built from its directory.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read knowledge base {id:?} from {path}: {source}")]
    Read {
        id: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("knowledge base {id:?}: {dir} holds no .txt or .md file with text")]
    Empty { id: String, dir: PathBuf },
}

/// Builds every knowledge base of `configured` (id, directory).
pub fn load_all(
    configured: &[(String, PathBuf)],
) -> Result<HashMap<String, KnowledgeBase>, LoadError> {
    configured
        .iter()
        .map(|(id, dir)| Ok((id.clone(), load(id, dir)?)))
        .collect()
}

/// The .txt and .md files under `dir`, in path order so chunks and ranks are stable.
fn source_files(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            source_files(&path, found)?;
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("txt") || e.eq_ignore_ascii_case("md"))
        {
            found.push(path);
        }
    }
    found.sort();
    Ok(())
}

/// Builds knowledge base `id` from `dir`.
pub fn load(id: &str, dir: &Path) -> Result<KnowledgeBase, LoadError> {
    let read_error = |path: &Path| {
        let (id, path) = (id.to_string(), path.to_path_buf());
        move |source| LoadError::Read { id, path, source }
    };
    let mut files = Vec::new();
    source_files(dir, &mut files).map_err(read_error(dir))?;
    let mut chunks = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(read_error(&file))?;
        let relative = file.strip_prefix(dir).unwrap_or(&file);
        let key: Vec<String> = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let uri = format!(
            "s3://knowledge-base-{}/{}",
            id.to_lowercase(),
            key.join("/")
        );
        for text in chunk(&text) {
            let vector = embed(&text, DIMENSIONS, true);
            chunks.push(Chunk {
                uri: uri.clone(),
                text,
                vector,
            });
        }
    }
    if chunks.is_empty() {
        return Err(LoadError::Empty {
            id: id.to_string(),
            dir: dir.to_path_buf(),
        });
    }
    Ok(KnowledgeBase { chunks })
}

/// Splits `text` into chunks of whole paragraphs of about [`CHUNK_WORDS`] words (a longer
/// paragraph is a chunk of its own).
fn chunk(text: &str) -> Vec<String> {
    let mut chunks = Vec::new();
    let (mut current, mut words) = (String::new(), 0);
    for paragraph in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        let n = paragraph.split_whitespace().count();
        if words > 0 && words + n > CHUNK_WORDS {
            chunks.push(std::mem::take(&mut current));
            words = 0;
        }
        if !current.is_empty() {
            current.push_str("\n\n");
        }
        current.push_str(paragraph);
        words += n;
    }
    if !current.trim().is_empty() {
        chunks.push(current);
    }
    chunks
}

impl KnowledgeBase {
    /// The `k` chunks nearest `query`, best first (ties in corpus order).
    pub fn search(&self, query: &str, k: usize) -> Vec<(&Chunk, f32)> {
        let query = embed(query, DIMENSIONS, true);
        let mut scored: Vec<(&Chunk, f32)> = self
            .chunks
            .iter()
            .map(|c| (c, c.vector.iter().zip(&query).map(|(a, b)| a * b).sum()))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.truncate(k);
        scored
    }
}
