//! The HTTP server for `/health` and `/metrics` (axum).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use super::InfraError;

/// What the server shows: implemented by the application.
pub trait Observe: Send + Sync + 'static {
    /// The health report and whether it is healthy enough for HTTP 200.
    fn health(&self) -> (bool, serde_json::Value);
    /// Prometheus text exposition.
    fn metrics(&self) -> String;
}

async fn health(State(o): State<Arc<dyn Observe>>) -> impl IntoResponse {
    let (ok, body) = o.health();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body))
}

async fn metrics(State(o): State<Arc<dyn Observe>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        o.metrics(),
    )
}

/// The router: a pure function of the observed state (testable without a
/// socket).
pub fn router(observe: Arc<dyn Observe>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(observe)
}

/// Bind `addr` and serve until `shutdown` is cancelled. Returns the bound
/// address (useful with port 0) and the server task.
pub async fn serve(
    addr: SocketAddr,
    observe: Arc<dyn Observe>,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), InfraError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| InfraError::Connect {
            target: format!("http listen {addr}"),
            message: e.to_string(),
        })?;
    let local = listener
        .local_addr()
        .map_err(|e| InfraError::Io(e.to_string()))?;
    let app = router(observe);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
    });
    Ok((local, task))
}
