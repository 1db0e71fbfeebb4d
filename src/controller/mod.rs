//! The I/O shell: watches executions, their Jobs and their pods; per reconcile observes → decides → acts.

pub mod act;
pub mod child_index;
pub mod context;
pub mod events;
pub mod observe;
pub mod queues;
pub mod refusals;
pub mod tolerant;
pub mod watch_retry;
pub mod worker_access;

use crate::error::{Error, is_reason};
use act::StatusWrite;
use context::{Context, WriteKind, error_backoff_seconds};
use crew_api::{CrewExecution, CrewExecutionStatus, CrewQueue, Phase, StepPhase};
use crew_core::build::labels;
use crew_core::lifecycle::{Observed, decide};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::Action;
use kube::runtime::{Controller, WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use std::sync::Arc;
use std::time::Duration;
use tolerant::Decoded;
use tracing::{Instrument, info_span};
use watch_retry::{WatchBackoff, retried};

/// How the controller runs.
#[derive(Clone, Debug, Default)]
pub struct ControllerConfig {
    /// Watch only this namespace (None: all namespaces).
    pub namespace: Option<String>,
    /// Reporting instance in Events (e.g. the pod name).
    pub instance: Option<String>,
    /// Operator-wide limit on running executions that name no queue (None: unlimited).
    pub max_running: Option<u32>,
    /// Start timeout of workers whose execution sets none (None: 600 s).
    pub start_timeout_seconds: Option<i64>,
    /// What workers may use (ServiceAccounts, Secrets, pod annotations).
    pub worker_policy: crew_core::lifecycle::worker_policy::WorkerPolicy,
    /// Reconciles in flight at once (0, the default: unbounded). A bound makes new executions wait behind the
    /// reconciles of earlier ones stalled on a saturated API server: at N = 10 000, first-Job p99 88 s with 64
    /// and 49 s with 1 024, against 3 s unbounded (BENCHMARKS.md). The API server queues better than a slot limit.
    pub max_concurrent_reconciles: u16,
    /// The URL workers post progress to (None: workers are not given one).
    pub progress_url: Option<String>,
    /// At most one status write per execution this often for progress reports (None: 2 s).
    pub progress_interval: Option<Duration>,
}

/// Name the operator reports Events as.
pub const REPORTER: &str = "crew-operator";

fn api<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// This machine's host name (the pod name in a cluster), if it has one.
pub fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
}

/// A context whose client talks to a mocked API server, and the mock's handle (unit tests).
#[cfg(test)]
pub(crate) fn mocked_context() -> (
    Arc<Context>,
    tower_test::mock::Handle<http::Request<kube::client::Body>, http::Response<kube::client::Body>>,
) {
    let (service, api) = tower_test::mock::pair();
    (
        context(
            Client::new(service, "default"),
            &ControllerConfig::default(),
        ),
        api,
    )
}

/// Builds the context for `client` (within a Tokio runtime: it starts the Event lanes).
pub fn context(client: Client, config: &ControllerConfig) -> Arc<Context> {
    let instance = config
        .instance
        .clone()
        .or_else(host_name)
        .unwrap_or_else(|| REPORTER.to_string());
    let publisher = events::EventPublisher::new(client.clone(), REPORTER, &instance);
    Arc::new_cyclic(|context: &std::sync::Weak<Context>| {
        let context = context.clone();
        let on_published: events::OnPublished = Arc::new(move |event, outcome| match outcome {
            Ok(()) => {
                if let Some(ctx) = context.upgrade() {
                    ctx.count_write(WriteKind::Event);
                }
            }
            Err(error) if is_reason(&error, act::ALREADY_EXISTS) => {
                tracing::debug!(name = ?event.metadata.name, "Event already recorded");
            }
            Err(error) => {
                tracing::warn!(%error, reason = ?event.reason, "could not record Event");
            }
        });
        let events = events::EventQueue::start(publisher, on_published);
        let mut ctx = Context::new(client, events, config.max_running);
        if let Some(seconds) = config.start_timeout_seconds {
            ctx.start_timeout_seconds = seconds;
        }
        ctx.worker_policy = config.worker_policy.clone();
        ctx.progress_url = config.progress_url.clone();
        if let Some(interval) = config.progress_interval {
            ctx.progress = crate::progress::book::ProgressBook::new(interval);
        }
        ctx
    })
}

