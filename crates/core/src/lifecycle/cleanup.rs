//! `spec.jobCleanup`: which finished Jobs may go. Only a Job whose attempt's outcome the status records: once it
//! is gone, the step's view comes from that record (`steps::view_of`), so deleting it loses nothing the run needs.

use crate::lifecycle::steps::is_finished;
use crate::lifecycle::{JobState, ObservedJob};
use crew_api::{CrewExecutionStatus, JobCleanup, StepPhase};

/// Names of the owned, finished Jobs that `policy` lets go, given the status that is stored (or written by the
/// same plan, before the deletes).
pub fn released_jobs(
    jobs: &[ObservedJob],
    status: &CrewExecutionStatus,
    policy: Option<JobCleanup>,
) -> Vec<String> {
    let policy = policy.unwrap_or_default();
    jobs.iter()
        .filter(|job| job.owned && job.state != JobState::Active && !job.deleting)
        .filter(|job| {
            status
                .steps
                .iter()
                .find(|s| s.name == job.step)
                .is_some_and(|step| {
                    // An earlier attempt failed (only a failed attempt is retried) and its end is in history; the latest
                    // one's end is recorded once its phase is; otherwise its outcome is still read from the Job.
                    let earlier = job.attempt < step.attempt;
                    let ended = job.attempt == step.attempt && is_finished(step.phase);
                    match policy {
                        JobCleanup::Keep => false,
                        JobCleanup::OnStepCompletion => earlier || ended,
                        JobCleanup::OnStepSuccess => ended && step.phase == StepPhase::Succeeded,
                    }
                })
        })
        .map(|job| job.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crew_api::StepStatus;

    fn job(step: &str, attempt: u32, state: JobState) -> ObservedJob {
        ObservedJob {
            name: format!("run-{step}-{attempt}"),
            step: step.into(),
            attempt,
            owned: true,
            controller: None,
            state,
            created: None,
            started: None,
            finished: None,
            seen_finished: None,
            failure_reason: None,
            failure_message: None,
            worker: None,
            pod_seen: true,
            pod_started: true,
            start_blocked: None,
            deleting: false,
            posted: None,
        }
    }

    fn step(name: &str, attempt: u32, phase: StepPhase) -> StepStatus {
        StepStatus {
            name: name.into(),
            attempt,
            phase,
            ..Default::default()
        }
    }

    /// s1 succeeded; s2's attempt 1 failed and attempt 2 runs; s3's Job finished but status does not say so yet;
    /// s4 retries after its attempt 1 failed.
    fn scene() -> (Vec<ObservedJob>, CrewExecutionStatus) {
        let jobs = vec![
            job("s1", 1, JobState::Succeeded),
            job("s2", 1, JobState::Failed),
            job("s2", 2, JobState::Active),
            job("s3", 1, JobState::Succeeded),
            job("s4", 1, JobState::Failed),
        ];
        let status = CrewExecutionStatus {
            steps: vec![
                step("s1", 1, StepPhase::Succeeded),
                step("s2", 2, StepPhase::Running),
                step("s3", 1, StepPhase::Running),
                step("s4", 1, StepPhase::Retrying),
            ],
            ..Default::default()
        };
        (jobs, status)
    }

    #[test]
    fn keep_releases_nothing() {
        let (jobs, status) = scene();
        assert!(released_jobs(&jobs, &status, None).is_empty());
        assert!(released_jobs(&jobs, &status, Some(JobCleanup::Keep)).is_empty());
    }

    #[test]
    fn on_step_completion_releases_every_recorded_end() {
        let (jobs, status) = scene();
        assert_eq!(
            released_jobs(&jobs, &status, Some(JobCleanup::OnStepCompletion)),
            ["run-s1-1", "run-s2-1", "run-s4-1"]
        );
    }

    #[test]
    fn on_step_success_keeps_failed_attempts() {
        let (jobs, status) = scene();
        assert_eq!(
            released_jobs(&jobs, &status, Some(JobCleanup::OnStepSuccess)),
            ["run-s1-1"]
        );
    }

    #[test]
    fn foreign_deleting_and_unknown_jobs_stay() {
        let (_, status) = scene();
        let mut foreign = job("s1", 1, JobState::Succeeded);
        foreign.owned = false;
        let mut deleting = job("s1", 1, JobState::Succeeded);
        deleting.deleting = true;
        let unknown = job("gone", 1, JobState::Succeeded);
        let jobs = [foreign, deleting, unknown];
        assert!(released_jobs(&jobs, &status, Some(JobCleanup::OnStepCompletion)).is_empty());
    }
}
