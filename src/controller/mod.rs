//! The I/O shell: watches executions, their Jobs and their pods; per reconcile observes → decides → acts
//! (`pipeline`).
//!
//! Every trigger of a reconcile is listed in [`Operator::run`]: an execution changed; one of its Jobs changed; its
//! pod changed what the plan reads; the Job controller explained a missing pod; its queue changed; a slot it may
//! take freed; its worker's reports are due; a sink delivered everything of it (its finalizer may go); this replica
//! became the leader; a timer the last plan set.

pub mod act;
pub mod child_index;
pub mod context;
pub mod events;
pub mod pipeline;
pub mod queues;
pub mod refusals;
pub mod tolerant;
pub mod watch_retry;
pub mod watches;
pub mod worker_access;

use crate::error::Error;
use crate::settings::Settings;
use context::{CacheWriters, Context, TriggerStreams, error_backoff_seconds};
use crew_api::CrewExecution;
use futures::StreamExt;
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::{Client, Resource, ResourceExt};
use std::sync::Arc;
use std::time::Duration;
use tracing::{Instrument, info_span};
use watch_retry::WatchBackoff;

/// Name the operator reports Events as.
pub const REPORTER: &str = "crew-operator";

/// This machine's host name (the pod name in a cluster), if it has one.
pub fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
}

/// The operator, built and ready to run: its [`Context`] exists (tests and the HTTP endpoints read it), and the
/// writers of its caches and its trigger streams wait for [`Operator::run`].
pub struct Operator {
    ctx: Arc<Context>,
    caches: CacheWriters,
    triggers: TriggerStreams,
}

impl Operator {
    /// Builds the operator for `client` and `settings` (within a Tokio runtime: it starts the Event lanes).
    pub fn new(client: Client, settings: Settings) -> Operator {
        let (ctx, caches, triggers) = Context::new(client, settings);
        Operator {
            ctx,
            caches,
            triggers,
        }
    }

    /// The shared context.
    pub fn context(&self) -> Arc<Context> {
        self.ctx.clone()
    }

    /// Runs the controller until `shutdown` resolves (e.g. [`crate::shutdown::signal`]), then lets the reconciles in
    /// flight finish. A stop requested before the caches have filled returns at once: nothing has run yet, and
    /// kube-runtime's graceful shutdown would wait forever for a cache that is no longer being filled.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let Operator {
            ctx,
            caches,
            triggers,
        } = self;
        let concurrency = ctx.settings.limits.max_concurrent_reconciles;
        let controller = Controller::for_stream(
            watches::executions(&ctx, caches.executions),
            ctx.caches.executions.clone(),
        )
        .owns_stream(watches::jobs(&ctx))
        .reconcile_on(watches::pod_changes(&ctx))
        .reconcile_on(watches::refusal_changes(&ctx))
        .watches_stream(watches::queues(&ctx, caches.queues), {
            let ctx = ctx.clone();
            move |queue| queues::waiting_in(&ctx, &queue)
        })
        .reconcile_on(triggers.slots_freed)
        .reconcile_on(triggers.reports_due)
        .reconcile_on(triggers.retention)
        .reconcile_all_on(triggers.leadership_gained)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        // The watches retry on their own (`watch_retry`); this backoff only guards the merged trigger stream.
        .trigger_backoff(WatchBackoff::default());
        let lines = tokio::spawn(queues::serve_lines(ctx.clone()));
        let resend = tokio::spawn(resend_when_ready(ctx.clone()));
        let sinks = tokio::spawn(watches::sinks(ctx.clone()));
        let credentials = ctx
            .settings
            .notify
            .sink_credentials
            .then(|| tokio::spawn(watches::sink_credentials(ctx.clone())));
        let checkpoints = tokio::spawn(crate::notify::checkpoint::run(ctx.clone()));
        let archive = ctx
            .archive
            .clone()
            .map(|archive| tokio::spawn(archive.run(ctx.clone())));
        let shutdown = futures::FutureExt::shared(shutdown);
        let controller = controller
            .graceful_shutdown_on(shutdown.clone())
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|result| {
                if let Err(error) = result {
                    tracing::debug!(%error, "reconcile trigger failed");
                }
                futures::future::ready(())
            });
        let stopping = ctx.clone();
        let unsynced_stop = async move {
            shutdown.await;
            if context::ready_now(&ctx.caches.executions) {
                std::future::pending::<()>().await;
            }
            tracing::info!("stop requested before the caches filled; stopping at once");
        };
        tokio::select! {
            () = controller => {}
            () = unsynced_stop => {}
        }
        lines.abort();
        resend.abort();
        sinks.abort();
        if let Some(credentials) = credentials {
            credentials.abort();
        }
        checkpoints.abort();
        if let Some(archive) = archive {
            archive.abort();
        }
        stopping.notify.sinks().clear();
    }
}

