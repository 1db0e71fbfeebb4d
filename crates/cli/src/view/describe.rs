//! `kubectl crew describe`: the execution summary.

use super::bar::bar;
use super::list::first_line;
use super::style::{Paint, Style, phase_paint};
use super::summary::Summary;
use super::table::{Cell, Table};
use super::time::{exact, seconds_between, short, stamp};
use super::waiting::{Waiting, sentence};
use crew_api::{ConditionType, CrewExecution, EventType};
use crew_core::build::labels;
use crew_core::lifecycle::JobState;
use crew_core::lifecycle::job_summary::job_verdict;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;

/// History entries `describe` shows (the newest).
pub const HISTORY_SHOWN: usize = 10;

/// One Event about the execution (core/v1 or events.k8s.io/v1, reduced to what is shown; as JSON for the
/// dashboard).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventLine {
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
    pub count: i32,
    pub message: String,
}

/// One Job of the execution (as JSON for the dashboard too).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobLine {
    pub name: String,
    pub step: String,
    pub attempt: String,
    /// Running, Terminating, Complete or Failed ([`job_status`]).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
}

impl JobLine {
    /// `job` as a row, classified by the operator's own reading of it
    /// ([`job_verdict`](crew_core::lifecycle::job_summary::job_verdict)). A Job without step or attempt labels
    /// (made by hand) is shown with those cells empty.
    pub fn of(job: &Job) -> JobLine {
        let label = |key: &str| job.labels().get(key).cloned().unwrap_or_default();
        JobLine {
            name: job.name_any(),
            step: label(labels::STEP),
            attempt: label(labels::ATTEMPT),
            status: job_status(
                job_verdict(job).state,
                job.metadata.deletion_timestamp.is_some(),
            )
            .to_string(),
            created: job.metadata.creation_timestamp.as_ref().map(|t| t.0),
        }
    }
}

/// The word `describe` shows for a Job in `state`: `Complete`, `Failed`, or while active `Terminating` (being
/// deleted) or `Running`.
pub fn job_status(state: JobState, deleting: bool) -> &'static str {
    match (state, deleting) {
        (JobState::Succeeded, _) => "Complete",
        (JobState::Failed, _) => "Failed",
        (JobState::Active, true) => "Terminating",
        (JobState::Active, false) => "Running",
    }
}

/// Everything `describe` shows.
pub struct Described<'a> {
    pub cx: &'a CrewExecution,
    pub events: Vec<EventLine>,
    pub jobs: Vec<JobLine>,
    pub waiting: Option<Waiting>,
    /// Where the run's events stand with each CrewSink of its namespace that wants them.
    pub deliveries: Vec<DeliveryLine>,
}

/// Where a run's events stand with one CrewSink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryLine {
    /// The sink.
    pub sink: String,
    /// `delivered` (its position is past the run's last transition), `pending`, or `suspended`.
    pub state: String,
    /// The sink's last error while it fails.
    pub error: Option<String>,
}

/// Where `cx`'s events stand with `sink` (None: the sink does not want them).
pub fn delivery_of(sink: &crew_api::CrewSink, cx: &CrewExecution) -> Option<DeliveryLine> {
    let labels = cx.metadata.labels.clone().unwrap_or_default();
    if !crew_core::notify::selector::matches(sink.spec.selector.as_ref(), &labels) {
        return None;
    }
    let status = sink.status.clone().unwrap_or_default();
    let last = cx
        .status
        .as_ref()
        .and_then(|s| s.history.last())
        .map(|e| e.time.0);
    let position = status.delivered_up_to.map(|t| t.0);
    let failing = status
        .conditions
        .iter()
        .any(|c| c.type_ == crew_api::ConditionType::Ready.as_str() && c.status == "False");
    let state = if sink.spec.suspend {
        "suspended"
    } else if last.is_none_or(|last| position.is_some_and(|at| at > last)) {
        "delivered"
    } else {
        "pending"
    };
    Some(DeliveryLine {
        sink: sink.metadata.name.clone().unwrap_or_default(),
        state: state.to_string(),
        error: status.last_error.filter(|_| failing && state == "pending"),
    })
}

fn field(out: &mut String, label: &str, value: &str) {
    out.push_str(&format!("{:<14}{value}\n", format!("{label}:")));
}

fn or_dash(value: Option<String>) -> String {
    value
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "-".into())
}

