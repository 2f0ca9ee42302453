//! RetrieveAndGenerate's extractive answer, and a retrieved chunk in the API's shape: the
//! first sentence of each of the best chunks, each cited with the chunk it comes from, no
//! more than `maxTokens`; Bedrock's refusal text when nothing relevant was found.

use serde_json::{Value, json};

use crate::local_server::corpus::{Chunk, KnowledgeBase};
use crate::local_server::request_id;
use crate::local_server::text::count_tokens;

/// Chunks an extractive answer quotes from, at most.
const ANSWER_SOURCES: usize = 3;
/// What Bedrock answers when nothing relevant was retrieved.
const NO_ANSWER: &str = "Sorry, I am unable to assist you with this request.";

/// The first sentence of a chunk's first paragraph that is not a heading: a substring of
/// the chunk, so a citation's text is found in its source.
fn first_sentence(text: &str) -> &str {
    let start = text
        .split_inclusive('\n')
        .scan(0, |offset, line| {
            let at = *offset;
            *offset += line.len();
            Some((at, line))
        })
        .find(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .map_or(0, |(at, _)| at);
    let rest = &text[start..];
    let paragraph = rest.split("\n\n").next().unwrap_or(rest);
    let end = paragraph
        .char_indices()
        .find(|&(i, c)| {
            matches!(c, '.' | '!' | '?')
                && paragraph[i + 1..]
                    .chars()
                    .next()
                    .is_none_or(char::is_whitespace)
        })
        .map_or(paragraph.len(), |(i, _)| i + 1);
    paragraph[..end].trim()
}

/// A retrieved chunk in the API's shape (a result of Retrieve, a reference of a citation).
pub(super) fn reference(chunk: &Chunk, score: Option<f32>) -> Value {
    let mut value = json!({
        "content": {"text": chunk.text, "type": "TEXT"},
        "location": {"type": "S3", "s3Location": {"uri": chunk.uri}},
        "metadata": {"x-amz-bedrock-kb-source-uri": chunk.uri},
    });
    if let Some(score) = score {
        value["score"] = json!(score);
    }
    value
}

/// each sentence's citation; no more than `max_tokens`.
pub(super) fn generate_answer(kb: &KnowledgeBase, query: &str, k: usize, max_tokens: u64) -> Value {
    let mut output = String::new();
    let mut citations = Vec::new();
    for (chunk, score) in kb.search(query, k.min(ANSWER_SOURCES)) {
        if score <= 0.0 {
            break;
        }
        let sentence = first_sentence(&chunk.text);
        let separator = if output.is_empty() { "" } else { " " };
        if sentence.is_empty()
            || count_tokens(&output) + count_tokens(separator) + count_tokens(sentence) > max_tokens
        {
            break;
        }
        output.push_str(separator);
        output.push_str(sentence);
        citations.push(json!({
            "generatedResponsePart": {"textResponsePart": {"text": sentence}},
            "retrievedReferences": [reference(chunk, None)],
        }));
    }
    if output.is_empty() {
        output = NO_ANSWER.to_string();
    }
    json!({
        "sessionId": request_id(),
        "output": {"text": output},
        "citations": citations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local_server::corpus::load;

    fn corpus() -> KnowledgeBase {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("returns.md"),
            "# Returns\n\nRefunds reach the card within 5 business days. Keep the receipt.\n\nDamaged parcels are replaced for free.",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(
            dir.path().join("sub/shipping.txt"),
            "Orders ship from Lisbon on weekdays! Express delivery takes one day.",
        )
        .unwrap();
        std::fs::write(dir.path().join("ignored.pdf"), "not text").unwrap();
        load("KB1", dir.path()).unwrap()
    }

    #[test]
    fn chunks_rank_and_answer_with_citations() {
        let kb = corpus();
        assert_eq!(kb.chunks.len(), 2);
        assert_eq!(kb.chunks[0].uri, "s3://knowledge-base-kb1/returns.md");
        assert_eq!(kb.chunks[1].uri, "s3://knowledge-base-kb1/sub/shipping.txt");
        let found = kb.search("how many days until refunds reach my card", 5);
        assert_eq!(found[0].0.uri, "s3://knowledge-base-kb1/returns.md");
        assert!(found[0].1 > found[1].1);
        let answer = generate_answer(&kb, "when do orders ship from lisbon", 5, 2048);
        let citations = answer["citations"].as_array().unwrap();
        assert_eq!(
            citations[0]["generatedResponsePart"]["textResponsePart"]["text"],
            "Orders ship from Lisbon on weekdays!"
        );
        let cited = citations[0]["retrievedReferences"][0]["content"]["text"]
            .as_str()
            .unwrap();
        assert!(cited.contains("Orders ship from Lisbon on weekdays!"));
        assert_eq!(
            first_sentence(&kb.chunks[0].text),
            "Refunds reach the card within 5 business days."
        );
    }
}
