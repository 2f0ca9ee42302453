//! The `bedrock-batch` binary: parses flags, runs the command on a tokio runtime, and maps
//! the outcome to an exit code, with errors as one line on stderr followed by their causes.

use std::ffi::OsStr;
use std::io::IsTerminal;
use std::process::ExitCode;

use bedrock_batch::cli::{Cli, Command, RunArgs};
use bedrock_batch::commands::{self, Failure};
use bedrock_batch::config::RunConfig;
use bedrock_batch::exit;
use clap::Parser;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt;
use tracing_subscriber::fmt::FormatFields as _;
use tracing_subscriber::prelude::*;

/// Log events as a person reads them: `warning: message`.
struct Plain;

impl<S, N> fmt::FormatEvent<S, N> for Plain
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        context: &fmt::FmtContext<'_, S, N>,
        mut writer: fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let word = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            _ => "note",
        };
        write!(writer, "{word}: ")?;
        context.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Our own warnings by default; the SDK's chatter (IMDS probes and the like) only with -vv.
    let (ours, theirs) = match cli.verbose {
        0 => (Level::WARN, Level::ERROR),
        1 => (Level::INFO, Level::ERROR),
        _ => (Level::DEBUG, Level::DEBUG),
    };
    let ansi = colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let targets = Targets::new()
        .with_target("bedrock_batch", ours)
        .with_default(theirs);
    // Without -v, what reaches stderr is a person's warning: `warning: ...`, not a log
    // record with a timestamp and a module path. -v and -vv keep the full records.
    let layer = fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    if cli.verbose == 0 {
        tracing_subscriber::registry()
            .with(layer.event_format(Plain))
            .with(targets)
            .init();
    } else {
        tracing_subscriber::registry()
            .with(layer)
            .with(targets)
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("bedrock-batch: cannot start the async runtime: {err}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run_command(*args).await,
            Command::LocalServer(args) => commands::local_server::execute(*args).await,
            Command::Status(args) => commands::status::execute(args),
            Command::Export(args) => commands::export::execute(args),
            Command::Report(args) => commands::report::execute(args),
            Command::Prices(args) => commands::prices::execute(args),
            Command::Merge(args) => commands::merge::execute(args),
            Command::Cancel(args) => commands::cancel::execute(args).await,
        }
    });
    // Do not wait for blocking readers of an abandoned run.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprint!("{}", error_chain(failure.error.as_ref()));
            ExitCode::from(failure.code)
        }
    }
}

/// The error and its causes, one a line. A cause the message above already quotes (an
/// error that shows its source in its own text) is not repeated.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = format!("bedrock-batch: {error}\n");
    let mut said = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !said.contains(&cause_text) {
            text.push_str(&format!("  caused by: {cause_text}\n"));
        }
        said = cause_text;
        source = cause.source();
    }
    text
}

/// Whether log lines on stderr get colour codes: only on a terminal (in a log file, cron
/// mail or CI they are noise), and never when `NO_COLOR` is set to anything but "".
fn colour(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

async fn run_command(args: RunArgs) -> Result<u8, Failure> {
    let config = RunConfig::from_args(&args).map_err(Failure::usage_error)?;
    bedrock_batch::run::execute(config)
        .await
        .map_err(|err| Failure {
            code: err.exit_code(),
            error: Box::new(err),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(
            colour(true, Some(OsStr::new(""))),
            "an empty NO_COLOR is unset"
        );
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None), "a log file or a pipe gets plain text");
        assert!(!colour(false, Some(OsStr::new("1"))));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot write {path}: {source}")]
    struct Quoting {
        path: String,
        source: Wrapping,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("the disk said no")]
    struct Wrapping {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn a_cause_the_message_quotes_is_not_repeated_and_the_others_are_printed() {
        let error = Quoting {
            path: "out/summary.json".into(),
            source: Wrapping {
                source: std::io::Error::other("No space left on device"),
            },
        };
        assert_eq!(
            error_chain(&error),
            "bedrock-batch: cannot write out/summary.json: the disk said no\n  caused by: No space left on device\n"
        );
    }
}
