//! How well a knowledge base finds the right sources: per record, whether an expected
//! source URI was retrieved (or cited) and the rank of the first one; over a run, the hit
//! rate and the mean reciprocal rank. The sums are kept, not only the means, so a resumed
//! run goes on counting from the checkpointed summary.

use serde::{Deserialize, Serialize};

/// A scored result line's `hit` and `rank` (1-based, `null` on a miss).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Scored {
    pub hit: bool,
    pub rank: Option<u64>,
}

/// summary.json's `retrieval`: over ok lines whose record names expected sources.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Retrieval {
    /// Passages retrieved per query (`--top-k`).
    pub k: u32,
    /// Records scored.
    pub scored: u64,
    pub hits: u64,
    /// The sum of 1/rank over scored records (0 for a miss).
    pub reciprocal_rank_sum: f64,
    /// `hits / scored`; `null` before any record is scored.
    pub hit_rate: Option<f64>,
    /// `reciprocal_rank_sum / scored`.
    pub mrr: Option<f64>,
}

/// The 1-based rank of the first of `found` (best first) that is `expected`.
pub fn rank(expected: &[String], found: &[&str]) -> Scored {
    let rank = found
        .iter()
        .position(|uri| expected.iter().any(|e| e == uri))
        .map(|i| i as u64 + 1);
    Scored {
        hit: rank.is_some(),
        rank,
    }
}

impl Retrieval {
    pub fn new(k: u32) -> Retrieval {
        Retrieval {
            k,
            ..Retrieval::default()
        }
    }

    /// Counts one scored line.
    pub fn add(&mut self, scored: Scored) {
        self.scored += 1;
        if let Some(rank) = scored.rank {
            self.hits += 1;
            self.reciprocal_rank_sum += 1.0 / rank as f64;
        }
        let round = |x: f64| (x * 1e4).round() / 1e4;
        let n = self.scored as f64;
        self.hit_rate = Some(round(self.hits as f64 / n));
        self.mrr = Some(round(self.reciprocal_rank_sum / n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_rate_and_mrr_by_hand() {
        let expected = |uris: &[&str]| uris.iter().map(|u| u.to_string()).collect::<Vec<_>>();
        let found = ["s3://kb/a.md", "s3://kb/b.md", "s3://kb/c.md"];
        let first = rank(&expected(&["s3://kb/a.md"]), &found);
        assert_eq!(
            first,
            Scored {
                hit: true,
                rank: Some(1)
            }
        );
        // Either of two expected sources counts; the first found decides the rank.
        let third = rank(&expected(&["s3://kb/z.md", "s3://kb/c.md"]), &found);
        assert_eq!(third.rank, Some(3));
        let miss = rank(&expected(&["s3://kb/z.md"]), &found);
        assert_eq!(
            miss,
            Scored {
                hit: false,
                rank: None
            }
        );
        let mut retrieval = Retrieval::new(3);
        for scored in [first, third, miss] {
            retrieval.add(scored);
        }
        // 2 hits of 3; (1 + 1/3 + 0) / 3 = 0.4444.
        assert_eq!(retrieval.hit_rate, Some(0.6667));
        assert_eq!(retrieval.mrr, Some(0.4444));
    }
}
