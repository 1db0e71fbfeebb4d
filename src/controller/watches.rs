//! The operator's watches, one function each: what each watches, which cache or index it fills, and what it hands
//! the controller (objects to reconcile, or references of executions to reconcile). Every watch retries on its own
//! (`watch_retry`), so none of their errors reaches the controller.

use super::context::Context;
use super::tolerant::{self, Decoded};
use super::watch_retry::retried;
use super::{events, queues, refusals};
use crew_api::{CrewExecution, CrewQueue, Phase, Reason};
use crew_core::build::labels;
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{ObjectRef, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use std::sync::Arc;

type Watched<K> = Result<K, watcher::Error>;

fn api<K>(ctx: &Context) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match &ctx.settings.connection.namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    }
}

/// The operator's own children: Jobs and pods labelled with their execution.
fn children() -> watcher::Config {
    watcher::Config::default()
        .labels(labels::EXECUTION)
        .any_semantic()
}

/// CrewExecutions, each decoded on its own, slimmed and (once started) without their payload, into the cache;
/// the queue book and the per-execution bookkeeping follow every event. Yields the executions to reconcile.
pub fn executions(
    ctx: &Arc<Context>,
    writer: Writer<CrewExecution>,
) -> impl Stream<Item = Watched<CrewExecution>> + Send + use<> {
    let indexed = ctx.clone();
    retried(
        watcher(
            api::<Decoded<CrewExecution>>(ctx),
            watcher::Config::default().any_semantic(),
        ),
        "crewexecutions",
    )
    .filter_map(typed_events(ctx.clone()))
    .modify(slim)
    .modify(drop_payload)
    .reflect(writer)
    .inspect_ok(move |event| {
        queues::execution_event(&indexed, event);
        match event {
            watcher::Event::Apply(execution) | watcher::Event::InitApply(execution) => {
                indexed.notify.observe(execution);
                if let Some(archive) = &indexed.archive {
                    archive.offer(execution);
                }
            }
            watcher::Event::Delete(execution) => {
                indexed.forget(&execution.uid().unwrap_or_default())
            }
            watcher::Event::InitDone => indexed.forget_all_but_cached(),
            _ => {}
        }
    })
    .applied_objects()
}

