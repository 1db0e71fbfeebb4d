//! The status being decided: phase moves guarded by the transition graph, new history entries, extra events.

use crate::lifecycle::history::entry_key;
use crate::lifecycle::text::bounded_message;
use crate::lifecycle::transitions::allowed;
use crate::lifecycle::{EventNote, Observed};
use crew_api::{CrewExecutionStatus, HistoryEntry, Phase, Reason};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Accumulates one reconcile's decision.
pub struct Draft<'a> {
    /// The snapshot decided on.
    pub observed: &'a Observed<'a>,
    /// Status as last written.
    pub previous: &'a CrewExecutionStatus,
    /// Decision time (whole seconds).
    pub now: Timestamp,
    /// Phase as decided so far.
    pub phase: Phase,
    /// `status.reason` to write: a [`Reason`], or the reason Kubernetes gave for a worker that cannot start.
    pub reason: String,
    /// `status.message` to write.
    pub message: String,
    /// History entries added by this reconcile, oldest first.
    pub entries: Vec<HistoryEntry>,
    /// Events that have no history entry (refused transitions, warnings about spec edits).
    pub extra_events: Vec<EventNote>,
    /// (index into `entries`, Job name): the Job an entry is about, when known exactly.
    pub entry_jobs: Vec<(usize, String)>,
}

impl<'a> Draft<'a> {
    /// A draft starting from the last written status.
    pub fn new(
        observed: &'a Observed<'a>,
        previous: &'a CrewExecutionStatus,
        now: Timestamp,
    ) -> Self {
        Draft {
            observed,
            previous,
            now,
            phase: previous.phase.unwrap_or_default(),
            reason: previous.reason.clone().unwrap_or_default(),
            message: previous.message.clone().unwrap_or_default(),
            entries: Vec::new(),
            extra_events: Vec::new(),
            entry_jobs: Vec::new(),
        }
    }

    /// Moves to `to` if the graph allows it, recording a history entry; a refused move keeps the phase and
    /// records a Warning Event `InvalidTransition`. Staying in the same phase records nothing.
    pub fn transition(
        &mut self,
        to: Phase,
        reason: Reason,
        message: String,
        step: Option<&str>,
    ) -> bool {
        if to == self.phase {
            return true;
        }
        let message = bounded_message(message);
        if !allowed(self.phase, to) {
            self.event(
                Reason::InvalidTransition,
                format!(
                    "refused transition {} -> {to} ({reason}: {message})",
                    self.phase
                ),
            );
            return false;
        }
        self.entries.push(HistoryEntry {
            time: Time(self.now),
            from: self.phase,
            to,
            reason: reason.into(),
            message: Some(message.clone()),
            step: step.map(str::to_string),
        });
        self.phase = to;
        self.set_reason(reason, message);
        true
    }

    /// Records a step outcome that does not change the phase.
    pub fn note(&mut self, reason: Reason, message: String, step: &str) {
        self.entries.push(HistoryEntry {
            time: Time(self.now),
            from: self.phase,
            to: self.phase,
            reason: reason.into(),
            message: Some(bounded_message(message)),
            step: Some(step.to_string()),
        });
    }

    /// Names the Job the newest entry is about (its Event relates to that Job).
    pub fn relate_last(&mut self, job: String) {
        if let Some(index) = self.entries.len().checked_sub(1) {
            self.entry_jobs.push((index, job));
        }
    }

    /// Sets `status.reason` and `status.message`.
    pub fn set_reason(&mut self, reason: Reason, message: String) {
        self.set_reason_from_kubernetes(reason.as_str(), message);
    }

    /// Sets `status.reason` to the reason Kubernetes gave for a worker that cannot start (`Unschedulable`,
    /// `ImagePullBackOff`, `FailedCreate`, ...), and `status.message`.
    pub fn set_reason_from_kubernetes(&mut self, reason: &str, message: String) {
        self.reason = reason.to_string();
        self.message = bounded_message(message);
    }

    /// Records an Event with no history entry (of the reason's [`event_type`](Reason::event_type)).
    pub fn event(&mut self, reason: Reason, note: String) {
        self.extra_events.push(EventNote {
            warning: reason.is_warning(),
            reason: reason.into(),
            note,
            step: None,
            job: None,
            entry_key: None,
            time: None,
        });
    }

    /// Records an Event only when `status.reason` was not already `reason` (edge-triggered).
    pub fn event_once(&mut self, reason: Reason, note: String) {
        if self.previous.reason.as_deref() != Some(reason.as_str()) {
            self.event(reason, note);
        }
    }

    /// One Event per new history entry, then the extra events.
    pub fn events(&self) -> Vec<EventNote> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let job = self
                    .entry_jobs
                    .iter()
                    .find(|(at, _)| *at == i)
                    .map(|(_, job)| job.clone());
                entry_event(e, job)
            })
            .chain(self.extra_events.iter().cloned())
            .collect()
    }
}

/// The Event recording history entry `entry` (about Job `job`, when known exactly). Its type is its reason's
/// [`event_type`](Reason::event_type); a reason this operator does not write (an older one's) makes a Normal Event.
pub fn entry_event(entry: &HistoryEntry, job: Option<String>) -> EventNote {
    EventNote {
        job,
        warning: Reason::parse(&entry.reason).is_some_and(Reason::is_warning),
        reason: entry.reason.clone(),
        note: event_note(entry),
        step: entry.step.clone(),
        entry_key: Some(entry_key(entry)),
        time: Some(entry.time.0),
    }
}

fn event_note(entry: &HistoryEntry) -> String {
    let message = entry.message.as_deref().unwrap_or_default();
    if entry.from == entry.to {
        message.to_string()
    } else {
        format!("{} -> {}: {message}", entry.from, entry.to)
    }
}
