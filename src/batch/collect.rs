//! Turning an ended job's output into outcomes: every `*.jsonl.out` file under
//! `<outputUri>/<jobId>/` is streamed line by line (lines come in any order), each
//! `recordId` is joined to its record through the part's sidecar, `modelOutput` becomes the
//! same answer an on-demand call gives and `error` an error line with the service's message;
//! records the job never answered become retryable `batch_incomplete` lines.

use std::time::Duration;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use super::job_state::PartState;
use super::parts::index_of;
use crate::bedrock::wire;
use crate::store::state::RecordSet;
use crate::vocab::RequestSettings;
use crate::vocab::{CallError, CallOutcome, ErrorKind, RecordMeta, RegionTries};

/// One line of a job's output. `modelInput` is skipped without being kept.
#[derive(Deserialize)]
struct OutputLine {
    #[serde(rename = "recordId")]
    record_id: String,
    #[serde(rename = "modelInput", default)]
    _model_input: Option<IgnoredAny>,
    #[serde(rename = "modelOutput", default)]
    model_output: Option<Value>,
    #[serde(default)]
    error: Option<OutputError>,
}

#[derive(Deserialize)]
struct OutputError {
    #[serde(rename = "errorCode", default)]
    code: Option<Value>,
    #[serde(rename = "errorMessage", default)]
    message: Option<String>,
}

/// The kind of a record error by its HTTP-like code.
fn kind_of(code: Option<&Value>) -> ErrorKind {
    let code = code.and_then(|c| c.as_u64().or_else(|| c.as_str()?.parse().ok()));
    match code {
        Some(400) => ErrorKind::Validation,
        Some(403) => ErrorKind::AccessDenied,
        Some(408) => ErrorKind::ModelTimeout,
        Some(424) => ErrorKind::ModelError,
        Some(429) => ErrorKind::Throttling,
        Some(500) => ErrorKind::InternalServer,
        Some(503) => ErrorKind::ServiceUnavailable,
        _ => ErrorKind::Other,
    }
}

/// What the run needs to turn output lines into outcomes.
pub struct Collector<'a> {
    pub options: &'a RequestSettings,
    pub region: &'a str,
    pub outcomes: &'a mpsc::Sender<CallOutcome>,
    /// Records the run owes an outcome (not already in results.jsonl).
    pub wanted: &'a RecordSet,
}

/// Counts of one part's collection.
#[derive(Debug, Default, PartialEq)]
pub struct Collected {
    pub ok: u64,
    pub failed: u64,
    /// Lines that named no record of the part, or one already seen.
    pub stray: u64,
}

