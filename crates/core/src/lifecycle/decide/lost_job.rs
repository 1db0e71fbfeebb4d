//! A launched attempt whose Job the cache does not show: wait for the cache, then ask for a fresh read, and count
//! the attempt failed only once that read confirms the Job is gone.

use super::outcome::Outcome;
use super::{CACHE_LAG_REQUEUE_SECONDS, retry, walk};
use crate::lifecycle::draft::Draft;
use crate::lifecycle::steps::LOST_JOB_SECONDS;
use crate::lifecycle::timefmt::seconds_between;
use crate::lifecycle::{Plan, Read};
use crew_api::StepPhase;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The current step's attempt `attempt` was launched (`since`, when known) but its Job is not in the cache.
pub(super) fn launched(
    draft: &mut Draft<'_>,
    plan: &mut Plan,
    outcome: &mut Outcome,
    attempt: u32,
    since: Option<Timestamp>,
) {
    let job = outcome
        .current()
        .status
        .job_name
        .clone()
        .unwrap_or_default();
    let overdue = since.is_some_and(|s| seconds_between(s, draft.now) >= LOST_JOB_SECONDS);
    let confirmed = draft.observed.missing_job.as_deref() == Some(job.as_str());
    if !overdue || !confirmed {
        // Not in the cache yet: wait; overdue, ask for a fresh read before counting the attempt lost.
        if overdue {
            plan.read = Some(Read::Job(job));
        }
        plan.requeue_within(CACHE_LAG_REQUEUE_SECONDS);
        walk::running(draft, outcome, attempt);
    } else {
        let record = outcome.current_mut();
        record.status.phase = StepPhase::Failed;
        record.status.message = Some(format!("Job {job} disappeared before its outcome was seen"));
        record.status.completion_time = Some(Time(draft.now));
        record.recorded = None;
        retry::failed(draft, plan, outcome, attempt, draft.now);
    }
}
