//! What a sink is told: one notification per transition an execution's history records (and one `completed` at
//! its terminal phase), and throttled progress, each with a stable id so that a receiver drops what it has seen.

use crate::lifecycle::history::entry_key;
use crate::lifecycle::names::entry_digest;
use crew_api::sink::SinkEventType;
use crew_api::{CrewExecution, CrewExecutionStatus, HistoryEntry, Phase};
use jiff::Timestamp;
use serde::Serialize;
use std::collections::BTreeMap;

/// One event for the sinks: its CloudEvents attributes and data.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notification {
    /// The CloudEvents `id`: the execution's UID and a digest of the history entry it comes from (the same digest
    /// names the entry's Kubernetes Event), so every delivery of one transition carries one id.
    #[serde(skip)]
    pub id: String,
    /// The CloudEvents `type`.
    #[serde(skip)]
    pub kind: SinkEventType,
    /// When the transition happened (the history entry's time).
    #[serde(skip)]
    pub time: Timestamp,
    /// The data.
    #[serde(flatten)]
    pub data: NotificationData,
}

/// The `data` of a notification (JSON).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationData {
    /// The execution's name (also the CloudEvents `subject`).
    pub execution: String,
    /// Its namespace.
    pub namespace: String,
    /// Its UID.
    pub uid: String,
    /// The phase before the transition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_phase: Option<Phase>,
    /// The phase after it.
    pub phase: Phase,
    /// The transition's reason.
    pub reason: String,
    /// The transition's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The step it is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The step's attempt (counted from the history: 1, then one more after each scheduled retry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The execution's percent (progress and completed events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<u32>,
    /// The execution's duration (completed events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,
    /// When it happened (RFC 3339).
    pub time: String,
    /// The execution's labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Notification {
    /// The CloudEvents `source` of `namespace`/`execution`: the execution's API path.
    pub fn source(&self) -> String {
        format!(
            "/apis/crew.dev/v1alpha1/namespaces/{}/crewexecutions/{}",
            self.data.namespace, self.data.execution
        )
    }
}

/// The step attempt `history[index]` is about: 1, plus one for each earlier `RetryScheduled` of its step.
fn attempt_at(history: &[HistoryEntry], index: usize) -> Option<u32> {
    let step = history[index].step.as_deref()?;
    let retries = history[..index]
        .iter()
        .filter(|e| {
            e.step.as_deref() == Some(step) && e.reason == crew_api::Reason::RetryScheduled.as_str()
        })
        .count();
    Some(1 + retries as u32)
}

fn base(cx: &CrewExecution, entry: &HistoryEntry) -> NotificationData {
    NotificationData {
        execution: cx.metadata.name.clone().unwrap_or_default(),
        namespace: cx.metadata.namespace.clone().unwrap_or_default(),
        uid: cx.metadata.uid.clone().unwrap_or_default(),
        previous_phase: Some(entry.from),
        phase: entry.to,
        reason: entry.reason.clone(),
        message: entry.message.clone(),
        step: entry.step.clone(),
        attempt: None,
        progress: None,
        duration_seconds: None,
        time: entry.time.0.to_string(),
        labels: cx.metadata.labels.clone().unwrap_or_default(),
    }
}

/// The notifications of `cx`'s history entries recorded at `since` or later (all without `since`), oldest first:
/// a phase change is `state_changed` (and `completed` too when the phase is terminal), a step's transition within
/// a phase is `step.state_changed`.
pub fn transitions(cx: &CrewExecution, since: Option<Timestamp>) -> Vec<Notification> {
    let Some(status) = cx.status.as_ref() else {
        return Vec::new();
    };
    let uid = cx.metadata.uid.as_deref().unwrap_or_default();
    let mut out = Vec::new();
    for (index, entry) in status.history.iter().enumerate() {
        if since.is_some_and(|since| entry.time.0 < since) {
            continue;
        }
        let digest = entry_digest(uid, &entry_key(entry));
        let mut data = base(cx, entry);
        data.attempt = attempt_at(&status.history, index);
        if entry.from == entry.to {
            out.push(Notification {
                id: format!("{uid}.{digest}"),
                kind: SinkEventType::StepStateChanged,
                time: entry.time.0,
                data,
            });
            continue;
        }
        out.push(Notification {
            id: format!("{uid}.{digest}"),
            kind: SinkEventType::ExecutionStateChanged,
            time: entry.time.0,
            data: data.clone(),
        });
        if entry.to.is_terminal() {
            out.push(completed(cx, status, entry, data));
        }
    }
    out
}

fn completed(
    cx: &CrewExecution,
    status: &CrewExecutionStatus,
    entry: &HistoryEntry,
    mut data: NotificationData,
) -> Notification {
    let uid = cx.metadata.uid.as_deref().unwrap_or_default();
    data.progress = status.progress.as_ref().map(|p| p.percent);
    data.duration_seconds = status.duration_seconds;
    Notification {
        id: format!("{uid}.completed"),
        kind: SinkEventType::ExecutionCompleted,
        time: entry.time.0,
        data,
    }
}

