//! Live progress from inside a step: workers `POST /v1/progress` (see the README, "Reporting progress").
//!
//! - [`auth`]: who is calling, from a pod-bound ServiceAccount token (TokenReview), and which step attempt that
//!   pod runs. Workers need no RBAC.
//! - [`book`]: what each attempt reported, bounded by `crew_core::lifecycle::report`, rate-limited, and when its
//!   execution should be reconciled so that reports cost at most one status write per `--progress-interval`.
//! - [`endpoint`]: the HTTP handler.
//! - [`result`]: `POST /v1/result`, a step's full result (see the README, "Step results").

pub mod auth;
pub mod book;
pub mod endpoint;
pub mod result;
