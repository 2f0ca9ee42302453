//! The `--metrics-addr` endpoint: a listener bound before the run sends anything (so a
//! port in use is refused at once), and a small HTTP server answering `GET /metrics` with
//! the OpenMetrics text of the run's registry. The server stops when the [`Server`] is
//! dropped, at the end of the run.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

/// Where the exposition is served.
pub const PATH: &str = "/metrics";

/// OpenMetrics 1.0's text format, as Prometheus asks for it.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr` exactly as given; the error says which address and what to do.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).map_err(|err| {
        let what_to_do = match err.kind() {
            std::io::ErrorKind::AddrInUse => {
                "another process listens there: choose a free port (or port 0 for any free one), or stop that process"
            }
            std::io::ErrorKind::PermissionDenied => {
                "ports below 1024 need privileges: choose a port above 1024, such as 9464"
            }
            _ => {
                "give an address of this machine (127.0.0.1 for this machine only, 0.0.0.0 for every interface) and a free port"
            }
        };
        format!("--metrics-addr {addr}: cannot listen there ({err}); {what_to_do}")
    })
}

/// The running server; dropping it stops it.
pub struct Server {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `registry` on `listener` until the returned [`Server`] is dropped. Runs on the
/// current tokio runtime.
pub fn serve(listener: TcpListener, registry: Arc<Registry>) -> std::io::Result<Server> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let router = Router::new()
        .route(PATH, get(exposition))
        .fallback(not_found)
        .with_state(registry);
    let task = tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, router).await {
            tracing::warn!("the metrics endpoint stopped: {err}");
        }
    });
    Ok(Server { task })
}

async fn exposition(State(registry): State<Arc<Registry>>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &registry) {
        Ok(()) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the metrics: {err}\n"),
        )
            .into_response(),
    }
}

async fn not_found(uri: axum::http::Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!(
            "bedrock-batch serves its metrics at {PATH}, not at {}\n",
            uri.path()
        ),
    )
        .into_response()
}
