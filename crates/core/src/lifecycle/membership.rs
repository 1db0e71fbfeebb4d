//! An execution as the queues count it, read from the execution alone: its phase, member key and line, its
//! admission facts ([`Member::of`]), its statistics facts ([`MemberFacts::of`]) and its place in the
//! [`QueueBook`](super::queue_book::QueueBook) ([`Entry::of`]). The operator's book and `kubectl crew describe`
//! both build them here, so the CLI explains a wait with the members the operator admits from.

use super::queue::{Member, member_key};
use super::queue_book::{Entry, LineId};
use super::queue_stats::MemberFacts;
use crew_api::{CrewExecution, Phase};
use jiff::Timestamp;
use kube_core::ResourceExt;

/// `status.phase`, `Pending` before the operator's first status write.
pub fn phase_of(cx: &CrewExecution) -> Phase {
    cx.status.as_ref().and_then(|s| s.phase).unwrap_or_default()
}

/// The execution's member key (`namespace/name`, see [`member_key`]).
pub fn key_of(cx: &CrewExecution) -> String {
    member_key(&cx.namespace().unwrap_or_default(), &cx.name_any())
}

/// `metadata.creationTimestamp` (the epoch for an execution never stored: it sorts first among equals).
fn created(cx: &CrewExecution) -> Timestamp {
    cx.metadata
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
}

impl LineId {
    /// The line `cx` queues in: its `spec.queue` in its namespace, or the operator-wide one.
    pub fn of_execution(cx: &CrewExecution) -> LineId {
        LineId::of(
            &cx.namespace().unwrap_or_default(),
            cx.spec.queue.as_deref(),
        )
    }
}

impl Member {
    /// The queue's view of `cx`.
    pub fn of(cx: &CrewExecution) -> Member {
        Member::new(&key_of(cx), &cx.spec, phase_of(cx), created(cx))
    }
}

impl MemberFacts {
    /// What a queue's statistics need of `cx`. It waits since its latest move to `Queued`, else since its creation.
    pub fn of(cx: &CrewExecution) -> MemberFacts {
        let status = cx.status.as_ref();
        let waiting_since = status
            .and_then(|s| {
                s.history
                    .iter()
                    .rev()
                    .find(|h| h.to == Phase::Queued)
                    .map(|h| h.time.0)
            })
            .or_else(|| cx.metadata.creation_timestamp.as_ref().map(|t| t.0));
        MemberFacts {
            phase: phase_of(cx),
            completed: status.and_then(|s| s.completion_time.as_ref()).map(|t| t.0),
            duration_seconds: status.and_then(|s| s.duration_seconds),
            waiting_since,
        }
    }
}

impl Entry {
    /// The book's view of `cx`.
    pub fn of(cx: &CrewExecution) -> Entry {
        Entry {
            namespace: cx.namespace().unwrap_or_default(),
            name: cx.name_any(),
            uid: cx.uid().unwrap_or_default(),
            line: LineId::of_execution(cx),
            member: Member::of(cx),
            facts: MemberFacts::of(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn execution(status: serde_json::Value) -> CrewExecution {
        serde_json::from_value(json!({
            "apiVersion": "crew.dev/v1alpha1", "kind": "CrewExecution",
            "metadata": {"name": "x", "namespace": "ns", "uid": "u1", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"queue": "gpu", "priority": 3, "steps": [{"name": "s", "image": "busybox"}]},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn an_execution_before_its_first_status_waits_as_pending() {
        let entry = Entry::of(&execution(json!(null)));
        assert_eq!(
            (
                entry.namespace.as_str(),
                entry.name.as_str(),
                entry.uid.as_str()
            ),
            ("ns", "x", "u1")
        );
        assert_eq!(entry.line, LineId::of("ns", Some("gpu")));
        assert_eq!(
            entry.member,
            Member {
                key: "ns/x".into(),
                priority: 3,
                created: "2026-01-01T00:00:00Z".parse().unwrap(),
                running: false,
                waiting: true,
            }
        );
        assert_eq!(entry.facts.phase, Phase::Pending);
        assert_eq!(entry.facts.waiting_since, Some(entry.member.created));
    }

    #[test]
    fn facts_read_the_latest_queueing_and_the_finish() {
        let cx = execution(json!({
            "phase": "Succeeded", "completionTime": "2026-01-01T00:09:00Z", "durationSeconds": 300,
            "history": [
                {"time": "2026-01-01T00:01:00Z", "from": "Pending", "to": "Queued", "reason": "QueueFull"},
                {"time": "2026-01-01T00:02:00Z", "from": "Queued", "to": "Running", "reason": "Admitted"},
                {"time": "2026-01-01T00:03:00Z", "from": "Running", "to": "Queued", "reason": "Requeued"},
                {"time": "2026-01-01T00:04:00Z", "from": "Queued", "to": "Succeeded", "reason": "Done"},
            ],
        }));
        let facts = MemberFacts::of(&cx);
        assert_eq!(facts.phase, Phase::Succeeded);
        assert_eq!(
            facts.waiting_since.map(|t| t.to_string()).as_deref(),
            Some("2026-01-01T00:03:00Z")
        );
        assert_eq!(facts.duration_seconds, Some(300));
        assert!(facts.completed.is_some());
        let member = Member::of(&cx);
        assert!(!member.running && !member.waiting, "finished");
    }
}
