//! The `bedrock-batch` binary: parses flags, runs the command on a tokio runtime, and maps
//! the outcome to an exit code, with errors as one line on stderr followed by their causes.

use std::error::Error;
use std::ffi::OsStr;
use std::io::IsTerminal;
use std::process::ExitCode;

use bedrock_batch::cli::{
    CancelArgs, Cli, Command, ExportArgs, LocalServerArgs, MergeArgs, PricesArgs, ReportArgs,
    RunArgs, StatusArgs,
};
use bedrock_batch::config::{RunConfig, server_config};
use bedrock_batch::exit;
use bedrock_batch::local_server::LocalServer;
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

/// A failure that ends the command: its exit code and what to tell the user.
struct Failure {
    code: u8,
    error: Box<dyn Error>,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: exit::USAGE,
            error: message.into().into(),
        }
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
            Command::Run(args) => run(*args).await,
            Command::LocalServer(args) => local_server(*args).await.map(|()| exit::OK),
            Command::Status(args) => status(args),
            Command::Export(args) => export(args),
            Command::Report(args) => report(args),
            Command::Prices(args) => prices(args),
            Command::Merge(args) => merge(args),
            Command::Cancel(args) => cancel(args).await,
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

async fn run(args: RunArgs) -> Result<u8, Failure> {
    let config = RunConfig::from_args(&args).map_err(Failure::usage)?;
    bedrock_batch::run::run(config)
        .await
        .map_err(|err| Failure {
            code: err.exit_code(),
            error: Box::new(err),
        })
}

/// Prints `text` on stdout; a closed pipe counts as success.
fn emit(text: &str) -> Result<u8, Failure> {
    bedrock_batch::report::print_stdout(text)
        .map(|()| exit::OK)
        .map_err(|err| Failure::usage(format!("cannot write to stdout: {err}")))
}

fn report(args: ReportArgs) -> Result<u8, Failure> {
    use bedrock_batch::report::runs;
    let since = args
        .since
        .as_deref()
        .map(runs::parse_since)
        .transpose()
        .map_err(Failure::usage)?;
    let (summaries, skipped) = runs::read_runs(&args.run_dirs).map_err(Failure::usage)?;
    for why in skipped {
        eprintln!("warning: {why}");
    }
    let rows = runs::rows(&summaries, args.by, since);
    let text = runs::render(&rows, args.by, args.format).map_err(Failure::usage)?;
    emit(&text)
}

fn prices(args: PricesArgs) -> Result<u8, Failure> {
    use bedrock_batch::report::prices::{PriceTable, listing};
    let table =
        PriceTable::with_files(&args.prices).map_err(|err| Failure::usage(err.to_string()))?;
    let listed = listing::list(&table, &args.models);
    let text = listing::render(&listed, args.format).map_err(Failure::usage)?;
    emit(&text)?;
    Ok(if listed.iter().all(listing::Listed::is_priced) {
        exit::OK
    } else {
        exit::SOME_FAILED
    })
}

fn merge(args: MergeArgs) -> Result<u8, Failure> {
    use bedrock_batch::merge::{self, MergeError};
    use bedrock_batch::report::prices::PriceTable;
    use bedrock_batch::report::summary::render;
    let prices =
        PriceTable::with_files(&args.prices).map_err(|err| Failure::usage(err.to_string()))?;
    let summary = merge::merge(&args.shards, &args.out, &prices).map_err(|err| match err {
        MergeError::Refused(message) => Failure::usage(message),
        other => Failure::usage(other.to_string()),
    })?;
    if !args.quiet {
        eprint!("{}", render(&summary));
        eprintln!(
            "merged {} shards into {}",
            args.shards.len(),
            args.out.display()
        );
    }
    if args.json {
        emit(&(serde_json::to_string_pretty(&summary).unwrap_or_default() + "\n"))?;
    }
    Ok(if summary.records.failed == 0 {
        exit::OK
    } else {
        exit::SOME_FAILED
    })
}

fn export(args: ExportArgs) -> Result<u8, Failure> {
    use bedrock_batch::export::{ExportError, ExportOptions, export};
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
        Err(err) => return Err(Failure::usage(err.to_string())),
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

async fn cancel(args: CancelArgs) -> Result<u8, Failure> {
    let done = bedrock_batch::batch::cancel::cancel(
        &args.run_dir,
        args.endpoint_url.as_deref(),
        args.profile.as_deref(),
    )
    .await
    .map_err(Failure::usage)?;
    Ok(if done.failed == 0 {
        exit::OK
    } else {
        exit::FATAL
    })
}

fn status(args: StatusArgs) -> Result<u8, Failure> {
    let status = bedrock_batch::status::read(&args.run_dir).map_err(Failure::usage)?;
    let text = if args.json {
        serde_json::to_string_pretty(&status).unwrap_or_default() + "\n"
    } else {
        bedrock_batch::status::render(&status)
    };
    emit(&text)
}

async fn local_server(args: LocalServerArgs) -> Result<(), Failure> {
    let config = server_config(&args);
    config.validate().map_err(Failure::usage)?;
    let server = LocalServer::start(config).await.map_err(|err| {
        Failure::usage(format!(
            "cannot start the local server on 127.0.0.1:{} (S3 on 127.0.0.1:{}): {err}",
            args.port, args.s3_port
        ))
    })?;
    emit(&format!(
        "listening on {}\nS3 endpoint {}\n",
        server.url(),
        server.s3_url()
    ))?;
    eprintln!(
        "point a client at it with --endpoint-url {} (any credentials) and S3 clients at {} (path-style); stats at {}/_local/stats; Ctrl-C or SIGTERM stops",
        server.url(),
        server.s3_url(),
        server.url()
    );
    // SIGTERM too, so a temporary S3 directory is removed however the server is stopped.
    if !bedrock_batch::run::next_signal().await {
        return Err(Failure::usage("cannot wait for Ctrl-C"));
    }
    server.shutdown().await;
    Ok(())
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
