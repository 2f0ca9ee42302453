//! The accept loop both local endpoints run (Bedrock's routes in `server`, S3 in
//! `s3_endpoint`): each connection in its own task, all of them stopped by one watch
//! channel. It knows nothing of what a connection serves, so either endpoint can use it
//! without the other.

use tokio::net::TcpListener;
use tokio::sync::watch;

/// Accepts connections on `listener` until `stop` changes, each served by `connection` in its
/// own task (which gets the stop signal too). An accept error (out of file descriptors and
/// the like) waits a little and goes on serving.
pub async fn accept_loop<F, C>(
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    name: &str,
    connection: F,
) where
    F: Fn(tokio::net::TcpStream, watch::Receiver<bool>) -> C,
    C: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                tracing::warn!("{name} accept failed: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, stop.clone()));
    }
}