/// The whole summary.
pub fn render(d: &Described<'_>, now: Timestamp, style: Style) -> String {
    let s = Summary::of(d.cx, now);
    let status = d.cx.status.clone().unwrap_or_default();
    let mut out = String::new();
    field(&mut out, "Name", &s.name);
    field(&mut out, "Namespace", &s.namespace);
    let phase = s.phase_text();
    let mut phase_line = style.paint(phase, phase_paint(phase));
    if !s.reason.is_empty() {
        phase_line.push_str(&format!(" ({})", s.reason));
    }
    field(&mut out, "Phase", &phase_line);
    if !s.message.is_empty() {
        field(&mut out, "Message", &s.message);
    }
    let percent = status.progress.as_ref().map(|p| p.percent).unwrap_or(0);
    field(
        &mut out,
        "Progress",
        &format!(
            "{} {}/{} ({percent}%)",
            bar(percent, 100, 20),
            s.completed,
            s.total
        ),
    );
    if !s.step.is_empty() {
        let attempt = s
            .attempt
            .map(|a| format!(" (attempt {a})"))
            .unwrap_or_default();
        field(&mut out, "Step", &format!("{}{attempt}", s.step));
    }
    let queue = if s.queue.is_empty() {
        format!("- (priority {})", s.priority)
    } else {
        format!("{} (priority {})", s.queue, s.priority)
    };
    field(&mut out, "Queue", &queue);
    if let Some(w) = &d.waiting {
        field(&mut out, "Waiting", &sentence(w));
    }
    if d.cx.spec.suspend && !s.is_terminal() {
        field(
            &mut out,
            "Suspended",
            "yes (spec.suspend); `kubectl crew resume` continues it",
        );
    }
    if let Some(created) = s.created {
        field(
            &mut out,
            "Created",
            &format!(
                "{} ({} ago)",
                stamp(created),
                short(seconds_between(created, now))
            ),
        );
    }
    field(&mut out, "Started", &or_dash(s.started.map(stamp)));
    field(&mut out, "Completed", &or_dash(s.completed_at.map(stamp)));
    field(&mut out, "Duration", &or_dash(s.duration.map(exact)));
    if let Some(next) = &status.next_retry_time {
        let wait = seconds_between(now, next.0);
        field(
            &mut out,
            "Next retry",
            &format!("{} (in {})", stamp(next.0), short(wait)),
        );
    }
    if let Some(result) = &status.result {
        field(&mut out, "Result", &first_line(result, 100));
    }

    out.push_str("\nSteps:\n");
    let mut steps = Table::new(&["NAME", "PHASE", "ATTEMPT", "DURATION", "EXIT", "RESULT"]);
    for step in &status.steps {
        let phase = step.phase.as_str();
        let duration = step.duration_seconds.or_else(|| {
            step.start_time
                .as_ref()
                .filter(|_| step.completion_time.is_none())
                .map(|start| seconds_between(start.0, now))
        });
        let outcome = step.result.clone().or_else(|| step.message.clone());
        steps.row(vec![
            Cell::from(step.name.as_str()),
            Cell::painted(phase, phase_paint(phase)),
            Cell::from(if step.attempt == 0 {
                "-".to_string()
            } else {
                step.attempt.to_string()
            }),
            Cell::from(or_dash(duration.map(exact))),
            Cell::from(or_dash(step.exit_code.map(|c| c.to_string()))),
            Cell::from(or_dash(outcome.map(|r| first_line(&r, 60)))),
        ]);
    }
    section(&mut out, &steps, style);
    out.push_str(&reported(&status.steps, now));
    if status.steps.iter().any(|s| s.result_ref.is_some()) {
        out.push_str("\nResults posted (kubectl crew result NAME --step STEP):\n");
        let mut posted = Table::new(&["STEP", "SIZE", "SHA256", "CONFIGMAP", "PREVIEW"]);
        for step in &status.steps {
            let Some(reference) = &step.result_ref else {
                continue;
            };
            posted.row(vec![
                Cell::from(step.name.as_str()),
                Cell::from(format!("{} B", reference.size)),
                Cell::from(reference.sha256.chars().take(12).collect::<String>()),
                Cell::from(reference.config_map.as_str()),
                Cell::from(or_dash(step.result.as_deref().map(|r| first_line(r, 40)))),
            ]);
        }
        section(&mut out, &posted, style);
    }

    out.push_str("\nConditions:\n");
    let mut conditions = Table::new(&["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"]);
    for c in &status.conditions {
        let abnormal =
            ConditionType::parse(&c.type_).is_some_and(ConditionType::abnormal_when_true);
        let paint = (abnormal && c.status == "True").then_some(Paint::Red);
        conditions.row(vec![
            Cell::painted(c.type_.as_str(), paint),
            Cell::from(c.status.as_str()),
            Cell::from(c.reason.as_str()),
            Cell::from(short(seconds_between(c.last_transition_time.0, now))),
            Cell::from(first_line(&c.message, 80)),
        ]);
    }
    section(&mut out, &conditions, style);

    let total = status.history.len();
    let shown = total.min(HISTORY_SHOWN);
    if total > shown {
        out.push_str(&format!("\nHistory (last {shown} of {total}):\n"));
    } else {
        out.push_str("\nHistory:\n");
    }
    let mut history = Table::new(&["TIME", "TRANSITION", "REASON", "STEP", "MESSAGE"]);
    for entry in &status.history[total - shown..] {
        history.row(vec![
            Cell::from(stamp(entry.time.0)),
            Cell::from(transition(entry.from.as_str(), entry.to.as_str())),
            Cell::from(entry.reason.as_str()),
            Cell::from(entry.step.clone().unwrap_or_else(|| "-".into())),
            Cell::from(or_dash(entry.message.as_deref().map(|m| first_line(m, 80)))),
        ]);
    }
    section(&mut out, &history, style);

    out.push_str("\nJobs:\n");
    let mut jobs = Table::new(&["NAME", "STEP", "ATTEMPT", "STATUS", "AGE"]);
    for job in &d.jobs {
        jobs.row(vec![
            Cell::from(job.name.as_str()),
            Cell::from(job.step.as_str()),
            Cell::from(job.attempt.as_str()),
            Cell::from(job.status.as_str()),
            Cell::from(or_dash(job.created.map(|c| short(seconds_between(c, now))))),
        ]);
    }
    section(&mut out, &jobs, style);

    out.push_str("\nEvents:\n");
    let mut events = Table::new(&["TYPE", "REASON", "AGE", "MESSAGE"]);
    for e in &d.events {
        let age = or_dash(e.last_seen.map(|t| short(seconds_between(t, now))));
        let age = if e.count > 1 {
            format!("{age} (x{})", e.count)
        } else {
            age
        };
        let paint = (e.type_ == EventType::Warning.as_str()).then_some(Paint::Yellow);
        events.row(vec![
            Cell::painted(e.type_.as_str(), paint),
            Cell::from(e.reason.as_str()),
            Cell::from(age),
            Cell::from(first_line(&e.message, 100)),
        ]);
    }
    section(&mut out, &events, style);
    if !d.deliveries.is_empty() {
        out.push_str("\nNotifications:\n");
        let mut sinks = Table::new(&["SINK", "EVENTS", "ERROR"]);
        for line in &d.deliveries {
            let paint = (line.state == "pending" && line.error.is_some()).then_some(Paint::Yellow);
            sinks.row(vec![
                Cell::from(line.sink.as_str()),
                Cell::painted(line.state.as_str(), paint),
                Cell::from(or_dash(line.error.as_deref().map(|e| first_line(e, 80)))),
            ]);
        }
        section(&mut out, &sinks, style);
    }
    out
}

