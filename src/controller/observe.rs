//! Summaries of the Jobs and pods the operator watches, and the snapshot handed to the core.

use crew_core::build::labels;
use crew_core::build::worker_job::WORKER_CONTAINER;
use crew_core::lifecycle::{JobState, ObservedJob, StartBlock, WorkerOutcome};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;

/// A Job as the index keeps it: the core's summary minus what depends on who asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRecord {
    /// Summary (with `owned` false and `worker` unset).
    pub summary: ObservedJob,
    /// UID of the Job's controller owner.
    pub owner_uid: Option<String>,
    /// Name of the Job's controller owner (the execution: its label may be a hash of a long name).
    pub owner_name: Option<String>,
    /// The Job's own UID (its pods carry it in `batch.kubernetes.io/controller-uid`).
    pub uid: Option<String>,
}

/// The owner reference of `job` that controls it (the execution, for our Jobs).
pub fn controller_of(job: &Job) -> Option<&OwnerReference> {
    job.owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
}

/// Summarises a labelled Job; `None` when it lacks our labels.
pub fn summarise_job(job: &Job) -> Option<JobRecord> {
    let labels = job.labels();
    let step = labels.get(labels::STEP)?.clone();
    let attempt = labels.get(labels::ATTEMPT)?.parse().ok()?;
    let status = job.status.as_ref();
    let condition = |type_: &str| {
        status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == type_ && c.status == "True"))
    };
    let (state, finished, failure_reason, failure_message) =
        if let Some(done) = condition("Complete") {
            let at = status
                .and_then(|s| s.completion_time.as_ref())
                .or(done.last_transition_time.as_ref());
            (JobState::Succeeded, at.map(|t| t.0), None, None)
        } else if let Some(failed) = condition("Failed") {
            let at = failed.last_transition_time.as_ref().map(|t| t.0);
            (
                JobState::Failed,
                at,
                failed.reason.clone(),
                failed.message.clone(),
            )
        } else {
            (JobState::Active, None, None, None)
        };
    let owner = controller_of(job);
    let owner_uid = owner.map(|o| o.uid.clone());
    let owner_name = owner.map(|o| o.name.clone());
    Some(JobRecord {
        summary: ObservedJob {
            name: job.name_any(),
            step,
            attempt,
            owned: false,
            state,
            created: job.metadata.creation_timestamp.as_ref().map(|t| t.0),
            started: status.and_then(|s| s.start_time.as_ref()).map(|t| t.0),
            finished,
            seen_finished: None,
            failure_reason,
            failure_message,
            worker: None,
            pod_seen: false,
            pod_started: false,
            start_blocked: None,
            deleting: job.metadata.deletion_timestamp.is_some(),
        },
        owner_uid,
        owner_name,
        uid: job.uid(),
    })
}

/// What a Job's pod says, as its Job will claim it: whether the worker started, why it cannot, or how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodReport {
    /// UID of the Job that made the pod (`batch.kubernetes.io/controller-uid`): a Job deleted and created again
    /// under the same name must not take its predecessor's outcome. None on pods without the label.
    pub job_uid: Option<String>,
    /// The worker's termination, once it terminated.
    pub outcome: Option<WorkerOutcome>,
    /// Whether the worker container has started (running or terminated), or the pod is past `Pending`.
    pub started: bool,
    /// Why the pod does not start, while it does not.
    pub blocked: Option<StartBlock>,
}

