//! `POST /v1/progress`: a worker reports how far its step attempt has come.
//!
//! | answer | when |
//! | --- | --- |
//! | 202 | taken (written to status within `--progress-interval`) |
//! | 400 | the body is not a report (JSON `{percent?, message?, metrics?, warnings?}`; empty is a heartbeat) |
//! | 401 | no token, or one that is not for audience `crew-operator`, expired, not bound to a pod, or refused by the API server |
//! | 403 | a token, but not of a live step attempt's worker pod this operator watches (or of another Job than the attempt's) |
//! | 409 | final: the attempt finished, a later attempt exists, or the execution is gone (stop reporting) |
//! | 413 | the body is over 16 KiB |
//! | 422 | the report breaks a bound (message over 256 characters, more than 32 metrics, ...) |
//! | 429 | the attempt reports faster than 20 a second, or its source sends new tokens too fast (`Retry-After`) |
//! | 503 | retry (`Retry-After`): this replica is a standby, its caches are still listing, the attempt is not visible in the status yet, or the token cannot be checked now (too many reviews in flight, the API server unreachable); the Service sends the retry to any replica, and the leader answers |

use super::auth::{AuthError, Authenticator, Worker};
use super::book::{Refused, Wake};
use crate::controller::context::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use crew_api::{CrewExecution, StepPhase};
use crew_core::lifecycle::report::WorkerReport;
use kube::runtime::reflector::ObjectRef;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Largest accepted body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// The path workers post to.
pub const PATH: &str = "/v1/progress";

/// The endpoint's state: the operator's context and the token checks.
pub struct Endpoint {
    pub(super) ctx: Arc<Context>,
    auth: Authenticator,
    /// Bounds on result posts (each one is a write).
    pub(super) results: super::result::PostLimits,
}

impl Endpoint {
    /// The endpoint of `ctx`'s operator.
    pub fn new(ctx: Arc<Context>) -> Arc<Endpoint> {
        Arc::new(Endpoint {
            auth: Authenticator::new(ctx.client.clone()),
            results: Default::default(),
            ctx,
        })
    }

    /// TokenReviews sent so far.
    pub fn reviews_sent(&self) -> u64 {
        self.auth.reviews_sent()
    }
}

