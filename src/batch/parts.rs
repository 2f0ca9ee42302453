//! Splitting the records of a run into Batch Inference input files. Each model's records
//! stream into `part-NNNNN.jsonl` files in RUN_DIR/batch (`{"recordId", "modelInput"}` lines,
//! what S3 receives) beside `part-NNNNN.records.jsonl` sidecars (who each line belongs to).
//! A part closes at `--records-per-job` records or near 1 GB; when the input ends, a last
//! part below the per-job minimum is rebalanced with the one before it, so no job is ever
//! created below the minimum. Record ids are `r` and the line's index in its part, ten
//! digits: alphanumeric, 11 characters, and a direct index into the sidecar.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;
use xxhash_rust::xxh3::Xxh3;

use crate::bedrock::wire::BatchKind;
use crate::vocab::RecordMeta;

/// Batch Inference's limits on one job's input.
pub const MIN_RECORDS: u64 = 100;
pub const MAX_RECORDS: u64 = 50_000;
/// Bytes of one input file: 1 GB, less a margin.
pub const MAX_FILE_BYTES: u64 = 1_000_000_000 - 1_000_000;

/// `{"recordId":"` before the id in every line this module writes.
const ID_AT: usize = 13;
const ID_LEN: usize = 11;

pub fn record_id(index: u64) -> String {
    format!("r{index:010}")
}

/// The line index a record id stands for.
pub fn index_of(record_id: &str) -> Option<usize> {
    record_id.strip_prefix('r')?.parse().ok()
}

/// A part's name: its input file, its sidecar and its job are named after it.
pub fn part_name(index: u32) -> String {
    format!("part-{index:05}")
}

pub fn input_path(dir: &Path, index: u32) -> PathBuf {
    dir.join(format!("{}.jsonl", part_name(index)))
}

pub fn sidecar_path(dir: &Path, index: u32) -> PathBuf {
    dir.join(format!("{}.records.jsonl", part_name(index)))
}

/// A finished input file.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub index: u32,
    pub model: String,
    pub kind: BatchKind,
    pub records: u64,
    pub bytes: u64,
    pub hash: String,
}

struct Open {
    part: Part,
    input: BufWriter<File>,
    sidecar: BufWriter<File>,
    hasher: Xxh3,
}

impl Open {
    fn create(dir: &Path, index: u32, model: &str, kind: BatchKind) -> std::io::Result<Open> {
        Ok(Open {
            part: Part {
                index,
                model: model.to_string(),
                kind,
                records: 0,
                bytes: 0,
                hash: String::new(),
            },
            input: BufWriter::new(File::create(input_path(dir, index))?),
            sidecar: BufWriter::new(File::create(sidecar_path(dir, index))?),
            hasher: Xxh3::new(),
        })
    }

    /// Writes one line whose id is already this part's next.
    fn write(&mut self, line: &[u8], meta: &[u8]) -> std::io::Result<()> {
        self.input.write_all(line)?;
        self.input.write_all(b"\n")?;
        self.hasher.update(line);
        self.hasher.update(b"\n");
        self.sidecar.write_all(meta)?;
        self.sidecar.write_all(b"\n")?;
        self.part.records += 1;
        self.part.bytes += line.len() as u64 + 1;
        Ok(())
    }

    fn close(mut self) -> std::io::Result<Part> {
        self.input.flush()?;
        self.input.get_ref().sync_all()?;
        self.sidecar.flush()?;
        self.sidecar.get_ref().sync_all()?;
        self.part.hash = format!("{:016x}", self.hasher.digest());
        Ok(self.part)
    }
}

/// What the spool made of the records.
#[derive(Debug, Default)]
pub struct Spooled {
    pub parts: Vec<Part>,
    /// Records of a model with fewer than the minimum in all: they cannot go in a job.
    pub too_few: Vec<(String, Vec<RecordMeta>)>,
}

/// Writes records into parts, one sequence of parts per model.
pub struct Spool {
    dir: PathBuf,
    next_index: u32,
    per_job: u64,
    max_bytes: u64,
    open: BTreeMap<String, Open>,
    closed: BTreeMap<String, Vec<Part>>,
}

