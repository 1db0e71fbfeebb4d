//! Queue admission and statistics in the shell: reads the cached executions and queues, asks the pure core
//! (`lifecycle::queue`, `lifecycle::queue_stats`), wakes waiting executions when a slot frees, and writes
//! `CrewQueue.status` at most once per second per queue.

use super::context::{Context, WriteKind};
use crew_api::{CrewExecution, CrewQueue, FIELD_MANAGER, Phase};
use crew_core::lifecycle::Admission;
use crew_core::lifecycle::queue::{Member, admit, next_admitted};
use crew_core::lifecycle::queue_stats::{MemberFacts, counts_changed, queue_status};
use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Name used for the operator-wide limit in messages.
pub const GLOBAL_QUEUE: &str = "(operator-wide limit)";
/// How long an admission waits for the cache to show its execution Running before it is forgotten.
const RESERVATION_TTL: Duration = Duration::from_secs(60);
/// Re-write a queue's status this often even when only its clock-driven figures changed.
const CLOCK_REFRESH: Duration = Duration::from_secs(30);

fn phase(cx: &CrewExecution) -> Phase {
    cx.status.as_ref().and_then(|s| s.phase).unwrap_or_default()
}

fn created(cx: &CrewExecution) -> Timestamp {
    cx.metadata
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
}

/// Whether two executions share a queue: the same named queue in the same namespace, or both without one.
fn same_queue(a: &CrewExecution, namespace: &str, queue: Option<&str>) -> bool {
    match queue {
        Some(q) => {
            a.spec.queue.as_deref() == Some(q) && a.namespace().as_deref() == Some(namespace)
        }
        None => a.spec.queue.is_none(),
    }
}

/// An execution's identity in a queue: `namespace/name` (names repeat across namespaces, and the operator-wide
/// limit counts them all).
fn member_key(cx: &CrewExecution) -> String {
    format!("{}/{}", cx.namespace().unwrap_or_default(), cx.name_any())
}

fn members_of(
    store: &Store<CrewExecution>,
    namespace: &str,
    queue: Option<&str>,
) -> Vec<Arc<CrewExecution>> {
    store
        .state()
        .into_iter()
        .filter(|cx| same_queue(cx, namespace, queue))
        .collect()
}

/// The queue's view of `cx`. A waiting member holds a slot when it has a running Job whose Running status was
/// never written (the write failed, or the operator stopped, after the Job create): admission counts what runs
/// (finding 8).
fn queue_member(ctx: &Context, cx: &CrewExecution) -> Member {
    let mut member = Member::new(&member_key(cx), &cx.spec, phase(cx), created(cx));
    if member.waiting
        && ctx.children.has_active_job(
            &cx.namespace().unwrap_or_default(),
            &cx.name_any(),
            &cx.uid().unwrap_or_default(),
        )
    {
        member.running = true;
        member.waiting = false;
    }
    member
}

/// Whether `execution` may take a running slot now.
pub fn admission(ctx: &Context, execution: &CrewExecution) -> Admission {
    let current = phase(execution);
    if current == Phase::Running || current.is_terminal() {
        return Admission::Admitted;
    }
    let Some(executions) = ctx.executions.get() else {
        return Admission::Admitted;
    };
    let namespace = execution.namespace().unwrap_or_default();
    let (limit, label) = match execution.spec.queue.as_deref() {
        Some(name) => {
            let queue = ctx
                .queues
                .get()
                .and_then(|q| q.get(&ObjectRef::new(name).within(&namespace)));
            match queue {
                Some(queue) => (queue.spec.max_running.max(1), name),
                None => return Admission::QueueNotFound(name.to_string()),
            }
        }
        None => match ctx.max_running {
            Some(max) => (max.max(1), GLOBAL_QUEUE),
            None => return Admission::Admitted,
        },
    };
    // Admissions whose Running status the cache has not shown yet count as running (the Job controller's
    // "expectations"): without this, an execution arriving while another one's admission is in flight could take
    // the same slot. Computing and reserving under one lock makes concurrent reconciles agree.
    let Ok(mut reserved) = ctx.admissions.lock() else {
        return Admission::Wait {
            queue: label.to_string(),
            position: 1,
        };
    };
    let members: Vec<Member> = members_of(executions, &namespace, execution.spec.queue.as_deref())
        .iter()
        .map(|cx| {
            let mut member = queue_member(ctx, cx);
            let uid = cx.uid().unwrap_or_default();
            // A waiting member also holds a slot with an admission the cache has not shown Running yet. Any other
            // reservation is spent or stale.
            let reserved_now = match reserved.get(&uid) {
                Some(at) if member.waiting && at.elapsed() < RESERVATION_TTL => true,
                Some(_) => {
                    reserved.remove(&uid);
                    false
                }
                None => false,
            };
            if reserved_now {
                member.running = true;
                member.waiting = false;
            }
            member
        })
        .collect();
    let verdict = admit(&members, &member_key(execution), label, Some(limit));
    if verdict == Admission::Admitted
        && let Some(uid) = execution.uid()
    {
        reserved.insert(uid, std::time::Instant::now());
    }
    verdict
}