/// What workers reported (`POST /v1/progress`): per step, its percent and message, its metrics and warnings.
/// Nothing when no worker reported.
fn reported(steps: &[crew_api::StepStatus], now: Timestamp) -> String {
    let mut out = String::new();
    for step in steps {
        if step.progress.is_none() && step.metrics.is_empty() && step.warnings.is_empty() {
            continue;
        }
        if out.is_empty() {
            out.push_str("\nReported by workers:\n");
        }
        let mut line = format!("  {} (attempt {})", step.name, step.attempt);
        if let Some(p) = &step.progress {
            line.push_str(&format!(": {} {}%", bar(p.percent, 100, 20), p.percent));
            if let Some(message) = &p.message {
                line.push_str(&format!("  {}", first_line(message, 80)));
            }
            if let Some(at) = &p.update_time {
                line.push_str(&format!("  ({} ago)", short(seconds_between(at.0, now))));
            }
        }
        out.push_str(&line);
        out.push('\n');
        if !step.metrics.is_empty() {
            let metrics: Vec<String> = step
                .metrics
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.push_str(&format!("    metrics:  {}\n", metrics.join(", ")));
        }
        for warning in &step.warnings {
            out.push_str(&format!("    warning:  {}\n", first_line(warning, 100)));
        }
    }
    out
}

