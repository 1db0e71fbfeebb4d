//! The execution's own deadline (`spec.timeoutSeconds`): past it, the run fails with `TimedOut` and its Job stops.

use super::outcome::{Outcome, Verdict};
use super::pause_cancel::stop_current_step;
use crate::lifecycle::Plan;
use crate::lifecycle::draft::Draft;
use crate::lifecycle::timefmt::{add_seconds, seconds_between};
use crew_api::{Phase, Reason};

/// Fails the execution once `spec.timeoutSeconds` has passed since its first start; else schedules the check.
/// [`Verdict::Settled`] when the run timed out.
pub(super) fn timed_out(draft: &mut Draft<'_>, plan: &mut Plan, outcome: &mut Outcome) -> Verdict {
    let (Some(limit), Some(start)) = (draft.observed.spec.timeout_seconds, outcome.start_time)
    else {
        return Verdict::Pass;
    };
    let deadline = add_seconds(start, limit);
    if draft.now < deadline {
        plan.requeue_within(seconds_between(draft.now, deadline) as u64);
        return Verdict::Pass;
    }
    if outcome.completed == outcome.records.len() {
        return Verdict::Pass;
    }
    let message = format!("execution exceeded spec.timeoutSeconds ({limit}s)");
    if matches!(draft.phase, Phase::Queued | Phase::Paused) {
        if draft.observed.spec.suspend {
            return Verdict::Pass; // a paused execution fails on resume
        }
        draft.transition(
            Phase::Running,
            Reason::Resumed,
            "resumed to time out".into(),
            None,
        );
    }
    let step = stop_current_step(draft, plan, outcome, "stopped: the execution timed out");
    if draft.transition(Phase::Failed, Reason::TimedOut, message, step.as_deref()) {
        outcome.completion_time = Some(draft.now);
    }
    Verdict::Settled
}
