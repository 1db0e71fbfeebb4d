//! The facts about one execution that tables, watch lines and statistics show, derived from its status alone.

use super::time::seconds_between;
use crew_api::{CrewExecution, Phase};
use jiff::Timestamp;
use kube::ResourceExt;

/// One execution, as a row.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub namespace: String,
    pub name: String,
    /// `None` before the operator's first status write.
    pub phase: Option<Phase>,
    pub reason: String,
    pub message: String,
    pub completed: u32,
    pub total: u32,
    /// `status.progress.percent`: completed steps plus the running step's reported fraction.
    pub percent: u32,
    /// The step running now (or waiting for its retry).
    pub step: String,
    pub attempt: Option<u32>,
    pub queue: String,
    pub priority: i32,
    /// Seconds run so far (live while running, as written once finished); `None` before the first start.
    pub duration: Option<i64>,
    pub created: Option<Timestamp>,
    pub started: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
}

impl Summary {
    pub fn of(cx: &CrewExecution, now: Timestamp) -> Summary {
        let status = cx.status.clone().unwrap_or_default();
        let total = status
            .progress
            .as_ref()
            .map(|p| p.total_steps)
            .unwrap_or_else(|| cx.spec.steps.len().max(1) as u32);
        let started = status.start_time.as_ref().map(|t| t.0);
        let completed_at = status.completion_time.as_ref().map(|t| t.0);
        let duration = match (status.duration_seconds, started) {
            (Some(seconds), _) => Some(seconds),
            (None, Some(start)) => Some(seconds_between(start, completed_at.unwrap_or(now))),
            (None, None) => None,
        };
        Summary {
            namespace: cx.namespace().unwrap_or_default(),
            name: cx.name_any(),
            phase: status.phase,
            reason: status.reason.unwrap_or_default(),
            message: status.message.unwrap_or_default(),
            completed: status
                .progress
                .as_ref()
                .map(|p| p.completed_steps)
                .unwrap_or(0),
            percent: status
                .progress
                .as_ref()
                .map(|p| p.percent.min(100))
                .unwrap_or(0),
            total,
            step: status
                .progress
                .and_then(|p| p.current_step)
                .unwrap_or_default(),
            attempt: status.attempt,
            queue: cx.spec.queue.clone().unwrap_or_default(),
            priority: cx.spec.priority,
            duration,
            created: cx.metadata.creation_timestamp.as_ref().map(|t| t.0),
            started,
            completed_at,
        }
    }

    /// A row of the archive's list (`list --archived`); a run deleted before it finished keeps its last phase, with
    /// reason `DeletedBeforeFinishing`.
    pub fn of_archived(archived: &crew_api::archive::Summary) -> Summary {
        let total = archived.steps_total.max(1) as u32;
        let completed = archived.steps_succeeded.max(0) as u32;
        let reason = if archived.deleted_before_finishing {
            "DeletedBeforeFinishing".to_string()
        } else {
            archived.reason.clone().unwrap_or_default()
        };
        Summary {
            namespace: archived.namespace.clone(),
            name: archived.name.clone(),
            phase: serde_json::from_value(serde_json::Value::String(archived.phase.clone())).ok(),
            reason,
            message: archived.message.clone().unwrap_or_default(),
            completed,
            total,
            percent: (completed * 100 / total).min(100),
            step: archived.failed_step.clone().unwrap_or_default(),
            attempt: None,
            queue: archived.queue.clone(),
            priority: archived.priority,
            duration: archived.duration_seconds,
            created: archived.created,
            started: archived.started,
            completed_at: Some(archived.finished),
        }
    }

    /// The phase as `kubectl get` shows it (`Pending` before the first status write, as the operator will).
    pub fn phase_text(&self) -> &'static str {
        self.phase.map(|p| p.as_str()).unwrap_or("Pending")
    }

    pub fn is_terminal(&self) -> bool {
        self.phase.is_some_and(|p| p.is_terminal())
    }

    /// Seconds since creation.
    pub fn age(&self, now: Timestamp) -> i64 {
        self.created.map(|c| seconds_between(c, now)).unwrap_or(0)
    }
}
