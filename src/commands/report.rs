//! `bedrock-batch report RUN_DIR...`: the table across runs of their summary.json files
//! (built in `report::runs`), printed on stdout.

use crate::cli::ReportArgs;
use crate::commands::{Failure, emit};

/// The `report` command, from its flags to an exit code.
pub fn execute(args: ReportArgs) -> Result<u8, Failure> {
    use crate::report::runs;
    let since = args
        .since
        .as_deref()
        .map(runs::parse_since)
        .transpose()
        .map_err(Failure::usage_error)?;
    let (summaries, skipped) = runs::read_runs(&args.run_dirs).map_err(Failure::usage_error)?;
    for why in skipped {
        eprintln!("warning: {why}");
    }
    let rows = runs::rows(&summaries, args.by, since);
    let text = runs::render(&rows, args.by, args.format).map_err(Failure::usage_error)?;
    emit(&text)
}