/// Drops the admission reserved for `execution` (its reconcile did not launch, or failed).
pub fn release(ctx: &Context, execution: &CrewExecution) {
    if let (Ok(mut reserved), Some(uid)) = (ctx.admissions.lock(), execution.uid()) {
        reserved.remove(&uid);
    }
}

/// Reconciles the executions that may take the slot `execution` left (it left a slot or changed phase).
pub fn wake_queue_of(ctx: &Context, execution: &CrewExecution) {
    if execution.spec.queue.is_none() && ctx.max_running.is_none() {
        return;
    }
    let Some(executions) = ctx.executions.get() else {
        return;
    };
    let namespace = execution.namespace().unwrap_or_default();
    let queue = execution.spec.queue.as_deref();
    let Some(limit) = limit_of(ctx, &namespace, queue) else {
        return;
    };
    wake_heads(ctx, &members_of(executions, &namespace, queue), limit);
}

/// The queue's `maxRunning` (the operator-wide `--max-running` without a queue); None when nothing limits it or the
/// queue does not exist (its members are reconciled when it is created).
fn limit_of(ctx: &Context, namespace: &str, queue: Option<&str>) -> Option<u32> {
    match queue {
        Some(name) => ctx
            .queues
            .get()
            .and_then(|queues| queues.get(&ObjectRef::new(name).within(namespace)))
            .map(|queue| queue.spec.max_running.max(1)),
        None => ctx.max_running.map(|max| max.max(1)),
    }
}

/// Reconciles the waiting members that admission would let in now, and only those: waking every waiting member
/// made each compute its admission over the whole queue (quadratic work for a long queue, per freed slot).
fn wake_heads(ctx: &Context, members: &[Arc<CrewExecution>], limit: u32) {
    let seen: Vec<Member> = members.iter().map(|cx| queue_member(ctx, cx)).collect();
    let heads: HashSet<&str> = next_admitted(&seen, limit).into_iter().collect();
    if heads.is_empty() {
        return;
    }
    for cx in members {
        if heads.contains(member_key(cx).as_str()) {
            let _ = ctx.wake.unbounded_send(ObjectRef::from_obj(cx.as_ref()));
        }
    }
}

/// The executions to reconcile when `queue` changes (created, or its limit raised).
pub fn waiting_in(
    executions: &Store<CrewExecution>,
    queue: &CrewQueue,
) -> Vec<ObjectRef<CrewExecution>> {
    let namespace = queue.namespace().unwrap_or_default();
    members_of(executions, &namespace, Some(&queue.name_any()))
        .iter()
        .filter(|cx| matches!(phase(cx), Phase::Pending | Phase::Queued))
        .map(|cx| ObjectRef::from_obj(cx.as_ref()))
        .collect()
}

