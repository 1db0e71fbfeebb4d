//! Standard conditions derived from the phase: kstatus (`Ready`, `Reconciling`, `Stalled`), `Succeeded` for
//! `kubectl wait`, `Paused` and `Admitted`.

use crew_api::{ConditionType, CrewExecutionStatus, Phase, Reason};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Inputs to the conditions beyond the phase.
#[derive(Clone, Debug, Default)]
pub struct ConditionInputs<'a> {
    /// Phase after this reconcile.
    pub phase: Phase,
    /// `status.reason` after this reconcile (a [`Reason`], or the one Kubernetes gave for a blocked start).
    pub reason: &'a str,
    /// `status.message` after this reconcile.
    pub message: &'a str,
    /// `spec.suspend` is set but a step still runs.
    pub pause_requested: bool,
    /// Admission problem to report (`QueueNotFound`: reason, message), if any.
    pub not_admitted: Option<(Reason, &'a str)>,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Why the spec's steps differ from the ones the run executes (`StepsChanged`), if they do.
    pub steps_changed: Option<&'a str>,
    /// Why the current attempt's worker cannot start (`StartBlocked`: Kubernetes' reason, message), while it cannot.
    pub start_blocked: Option<(&'a str, &'a str)>,
    /// How long the running worker has not reported (`ProgressStalled`: message), while it has not.
    pub stalled: Option<&'a str>,
}

/// `status` with only the conditions the operator writes: conditions other writers add to the status (server-side
/// apply merges `status.conditions` by `type`) are theirs, neither written back nor a reason to write.
pub fn without_foreign(status: &CrewExecutionStatus) -> std::borrow::Cow<'_, CrewExecutionStatus> {
    if status.conditions.iter().all(is_ours) {
        return std::borrow::Cow::Borrowed(status);
    }
    let mut own = status.clone();
    own.conditions.retain(is_ours);
    std::borrow::Cow::Owned(own)
}

/// Whether the operator writes conditions of this condition's type.
pub fn is_ours(condition: &Condition) -> bool {
    ConditionType::parse(&condition.type_).is_some()
}

