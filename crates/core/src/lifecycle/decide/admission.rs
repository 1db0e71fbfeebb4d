//! Admission: an execution that does not hold a running slot takes one (`Started`, `Resumed`) or waits for it
//! (`Queued`, `QueueNotFound`).

use super::outcome::Outcome;
use crate::lifecycle::Admission;
use crate::lifecycle::draft::Draft;
use crew_api::{Phase, Reason};

/// Whether the execution holds a running slot after [`acquire_slot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    /// It runs (or may run now): the step goes on.
    Held,
    /// It waits, Queued or Pending: nothing launches.
    Wait,
}

/// Takes a running slot if the execution does not hold one, or records why it waits.
pub(super) fn acquire_slot(draft: &mut Draft<'_>, outcome: &mut Outcome, step: &str) -> Slot {
    if draft.phase == Phase::Running {
        return Slot::Held;
    }
    match &draft.observed.admission {
        Admission::Admitted => {
            let (reason, verb) = if outcome.start_time.is_none() {
                (Reason::Started, "started")
            } else {
                (Reason::Resumed, "resumed")
            };
            let moved = draft.transition(
                Phase::Running,
                reason,
                format!("{verb} at step {step}"),
                Some(step),
            );
            if moved { Slot::Held } else { Slot::Wait }
        }
        Admission::Wait { queue, .. } => {
            let message = format!("waiting for a free slot in queue {queue}");
            draft.transition(Phase::Queued, Reason::Queued, message.clone(), None);
            draft.set_reason(Reason::Queued, message);
            Slot::Wait
        }
        Admission::QueueNotFound(queue) => {
            let message =
                format!("queue {queue} does not exist; the execution starts once it does");
            if draft.phase == Phase::Pending {
                draft.event_once(Reason::QueueNotFound, message.clone());
            } else {
                draft.transition(Phase::Queued, Reason::QueueNotFound, message.clone(), None);
            }
            draft.set_reason(Reason::QueueNotFound, message.clone());
            outcome.not_admitted = Some((Reason::QueueNotFound, message));
            Slot::Wait
        }
    }
}
