//! Walking the steps: the run's start, the steps that succeeded, the end of a run whose steps all succeeded, and
//! which rule decides the current step.

use super::outcome::{Outcome, Verdict};
use super::{launch, lost_job, pause_cancel, retry, stall, start_watch, timeout};
use crate::lifecycle::Plan;
use crate::lifecycle::draft::Draft;
use crate::lifecycle::steps::StepView;
use crate::lifecycle::timefmt::human_duration;
use crew_api::{Phase, Reason};

/// Decides a run whose spec is valid, from its step records.
pub(super) fn decide_steps(draft: &mut Draft<'_>, plan: &mut Plan, outcome: &mut Outcome) {
    catch_up_start(draft, outcome);
    if draft.observed.spec.cancel {
        return pause_cancel::cancel(draft, plan, outcome);
    }
    outcome.completed = outcome.records.iter().take_while(|r| r.succeeded()).count();
    note_succeeded_steps(draft, outcome);
    if timeout::timed_out(draft, plan, outcome) == Verdict::Settled {
        return;
    }
    if outcome.completed == outcome.records.len() {
        return all_succeeded(draft, outcome);
    }
    outcome.current = Some(outcome.completed);
    current_step(draft, plan, outcome);
}

/// A run whose first Job exists is Running with a start time, even when the status that said so was never written.
fn catch_up_start(draft: &mut Draft<'_>, outcome: &mut Outcome) {
    let started = outcome
        .records
        .iter()
        .any(|r| r.view != StepView::NotStarted);
    if started
        && outcome.start_time.is_none()
        && matches!(draft.phase, Phase::Pending | Phase::Queued)
    {
        // Status was never written after the first Job was created (a restart in between): catch up. A Queued
        // execution that started before (resumed into a full queue) must keep waiting for its slot instead.
        let first = outcome.records[0].spec.name.clone();
        draft.transition(
            Phase::Running,
            Reason::Started,
            format!("started step {first}"),
            Some(&first),
        );
    }
    if started && outcome.start_time.is_none() {
        outcome.start_time = outcome
            .records
            .iter()
            .filter_map(|r| r.status.start_time.as_ref().map(|t| t.0))
            .min();
    }
}

/// One `StepSucceeded` entry per step this reconcile is the first to see succeed (the last step's success is the
/// run's `Succeeded` instead).
fn note_succeeded_steps(draft: &mut Draft<'_>, outcome: &Outcome) {
    let completed = outcome.completed;
    let total = outcome.records.len();
    for record in &outcome.records[..completed.min(total.saturating_sub(1))] {
        if record.newly_finished() {
            let next = outcome
                .records
                .get(completed)
                .map_or(String::new(), |r| format!("; next: step {}", r.spec.name));
            let took = record.status.duration_seconds.unwrap_or_default();
            draft.note(
                Reason::StepSucceeded,
                format!(
                    "step {} succeeded in {}{next}",
                    record.spec.name,
                    human_duration(took)
                ),
                &record.spec.name,
            );
        }
    }
}

/// Every step succeeded: the run succeeded, when its last step finished.
fn all_succeeded(draft: &mut Draft<'_>, outcome: &mut Outcome) {
    let total = outcome.records.len();
    let last = &outcome.records[total - 1];
    let finished = outcome
        .records
        .iter()
        .filter_map(|r| r.status.completion_time.as_ref().map(|t| t.0))
        .max();
    let message = format!("all {total} steps succeeded");
    draft.transition(
        Phase::Succeeded,
        Reason::Succeeded,
        message,
        Some(&last.spec.name.clone()),
    );
    outcome.completion_time = Some(finished.unwrap_or(draft.now));
}

/// The first step that has not succeeded: the rule for where it stands decides.
fn current_step(draft: &mut Draft<'_>, plan: &mut Plan, outcome: &mut Outcome) {
    let view = outcome.current().view.clone();
    match view {
        StepView::Active { attempt } => {
            if start_watch::awaits_start(draft, plan, outcome, attempt) == Verdict::Pass
                && stall::stalled(draft, plan, outcome, attempt) == Verdict::Pass
            {
                running(draft, outcome, attempt);
            }
        }
        StepView::Launched { attempt, since } => {
            lost_job::launched(draft, plan, outcome, attempt, since);
        }
        StepView::Finished {
            attempt, finished, ..
        } => retry::failed(draft, plan, outcome, attempt, finished),
        StepView::NotStarted | StepView::AwaitingPod => launch::start(draft, plan, outcome, 1),
    }
}

/// The current step runs: the run is Running (`Resumed` if it was not), with reason `StepRunning`.
pub(super) fn running(draft: &mut Draft<'_>, outcome: &mut Outcome, attempt: u32) {
    let record = &outcome.records[outcome.completed];
    let name = record.spec.name.clone();
    if draft.phase != Phase::Running {
        draft.transition(
            Phase::Running,
            Reason::Resumed,
            format!("step {name} is running"),
            Some(&name),
        );
    }
    outcome.pause_requested = draft.observed.spec.suspend;
    let total = outcome.records.len();
    let message = format!(
        "running step {name} ({}/{total}), attempt {attempt}",
        outcome.completed + 1
    );
    draft.set_reason(Reason::StepRunning, message);
}