/// A progress notification of `cx` as its status shows it now (None: no report yet), with an id naming its step,
/// attempt and report time.
pub fn progress(cx: &CrewExecution) -> Option<Notification> {
    let status = cx.status.as_ref()?;
    let step = status
        .steps
        .iter()
        .filter(|s| s.progress.as_ref().is_some_and(|p| p.update_time.is_some()))
        .max_by_key(|s| {
            s.progress
                .as_ref()
                .and_then(|p| p.update_time.clone())
                .map(|t| t.0)
        })?;
    let reported = step.progress.as_ref()?;
    let at = reported.update_time.as_ref()?.0;
    let uid = cx.metadata.uid.clone().unwrap_or_default();
    let phase = status.phase.unwrap_or_default();
    Some(Notification {
        id: format!(
            "{uid}.progress.{}.{}.{}",
            step.name,
            step.attempt,
            at.as_second()
        ),
        kind: SinkEventType::ExecutionProgress,
        time: at,
        data: NotificationData {
            execution: cx.metadata.name.clone().unwrap_or_default(),
            namespace: cx.metadata.namespace.clone().unwrap_or_default(),
            uid,
            previous_phase: None,
            phase,
            reason: status.reason.clone().unwrap_or_default(),
            message: reported.message.clone(),
            step: Some(step.name.clone()),
            attempt: Some(step.attempt),
            progress: status.progress.as_ref().map(|p| p.percent),
            duration_seconds: None,
            time: at.to_string(),
            labels: cx.metadata.labels.clone().unwrap_or_default(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn execution() -> CrewExecution {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "crew.dev/v1alpha1", "kind": "CrewExecution",
            "metadata": {"name": "report", "namespace": "team", "uid": "u1", "labels": {"app": "x"}},
            "spec": {"image": "w"},
            "status": {"phase": "Succeeded", "durationSeconds": 42,
                "progress": {"percent": 100, "completedSteps": 2, "totalSteps": 2, "display": "2/2 (100%)"},
                "history": [
                {"time": "2026-12-07T10:00:00Z", "from": "Pending", "to": "Running", "reason": "Started", "step": "a"},
                {"time": "2026-12-07T10:00:10Z", "from": "Running", "to": "Running", "reason": "RetryScheduled", "step": "a"},
                {"time": "2026-12-07T10:00:20Z", "from": "Running", "to": "Running", "reason": "StepStarted", "step": "a"},
                {"time": "2026-12-07T10:00:30Z", "from": "Running", "to": "Running", "reason": "StepSucceeded", "step": "a"},
                {"time": "2026-12-07T10:00:42Z", "from": "Running", "to": "Succeeded", "reason": "Succeeded", "step": "b"}
            ]}
        }))
        .unwrap()
    }

    #[test]
    fn every_transition_is_one_notification_and_the_end_one_more() {
        let cx = execution();
        let all = transitions(&cx, None);
        let kinds: Vec<_> = all
            .iter()
            .map(|n| (n.kind.as_str(), n.data.reason.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("dev.crew.execution.state_changed", "Started"),
                ("dev.crew.step.state_changed", "RetryScheduled"),
                ("dev.crew.step.state_changed", "StepStarted"),
                ("dev.crew.step.state_changed", "StepSucceeded"),
                ("dev.crew.execution.state_changed", "Succeeded"),
                ("dev.crew.execution.completed", "Succeeded"),
            ]
        );
        let attempts: Vec<_> = all.iter().map(|n| n.data.attempt).collect();
        assert_eq!(
            attempts,
            [Some(1), Some(1), Some(2), Some(2), Some(1), Some(1)]
        );
        let end = &all[5];
        assert_eq!(end.id, "u1.completed");
        assert_eq!(
            (end.data.duration_seconds, end.data.progress),
            (Some(42), Some(100))
        );
        assert_eq!(end.data.previous_phase, Some(Phase::Running));
        assert_eq!(
            end.source(),
            "/apis/crew.dev/v1alpha1/namespaces/team/crewexecutions/report"
        );
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let cx = execution();
        let first: Vec<_> = transitions(&cx, None).into_iter().map(|n| n.id).collect();
        let again: Vec<_> = transitions(&cx, None).into_iter().map(|n| n.id).collect();
        assert_eq!(first, again);
        let distinct: std::collections::BTreeSet<_> = first.iter().collect();
        assert_eq!(distinct.len(), first.len());
        let mut other = cx.clone();
        other.metadata.uid = Some("u2".into());
        assert!(
            transitions(&other, None)
                .iter()
                .all(|n| !first.contains(&n.id))
        );
    }

    #[test]
    fn only_transitions_from_the_position_on() {
        let cx = execution();
        let since = "2026-12-07T10:00:30Z".parse().unwrap();
        let reasons: Vec<_> = transitions(&cx, Some(since))
            .into_iter()
            .map(|n| n.data.reason)
            .collect();
        assert_eq!(reasons, ["StepSucceeded", "Succeeded", "Succeeded"]);
    }
}
