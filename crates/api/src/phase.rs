//! Phases of an execution and of a step, as they appear in `.status`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Lifecycle phase of a CrewExecution.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
)]
pub enum Phase {
    /// Accepted but not yet admitted (for example waiting for its queue to exist).
    #[default]
    Pending,
    /// Admitted to the lifecycle but waiting for a free slot in its queue.
    Queued,
    /// A step's worker Job is running (or a failed step waits for its retry).
    Running,
    /// Suspended through `spec.suspend`; no step runs.
    Paused,
    /// Every step succeeded.
    Succeeded,
    /// A step failed after its retries, the execution timed out, or the spec is invalid.
    Failed,
    /// Cancelled through `spec.cancel`.
    Cancelled,
}

impl Phase {
    /// Every phase, in declaration order (used by exhaustive tests).
    pub const ALL: [Phase; 7] = [
        Phase::Pending,
        Phase::Queued,
        Phase::Running,
        Phase::Paused,
        Phase::Succeeded,
        Phase::Failed,
        Phase::Cancelled,
    ];

    /// Succeeded, Failed and Cancelled never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed | Phase::Cancelled)
    }

    /// The name as written in `.status.phase`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Queued => "Queued",
            Phase::Running => "Running",
            Phase::Paused => "Paused",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Cancelled => "Cancelled",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Phase of one step of an execution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum StepPhase {
    /// Not started yet.
    #[default]
    Pending,
    /// The current attempt's Job exists and has not finished.
    Running,
    /// The last attempt failed and another attempt is scheduled after a backoff.
    Retrying,
    /// An attempt succeeded.
    Succeeded,
    /// The last attempt failed and no retry is left.
    Failed,
    /// The execution was cancelled or timed out while this step ran.
    Cancelled,
}

impl StepPhase {
    /// The name as written in `.status.steps[].phase`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepPhase::Pending => "Pending",
            StepPhase::Running => "Running",
            StepPhase::Retrying => "Retrying",
            StepPhase::Succeeded => "Succeeded",
            StepPhase::Failed => "Failed",
            StepPhase::Cancelled => "Cancelled",
        }
    }
}

impl fmt::Display for StepPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
