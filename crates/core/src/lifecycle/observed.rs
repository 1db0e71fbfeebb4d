//! The snapshot `decide` works from: the execution as cached plus a summary of the Jobs it owns.

use crew_api::{CrewExecutionSpec, CrewExecutionStatus};
use jiff::Timestamp;

/// Where a Job stands, as the Job controller reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Created, pod pending or running.
    Active,
    /// The Job's `Complete` condition is true.
    Succeeded,
    /// The Job's `Failed` condition is true (pod failed, deadline exceeded, ...).
    Failed,
}

/// What the worker container's termination said (from the Job's pod).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerOutcome {
    /// Exit code of the worker container.
    pub exit_code: i32,
    /// The container runtime's short reason (`Completed`, `Error`, `OOMKilled`, ...).
    pub reason: Option<String>,
    /// The termination message the worker wrote (its result).
    pub message: Option<String>,
}

/// Why a worker pod does not start: the scheduler cannot place it (`Unschedulable`), or its container waits for
/// something that will not come by itself (`ImagePullBackOff`, `CreateContainerConfigError`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartBlock {
    /// Short reason (`ErrImagePull` is reported as `ImagePullBackOff`: the two alternate while the kubelet retries).
    pub reason: String,
    /// The scheduler's or the kubelet's message.
    pub message: String,
}

/// The object that controls a Job: its controller owner reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobController {
    /// `apiVersion` of the owner (`crew.dev/v1alpha1` for an execution).
    pub api_version: String,
    /// Kind of the owner (`CrewExecution` for ours).
    pub kind: String,
    /// Name of the owner.
    pub name: String,
    /// UID of the owner.
    pub uid: String,
}

impl JobController {
    /// Whether the owner is a CrewExecution named `name` (this execution, or an earlier one of the same name).
    pub fn is_execution_named(&self, name: &str) -> bool {
        self.kind == "CrewExecution"
            && self.api_version.split('/').next() == Some(crew_api::GROUP)
            && self.name == name
    }
}

/// One Job labelled as belonging to the execution, summarised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedJob {
    /// Job name.
    pub name: String,
    /// `crew.dev/step` label.
    pub step: String,
    /// `crew.dev/attempt` label.
    pub attempt: u32,
    /// Whether the Job's controller owner reference is this execution (same UID). Jobs of a deleted execution
    /// with the same name are not ours.
    pub owned: bool,
    /// The Job's controller owner, if it has one (None: orphaned, or never owned).
    pub controller: Option<JobController>,
    /// Job controller's verdict.
    pub state: JobState,
    /// Creation time.
    pub created: Option<Timestamp>,
    /// `status.startTime`.
    pub started: Option<Timestamp>,
    /// When it succeeded or failed (the Job controller's clock).
    pub finished: Option<Timestamp>,
    /// When the operator first saw it finished, on the operator's own clock: the wait for its pod's outcome counts
    /// from here, so neither clock skew nor a lagging watch shortens or stretches it.
    pub seen_finished: Option<Timestamp>,
    /// Reason of the Job's `Failed` condition (`DeadlineExceeded`, `BackoffLimitExceeded`).
    pub failure_reason: Option<String>,
    /// Message of the Job's `Failed` condition.
    pub failure_message: Option<String>,
    /// The worker's termination, once its pod is seen terminated.
    pub worker: Option<WorkerOutcome>,
    /// Whether its pod has been seen at all.
    pub pod_seen: bool,
    /// Whether its worker container has started (running or terminated).
    pub pod_started: bool,
    /// Why its pod does not start, while it does not.
    pub start_blocked: Option<StartBlock>,
    /// Whether the Job is being deleted.
    pub deleting: bool,
    /// The result its step's worker posted (`POST /v1/result`), when the last post came from this attempt.
    pub posted: Option<super::results::PostedResult>,
}

/// Whether the execution may take a running slot now.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Admission {
    /// A slot is free (or no limit applies).
    #[default]
    Admitted,
    /// All slots of the queue are taken; `position` counts from 1.
    Wait {
        /// Queue name (or `*` for the operator-wide limit).
        queue: String,
        /// Place in the admission order.
        position: u32,
    },
    /// `spec.queue` names a CrewQueue that does not exist.
    QueueNotFound(String),
}

