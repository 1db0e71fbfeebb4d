//! `decide`: from one observed snapshot and the time, the whole plan of one reconcile.
//!
//! Deciding again on the state a plan produces asks for no further writes (the fixed point the tests check). One
//! module per rule; they share a [`Draft`] (phase, reason, history, Events), a [`Plan`] and an `Outcome`.

mod admission;
mod archived;
mod compose;
mod finished;
mod launch;
mod lost_job;
mod name_taken;
mod outcome;
mod pause_cancel;
mod resume;
mod retain;
mod retry;
mod run_steps;
mod stall;
mod start_watch;
#[cfg(test)]
mod tests;
mod timeout;
mod walk;

use crate::lifecycle::draft::Draft;
use crate::lifecycle::steps::step_records;
use crate::lifecycle::timefmt::whole_seconds;
use crate::lifecycle::{Observed, Plan};
use jiff::Timestamp;
use outcome::Outcome;

/// Seconds to wait for the cache to show a Job this operator just created, or a name to be freed.
pub const CACHE_LAG_REQUEUE_SECONDS: u64 = 5;
/// Seconds to wait for a finished Job's pod to reach the cache.
pub const POD_LAG_REQUEUE_SECONDS: u64 = 2;

/// Decides one reconcile of one execution.
pub fn decide(observed: &Observed<'_>, now: Timestamp) -> Plan {
    let mut plan = decide_run(observed, now);
    retain::keep_or_release(observed, &mut plan);
    plan
}

/// The run's own decision: its steps, phase and status.
fn decide_run(observed: &Observed<'_>, now: Timestamp) -> Plan {
    let now = whole_seconds(now);
    let previous = observed.status.cloned().unwrap_or_default();
    let mut draft = Draft::new(observed, &previous, now);
    let mut plan = Plan::default();
    if draft.phase.is_terminal() {
        return finished::decide_finished(draft, plan);
    }
    let mut outcome = Outcome::since(&previous);
    match run_steps::steps_to_run(&mut draft, &mut outcome) {
        Err(invalid) => run_steps::fail_invalid(&mut draft, &mut plan, &mut outcome, invalid),
        Ok(steps) => {
            outcome.records = step_records(steps, observed.jobs, &previous, now);
            if let Err(invalid) = resume::take_over(&mut draft, &mut plan, &mut outcome) {
                run_steps::fail_invalid(&mut draft, &mut plan, &mut outcome, invalid);
                return compose::into_plan(&draft, &outcome, plan);
            }
            compose::carry_reports(&mut outcome.records);
            if outcome.awaits_a_pod() && !observed.spec.cancel {
                plan.requeue_within(POD_LAG_REQUEUE_SECONDS);
                return plan;
            }
            walk::decide_steps(&mut draft, &mut plan, &mut outcome);
        }
    }
    compose::into_plan(&draft, &outcome, plan)
}
