//! The watchdog on a worker that has not started: while it cannot, the run says why (the step's message, the
//! run's reason and the `StartBlocked` condition); once the start timeout has passed, the attempt fails with
//! `StartTimeout` (its Job deleted; the retry policy applies).

use super::outcome::{Outcome, Verdict};
use super::{retry, walk};
use crate::lifecycle::draft::Draft;
use crate::lifecycle::steps::NO_POD_SECONDS;
use crate::lifecycle::text::bounded_message;
use crate::lifecycle::timefmt::{add_seconds, seconds_between};
use crate::lifecycle::{ObservedJob, Plan, Read, StartBlock};
use crew_api::Reason;
use jiff::Timestamp;

/// While the current attempt's worker has not started: reports why it cannot, and fails the attempt with reason
/// `StartTimeout` once the start timeout has passed since its Job was created. [`Verdict::Pass`]: the worker
/// started, the Job is not the attempt's, or nothing is known yet about why it waits.
pub(super) fn awaits_start(
    draft: &mut Draft<'_>,
    plan: &mut Plan,
    outcome: &mut Outcome,
    attempt: u32,
) -> Verdict {
    let job_name = outcome.current().status.job_name.clone();
    let Some(job) = draft
        .observed
        .jobs
        .iter()
        .find(|j| j.owned && Some(&j.name) == job_name.as_ref() && !j.pod_started)
        .cloned()
    else {
        return Verdict::Pass;
    };
    let created = job.created.unwrap_or(draft.now);
    let reported = why_not_started(draft, plan, outcome, attempt, &job, created);
    let limit = draft
        .observed
        .spec
        .start_timeout_seconds
        .unwrap_or(draft.observed.default_start_timeout_seconds)
        .max(1);
    let deadline = add_seconds(created, limit);
    if draft.now >= deadline {
        let why = reported.map_or_else(
            || "its pod was not created or not scheduled yet".to_string(),
            |(_, message)| message,
        );
        retry::end_attempt(
            outcome.current_mut(),
            format!(
                "{}: the worker did not start within {limit}s ({why})",
                Reason::StartTimeout
            ),
            draft.now,
        );
        plan.delete_jobs.push(job.name);
        retry::failed_because(
            draft,
            plan,
            outcome,
            attempt,
            draft.now,
            Reason::StartTimeout,
        );
        return Verdict::Settled;
    }
    plan.requeue_within((seconds_between(draft.now, deadline) as u64).max(1));
    let Some((reason, message)) = reported else {
        return Verdict::Pass;
    };
    let name = outcome.current().spec.name.clone();
    outcome.current_mut().status.message = Some(message.clone());
    walk::running(draft, outcome, attempt);
    draft.set_reason_from_kubernetes(
        &reason,
        format!(
            "step {name} attempt {attempt} cannot start: {message}; it fails with {} at {deadline}",
            Reason::StartTimeout
        ),
    );
    outcome.start_blocked = Some((reason, message));
    Verdict::Settled
}

/// Why the worker of `job` (created at `created`) does not start, as (reason, `reason: message`), when known.
fn why_not_started(
    draft: &Draft<'_>,
    plan: &mut Plan,
    outcome: &Outcome,
    attempt: u32,
    job: &ObservedJob,
    created: Timestamp,
) -> Option<(String, String)> {
    // What this attempt's step showed before: a report it keeps (see below).
    let shown = outcome
        .current()
        .recorded
        .as_ref()
        .filter(|r| r.attempt == attempt)
        .and_then(|r| r.message.clone());
    let blocked = match &job.start_blocked {
        Some(block) => Some(block.clone()),
        None if !job.pod_seen => pod_refusal(draft, plan, &job.name, created, shown.as_deref()),
        None => None,
    };
    // The kubelet's and scheduler's messages change while they retry; the first one seen for this reason stays,
    // so a blocked pod costs one status write, not one per retry.
    blocked.map(|block| {
        let prefix = format!("{}: ", block.reason);
        let message = shown
            .filter(|m| m.starts_with(&prefix))
            .unwrap_or_else(|| bounded_message(format!("{prefix}{}", block.message)));
        (block.reason, message)
    })
}

/// Why the Job `job` (created at `created`) has no pod, once it has had none for [`NO_POD_SECONDS`]: the Job
/// controller's `FailedCreate` Event the shell looked up, or the one the step already shows; else the plan asks the
/// shell (every reconcile until one shows: the shell answers from a watched index, not a request) or to come back
/// when it is time.
fn pod_refusal(
    draft: &Draft<'_>,
    plan: &mut Plan,
    job: &str,
    created: Timestamp,
    shown: Option<&str>,
) -> Option<StartBlock> {
    // The Job controller's reason for the Events it records when it cannot create a pod.
    const REASON: &str = "FailedCreate";
    let since = seconds_between(created, draft.now);
    if since < NO_POD_SECONDS {
        plan.requeue_within((NO_POD_SECONDS - since) as u64);
        return None;
    }
    let shown = shown
        .and_then(|m| m.strip_prefix(REASON))
        .and_then(|m| m.strip_prefix(": "));
    let read = draft.observed.pod_refused.clone();
    if read.is_none() && shown.is_none() {
        plan.read = Some(Read::PodRefusal(job.to_string()));
    }
    read.or_else(|| {
        shown.map(|message| StartBlock {
            reason: REASON.into(),
            message: message.to_string(),
        })
    })
}