/// Once per second: wakes queues with a free slot and someone waiting (covers slots freed by deletions), and
/// writes each queue's statistics when they changed.
pub async fn pump(ctx: Arc<Context>) {
    let mut written: std::collections::HashMap<(String, String), Timestamp> = Default::default();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticker.tick().await;
        let (Some(executions), Some(queues)) = (ctx.executions.get(), ctx.queues.get()) else {
            continue;
        };
        let now = crew_core::lifecycle::timefmt::whole_seconds(Timestamp::now());
        // One pass over the executions: phase counts, and members grouped by queue (was one pass per queue).
        let mut by_phase: HashMap<Phase, i64> = HashMap::new();
        let mut by_queue: HashMap<Option<(String, String)>, Vec<Arc<CrewExecution>>> =
            HashMap::new();
        for cx in executions.state() {
            *by_phase.entry(phase(&cx)).or_default() += 1;
            let key = cx
                .spec
                .queue
                .clone()
                .map(|queue| (cx.namespace().unwrap_or_default(), queue));
            by_queue.entry(key).or_default().push(cx);
        }
        for phase in Phase::ALL {
            ctx.metrics
                .set_executions(phase.as_str(), by_phase.get(&phase).copied().unwrap_or(0));
        }
        let mut seen = HashSet::new();
        for queue in queues.state() {
            let namespace = queue.namespace().unwrap_or_default();
            let members = by_queue
                .get(&Some((namespace.clone(), queue.name_any())))
                .map_or(&[][..], Vec::as_slice);
            let running = members
                .iter()
                .filter(|cx| phase(cx) == Phase::Running)
                .count() as u32;
            let waiting = members
                .iter()
                .filter(|cx| phase(cx) == Phase::Queued)
                .count();
            ctx.metrics.set_queue(
                &namespace,
                &queue.name_any(),
                waiting as i64,
                i64::from(running),
            );
            if !ctx.is_leading() {
                continue;
            }
            if running < queue.spec.max_running && waiting > 0 {
                wake_heads(&ctx, members, queue.spec.max_running.max(1));
            }
            let facts: Vec<MemberFacts> = members.iter().map(|cx| facts(cx)).collect();
            let status = queue_status(&facts, queue.metadata.generation, now);
            let key = (namespace.clone(), queue.name_any());
            seen.insert(key.clone());
            let stale_clock = written.get(&key).is_none_or(|t| {
                crew_core::lifecycle::timefmt::seconds_between(*t, now)
                    >= CLOCK_REFRESH.as_secs() as i64
            }) && status.oldest_queued_seconds.is_some();
            if counts_changed(queue.status.as_ref(), &status) || stale_clock {
                let api: Api<CrewQueue> = Api::namespaced(ctx.client.clone(), &namespace);
                let body = serde_json::json!({
                    "apiVersion": CrewQueue::api_version(&()), "kind": CrewQueue::kind(&()), "status": status,
                });
                match api
                    .patch_status(
                        &queue.name_any(),
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(&body),
                    )
                    .await
                {
                    Ok(_) => {
                        ctx.count_write(WriteKind::QueueStatus);
                        written.insert(key, now);
                    }
                    Err(error) => {
                        tracing::warn!(%error, queue = %queue.name_any(), "could not write queue status")
                    }
                }
            }
        }
        written.retain(|key, _| seen.contains(key));
        if let Some(max) = ctx.max_running.filter(|_| ctx.is_leading()) {
            let members = by_queue.get(&None).map_or(&[][..], Vec::as_slice);
            let running = members
                .iter()
                .filter(|cx| phase(cx) == Phase::Running)
                .count() as u32;
            if running < max && members.iter().any(|cx| phase(cx) == Phase::Queued) {
                wake_heads(&ctx, members, max.max(1));
            }
        }
    }
}

fn facts(cx: &CrewExecution) -> MemberFacts {
    let status = cx.status.as_ref();
    let current = phase(cx);
    let waiting_since = status
        .and_then(|s| {
            s.history
                .iter()
                .rev()
                .find(|h| h.to == Phase::Queued)
                .map(|h| h.time.0)
        })
        .or_else(|| cx.metadata.creation_timestamp.as_ref().map(|t| t.0));
    MemberFacts {
        phase: current,
        completed: status.and_then(|s| s.completion_time.as_ref()).map(|t| t.0),
        duration_seconds: status.and_then(|s| s.duration_seconds),
        waiting_since,
    }
}
