//! The HTTP endpoints: `/metrics` (Prometheus text format), `/healthz` (the process serves), `/readyz` (every cache
//! has listed). With leader election a warm standby is ready too, so rolling updates and PodDisruptionBudgets keep
//! working; the body and the `crew_leader` gauge say which replica leads (the leader exits when it loses the Lease).

use crate::controller::context::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;

/// The router serving the endpoints for `ctx`.
pub fn router(ctx: Arc<Context>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(ctx)
}

async fn metrics(State(ctx): State<Arc<Context>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ctx.metrics.render(),
    )
}

async fn ready(State(ctx): State<Arc<Context>>) -> impl IntoResponse {
    let readiness = ctx.readiness();
    let code = if readiness.synced() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, readiness.to_string())
}

/// Serves the endpoints on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, ctx: Arc<Context>) -> std::io::Result<()> {
    axum::serve(listener, router(ctx)).await
}
