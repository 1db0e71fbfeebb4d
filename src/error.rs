//! Errors of the I/O shell. Variant names double as metric labels and Warning Event reasons.

use crew_core::build::BuildError;
use crew_core::lifecycle::JobRejection;

/// Why a reconcile failed (transient: retried with per-object backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done.
        action: &'static str,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// An object could not be built from the execution.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A Job with the deterministic name exists but another execution controls it.
    #[error("Job {0} exists but is not owned by this execution")]
    JobNameTaken(String),
    /// The API server refused a Job create (the reconcile decides again with it: the attempt fails).
    #[error("Job {} rejected: {}", .0.job_name, .0.message)]
    JobRejected(JobRejection),
    /// This replica's leadership lapsed (its last Lease renewal's deadline passed) before a write: nothing sent.
    #[error("not leading: the leader Lease was not renewed in time; {0} not sent")]
    NotLeading(&'static str),
}

impl Error {
    /// Short label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube",
            Error::Build(_) => "build",
            Error::JobNameTaken(_) => "job_name_taken",
            Error::JobRejected(_) => "job_rejected",
            Error::NotLeading(_) => "not_leading",
        }
    }
}

/// Wraps a client error with what was being done.
pub fn kube(action: &'static str) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Kube { action, source }
}

/// Whether a client error carries the API server's `reason` (`AlreadyExists`, `NotFound`, `Conflict`, `Invalid`).
pub fn is_reason(error: &kube::Error, reason: &str) -> bool {
    matches!(error, kube::Error::Api(status) if status.reason == reason)
}
