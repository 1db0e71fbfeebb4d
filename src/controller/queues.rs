//! Queue admission and statistics in the shell: keeps the [`QueueBook`] up to date from the watch events, asks it
//! for admissions and for the heads of a queue when a slot frees, and serves the queues whose members changed
//! (wakes their heads, writes `CrewQueue.status` at most once per second per queue).
//!
//! Nothing here passes over every execution: an admission and a freed slot cost O(log N + free slots) in the book,
//! and a queue's status is computed only when one of its members changed (or every [`CLOCK_REFRESH`], for the
//! clock-driven figures and as a safety net).

use super::context::Context;
use crate::metrics::WriteKind;
use crew_api::{CrewExecution, CrewQueue, FIELD_MANAGER, Phase};
use crew_core::lifecycle::Admission;
use crew_core::lifecycle::membership::{key_of, phase_of};
use crew_core::lifecycle::queue_book::{Entry, LineId, QueueBook};
use crew_core::lifecycle::queue_stats::{counts_changed, queue_status};
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::Event;
use kube::{Api, Resource, ResourceExt};
use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

/// Name used for the operator-wide limit in messages.
pub const GLOBAL_QUEUE: &str = "(operator-wide limit)";
/// Re-serve every queue this often even when no member changed: the clock-driven figures
/// (`oldestQueuedSeconds`), expired admissions, and a safety net for any missed change.
const CLOCK_REFRESH: Duration = Duration::from_secs(30);

/// The queue book.
fn book(ctx: &Context) -> MutexGuard<'_, QueueBook> {
    ctx.indexes.book()
}

/// Applies one event of the executions watch to the book (after the cache applied it).
pub fn execution_event(ctx: &Context, event: &Event<CrewExecution>) {
    let mut book = book(ctx);
    match event {
        Event::Apply(cx) => book.apply(Entry::of(cx)),
        Event::Delete(cx) => book.remove(&key_of(cx)),
        Event::Init => book.begin_relist(),
        Event::InitApply(cx) => book.relisted(Entry::of(cx)),
        Event::InitDone => book.finish_relist(),
    }
}

/// Applies one event of the Jobs watch to the book (after the child index applied it): whether the Job's owner
/// still owns a running Job.
pub fn job_event(ctx: &Context, event: &Event<Job>) {
    match event {
        Event::Apply(job) | Event::Delete(job) => {
            if let Some((owner, running)) = ctx.indexes.children.running_owner_of(job) {
                book(ctx).set_running_job(&owner, running);
            }
        }
        Event::InitDone => {
            let owners = ctx.indexes.children.running_owners();
            book(ctx).replace_running_jobs(owners);
        }
        Event::Init | Event::InitApply(_) => {}
    }
}

/// Applies one event of the queues watch: the queue's line is served again (its status, its heads).
pub fn queue_event(ctx: &Context, event: &Event<CrewQueue>) {
    let mut book = book(ctx);
    match event {
        Event::Apply(queue) | Event::Delete(queue) | Event::InitApply(queue) => {
            book.mark_dirty(LineId::of(
                &queue.namespace().unwrap_or_default(),
                Some(&queue.name_any()),
            ));
        }
        Event::Init | Event::InitDone => {}
    }
}

/// Whether `execution` may take a running slot now.
pub fn admission(ctx: &Context, execution: &CrewExecution) -> Admission {
    let current = phase_of(execution);
    if current == Phase::Running || current.is_terminal() {
        return Admission::Admitted;
    }
    let namespace = execution.namespace().unwrap_or_default();
    let queue = execution.spec.queue.as_deref();
    let label = queue.unwrap_or(GLOBAL_QUEUE);
    let limit = match limit_of(ctx, &namespace, queue) {
        Limit::Of(limit) => limit,
        Limit::Unlimited => return Admission::Admitted,
        Limit::QueueNotFound(name) => return Admission::QueueNotFound(name),
    };
    // Computing and reserving under one lock makes concurrent reconciles agree (see `QueueBook::admit`).
    book(ctx).admit(
        &LineId::of_execution(execution),
        &key_of(execution),
        label,
        Some(limit),
        Timestamp::now(),
    )
}