/// Container waiting reasons that do not clear by themselves: the pod is stuck until someone acts.
const BLOCKING_WAITS: [&str; 7] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// The Job name and report of a Job's pod (None for a pod that is no Job's).
pub fn pod_report(pod: &Pod) -> Option<(String, PodReport)> {
    let job = pod.labels().get("job-name")?.clone();
    let job_uid = pod
        .labels()
        .get("batch.kubernetes.io/controller-uid")
        .or_else(|| pod.labels().get("controller-uid"))
        .cloned();
    let status = pod.status.as_ref();
    let statuses = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    let worker = statuses
        .iter()
        .find(|c| c.name == WORKER_CONTAINER)
        .or_else(|| statuses.first());
    let state = worker.and_then(|w| w.state.as_ref());
    let outcome = state
        .and_then(|s| s.terminated.as_ref())
        .map(|terminated| WorkerOutcome {
            exit_code: terminated.exit_code,
            reason: terminated.reason.clone(),
            message: terminated.message.clone().filter(|m| !m.is_empty()),
        });
    let past_pending = status
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|phase| phase != "Pending");
    let started = outcome.is_some() || state.is_some_and(|s| s.running.is_some()) || past_pending;
    let blocked = if started {
        None
    } else {
        let waiting = state
            .and_then(|s| s.waiting.as_ref())
            .filter(|w| {
                w.reason
                    .as_deref()
                    .is_some_and(|r| BLOCKING_WAITS.contains(&r))
            })
            .map(|w| StartBlock {
                reason: match w.reason.as_deref() {
                    Some("ErrImagePull") => "ImagePullBackOff".to_string(),
                    other => other.unwrap_or_default().to_string(),
                },
                message: w.message.clone().unwrap_or_default(),
            });
        waiting.or_else(|| {
            status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| {
                    cs.iter().find(|c| {
                        c.type_ == "PodScheduled"
                            && c.status == "False"
                            && c.reason.as_deref() == Some("Unschedulable")
                    })
                })
                .map(|c| StartBlock {
                    reason: "Unschedulable".to_string(),
                    message: c.message.clone().unwrap_or_default(),
                })
        })
    };
    Some((
        job,
        PodReport {
            job_uid,
            outcome,
            started,
            blocked,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(status: serde_json::Value) -> Job {
        serde_json::from_value(json!({
            "metadata": {
                "name": "x-main-1", "namespace": "ns", "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"crew.dev/execution": "x", "crew.dev/step": "main", "crew.dev/attempt": "1"},
                "ownerReferences": [{"apiVersion": "crew.dev/v1alpha1", "kind": "CrewExecution", "name": "x", "uid": "u1", "controller": true}]
            },
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn job_states() {
        let active = summarise_job(&job(
            json!({"active": 1, "startTime": "2026-01-01T00:00:01Z"}),
        ))
        .unwrap();
        assert_eq!(
            (active.summary.state, active.owner_uid.as_deref()),
            (JobState::Active, Some("u1"))
        );
        assert_eq!(active.summary.attempt, 1);
        let done = summarise_job(&job(json!({"completionTime": "2026-01-01T00:00:09Z",
            "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2026-01-01T00:00:09Z"}]}))).unwrap();
        assert_eq!(done.summary.state, JobState::Succeeded);
        assert_eq!(
            done.summary.finished.unwrap().to_string(),
            "2026-01-01T00:00:09Z"
        );
        let failed = summarise_job(&job(json!({"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
            "message": "Job was active longer than specified deadline", "lastTransitionTime": "2026-01-01T00:00:05Z"}]}))).unwrap();
        assert_eq!(
            (
                failed.summary.state,
                failed.summary.failure_reason.as_deref()
            ),
            (JobState::Failed, Some("DeadlineExceeded"))
        );
    }

    #[test]
    fn pod_termination_becomes_outcome() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "x-main-1-abcde", "labels": {"job-name": "x-main-1", "batch.kubernetes.io/controller-uid": "j1"}},
            "status": {"phase": "Failed", "containerStatuses": [{"name": "worker", "image": "w", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 3, "reason": "Error", "message": "{\"score\": 1}"}}}]}
        }))
        .unwrap();
        let (job, report) = pod_report(&pod).unwrap();
        assert_eq!(
            (job.as_str(), report.job_uid.as_deref(), report.started),
            ("x-main-1", Some("j1"), true)
        );
        let outcome = report.outcome.unwrap();
        assert_eq!(
            (outcome.exit_code, outcome.message.as_deref()),
            (3, Some("{\"score\": 1}"))
        );
    }

    fn pending_pod(status: serde_json::Value) -> PodReport {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "x-main-1-abcde", "labels": {"job-name": "x-main-1"}},
            "status": status,
        }))
        .unwrap();
        pod_report(&pod).unwrap().1
    }

    #[test]
    fn a_pod_that_cannot_start_says_why() {
        let waiting = |reason: &str| {
            pending_pod(
                json!({"phase": "Pending", "containerStatuses": [{"name": "worker", "image": "w",
                "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": reason, "message": "details"}}}]}),
            )
        };
        for (seen, reported) in [
            ("ErrImagePull", "ImagePullBackOff"),
            ("ImagePullBackOff", "ImagePullBackOff"),
            ("CreateContainerConfigError", "CreateContainerConfigError"),
        ] {
            let report = waiting(seen);
            assert!(!report.started);
            assert_eq!(
                report.blocked,
                Some(StartBlock {
                    reason: reported.into(),
                    message: "details".into()
                })
            );
        }
        let creating = waiting("ContainerCreating");
        assert!(
            !creating.started && creating.blocked.is_none(),
            "on its way"
        );
        let unschedulable = pending_pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
            "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available"}]}),
        );
        assert_eq!(
            unschedulable.blocked.map(|b| (b.reason, b.message)),
            Some(("Unschedulable".into(), "0/3 nodes are available".into()))
        );
        let running = pending_pod(
            json!({"phase": "Running", "containerStatuses": [{"name": "worker",
            "image": "w", "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {}}}]}),
        );
        assert!(running.started && running.blocked.is_none() && running.outcome.is_none());
    }
}
