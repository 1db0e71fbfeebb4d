//! What follows a reconcile's writes: the progress book learns what was written, metrics count the transitions
//! and outcomes the status records, the queue wakes the members a freed slot lets in, and the reconcile says when
//! to look again.

use crate::controller::act::StatusWrite;
use crate::controller::context::Context;
use crate::controller::queues;
use crate::progress::book::Held;
use crew_api::{CrewExecution, CrewExecutionStatus, Phase, StepPhase};
use crew_core::lifecycle::Plan;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use std::time::Duration;

/// Bookkeeping after `plan` was carried out for `cx` (`written`: what became of its status write; `held`: the
/// reports the reconcile read).
pub fn after_write(
    ctx: &Context,
    cx: &CrewExecution,
    plan: &Plan,
    written: &StatusWrite,
    held: Option<&Held>,
) {
    let uid = cx.uid().unwrap_or_default();
    ctx.objects.record_success(&uid);
    let before = cx.status.as_ref().and_then(|s| s.phase).unwrap_or_default();
    let after = plan.status.as_ref().and_then(|s| s.phase).unwrap_or(before);
    if after.is_terminal() {
        ctx.progress.forget(&uid);
    } else if let Some(held) = held {
        let carried = *written == StatusWrite::Written && plan.status.is_some();
        let again = ctx
            .progress
            .reconciled(&uid, held.version, carried, std::time::Instant::now());
        if let Some(wake) = again {
            crate::progress::endpoint::wake_for_report(ctx, ObjectRef::from_obj(cx), wake);
        }
    }
    if *written == StatusWrite::Written {
        if let Some(status) = &plan.status {
            record_outcomes(ctx, cx.status.as_ref(), status);
        }
        if after != before && !matches!(after, Phase::Running | Phase::Queued) {
            queues::wake_queue_of(ctx, cx);
        }
    }
}

/// When to reconcile again: soon after a stale write, at the plan's earliest timer, else on the next change.
pub fn requeue(written: &StatusWrite, plan: &Plan) -> Action {
    match (written, plan.requeue_after_seconds) {
        (StatusWrite::Stale, _) => Action::requeue(Duration::from_secs(1)),
        (_, Some(seconds)) => Action::requeue(Duration::from_secs(seconds.max(1))),
        (_, None) => Action::await_change(),
    }
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
