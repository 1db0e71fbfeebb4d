//! A failed attempt: the retry policy schedules the next one (`RetryScheduled`, then `RetryBackoff` until it is
//! due), or the run fails (`RetriesExhausted`, or the attempt's own reason when no retry was allowed).

use super::admission::{Slot, acquire_slot};
use super::launch::start;
use super::outcome::Outcome;
use super::pause_cancel::pause;
use crate::lifecycle::Plan;
use crate::lifecycle::backoff::{may_retry, retry_delay_seconds};
use crate::lifecycle::draft::Draft;
use crate::lifecycle::names::job_name;
use crate::lifecycle::steps::StepRecord;
use crate::lifecycle::text::bounded_message;
use crate::lifecycle::timefmt::{add_seconds, seconds_between};
use crew_api::{Phase, Reason, StepPhase};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The current step's attempt `attempt` failed at `finished` (its Job failed, or was lost): [`failed_because`]
/// with reason `StepFailed`.
pub(super) fn failed(
    draft: &mut Draft<'_>,
    plan: &mut Plan,
    outcome: &mut Outcome,
    attempt: u32,
    finished: Timestamp,
) {
    failed_because(draft, plan, outcome, attempt, finished, Reason::StepFailed);
}

/// The current step's attempt `attempt` failed at `finished`: the next attempt is scheduled if the retry policy
/// allows one, else the run fails, with `reason` when no retry was allowed at all.
pub(super) fn failed_because(
    draft: &mut Draft<'_>,
    plan: &mut Plan,
    outcome: &mut Outcome,
    attempt: u32,
    finished: Timestamp,
    reason: Reason,
) {
    let policy = draft.observed.spec.retry.clone().unwrap_or_default();
    let record = outcome.current_mut();
    let name = record.spec.name.clone();
    let detail = record
        .status
        .message
        .clone()
        .unwrap_or_else(|| "failed".into());
    let newly = record.newly_finished() || record.recorded.is_none();
    if !may_retry(&policy, attempt) {
        record.status.phase = StepPhase::Failed;
        let (reason, tries) = if policy.limit > 0 {
            (
                Reason::RetriesExhausted,
                format!(" after {attempt} attempts"),
            )
        } else {
            (reason, String::new())
        };
        draft.transition(
            Phase::Failed,
            reason,
            format!("step {name} failed{tries}: {detail}"),
            Some(&name),
        );
        outcome.completion_time = Some(finished);
        return;
    }
    record.status.phase = StepPhase::Retrying;
    let delay = retry_delay_seconds(&policy, attempt);
    if newly {
        let message = format!(
            "step {name} attempt {attempt} failed ({detail}); attempt {} in {delay}s",
            attempt + 1
        );
        draft.note(Reason::RetryScheduled, message, &name);
        draft.relate_last(job_name(draft.observed.name, &name, attempt));
    }
    let retry_at = add_seconds(finished, delay as i64);
    retry_when_due(draft, plan, outcome, attempt, retry_at);
}

/// The next attempt of a failed step: paused first when `spec.suspend` is set, started once `retry_at` has come
/// (holding a slot), else waited for with reason `RetryBackoff`.
fn retry_when_due(
    draft: &mut Draft<'_>,
    plan: &mut Plan,
    outcome: &mut Outcome,
    attempt: u32,
    retry_at: Timestamp,
) {
    let name = outcome.current().spec.name.clone();
    if draft.observed.spec.suspend {
        return pause(draft, &name, format!("paused before retrying step {name}"));
    }
    // After a refused Job create the next attempt waits for the next reconcile (which follows the status write at
    // once when no backoff is due): one attempt per reconcile, each recorded.
    let refused_now = draft
        .observed
        .rejected
        .as_ref()
        .is_some_and(|r| r.job_name == job_name(draft.observed.name, &name, attempt));
    if draft.now >= retry_at && !refused_now {
        return start(draft, plan, outcome, attempt + 1);
    }
    if acquire_slot(draft, outcome, &name) == Slot::Wait {
        return;
    }
    outcome.next_retry_time = Some(retry_at);
    draft.set_reason(
        Reason::RetryBackoff,
        format!("step {name} attempt {} starts at {retry_at}", attempt + 1),
    );
    plan.requeue_within((seconds_between(draft.now, retry_at) as u64).max(1));
}

/// Ends a running attempt the operator stops itself (its Job is deleted): failed now, with `message`.
pub(super) fn end_attempt(record: &mut StepRecord, message: String, now: Timestamp) {
    record.status.phase = StepPhase::Failed;
    record.status.message = Some(bounded_message(message));
    record.status.completion_time = Some(Time(now));
    record.status.duration_seconds = record
        .status
        .start_time
        .as_ref()
        .map(|t| seconds_between(t.0, now));
    record.recorded = None;
}