/// Runs the controller until `shutdown` resolves (e.g. [`crate::shutdown::signal`]), then lets the reconciles in
/// flight finish. A stop requested before the caches have filled returns at once: nothing has run yet, and
/// kube-runtime's graceful shutdown would wait forever for a cache that is no longer being filled.
pub async fn run(
    ctx: Arc<Context>,
    config: ControllerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let client = ctx.client.clone();
    let selector = watcher::Config::default()
        .labels(labels::EXECUTION)
        .any_semantic();
    let index = ctx.clone();
    let jobs = retried(
        watcher(api::<Job>(&client, &config.namespace), selector.clone()),
        "jobs",
    )
    .inspect_ok(move |event| {
        index.children.apply_job_event(event);
        queues::job_event(&index, event);
    })
    .touched_objects();
    let index = ctx.clone();
    let pods = retried(
        watcher(api::<Pod>(&client, &config.namespace), selector),
        "pods",
    )
    .inspect_ok(move |event| {
        if let Some((namespace, name)) = index.children.apply_pod_event(event) {
            let _ = index
                .wake
                .unbounded_send(kube::runtime::reflector::ObjectRef::new(&name).within(&namespace));
        }
    })
    .for_each(|_| futures::future::ready(()));
    let pods = tokio::spawn(pods);
    let index = ctx.clone();
    let refusals = retried(
        watcher(
            api::<k8s_openapi::api::core::v1::Event>(&client, &config.namespace),
            watcher::Config::default().fields(refusals::FAILED_CREATE_SELECTOR),
        ),
        "job events",
    )
    .inspect_ok(move |event| {
        // A new reason: show it now rather than at the step's next timer.
        if let Some((namespace, job)) = index.refusals.apply(event)
            && let Some(name) = index.children.owner_of_job(&namespace, &job)
        {
            let _ = index
                .wake
                .unbounded_send(kube::runtime::reflector::ObjectRef::new(&name).within(&namespace));
        }
    })
    .for_each(|_| futures::future::ready(()));
    let refusals = tokio::spawn(refusals);
    let executions = api::<Decoded<CrewExecution>>(&client, &config.namespace);
    let (execution_store, execution_writer) = reflector::store();
    let listed = ctx.clone();
    let execution_events = retried(
        watcher(executions, watcher::Config::default().any_semantic()),
        "crewexecutions",
    )
    .filter_map(typed_events(ctx.clone()))
    .modify(slim)
    .modify(drop_payload)
    .reflect(execution_writer)
    .inspect_ok(move |event| {
        queues::execution_event(&listed, event);
        match event {
            watcher::Event::InitDone => listed
                .executions_listed
                .store(true, std::sync::atomic::Ordering::Relaxed),
            watcher::Event::Delete(execution) => {
                listed.forget(&execution.uid().unwrap_or_default());
            }
            _ => {}
        }
    })
    .applied_objects();
    let mut controller = Controller::for_stream(execution_events, execution_store.clone())
        .owns_stream(jobs)
        .with_config(
            kube::runtime::controller::Config::default()
                .concurrency(config.max_concurrent_reconciles),
        )
        // The watches retry on their own (`retried`); this backoff only guards the merged trigger stream.
        .trigger_backoff(WatchBackoff::default());
    let _ = ctx.executions.set(execution_store.clone());
    let (queue_store, queue_writer) = reflector::store();
    let _ = ctx.queues.set(queue_store);
    let queue_changes = retried(
        watcher(
            api::<Decoded<CrewQueue>>(&client, &config.namespace),
            watcher::Config::default(),
        ),
        "crewqueues",
    )
    .filter_map(typed_events(ctx.clone()))
    .modify(slim)
    .reflect(queue_writer)
    .inspect_ok({
        let listed = ctx.clone();
        move |event| {
            queues::queue_event(&listed, event);
            match event {
                watcher::Event::InitDone => listed
                    .queues_listed
                    .store(true, std::sync::atomic::Ordering::Relaxed),
                watcher::Event::Delete(queue) => listed
                    .metrics
                    .forget_queue(&queue.namespace().unwrap_or_default(), &queue.name_any()),
                _ => {}
            }
        }
    })
    .touched_objects();
    let execution_reader = execution_store.clone();
    let waker = ctx.clone();
    controller = controller.watches_stream(queue_changes, move |queue| {
        queues::waiting_in(&waker, &queue)
    });
    if let Some(wake_requests) = ctx.wake_requests.lock().ok().and_then(|mut w| w.take()) {
        controller = controller.reconcile_on(wake_requests);
    }
    let lines = tokio::spawn(queues::serve_lines(ctx.clone()));
    // Once this replica may act (caches filled, leading): the Events a crash may have lost.
    let resend = tokio::spawn({
        let ctx = ctx.clone();
        async move {
            while !ctx.is_ready() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            act::resend_recent_events(&ctx, jiff::Timestamp::now()).await;
        }
    });
    let shutdown = futures::FutureExt::shared(shutdown);
    let controller = controller
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile trigger failed");
            }
            futures::future::ready(())
        });
    let unsynced_stop = async move {
        shutdown.await;
        if ready_now(&execution_reader) {
            std::future::pending::<()>().await;
        }
        tracing::info!("stop requested before the caches filled; stopping at once");
    };
    tokio::select! {
        () = controller => {}
        () = unsynced_stop => {}
    }
    pods.abort();
    refusals.abort();
    lines.abort();
    resend.abort();
}

