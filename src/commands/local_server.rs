//! `bedrock-batch local-server`: the Bedrock-compatible server (and its S3) in the
//! foreground until Ctrl-C or SIGTERM.

use crate::cli::LocalServerArgs;
use crate::commands::{Failure, emit};
use crate::config::server_config;
use crate::exit;
use crate::local_server::LocalServer;

/// The `local-server` command, from its flags to an exit code.
pub async fn execute(args: LocalServerArgs) -> Result<u8, Failure> {
    let config = server_config(&args);
    config.validate().map_err(Failure::usage_error)?;
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
    if !crate::signals::next_signal().await {
        return Err(Failure::usage("cannot wait for Ctrl-C"));
    }
    server.shutdown().await;
    Ok(exit::OK)
}
