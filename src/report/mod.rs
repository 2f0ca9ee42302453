//! What the user sees: running totals, the summary written to summary.json and printed at
//! the end, the progress display on stderr, and the retrieval scores of knowledge-base runs.

pub mod prices;
pub mod progress;
pub mod retrieval;
pub mod runs;
pub mod summary;
pub mod table;

/// Writes `text` to stdout. A closed pipe (`... | head`) is not an error: the reader has
/// what it wanted.
pub fn print_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