/// The full condition list of a run that has not finished, in the order of [`ConditionType::ALL`] (`StepsChanged`,
/// `StartBlocked` and `ProgressStalled` only while true; `Archived` never: a finished run's archive writes it); `lastTransitionTime` is kept from `previous` when a condition's status is
/// unchanged, and for the conditions written only while true when their reason is unchanged too: a worker blocked
/// for another reason is a new block, and `StartBlocked`'s time says since when the current one holds (the
/// `JobNameTaken` wait is bounded from it).
pub fn conditions(
    input: &ConditionInputs<'_>,
    previous: &[Condition],
    now: Timestamp,
) -> Vec<Condition> {
    let phase = input.phase;
    // Never an empty string: a condition's reason is a required CamelCase word (metav1.Condition).
    let reason = if input.reason.is_empty() {
        phase.as_str()
    } else {
        input.reason
    };
    let phase_message = format!("execution is {phase}");
    let message = if input.message.is_empty() {
        phase_message.as_str()
    } else {
        input.message
    };
    let failed = matches!(phase, Phase::Failed | Phase::Cancelled);
    let in_progress = matches!(phase, Phase::Pending | Phase::Queued | Phase::Running);
    let succeeded = match phase {
        Phase::Succeeded => "True",
        Phase::Failed | Phase::Cancelled => "False",
        _ => "Unknown",
    };
    let (paused, paused_reason, paused_message) = if phase == Phase::Paused {
        ("True", Reason::Paused, "execution is paused (spec.suspend)")
    } else if input.pause_requested {
        (
            "True",
            Reason::PauseRequested,
            "pause requested: the running step finishes first",
        )
    } else {
        ("False", Reason::NotPaused, "not paused")
    };
    let (admitted, admitted_reason, admitted_message) = match input.not_admitted {
        Some((r, m)) => ("False", r, m),
        None if phase == Phase::Queued => ("False", Reason::Queued, message),
        None => ("True", Reason::Admitted, "admitted"),
    };
    let wanted = [
        (
            ConditionType::Ready,
            bool_status(phase == Phase::Succeeded),
            reason,
            message,
        ),
        (
            ConditionType::Reconciling,
            bool_status(in_progress),
            reason,
            message,
        ),
        (ConditionType::Stalled, bool_status(failed), reason, message),
        (ConditionType::Succeeded, succeeded, reason, message),
        (
            ConditionType::Paused,
            paused,
            paused_reason.as_str(),
            paused_message,
        ),
        (
            ConditionType::Admitted,
            admitted,
            admitted_reason.as_str(),
            admitted_message,
        ),
    ];
    let steps_changed = input.steps_changed.map(|message| {
        let reason = Reason::StepsFrozen.as_str();
        (ConditionType::StepsChanged, "True", reason, message)
    });
    let start_blocked = input
        .start_blocked
        .map(|(reason, message)| (ConditionType::StartBlocked, "True", reason, message));
    let stalled = input.stalled.map(|message| {
        let reason = Reason::NoProgressReport.as_str();
        (ConditionType::ProgressStalled, "True", reason, message)
    });
    let while_true = |type_: ConditionType| {
        matches!(
            type_,
            ConditionType::StepsChanged
                | ConditionType::StartBlocked
                | ConditionType::ProgressStalled
        )
    };
    wanted
        .into_iter()
        .chain(steps_changed)
        .chain(start_blocked)
        .chain(stalled)
        .map(|(type_, status, reason, message)| {
            let last_transition_time = previous
                .iter()
                .find(|c| {
                    c.type_ == type_.as_str()
                        && c.status == status
                        && (!while_true(type_) || c.reason == reason)
                })
                .map_or_else(|| Time(now), |c| c.last_transition_time.clone());
            Condition {
                type_: type_.into(),
                status: status.to_string(),
                reason: reason.to_string(),
                message: message.to_string(),
                last_transition_time,
                observed_generation: input.generation,
            }
        })
        .collect()
}

fn bool_status(value: bool) -> &'static str {
    if value { "True" } else { "False" }
}

/// The condition of `type_` in `conditions`, if present.
pub fn find(conditions: &[Condition], type_: ConditionType) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == type_.as_str())
}

