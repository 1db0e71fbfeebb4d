//! Pausing (`spec.suspend`, before a step or a retry starts) and cancelling (`spec.cancel`: the running Job stops,
//! the run ends `Cancelled`); stopping the current step, which a timeout does too.

use super::outcome::Outcome;
use crate::lifecycle::draft::Draft;
use crate::lifecycle::steps::StepView;
use crate::lifecycle::{JobState, Plan};
use crew_api::{Phase, Reason, StepPhase};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Pauses the run before `step` starts (an attempt, or its retry), with `message`.
pub(super) fn pause(draft: &mut Draft<'_>, step: &str, message: String) {
    draft.transition(Phase::Paused, Reason::Paused, message, Some(step));
}

/// Cancels the run through `spec.cancel`: its Job is deleted and the current step stopped.
pub(super) fn cancel(draft: &mut Draft<'_>, plan: &mut Plan, outcome: &mut Outcome) {
    let step = stop_current_step(draft, plan, outcome, "cancelled");
    if draft.transition(
        Phase::Cancelled,
        Reason::Cancelled,
        "cancelled through spec.cancel".into(),
        step.as_deref(),
    ) {
        outcome.completion_time = Some(draft.now);
    }
}

/// Deletes the running attempt's Job and marks the step; returns its name if one was running.
pub(super) fn stop_current_step(
    draft: &Draft<'_>,
    plan: &mut Plan,
    outcome: &mut Outcome,
    why: &str,
) -> Option<String> {
    plan.delete_jobs = active_owned_jobs(draft);
    let record = outcome
        .records
        .iter_mut()
        .find(|r| !r.succeeded() && r.view != StepView::NotStarted)?;
    // A Job that finished while its pod's outcome was not yet read stops too: the run ends now, and a step left
    // `Running` in a finished run would never be updated again.
    if matches!(
        record.view,
        StepView::Active { .. } | StepView::Launched { .. } | StepView::AwaitingPod
    ) {
        if let Some(job) = &record.status.job_name
            && record.view != StepView::AwaitingPod
            && !plan.delete_jobs.contains(job)
        {
            plan.delete_jobs.push(job.clone());
        }
        record.status.phase = StepPhase::Cancelled;
        record.status.message = Some(why.to_string());
        record.status.completion_time = Some(Time(draft.now));
    }
    Some(record.spec.name.clone())
}

/// The execution's own Jobs that still run and are not being deleted.
pub(super) fn active_owned_jobs(draft: &Draft<'_>) -> Vec<String> {
    draft
        .observed
        .jobs
        .iter()
        .filter(|j| j.owned && j.state == JobState::Active && !j.deleting)
        .map(|j| j.name.clone())
        .collect()
}
