//! What the dashboard's JSON API answers (the page's `src/api.ts` declares the same shapes).

use crate::view::summary::Summary;
use jiff::Timestamp;
use serde::Serialize;

/// One execution as a row of the list, live or archived.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// `Pending` before the operator's first status write, as `kubectl crew list` shows it.
    pub phase: &'static str,
    pub reason: String,
    pub message: String,
    pub completed: u32,
    pub total: u32,
    pub percent: u32,
    /// The step running now (a failed one for an archived run).
    pub step: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    pub queue: String,
    pub priority: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished: Option<Timestamp>,
    pub archived: bool,
}

impl Row {
    pub fn of(summary: Summary, uid: String, archived: bool) -> Row {
        Row {
            phase: summary.phase_text(),
            namespace: summary.namespace,
            name: summary.name,
            uid,
            reason: summary.reason,
            message: summary.message,
            completed: summary.completed,
            total: summary.total,
            percent: summary.percent,
            step: summary.step,
            attempt: summary.attempt,
            queue: summary.queue,
            priority: summary.priority,
            duration_seconds: summary.duration,
            created: summary.created,
            started: summary.started,
            finished: summary.completed_at,
            archived,
        }
    }

    /// A live execution's row (its duration as written, or running up to `now`).
    pub fn live(cx: &crew_api::CrewExecution, now: Timestamp) -> Row {
        let uid = cx.metadata.uid.clone().unwrap_or_default();
        Row::of(Summary::of(cx, now), uid, false)
    }

    /// A row of the archive's list.
    pub fn archived(summary: &crew_api::archive::Summary) -> Row {
        Row::of(Summary::of_archived(summary), summary.uid.clone(), true)
    }
}

/// A page of the list. `continue` is the token of the next page; `resourceVersion` is where a watch of the live
/// list starts (none for archived pages: they do not change).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunsPage {
    pub items: Vec<Row>,
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    pub continue_: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

/// What the page needs to know about its server.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Context {
    /// The kubeconfig context's namespace (the page's first scope).
    pub namespace: String,
    /// The API server (shown, so one knows which cluster this is).
    pub server: String,
    /// Whether an archive server was given (`--archive-server`).
    pub archive: bool,
    /// Whether writes are allowed (`--allow-actions`).
    pub actions: bool,
    /// Whether this dashboard serves many users (`--in-cluster`: each signs in with a token).
    pub users: bool,
}

/// A change pushed to the page.
#[derive(Debug, Serialize)]
pub struct Change {
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub row: Row,
}

/// Counts and durations of a group of runs, as the archive's statistics have them (live ones are counted so too).
pub use crew_api::archive::Figures;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Period {
    pub start: Timestamp,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueFigures {
    pub queue: String,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failures {
    pub step: String,
    pub reason: String,
    pub count: i64,
}

/// Statistics over a span.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// `archive` (the rollups) or `live` (the objects still in the cluster).
    pub source: &'static str,
    pub since_seconds: u64,
    pub overall: Figures,
    pub by_period: Vec<Period>,
    pub by_queue: Vec<QueueFigures>,
    pub failures: Vec<Failures>,
}

/// One attempt of one step, for the timeline.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub step: String,
    pub attempt: i32,
    pub phase: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitingRow {
    pub sentence: String,
    pub position: usize,
    pub waiting: usize,
    pub holders: Vec<String>,
}

/// One run, everything the run page shows.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunDetail {
    pub row: Row,
    /// The spec's steps, in order (names).
    pub steps: Vec<serde_json::Value>,
    /// `status.steps` as the API has them.
    pub status: Vec<crew_api::StepStatus>,
    pub attempts: Vec<Attempt>,
    pub history: Vec<crew_api::HistoryEntry>,
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    pub events: Vec<crate::view::describe::EventLine>,
    pub jobs: Vec<crate::view::describe::JobLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<WaitingRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_retry_time: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    pub suspend: bool,
    pub cancel: bool,
    /// What could not be shown and why (Events not readable, say).
    pub notes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

/// A queue line: running and waiting runs, the waiting ones in the order they will be admitted.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueLine {
    pub namespace: String,
    /// `""`: runs without a queue (the operator-wide limit).
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_running: Option<u32>,
    pub running: Vec<Row>,
    pub waiting: Vec<WaitingEntry>,
    pub waiting_total: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitingEntry {
    pub row: Row,
    pub position: usize,
    pub why: String,
}
