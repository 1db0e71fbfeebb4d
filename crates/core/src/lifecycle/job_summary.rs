//! What a Job says, read once for everyone: the Job controller's verdict on it ([`job_verdict`]), its summary as
//! the operator keeps it ([`summarise_job`]), and the execution that controls it ([`controller_of`]). The operator's
//! child index and `kubectl crew describe` both classify Jobs here, so they never disagree on a Job's state.

use super::{JobController, JobState, ObservedJob};
use crate::build::labels;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube_core::ResourceExt;

/// A Job as the operator's index keeps it: the core's summary minus what depends on who asks.
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

impl JobRecord {
    /// Whether the Job runs: active and not being deleted. Its owner holds a running slot whatever its written
    /// phase says (a status write lost after the Job create).
    pub fn runs(&self) -> bool {
        self.summary.state == JobState::Active && !self.summary.deleting
    }
}

/// The Job controller's verdict on a Job, from its `Complete` and `Failed` conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobVerdict {
    /// Active, succeeded or failed.
    pub state: JobState,
    /// When it succeeded (`status.completionTime`, else the condition's transition) or failed.
    pub finished: Option<Timestamp>,
    /// Reason of the `Failed` condition.
    pub failure_reason: Option<String>,
    /// Message of the `Failed` condition.
    pub failure_message: Option<String>,
}

/// The owner reference of `job` that controls it (the execution, for our Jobs).
pub fn controller_of(job: &Job) -> Option<&OwnerReference> {
    job.owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
}

/// The Job controller's verdict on `job`: `Complete` wins over `Failed`, and a Job with neither is active.
pub fn job_verdict(job: &Job) -> JobVerdict {
    let status = job.status.as_ref();
    let condition = |type_: &str| {
        status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == type_ && c.status == "True"))
    };
    if let Some(done) = condition("Complete") {
        let at = status
            .and_then(|s| s.completion_time.as_ref())
            .or(done.last_transition_time.as_ref());
        JobVerdict {
            state: JobState::Succeeded,
            finished: at.map(|t| t.0),
            failure_reason: None,
            failure_message: None,
        }
    } else if let Some(failed) = condition("Failed") {
        JobVerdict {
            state: JobState::Failed,
            finished: failed.last_transition_time.as_ref().map(|t| t.0),
            failure_reason: failed.reason.clone(),
            failure_message: failed.message.clone(),
        }
    } else {
        JobVerdict {
            state: JobState::Active,
            finished: None,
            failure_reason: None,
            failure_message: None,
        }
    }
}

/// Summarises a labelled Job; `None` when it lacks our step and attempt labels.
pub fn summarise_job(job: &Job) -> Option<JobRecord> {
    let labels = job.labels();
    let step = labels.get(labels::STEP)?.clone();
    let attempt = labels.get(labels::ATTEMPT)?.parse().ok()?;
    let verdict = job_verdict(job);
    let owner = controller_of(job);
    let posted = job.metadata.annotations.as_ref().and_then(|annotations| {
        super::results::PostedResult::from_annotations(&step, attempt, annotations)
    });
    Some(JobRecord {
        summary: ObservedJob {
            name: job.name_any(),
            step,
            attempt,
            owned: false,
            controller: owner.map(|o| JobController {
                api_version: o.api_version.clone(),
                kind: o.kind.clone(),
                name: o.name.clone(),
                uid: o.uid.clone(),
            }),
            state: verdict.state,
            created: job.metadata.creation_timestamp.as_ref().map(|t| t.0),
            started: job
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0),
            finished: verdict.finished,
            seen_finished: None,
            failure_reason: verdict.failure_reason,
            failure_message: verdict.failure_message,
            worker: None,
            pod_seen: false,
            pod_started: false,
            start_blocked: None,
            deleting: job.metadata.deletion_timestamp.is_some(),
            posted,
        },
        owner_uid: owner.map(|o| o.uid.clone()),
        owner_name: owner.map(|o| o.name.clone()),
        uid: job.uid(),
    })
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
        let controller = active.summary.controller.as_ref().expect("controller");
        assert!(controller.is_execution_named("x"));
        assert!(!controller.is_execution_named("y"));
        let mut orphan = job(json!({"active": 1}));
        orphan.metadata.owner_references = None;
        assert_eq!(summarise_job(&orphan).unwrap().summary.controller, None);
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
    fn a_job_runs_while_active_and_not_deleted() {
        let mut record = summarise_job(&job(json!({"active": 1}))).unwrap();
        assert!(record.runs());
        record.summary.deleting = true;
        assert!(!record.runs(), "being deleted");
        let done = summarise_job(&job(json!({"conditions": [
            {"type": "Complete", "status": "True", "lastTransitionTime": "2026-01-01T00:00:09Z"}]})))
        .unwrap();
        assert!(!done.runs(), "finished");
    }

    #[test]
    fn the_verdict_needs_no_step_labels_and_reads_only_true_conditions() {
        let mut unlabelled = job(json!({"conditions": [
            {"type": "Failed", "status": "False"},
            {"type": "Complete", "status": "True", "lastTransitionTime": "2026-01-01T00:00:07Z"}]}));
        unlabelled.metadata.labels = None;
        assert!(summarise_job(&unlabelled).is_none());
        let verdict = job_verdict(&unlabelled);
        assert_eq!(verdict.state, JobState::Succeeded);
        assert_eq!(
            verdict.finished.map(|t| t.to_string()).as_deref(),
            Some("2026-01-01T00:00:07Z"),
            "the condition's time when completionTime is unset"
        );
        assert_eq!(job_verdict(&job(json!(null))).state, JobState::Active);
    }
}
