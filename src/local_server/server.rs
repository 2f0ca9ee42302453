//! HTTP plumbing: one hyper HTTP/1 connection task per client (from the accept loop in
//! `accept`), and the axum routes. Each connection carries an abort handle in the request extensions so a
//! handler can close it without answering (the `--reset-rate` fault).

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Extension, Json};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_service::Service as _;

use super::accept::accept_loop;
use super::api_error::{ApiError, ErrorKind};
use super::batch::routes as batch;
use super::exchange::{self, ConnectionAbort};
use super::fake_answer::Route;
use super::kb_routes;
use super::shared_state::Shared;
use super::sts;
use crate::rules::Service;

/// Large enough for 20 images of 3.75 MB each, base64-encoded, plus documents.
const MAX_BODY_BYTES: usize = 160 * 1024 * 1024;

pub async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let router = routes(shared);
    accept_loop(listener, stop, "local server", move |stream, mut stop| {
        let router = router.clone();
        async move {
            let abort = ConnectionAbort::default();
            let handle = abort.clone();
            let service =
                hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
                    request.extensions_mut().insert(handle.clone());
                    let mut router = router.clone();
                    async move { router.call(request.map(Body::new)).await }
                });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = abort.closed() => {}
                _ = stop.changed() => {}
            }
        }
    })
    .await
}

fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/model/{model_id}/converse", model_route(Route::Converse))
        .route(
            "/model/{model_id}/converse-stream",
            model_route(Route::ConverseStream),
        )
        .route("/model/{model_id}/invoke", model_route(Route::Invoke))
        .route(
            "/model/{model_id}/invoke-with-response-stream",
            model_route(Route::InvokeStream),
        )
        .route(
            "/model/{model_id}/count-tokens",
            post(
                |State(shared): State<Arc<Shared>>,
                 Path(model_id): Path<String>,
                 headers: http::HeaderMap,
                 body: Bytes| { exchange::count_tokens(shared, model_id, headers, body) },
            ),
        )
        .route(
            "/knowledgebases/{knowledge_base_id}/retrieve",
            post(
                |State(shared): State<Arc<Shared>>,
                 Path(id): Path<String>,
                 headers: http::HeaderMap,
                 body: Bytes| async move {
                    let labels = [("knowledgeBaseId", id.as_str())];
                    match checked(Service::AgentRuntime, "Retrieve", &labels, None, &headers, &body) {
                        Some(refused) => refused,
                        None => kb_routes::retrieve(shared, id, body).await,
                    }
                },
            ),
        )
        .route(
            "/retrieveAndGenerate",
            post(
                |State(shared): State<Arc<Shared>>, headers: http::HeaderMap, body: Bytes| async move {
                    let operation = "RetrieveAndGenerate";
                    match checked(Service::AgentRuntime, operation, &[], None, &headers, &body) {
                        Some(refused) => refused,
                        None => kb_routes::retrieve_and_generate(shared, headers, body).await,
                    }
                },
            ),
        )
        .route(
            "/model-invocation-job",
            post(
                |State(shared): State<Arc<Shared>>, headers: http::HeaderMap, body: Bytes| async move {
                    let operation = "CreateModelInvocationJob";
                    match checked(Service::Control, operation, &[], None, &headers, &body) {
                        Some(refused) => refused,
                        None => batch::create(shared.batch.clone(), headers, body).await,
                    }
                },
            ),
        )
        .route(
            "/model-invocation-job/{job_identifier}",
            get(
                |State(shared): State<Arc<Shared>>, Path(id): Path<String>, headers: http::HeaderMap| async move {
                    let labels = [("jobIdentifier", id.as_str())];
                    let operation = "GetModelInvocationJob";
                    match checked(Service::Control, operation, &labels, None, &headers, b"") {
                        Some(refused) => refused,
                        None => batch::get(shared.batch.clone(), id).await,
                    }
                },
            ),
        )
        .route(
            "/model-invocation-job/{job_identifier}/stop",
            post(
                |State(shared): State<Arc<Shared>>,
                 Path(id): Path<String>,
                 headers: http::HeaderMap,
                 body: Bytes| async move {
                    let labels = [("jobIdentifier", id.as_str())];
                    let operation = "StopModelInvocationJob";
                    match checked(Service::Control, operation, &labels, None, &headers, &body) {
                        Some(refused) => refused,
                        None => batch::stop(shared.batch.clone(), id).await,
                    }
                },
            ),
        )
        .route(
            "/model-invocation-jobs",
            get(
                |State(shared): State<Arc<Shared>>,
                 RawQuery(query): RawQuery,
                 headers: http::HeaderMap| async move {
                    let operation = "ListModelInvocationJobs";
                    let q = query.as_deref();
                    match checked(Service::Control, operation, &[], q, &headers, b"") {
                        Some(refused) => refused,
                        None => batch::list(shared.batch.clone(), query).await,
                    }
                },
            ),
        )
        .route(
            "/",
            post(
                |State(shared): State<Arc<Shared>>, body: Bytes| async move {
                    shared.caller_identity_call();
                    sts::answer(&body)
                },
            ),
        )
        .route("/_local/stats", get(stats))
        .route("/_local/reset", post(reset))
        .route("/_local/quota", post(set_quota))
        .fallback(unknown_route)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(body_limit))
        .with_state(shared)
}