/// Drops the admission reserved for `execution` (its reconcile did not launch, or failed).
pub fn release(ctx: &Context, execution: &CrewExecution) {
    book(ctx).release(&key_of(execution));
}

/// Reconciles the executions that may take the slot `execution` left (it left a slot or changed phase).
pub fn wake_queue_of(ctx: &Context, execution: &CrewExecution) {
    let namespace = execution.namespace().unwrap_or_default();
    if let Limit::Of(limit) = limit_of(ctx, &namespace, execution.spec.queue.as_deref()) {
        wake_heads(ctx, &LineId::of_execution(execution), limit);
    }
}

/// What limits a line.
enum Limit {
    Of(u32),
    Unlimited,
    QueueNotFound(String),
}

/// The line's `maxRunning` (the operator-wide `--max-running` without a queue).
fn limit_of(ctx: &Context, namespace: &str, queue: Option<&str>) -> Limit {
    match queue {
        Some(name) => ctx
            .caches
            .queues
            .get(&ObjectRef::new(name).within(namespace))
            .map_or_else(
                || Limit::QueueNotFound(name.to_string()),
                |queue| Limit::Of(queue.spec.max_running.max(1)),
            ),
        None => ctx
            .settings
            .limits
            .max_running
            .map_or(Limit::Unlimited, |max| Limit::Of(max.max(1))),
    }
}

/// Reconciles the waiting members of `line` that admission would let in now, and only those: waking every
/// waiting member made each compute its admission over the whole queue (quadratic work, per freed slot).
fn wake_heads(ctx: &Context, line: &LineId, limit: u32) {
    let heads = book(ctx).next_admitted(line, limit, Timestamp::now());
    for (namespace, name) in heads {
        ctx.triggers
            .slot_freed(ObjectRef::new(&name).within(&namespace));
    }
}

/// The executions to reconcile when `queue` changes (created, or its limit raised): its Pending and Queued members.
pub fn waiting_in(ctx: &Context, queue: &CrewQueue) -> Vec<ObjectRef<CrewExecution>> {
    let line = LineId::of(
        &queue.namespace().unwrap_or_default(),
        Some(&queue.name_any()),
    );
    book(ctx)
        .pending_or_queued(&line)
        .into_iter()
        .map(|(namespace, name)| ObjectRef::new(&name).within(&namespace))
        .collect()
}

/// Serves the lines whose members changed, at most once per second each: wakes their heads when a slot is free
/// (slots freed by deletions and expired admissions), sets the metrics, and writes each queue's status when its
/// counts changed. Every line is served every [`CLOCK_REFRESH`] and when this replica becomes the leader.
pub async fn serve_lines(ctx: Arc<Context>) {
    let mut written: HashMap<LineId, Timestamp> = HashMap::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_full = tokio::time::Instant::now();
    let mut was_leading = false;
    loop {
        ticker.tick().await;
        let leading = ctx.is_leading();
        let full = (leading && !was_leading) || last_full.elapsed() >= CLOCK_REFRESH;
        was_leading = leading;
        let (dirty, phases) = {
            let mut book = book(&ctx);
            if full {
                last_full = tokio::time::Instant::now();
                book.mark_all_dirty();
                for queue in ctx.caches.queues.state() {
                    book.mark_dirty(LineId::of(
                        &queue.namespace().unwrap_or_default(),
                        Some(&queue.name_any()),
                    ));
                }
            }
            (book.take_dirty(), book.phase_counts().clone())
        };
        if dirty.is_empty() {
            continue;
        }
        for phase in Phase::ALL {
            ctx.metrics
                .set_executions(phase.as_str(), phases.get(&phase).copied().unwrap_or(0));
        }
        let now = crew_core::lifecycle::timefmt::whole_seconds(Timestamp::now());
        for line in dirty {
            serve_line(&ctx, &line, leading, now, &mut written).await;
        }
    }
}

