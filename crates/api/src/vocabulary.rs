//! The operator's vocabulary: the reasons it writes ([`Reason`]: `status.reason`, history entries, condition
//! reasons, Events), the condition types it writes ([`ConditionType`]) and the type of its Events ([`EventType`]).
//!
//! On the wire these stay strings (`HistoryEntry.reason`, `status.reason`, a condition's `type` and `reason`), so
//! that every stored object still decodes; the operator and the CLI construct and compare them through these enums
//! only. Each variant's doc comment is its meaning as the README's tables show it (a test checks both agree).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A name that is not part of the vocabulary it was parsed as.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {name:?}")]
pub struct UnknownName {
    /// What was parsed (`reason`, `condition type`).
    pub kind: &'static str,
    /// The text that did not parse.
    pub name: String,
}

/// Defines a vocabulary enum: each variant is written as its own name, and its doc comment is its meaning.
macro_rules! vocabulary {
    (
        $(#[doc = $doc:literal])+
        $kind:literal
        pub enum $name:ident {
            $( $(#[doc = $meaning:literal])+ $variant:ident, )+
        }
    ) => {
        $(#[doc = $doc])+
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[doc = $meaning])+ $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name as written on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => stringify!($variant),)+
                }
            }

            /// What it means: the variant's doc comment, as the README shows it.
            pub fn meaning(self) -> &'static str {
                match self {
                    $($name::$variant => concat!($($meaning),+).trim(),)+
                }
            }

            /// The variant written as `text`, if there is one (names are case-sensitive).
            pub fn parse(text: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                $name::parse(text).ok_or_else(|| UnknownName {
                    kind: $kind,
                    name: text.to_string(),
                })
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.as_str().to_string()
            }
        }
    };
}

vocabulary! {
    /// Why an execution is where it is: the operator's own reasons, in `status.reason`, history entries, condition
    /// reasons and Events. (A worker that cannot start passes the reason Kubernetes gave through instead:
    /// `Unschedulable`, `ImagePullBackOff`, `FailedCreate`, ...)
    "reason"
    pub enum Reason {
        /// The run took a running slot and its first step started.
        Started,
        /// The run runs again: admitted after waiting for a slot or after a pause (or resumed only to time out).
        Resumed,
        /// The run waits for a free slot in its queue (also the `Admitted` condition's reason).
        Queued,
        /// `spec.queue` names a CrewQueue that does not exist; the run starts once it does.
        QueueNotFound,
        /// A step's worker runs (`status.reason` only).
        StepRunning,
        /// A step's next attempt started after a failed one.
        StepStarted,
        /// A step succeeded; the run goes on with the next step.
        StepSucceeded,
        /// A step failed and no retry was allowed: the run failed.
        StepFailed,
        /// A step's attempt failed; the next attempt starts after the backoff.
        RetryScheduled,
        /// The run waits for the backoff before a failed step's next attempt (`status.reason` only).
        RetryBackoff,
        /// A step's last allowed attempt failed: the run failed.
        RetriesExhausted,
        /// A worker did not start within the start timeout: the attempt failed (and the run, when no retry
        /// was allowed).
        StartTimeout,
        /// A running worker has not reported for its stall timeout; `onStall` warns, fails the run or retries.
        ProgressStalled,
        /// The run exceeded `spec.timeoutSeconds`: it failed and its Job was stopped.
        TimedOut,
        /// The run was cancelled through `spec.cancel`.
        Cancelled,
        /// `spec.cancel` was cleared, but a cancelled run stays cancelled.
        CancelIrreversible,
        /// The run paused through `spec.suspend` before a step or a retry started (also the `Paused`
        /// condition's reason).
        Paused,
        /// `spec.suspend` is set while a step runs: the run pauses once the step finishes (`Paused` condition).
        PauseRequested,
        /// The run is not paused (`Paused` condition).
        NotPaused,
        /// The run holds, or may take, a running slot (`Admitted` condition).
        Admitted,
        /// The spec is invalid, or the worker policy refuses it: the run failed.
        InvalidSpec,
        /// A phase change the transition graph does not allow was refused.
        InvalidTransition,
        /// The API server refused a step's Job, or a Job nothing will delete holds its name: the attempt failed (the
        /// run too, when no retry can cure it).
        JobRejected,
        /// A Job of an earlier execution of the same name still exists; the step starts once it is deleted, or its
        /// attempt fails after the start timeout (`StartBlocked` condition).
        JobNameTaken,
        /// `spec.steps` (or a field the steps inherit) was edited after the run started; the run keeps its steps.
        StepsChanged,
        /// The run executes the steps it started with, `status.resolvedSteps` (`StepsChanged` condition).
        StepsFrozen,
        /// The running worker has not reported for its stall timeout (`ProgressStalled` condition).
        NoProgressReport,
        /// Every step succeeded: the run succeeded.
        Succeeded,
        /// The operator cannot read an object it watches, and ignores it until it is fixed.
        Undecodable,
        /// A reconcile failed because a request to the API server failed; it is retried with backoff.
        ApiError,
        /// A reconcile failed because an object could not be built from the spec; it is retried with backoff.
        BuildError,
        /// A CrewSink dropped an event after its last retry (on the sink).
        NotificationDropped,
        /// The run resumed from another execution (`spec.resumeFrom`): the steps before its resume step were not run
        /// again; their recorded outcomes and results were taken over.
        StepsReused,
        /// The finished run is stored in the archive (`Archived` condition); TTL deletion may go ahead.
        Archived,
        /// Storing the run in the archive failed; it is retried with backoff, and the run is kept until it is stored.
        ArchiveFailed,
    }
}