/// The API server refused to create the Job a plan launched; the shell decides again with it in [`Observed`], so
/// the refusal becomes a failed step attempt with reason `JobRejected` instead of a silent error loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRejection {
    /// The Job's name.
    pub job_name: String,
    /// No retry can cure it: 400 Bad Request or 422 Invalid (the spec makes an invalid Job). Otherwise it may pass
    /// later (quota exceeded, an admission policy, 429, 5xx) and the retry policy applies.
    pub permanent: bool,
    /// The API server's message.
    pub message: String,
}

/// Everything `decide` needs, and nothing it should not see.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// Execution name.
    pub name: &'a str,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Desired state.
    pub spec: &'a CrewExecutionSpec,
    /// Status as last written (None before the first write).
    pub status: Option<&'a CrewExecutionStatus>,
    /// Jobs carrying this execution's label (owned or not).
    pub jobs: &'a [ObservedJob],
    /// Queue verdict.
    pub admission: Admission,
    /// The Job create this reconcile's first plan attempted and the API server refused (None: none refused).
    pub rejected: Option<JobRejection>,
    /// A Job the status records as created that the cache had not shown for
    /// [`LOST_JOB_SECONDS`](crate::lifecycle::steps::LOST_JOB_SECONDS) and that a fresh read from the API server
    /// found missing too ([`Read::Job`](crate::lifecycle::Read::Job)): only then is it lost.
    pub missing_job: Option<String>,
    /// Start timeout when `spec.startTimeoutSeconds` is unset (the operator's `--start-timeout-seconds`).
    pub default_start_timeout_seconds: i64,
    /// Why the Job controller could not create the pod of the Job a plan asked about
    /// ([`Read::PodRefusal`](crate::lifecycle::Read::PodRefusal)): its latest `FailedCreate` Event.
    pub pod_refused: Option<StartBlock>,
    /// What the read of the ServiceAccount a launch asked about found
    /// ([`Read::ServiceAccount`](crate::lifecycle::Read::ServiceAccount)).
    pub service_account: Option<super::worker_policy::ServiceAccountFact>,
    /// What workers may use (pod annotations and labels are checked here, before the first launch).
    pub worker_policy: &'a super::worker_policy::WorkerPolicy,
    /// What the current attempt's worker has reported (the shell's in-memory book of `POST /v1/progress`).
    pub report: Option<&'a super::report::AttemptReports>,
    /// Whether the report may be written now (the progress interval since the last write has passed). A status
    /// write for another reason carries the latest report anyway.
    pub report_due: bool,
    /// Whether a feature needs the execution kept until it is done with it (a sink will be told more of it, or has
    /// not delivered everything of it yet): the operator's finalizer must be on it.
    pub retain: bool,
    /// Whether the execution carries the operator's finalizer.
    pub has_finalizer: bool,
    /// What the archive holds of the execution ([`ArchiveFact::Off`] without an archive). A finished run records
    /// it in its `Archived` condition, and its TTL waits for it.
    pub archive: ArchiveFact,
    /// The execution `spec.resumeFrom` names, as cached, while the run has not started (None: it names none, or
    /// it does not exist).
    pub resume_source: Option<ResumeSource>,
    /// Since when this replica acts for the execution (start-up or leadership): a stall is never counted from
    /// before it, since reports sent to another replica were not seen here.
    pub acting_since: Option<Timestamp>,
}

/// What the archive holds of one execution, as the shell's archiver knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ArchiveFact {
    /// The operator runs without an archive.
    #[default]
    Off,
    /// Not stored yet (it has not finished, or its write is on its way).
    Pending,
    /// Storing it failed; it is retried. The message says why, in words that stay the same across retries.
    Failing(String),
    /// Stored.
    Committed,
}

/// What a run resuming from another execution takes from it.
#[derive(Clone, Debug, PartialEq)]
pub struct ResumeSource {
    /// Its UID (recorded in the history entry).
    pub uid: String,
    /// Its steps' recorded outcomes.
    pub steps: Vec<crew_api::StepStatus>,
}