/// Once this replica may act (caches filled, leading): the Events a crash may have lost.
async fn resend_when_ready(ctx: Arc<Context>) {
    while !ctx.readiness().may_act() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    act::resend_recent_events(&ctx, jiff::Timestamp::now()).await;
}

/// A context whose client talks to a mocked API server, and the mock's handle (unit tests).
#[cfg(test)]
pub(crate) fn mocked_context() -> (
    Arc<Context>,
    tower_test::mock::Handle<http::Request<kube::client::Body>, http::Response<kube::client::Body>>,
) {
    let (service, api) = tower_test::mock::pair();
    let operator = Operator::new(Client::new(service, "default"), Settings::default());
    (operator.context(), api)
}

/// One reconcile of one execution (public for the mocked-API tests): the pipeline, timed and counted.
pub async fn reconcile(execution: Arc<CrewExecution>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = execution.namespace().unwrap_or_default();
    let name = execution.name_any();
    let span = info_span!("reconcile", namespace = %ns, name = %name);
    let started = std::time::Instant::now();
    let result = pipeline::reconcile_one(execution, ctx.clone())
        .instrument(span)
        .await;
    let error = result.as_ref().err().map(Error::metric_label);
    ctx.metrics
        .reconciled(started.elapsed().as_secs_f64(), error);
    result
}

/// A failed reconcile: retried with the execution's own exponential backoff; the execution is told why with one
/// Warning Event per category of failure and streak (its reason is the category, as in the metric).
fn error_policy(execution: Arc<CrewExecution>, error: &Error, ctx: Arc<Context>) -> Action {
    let category = error.category();
    let (failures, tell) = ctx
        .objects
        .record_failure(&execution.uid().unwrap_or_default(), category);
    let delay = error_backoff_seconds(failures);
    tracing::warn!(namespace = %execution.namespace().unwrap_or_default(), name = %execution.name_any(),
        %error, kind = error.metric_label(), failures, retry_in_seconds = delay, "reconcile failed");
    if let (true, Some(reason), true) = (tell, category.reason(), ctx.is_leading()) {
        let note = format!("reconcile failed ({failures} in a row, retried in {delay}s): {error}");
        let regarding = execution.object_ref(&());
        tokio::spawn(async move {
            ctx.events
                .send(events::EventDraft {
                    warning: reason.is_warning(),
                    reason: reason.as_str(),
                    note: &note,
                    action: "Reconcile",
                    regarding,
                    related: None,
                    entry_key: None,
                    time: None,
                })
                .await;
        });
    }
    Action::requeue(Duration::from_secs(delay))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn failing_execution() -> Arc<CrewExecution> {
        let mut cx = CrewExecution::new("x", Default::default());
        cx.metadata.namespace = Some("ns".into());
        cx.metadata.uid = Some("uid-x".into());
        Arc::new(cx)
    }

    fn api_error() -> Error {
        crate::error::kube("write status")(kube::Error::Api(Box::new(
            kube::core::Status::failure("etcd timeout", "InternalError").with_code(500),
        )))
    }

    /// The Event the mocked API server receives next, as (type, reason), answered 201.
    async fn next_event(
        api: &mut tower_test::mock::Handle<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >,
    ) -> Option<(String, String)> {
        let (request, send) = tokio::time::timeout(Duration::from_millis(200), api.next_request())
            .await
            .ok()??;
        assert!(request.uri().path().ends_with("/namespaces/ns/events"));
        let body = request.into_body().collect_bytes().await.ok()?;
        let event: serde_json::Value = serde_json::from_slice(&body).ok()?;
        send.send_response(
            http::Response::builder()
                .status(StatusCode::CREATED)
                .body(kube::client::Body::from(body.to_vec()))
                .ok()?,
        );
        Some((
            event["type"].as_str()?.to_string(),
            event["reason"].as_str()?.to_string(),
        ))
    }

    /// A failing reconcile tells its execution why: one Warning Event per category of failure and streak, with the
    /// category as reason; retries of the same failure add none.
    #[tokio::test]
    async fn a_failure_streak_leaves_one_warning_event_per_category() {
        let (ctx, mut api) = mocked_context();
        let cx = failing_execution();
        error_policy(cx.clone(), &api_error(), ctx.clone());
        assert_eq!(
            next_event(&mut api).await,
            Some(("Warning".into(), "ApiError".into()))
        );
        error_policy(cx.clone(), &api_error(), ctx.clone());
        assert_eq!(next_event(&mut api).await, None, "the same failure again");
        error_policy(
            cx.clone(),
            &Error::JobNameTaken("x-main-1".into()),
            ctx.clone(),
        );
        assert_eq!(
            next_event(&mut api).await,
            Some(("Warning".into(), "JobNameTaken".into()))
        );
        error_policy(cx, &Error::NotLeading("status write"), ctx.clone());
        assert_eq!(
            next_event(&mut api).await,
            None,
            "a lapsed leader writes nothing"
        );
    }
}
