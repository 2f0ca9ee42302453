//! Packing prepared records into tasks: Cohere Embed records of one model and tier share
//! a call, up to `--batch-size`; every other record is a call of its own.

use crate::rules::model_id::Family;
use crate::vocab::RequestSettings;
use crate::vocab::{Mode, Prepared, Task};

/// Packs prepared records into tasks: Cohere Embed records of one model share a call, up to
/// `batch_size`; everything else is one record a call.
pub struct Batcher {
    batch_size: usize,
    pending: Vec<Prepared>,
}

impl Batcher {
    pub fn new(settings: &RequestSettings) -> Batcher {
        let batch_size = if settings.mode == Mode::Embed {
            settings.batch_size
        } else {
            1
        };
        Batcher {
            batch_size,
            pending: Vec::new(),
        }
    }

    /// Adds a record; returns the tasks now ready (zero, one, or two when the model or the
    /// tier changed).
    pub fn push(&mut self, prepared: Prepared) -> Vec<Task> {
        let batched =
            self.batch_size > 1 && Family::of(&prepared.model) == Some(Family::CohereEmbed);
        if !batched {
            let mut ready = self.flush();
            ready.push(Task {
                model: prepared.model.clone(),
                service_tier: prepared.service_tier,
                records: vec![prepared],
            });
            return ready;
        }
        let mut ready = Vec::new();
        if self
            .pending
            .first()
            .is_some_and(|p| p.model != prepared.model || p.service_tier != prepared.service_tier)
        {
            ready.extend(self.flush());
        }
        self.pending.push(prepared);
        if self.pending.len() >= self.batch_size {
            ready.extend(self.flush());
        }
        ready
    }

    /// The partial batch, if any.
    pub fn flush(&mut self) -> Vec<Task> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let records = std::mem::take(&mut self.pending);
        vec![Task {
            model: records[0].model.clone(),
            service_tier: records[0].service_tier,
            records,
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{records, settings};
    use super::super::{Fed, Feed};
    use super::*;
    use crate::job::media::MediaLoader;
    use crate::store::state::RecordSet;
    use serde_json::json;

    #[test]
    fn cohere_records_are_batched_per_model() {
        let s = settings("cohere.embed-english-v3", Mode::Embed, 2);
        let mut batcher = Batcher::new(&s);
        let feed = Feed::new(
            records(vec![
                json!({"text": "1"}),
                json!({"text": "2"}),
                json!({"text": "3"}),
                json!({"text": "4", "model": "cohere.embed-multilingual-v3"}),
            ]),
            s,
            None,
            RecordSet::default(),
            MediaLoader::new(std::path::Path::new("job.jsonl")),
        );
        let mut tasks = Vec::new();
        for fed in feed {
            let Fed::Ready(p) = fed.unwrap() else {
                panic!()
            };
            tasks.extend(batcher.push(*p));
        }
        tasks.extend(batcher.flush());
        let sizes: Vec<(String, usize)> = tasks
            .iter()
            .map(|t| (t.model.clone(), t.records.len()))
            .collect();
        assert_eq!(
            sizes,
            vec![
                ("cohere.embed-english-v3".to_string(), 2),
                ("cohere.embed-english-v3".to_string(), 1),
                ("cohere.embed-multilingual-v3".to_string(), 1)
            ]
        );
    }

    #[test]
    fn titan_records_go_one_a_call() {
        let s = settings("amazon.titan-embed-text-v2:0", Mode::Embed, 96);
        let mut batcher = Batcher::new(&s);
        let feed = Feed::new(
            records(vec![json!({"text": "1"}), json!({"text": "2"})]),
            s,
            None,
            RecordSet::default(),
            MediaLoader::new(std::path::Path::new("job.jsonl")),
        );
        let mut tasks = Vec::new();
        for fed in feed {
            let Fed::Ready(p) = fed.unwrap() else {
                panic!()
            };
            tasks.extend(batcher.push(*p));
        }
        assert_eq!(tasks.len(), 2);
        assert!(batcher.flush().is_empty());
    }
}
