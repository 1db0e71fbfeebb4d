//! `POST /v1/progress`: a worker reports how far its step attempt has come.
//!
//! | answer | when |
//! | --- | --- |
//! | 202 | taken (written to status within `--progress-interval`) |
//! | 400 | the body is not a report (JSON `{percent?, message?, metrics?, warnings?}`; empty is a heartbeat) |
//! | 401 | no token, or one the API server refuses for audience `crew-operator` (expired, forged, pod gone) |
//! | 403 | a valid token, but not of a step attempt's worker pod |
//! | 409 | the pod's attempt is not running (it finished, or the execution is gone) |
//! | 413 | the body is over 16 KiB |
//! | 422 | the report breaks a bound (message over 256 characters, more than 32 metrics, ...) |
//! | 429 | the attempt reports faster than 20 a second (`Retry-After`) |
//! | 503 | this replica is a standby, or the token cannot be checked now (`Retry-After`: retry; the Service sends the retry to any replica, and the leader answers) |

use super::auth::{AuthError, Authenticator};
use super::book::{Refused, Wake};
use crate::controller::context::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use crew_api::{CrewExecution, StepPhase};
use crew_core::lifecycle::report::WorkerReport;
use kube::runtime::reflector::ObjectRef;
use std::sync::Arc;
use std::time::Instant;

/// Largest accepted body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// The path workers post to.
pub const PATH: &str = "/v1/progress";

struct Endpoint {
    ctx: Arc<Context>,
    auth: Authenticator,
}

/// The router of the progress endpoint.
pub fn router(ctx: Arc<Context>) -> Router {
    let state = Arc::new(Endpoint {
        auth: Authenticator::new(ctx.client.clone()),
        ctx,
    });
    Router::new()
        .route(PATH, post(report))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves the endpoint on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, ctx: Arc<Context>) -> std::io::Result<()> {
    axum::serve(listener, router(ctx)).await
}

fn answer(code: StatusCode, message: &str) -> Response {
    let body = if code.is_success() {
        serde_json::json!({ "accepted": true })
    } else {
        serde_json::json!({ "error": message })
    };
    let mut response = (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    let retry = match code {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => Some("1"),
        _ => None,
    };
    if let Some(seconds) = retry {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from_static(seconds),
        );
    }
    if code == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

async fn report(
    State(endpoint): State<Arc<Endpoint>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = &endpoint.ctx;
    if !ctx.is_leading() {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "this replica is a standby: retry (the leader takes reports)",
        );
    }
    let Some(token) = bearer(&headers) else {
        return answer(
            StatusCode::UNAUTHORIZED,
            "send the worker's projected token: Authorization: Bearer $(cat $CREW_PROGRESS_TOKEN_FILE)",
        );
    };
    let now = jiff::Timestamp::now();
    let worker = match endpoint.auth.worker(token, now).await {
        Ok(worker) => worker,
        Err(AuthError::Unauthenticated(m)) => return answer(StatusCode::UNAUTHORIZED, &m),
        Err(AuthError::Forbidden(m)) => return answer(StatusCode::FORBIDDEN, &m),
        Err(e @ AuthError::Unavailable(_)) => {
            return answer(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
        }
    };
    let report: WorkerReport = if body.iter().all(u8::is_ascii_whitespace) {
        WorkerReport::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(report) => report,
            Err(e) => {
                return answer(
                    StatusCode::BAD_REQUEST,
                    &format!("not a report ({{percent?, message?, metrics?, warnings?}}): {e}"),
                );
            }
        }
    };
    let reference = ObjectRef::<CrewExecution>::new(&worker.execution).within(&worker.namespace);
    let execution = ctx.caches.executions.get(&reference);
    let running = execution
        .as_ref()
        .filter(|cx| cx.metadata.uid.as_deref() == Some(worker.execution_uid.as_str()))
        .and_then(|cx| cx.status.as_ref())
        .filter(|s| !s.phase.is_some_and(|p| p.is_terminal()))
        .and_then(|s| s.steps.iter().find(|step| step.name == worker.step))
        .is_some_and(|step| step.attempt == worker.attempt && step.phase == StepPhase::Running);
    if !running {
        return answer(
            StatusCode::CONFLICT,
            &format!(
                "step {} attempt {} of {}/{} is not running: nothing to report to",
                worker.step, worker.attempt, worker.namespace, worker.execution
            ),
        );
    }
    match ctx.progress.record(
        &worker.execution_uid,
        &worker.step,
        worker.attempt,
        report,
        now,
        Instant::now(),
    ) {
        Ok(wake) => {
            wake_for_report(ctx, reference, wake);
            answer(StatusCode::ACCEPTED, "")
        }
        Err(Refused::RateLimited) => answer(
            StatusCode::TOO_MANY_REQUESTS,
            "more than 20 reports a second from one attempt: slow down",
        ),
        Err(Refused::Invalid(e)) => answer(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
    }
}

/// Reconciles the execution when its reports should be written.
pub fn wake_for_report(ctx: &Context, execution: ObjectRef<CrewExecution>, wake: Wake) {
    match wake {
        Wake::Now => ctx.triggers.report_due(execution),
        Wake::After(delay) => {
            let triggers = ctx.triggers.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                triggers.report_due(execution);
            });
        }
        Wake::Pending => {}
    }
}