/// One item of a watch stream over `K`.
type WatchItem<K> = Result<watcher::Event<K>, watcher::Error>;

/// The watch events of a [`Decoded`] watcher as typed events, undecodable objects reported and left out.
fn typed_events<K>(
    ctx: Arc<Context>,
) -> impl FnMut(WatchItem<Decoded<K>>) -> futures::future::Ready<Option<WatchItem<K>>>
where
    K: tolerant::Placeholder + kube::Resource<DynamicType = ()>,
{
    let reported = tolerant::Reported::default();
    move |event| {
        let report =
            |undecodable: tolerant::Undecodable| report_undecodable::<K>(&ctx, undecodable);
        futures::future::ready(match event {
            Ok(event) => tolerant::typed(event, &reported, &report).map(Ok),
            Err(error) => Some(Err(error)),
        })
    }
}

/// Tells the object's owner (a Warning Event on it), the operator's log and `/metrics` that an object is skipped.
fn report_undecodable<K: kube::Resource<DynamicType = ()>>(
    ctx: &Arc<Context>,
    undecodable: tolerant::Undecodable,
) {
    let kind = K::kind(&()).to_string();
    let metadata = undecodable.metadata;
    tracing::warn!(%kind, namespace = ?metadata.namespace, name = ?metadata.name,
        error = %undecodable.error, "skipping an object the operator cannot decode");
    ctx.metrics.undecodable(&kind);
    let regarding = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(K::api_version(&()).to_string()),
        kind: Some(kind),
        name: metadata.name,
        namespace: metadata.namespace,
        uid: metadata.uid,
        resource_version: metadata.resource_version,
        ..Default::default()
    };
    let note = format!(
        "the operator cannot read this object and ignores it until it is fixed: {}",
        undecodable.error
    );
    let ctx = ctx.clone();
    tokio::spawn(async move {
        ctx.events
            .send(events::EventDraft {
                warning: true,
                reason: "Undecodable",
                note: &note,
                action: "Watch",
                regarding,
                related: None,
                entry_key: None,
                time: None,
            })
            .await;
    });
}

/// Whether `store` has had its initial list (without waiting for it).
fn ready_now<K>(store: &reflector::Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    futures::FutureExt::now_or_never(store.wait_until_ready()).is_some()
}

/// Drops what the operator never reads before an object enters a cache: `managedFields` (one entry per writer,
/// grows with every server-side apply) and kubectl's last-applied annotation (a second copy of the spec). With
/// thousands of executions cached this is most of their size.
fn slim<K: kube::Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops `spec.crew` and `spec.inputs` (up to 900 KiB) from the cached copy of an execution that has started or
/// ended, or that waits (Queued, or Paused before its start): they are read only to validate the spec and to write
/// the run's ConfigMap before its first step, and keeping them for every execution that still exists (a long queue
/// above all) was most of the operator's memory with realistic inputs. A waiting execution's reconcile reads them
/// from the API server when it is admitted (see [`needs_payload`]).
fn drop_payload(execution: &mut CrewExecution) {
    if started_or_ended(execution) || waits_before_start(execution) {
        execution.spec.crew = None;
        execution.spec.inputs = None;
    }
}

fn started_or_ended(execution: &CrewExecution) -> bool {
    execution.status.as_ref().is_some_and(|status| {
        !status.resolved_steps.is_empty() || status.phase.is_some_and(Phase::is_terminal)
    })
}

/// Queued, or Paused, and never started: its cached copy has no payload.
fn waits_before_start(execution: &CrewExecution) -> bool {
    !started_or_ended(execution)
        && execution
            .status
            .as_ref()
            .and_then(|status| status.phase)
            .is_some_and(|phase| matches!(phase, Phase::Queued | Phase::Paused))
}

