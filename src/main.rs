//! The `bedrock-batch` binary: parses flags, runs the command on a tokio runtime, and maps
//! the outcome to one line on stderr and an exit code.

use std::process::ExitCode;

use bedrock_batch::cli::{Cli, Command, LocalServerArgs};
use bedrock_batch::local_server::LocalServer;
use clap::Parser;

/// Exit codes of the contract (see README).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("bedrock-batch: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::LocalServer(args) => local_server(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("bedrock-batch: {message}");
            ExitCode::from(code)
        }
    }
}

async fn local_server(args: LocalServerArgs) -> Result<(), (u8, String)> {
    let config = args.to_config();
    config.validate().map_err(|msg| (EXIT_USAGE, msg))?;
    let server = LocalServer::start(config).await.map_err(|err| {
        (
            EXIT_USAGE,
            format!("cannot listen on 127.0.0.1:{}: {err}", args.port),
        )
    })?;
    println!("listening on {}", server.url());
    eprintln!(
        "point a client at it with --endpoint-url {} (any credentials); stats at {}/_local/stats; Ctrl-C stops",
        server.url(),
        server.url()
    );
    if let Err(err) = tokio::signal::ctrl_c().await {
        return Err((EXIT_USAGE, format!("cannot wait for Ctrl-C: {err}")));
    }
    server.shutdown().await;
    Ok(())
}
