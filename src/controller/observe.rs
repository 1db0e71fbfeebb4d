//! Summaries of the Jobs and pods the operator watches, and the snapshot handed to the core.

use crew_core::build::labels;
use crew_core::build::worker_job::WORKER_CONTAINER;
use crew_core::lifecycle::{JobState, ObservedJob, WorkerOutcome};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

/// A Job as the index keeps it: the core's summary minus what depends on who asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRecord {
    /// Summary (with `owned` false and `worker` unset).
    pub summary: ObservedJob,
    /// UID of the Job's controller owner.
    pub owner_uid: Option<String>,
    /// The Job's own UID (its pods carry it in `batch.kubernetes.io/controller-uid`).
    pub uid: Option<String>,
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
    let owner_uid = job
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.clone());
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
            deleting: job.metadata.deletion_timestamp.is_some(),
        },
        owner_uid,
        uid: job.uid(),
    })
}

/// The worker outcome of a terminated pod, as its Job will claim it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodOutcome {
    /// UID of the Job that made the pod (`batch.kubernetes.io/controller-uid`): a Job deleted and created again
    /// under the same name must not take its predecessor's outcome. None on pods without the label.
    pub job_uid: Option<String>,
    /// The worker's termination.
    pub outcome: WorkerOutcome,
}

/// The Job name and worker outcome of a pod whose worker container terminated.
pub fn pod_outcome(pod: &Pod) -> Option<(String, PodOutcome)> {
    let job = pod.labels().get("job-name")?.clone();
    let job_uid = pod
        .labels()
        .get("batch.kubernetes.io/controller-uid")
        .or_else(|| pod.labels().get("controller-uid"))
        .cloned();
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let worker = statuses
        .iter()
        .find(|c| c.name == WORKER_CONTAINER)
        .or_else(|| statuses.first())?;
    let terminated = worker.state.as_ref()?.terminated.as_ref()?;
    Some((
        job,
        PodOutcome {
            job_uid,
            outcome: WorkerOutcome {
                exit_code: terminated.exit_code,
                reason: terminated.reason.clone(),
                message: terminated.message.clone().filter(|m| !m.is_empty()),
            },
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
        let (job, PodOutcome { job_uid, outcome }) = pod_outcome(&pod).unwrap();
        assert_eq!((job.as_str(), job_uid.as_deref()), ("x-main-1", Some("j1")));
        assert_eq!(
            (outcome.exit_code, outcome.message.as_deref()),
            (3, Some("{\"score\": 1}"))
        );
    }
}
