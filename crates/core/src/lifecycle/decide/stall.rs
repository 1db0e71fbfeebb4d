//! The watchdog on a running worker that stopped reporting: condition `ProgressStalled`, one Warning Event, and
//! what `onStall` says (`Warn` keeps it running, `Fail` fails the run, `Retry` fails the attempt).

use super::outcome::{Outcome, Verdict};
use super::retry;
use crate::lifecycle::Plan;
use crate::lifecycle::conditions;
use crate::lifecycle::draft::Draft;
use crate::lifecycle::report;
use crate::lifecycle::timefmt::{add_seconds, seconds_between};
use crew_api::{ConditionType, OnStall, Phase, Reason};
use jiff::Timestamp;

/// While the current attempt's worker runs: once it has not reported (`POST /v1/progress`, a heartbeat counts)
/// for its stall timeout, counted from the attempt's start, its last report or the time this replica began to
/// act, whichever is latest, the step is stalled: condition `ProgressStalled` and one Warning Event, and
/// `onStall` decides: `Warn` keeps it running, `Fail` fails the run, `Retry` fails the attempt (its Job deleted)
/// under the retry policy. [`Verdict::Settled`] when it ended the attempt.
pub(super) fn stalled(
    draft: &mut Draft<'_>,
    plan: &mut Plan,
    outcome: &mut Outcome,
    attempt: u32,
) -> Verdict {
    let record = outcome.current();
    let Some(limit) = record.spec.stall_timeout_seconds.map(|l| l.max(1)) else {
        return Verdict::Pass;
    };
    let name = record.spec.name.clone();
    let clock = stall_clock(draft, outcome, attempt);
    let deadline = add_seconds(clock, limit);
    if draft.now < deadline {
        plan.requeue_within((seconds_between(draft.now, deadline) as u64).max(1));
        return Verdict::Pass;
    }
    // Stable while the stall lasts (a time, not a growing duration): a stalled step costs one status write.
    let message = format!(
        "step {name} attempt {attempt}: no progress report since {clock} (stallTimeoutSeconds {limit})"
    );
    let was_stalled =
        conditions::is_true(&draft.previous.conditions, ConditionType::ProgressStalled);
    let action = outcome.current().spec.on_stall.unwrap_or_default();
    if !was_stalled || action != OnStall::Warn {
        draft.event(Reason::ProgressStalled, message.clone());
    }
    if action == OnStall::Warn {
        // Checked again when the next report comes (the shell reconciles on it) or a period later.
        plan.requeue_within(limit as u64);
        outcome.stalled = Some(message);
        return Verdict::Pass;
    }
    let record = outcome.current_mut();
    retry::end_attempt(
        record,
        format!("{}: {message}", Reason::ProgressStalled),
        draft.now,
    );
    if let Some(job) = record.status.job_name.clone() {
        plan.delete_jobs.push(job);
    }
    if action == OnStall::Retry {
        retry::failed_because(
            draft,
            plan,
            outcome,
            attempt,
            draft.now,
            Reason::ProgressStalled,
        );
    } else {
        draft.transition(
            Phase::Failed,
            Reason::ProgressStalled,
            format!("step {name} stalled: {message}"),
            Some(&name),
        );
        outcome.completion_time = Some(draft.now);
    }
    Verdict::Settled
}

/// Since when the current attempt's worker counts as silent: its start, its last report (written or in the
/// shell's book) or the time this replica began to act, whichever is latest.
fn stall_clock(draft: &Draft<'_>, outcome: &Outcome, attempt: u32) -> Timestamp {
    let record = outcome.current();
    let reported = draft
        .observed
        .report
        .filter(|r| r.step == record.spec.name && r.attempt == attempt)
        .map(|r| r.last_report);
    [
        record.status.start_time.as_ref().map(|t| t.0),
        report::written_report_time(&record.status),
        reported,
        draft.observed.acting_since,
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(draft.now)
}