/// Bodies over [`MAX_BODY_BYTES`] are refused with a 413 in the service's error shape, as
/// AWS's front end refuses them: a declared length before any of the body is read, and a
/// body sent without one when it grows past the cap (the body limit's plain-text answer is
/// replaced).
async fn body_limit(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return too_large();
    }
    let response = next.run(request).await;
    if response.status() == http::StatusCode::PAYLOAD_TOO_LARGE
        && !response.headers().contains_key("x-amzn-errortype")
    {
        return too_large();
    }
    response
}

fn too_large() -> Response {
    ApiError::new(
        ErrorKind::RequestTooLarge,
        format!(
            "The request body is larger than the {} MiB the service accepts.",
            MAX_BODY_BYTES / (1024 * 1024)
        ),
    )
    .into_response(&super::request_id())
}

/// AWS's refusal of a request its service model forbids, answered before the handler.
fn checked(
    service: Service,
    operation: &str,
    labels: &[(&str, &str)],
    query: Option<&str>,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Option<Response> {
    ApiError::check(service, operation, labels, query, headers, body)
        .err()
        .map(|refused| refused.into_response(&super::request_id()))
}

/// The handler of a model route: everything else happens in [`exchange::handle`].
fn model_route(route: Route) -> MethodRouter<Arc<Shared>> {
    post(
        move |State(shared): State<Arc<Shared>>,
              Path(model_id): Path<String>,
              abort: Option<Extension<ConnectionAbort>>,
              headers: http::HeaderMap,
              body: Bytes| {
            exchange::handle(
                shared,
                route,
                model_id,
                headers,
                body,
                abort.map(|Extension(a)| a),
            )
        },
    )
}

async fn stats(State(shared): State<Arc<Shared>>) -> Json<super::Stats> {
    Json(shared.stats())
}

async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    shared.reset();
    Json(serde_json::json!({"reset": true})).into_response()
}

/// `{"tpm": N, "rpm": N}`: the quotas from now on (`null` or absent: no limit). A member
/// of another name is refused: a misspelt `tpm` would otherwise lift the limit.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaChange {
    tpm: Option<u64>,
    rpm: Option<u64>,
}

/// Answers `/_local/quota`; bad input is refused in the service's error shape, like every
/// other route's.
async fn set_quota(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let change: QuotaChange = match serde_json::from_slice(&body) {
        Ok(change) => change,
        Err(err) => {
            return ApiError::new(
                ErrorKind::Serialization,
                format!("expected {{\"tpm\": N, \"rpm\": N}} (N a whole number or null): {err}"),
            )
            .into_response(&super::request_id());
        }
    };
    if change.tpm == Some(0) || change.rpm == Some(0) {
        return ApiError::validation("tpm and rpm must be at least 1 (null for no limit)")
            .into_response(&super::request_id());
    }
    shared.set_quota(change.tpm, change.rpm);
    Json(serde_json::json!({"tpm": change.tpm, "rpm": change.rpm})).into_response()
}

async fn unknown_route(uri: http::Uri) -> Response {
    ApiError::new(
        ErrorKind::ResourceNotFound,
        format!("The local server has no route for {}", uri.path()),
    )
    .into_response(&super::request_id())
}