/// `Queued → Running`, or the phase alone for a step outcome that kept it.
pub fn transition(from: &str, to: &str) -> String {
    if from == to {
        from.to_string()
    } else {
        format!("{from} → {to}")
    }
}

fn section(out: &mut String, table: &Table, style: Style) {
    if table.rows.is_empty() {
        out.push_str("  <none>\n");
    } else {
        out.push_str(&table.render(true, 2, style));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(deleting: bool, status: serde_json::Value) -> Job {
        let mut metadata = json!({
            "name": "x-main-1", "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"crew.dev/execution": "x", "crew.dev/step": "main", "crew.dev/attempt": "1"},
        });
        if deleting {
            metadata["deletionTimestamp"] = json!("2026-01-01T00:01:00Z");
        }
        serde_json::from_value(json!({"metadata": metadata, "status": status})).unwrap()
    }

    #[test]
    fn job_lines_read_jobs_as_the_operator_does() {
        let complete = json!({"conditions": [{"type": "Complete", "status": "True"}]});
        let failed = json!({"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]});
        let not_yet = json!({"active": 1, "conditions": [{"type": "Failed", "status": "False"}]});
        let cases = [
            (false, complete.clone(), "Complete"),
            (true, complete, "Complete"),
            (true, failed, "Failed"),
            (true, not_yet.clone(), "Terminating"),
            (false, not_yet, "Running"),
        ];
        for (deleting, status, word) in cases {
            let line = JobLine::of(&job(deleting, status.clone()));
            assert_eq!(line.status, word, "{status} deleting={deleting}");
        }
        let line = JobLine::of(&job(false, json!(null)));
        assert_eq!(
            (
                line.name.as_str(),
                line.step.as_str(),
                line.attempt.as_str()
            ),
            ("x-main-1", "main", "1")
        );
        assert_eq!(
            line.created.map(|t| t.to_string()).as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
    }

    fn sink(status: serde_json::Value, selector: serde_json::Value) -> crew_api::CrewSink {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "crew.dev/v1alpha1", "kind": "CrewSink",
            "metadata": {"name": "hook", "namespace": "team"},
            "spec": {"url": "http://example.test/", "selector": selector}, "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_runs_delivery_state_is_read_from_the_sinks_position() {
        let cx: CrewExecution = serde_json::from_value(serde_json::json!({
            "apiVersion": "crew.dev/v1alpha1", "kind": "CrewExecution",
            "metadata": {"name": "r", "namespace": "team", "labels": {"team": "a"}},
            "spec": {"image": "w"},
            "status": {"phase": "Succeeded", "history": [
                {"time": "2026-12-07T10:00:00Z", "from": "Pending", "to": "Running", "reason": "Started"},
                {"time": "2026-12-07T10:01:00Z", "from": "Running", "to": "Succeeded", "reason": "Succeeded"}]}
        }))
        .unwrap();
        let past = sink(
            serde_json::json!({"deliveredUpTo": "2026-12-07T10:01:05Z"}),
            serde_json::json!({}),
        );
        assert_eq!(delivery_of(&past, &cx).unwrap().state, "delivered");
        let behind = sink(
            serde_json::json!({"deliveredUpTo": "2026-12-07T10:00:30Z", "lastError": "refused",
                "conditions": [{"type": "Ready", "status": "False", "reason": "DeliveryFailing", "message": "refused",
                                "lastTransitionTime": "2026-12-07T10:00:30Z"}]}),
            serde_json::json!({}),
        );
        let line = delivery_of(&behind, &cx).unwrap();
        assert_eq!(
            (line.state.as_str(), line.error.as_deref()),
            ("pending", Some("refused"))
        );
        let elsewhere = sink(
            serde_json::json!({}),
            serde_json::json!({"matchLabels": {"team": "b"}}),
        );
        assert_eq!(delivery_of(&elsewhere, &cx), None, "not its sink");
    }
}
