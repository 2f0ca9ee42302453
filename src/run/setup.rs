//! Setup mistakes found before anything starts: a job file with no records, a prompt
//! template naming fields no record has (a CSV column spelled otherwise, a CSV run without
//! `--prompt-template`), and an `--out` that is not a run directory (a folder of job files,
//! a file). Each is a usage error (exit 2) that names what the file or folder does have,
//! before any call is made or any run directory is created: found record by record, the same
//! mistake would fill a run directory with error lines and need `--fresh` once fixed.

use std::collections::BTreeSet;
use std::path::Path;

use super::RunError;
use crate::config::RunConfig;
use crate::job;
use crate::vocab::{BATCH_DIR, Mode, RESULTS_FILE, SCHEMA_FILE, SUMMARY_FILE};

/// Records read to learn the fields a job file has.
const SAMPLE: usize = 100;

/// The checks, in the order a user would want to hear of them.
pub fn check(config: &RunConfig) -> Result<(), RunError> {
    check_records(config)?;
    if !config.dry_run {
        check_out(&config.out_dir)?;
    }
    Ok(())
}

/// The job file has records, and the first ones have the fields the template uses.
fn check_records(config: &RunConfig) -> Result<(), RunError> {
    let path = &config.job_path;
    let mut fields = BTreeSet::new();
    let (mut records, mut unreadable) = (0, 0);
    let mut raw_messages = false;
    for record in job::read(path, config.format)?.take(SAMPLE) {
        match record? {
            Ok(record) => {
                records += 1;
                raw_messages |= record.fields.contains_key("messages");
                fields.extend(
                    record
                        .fields
                        .iter()
                        .filter(|(_, value)| !value.is_null())
                        .map(|(name, _)| name.clone()),
                );
            }
            Err(_) => unreadable += 1,
        }
    }
    if records == 0 && unreadable == 0 {
        return Err(RunError::Usage(format!(
            "{} has no records: nothing to run (a JSONL job file holds one JSON object a line; a CSV one, a header row and then a row a record)",
            path.display()
        )));
    }
    let request = &config.request;
    let templated = match request.mode {
        Mode::Invoke => false,
        // Records with their own Converse messages use no template.
        Mode::Converse => !raw_messages,
        Mode::Embed | Mode::Retrieve | Mode::Rag => true,
    };
    if !templated || records == 0 {
        return Ok(());
    }
    let missing: Vec<&str> = request
        .template
        .fields()
        .into_iter()
        .filter(|name| !fields.contains(*name))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let braced = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("{{{n}}}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let has: Vec<&str> = fields.iter().map(String::as_str).collect();
    let template = if request.template_text == "{text}" {
        "without --prompt-template, each record's prompt is its text field, so the default template {text}".to_string()
    } else {
        format!("--prompt-template {:?}", request.template_text)
    };
    let seen = if records == 1 {
        "its one record has".to_string()
    } else {
        format!("its first {records} records have")
    };
    Err(RunError::Usage(format!(
        "{template} uses {}, but no record of {} has {} ({seen}: {}). Name the fields the file has, as in --prompt-template \"Summarize: {{{}}}\"",
        braced(&missing),
        path.display(),
        if missing.len() == 1 { "it" } else { "them" },
        if has.is_empty() {
            "no fields".to_string()
        } else {
            has.join(", ")
        },
        has.first().copied().unwrap_or("text"),
    )))
}

/// `--out` is a run directory, an empty one, or a path that does not exist yet.
fn check_out(out: &Path) -> Result<(), RunError> {
    let metadata = match std::fs::metadata(out) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => {
            return Err(RunError::Usage(format!(
                "--out {}: cannot use it as the run directory: {err}",
                out.display()
            )));
        }
    };
    if !metadata.is_dir() {
        return Err(RunError::Usage(format!(
            "--out {} is a file: the run directory must be a directory (a new path, or an earlier run's directory to resume it)",
            out.display()
        )));
    }
    let ours = |name: &str| {
        [
            crate::store::state::STATE_DIR,
            RESULTS_FILE,
            SUMMARY_FILE,
            SCHEMA_FILE,
            BATCH_DIR,
            crate::vocab::EVENTS_FILE,
        ]
        .contains(&name)
            || name.starts_with("previous-")
            || name.starts_with(crate::store::TEMP_PREFIX)
            || name.starts_with("export.")
    };
    let entries = std::fs::read_dir(out).map_err(|err| {
        RunError::Usage(format!(
            "--out {}: cannot read the directory: {err}",
            out.display()
        ))
    })?;
    let others: Vec<String> = entries
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().to_string())
        .filter(|name| !ours(name))
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = others.iter().take(3).map(String::as_str).collect();
    Err(RunError::Usage(format!(
        "--out {} is not a run directory: it holds {} other file(s) ({}{}). A run writes results.jsonl, summary.json and state/ there: give a new path, like --out runs/{}",
        out.display(),
        others.len(),
        shown.join(", "),
        if others.len() > shown.len() {
            ", ..."
        } else {
            ""
        },
        out.file_name().map_or("my-run".to_string(), |name| name
            .to_string_lossy()
            .to_string()),
    )))
}
