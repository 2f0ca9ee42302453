//! The local server's fake embedding model: feature hashing of lower-cased word unigrams
//! and bigrams, each adding +1 or -1 (a hashed sign) to a hashed dimension. Deterministic,
//! and meaningful enough for tests: texts sharing words score a higher cosine.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Seed for the feature hash: fixed so embeddings never change between releases.
const FEATURE_SEED: u64 = 0x6265_6472_6f63_6b21;

/// Embeds `text` into `dims` dimensions, L2-normalized when `normalize` is set.
pub fn embed(text: &str, dims: usize, normalize: bool) -> Vec<f32> {
    let mut vector = vec![0f32; dims.max(1)];
    let lowered = text.to_lowercase();
    let words: Vec<&str> = lowered
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let mut add = |feature: &str| {
        let h = xxh3_64_with_seed(feature.as_bytes(), FEATURE_SEED);
        let index = (h % vector.len() as u64) as usize;
        let sign = if h >> 63 == 1 { -1.0 } else { 1.0 };
        vector[index] += sign;
    };
    for word in &words {
        add(word);
    }
    for pair in words.windows(2) {
        add(&format!("{} {}", pair[0], pair[1]));
    }
    if normalize {
        let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            vector.iter_mut().for_each(|v| *v /= norm);
        }
    }
    vector
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (na * nb)
    }

    #[test]
    fn deterministic_and_normalized() {
        let a = embed("The quick brown fox", 256, true);
        assert_eq!(a, embed("the QUICK brown fox!", 256, true));
        let norm: f32 = a.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        let raw = embed("The quick brown fox", 256, false);
        assert!(raw.iter().any(|v| v.abs() >= 1.0));
    }

    #[test]
    fn similar_texts_score_higher() {
        let query = embed("refund for a damaged order", 1024, true);
        let near = embed("customer wants a refund for a damaged order", 1024, true);
        let far = embed("the weather in lisbon is sunny today", 1024, true);
        assert!(cosine(&query, &near) > 0.5);
        assert!(cosine(&query, &near) > cosine(&query, &far) + 0.3);
    }
}