impl Spool {
    /// A spool writing into `dir`, numbering parts from `first_index`.
    pub fn new(dir: &Path, first_index: u32, per_job: u64) -> std::io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        Ok(Spool {
            dir: dir.to_path_buf(),
            next_index: first_index,
            per_job: per_job.clamp(MIN_RECORDS, MAX_RECORDS),
            max_bytes: MAX_FILE_BYTES,
            open: BTreeMap::new(),
            closed: BTreeMap::new(),
        })
    }

    #[cfg(test)]
    fn with_max_bytes(mut self, max_bytes: u64) -> Spool {
        self.max_bytes = max_bytes;
        self
    }

    /// Adds one record of `model`.
    pub fn push(
        &mut self,
        model: &str,
        kind: BatchKind,
        meta: &RecordMeta,
        model_input: &Value,
    ) -> std::io::Result<()> {
        let input = serde_json::to_string(model_input)?;
        let meta = serde_json::to_vec(meta)?;
        let line_len = (input.len() + 40) as u64;
        let full = self.open.get(model).is_some_and(|open| {
            open.part.records >= self.per_job
                || (open.part.records > 0 && open.part.bytes + line_len > self.max_bytes)
        });
        if full && let Some(open) = self.open.remove(model) {
            let part = open.close()?;
            self.closed.entry(model.to_string()).or_default().push(part);
        }
        if !self.open.contains_key(model) {
            let index = self.next_index;
            self.next_index += 1;
            self.open.insert(
                model.to_string(),
                Open::create(&self.dir, index, model, kind)?,
            );
        }
        let Some(open) = self.open.get_mut(model) else {
            return Ok(());
        };
        let line = format!(
            "{{\"recordId\":\"{}\",\"modelInput\":{input}}}",
            record_id(open.part.records)
        );
        open.write(line.as_bytes(), &meta)
    }

    /// Closes every part and rebalances each model's last one.
    pub fn finish(mut self) -> std::io::Result<Spooled> {
        for (model, open) in std::mem::take(&mut self.open) {
            let part = open.close()?;
            self.closed.entry(model).or_default().push(part);
        }
        let mut spooled = Spooled::default();
        for (model, mut parts) in std::mem::take(&mut self.closed) {
            let short = parts.last().is_some_and(|p| p.records < MIN_RECORDS);
            if short && parts.len() == 1 {
                let part = parts.remove(0);
                let metas = read_sidecar(&self.dir, part.index)?;
                remove_files(&self.dir, part.index);
                spooled.too_few.push((model, metas));
                continue;
            }
            if short && let (Some(last), Some(before)) = (parts.pop(), parts.pop()) {
                let bytes = before.bytes + last.bytes;
                if bytes > self.max_bytes && before.records + last.records < 2 * MIN_RECORDS {
                    // Together they would pass AWS's 1 GB a file, apart the short one is
                    // below its 100 records a job: AWS takes neither, so the short part's
                    // records are handed back (to be sent on demand) and the full part goes.
                    let metas = read_sidecar(&self.dir, last.index)?;
                    remove_files(&self.dir, last.index);
                    spooled.too_few.push((model.clone(), metas));
                    parts.push(before);
                } else {
                    parts.extend(self.rebalance(before, last)?);
                }
            }
            spooled.parts.extend(parts);
        }
        spooled.parts.sort_by_key(|p| p.index);
        Ok(spooled)
    }

    /// Rewrites two parts (the second below the minimum) as one part, or as two halves
    /// when one would be too large; both halves then hold at least the minimum.
    fn rebalance(&self, first: Part, second: Part) -> std::io::Result<Vec<Part>> {
        let total = first.records + second.records;
        let too_big = total > self.per_job || first.bytes + second.bytes > self.max_bytes;
        let split = too_big && total >= 2 * MIN_RECORDS;
        let first_share = if split { total.div_ceil(2) } else { total };
        let (tmp_first, tmp_second) = (first.index + 1_000_000, second.index + 1_000_000);
        for (from, to) in [(first.index, tmp_first), (second.index, tmp_second)] {
            std::fs::rename(input_path(&self.dir, from), input_path(&self.dir, to))?;
            std::fs::rename(sidecar_path(&self.dir, from), sidecar_path(&self.dir, to))?;
        }
        let mut out = vec![Open::create(
            &self.dir,
            first.index,
            &first.model,
            first.kind,
        )?];
        for tmp in [tmp_first, tmp_second] {
            let lines = BufReader::new(File::open(input_path(&self.dir, tmp))?).lines();
            let metas = BufReader::new(File::open(sidecar_path(&self.dir, tmp))?).lines();
            for (line, meta) in lines.zip(metas) {
                let (mut line, meta) = (line?, meta?);
                if out.len() == 1 && out[0].part.records >= first_share {
                    out.push(Open::create(
                        &self.dir,
                        second.index,
                        &second.model,
                        second.kind,
                    )?);
                }
                let Some(open) = out.last_mut() else { break };
                if line.len() < ID_AT + ID_LEN {
                    return Err(std::io::Error::other("a spooled line is too short"));
                }
                line.replace_range(ID_AT..ID_AT + ID_LEN, &record_id(open.part.records));
                open.write(line.as_bytes(), meta.as_bytes())?;
            }
            remove_files(&self.dir, tmp);
        }
        out.into_iter().map(Open::close).collect()
    }
}

