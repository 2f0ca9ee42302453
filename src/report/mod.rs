//! What the user sees: the progress display on stderr, the summary rendered as text, the
//! table across runs of `report`, text tables in their three formats, and the HTML page.

pub mod html;
pub mod progress;
pub mod render;
pub mod runs;
pub mod text_table;

pub use render::render;

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