/// CrewQueues into their cache; a changed queue's line is served again. Yields the queues whose waiting members
/// must look again: a queue created, deleted, or whose spec changed (a new `maxRunning`). Not a queue whose status
/// only changed: the operator writes it itself, up to once a second per queue, and reconciling every waiting
/// member on each write cost O(N) reconciles and O(N²) admission steps per write with N waiting (the freed slots
/// wake the members they admit through the queue book instead).
pub fn queues(
    ctx: &Arc<Context>,
    writer: Writer<CrewQueue>,
) -> impl Stream<Item = Watched<CrewQueue>> + Send + use<> {
    let indexed = ctx.clone();
    let mut generations: std::collections::HashMap<(String, String), Option<i64>> =
        std::collections::HashMap::new();
    retried(
        watcher(api::<Decoded<CrewQueue>>(ctx), watcher::Config::default()),
        "crewqueues",
    )
    .filter_map(typed_events(ctx.clone()))
    .modify(slim)
    .reflect(writer)
    .inspect_ok(move |event| {
        queues::queue_event(&indexed, event);
        if let watcher::Event::Delete(queue) = event {
            indexed
                .metrics
                .forget_queue(&queue.namespace().unwrap_or_default(), &queue.name_any());
        }
    })
    .filter_map(move |event| {
        let changed = match event {
            Ok(watcher::Event::Apply(queue) | watcher::Event::InitApply(queue)) => {
                let key = (queue.namespace().unwrap_or_default(), queue.name_any());
                let generation = queue.metadata.generation;
                (generations.insert(key, generation) != Some(generation)).then_some(Ok(queue))
            }
            Ok(watcher::Event::Delete(queue)) => {
                generations.remove(&(queue.namespace().unwrap_or_default(), queue.name_any()));
                Some(Ok(queue))
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
            Err(error) => Some(Err(error)),
        };
        futures::future::ready(changed)
    })
}

/// The executions' Jobs into the child index and the queue book. Yields the Jobs that changed (the controller
/// reconciles their owner).
pub fn jobs(ctx: &Arc<Context>) -> impl Stream<Item = Watched<Job>> + Send + use<> {
    let indexed = ctx.clone();
    retried(watcher(api::<Job>(ctx), children()), "jobs")
        .inspect_ok(move |event| {
            indexed.indexes.children.apply_job_event(event);
            queues::job_event(&indexed, event);
        })
        .touched_objects()
}

/// The Jobs' pods into the child index. Yields the executions whose pod changed what their plan reads (started,
/// blocked, terminated), and only those.
pub fn pod_changes(
    ctx: &Arc<Context>,
) -> impl Stream<Item = ObjectRef<CrewExecution>> + Send + use<> {
    let indexed = ctx.clone();
    retried(watcher(api::<Pod>(ctx), children()), "pods").filter_map(move |event| {
        let owner = event
            .ok()
            .and_then(|event| indexed.indexes.children.apply_pod_event(&event))
            .map(|(namespace, name)| ObjectRef::new(&name).within(&namespace));
        futures::future::ready(owner)
    })
}

/// The Job controller's `FailedCreate` Events into the refusal index. Yields the executions whose Job got a new
/// reason for having no pod (shown now rather than at the step's next timer).
pub fn refusal_changes(
    ctx: &Arc<Context>,
) -> impl Stream<Item = ObjectRef<CrewExecution>> + Send + use<> {
    let indexed = ctx.clone();
    retried(
        watcher(
            api::<k8s_openapi::api::core::v1::Event>(ctx),
            watcher::Config::default().fields(refusals::FAILED_CREATE_SELECTOR),
        ),
        "job events",
    )
    .filter_map(move |event| {
        let owner = event
            .ok()
            .and_then(|event| indexed.indexes.refusals.apply(&event))
            .and_then(|(namespace, job)| {
                let name = indexed.indexes.children.owner_of_job(&namespace, &job)?;
                Some(ObjectRef::new(&name).within(&namespace))
            });
        futures::future::ready(owner)
    })
}

/// CrewSinks: each one's delivery state and task (`crate::notify`), made when it appears, updated when it changes,
/// dropped when it goes. Runs until the watch ends.
pub async fn sinks(ctx: Arc<Context>) {
    let mut listed: Option<std::collections::HashSet<(String, String)>> = None;
    let events = retried(
        watcher(
            api::<Decoded<crew_api::CrewSink>>(&ctx),
            watcher::Config::default(),
        ),
        "crewsinks",
    )
    .filter_map(typed_events(ctx.clone()));
    futures::pin_mut!(events);
    while let Some(Ok(event)) = events.next().await {
        match event {
            watcher::Event::Init => listed = Some(Default::default()),
            watcher::Event::InitApply(sink) | watcher::Event::Apply(sink) => {
                let key = (sink.namespace().unwrap_or_default(), sink.name_any());
                if let Some(listed) = listed.as_mut() {
                    listed.insert(key.clone());
                }
                let executions = ctx.caches.executions.state();
                let (new, changed) = ctx.notify.sink_seen(Arc::new(sink), &executions);
                if new {
                    let wake = ctx.notify.sinks().get(&key).map(|s| s.wake.clone());
                    if let Some(wake) = wake {
                        let task =
                            tokio::spawn(crate::notify::sink::run(ctx.clone(), key.clone(), wake));
                        ctx.notify.attach(&key, task);
                    }
                }
                if changed {
                    release_held_in(&ctx, &key.0);
                }
            }
            watcher::Event::Delete(sink) => {
                ctx.notify.sink_gone(&sink);
                release_held_in(&ctx, &sink.namespace().unwrap_or_default());
            }
            watcher::Event::InitDone => {
                if let Some(listed) = listed.take() {
                    ctx.notify.sinks().retain(|key, _| listed.contains(key));
                }
            }
        }
    }
}

/// Reconciles the executions of `namespace` that hold the operator's finalizer: a sink went or changed, and may
/// no longer need them kept.
fn release_held_in(ctx: &Context, namespace: &str) {
    for cx in ctx.caches.executions.state() {
        let held = cx.namespace().as_deref() == Some(namespace)
            && cx
                .finalizers()
                .iter()
                .any(|f| f == crate::notify::RETAIN_FINALIZER);
        if held {
            ctx.triggers
                .retention_may_end(ObjectRef::from_obj(cx.as_ref()));
        }
    }
}

/// The Secrets opted in for sinks (label `crew.dev/sink-credentials: "true"`, and only those) into the credential
/// index. Runs until the watch ends.
pub async fn sink_credentials(ctx: Arc<Context>) {
    let events = retried(
        watcher(
            api::<k8s_openapi::api::core::v1::Secret>(&ctx),
            watcher::Config::default().labels(&crate::notify::credentials::selector()),
        ),
        "sink credentials",
    );
    futures::pin_mut!(events);
    while let Some(Ok(event)) = events.next().await {
        ctx.notify.credentials.apply(&event);
    }
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
                warning: Reason::Undecodable.is_warning(),
                reason: Reason::Undecodable.as_str(),
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

/// Drops what the operator never reads before an object enters a cache: `managedFields` (one entry per writer,
/// grows with every server-side apply) and kubectl's last-applied annotation (a second copy of the spec). With
/// thousands of executions cached this is most of their size.
pub(crate) fn slim<K: kube::Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

pub(crate) const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops `spec.crew` and `spec.inputs` (up to 900 KiB) from the cached copy of an execution that has started or
/// ended, or that waits (Queued, or Paused before its start): they are read only to validate the spec and to write
/// the run's ConfigMap before its first step, and keeping them for every execution that still exists (a long queue
/// above all) was most of the operator's memory with realistic inputs. A waiting execution's reconcile reads them
/// from the API server when it is admitted (`pipeline::payload`).
pub(crate) fn drop_payload(execution: &mut CrewExecution) {
    if started_or_ended(execution) || waits_before_start(execution) {
        let crew = execution.spec.crew.take();
        let inputs = execution.spec.inputs.take();
        if crew.is_some() || inputs.is_some() {
            // Only in the cached copy (nothing writes metadata from it but the finalizer's own list): whoever needs
            // the whole object (the archive) knows to read it afresh.
            execution
                .metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(PAYLOAD_DROPPED.to_string(), "true".to_string());
        }
    }
}

/// Marks a cached execution whose `spec.crew` or `spec.inputs` [`drop_payload`] dropped (never written).
pub const PAYLOAD_DROPPED: &str = "crew.dev/cached-without-payload";

fn started_or_ended(execution: &CrewExecution) -> bool {
    execution.status.as_ref().is_some_and(|status| {
        !status.resolved_steps.is_empty() || status.phase.is_some_and(Phase::is_terminal)
    })
}

/// Queued, or Paused, and never started: its cached copy has no payload.
pub(crate) fn waits_before_start(execution: &CrewExecution) -> bool {
    !started_or_ended(execution)
        && execution
            .status
            .as_ref()
            .and_then(|status| status.phase)
            .is_some_and(|phase| matches!(phase, Phase::Queued | Phase::Paused))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    /// Review finding 3: the cache kept every execution's crew and inputs (up to 900 KiB each) for as long as the
    /// execution existed; they are needed only to start the first step.
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
            assert!(
                cx.annotations().contains_key(PAYLOAD_DROPPED),
                "marked for the archive"
            );
        }
        let mut plain = CrewExecution::new(
            "b",
            serde_json::from_value(serde_json::json!({"image": "busybox"})).unwrap(),
        );
        plain.status = serde_json::from_value(serde_json::json!({"phase": "Failed"})).unwrap();
        drop_payload(&mut plain);
        assert!(
            plain.metadata.annotations.is_none(),
            "nothing dropped, nothing marked"
        );
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