/// The router of the progress endpoint.
pub fn router(endpoint: Arc<Endpoint>) -> Router {
    Router::new()
        .route(
            PATH,
            post(report).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route(super::result::PATH, post(super::result::post))
        .with_state(endpoint)
}

/// Serves `endpoint` on `listener` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    endpoint: Arc<Endpoint>,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(endpoint).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

pub(super) fn answer(code: StatusCode, message: &str) -> Response {
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

/// Where a worker's attempt stands in the cached status of its execution.
#[derive(Debug, PartialEq, Eq)]
enum AttemptState {
    /// Running: reports are taken.
    Running,
    /// The status does not show the attempt yet (its write is on its way, the cache lags, or this replica has
    /// just started): retry.
    NotVisibleYet,
    /// The attempt finished, a later one exists, or the execution is gone: stop reporting.
    Finished(String),
    /// The status names another Job for this attempt: the token's pod is not this attempt's worker.
    NotItsJob,
}

/// Where `worker`'s attempt stands in `execution` as cached (None: not cached).
fn attempt_state(execution: Option<&CrewExecution>, worker: &Worker) -> AttemptState {
    let gone = || {
        AttemptState::Finished(format!(
            "execution {}/{} is gone",
            worker.namespace, worker.execution
        ))
    };
    let Some(execution) =
        execution.filter(|cx| cx.metadata.uid.as_deref() == Some(&worker.execution_uid))
    else {
        return gone();
    };
    let Some(status) = execution.status.as_ref() else {
        return AttemptState::NotVisibleYet;
    };
    let finished = |what: &str| {
        AttemptState::Finished(format!(
            "step {} attempt {} of {}/{} {what}: nothing to report to",
            worker.step, worker.attempt, worker.namespace, worker.execution
        ))
    };
    let step = status.steps.iter().find(|step| step.name == worker.step);
    match step {
        Some(step) if step.attempt > worker.attempt => finished("has a later attempt"),
        Some(step) if step.attempt == worker.attempt => {
            if step
                .job_name
                .as_deref()
                .is_some_and(|job| job != worker.job)
            {
                AttemptState::NotItsJob
            } else if step.phase == StepPhase::Running
                && !status.phase.is_some_and(|p| p.is_terminal())
            {
                AttemptState::Running
            } else {
                finished("has finished")
            }
        }
        _ if status.phase.is_some_and(|p| p.is_terminal()) => finished("ended with its execution"),
        _ => AttemptState::NotVisibleYet,
    }
}

/// The worker a request comes from, if it may report now: this replica leads, the token is a live worker pod's,
/// and its attempt runs; else the answer that says why not.
pub(super) async fn running_worker(
    endpoint: &Endpoint,
    source: SocketAddr,
    headers: &HeaderMap,
    now: jiff::Timestamp,
) -> Result<(Worker, ObjectRef<CrewExecution>), Response> {
    let ctx = &endpoint.ctx;
    if !ctx.is_leading() {
        return Err(answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "this replica is a standby: retry (the leader takes reports)",
        ));
    }
    let Some(token) = bearer(headers) else {
        return Err(answer(
            StatusCode::UNAUTHORIZED,
            "send the worker's projected token: Authorization: Bearer $(cat $CREW_PROGRESS_TOKEN_FILE)",
        ));
    };
    let children = &ctx.indexes.children;
    let worker = endpoint
        .auth
        .worker(token, source.ip(), children, now)
        .await
        .map_err(|error| match error {
            AuthError::Unauthenticated(m) => answer(StatusCode::UNAUTHORIZED, &m),
            AuthError::Forbidden(m) => answer(StatusCode::FORBIDDEN, &m),
            AuthError::RateLimited(m) => answer(StatusCode::TOO_MANY_REQUESTS, &m),
            e @ AuthError::Unavailable(_) => {
                answer(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
            }
        })?;
    if !ctx.readiness().synced() {
        return Err(answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "the operator is still listing executions: retry",
        ));
    }
    let reference = ObjectRef::<CrewExecution>::new(&worker.execution).within(&worker.namespace);
    match attempt_state(ctx.caches.executions.get(&reference).as_deref(), &worker) {
        AttemptState::Running => Ok((worker, reference)),
        AttemptState::NotVisibleYet => Err(answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "the attempt is not visible in the execution's status yet: retry",
        )),
        AttemptState::Finished(why) => Err(answer(StatusCode::CONFLICT, &why)),
        AttemptState::NotItsJob => Err(answer(
            StatusCode::FORBIDDEN,
            "the pod's Job is not the one the execution's status names for this attempt",
        )),
    }
}