vocabulary! {
    /// The type of a condition the operator writes in `status.conditions`, in the order it writes them
    /// (`StepsChanged`, `StartBlocked` and `ProgressStalled` only while true).
    "condition type"
    pub enum ConditionType {
        /// The run succeeded (kstatus).
        Ready,
        /// The run is on its way: Pending, Queued or Running (kstatus).
        Reconciling,
        /// The run failed or was cancelled (kstatus).
        Stalled,
        /// True once succeeded, False once failed or cancelled, Unknown before (`kubectl wait`).
        Succeeded,
        /// The run is paused, or a pause was requested (`spec.suspend`).
        Paused,
        /// The run holds, or may take, a running slot; False while it waits for one.
        Admitted,
        /// The spec's steps differ from the ones the run executes.
        StepsChanged,
        /// The current attempt's worker cannot start; the reason is the one Kubernetes gave, or `JobNameTaken`.
        StartBlocked,
        /// The running worker has not reported for its stall timeout.
        ProgressStalled,
        /// With an archive: True once the finished run is stored in it, False while storing it fails.
        Archived,
    }
}

/// The type of a Kubernetes Event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something failed or needs attention.
    Warning,
}

impl EventType {
    /// The name as written in an Event's `type`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Reason {
    /// The type of the Events with this reason: `Warning` for a failure (of an attempt or of the run) and for what
    /// needs someone to act, `Normal` for the expected course of a run.
    pub const fn event_type(self) -> EventType {
        use EventType::{Normal, Warning};
        match self {
            Reason::Started => Normal,
            Reason::Resumed => Normal,
            Reason::Queued => Normal,
            Reason::QueueNotFound => Warning,
            Reason::StepRunning => Normal,
            Reason::StepStarted => Normal,
            Reason::StepSucceeded => Normal,
            Reason::StepFailed => Warning,
            Reason::RetryScheduled => Warning,
            Reason::RetryBackoff => Normal,
            Reason::RetriesExhausted => Warning,
            Reason::StartTimeout => Warning,
            Reason::ProgressStalled => Warning,
            Reason::TimedOut => Warning,
            Reason::Cancelled => Normal,
            Reason::CancelIrreversible => Warning,
            Reason::Paused => Normal,
            Reason::PauseRequested => Normal,
            Reason::NotPaused => Normal,
            Reason::Admitted => Normal,
            Reason::InvalidSpec => Warning,
            Reason::InvalidTransition => Warning,
            Reason::JobRejected => Warning,
            Reason::JobNameTaken => Warning,
            Reason::StepsChanged => Warning,
            Reason::StepsFrozen => Warning,
            Reason::NoProgressReport => Warning,
            Reason::Succeeded => Normal,
            Reason::Undecodable => Warning,
            Reason::ApiError => Warning,
            Reason::BuildError => Warning,
            Reason::NotificationDropped => Warning,
            Reason::StepsReused => Normal,
            Reason::Archived => Normal,
            Reason::ArchiveFailed => Warning,
        }
    }

    /// Whether its Events are Warnings.
    pub const fn is_warning(self) -> bool {
        matches!(self.event_type(), EventType::Warning)
    }
}