/// Whether this reconcile may start the run's first step from a cached copy without its payload: then the
/// execution is read from the API server first (one GET per queued run, when it is admitted).
fn needs_payload(execution: &CrewExecution, admission: &crew_core::lifecycle::Admission) -> bool {
    waits_before_start(execution)
        && *admission == crew_core::lifecycle::Admission::Admitted
        && !execution.spec.suspend
        && !execution.spec.cancel
}

/// The execution as the API server has it, with the payload the cache dropped (None: it is gone, or replaced by
/// another of the same name).
async fn read_payload(
    ctx: &Context,
    execution: &CrewExecution,
) -> Result<Option<Arc<CrewExecution>>, Error> {
    let api: Api<CrewExecution> = Api::namespaced(
        ctx.client.clone(),
        &execution.namespace().unwrap_or_default(),
    );
    let fresh = api
        .get_opt(&execution.name_any())
        .await
        .map_err(crate::error::kube("read a queued execution's payload"))?;
    Ok(fresh
        .filter(|fresh| fresh.uid() == execution.uid())
        .map(Arc::new))
}

/// One reconcile of one execution (public for the mocked-API tests).
pub async fn reconcile(execution: Arc<CrewExecution>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = execution.namespace().unwrap_or_default();
    let name = execution.name_any();
    let span = info_span!("reconcile", namespace = %ns, name = %name);
    let started = std::time::Instant::now();
    let result = reconcile_one(execution, ctx.clone()).instrument(span).await;
    let error = result.as_ref().err().map(Error::metric_label);
    ctx.metrics
        .reconciled(started.elapsed().as_secs_f64(), error);
    result
}