impl Collector<'_> {
    fn outcome(
        &self,
        part: &PartState,
        meta: RecordMeta,
        result: Result<Vec<crate::vocab::Answer>, CallError>,
        latency: Duration,
    ) -> CallOutcome {
        CallOutcome {
            region: self.region.to_string(),
            regions: vec![RegionTries {
                region: self.region.to_string(),
                attempts: 1,
                throttles: 0,
            }],
            model: part.model.clone(),
            records: vec![meta],
            result,
            attempts: 1,
            retries: Vec::new(),
            service_tier: None,
            latency,
            batch_job: part.job_id().map(str::to_string),
        }
    }

    /// Reads `lines` (one output file) into outcomes; `seen` marks the part's lines.
    pub async fn read<R: tokio::io::AsyncBufRead + Unpin>(
        &self,
        part: &PartState,
        metas: &[RecordMeta],
        seen: &mut [bool],
        lines: R,
        latency: Duration,
        counts: &mut Collected,
    ) -> Result<(), String> {
        let mut lines = lines.lines();
        while let Some(line) = lines.next_line().await.map_err(|err| err.to_string())? {
            if line.trim().is_empty() {
                continue;
            }
            let Ok(parsed) = serde_json::from_str::<OutputLine>(&line) else {
                counts.stray += 1;
                continue;
            };
            let Some(index) = index_of(&parsed.record_id).filter(|i| *i < metas.len()) else {
                counts.stray += 1;
                continue;
            };
            if seen[index] {
                counts.stray += 1;
                continue;
            }
            seen[index] = true;
            let meta = &metas[index];
            if !self.wanted.contains(meta.number) {
                continue;
            }
            let result = match (parsed.model_output, parsed.error) {
                (Some(output), _) => {
                    wire::batch_answer(self.options, &part.model, part.kind, output)
                        .map(|a| vec![a])
                }
                (None, Some(error)) => Err(CallError::new(
                    kind_of(error.code.as_ref()),
                    error
                        .message
                        .unwrap_or_else(|| "the job reported an error for this record".into()),
                )),
                (None, None) => Err(CallError::new(
                    ErrorKind::BadResponse,
                    "the job's output line has neither modelOutput nor error",
                )),
            };
            if result.is_ok() {
                counts.ok += 1;
            } else {
                counts.failed += 1;
            }
            let outcome = self.outcome(part, meta.clone(), result, latency);
            if self.outcomes.send(outcome).await.is_err() {
                return Err("the run stopped taking results".into());
            }
        }
        Ok(())
    }

    /// Every wanted record the job did not answer: a retryable `batch_incomplete` line.
    pub async fn unanswered(
        &self,
        part: &PartState,
        metas: Vec<RecordMeta>,
        seen: &[bool],
        counts: &mut Collected,
    ) -> Result<(), String> {
        let why = match &part.message {
            Some(message) if !message.is_empty() => format!(" ({message})"),
            _ => String::new(),
        };
        let message = format!(
            "Batch Inference job {} ended {}{why} without answering this record; rerun with --retry-failed (add --via on-demand to finish it now)",
            part.job_id().unwrap_or("?"),
            part.status,
        );
        for (meta, seen) in metas.into_iter().zip(seen) {
            if *seen || !self.wanted.contains(meta.number) {
                continue;
            }
            counts.failed += 1;
            let error = CallError::new(ErrorKind::BatchIncomplete, message.clone());
            let outcome = self.outcome(part, meta, Err(error), Duration::ZERO);
            if self.outcomes.send(outcome).await.is_err() {
                return Err("the run stopped taking results".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bedrock::wire::BatchKind;
    use crate::vocab::Answer;
    use serde_json::json;

    fn meta(number: u64) -> RecordMeta {
        RecordMeta {
            number,
            line: number,
            id: json!(number),
            kept: None,
            warnings: Vec::new(),
            expected: None,
        }
    }

    #[tokio::test]
    async fn output_lines_join_their_records_in_any_order() {
        let options = RequestSettings::plain("m", crate::vocab::Mode::Converse, "{text}").unwrap();
        let part = PartState {
            index: 1,
            model: "m".into(),
            kind: BatchKind::Converse,
            records: 4,
            bytes: 0,
            hash: String::new(),
            job_arn: Some("arn:aws:bedrock:us-east-1:1:model-invocation-job/j1".into()),
            status: "PartiallyCompleted".into(),
            message: None,
            processed: None,
            ok: 0,
            failed: 0,
            collected: false,
        };
        let metas: Vec<RecordMeta> = (10..14).map(meta).collect();
        let mut wanted = RecordSet::default();
        for n in [10, 11, 12] {
            wanted.insert(n); // 13 is already in results.jsonl
        }
        let output = [
            json!({"recordId": "r0000000002", "modelInput": {"big": [1, 2]}, "error": {"errorCode": 400, "errorMessage": "bad input"}}),
            json!({"recordId": "r0000000000", "modelOutput": {"output": {"message": {"content": [{"text": "hi"}]}}, "stopReason": "end_turn", "usage": {"inputTokens": 3, "outputTokens": 1}}}),
            json!({"recordId": "r0000000003", "modelOutput": {"output": {"message": {"content": [{"text": "done before"}]}}}}),
            json!({"recordId": "r0000000000", "modelOutput": {}}),
            json!({"recordId": "nope"}),
        ]
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join("\n");
        let (tx, mut rx) = mpsc::channel(16);
        let collector = Collector {
            options: &options,
            region: "us-east-1",
            outcomes: &tx,
            wanted: &wanted,
        };
        let mut seen = vec![false; 4];
        let mut counts = Collected::default();
        collector
            .read(
                &part,
                &metas,
                &mut seen,
                output.as_bytes(),
                Duration::from_secs(5),
                &mut counts,
            )
            .await
            .unwrap();
        collector
            .unanswered(&part, metas.clone(), &seen, &mut counts)
            .await
            .unwrap();
        drop(tx);
        let mut got = Vec::new();
        while let Some(outcome) = rx.recv().await {
            got.push(outcome);
        }
        assert_eq!(
            counts,
            Collected {
                ok: 1,
                failed: 2,
                stray: 2
            }
        );
        assert_eq!(got.len(), 3, "records 10, 12 and 11; not 13");
        assert_eq!(got[0].records[0].number, 12);
        assert_eq!(
            got[0].result.as_ref().unwrap_err().kind,
            ErrorKind::Validation
        );
        assert_eq!(got[1].records[0].number, 10);
        assert!(
            matches!(&got[1].result.as_ref().unwrap()[0], Answer::Text { output, .. } if output == "hi")
        );
        assert_eq!(got[1].batch_job.as_deref(), Some("j1"));
        assert_eq!(got[2].records[0].number, 11);
        let err = got[2].result.as_ref().unwrap_err();
        assert_eq!(err.kind, ErrorKind::BatchIncomplete);
        assert!(
            err.message.contains("j1 ended PartiallyCompleted"),
            "{}",
            err.message
        );
        assert!(err.kind.retryable());
    }
}