fn remove_files(dir: &Path, index: u32) {
    let _ = std::fs::remove_file(input_path(dir, index));
    let _ = std::fs::remove_file(sidecar_path(dir, index));
}

/// The records of a part, in line order.
pub fn read_sidecar(dir: &Path, index: u32) -> std::io::Result<Vec<RecordMeta>> {
    let path = sidecar_path(dir, index);
    let file = File::open(&path)
        .map_err(|err| std::io::Error::new(err.kind(), format!("{}: {err}", path.display())))?;
    BufReader::new(file)
        .lines()
        .map(|line| {
            let line = line?;
            serde_json::from_str(&line)
                .map_err(|err| std::io::Error::other(format!("{}: {err}", path.display())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(number: u64) -> RecordMeta {
        RecordMeta {
            number,
            line: number,
            id: json!(format!("id-{number}")),
            kept: None,
            warnings: Vec::new(),
            expected: None,
        }
    }

    fn spool(dir: &Path, per_job: u64, records: &[(&str, u64)]) -> Spooled {
        let mut spool = Spool::new(dir, 1, per_job).unwrap();
        let mut number = 0;
        for (model, n) in records {
            for _ in 0..*n {
                number += 1;
                spool
                    .push(
                        model,
                        BatchKind::Converse,
                        &meta(number),
                        &json!({"n": number}),
                    )
                    .unwrap();
            }
        }
        spool.finish().unwrap()
    }

    fn lines(dir: &Path, index: u32) -> Vec<Value> {
        std::fs::read_to_string(input_path(dir, index))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn record_ids_are_short_alphanumeric_and_index_the_part() {
        let id = record_id(49_999);
        assert_eq!(id.len(), 11);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(index_of(&id), Some(49_999));
        assert_eq!(index_of("x1"), None);
    }

    #[test]
    fn parts_close_at_the_per_job_count_and_the_last_is_rebalanced() {
        let dir = tempfile::tempdir().unwrap();
        // 250 records at 120 a job: 120, 120, 10. Halves of 130 would hold fewer than 100,
        // so the last two become one job of 130 (over --records-per-job, never under 100).
        let spooled = spool(dir.path(), 120, &[("m", 250)]);
        let counts: Vec<u64> = spooled.parts.iter().map(|p| p.records).collect();
        assert_eq!(counts.iter().sum::<u64>(), 250);
        assert_eq!(counts, vec![120, 130]);
        assert!(spooled.too_few.is_empty());
        // Every line's id indexes its sidecar, and every record is there once.
        let mut seen = Vec::new();
        for part in &spooled.parts {
            let metas = read_sidecar(dir.path(), part.index).unwrap();
            for (i, line) in lines(dir.path(), part.index).iter().enumerate() {
                assert_eq!(index_of(line["recordId"].as_str().unwrap()), Some(i));
                assert_eq!(line["modelInput"]["n"], json!(metas[i].number));
                seen.push(metas[i].number);
            }
        }
        seen.sort();
        assert_eq!(seen, (1..=250).collect::<Vec<_>>());
    }

    #[test]
    fn a_short_tail_splits_in_halves_when_one_job_would_be_too_big() {
        let dir = tempfile::tempdir().unwrap();
        let spooled = spool(dir.path(), 1000, &[("m", 2050)]);
        let counts: Vec<u64> = spooled.parts.iter().map(|p| p.records).collect();
        assert_eq!(counts, vec![1000, 525, 525]);
        let spooled = spool(dir.path(), 1000, &[("m", 1030)]);
        let counts: Vec<u64> = spooled.parts.iter().map(|p| p.records).collect();
        assert_eq!(counts, vec![515, 515]);
    }

    #[test]
    fn models_get_their_own_parts_and_too_few_records_are_handed_back() {
        let dir = tempfile::tempdir().unwrap();
        let spooled = spool(dir.path(), 50_000, &[("a", 150), ("b", 30)]);
        assert_eq!(spooled.parts.len(), 1);
        assert_eq!(spooled.parts[0].model, "a");
        assert_eq!(spooled.too_few.len(), 1);
        assert_eq!(spooled.too_few[0].0, "b");
        assert_eq!(spooled.too_few[0].1.len(), 30);
        assert!(
            !input_path(dir.path(), 2).exists(),
            "the short part is removed"
        );
    }

    #[test]
    fn large_records_never_make_a_file_past_the_byte_limit() {
        let dir = tempfile::tempdir().unwrap();
        // Lines of about 60 bytes, 110 to a file: 110 then 40, which together pass the
        // limit and apart leave 40, below a job's minimum.
        let mut spool = Spool::new(dir.path(), 1, 50_000)
            .unwrap()
            .with_max_bytes(110 * 60);
        for n in 0..150 {
            spool
                .push("m", BatchKind::Converse, &meta(n), &json!({"n": n}))
                .unwrap();
        }
        let spooled = spool.finish().unwrap();
        for part in &spooled.parts {
            assert!(part.bytes <= 110 * 60, "{part:?}");
            assert!(part.records >= MIN_RECORDS, "{part:?}");
        }
        let handed_back: usize = spooled.too_few.iter().map(|(_, m)| m.len()).sum();
        let sent: u64 = spooled.parts.iter().map(|p| p.records).sum();
        assert!(handed_back > 0);
        assert_eq!(sent + handed_back as u64, 150);
    }

    /// At the real limit: records of 6 MB (images and documents) make 1.2 GB, which goes
    /// out as files AWS takes, none over 1 GB, none under 100 records.
    #[test]
    #[ignore = "slow: scripts/test --all"]
    fn records_of_6_mb_split_into_files_under_1_gb() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::new(dir.path(), 1, 50_000).unwrap();
        let text = "x".repeat(6_000_000);
        for n in 0..200 {
            spool
                .push("m", BatchKind::Converse, &meta(n), &json!({"text": text}))
                .unwrap();
        }
        let spooled = spool.finish().unwrap();
        let mut sent = 0;
        for part in &spooled.parts {
            let on_disk = std::fs::metadata(input_path(dir.path(), part.index))
                .unwrap()
                .len();
            assert!(on_disk < 1_000_000_000, "{part:?}: {on_disk} bytes");
            assert!(part.records >= MIN_RECORDS, "{part:?}");
            sent += part.records;
        }
        assert!(spooled.parts.len() >= 2, "{:?}", spooled.parts);
        let handed_back: usize = spooled.too_few.iter().map(|(_, m)| m.len()).sum();
        assert_eq!(sent + handed_back as u64, 200);
    }

    #[test]
    fn parts_close_before_the_byte_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::new(dir.path(), 1, 50_000)
            .unwrap()
            .with_max_bytes(100 * 60);
        for n in 0..300 {
            spool
                .push("m", BatchKind::Converse, &meta(n), &json!({"n": n}))
                .unwrap();
        }
        let spooled = spool.finish().unwrap();
        assert!(spooled.parts.len() >= 2);
        assert!(spooled.parts.iter().all(|p| p.records >= MIN_RECORDS));
        assert!(spooled.parts.iter().all(|p| p.bytes <= 100 * 60));
        // A short tail that would make its neighbour pass the limit is handed back.
        let handed_back: u64 = spooled.too_few.iter().map(|(_, m)| m.len() as u64).sum();
        assert_eq!(
            spooled.parts.iter().map(|p| p.records).sum::<u64>() + handed_back,
            300
        );
    }
}