async fn report(
    State(endpoint): State<Arc<Endpoint>>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = jiff::Timestamp::now();
    let (worker, reference) = match running_worker(&endpoint, source, &headers, now).await {
        Ok(running) => running,
        Err(refused) => return refused,
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
    let ctx = &endpoint.ctx;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::context::Context;
    use crate::settings::Settings;
    use axum::extract::connect_info::MockConnectInfo;
    use kube::runtime::watcher::Event;
    use tower::ServiceExt;

    fn worker(step: &str, attempt: u32) -> Worker {
        Worker {
            namespace: "ns".into(),
            pod: "run-a-1-x".into(),
            job: format!("run-{step}-{attempt}"),
            execution: "run".into(),
            execution_uid: "u1".into(),
            step: step.into(),
            attempt,
        }
    }

    fn execution(status: serde_json::Value) -> CrewExecution {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "crew.dev/v1alpha1", "kind": "CrewExecution",
            "metadata": {"name": "run", "namespace": "ns", "uid": "u1"},
            "spec": {"image": "w"}, "status": status,
        }))
        .unwrap()
    }

    /// Review finding 5: 409 meant both "not visible yet" and "finished"; only the second is final.
    #[test]
    fn only_a_finished_attempt_is_final() {
        let running = execution(serde_json::json!({"phase": "Running",
            "steps": [{"name": "a", "phase": "Running", "attempt": 1, "jobName": "run-a-1"}]}));
        assert_eq!(
            attempt_state(Some(&running), &worker("a", 1)),
            AttemptState::Running
        );
        let retrying = execution(serde_json::json!({"phase": "Running",
            "steps": [{"name": "a", "phase": "Retrying", "attempt": 1, "jobName": "run-a-1"}]}));
        assert_eq!(
            attempt_state(Some(&retrying), &worker("a", 2)),
            AttemptState::NotVisibleYet,
            "attempt 2's Job is created before the status shows it"
        );
        assert!(matches!(
            attempt_state(Some(&retrying), &worker("a", 1)),
            AttemptState::Finished(_)
        ));
        let later = execution(serde_json::json!({"phase": "Running",
            "steps": [{"name": "a", "phase": "Running", "attempt": 3, "jobName": "run-a-3"}]}));
        assert!(matches!(
            attempt_state(Some(&later), &worker("a", 2)),
            AttemptState::Finished(_)
        ));
        let fresh = execution(serde_json::json!({"phase": "Pending"}));
        assert_eq!(
            attempt_state(Some(&fresh), &worker("a", 1)),
            AttemptState::NotVisibleYet
        );
        let failed = execution(serde_json::json!({"phase": "Failed"}));
        assert!(matches!(
            attempt_state(Some(&failed), &worker("a", 1)),
            AttemptState::Finished(_)
        ));
        assert!(matches!(
            attempt_state(None, &worker("a", 1)),
            AttemptState::Finished(_)
        ));
        let mut other = running.clone();
        other.metadata.uid = Some("u2".into());
        assert!(
            matches!(
                attempt_state(Some(&other), &worker("a", 1)),
                AttemptState::Finished(_)
            ),
            "a successor of the same name"
        );
        let impostor = Worker {
            job: "someone-elses-job".into(),
            ..worker("a", 1)
        };
        assert_eq!(
            attempt_state(Some(&running), &impostor),
            AttemptState::NotItsJob
        );
    }

    /// Review finding 1: a flood of made-up tokens, or of tokens of pods that are no workers, costs no API call.
    #[tokio::test]
    async fn a_flood_of_bad_tokens_costs_no_token_review() {
        let (service, mut api) = tower_test::mock::pair::<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        let (ctx, _caches, _triggers) =
            Context::new(kube::Client::new(service, "default"), Settings::default());
        ctx.indexes.children.apply_job_event(&Event::InitDone);
        ctx.indexes.children.apply_pod_event(&Event::InitDone);
        let endpoint = Endpoint::new(ctx);
        let router = router(endpoint.clone())
            .layer(MockConnectInfo(SocketAddr::from(([10, 0, 0, 1], 4000))));
        let far = jiff::Timestamp::now().as_second() + 3600;
        let mut codes = std::collections::BTreeMap::new();
        for i in 0..1_000 {
            let token = match i % 3 {
                0 => format!("garbage-{i}"),
                1 => crate::auth::jwt::token_with(
                    &serde_json::json!({"aud": ["crew-operator"], "exp": far}),
                ),
                _ => crate::auth::jwt::token_with(
                    &serde_json::json!({"aud": ["crew-operator"], "exp": far,
                    "kubernetes.io": {"namespace": "ns", "pod": {"name": format!("p{i}"), "uid": format!("u{i}")}}}),
                ),
            };
            let request = http::Request::post(PATH)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(axum::body::Body::from("{}"))
                .unwrap();
            let code = router
                .clone()
                .oneshot(request)
                .await
                .unwrap()
                .status()
                .as_u16();
            *codes.entry(code).or_insert(0) += 1;
        }
        assert_eq!(
            codes,
            std::collections::BTreeMap::from([(401, 667), (403, 333)])
        );
        assert_eq!(endpoint.reviews_sent(), 0);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), api.next_request())
                .await
                .is_err(),
            "no request reached the API server"
        );
    }
}
