//! What `decide` asks the shell to do.

use crate::lifecycle::ResolvedStep;
use crew_api::CrewExecutionStatus;
use jiff::Timestamp;

/// Start one step attempt: create its Job.
#[derive(Clone, Debug, PartialEq)]
pub struct Launch {
    /// The step with its resolved worker container.
    pub step: ResolvedStep,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// Deterministic Job name.
    pub job_name: String,
    /// The results of the steps before it, for its worker's `/crew/results/` (its `args` and `env` already carry
    /// the results they reference).
    pub results: Vec<crate::lifecycle::results::EarlierResult>,
}

/// A Kubernetes Event to record about the execution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventNote {
    /// Warning (true) or Normal: the reason's [`event_type`](crew_api::Reason::event_type).
    pub warning: bool,
    /// CamelCase reason (a [`Reason`](crew_api::Reason)'s name), same as the matching history entry's.
    pub reason: String,
    /// Human-readable note.
    pub note: String,
    /// The step concerned, if any (its Job becomes the Event's related object, which also keeps Events about
    /// different attempts apart).
    pub step: Option<String>,
    /// The Job the Event is about, when the decision knows it exactly (a retry's failed or new attempt).
    pub job: Option<String>,
    /// The history entry the Event records, as its [`entry_key`](crate::lifecycle::history::entry_key) (None: an
    /// Event with no entry, such as a warning about the spec). The shell names the Event after it, so creating the
    /// Event a second time (after a crash) makes no second Event.
    pub entry_key: Option<String>,
    /// When it happened: the history entry's time (None: when the Event is sent).
    pub time: Option<Timestamp>,
}

/// A change of the operator's finalizer on the execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalizerChange {
    /// Add it: a feature needs the execution kept (its events delivered) before it may go.
    Add,
    /// Remove it: nothing needs the execution any longer.
    Remove,
}

/// The writes one reconcile makes, in the order the shell applies them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Create the ConfigMap with `crew.json` / `inputs.json` (before the first Job; AlreadyExists is fine).
    pub ensure_config_map: bool,
    /// Result ConfigMaps of the execution this run resumes from, to be owned by this run too (before the status
    /// write that records the steps taken over; adding an owner twice is harmless).
    pub adopt_results: Vec<String>,
    /// Jobs to create.
    pub launch: Option<Launch>,
    /// Jobs to delete (cancel, execution timeout).
    pub delete_jobs: Vec<String>,
    /// Finished Jobs to delete once the status write succeeded (`spec.jobCleanup`): their outcome is in that
    /// status, or already stored.
    pub release_jobs: Vec<String>,
    /// The new status; `None` when nothing changed (no write).
    pub status: Option<CrewExecutionStatus>,
    /// Events to record once the status write succeeded.
    pub events: Vec<EventNote>,
    /// Reconcile again after this many seconds (timers: backoff, timeouts, TTL, cache lag).
    pub requeue_after_seconds: Option<u64>,
    /// Delete the execution itself (TTL after finish).
    pub delete_execution: bool,
    /// Add or remove the operator's finalizer (first, before the other writes).
    pub finalizer: Option<FinalizerChange>,
    /// A fact to read before this plan's writes are made: the shell answers it into [`Observed`] and decides again
    /// (a plan that asks for a read is not carried out). A read, not a write: it does not make a plan a no-op or
    /// not.
    ///
    /// [`Observed`]: crate::lifecycle::Observed
    pub read: Option<Read>,
}

/// A fact `decide` needs and the caches do not hold; the shell reads it and decides again with the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    /// Read this Job fresh from the API server before counting it lost: the cache has not shown it since its step
    /// started, for `LOST_JOB_SECONDS` (a stalled watch, or a Job deleted by someone else). Missing there too, the
    /// answer is [`Observed::missing_job`](crate::lifecycle::Observed::missing_job); present, the cache lags and
    /// the step keeps running.
    Job(String),
    /// Why has this Job had no pod for [`NO_POD_SECONDS`](crate::lifecycle::steps::NO_POD_SECONDS) (creating the
    /// pod was refused: a missing ServiceAccount, a quota, a policy)? The answer is the Job controller's latest
    /// `FailedCreate` Event, [`Observed::pod_refused`](crate::lifecycle::Observed::pod_refused); none yet, the plan
    /// stands.
    PodRefusal(String),
    /// Read this ServiceAccount's annotations before launching a worker that runs as it (or references Secrets
    /// through it): the answer is [`Observed::service_account`](crate::lifecycle::Observed::service_account).
    ServiceAccount(String),
}

impl Plan {
    /// Whether the plan asks for no write at all.
    pub fn is_noop(&self) -> bool {
        !self.ensure_config_map
            && self.adopt_results.is_empty()
            && self.launch.is_none()
            && self.delete_jobs.is_empty()
            && self.release_jobs.is_empty()
            && self.status.is_none()
            && self.events.is_empty()
            && !self.delete_execution
            && self.finalizer.is_none()
    }

    /// Keeps the earliest of the requeue timers.
    pub fn requeue_within(&mut self, seconds: u64) {
        self.requeue_after_seconds = Some(
            self.requeue_after_seconds
                .map_or(seconds, |s| s.min(seconds)),
        );
    }
}
