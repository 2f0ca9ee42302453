//! The local server's fake text model: token counts (about four characters a token, the
//! rule of thumb Bedrock's own docs give) and a deterministic extractive "summary" of the
//! prompt, cut by `maxTokens` and stop sequences exactly the way a real model's output is.

/// Sentences the fake model keeps from the prompt when nothing cuts it short.
const SUMMARY_SENTENCES: usize = 2;

/// Tokens in `text`: one per four characters, rounded up.
pub fn count_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// Tokens billed for `bytes` of a binary payload (documents).
pub fn count_bytes_tokens(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4)
}

/// Why generation ended, as Bedrock reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    EndTurn,
    MaxTokens,
    StopSequence(String),
}

impl StopReason {
    /// The Converse API spelling.
    pub fn converse_name(&self) -> &'static str {
        match self {
            StopReason::EndTurn => "end_turn",
            StopReason::MaxTokens => "max_tokens",
            StopReason::StopSequence(_) => "stop_sequence",
        }
    }
}

/// What the fake model answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub text: String,
    pub stop_reason: StopReason,
    pub output_tokens: u64,
}

/// Generates the reply to `prompt`: its first sentences, then cut at the earliest stop
/// sequence, then cut to `max_tokens`.
pub fn generate(prompt: &str, max_tokens: u64, stop_sequences: &[String]) -> Generation {
    write_out(summarize(prompt), max_tokens, stop_sequences)
}

/// `text` as the model writes it out: cut at the earliest stop sequence, then cut to
/// `max_tokens`.
pub fn write_out(mut text: String, max_tokens: u64, stop_sequences: &[String]) -> Generation {
    let mut stop_reason = StopReason::EndTurn;
    let earliest_stop = stop_sequences
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()).map(|at| (at, s)))
        .min_by_key(|(at, _)| *at);
    if let Some((at, sequence)) = earliest_stop {
        text.truncate(at);
        stop_reason = StopReason::StopSequence(sequence.clone());
    }
    if count_tokens(&text) > max_tokens {
        let keep = usize::try_from(max_tokens.saturating_mul(4)).unwrap_or(usize::MAX);
        if let Some((cut, _)) = text.char_indices().nth(keep) {
            text.truncate(cut);
        }
        stop_reason = StopReason::MaxTokens;
    }
    let output_tokens = count_tokens(&text);
    Generation {
        text,
        stop_reason,
        output_tokens,
    }
}

/// The first [`SUMMARY_SENTENCES`] sentences of `prompt`, whitespace collapsed.
pub fn summarize(prompt: &str) -> String {
    let words: Vec<&str> = prompt.split_whitespace().collect();
    if words.is_empty() {
        return "There is no text to summarize.".to_string();
    }
    let mut summary = String::new();
    let mut sentences = 0;
    for word in words {
        if !summary.is_empty() {
            summary.push(' ');
        }
        summary.push_str(word);
        if word.ends_with(['.', '!', '?']) {
            sentences += 1;
            if sentences == SUMMARY_SENTENCES {
                break;
            }
        }
    }
    summary
}

/// Splits generated text into stream deltas of about `tokens` tokens each, on character
/// boundaries, so concatenating the pieces gives the text back exactly.
pub fn stream_pieces(text: &str, tokens: usize) -> Vec<&str> {
    let chars_per_piece = tokens.max(1) * 4;
    let mut pieces = Vec::new();
    let mut start = 0;
    for (count, (at, _)) in text.char_indices().enumerate() {
        if count > 0 && count % chars_per_piece == 0 {
            pieces.push(&text[start..at]);
            start = at;
        }
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_four_chars_a_token() {
        assert_eq!(count_tokens(""), 0);
        assert_eq!(count_tokens("abc"), 1);
        assert_eq!(count_tokens("abcd"), 1);
        assert_eq!(count_tokens("abcde"), 2);
        assert_eq!(count_tokens("ééééé"), 2);
    }

    #[test]
    fn summary_keeps_first_two_sentences() {
        let g = generate(
            "The cat sat.  It was   happy! Then it left? Nobody knows.",
            100,
            &[],
        );
        assert_eq!(g.text, "The cat sat. It was happy!");
        assert_eq!(g.stop_reason, StopReason::EndTurn);
        assert_eq!(g.output_tokens, 7);
    }

    #[test]
    fn max_tokens_cuts() {
        let g = generate("A fairly long sentence without an end", 2, &[]);
        assert_eq!(g.text, "A fairly");
        assert_eq!(g.stop_reason, StopReason::MaxTokens);
        assert_eq!(g.output_tokens, 2);
    }

    #[test]
    fn earliest_stop_sequence_wins() {
        let stops = vec!["sat".to_string(), "cat".to_string()];
        let g = generate("The cat sat.", 100, &stops);
        assert_eq!(g.text, "The ");
        assert_eq!(g.stop_reason, StopReason::StopSequence("cat".into()));
    }

    #[test]
    fn pieces_reassemble() {
        let text = "héllo wörld, this is a stream of text";
        let pieces = stream_pieces(text, 1);
        assert!(pieces.len() > 5);
        assert_eq!(pieces.concat(), text);
        assert!(stream_pieces("", 3).is_empty());
    }
}
