//! A finished run: its status stays as written; only a warning about a spec edit, the observed generation, the
//! archive's `Archived` condition, the clean-up of leftover Jobs and the TTL act.

use super::archived;
use super::pause_cancel::active_owned_jobs;
use crate::lifecycle::Plan;
use crate::lifecycle::cleanup::released_jobs;
use crate::lifecycle::draft::Draft;
use crate::lifecycle::timefmt::{add_seconds, seconds_between};
use crew_api::{Phase, Reason};

/// Terminal phases are kept as written; only spec-edit warnings, leftover Job clean-up and the TTL act.
pub(super) fn decide_finished(mut draft: Draft<'_>, mut plan: Plan) -> Plan {
    let observed = draft.observed;
    let previous = draft.previous;
    plan.delete_jobs = active_owned_jobs(&draft);
    let mut status = previous.clone();
    if observed.generation != previous.observed_generation {
        if previous.phase == Some(Phase::Cancelled) && !observed.spec.cancel {
            draft.event(
                Reason::CancelIrreversible,
                "spec.cancel was cleared, but a cancelled execution stays cancelled".into(),
            );
        }
        status.observed_generation = observed.generation;
        for condition in &mut status.conditions {
            condition.observed_generation = observed.generation;
        }
    }
    archived::record(&mut draft, &mut status);
    if let (Some(ttl), Some(done), false) = (
        observed.spec.ttl_seconds_after_finished,
        &previous.completion_time,
        archived::holds_ttl(&draft, &status),
    ) {
        let expiry = add_seconds(done.0, ttl);
        if draft.now >= expiry {
            plan.delete_execution = true;
        } else {
            plan.requeue_within(seconds_between(draft.now, expiry) as u64);
        }
    }
    plan.events = draft.events();
    if !plan.delete_execution {
        plan.release_jobs = released_jobs(observed.jobs, &status, observed.spec.job_cleanup);
    }
    if status != *previous {
        plan.status = Some(status);
    }
    plan
}
