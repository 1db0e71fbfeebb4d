//! A Job name another Job already holds. While an earlier execution of the same name is being garbage-collected its
//! Jobs go by themselves: the launch waits (`JobNameTaken`, condition `StartBlocked`), at most the start timeout from
//! when the wait began. A Job nobody will delete (orphaned by `--cascade=orphan`, or another object's) is not
//! waited for: the name counts as refused, a failed attempt under the retry policy, whose next attempt has another
//! name.

use super::CACHE_LAG_REQUEUE_SECONDS;
use super::outcome::Outcome;
use crate::lifecycle::conditions;
use crate::lifecycle::draft::Draft;
use crate::lifecycle::timefmt::{add_seconds, seconds_between};
use crate::lifecycle::{ObservedJob, Plan};
use crew_api::{ConditionType, Reason};
use jiff::Timestamp;

/// What to do about the name of the attempt's Job.
pub(super) enum NameVerdict {
    /// The name is free, or already ours: launch.
    Free,
    /// An earlier execution's Job holds it and may still go: wait (the plan requeues; nothing else to decide).
    Wait,
    /// Nothing will free it (in time): the attempt fails, with this message.
    Refused(String),
}

/// Whether the Job `job` of the current step's attempt may be created now, and if not, why. Records the wait
/// (reason, condition, one Warning Event per wait) in `draft` and `outcome`.
pub(super) fn name_verdict(
    draft: &mut Draft<'_>,
    plan: &mut Plan,
    outcome: &mut Outcome,
    job: &str,
) -> NameVerdict {
    let observed = draft.observed;
    let Some(holder) = observed.jobs.iter().find(|j| !j.owned && j.name == job) else {
        return NameVerdict::Free;
    };
    if !held_by_a_predecessor(holder, observed.name) {
        return NameVerdict::Refused(stranger_message(holder));
    }
    let limit = observed
        .spec
        .start_timeout_seconds
        .unwrap_or(observed.default_start_timeout_seconds)
        .max(1);
    let since = waiting_since(draft, job);
    let deadline = add_seconds(since.unwrap_or(draft.now), limit);
    if draft.now >= deadline {
        return NameVerdict::Refused(format!(
            "Job {job} of an earlier execution of the same name was not deleted within {limit}s (its garbage \
             collection may be stalled); a retry uses the next attempt's name"
        ));
    }
    let message = format!(
        "Job {job} belongs to an earlier execution of the same name; waiting for it to be deleted, until \
         {deadline} (then the attempt fails)"
    );
    if since.is_none() {
        draft.event(Reason::JobNameTaken, message.clone());
    }
    draft.set_reason(Reason::JobNameTaken, message.clone());
    outcome.start_blocked = Some((Reason::JobNameTaken.to_string(), message));
    let left = seconds_between(draft.now, deadline).max(1) as u64;
    plan.requeue_within(CACHE_LAG_REQUEUE_SECONDS.min(left));
    NameVerdict::Wait
}

/// Whether `holder` is controlled by an earlier CrewExecution of this name (another UID: not ours), which the
/// garbage collector deletes, since its owner is gone.
fn held_by_a_predecessor(holder: &ObservedJob, execution: &str) -> bool {
    holder
        .controller
        .as_ref()
        .is_some_and(|c| c.is_execution_named(execution))
}

/// When the wait for `job`'s name began, as the last written status shows it: the time of its `StartBlocked`
/// condition while that says this very wait (None: it begins now). Persisted, so a restart or another replica
/// does not start the bound again.
fn waiting_since(draft: &Draft<'_>, job: &str) -> Option<Timestamp> {
    let previous = draft.previous;
    if previous.reason.as_deref() != Some(Reason::JobNameTaken.as_str()) {
        return None;
    }
    conditions::find(&previous.conditions, ConditionType::StartBlocked)
        .filter(|c| {
            c.status == "True"
                && c.reason == Reason::JobNameTaken.as_str()
                && c.message.starts_with(&format!("Job {job} "))
        })
        .map(|c| c.last_transition_time.0)
}

/// Why a Job that no earlier execution of this name controls keeps the name for good.
fn stranger_message(holder: &ObservedJob) -> String {
    let owner = holder.controller.as_ref().map_or_else(
        || "no owner (orphaned, e.g. by a delete with --cascade=orphan)".to_string(),
        |c| format!("the owner {} {}", c.kind, c.name),
    );
    format!(
        "the name is taken by Job {} with {owner}, which nothing will delete; delete it, or rename the execution \
         or the step (a retry uses the next attempt's name)",
        holder.name
    )
}