impl ConditionType {
    /// Whether the condition being `True` is bad news (the CLI paints it red).
    pub const fn abnormal_when_true(self) -> bool {
        match self {
            ConditionType::Ready => false,
            ConditionType::Reconciling => false,
            ConditionType::Stalled => true,
            ConditionType::Succeeded => false,
            ConditionType::Paused => false,
            ConditionType::Admitted => false,
            ConditionType::StepsChanged => true,
            ConditionType::StartBlocked => true,
            ConditionType::ProgressStalled => true,
            ConditionType::Archived => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Event type of every reason, decided one by one.
    #[test]
    fn event_type_of_every_reason() {
        use EventType::{Normal, Warning};
        let decided = [
            (Reason::Started, Normal),
            (Reason::Resumed, Normal),
            (Reason::Queued, Normal),
            (Reason::QueueNotFound, Warning),
            (Reason::StepRunning, Normal),
            (Reason::StepStarted, Normal),
            (Reason::StepSucceeded, Normal),
            (Reason::StepFailed, Warning),
            (Reason::RetryScheduled, Warning),
            (Reason::RetryBackoff, Normal),
            (Reason::RetriesExhausted, Warning),
            (Reason::StartTimeout, Warning),
            (Reason::ProgressStalled, Warning),
            (Reason::TimedOut, Warning),
            (Reason::Cancelled, Normal),
            (Reason::CancelIrreversible, Warning),
            (Reason::Paused, Normal),
            (Reason::PauseRequested, Normal),
            (Reason::NotPaused, Normal),
            (Reason::Admitted, Normal),
            (Reason::InvalidSpec, Warning),
            (Reason::InvalidTransition, Warning),
            (Reason::JobRejected, Warning),
            (Reason::JobNameTaken, Warning),
            (Reason::StepsChanged, Warning),
            (Reason::StepsFrozen, Warning),
            (Reason::NoProgressReport, Warning),
            (Reason::Succeeded, Normal),
            (Reason::Undecodable, Warning),
            (Reason::ApiError, Warning),
            (Reason::BuildError, Warning),
            (Reason::NotificationDropped, Warning),
            (Reason::StepsReused, Normal),
            (Reason::Archived, Normal),
            (Reason::ArchiveFailed, Warning),
        ];
        let listed: Vec<Reason> = decided.iter().map(|(reason, _)| *reason).collect();
        assert_eq!(listed, Reason::ALL, "every reason, once, in order");
        for (reason, expected) in decided {
            assert_eq!(reason.event_type(), expected, "{reason}");
            assert_eq!(reason.is_warning(), expected == Warning, "{reason}");
        }
    }

    /// Every reason that ends a run or an attempt with a failure is a Warning (the `StartTimeout` and
    /// `ProgressStalled` failures were once Normal).
    #[test]
    fn failures_are_warnings() {
        for reason in [
            Reason::StepFailed,
            Reason::RetryScheduled,
            Reason::RetriesExhausted,
            Reason::StartTimeout,
            Reason::ProgressStalled,
            Reason::TimedOut,
            Reason::InvalidSpec,
            Reason::JobRejected,
        ] {
            assert_eq!(reason.event_type(), EventType::Warning, "{reason}");
        }
    }

    #[test]
    fn abnormal_conditions() {
        let red: Vec<&str> = ConditionType::ALL
            .iter()
            .filter(|c| c.abnormal_when_true())
            .map(|c| c.as_str())
            .collect();
        assert_eq!(
            red,
            ["Stalled", "StepsChanged", "StartBlocked", "ProgressStalled"]
        );
    }

    #[test]
    fn names_round_trip_as_text_and_json() {
        for reason in Reason::ALL {
            assert_eq!(Reason::parse(reason.as_str()), Some(*reason));
            assert_eq!(reason.as_str().parse::<Reason>(), Ok(*reason));
            assert_eq!(reason.to_string(), reason.as_str());
            let json = serde_json::to_string(reason).unwrap();
            assert_eq!(json, format!("\"{reason}\""));
            assert_eq!(serde_json::from_str::<Reason>(&json).unwrap(), *reason);
            assert!(!reason.meaning().is_empty(), "{reason}");
        }
        for condition in ConditionType::ALL {
            assert_eq!(ConditionType::parse(condition.as_str()), Some(*condition));
            assert_eq!(condition.to_string(), condition.as_str());
            let json = serde_json::to_string(condition).unwrap();
            assert_eq!(
                serde_json::from_str::<ConditionType>(&json).unwrap(),
                *condition
            );
            assert!(!condition.meaning().is_empty(), "{condition}");
        }
        assert_eq!(Reason::parse("started"), None, "names are case-sensitive");
        assert_eq!(
            "Failed".parse::<Reason>(),
            Err(UnknownName {
                kind: "reason",
                name: "Failed".into()
            })
        );
        assert!(serde_json::from_str::<ConditionType>("\"Bogus\"").is_err());
        assert_eq!(
            Reason::StartTimeout.meaning(),
            "A worker did not start within the start timeout: the attempt failed (and the run, when no retry \
             was allowed)."
        );
    }
}
