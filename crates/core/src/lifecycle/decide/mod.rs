//! `decide`: from one observed snapshot and the time, the whole plan of one reconcile.
//!
//! Running `decide` again on the state its plan produces yields no further writes (the fixed-point property the
//! tests check), which is what keeps repeated reconciles silent. Each rule has its own module; they share one
//! [`Draft`] (phase, reason, history, Events), one [`Plan`] (the writes) and one [`outcome::Outcome`] (the other
//! status fields).

mod admission;
mod compose;
mod finished;
mod launch;
mod lost_job;
mod outcome;
mod pause_cancel;
mod retry;
mod run_steps;
mod stall;
mod start_watch;
#[cfg(test)]
mod tests;
mod timeout;
mod walk;

use crate::lifecycle::draft::Draft;
use crate::lifecycle::steps::{StepView, step_records};
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
            outcome.records = step_records(steps, &observed.jobs, &previous, now);
            compose::carry_reports(&mut outcome.records);
            let awaiting_pod = outcome
                .records
                .iter()
                .any(|r| r.view == StepView::AwaitingPod);
            if awaiting_pod && !observed.spec.cancel {
                plan.requeue_within(POD_LAG_REQUEUE_SECONDS);
                return plan;
            }
            walk::decide_steps(&mut draft, &mut plan, &mut outcome);
        }
    }
    compose::into_plan(&draft, &outcome, plan)
}
