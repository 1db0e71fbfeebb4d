//! Per-step view derived from the owned Jobs, falling back to what status recorded when a Job is gone.

use crate::lifecycle::timefmt::seconds_between;
use crate::lifecycle::{JobState, ObservedJob, ResolvedStep};
use crew_api::{CrewExecutionStatus, StepPhase, StepStatus};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Largest stored result; longer termination messages are cut and marked.
pub const MAX_RESULT_BYTES: usize = 4096;
/// Marker appended to a truncated result.
pub const TRUNCATION_MARKER: &str = "…[truncated]";
/// How long a finished Job's pod may lag behind it in the cache before the outcome is recorded without it.
pub const POD_GRACE_SECONDS: i64 = 10;
/// How long a worker may take to start when neither the spec nor the operator says otherwise.
pub const DEFAULT_START_TIMEOUT_SECONDS: i64 = 600;
/// How long a Job may have no pod before the operator asks the Job controller's Events why.
pub const NO_POD_SECONDS: i64 = 10;
/// How long a Job recorded as created may be missing from the cache before its attempt counts as lost.
pub const LOST_JOB_SECONDS: i64 = 60;

/// Where one step stands.
#[derive(Clone, Debug, PartialEq)]
pub enum StepView {
    /// No attempt yet.
    NotStarted,
    /// Status records attempt `attempt` as created but its Job is not (yet) in the cache.
    Launched {
        attempt: u32,
        since: Option<Timestamp>,
    },
    /// The attempt's Job runs.
    Active { attempt: u32 },
    /// The latest attempt finished.
    Finished {
        attempt: u32,
        succeeded: bool,
        finished: Timestamp,
    },
    /// The Job finished but its pod's termination is not in the cache yet: wait a moment.
    AwaitingPod,
}

/// One step: its spec, its view and the status entry that view implies.
#[derive(Clone, Debug)]
pub struct StepRecord {
    /// Resolved spec of the step.
    pub spec: ResolvedStep,
    /// Where it stands.
    pub view: StepView,
    /// What `status.steps[]` shows for it.
    pub status: StepStatus,
    /// What status showed before this reconcile.
    pub recorded: Option<StepStatus>,
}

impl StepRecord {
    /// Whether the latest attempt succeeded.
    pub fn succeeded(&self) -> bool {
        matches!(
            self.view,
            StepView::Finished {
                succeeded: true,
                ..
            }
        )
    }

    /// Whether this reconcile is the first to see the latest attempt finished.
    pub fn newly_finished(&self) -> bool {
        match (&self.view, &self.recorded) {
            (StepView::Finished { attempt, .. }, Some(r)) => {
                r.attempt != *attempt || matches!(r.phase, StepPhase::Pending | StepPhase::Running)
            }
            (StepView::Finished { .. }, None) => true,
            _ => false,
        }
    }
}

/// Views of every step, in order.
pub fn step_records(
    steps: Vec<ResolvedStep>,
    jobs: &[ObservedJob],
    previous: &CrewExecutionStatus,
    now: Timestamp,
) -> Vec<StepRecord> {
    steps
        .into_iter()
        .map(|spec| {
            let recorded = previous.steps.iter().find(|s| s.name == spec.name).cloned();
            let latest = jobs
                .iter()
                .filter(|j| j.owned && j.step == spec.name)
                .max_by_key(|j| j.attempt);
            let (view, status) = view_of(&spec.name, latest, recorded.as_ref(), now);
            StepRecord {
                spec,
                view,
                status,
                recorded,
            }
        })
        .collect()
}

fn view_of(
    name: &str,
    latest: Option<&ObservedJob>,
    recorded: Option<&StepStatus>,
    now: Timestamp,
) -> (StepView, StepStatus) {
    let recorded_attempt = recorded.map_or(0, |r| r.attempt);
    let attempt = latest.map_or(0, |j| j.attempt).max(recorded_attempt);
    let pending = StepStatus {
        name: name.to_string(),
        ..Default::default()
    };
    if let Some(job) = latest.filter(|j| j.attempt == attempt && attempt > 0) {
        return view_of_job(name, job, recorded.filter(|r| r.attempt == attempt), now);
    }
    match recorded.filter(|r| r.attempt == attempt && attempt > 0) {
        None => (StepView::NotStarted, pending),
        Some(r) => match r.phase {
            phase if is_finished(phase) => {
                let finished = r.completion_time.as_ref().map_or(now, |t| t.0);
                let succeeded = r.phase == StepPhase::Succeeded;
                (
                    StepView::Finished {
                        attempt,
                        succeeded,
                        finished,
                    },
                    r.clone(),
                )
            }
            _ => (
                StepView::Launched {
                    attempt,
                    since: r.start_time.as_ref().map(|t| t.0),
                },
                r.clone(),
            ),
        },
    }
}

