//! The archive's read API on the wire (`crew-operator`'s `--archive-addr`, read by `kubectl crew … --archived` and
//! the dashboard): a page of archived executions and the statistics of a span.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One archived execution, as a list shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// uid.
    pub uid: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Phase (the last one, for a run deleted before it finished).
    pub phase: String,
    /// `status.reason`.
    pub reason: Option<String>,
    /// The step whose failure failed it.
    pub failed_step: Option<String>,
    /// Queue (empty: none).
    pub queue: String,
    /// Priority.
    pub priority: i32,
    /// Created.
    pub created: Option<Timestamp>,
    /// First step started.
    pub started: Option<Timestamp>,
    /// Finished (or deleted).
    pub finished: Timestamp,
    /// Seconds from start to finish.
    pub duration_seconds: Option<i64>,
    /// Seconds waiting before the first step.
    pub queue_wait_seconds: Option<i64>,
    /// Attempts over all steps.
    pub attempts: i32,
    /// Deleted before it finished.
    pub deleted_before_finishing: bool,
    /// `status.message`.
    pub message: Option<String>,
    /// Steps the run has.
    pub steps_total: i32,
    /// Steps that succeeded.
    pub steps_succeeded: i32,
}

/// A page of a list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page {
    /// Newest first.
    pub items: Vec<Summary>,
    /// Where the next page starts, when there may be one.
    pub next: Option<String>,
}

/// Counts and durations of one group of runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    /// Runs archived (deleted ones included).
    pub total: i64,
    /// Succeeded.
    pub succeeded: i64,
    /// Failed.
    pub failed: i64,
    /// Cancelled.
    pub cancelled: i64,
    /// Deleted before they finished.
    pub deleted: i64,
    /// Median duration (upper bound of its histogram bucket), seconds.
    pub p50_seconds: Option<i64>,
    /// 95th percentile duration, seconds.
    pub p95_seconds: Option<i64>,
    /// Mean duration, seconds.
    pub mean_seconds: Option<f64>,
}

/// Failures of one step for one reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepFailures {
    /// Step.
    pub step: String,
    /// Reason.
    pub reason: String,
    /// Runs that failed so.
    pub count: i64,
}

/// Statistics over a span, from the daily rollups (hourly ones for spans under two days).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Everything.
    pub overall: Figures,
    /// By queue (`""`: none).
    pub by_queue: Vec<(String, Figures)>,
    /// By day (or hour), oldest first.
    pub by_period: Vec<(Timestamp, Figures)>,
    /// Failures by step and reason, most first.
    pub failed_steps: Vec<StepFailures>,
}