/// Whether the condition of `type_` in `conditions` is present and `True`.
pub fn is_true(conditions: &[Condition], type_: ConditionType) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    fn status_of(conds: &[Condition], type_: &str) -> String {
        let type_ = ConditionType::parse(type_).unwrap();
        find(conds, type_).unwrap().status.clone()
    }

    #[test]
    fn kstatus_view_of_every_phase() {
        // phase -> (Ready, Reconciling, Stalled, Succeeded)
        let table = [
            (Phase::Pending, ["False", "True", "False", "Unknown"]),
            (Phase::Queued, ["False", "True", "False", "Unknown"]),
            (Phase::Running, ["False", "True", "False", "Unknown"]),
            (Phase::Paused, ["False", "False", "False", "Unknown"]),
            (Phase::Succeeded, ["True", "False", "False", "True"]),
            (Phase::Failed, ["False", "False", "True", "False"]),
            (Phase::Cancelled, ["False", "False", "True", "False"]),
        ];
        for (phase, expected) in table {
            let c = conditions(
                &ConditionInputs {
                    phase,
                    reason: "R",
                    ..Default::default()
                },
                &[],
                at(1),
            );
            let got: Vec<String> = ["Ready", "Reconciling", "Stalled", "Succeeded"]
                .iter()
                .map(|t| status_of(&c, t))
                .collect();
            assert_eq!(got, expected, "{phase}");
            assert_eq!(
                c.len(),
                ConditionType::ALL.len() - 4,
                "StepsChanged, StartBlocked and ProgressStalled only while true; Archived only once finished"
            );
        }
    }

    #[test]
    fn written_in_the_order_of_the_condition_types() {
        let c = conditions(
            &ConditionInputs {
                phase: Phase::Running,
                reason: "StepRunning",
                steps_changed: Some("edited"),
                start_blocked: Some(("Unschedulable", "0/3 nodes are available")),
                stalled: Some("no report"),
                ..Default::default()
            },
            &[],
            at(1),
        );
        let types: Vec<&str> = c.iter().map(|c| c.type_.as_str()).collect();
        let all: Vec<&str> = ConditionType::ALL
            .iter()
            .filter(|t| **t != ConditionType::Archived)
            .map(|t| t.as_str())
            .collect();
        assert_eq!(
            types, all,
            "all but Archived (decide/archived.rs writes it)"
        );
        assert!(c.iter().all(is_ours));
    }

    #[test]
    fn steps_changed_is_written_only_while_true() {
        let input = ConditionInputs {
            phase: Phase::Running,
            reason: "StepRunning",
            steps_changed: Some("spec.steps was edited"),
            ..Default::default()
        };
        let c = conditions(&input, &[], at(1));
        let changed = find(&c, ConditionType::StepsChanged).expect("StepsChanged");
        assert_eq!(
            (
                changed.status.as_str(),
                changed.reason.as_str(),
                changed.message.as_str()
            ),
            ("True", "StepsFrozen", "spec.steps was edited")
        );
        let c = conditions(
            &ConditionInputs {
                steps_changed: None,
                ..input
            },
            &c,
            at(2),
        );
        assert!(find(&c, ConditionType::StepsChanged).is_none());
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let running = ConditionInputs {
            phase: Phase::Running,
            reason: "StepRunning",
            generation: Some(1),
            ..Default::default()
        };
        let first = conditions(&running, &[], at(10));
        let again = conditions(
            &ConditionInputs {
                reason: "Other",
                ..running.clone()
            },
            &first,
            at(20),
        );
        assert!(again.iter().all(|c| c.last_transition_time == Time(at(10))));
        let done = conditions(
            &ConditionInputs {
                phase: Phase::Succeeded,
                ..running
            },
            &again,
            at(30),
        );
        assert_eq!(
            find(&done, ConditionType::Ready)
                .unwrap()
                .last_transition_time,
            Time(at(30))
        );
        assert_eq!(
            find(&done, ConditionType::Stalled)
                .unwrap()
                .last_transition_time,
            Time(at(10))
        );
    }

    #[test]
    fn a_start_block_for_another_reason_is_a_new_block() {
        let blocked = |reason| ConditionInputs {
            phase: Phase::Running,
            reason: "StepRunning",
            start_blocked: Some((reason, "why")),
            ..Default::default()
        };
        let since = |c: &[Condition]| {
            find(c, ConditionType::StartBlocked)
                .map(|c| c.last_transition_time.clone())
                .unwrap()
        };
        let first = conditions(&blocked("ImagePullBackOff"), &[], at(10));
        let same = conditions(&blocked("ImagePullBackOff"), &first, at(20));
        assert_eq!(since(&same), Time(at(10)), "the same block goes on");
        let other = conditions(&blocked("JobNameTaken"), &same, at(30));
        assert_eq!(since(&other), Time(at(30)), "another reason: a new block");
    }

    #[test]
    fn pause_and_admission() {
        let c = conditions(
            &ConditionInputs {
                phase: Phase::Running,
                pause_requested: true,
                ..Default::default()
            },
            &[],
            at(1),
        );
        assert_eq!(
            find(&c, ConditionType::Paused).unwrap().reason,
            "PauseRequested"
        );
        let c = conditions(
            &ConditionInputs {
                phase: Phase::Pending,
                not_admitted: Some((Reason::QueueNotFound, "no queue q")),
                ..Default::default()
            },
            &[],
            at(1),
        );
        let admitted = find(&c, ConditionType::Admitted).unwrap();
        assert_eq!(
            (admitted.status.as_str(), admitted.reason.as_str()),
            ("False", "QueueNotFound")
        );
    }
}
