//! Why a Queued execution waits: its place in the admission order and who holds the slots, computed with the
//! operator's own book (`crew_core::lifecycle::queue_book`) over the members it would hold
//! (`crew_core::lifecycle::membership`).

use crew_api::CrewExecution;
use crew_core::lifecycle::job_summary::{JobRecord, summarise_job};
use crew_core::lifecycle::membership::key_of;
use crew_core::lifecycle::queue_book::{Entry, LineId, QueueBook};
use k8s_openapi::api::batch::v1::Job;
use std::collections::HashSet;

/// A waiting execution's place in its queue line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    /// The CrewQueue, or `None` for the operator-wide limit.
    pub queue: Option<String>,
    /// The queue's `maxRunning` (`None`: the queue does not exist, or the operator-wide limit is unknown here).
    pub max_running: Option<u32>,
    /// 1-based place among the waiting members, in admission order.
    pub position: usize,
    /// How many members wait.
    pub waiting: usize,
    /// The members holding a slot (`name`, or `namespace/name` when the line spans namespaces), in name order.
    pub holders: Vec<String>,
}

/// The executions (UIDs) that own a Job that runs among `jobs`, read as the operator's child index reads them
/// ([`summarise_job`], [`JobRecord::runs`]).
pub fn running_owners(jobs: &[Job]) -> HashSet<String> {
    jobs.iter()
        .filter_map(summarise_job)
        .filter(JobRecord::runs)
        .filter_map(|record| record.owner_uid)
        .collect()
}

/// Where `cx` stands among `line` (every execution of its queue line, `cx` included or not), counted as the
/// operator's [`QueueBook`] counts: a member holds a slot when it is Running or, still waiting, owns a Job that
/// runs (its UID is in `running_owners`: a Running status write was lost). The operator also holds slots for
/// admissions its cache does not show yet; those live in its memory only.
pub fn waiting(
    cx: &CrewExecution,
    line: &[CrewExecution],
    running_owners: &HashSet<String>,
    max_running: Option<u32>,
    spans_namespaces: bool,
) -> Waiting {
    let mut book = QueueBook::default();
    book.replace_running_jobs(running_owners.clone());
    for member in line.iter().chain([cx]) {
        book.apply(Entry::of(member));
    }
    let queue = LineId::of_execution(cx);
    let mut holders: Vec<String> = book
        .holders(&queue)
        .into_iter()
        .map(|(namespace, name)| {
            if spans_namespaces {
                format!("{namespace}/{name}")
            } else {
                name
            }
        })
        .collect();
    holders.sort();
    Waiting {
        queue: cx.spec.queue.clone(),
        max_running,
        position: book.place(&queue, &key_of(cx)).unwrap_or(0),
        waiting: book.summary(&queue).waiting,
        holders,
    }
}

/// The sentence `describe` prints.
pub fn sentence(w: &Waiting) -> String {
    let line = match &w.queue {
        Some(q) => format!("queue \"{q}\""),
        None => "the operator-wide limit (--max-running)".to_string(),
    };
    let limit = match (w.max_running, &w.queue) {
        (Some(max), _) => format!("{} of {max} slots held", w.holders.len()),
        (None, Some(_)) => "the CrewQueue does not exist (yet)".to_string(),
        (None, None) => format!("{} running", w.holders.len()),
    };
    let place = if w.position == 0 {
        "not waiting for a slot".to_string()
    } else {
        format!("position {} of {} waiting", w.position, w.waiting)
    };
    let mut text = format!("{place} in {line}; {limit}");
    if !w.holders.is_empty() {
        const SHOWN: usize = 5;
        let names: Vec<&str> = w.holders.iter().take(SHOWN).map(String::as_str).collect();
        text.push_str(&format!(" by {}", names.join(", ")));
        if w.holders.len() > SHOWN {
            text.push_str(&format!(" and {} more", w.holders.len() - SHOWN));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crew_core::lifecycle::Admission;
    use serde_json::json;

    fn execution(name: &str, created: &str, phase: &str) -> CrewExecution {
        serde_json::from_value(json!({
            "apiVersion": "crew.dev/v1alpha1", "kind": "CrewExecution",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "creationTimestamp": created},
            "spec": {"queue": "gpu", "steps": [{"name": "s", "image": "busybox"}]},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    fn job_of(owner: &str, labelled: bool, status: serde_json::Value) -> Job {
        let mut labels = json!({"crew.dev/execution": owner});
        if labelled {
            labels["crew.dev/step"] = json!("s");
            labels["crew.dev/attempt"] = json!("1");
        }
        serde_json::from_value(json!({
            "metadata": {"name": format!("{owner}-s-1"), "namespace": "ns", "labels": labels,
                         "ownerReferences": [{"apiVersion": "crew.dev/v1alpha1", "kind": "CrewExecution",
                                              "name": owner, "uid": format!("uid-{owner}"), "controller": true}]},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn only_jobs_that_run_make_their_owner_hold() {
        let jobs = [
            job_of("runs", true, json!({"active": 1})),
            job_of(
                "done",
                true,
                json!({"conditions": [{"type": "Complete", "status": "True"}]}),
            ),
            job_of("unlabelled", false, json!({"active": 1})),
        ];
        assert_eq!(
            running_owners(&jobs),
            HashSet::from(["uid-runs".to_string()])
        );
    }

    /// A member whose Running status write was lost after its Job create holds its slot for the operator (its
    /// book counts the running Job); `describe` counts it too.
    #[test]
    fn a_member_whose_job_runs_holds_a_slot_whatever_its_status_says() {
        for status in ["Queued", "Pending"] {
            let lost_write = execution("lost-write", "2026-01-01T00:00:01Z", status);
            let next = execution("next", "2026-01-01T00:00:05Z", "Queued");
            let line = [lost_write.clone(), next.clone()];
            let jobs = [job_of("lost-write", true, json!({"active": 1}))];

            let shown = waiting(&next, &line, &running_owners(&jobs), Some(1), false);
            assert_eq!(
                shown,
                Waiting {
                    queue: Some("gpu".into()),
                    max_running: Some(1),
                    position: 1,
                    waiting: 1,
                    holders: vec!["lost-write".into()],
                },
                "{status}"
            );
            assert_eq!(
                sentence(&shown),
                "position 1 of 1 waiting in queue \"gpu\"; 1 of 1 slots held by lost-write"
            );
            let own = waiting(&lost_write, &line, &running_owners(&jobs), Some(1), false);
            assert_eq!(
                (own.position, own.waiting),
                (0, 1),
                "{status}: it does not wait"
            );

            // The operator's book, fed as its watches feed it, makes `next` wait for the same slot.
            let mut book = QueueBook::default();
            for cx in &line {
                book.apply(Entry::of(cx));
            }
            for record in jobs.iter().filter_map(summarise_job) {
                if let Some(owner) = &record.owner_uid {
                    book.set_running_job(owner, record.runs());
                }
            }
            let line_id = LineId::of_execution(&next);
            assert_eq!(
                book.admit(
                    &line_id,
                    &key_of(&next),
                    "gpu",
                    Some(1),
                    jiff::Timestamp::UNIX_EPOCH
                ),
                Admission::Wait {
                    queue: "gpu".into(),
                    position: 1
                },
                "{status}"
            );

            let without_jobs = waiting(&next, &line, &HashSet::new(), Some(1), false);
            assert_eq!(
                (
                    without_jobs.position,
                    without_jobs.waiting,
                    without_jobs.holders.len()
                ),
                (2, 2, 0),
                "{status}: by the statuses alone both wait, lost-write first"
            );
        }
    }
}