async fn reconcile_one(execution: Arc<CrewExecution>, ctx: Arc<Context>) -> Result<Action, Error> {
    let uid = execution.uid().unwrap_or_default();
    if !ctx.is_leading() {
        // A standby keeps its caches warm but acts on nothing; `Context::wake_all` brings it back on leadership.
        return Ok(Action::await_change());
    }
    if !ctx.caches_synced() {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    if execution.metadata.deletion_timestamp.is_some() {
        ctx.forget(&uid);
        return Ok(Action::await_change());
    }
    if ctx.cache_lags_own_write(&uid, execution.resource_version().as_deref()) {
        tracing::trace!("cache has not seen our last status write yet");
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    if let Some(status) = &execution.status {
        // Outcomes already written to the status are kept as written: the index need not hold them any longer.
        let recorded = status
            .steps
            .iter()
            .filter(|step| step.completion_time.is_some())
            .filter_map(|step| step.job_name.as_deref());
        ctx.children.release_outcomes(
            &execution.namespace().unwrap_or_default(),
            &execution.name_any(),
            recorded,
        );
    }
    let admission = queues::admission(&ctx, &execution);
    let execution = if needs_payload(&execution, &admission) {
        match Box::pin(read_payload(&ctx, &execution)).await {
            Ok(Some(fresh)) => fresh,
            // Deleted (or replaced) meanwhile: its watch event follows.
            Ok(None) => {
                queues::release(&ctx, &execution);
                return Ok(Action::await_change());
            }
            Err(error) => {
                queues::release(&ctx, &execution);
                return Err(error);
            }
        }
    } else {
        execution
    };
    // What the current attempt's worker reported, and whether it may be written now (coalescing).
    let held = ctx.progress.held(&uid, std::time::Instant::now());
    let mut observed = Observed {
        name: &execution.name_any(),
        generation: execution.metadata.generation,
        spec: &execution.spec,
        status: execution.status.as_ref(),
        jobs: ctx.children.jobs_of(
            &execution.namespace().unwrap_or_default(),
            &execution.name_any(),
            &uid,
        ),
        admission,
        rejected: None,
        missing_job: None,
        default_start_timeout_seconds: ctx.start_timeout_seconds,
        pod_refused: None,
        worker_policy: &ctx.worker_policy,
        report: held.as_ref().map(|h| &h.reports),
        report_due: held.as_ref().is_some_and(|h| h.due),
        acting_since: Some(ctx.acting_since()),
    };
    let now = jiff::Timestamp::now();
    // Boxed: the plan (a whole status) stays alive while the writes wait on the API server.
    let mut plan = Box::new(decide(&observed, now));
    if let Some(job) = plan.verify_job.clone() {
        // The cache has not shown this Job for a minute: ask the API server before counting the attempt lost.
        let jobs: Api<Job> = Api::namespaced(
            ctx.client.clone(),
            &execution.namespace().unwrap_or_default(),
        );
        match Box::pin(jobs.get_opt(&job)).await {
            Ok(None) => {
                observed.missing_job = Some(job);
                plan = Box::new(decide(&observed, now));
            }
            Ok(Some(_)) => {
                tracing::info!(%job, "Job missing from the cache but present: the watch lags")
            }
            Err(error) => {
                return Err(crate::error::kube("read a Job missing from the cache")(
                    error,
                ));
            }
        }
    }
    if let Some(job) = plan.explain_job.clone() {
        // The Job has had no pod for a while: the Job controller's `FailedCreate` Event says why, if it has said
        // so (the watched index, no request). None yet: the pod is only late, and the plan stands.
        let ns = execution.namespace().unwrap_or_default();
        if let Some(refusal) = ctx.refusals.of(&ns, &job) {
            observed.pod_refused = Some(refusal);
            plan = Box::new(decide(&observed, now));
        }
    }
    if !plan.is_noop() {
        tracing::debug!(launch = ?plan.launch.as_ref().map(|l| &l.job_name), delete = ?plan.delete_jobs,
            release = ?plan.release_jobs, status = plan.status.is_some(), events = plan.events.len(), "executing plan");
    }
    if !takes_slot(&plan) {
        queues::release(&ctx, &execution);
    }
    // Boxed, like each write inside: thousands of reconciles wait here at once during a burst.
    let (plan, outcome) = match Box::pin(act::execute(&execution, &plan, &ctx)).await {
        // The API server refused the Job: decide again knowing it (the attempt fails, visibly) and write that.
        Err(Error::JobRejected(rejection)) => {
            tracing::info!(job = %rejection.job_name, permanent = rejection.permanent,
                message = %rejection.message, "Job create refused");
            let observed = Observed {
                rejected: Some(rejection),
                ..observed
            };
            let plan = Box::new(decide(&observed, now));
            if !takes_slot(&plan) {
                queues::release(&ctx, &execution);
            }
            let outcome = Box::pin(act::execute(&execution, &plan, &ctx)).await;
            (plan, outcome)
        }
        outcome => (plan, outcome),
    };
    let written = match outcome {
        Ok(written) => written,
        Err(error) => {
            queues::release(&ctx, &execution);
            return Err(error);
        }
    };
    ctx.record_success(&uid);
    let before = execution
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .unwrap_or_default();
    let after = plan.status.as_ref().and_then(|s| s.phase).unwrap_or(before);
    if after.is_terminal() {
        ctx.progress.forget(&uid);
    } else if let Some(held) = &held {
        let carried = written == StatusWrite::Written && plan.status.is_some();
        let again = ctx
            .progress
            .reconciled(&uid, held.version, carried, std::time::Instant::now());
        if let Some(wake) = again {
            crate::progress::endpoint::wake_for_report(
                &ctx,
                reflector::ObjectRef::from_obj(&*execution),
                wake,
            );
        }
    }
    if written == StatusWrite::Written {
        if let Some(status) = &plan.status {
            record_outcomes(&ctx, execution.status.as_ref(), status);
        }
        if after != before && !matches!(after, Phase::Running | Phase::Queued) {
            queues::wake_queue_of(&ctx, &execution);
        }
    }
    Ok(match (written, plan.requeue_after_seconds) {
        (StatusWrite::Stale, _) => Action::requeue(Duration::from_secs(1)),
        (_, Some(seconds)) => Action::requeue(Duration::from_secs(seconds.max(1))),
        (_, None) => Action::await_change(),
    })
}

/// Whether executing `plan` holds a running slot (a launch, or a Running status).
fn takes_slot(plan: &crew_core::lifecycle::Plan) -> bool {
    plan.launch.is_some()
        || plan
            .status
            .as_ref()
            .is_some_and(|s| s.phase == Some(Phase::Running))
}

/// Transition, step and execution metrics for a status just written over `previous`.
fn record_outcomes(
    ctx: &Context,
    previous: Option<&CrewExecutionStatus>,
    status: &CrewExecutionStatus,
) {
    // Entries are only appended (the oldest may be dropped by the cap), so the new ones are those after the last
    // previously known entry.
    let last_known = previous.and_then(|p| p.history.last());
    let start = last_known
        .and_then(|last| status.history.iter().rposition(|e| e == last))
        .map_or(0, |i| i + 1);
    for entry in status.history[start..].iter().filter(|e| e.from != e.to) {
        ctx.metrics
            .transition(entry.from.as_str(), entry.to.as_str());
    }
    for step in &status.steps {
        let before = previous.and_then(|p| p.steps.iter().find(|s| s.name == step.name));
        let newly_finished = step.completion_time.is_some()
            && before.is_none_or(|b| {
                b.completion_time != step.completion_time || b.attempt != step.attempt
            });
        if newly_finished && let Some(seconds) = step.duration_seconds {
            let outcome = if step.phase == StepPhase::Succeeded {
                "succeeded"
            } else {
                "failed"
            };
            ctx.metrics.step_finished(outcome, seconds as f64);
        }
    }
    let phase = status.phase.unwrap_or_default();
    let was_terminal = previous
        .and_then(|p| p.phase)
        .is_some_and(Phase::is_terminal);
    if phase.is_terminal() && !was_terminal {
        ctx.metrics.execution_finished(
            phase.as_str(),
            status.duration_seconds.unwrap_or_default() as f64,
        );
    }
}

fn error_policy(execution: Arc<CrewExecution>, error: &Error, ctx: Arc<Context>) -> Action {
    let failures = ctx.record_failure(&execution.uid().unwrap_or_default());
    let delay = error_backoff_seconds(failures);
    tracing::warn!(namespace = %execution.namespace().unwrap_or_default(), name = %execution.name_any(),
        %error, kind = error.metric_label(), failures, retry_in_seconds = delay, "reconcile failed");
    Action::requeue(Duration::from_secs(delay))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    /// Review finding 3: the cache kept every execution's crew and inputs (up to 900 KiB each) for as long as the
    /// execution existed; they are needed only to start the first step, and a waiting one reads them when admitted.
    #[test]
    fn crew_and_inputs_leave_the_cache_unless_the_run_may_start_now() {
        let spec = serde_json::json!({"image": "busybox", "crew": {"a": 1}, "inputs": {"b": 2}});
        for status in [None, Some(serde_json::json!({"phase": "Pending"}))] {
            let mut new = CrewExecution::new("a", serde_json::from_value(spec.clone()).unwrap());
            new.status = status.map(|s| serde_json::from_value(s).unwrap());
            drop_payload(&mut new);
            assert!(
                new.spec.crew.is_some() && new.spec.inputs.is_some(),
                "needed to start"
            );
        }
        for status in [
            serde_json::json!({"phase": "Queued"}),
            serde_json::json!({"phase": "Paused"}),
            serde_json::json!({"phase": "Running", "resolvedSteps": [{"name": "main", "image": "busybox"}]}),
            serde_json::json!({"phase": "Failed"}),
        ] {
            let mut cx = CrewExecution::new("a", serde_json::from_value(spec.clone()).unwrap());
            cx.status = serde_json::from_value(status).unwrap();
            drop_payload(&mut cx);
            assert!(cx.spec.crew.is_none() && cx.spec.inputs.is_none());
            assert_eq!(cx.spec.image.as_deref(), Some("busybox"));
        }
        let mut queued = CrewExecution::new("a", serde_json::from_value(spec).unwrap());
        queued.status = serde_json::from_value(serde_json::json!({"phase": "Queued"})).unwrap();
        let wait = crew_core::lifecycle::Admission::Wait {
            queue: "q".into(),
            position: 1,
        };
        assert!(!needs_payload(&queued, &wait));
        assert!(needs_payload(
            &queued,
            &crew_core::lifecycle::Admission::Admitted
        ));
        queued.spec.suspend = true;
        assert!(!needs_payload(
            &queued,
            &crew_core::lifecycle::Admission::Admitted
        ));
    }

    #[test]
    fn slim_drops_managed_fields_and_last_applied_but_keeps_other_annotations() {
        let mut cx = CrewExecution::new(
            "a",
            serde_json::from_value(serde_json::json!({"image": "busybox"})).unwrap(),
        );
        cx.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
        cx.metadata.annotations = Some(
            [
                (LAST_APPLIED.to_string(), "{...}".to_string()),
                ("team".to_string(), "x".to_string()),
            ]
            .into_iter()
            .collect(),
        );
        slim(&mut cx);
        assert!(cx.metadata.managed_fields.is_none());
        let annotations = cx.metadata.annotations.unwrap();
        assert_eq!(annotations.keys().collect::<Vec<_>>(), ["team"]);
        assert_eq!(cx.spec.image.as_deref(), Some("busybox"));
    }
}
