//! `bedrock-batch report RUN_DIR...`: the table across runs of their summary.json files
//! (built in `report::runs`), or the HTML page comparing them (`report::html`), printed on
//! stdout or written to `--out FILE`.

use std::io::IsTerminal;

use crate::cli::ReportArgs;
use crate::commands::{Failure, emit};
use crate::report::runs::{self, Format};

/// The `report` command, from its flags to an exit code.
pub fn execute(args: ReportArgs) -> Result<u8, Failure> {
    let since = args
        .since
        .as_deref()
        .map(runs::parse_since)
        .transpose()
        .map_err(Failure::usage_error)?;
    let text = if args.format == Format::Html {
        if args.out.is_none() && std::io::stdout().is_terminal() {
            return Err(Failure::usage(
                "--format html writes a whole page: give --out report.html (or redirect \
                 stdout to a file)"
                    .to_string(),
            ));
        }
        let (pages, warnings) =
            crate::report::html::load::read(&args.run_dirs, since).map_err(Failure::usage_error)?;
        warn(warnings);
        let generated = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
        crate::report::html::page(&pages, &generated)
    } else {
        let (summaries, skipped) = runs::read_runs(&args.run_dirs).map_err(Failure::usage_error)?;
        warn(skipped);
        let rows = runs::rows(&summaries, args.by, since);
        runs::render(&rows, args.by, args.format).map_err(Failure::usage_error)?
    };
    match &args.out {
        None => emit(&text),
        Some(path) => {
            std::fs::write(path, &text).map_err(|err| {
                Failure::usage(format!(
                    "cannot write the report to {} (--out): {err}",
                    path.display()
                ))
            })?;
            eprintln!("report: wrote {}", path.display());
            Ok(crate::exit::OK)
        }
    }
}

fn warn(warnings: Vec<String>) {
    for why in warnings {
        eprintln!("warning: {why}");
    }
}
