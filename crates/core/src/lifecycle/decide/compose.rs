//! From the decision to the plan: the status it composes (steps, progress, times, history, conditions), the
//! worker reports folded into it when they are worth a write, the Events, the Jobs to release and the TTL timer.

use super::outcome::Outcome;
use crate::lifecycle::Plan;
use crate::lifecycle::cleanup::released_jobs;
use crate::lifecycle::conditions::{self, ConditionInputs, conditions};
use crate::lifecycle::draft::Draft;
use crate::lifecycle::history;
use crate::lifecycle::progress::{progress, with_running_step};
use crate::lifecycle::report::{self, AttemptReports};
use crate::lifecycle::steps::StepRecord;
use crate::lifecycle::timefmt::{human_duration, seconds_between};
use crew_api::{CrewExecutionStatus, Phase, Progress, StepPhase, StepStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The plan's status write (none when nothing changed), Events, Job releases and TTL timer.
pub(super) fn into_plan(draft: &Draft<'_>, outcome: &Outcome, mut plan: Plan) -> Plan {
    let observed = draft.observed;
    let mut status = compose(draft, outcome);
    if draft.phase.is_terminal()
        && let Some(ttl) = observed.spec.ttl_seconds_after_finished
    {
        plan.requeue_within(ttl.max(1) as u64);
    }
    plan.events = draft.events();
    let written = conditions::without_foreign(draft.previous);
    if let Some(report) = observed.report {
        status = with_reports(report, observed.report_due, status, &written);
    }
    plan.release_jobs = released_jobs(observed.jobs, &status, observed.spec.job_cleanup);
    if status != *written {
        plan.status = Some(status);
    }
    plan
}

/// Reports are coalesced: written when due, or with a write made for another reason (a step's outcome carries the
/// last report before it). A heartbeat alone is never worth a write.
fn with_reports(
    report: &AttemptReports,
    due: bool,
    status: CrewExecutionStatus,
    written: &CrewExecutionStatus,
) -> CrewExecutionStatus {
    let writing = status != *written;
    let mut folded = status.clone();
    for step in &mut folded.steps {
        report.fold_into(step);
    }
    let reported = !same_reports(&folded, &status);
    if !(writing || (due && reported)) {
        return status;
    }
    if let Some(progress) = folded.progress.take() {
        folded.progress = Some(running_fraction(progress, &folded.steps));
    }
    folded
}

/// Whether `a` and `b` show the same worker reports (progress times aside).
fn same_reports(a: &CrewExecutionStatus, b: &CrewExecutionStatus) -> bool {
    let content = |s: &CrewExecutionStatus| -> Vec<_> {
        s.steps
            .iter()
            .map(|step| {
                (
                    step.progress
                        .as_ref()
                        .map(|p| (p.percent, p.message.clone())),
                    step.metrics.clone(),
                    step.warnings.clone(),
                )
            })
            .collect()
    };
    content(a) == content(b)
}

/// The execution's progress, counting the running step's reported percent.
fn running_fraction(progress: Progress, steps: &[StepStatus]) -> Progress {
    let reported = progress
        .current_step
        .as_deref()
        .and_then(|name| steps.iter().find(|s| s.name == name))
        .filter(|s| s.phase == StepPhase::Running)
        .map_or(0, report::step_percent);
    with_running_step(progress, reported)
}

/// What the latest attempt's worker reported stays with the step while it is that attempt's: the Job-derived
/// record starts without it.
pub(super) fn carry_reports(records: &mut [StepRecord]) {
    for record in records {
        let Some(recorded) = record
            .recorded
            .as_ref()
            .filter(|r| r.attempt == record.status.attempt && r.attempt > 0)
        else {
            continue;
        };
        if record.status.progress.is_none() {
            record.status.progress = recorded.progress.clone();
        }
        if record.status.metrics.is_empty() {
            record.status.metrics = recorded.metrics.clone();
        }
        if record.status.warnings.is_empty() {
            record.status.warnings = recorded.warnings.clone();
        }
    }
}

/// The status this decision writes (before worker reports are folded in).
fn compose(draft: &Draft<'_>, outcome: &Outcome) -> CrewExecutionStatus {
    let previous = draft.previous;
    let observed = draft.observed;
    let phase = draft.phase;
    let steps = step_statuses(draft, outcome);
    let completed = steps
        .iter()
        .take_while(|s| s.phase == StepPhase::Succeeded)
        .count() as u32;
    let current = outcome
        .current
        .filter(|_| phase == Phase::Running)
        .and_then(|i| steps.get(i))
        .map(|s| s.name.as_str());
    let total = if steps.is_empty() {
        1
    } else {
        steps.len() as u32
    };
    let attempt_step = outcome
        .current
        .and_then(|i| steps.get(i))
        .or_else(|| steps.iter().rev().find(|s| s.attempt > 0));
    let completion = outcome.completion_time.filter(|_| phase.is_terminal());
    let start = outcome.start_time;
    let duration = start.zip(completion).map(|(s, c)| seconds_between(s, c));
    let mut history = previous.history.clone();
    history::append(
        &mut history,
        &draft.entries,
        history::effective_limit(observed.spec.history_limit),
    );
    CrewExecutionStatus {
        phase: Some(phase),
        resolved_steps: resolved_steps(previous, outcome),
        reason: Some(draft.reason.clone()).filter(|r| !r.is_empty()),
        message: Some(draft.message.clone()).filter(|m| !m.is_empty()),
        progress: Some(running_fraction(
            progress(phase, completed, total, current, None),
            &steps,
        )),
        attempt: attempt_step.map(|s| s.attempt).filter(|a| *a > 0),
        start_time: start.map(Time),
        completion_time: completion.map(Time),
        duration_seconds: duration,
        duration: duration.map(human_duration),
        next_retry_time: outcome.next_retry_time.map(Time),
        result: steps
            .iter()
            .rev()
            .find(|s| s.completion_time.is_some())
            .and_then(|s| s.result.clone()),
        observed_generation: observed.generation,
        history,
        conditions: conditions(
            &condition_inputs(draft, outcome),
            &previous.conditions,
            draft.now,
        ),
        steps,
    }
}

/// `status.steps`: the records' statuses; with an invalid spec (no records), the last known steps, a step that was
/// running marked as stopped.
fn step_statuses(draft: &Draft<'_>, outcome: &Outcome) -> Vec<StepStatus> {
    if !outcome.records.is_empty() {
        return outcome.records.iter().map(|r| r.status.clone()).collect();
    }
    let phase = draft.phase;
    let mut steps = draft.previous.steps.clone();
    for step in steps.iter_mut().filter(|s| {
        phase.is_terminal() && matches!(s.phase, StepPhase::Running | StepPhase::Retrying)
    }) {
        step.phase = StepPhase::Cancelled;
        step.message = Some("stopped: the spec became invalid".into());
        step.completion_time.get_or_insert(Time(draft.now));
    }
    steps
}

/// What the conditions are derived from besides the phase.
fn condition_inputs<'a>(draft: &'a Draft<'_>, outcome: &'a Outcome) -> ConditionInputs<'a> {
    ConditionInputs {
        phase: draft.phase,
        reason: &draft.reason,
        message: &draft.message,
        pause_requested: outcome.pause_requested,
        not_admitted: outcome.not_admitted.as_ref().map(|(r, m)| (*r, m.as_str())),
        generation: draft.observed.generation,
        steps_changed: outcome.steps_changed.as_deref(),
        start_blocked: outcome
            .start_blocked
            .as_ref()
            .map(|(r, m)| (r.as_str(), m.as_str())),
        stalled: outcome.stalled.as_deref(),
    }
}

/// `status.resolvedSteps`: frozen at the first launch (a record with an attempt), kept from then on.
fn resolved_steps(previous: &CrewExecutionStatus, outcome: &Outcome) -> Vec<crew_api::StepSpec> {
    if !previous.resolved_steps.is_empty() {
        previous.resolved_steps.clone()
    } else if outcome.records.iter().any(|r| r.status.attempt > 0) {
        outcome.records.iter().map(|r| r.spec.to_spec()).collect()
    } else {
        Vec::new()
    }
}