/// Serves one changed line (see [`serve_lines`]).
async fn serve_line(
    ctx: &Context,
    line: &LineId,
    leading: bool,
    now: Timestamp,
    written: &mut HashMap<LineId, Timestamp>,
) {
    let LineId::Queue { namespace, name } = line else {
        if let (Some(max), true) = (ctx.settings.limits.max_running, leading) {
            wake_heads(ctx, line, max.max(1));
        }
        return;
    };
    let Some(queue) = ctx
        .caches
        .queues
        .get(&ObjectRef::new(name).within(namespace))
    else {
        written.remove(line);
        return;
    };
    let summary = book(ctx).summary(line);
    let count = |phase: Phase| summary.facts.iter().filter(|f| f.phase == phase).count() as i64;
    ctx.metrics
        .set_queue(namespace, name, count(Phase::Queued), count(Phase::Running));
    if !leading {
        return;
    }
    wake_heads(ctx, line, queue.spec.max_running.max(1));
    let status = queue_status(&summary.facts, queue.metadata.generation, now);
    let stale_clock = status.oldest_queued_seconds.is_some()
        && written.get(line).is_none_or(|t| {
            crew_core::lifecycle::timefmt::seconds_between(*t, now)
                >= CLOCK_REFRESH.as_secs() as i64
        });
    if !counts_changed(queue.status.as_ref(), &status) && !stale_clock {
        return;
    }
    let api: Api<CrewQueue> = Api::namespaced(ctx.client.clone(), namespace);
    let body = serde_json::json!({
        "apiVersion": CrewQueue::api_version(&()), "kind": CrewQueue::kind(&()), "status": status,
    });
    match api
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
    {
        Ok(_) => {
            ctx.count_write(WriteKind::QueueStatus);
            written.insert(line.clone(), now);
        }
        Err(error) => tracing::warn!(%error, queue = %name, "could not write queue status"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::Operator;
    use crate::settings::{LimitArgs, Settings};

    fn limited_context(max_running: u32) -> Arc<Context> {
        let (service, _api) = tower_test::mock::pair::<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        let settings = Settings {
            limits: LimitArgs {
                max_running: Some(max_running),
                ..Default::default()
            },
            ..Default::default()
        };
        Operator::new(kube::Client::new(service, "default"), settings).context()
    }

    fn queued(name: &str, created: i64) -> CrewExecution {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "crew.dev/v1alpha1", "kind": "CrewExecution",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                         "creationTimestamp": Timestamp::from_second(created).unwrap().to_string()},
            "spec": {"steps": [{"name": "s", "image": "busybox"}]},
            "status": {"phase": "Queued"},
        }))
        .unwrap()
    }

    fn running_job_of(owner: &str) -> Job {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": format!("{owner}-s-1"), "namespace": "ns",
                         "labels": {"crew.dev/execution": owner, "crew.dev/step": "s", "crew.dev/attempt": "1"},
                         "ownerReferences": [{"apiVersion": "crew.dev/v1alpha1", "kind": "CrewExecution",
                                              "name": owner, "uid": format!("uid-{owner}"), "controller": true}]},
            "status": {"active": 1},
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn a_deleted_execution_frees_its_reserved_slot() {
        let ctx = limited_context(1);
        let (first, second) = (queued("first", 1), queued("second", 2));
        execution_event(&ctx, &Event::Apply(first.clone()));
        execution_event(&ctx, &Event::Apply(second.clone()));
        assert_eq!(admission(&ctx, &first), Admission::Admitted);
        assert!(matches!(admission(&ctx, &second), Admission::Wait { .. }));
        execution_event(&ctx, &Event::Delete(first));
        assert_eq!(admission(&ctx, &second), Admission::Admitted);
    }

    /// Review finding 8: a member whose Running status write was lost after its Job create still holds its slot.
    #[tokio::test]
    async fn a_running_job_holds_the_slot_whatever_the_status_says() {
        let ctx = limited_context(1);
        let (lost_write, next) = (queued("lost-write", 5), queued("next", 1));
        execution_event(&ctx, &Event::Apply(lost_write));
        execution_event(&ctx, &Event::Apply(next.clone()));
        let job = Event::Apply(running_job_of("lost-write"));
        ctx.indexes.children.apply_job_event(&job);
        job_event(&ctx, &job);
        assert!(matches!(admission(&ctx, &next), Admission::Wait { .. }));
        let gone = Event::Delete(running_job_of("lost-write"));
        ctx.indexes.children.apply_job_event(&gone);
        job_event(&ctx, &gone);
        assert_eq!(admission(&ctx, &next), Admission::Admitted);
    }
}
