//! What a Job's pod says about its worker: whether it started, why it cannot, or how it ended ([`pod_report`]).
//! The operator's child index hands the report to the pod's Job, and `decide` reads it from there.

use super::{StartBlock, WorkerOutcome};
use crate::build::worker_job::WORKER_CONTAINER;
use k8s_openapi::api::core::v1::Pod;
use kube_core::ResourceExt;

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
