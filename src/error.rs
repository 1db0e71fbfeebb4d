//! Errors of the I/O shell. Each variant belongs to one [`ErrorCategory`]: its metric label is the `kind` of
//! `crew_reconcile_errors_total`, and the same name is the [`Reason`] of the Warning Event a failing reconcile leaves
//! on its execution.

use crew_api::Reason;
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

/// What kind of failure a reconcile error is: one metric label and one Event reason each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCategory {
    /// A request to the API server failed (unreachable, overloaded, refused).
    ApiError,
    /// An object could not be built from the execution's spec.
    BuildError,
    /// The step's Job name is held by a Job of another execution of the same name.
    JobNameTaken,
    /// The API server refused the step's Job twice in one reconcile.
    JobRejected,
    /// This replica stopped leading before it could write.
    NotLeading,
}

impl ErrorCategory {
    /// Every category.
    pub const ALL: [ErrorCategory; 5] = [
        ErrorCategory::ApiError,
        ErrorCategory::BuildError,
        ErrorCategory::JobNameTaken,
        ErrorCategory::JobRejected,
        ErrorCategory::NotLeading,
    ];

    /// The reason of the Warning Event that tells the execution (None: it is not told, a replica that no longer
    /// leads writes nothing).
    pub fn reason(self) -> Option<Reason> {
        match self {
            ErrorCategory::ApiError => Some(Reason::ApiError),
            ErrorCategory::BuildError => Some(Reason::BuildError),
            ErrorCategory::JobNameTaken => Some(Reason::JobNameTaken),
            ErrorCategory::JobRejected => Some(Reason::JobRejected),
            ErrorCategory::NotLeading => None,
        }
    }

    /// The metric label: the reason in snake_case.
    pub fn metric_label(self) -> &'static str {
        match self {
            ErrorCategory::ApiError => "api_error",
            ErrorCategory::BuildError => "build_error",
            ErrorCategory::JobNameTaken => "job_name_taken",
            ErrorCategory::JobRejected => "job_rejected",
            ErrorCategory::NotLeading => "not_leading",
        }
    }
}

impl Error {
    /// The error's category.
    pub fn category(&self) -> ErrorCategory {
        match self {
            Error::Kube { .. } => ErrorCategory::ApiError,
            Error::Build(_) => ErrorCategory::BuildError,
            Error::JobNameTaken(_) => ErrorCategory::JobNameTaken,
            Error::JobRejected(_) => ErrorCategory::JobRejected,
            Error::NotLeading(_) => ErrorCategory::NotLeading,
        }
    }

    /// Short label for metrics and logs (the category's).
    pub fn metric_label(&self) -> &'static str {
        self.category().metric_label()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metric_label_is_the_reason_in_snake_case() {
        for category in ErrorCategory::ALL {
            let name = category.reason().map_or("NotLeading", Reason::as_str);
            assert!(category.reason().is_none_or(Reason::is_warning));
            let mut snake = String::new();
            for (i, c) in name.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    snake.push('_');
                }
                snake.push(c.to_ascii_lowercase());
            }
            assert_eq!(category.metric_label(), snake);
        }
    }
}