fn view_of_job(
    name: &str,
    job: &ObservedJob,
    recorded: Option<&StepStatus>,
    now: Timestamp,
) -> (StepView, StepStatus) {
    let start = recorded
        .and_then(|r| r.start_time.as_ref().map(|t| t.0))
        .or(job.created)
        .or(job.started);
    let mut status = StepStatus {
        name: name.to_string(),
        phase: StepPhase::Running,
        attempt: job.attempt,
        job_name: Some(job.name.clone()),
        start_time: start.map(Time),
        ..Default::default()
    };
    let finished = job.finished.unwrap_or(now);
    // An outcome once recorded is kept as written: the pod may since have been deleted (pod GC, by hand) or be
    // missing from a fresh list, and rebuilding would drop its result and exit code. That holds for a Job still
    // active too: the operator ended the attempt itself (`StartTimeout`) and deletes the Job.
    if let Some(recorded) = recorded.filter(|r| is_finished(r.phase)) {
        return (
            StepView::Finished {
                attempt: job.attempt,
                succeeded: recorded.phase == StepPhase::Succeeded,
                finished: recorded.completion_time.as_ref().map_or(finished, |t| t.0),
            },
            recorded.clone(),
        );
    }
    if job.state == JobState::Active {
        return (
            StepView::Active {
                attempt: job.attempt,
            },
            status,
        );
    }
    let deadline = job.failure_reason.as_deref() == Some("DeadlineExceeded");
    let seen = job.seen_finished.unwrap_or(finished);
    if job.worker.is_none() && !deadline && seconds_between(seen, now) < POD_GRACE_SECONDS {
        return (StepView::AwaitingPod, status);
    }
    let succeeded = job.state == JobState::Succeeded;
    status.phase = if succeeded {
        StepPhase::Succeeded
    } else {
        StepPhase::Failed
    };
    status.completion_time = Some(Time(finished));
    status.duration_seconds = start.map(|s| seconds_between(s, finished));
    status.exit_code = job.worker.as_ref().map(|w| w.exit_code);
    // A result the attempt posted is its result (a preview here, the whole in its ConfigMap); else its
    // termination message.
    match job.posted.as_ref().filter(|p| p.attempt == job.attempt) {
        Some(posted) => {
            status.result = Some(posted.preview.clone());
            status.result_ref = Some(posted.reference());
        }
        None => {
            status.result = job
                .worker
                .as_ref()
                .and_then(|w| w.message.as_deref())
                .map(truncate_result);
        }
    }
    status.message = Some(super::text::bounded_message(outcome_message(
        job, succeeded,
    )));
    (
        StepView::Finished {
            attempt: job.attempt,
            succeeded,
            finished,
        },
        status,
    )
}

/// Whether a recorded step attempt has ended (its outcome is written).
pub(crate) fn is_finished(phase: StepPhase) -> bool {
    matches!(
        phase,
        StepPhase::Succeeded | StepPhase::Failed | StepPhase::Retrying | StepPhase::Cancelled
    )
}

fn outcome_message(job: &ObservedJob, succeeded: bool) -> String {
    if succeeded {
        return "succeeded".into();
    }
    if job.failure_reason.as_deref() == Some("DeadlineExceeded") {
        return format!(
            "timed out: {}",
            job.failure_message
                .as_deref()
                .unwrap_or("step deadline exceeded")
        );
    }
    match &job.worker {
        Some(w) => format!(
            "exit code {}{}",
            w.exit_code,
            w.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        None => job
            .failure_message
            .clone()
            .unwrap_or_else(|| "the Job failed".into()),
    }
}

/// `text` cut to at most [`MAX_RESULT_BYTES`] bytes (on a character boundary), with a marker when cut.
pub fn truncate_result(text: &str) -> String {
    if text.len() <= MAX_RESULT_BYTES {
        return text.to_string();
    }
    let kept = super::text::prefix_within(text, MAX_RESULT_BYTES - TRUNCATION_MARKER.len());
    format!("{kept}{TRUNCATION_MARKER}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_results_are_kept() {
        assert_eq!(truncate_result("ok"), "ok");
        let exact = "x".repeat(MAX_RESULT_BYTES);
        assert_eq!(truncate_result(&exact), exact);
    }

    #[test]
    fn long_results_are_cut_with_a_marker() {
        let cut = truncate_result(&"é".repeat(5000));
        assert!(cut.len() <= MAX_RESULT_BYTES);
        assert!(cut.ends_with(TRUNCATION_MARKER));
    }

    proptest! {
        #[test]
        fn results_never_exceed_the_limit(text in ".{0,3000}") {
            let doubled = text.repeat(2);
            let cut = truncate_result(&doubled);
            prop_assert!(cut.len() <= MAX_RESULT_BYTES);
            if doubled.len() <= MAX_RESULT_BYTES { prop_assert_eq!(cut, doubled); }
        }
    }
}
