//! `bedrock-batch export RUN_DIR`: results.jsonl as one table (built by `export`), to a
//! file or stdout; a reader that closes the pipe early is not an error.

use crate::cli::ExportArgs;
use crate::commands::Failure;
use crate::exit;

/// The `export` command, from its flags to an exit code.
pub fn execute(args: ExportArgs) -> Result<u8, Failure> {
    use crate::export::{ExportError, ExportOptions, export};
    let exported = match export(&ExportOptions {
        run_dir: args.run_dir,
        format: args.format,
        out: args.out,
        with_input: args.with_input,
    }) {
        Ok(exported) => exported,
        // `export --out - | head`: the reader has what it wanted.
        Err(ExportError::Write { path, source })
            if path.as_os_str() == "-"
                && (source.kind() == std::io::ErrorKind::BrokenPipe
                    || source.to_string().contains("Broken pipe")) =>
        {
            return Ok(exit::OK);
        }
        Err(err) => return Err(Failure::usage_error(err)),
    };
    if exported.out.as_os_str() != "-" {
        eprintln!(
            "wrote {} rows, {} columns to {}",
            exported.rows,
            exported.columns,
            exported.out.display()
        );
    }
    Ok(exit::OK)
}
