//! The status fields a decision derives besides phase, reason and history (which the [`Draft`] holds), and the
//! [`Verdict`] a rule returns.
//!
//! [`Draft`]: crate::lifecycle::draft::Draft

use crate::lifecycle::steps::{StepRecord, StepView};
use crew_api::{CrewExecutionStatus, Reason};
use jiff::Timestamp;

/// Derived facts that become status fields besides phase, reason and history.
#[derive(Default)]
pub(super) struct Outcome {
    /// One record per step the run executes (empty when the spec is invalid).
    pub records: Vec<StepRecord>,
    /// How many steps succeeded, from the first: the index of the current step.
    pub completed: usize,
    /// The current step's index, once the run has one.
    pub current: Option<usize>,
    /// When the run's first attempt started.
    pub start_time: Option<Timestamp>,
    /// When the run ended (written only once the phase is terminal).
    pub completion_time: Option<Timestamp>,
    /// When the next attempt of a failed step starts, while it waits for its backoff.
    pub next_retry_time: Option<Timestamp>,
    /// `spec.suspend` is set while a step still runs.
    pub pause_requested: bool,
    /// Why the execution is not admitted (reason, message), when it waits for a reason worth a condition.
    pub not_admitted: Option<(Reason, String)>,
    /// Why the spec's steps are not the ones this run executes, when they differ.
    pub steps_changed: Option<String>,
    /// Why the current attempt's worker cannot start (Kubernetes' reason, message), while it cannot.
    pub start_blocked: Option<(String, String)>,
    /// How long the running worker has not reported, while that is longer than its stall timeout.
    pub stalled: Option<String>,
}

impl Outcome {
    /// The facts before any rule ran: only the run's start time carries over from `previous`.
    pub fn since(previous: &CrewExecutionStatus) -> Self {
        Outcome {
            start_time: previous.start_time.as_ref().map(|t| t.0),
            ..Default::default()
        }
    }

    /// Whether a step's Job finished but its pod's outcome has not reached the cache yet.
    pub fn awaits_a_pod(&self) -> bool {
        self.records.iter().any(|r| r.view == StepView::AwaitingPod)
    }

    /// The current step's record (the first that has not succeeded).
    pub fn current(&self) -> &StepRecord {
        &self.records[self.completed]
    }

    /// The current step's record, to change.
    pub fn current_mut(&mut self) -> &mut StepRecord {
        &mut self.records[self.completed]
    }
}

/// What a rule made of the current step in this reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// It decided the step (failed the attempt, reported why it cannot start, ended the run): later rules stay out.
    Settled,
    /// It had nothing to decide: the next rule applies.
    Pass,
}
