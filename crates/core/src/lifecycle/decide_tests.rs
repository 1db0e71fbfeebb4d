//! Tests of [`decide`] through a small simulated world.
//!
//! `World` holds what the shell would see (spec, last written status, the Jobs of the execution, the queue verdict)
//! and applies every plan the way the shell does: ConfigMap, Job creation, Job deletion, status write, events. Its
//! `step` also checks, after every reconcile of every story, that `decide` is at a fixed point (running it again on
//! the world it produced, at the same time, asks for no write) and the per-reconcile invariants (transition graph,
//! history chain and cap, monotone attempts, terminal phases stay, one Job per step attempt, at most one live Job).
//!
//! Groups: stories (named table cases, one test each), restart/idempotence stories, whole-history checks over every
//! story, write counts, and a property test over random event sequences.

use crate::lifecycle::conditions::find;
use crate::lifecycle::history::effective_limit;
use crate::lifecycle::names::job_name;
use crate::lifecycle::report::AttemptReports;
use crate::lifecycle::steps::DEFAULT_START_TIMEOUT_SECONDS;
use crate::lifecycle::transitions::allowed;
use crate::lifecycle::worker_policy::WorkerPolicy;
use crate::lifecycle::{
    Admission, EventNote, JobRejection, JobState, Observed, ObservedJob, Plan, StartBlock,
    WorkerOutcome, decide,
};
use crew_api::execution::DEFAULT_HISTORY_LIMIT;
use crew_api::{
    CrewExecutionSpec, CrewExecutionStatus, HistoryEntry, JobCleanup, OnStall, Phase, Progress,
    RetryPolicy, StepPhase, StepSpec, StepStatus,
};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use proptest::prelude::*;
use std::collections::HashSet;

/// Name of the simulated execution.
const NAME: &str = "report";
/// Time 0 of every story: 2026-01-01T00:00:00Z.
const EPOCH: i64 = 1_767_225_600;

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(EPOCH + second).unwrap()
}

fn time(second: i64) -> Time {
    Time(at(second))
}

fn job(step: &str, attempt: u32) -> String {
    job_name(NAME, step, attempt)
}

fn step_spec(name: &str) -> StepSpec {
    StepSpec {
        name: name.into(),
        ..Default::default()
    }
}

/// A valid spec with a crew and inputs (so the first launch asks for the ConfigMap); no steps means `main`.
fn spec(steps: &[&str]) -> CrewExecutionSpec {
    CrewExecutionSpec {
        image: Some("worker:1".into()),
        crew: Some(serde_json::json!({ "agents": [{ "role": "researcher" }] })),
        inputs: Some(serde_json::json!({ "topic": "tests" })),
        steps: steps.iter().map(|n| step_spec(n)).collect(),
        history_limit: DEFAULT_HISTORY_LIMIT,
        ..Default::default()
    }
}

fn retry(limit: u32, backoff_seconds: u32) -> Option<RetryPolicy> {
    Some(RetryPolicy {
        limit,
        backoff_seconds,
        max_backoff_seconds: 300,
    })
}

/// History entries present in `new` but not in `old`: `new` is `old` (maybe with its oldest entries dropped by the
/// cap) followed by the added entries.
fn appended(old: &[HistoryEntry], new: &[HistoryEntry]) -> Vec<HistoryEntry> {
    let overlap = (0..=old.len().min(new.len()))
        .rev()
        .find(|&k| new[..k] == old[old.len() - k..])
        .unwrap_or(0);
    new[overlap..].to_vec()
}

/// What the shell sees of one execution, and what it did so far.
#[derive(Debug)]
struct World {
    generation: i64,
    spec: CrewExecutionSpec,
    status: Option<CrewExecutionStatus>,
    jobs: Vec<ObservedJob>,
    admission: Admission,
    /// The next reconcile's status write fails (its events are lost with it; Job writes before it happened).
    lose_next_write: bool,
    /// The API server refuses the next Job create: (permanent, message). The shell then decides again.
    reject_next_launch: Option<(bool, String)>,
    /// Jobs the API server has but the cache does not show (a stalled watch).
    uncached_jobs: HashSet<String>,
    last_write_lost: bool,
    now: i64,
    status_writes: usize,
    job_creates: usize,
    config_maps: usize,
    events: Vec<EventNote>,
    deleted_jobs: Vec<String>,
    /// Finished Jobs deleted under `spec.jobCleanup` (gone from the API server at once: no finalizer).
    released_jobs: Vec<String>,
    /// The shell stops between the next status write and its releases (a crash, a lost leadership).
    skip_next_release: bool,
    execution_deleted: bool,
    /// Every (step, attempt) ever launched.
    launched: HashSet<(String, u32)>,
    /// Every history entry ever written, uncapped.
    full_history: Vec<HistoryEntry>,
    /// Indexes of `full_history` where entries are missing before (one reconcile added more than the cap).
    history_gaps: Vec<usize>,
    /// Phase after every reconcile.
    phases: Vec<Phase>,
    /// When set, launched workers do not start, for this reason (reported once [`World::report_blocks`] runs:
    /// the kubelet reports after the Job exists).
    start_blocked: Option<StartBlock>,
    worker_policy: WorkerPolicy,
    /// When set, the next launch is refused by the worker policy with this message.
    refuse_next_launch_by_policy: Option<String>,
    /// What the Job controller's Events say when asked why a Job has no pod.
    pod_refusal: Option<StartBlock>,
    /// What the current attempt's worker reported (the shell's book).
    report: Option<AttemptReports>,
    /// Whether the report is due for a write.
    report_due: bool,
    /// Since when the replica acts.
    acting_since: Option<i64>,
}

impl World {
    fn new(spec: CrewExecutionSpec) -> Self {
        World {
            generation: 1,
            spec,
            status: None,
            jobs: Vec::new(),
            admission: Admission::Admitted,
            lose_next_write: false,
            reject_next_launch: None,
            uncached_jobs: HashSet::new(),
            last_write_lost: false,
            now: 0,
            status_writes: 0,
            job_creates: 0,
            config_maps: 0,
            events: Vec::new(),
            deleted_jobs: Vec::new(),
            released_jobs: Vec::new(),
            skip_next_release: false,
            execution_deleted: false,
            launched: HashSet::new(),
            full_history: Vec::new(),
            history_gaps: Vec::new(),
            phases: Vec::new(),
            start_blocked: None,
            worker_policy: WorkerPolicy::default(),
            refuse_next_launch_by_policy: None,
            pod_refusal: None,
            report: None,
            report_due: false,
            acting_since: None,
        }
    }

    /// A spec edit: bumps `metadata.generation`.
    fn edit(&mut self, change: impl FnOnce(&mut CrewExecutionSpec)) {
        change(&mut self.spec);
        self.generation += 1;
    }

    fn decide_at(&self, now: i64) -> Plan {
        self.decide_with(now, None, None)
    }

    /// Decides with the Job controller's Events read, as the shell does when a plan asks why a Job has no pod.
    fn decide_explained(&self, now: i64, pod_refused: Option<StartBlock>) -> Plan {
        let observed = Observed {
            pod_refused,
            ..self.observed(None, None)
        };
        decide(&observed, at(now))
    }

    fn decide_with(
        &self,
        now: i64,
        rejected: Option<JobRejection>,
        missing_job: Option<String>,
    ) -> Plan {
        decide(&self.observed(rejected, missing_job), at(now))
    }

    /// What the shell would observe of this world.
    fn observed(
        &self,
        rejected: Option<JobRejection>,
        missing_job: Option<String>,
    ) -> Observed<'_> {
        Observed {
            name: NAME,
            generation: Some(self.generation),
            spec: &self.spec,
            status: self.status.as_ref(),
            jobs: self.jobs.clone(),
            admission: self.admission.clone(),
            rejected,
            missing_job,
            default_start_timeout_seconds: DEFAULT_START_TIMEOUT_SECONDS,
            pod_refused: None,
            worker_policy: &self.worker_policy,
            report: self.report.as_ref(),
            report_due: self.report_due,
            acting_since: self.acting_since.map(at),
        }
    }

    /// The first plan of a reconcile, with the fresh read the shell makes when the plan asks for one.
    fn decide_verified(&self, now: i64) -> Plan {
        let plan = self.decide_at(now);
        if plan.explain_job.is_some() {
            return self.decide_explained(now, self.pod_refusal.clone());
        }
        match &plan.verify_job {
            Some(job) if !self.uncached_jobs.contains(job) => {
                self.decide_with(now, None, Some(job.clone()))
            }
            _ => plan,
        }
    }

    /// One reconcile at `now`: decide, check, apply like the shell, check the fixed point.
    fn step(&mut self, now: i64) -> Plan {
        assert!(now >= self.now, "time goes backwards: {now} < {}", self.now);
        self.now = now;
        let before = self.status.clone();
        let mut plan = self.decide_verified(now);
        let mut rejected_job = None;
        let policy_refusal = self
            .refuse_next_launch_by_policy
            .take()
            .map(|message| (true, message, true));
        if let Some(launch) = &plan.launch
            && let Some((permanent, message, policy)) = policy_refusal.or_else(|| {
                self.reject_next_launch
                    .take()
                    .map(|(permanent, message)| (permanent, message, false))
            })
        {
            // As the shell does: the ConfigMap was created, the Job refused; decide again knowing it.
            if plan.ensure_config_map {
                self.config_maps += 1;
            }
            let rejection = JobRejection {
                job_name: launch.job_name.clone(),
                permanent,
                message,
                policy,
            };
            rejected_job = Some(launch.job_name.clone());
            plan = self.decide_with(now, Some(rejection), None);
            assert!(
                plan.launch.is_none() && !plan.ensure_config_map,
                "t={now}: launch right after a refused create: {plan:#?}"
            );
        }
        self.check_plan(before.as_ref(), &plan, now);

        if plan.ensure_config_map {
            self.config_maps += 1;
        }
        if let Some(launch) = &plan.launch {
            let key = (launch.step.name.clone(), launch.attempt);
            assert!(
                self.launched.insert(key),
                "t={now}: second launch of step {} attempt {}",
                launch.step.name,
                launch.attempt
            );
            self.job_creates += 1;
            if !self.jobs.iter().any(|j| j.name == launch.job_name) {
                self.jobs.push(ObservedJob {
                    name: launch.job_name.clone(),
                    step: launch.step.name.clone(),
                    attempt: launch.attempt,
                    owned: true,
                    state: JobState::Active,
                    created: Some(at(now)),
                    started: Some(at(now)),
                    finished: None,
                    seen_finished: None,
                    failure_reason: None,
                    failure_message: None,
                    worker: None,
                    pod_seen: self.start_blocked.is_none(),
                    pod_started: self.start_blocked.is_none(),
                    start_blocked: None,
                    deleting: false,
                });
            }
        }
        for name in &plan.delete_jobs {
            self.deleted_jobs.push(name.clone());
            if let Some(j) = self.jobs.iter_mut().find(|j| &j.name == name) {
                j.deleting = true;
            }
        }
        let mut skipped_release = false;
        let lost = std::mem::take(&mut self.lose_next_write) && plan.status.is_some();
        self.last_write_lost = lost;
        if !lost {
            if let Some(status) = &plan.status {
                let old = before.as_ref().map_or(&[][..], |s| &s.history[..]);
                let added = appended(old, &status.history);
                let limit = effective_limit(self.spec.history_limit);
                if !added.is_empty() && status.history.len() == limit && status.history == added {
                    self.history_gaps.push(self.full_history.len());
                }
                self.full_history.extend(added);
                self.status = Some(status.clone());
                self.status_writes += 1;
            }
            self.events.extend(plan.events.iter().cloned());
            if std::mem::take(&mut self.skip_next_release) {
                skipped_release = !plan.release_jobs.is_empty();
            } else {
                for name in &plan.release_jobs {
                    self.released_jobs.push(name.clone());
                    self.jobs.retain(|j| &j.name != name);
                }
            }
        }
        if plan.delete_execution {
            self.execution_deleted = true;
        }
        self.phases.push(self.phase());
        self.check_world(now);
        if let Some(job) = rejected_job.filter(|_| !lost) {
            // Not a fixed point when the retry is due at once: the next reconcile starts the next attempt.
            let again = self.decide_verified(now);
            assert!(
                again.launch.as_ref().is_none_or(|l| l.job_name != job),
                "t={now}: the refused Job is created again"
            );
        } else if !lost {
            let again = self.decide_verified(now);
            let mut rest = again.clone();
            // Asking again to delete is harmless. Known gap: the reconcile that makes an execution terminal does not
            // look at the TTL (only later ones do), so with an already expired TTL the deletion comes one reconcile
            // late; the shell always reconciles again after its own status write.
            if plan.delete_execution || self.ttl_expired(now) {
                rest.delete_execution = false;
            }
            // The shell stopped before its releases: the next reconcile makes them.
            if skipped_release {
                rest.release_jobs.clear();
            }
            assert!(
                rest.is_noop(),
                "t={now}: not a fixed point; second plan {again:#?}\nfirst plan {plan:#?}"
            );
        }
        plan
    }

    /// Invariants of one plan against the status it was decided from.
    fn check_plan(&self, before: Option<&CrewExecutionStatus>, plan: &Plan, now: i64) {
        let old_phase = before.and_then(|s| s.phase).unwrap_or_default();
        let Some(after) = plan.status.as_ref().or(before) else {
            assert!(plan.launch.is_none(), "t={now}: launch without status");
            assert!(
                plan.release_jobs.is_empty(),
                "t={now}: Jobs released before any status"
            );
            return;
        };
        self.check_releases(after, plan, now);
        let new_phase = after.phase.unwrap_or_default();
        if old_phase.is_terminal() {
            assert_eq!(new_phase, old_phase, "t={now}: terminal phase changed");
            assert!(plan.launch.is_none(), "t={now}: launch after {old_phase}");
        }
        // History: capped, never shrinking below the cap, a chain of allowed moves ending in the new phase.
        let limit = effective_limit(self.spec.history_limit);
        let old_history = before.map_or(&[][..], |s| &s.history[..]);
        assert!(after.history.len() <= limit, "t={now}: history over cap");
        assert!(
            after.history.len() >= old_history.len().min(limit),
            "t={now}: history shrank"
        );
        let added = appended(old_history, &after.history);
        let complete = after.history.len() == old_history.len() + added.len();
        let mut phase = if complete {
            old_phase
        } else {
            added.first().map_or(old_phase, |e| e.from)
        };
        for entry in &added {
            assert_eq!(entry.from, phase, "t={now}: broken chain at {entry:?}");
            assert!(
                entry.from == entry.to || allowed(entry.from, entry.to),
                "t={now}: transition not allowed: {entry:?}"
            );
            assert_eq!(entry.time, time(now), "t={now}: entry time");
            phase = entry.to;
        }
        assert_eq!(phase, new_phase, "t={now}: phase changed without history");
        // Progress.
        if let Some(p) = &after.progress {
            assert!(p.completed_steps <= p.total_steps, "t={now}: {p:?}");
            assert!(p.percent <= 100, "t={now}: {p:?}");
            if new_phase == Phase::Succeeded {
                assert_eq!(p.percent, 100);
            }
        }
        // Attempts never go back.
        assert_ne!(after.attempt, Some(0));
        if let Some(before) = before {
            for s in &after.steps {
                if let Some(old) = before.steps.iter().find(|o| o.name == s.name) {
                    assert!(
                        s.attempt >= old.attempt,
                        "t={now}: step {} attempt {} -> {}",
                        s.name,
                        old.attempt,
                        s.attempt
                    );
                }
            }
        }
        assert!(
            plan.events.iter().all(|e| e.reason != "InvalidTransition"),
            "t={now}: decide attempted a refused transition: {:?}",
            plan.events
        );
        for deleted in &plan.delete_jobs {
            // Jobs are deleted when the run ends, or with the attempt the operator ended itself (StartTimeout,
            // ProgressStalled).
            let attempt_ended = after.steps.iter().any(|s| {
                s.job_name.as_deref() == Some(deleted.as_str())
                    && s.message.as_deref().is_some_and(|m| {
                        m.starts_with("StartTimeout") || m.starts_with("ProgressStalled")
                    })
            });
            assert!(
                new_phase.is_terminal() || attempt_ended,
                "t={now}: deletes Job {deleted} in {new_phase}"
            );
        }
        if let Some(launch) = &plan.launch {
            assert_eq!(
                new_phase,
                Phase::Running,
                "t={now}: launch while {new_phase}"
            );
            assert!(launch.attempt >= 1);
            assert_eq!(launch.job_name, job(&launch.step.name, launch.attempt));
            let recorded = after
                .steps
                .iter()
                .find(|s| s.name == launch.step.name)
                .expect("launched step in status");
            assert_eq!(
                (
                    recorded.phase,
                    recorded.attempt,
                    recorded.job_name.as_deref()
                ),
                (
                    StepPhase::Running,
                    launch.attempt,
                    Some(launch.job_name.as_str())
                ),
                "t={now}"
            );
            assert_eq!(
                after
                    .progress
                    .as_ref()
                    .and_then(|p| p.current_step.as_deref()),
                Some(launch.step.name.as_str())
            );
            assert_eq!(after.attempt, Some(launch.attempt));
            assert!(
                self.live_job().is_none(),
                "t={now}: launch while {:?} runs",
                self.live_job()
            );
        }
    }

    /// Invariants of the world after a plan was applied.
    /// A released Job is finished, owned, and its attempt's end is in the status stored once the plan's write
    /// lands: deleting it loses no outcome.
    fn check_releases(&self, after: &CrewExecutionStatus, plan: &Plan, now: i64) {
        if plan.release_jobs.is_empty() {
            return;
        }
        let policy = self.spec.job_cleanup.unwrap_or_default();
        assert_ne!(policy, JobCleanup::Keep, "t={now}: released under Keep");
        for name in &plan.release_jobs {
            let job = self
                .jobs
                .iter()
                .find(|j| &j.name == name)
                .unwrap_or_else(|| panic!("t={now}: released an unknown Job {name}"));
            assert!(
                job.owned && job.state != JobState::Active,
                "t={now}: released a live Job {name}"
            );
            let step = after
                .steps
                .iter()
                .find(|s| s.name == job.step)
                .unwrap_or_else(|| {
                    panic!("t={now}: released {name}, whose step status does not show")
                });
            let recorded = step.attempt > job.attempt
                || (step.attempt == job.attempt
                    && !matches!(step.phase, StepPhase::Pending | StepPhase::Running));
            assert!(
                recorded,
                "t={now}: released {name} before its outcome: {step:?}"
            );
            if policy == JobCleanup::OnStepSuccess {
                assert!(
                    step.attempt == job.attempt && step.phase == StepPhase::Succeeded,
                    "t={now}: OnStepSuccess released {name}: {step:?}"
                );
            }
        }
    }

    fn check_world(&self, now: i64) {
        let active = self
            .jobs
            .iter()
            .filter(|j| j.owned && j.state == JobState::Active && !j.deleting)
            .count();
        assert!(active <= 1, "t={now}: {active} active Jobs");
        if self.phase().is_terminal() {
            assert!(
                self.live_job().is_none(),
                "t={now}: {} with a live Job",
                self.phase()
            );
        }
    }

    /// Whether the execution is finished and its TTL has run out at `now`.
    fn ttl_expired(&self, now: i64) -> bool {
        let done = self
            .status
            .as_ref()
            .filter(|s| s.phase.is_some_and(Phase::is_terminal))
            .and_then(|s| s.completion_time.as_ref());
        match (done, self.spec.ttl_seconds_after_finished) {
            (Some(done), Some(ttl)) => done.0.as_second() + ttl <= at(now).as_second(),
            _ => false,
        }
    }

    /// The owned, active Job not being deleted.
    /// The pods of the workers that do not start report why.
    fn report_blocks(&mut self) {
        for job in self.jobs.iter_mut().filter(|j| !j.pod_started) {
            job.pod_seen = true;
            job.start_blocked = self.start_blocked.clone();
        }
    }

    fn live_job(&self) -> Option<&ObservedJob> {
        self.jobs
            .iter()
            .find(|j| j.owned && j.state == JobState::Active && !j.deleting)
    }

    fn finish(
        &mut self,
        name: &str,
        t: i64,
        state: JobState,
        change: impl FnOnce(&mut ObservedJob),
    ) {
        let j = self
            .jobs
            .iter_mut()
            .find(|j| j.name == name)
            .unwrap_or_else(|| panic!("no Job {name}"));
        assert_eq!(j.state, JobState::Active, "{name} already finished");
        j.state = state;
        j.finished = Some(at(t));
        j.seen_finished = Some(at(t));
        change(j);
    }

    /// The Job succeeds and its pod's termination (exit 0, `result`) is in the cache.
    fn succeed(&mut self, name: &str, t: i64, result: &str) {
        self.finish(name, t, JobState::Succeeded, |j| {
            j.worker = Some(WorkerOutcome {
                exit_code: 0,
                reason: Some("Completed".into()),
                message: Some(result.into()),
            });
        });
    }

    /// The Job fails (backoff limit reached) and its pod's termination is in the cache.
    fn fail(&mut self, name: &str, t: i64, exit_code: i32, message: &str) {
        self.finish(name, t, JobState::Failed, |j| {
            j.failure_reason = Some("BackoffLimitExceeded".into());
            j.failure_message = Some("Job has reached the specified backoff limit".into());
            j.worker = Some(WorkerOutcome {
                exit_code,
                reason: Some("Error".into()),
                message: Some(message.into()),
            });
        });
    }

    /// The Job controller killed the Job at its `activeDeadlineSeconds`.
    fn exceed_deadline(&mut self, name: &str, t: i64) {
        self.finish(name, t, JobState::Failed, |j| {
            j.failure_reason = Some("DeadlineExceeded".into());
            j.failure_message = Some("Job was active longer than specified deadline".into());
        });
    }

    fn status(&self) -> &CrewExecutionStatus {
        self.status.as_ref().expect("status written")
    }

    fn phase(&self) -> Phase {
        self.status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or_default()
    }

    fn reason(&self) -> &str {
        self.status().reason.as_deref().unwrap_or_default()
    }

    fn message(&self) -> &str {
        self.status().message.as_deref().unwrap_or_default()
    }

    fn progress(&self) -> &Progress {
        self.status().progress.as_ref().expect("progress")
    }

    fn step_status(&self, name: &str) -> &StepStatus {
        self.status()
            .steps
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no step {name} in status"))
    }

    fn cond(&self, type_: &str) -> &Condition {
        find(&self.status().conditions, type_).unwrap_or_else(|| panic!("no condition {type_}"))
    }

    /// `(status, reason)` of a condition.
    fn cond_is(&self, type_: &str) -> (&str, &str) {
        let c = self.cond(type_);
        (c.status.as_str(), c.reason.as_str())
    }

    fn event_reasons(&self) -> Vec<&str> {
        self.events.iter().map(|e| e.reason.as_str()).collect()
    }

    fn warnings(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter(|e| e.warning)
            .map(|e| e.reason.as_str())
            .collect()
    }

    /// `(from, to, reason)` of every entry in `status.history`.
    fn history(&self) -> Vec<(Phase, Phase, &str)> {
        self.status()
            .history
            .iter()
            .map(|e| (e.from, e.to, e.reason.as_str()))
            .collect()
    }

    fn last_entry(&self) -> &HistoryEntry {
        self.status().history.last().expect("history")
    }

    /// Runs a reconcile that must not write anything; returns its requeue timer.
    fn quiet(&mut self, now: i64) -> Option<u64> {
        let plan = self.step(now);
        assert!(plan.is_noop(), "t={now}: expected no writes, got {plan:#?}");
        plan.requeue_after_seconds
    }
}

/// Checks over a whole life: the uncapped history is a chain of allowed moves, terminal phases never change.
fn check_whole_life(label: &str, w: &World) {
    let mut phase = Phase::Pending;
    for (i, entry) in w.full_history.iter().enumerate() {
        if w.history_gaps.contains(&i) {
            phase = entry.from;
        }
        assert_eq!(entry.from, phase, "{label}: broken chain at {entry:?}");
        assert!(
            entry.from == entry.to || allowed(entry.from, entry.to),
            "{label}: {} -> {} not allowed",
            entry.from,
            entry.to
        );
        phase = entry.to;
    }
    assert_eq!(phase, w.phase(), "{label}: final phase");
    if let Some(first) = w.phases.iter().position(|p| p.is_terminal()) {
        assert!(
            w.phases[first..].iter().all(|p| *p == w.phases[first]),
            "{label}: left a terminal phase: {:?}",
            w.phases
        );
    }
    for pair in w.full_history.windows(2) {
        assert!(
            pair[0].time <= pair[1].time,
            "{label}: history out of order"
        );
    }
}

/// Once the run has ended and been reconciled, `spec.jobCleanup` has let go of every finished Job it covers.
fn check_cleaned_up(w: &World) {
    let policy = w.spec.job_cleanup.unwrap_or_default();
    let kept: Vec<_> = w
        .jobs
        .iter()
        .filter(|j| j.owned && !j.deleting)
        .filter(|j| match policy {
            JobCleanup::Keep => false,
            JobCleanup::OnStepCompletion => true,
            JobCleanup::OnStepSuccess => w.status().steps.iter().any(|s| {
                s.name == j.step && s.attempt == j.attempt && s.phase == StepPhase::Succeeded
            }),
        })
        .map(|j| &j.name)
        .collect();
    assert!(kept.is_empty(), "{policy:?} kept {kept:?}: {:#?}", w.status);
}

/// Story functions: each runs one scripted life with its assertions and returns the worlds it built.
mod story {
    use super::*;
    use Phase::*;

    pub fn one_step_success() -> Vec<World> {
        let mut w = World::new(spec(&[]));
        let plan = w.step(0);
        let launch = plan.launch.expect("the first reconcile launches");
        assert_eq!(
            (
                launch.job_name.as_str(),
                launch.attempt,
                launch.step.name.as_str()
            ),
            ("report-main-1", 1, "main")
        );
        assert_eq!(launch.step.image, "worker:1");
        assert!(plan.ensure_config_map);
        assert_eq!((w.phase(), w.reason()), (Running, "StepRunning"));
        assert_eq!(w.message(), "running step main (1/1), attempt 1");
        assert_eq!(w.progress().display, "0/1 (0%)");
        assert_eq!(w.progress().current_step.as_deref(), Some("main"));
        assert_eq!(w.status().start_time, Some(time(0)));
        assert_eq!(w.status().attempt, Some(1));
        assert_eq!(w.status().observed_generation, Some(1));
        assert_eq!(w.cond_is("Reconciling"), ("True", "StepRunning"));
        assert_eq!(w.cond_is("Succeeded").0, "Unknown");
        assert_eq!(w.cond_is("Paused"), ("False", "NotPaused"));
        assert_eq!(w.cond_is("Admitted"), ("True", "Admitted"));
        assert_eq!(w.quiet(10), None);

        w.succeed(&job("main", 1), 30, "the report");
        w.step(30);
        assert_eq!(w.phase(), Succeeded);
        assert_eq!(
            (
                w.status_writes,
                w.events.len(),
                w.job_creates,
                w.config_maps
            ),
            (2, 2, 1, 1)
        );
        println!(
            "one-step success: {} status writes, {} events, {} job creates, {} config maps",
            w.status_writes,
            w.events.len(),
            w.job_creates,
            w.config_maps
        );
        assert_eq!(w.event_reasons(), ["Started", "Succeeded"]);
        assert!(w.warnings().is_empty());
        assert_eq!(w.events[0].note, "Pending -> Running: started at step main");
        assert_eq!(
            w.events[1].note,
            "Running -> Succeeded: all 1 steps succeeded"
        );
        assert_eq!(
            w.history(),
            [
                (Pending, Running, "Started"),
                (Running, Succeeded, "Succeeded")
            ]
        );
        assert_eq!(w.status().history[0].time, time(0));
        assert_eq!(w.status().history[1].time, time(30));
        assert_eq!(w.status().history[1].step.as_deref(), Some("main"));
        let p = w.progress();
        assert_eq!(
            (
                p.percent,
                p.completed_steps,
                p.total_steps,
                p.display.as_str()
            ),
            (100, 1, 1, "1/1 (100%)")
        );
        assert_eq!(p.current_step, None);
        let s = w.status();
        assert_eq!(
            (s.start_time.clone(), s.completion_time.clone()),
            (Some(time(0)), Some(time(30)))
        );
        assert_eq!(
            (s.duration_seconds, s.duration.as_deref()),
            (Some(30), Some("30s"))
        );
        assert_eq!(s.result.as_deref(), Some("the report"));
        assert_eq!(s.next_retry_time, None);
        let main = w.step_status("main");
        assert_eq!(
            (
                main.phase,
                main.attempt,
                main.exit_code,
                main.duration_seconds
            ),
            (StepPhase::Succeeded, 1, Some(0), Some(30))
        );
        assert_eq!(main.result.as_deref(), Some("the report"));
        assert_eq!(main.message.as_deref(), Some("succeeded"));
        assert_eq!(w.cond_is("Succeeded"), ("True", "Succeeded"));
        assert_eq!(w.cond_is("Ready"), ("True", "Succeeded"));
        assert_eq!(w.cond_is("Reconciling").0, "False");
        assert_eq!(w.cond_is("Stalled").0, "False");
        assert_eq!(w.cond("Ready").last_transition_time, time(30));
        assert_eq!(w.cond("Stalled").last_transition_time, time(0));
        assert_eq!(w.quiet(1000), None);
        vec![w]
    }

    pub fn three_step_success() -> Vec<World> {
        let mut w = World::new(spec(&["plan", "research", "write"]));
        let first = w.step(0).launch.expect("launch plan");
        assert_eq!(first.job_name, "report-plan-1");
        assert_eq!(w.progress().display, "0/3 (0%)");
        w.succeed(&job("plan", 1), 10, "outline");
        let second = w.step(10);
        assert_eq!(
            second.launch.map(|l| l.job_name).as_deref(),
            Some("report-research-1")
        );
        assert!(!second.ensure_config_map, "the ConfigMap is made once");
        assert_eq!(w.progress().display, "1/3 (33%)");
        assert_eq!(w.progress().current_step.as_deref(), Some("research"));
        assert_eq!(w.step_status("plan").phase, StepPhase::Succeeded);
        assert_eq!(w.step_status("write").phase, StepPhase::Pending);
        assert_eq!(
            w.last_entry().message.as_deref(),
            Some("step plan succeeded in 10s; next: step research")
        );
        assert_eq!(w.status().result.as_deref(), Some("outline"));
        w.quiet(15);
        w.succeed(&job("research", 1), 25, "notes");
        w.step(25);
        assert_eq!(w.progress().display, "2/3 (66%)");
        w.succeed(&job("write", 1), 45, "final");
        w.step(45);
        w.quiet(50);
        assert_eq!(w.phase(), Succeeded);
        println!(
            "three-step success: {} status writes, {} events, {} job creates, {} config maps",
            w.status_writes,
            w.events.len(),
            w.job_creates,
            w.config_maps
        );
        assert_eq!(
            (
                w.status_writes,
                w.events.len(),
                w.job_creates,
                w.config_maps
            ),
            (4, 4, 3, 1)
        );
        assert_eq!(
            w.event_reasons(),
            ["Started", "StepSucceeded", "StepSucceeded", "Succeeded"]
        );
        assert_eq!(
            w.history(),
            [
                (Pending, Running, "Started"),
                (Running, Running, "StepSucceeded"),
                (Running, Running, "StepSucceeded"),
                (Running, Succeeded, "Succeeded"),
            ]
        );
        let steps: Vec<_> = w
            .status()
            .steps
            .iter()
            .map(|s| (s.name.as_str(), s.phase, s.duration_seconds))
            .collect();
        assert_eq!(
            steps,
            [
                ("plan", StepPhase::Succeeded, Some(10)),
                ("research", StepPhase::Succeeded, Some(15)),
                ("write", StepPhase::Succeeded, Some(20)),
            ]
        );
        assert_eq!(w.progress().display, "3/3 (100%)");
        assert_eq!(w.status().duration_seconds, Some(45));
        assert_eq!(w.status().result.as_deref(), Some("final"));
        vec![w]
    }

    pub fn failing_step_without_retry() -> Vec<World> {
        let mut w = World::new(spec(&[]));
        w.step(0);
        w.fail(&job("main", 1), 20, 3, "boom: quota exceeded");
        let plan = w.step(20);
        assert!(plan.launch.is_none() && plan.delete_jobs.is_empty());
        assert_eq!((w.phase(), w.reason()), (Failed, "StepFailed"));
        assert_eq!(w.message(), "step main failed: exit code 3 (Error)");
        let main = w.step_status("main");
        assert_eq!(
            (main.phase, main.attempt, main.exit_code),
            (StepPhase::Failed, 1, Some(3))
        );
        assert_eq!(main.message.as_deref(), Some("exit code 3 (Error)"));
        assert_eq!(main.result.as_deref(), Some("boom: quota exceeded"));
        assert_eq!(main.completion_time, Some(time(20)));
        let last = w.last_entry();
        assert_eq!(
            (last.from, last.to, last.reason.as_str()),
            (Running, Failed, "StepFailed")
        );
        assert!(last.message.as_deref().unwrap().contains("exit code 3"));
        assert_eq!(w.event_reasons(), ["Started", "StepFailed"]);
        assert_eq!(w.warnings(), ["StepFailed"]);
        assert_eq!(w.status().completion_time, Some(time(20)));
        assert_eq!(w.status().duration_seconds, Some(20));
        assert_eq!(w.status().result.as_deref(), Some("boom: quota exceeded"));
        assert_eq!(w.progress().display, "0/1 (0%)");
        assert_eq!(w.cond_is("Stalled"), ("True", "StepFailed"));
        assert_eq!(w.cond_is("Succeeded"), ("False", "StepFailed"));
        assert_eq!(w.cond_is("Ready").0, "False");
        assert_eq!(w.cond_is("Reconciling").0, "False");
        assert_eq!(w.quiet(100), None);
        assert_eq!(w.job_creates, 1);
        vec![w]
    }

    pub fn retries_then_success() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            retry: retry(2, 10),
            ..spec(&[])
        });
        w.step(0);
        w.fail(&job("main", 1), 20, 1, "flaky");
        let plan = w.step(20);
        assert!(plan.launch.is_none());
        assert_eq!(plan.requeue_after_seconds, Some(10), "requeue = backoff");
        assert_eq!((w.phase(), w.reason()), (Running, "RetryBackoff"));
        assert_eq!(w.status().next_retry_time, Some(time(30)));
        let main = w.step_status("main");
        assert_eq!(
            (main.phase, main.attempt, main.exit_code),
            (StepPhase::Retrying, 1, Some(1))
        );
        let last = w.last_entry();
        assert_eq!(
            (last.from, last.to, last.reason.as_str()),
            (Running, Running, "RetryScheduled")
        );
        assert_eq!(
            last.message.as_deref(),
            Some("step main attempt 1 failed (exit code 1 (Error)); attempt 2 in 10s")
        );
        assert_eq!(w.warnings(), ["RetryScheduled"]);
        assert_eq!(w.progress().current_step.as_deref(), Some("main"));
        assert_eq!(w.cond_is("Reconciling"), ("True", "RetryBackoff"));
        assert_eq!(w.quiet(25), Some(5));

        let plan = w.step(30);
        let launch = plan.launch.expect("attempt 2");
        assert_eq!(launch.attempt, 2);
        assert!(launch.job_name.ends_with("-2"), "{}", launch.job_name);
        assert!(!plan.ensure_config_map);
        assert_eq!(w.status().attempt, Some(2));
        assert_eq!(w.status().next_retry_time, None);
        assert_eq!(w.reason(), "StepRunning");
        assert_eq!(w.message(), "running step main (1/1), attempt 2");
        assert_eq!(w.last_entry().reason, "StepStarted");
        assert_eq!(w.step_status("main").start_time, Some(time(30)));
        assert_eq!(w.step_status("main").exit_code, None);

        w.succeed(&job("main", 2), 50, "ok");
        w.step(50);
        assert_eq!(w.phase(), Succeeded);
        assert_eq!(w.status().attempt, Some(2));
        assert_eq!(w.step_status("main").attempt, 2);
        assert_eq!(w.step_status("main").duration_seconds, Some(20));
        assert_eq!(w.status().duration_seconds, Some(50));
        assert_eq!(
            w.event_reasons(),
            ["Started", "RetryScheduled", "StepStarted", "Succeeded"]
        );
        assert_eq!((w.status_writes, w.job_creates), (4, 2));
        vec![w]
    }

    pub fn retries_exhausted() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            retry: retry(2, 5),
            ..spec(&[])
        });
        w.step(0);
        let mut requeues = Vec::new();
        let mut t = 0;
        for attempt in 1..=3 {
            let running = w.live_job().expect("a running attempt").clone();
            assert_eq!(
                (running.name.clone(), running.attempt),
                (job("main", attempt), attempt)
            );
            t += 10;
            w.fail(&running.name, t, 2, "still broken");
            let plan = w.step(t);
            if let Some(delay) = plan.requeue_after_seconds {
                requeues.push(delay);
                t += delay as i64;
                w.step(t);
            }
        }
        assert_eq!(requeues, [5, 10], "backoff doubles");
        assert_eq!((w.phase(), w.reason()), (Failed, "RetriesExhausted"));
        assert_eq!(
            w.message(),
            "step main failed after 3 attempts: exit code 2 (Error)"
        );
        assert_eq!(w.step_status("main").phase, StepPhase::Failed);
        assert_eq!(w.status().attempt, Some(3));
        assert_eq!(
            w.warnings(),
            ["RetryScheduled", "RetryScheduled", "RetriesExhausted"]
        );
        assert_eq!(w.job_creates, 3);
        vec![w]
    }

    pub fn step_deadline_is_a_failed_attempt() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            retry: retry(1, 10),
            steps: vec![StepSpec {
                timeout_seconds: Some(30),
                ..step_spec("main")
            }],
            ..spec(&[])
        });
        let launch = w.step(0).launch.unwrap();
        assert_eq!(launch.step.timeout_seconds, Some(30));
        // No pod outcome, but a deadline failure is recorded at once (no pod grace).
        w.exceed_deadline(&job("main", 1), 30);
        let plan = w.step(30);
        assert_eq!(plan.requeue_after_seconds, Some(10));
        let main = w.step_status("main");
        assert_eq!((main.phase, main.exit_code), (StepPhase::Retrying, None));
        assert_eq!(
            main.message.as_deref(),
            Some("timed out: Job was active longer than specified deadline")
        );
        assert_eq!(w.last_entry().reason, "RetryScheduled");
        assert!(w.step(40).launch.is_some());
        w.exceed_deadline(&job("main", 2), 70);
        w.step(70);
        assert_eq!((w.phase(), w.reason()), (Failed, "RetriesExhausted"));
        assert!(w.message().contains("timed out"), "{}", w.message());
        vec![w]
    }

    /// A worker that cannot start shows why (the step's message, the run's reason, `StartBlocked`) at the cost of
    /// one write, and fails its attempt with `StartTimeout` at the deadline; the retry policy applies.
    pub fn worker_that_cannot_start_times_out_and_is_retried() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            retry: retry(1, 10),
            start_timeout_seconds: Some(60),
            ..spec(&[])
        });
        w.start_blocked = Some(StartBlock {
            reason: "ImagePullBackOff".into(),
            message: "Back-off pulling image \"worker:1\"".into(),
        });
        w.step(0);
        w.report_blocks();
        let plan = w.step(1);
        assert_eq!(plan.requeue_after_seconds, Some(59));
        assert_eq!(w.reason(), "ImagePullBackOff");
        let blocked = "ImagePullBackOff: Back-off pulling image \"worker:1\"";
        assert_eq!(w.step_status("main").message.as_deref(), Some(blocked));
        let condition = w.cond("StartBlocked");
        assert_eq!(
            (condition.status.as_str(), condition.reason.as_str()),
            ("True", "ImagePullBackOff")
        );
        // The kubelet's message changes while it retries: no write for that.
        w.jobs[0].start_blocked = Some(StartBlock {
            reason: "ImagePullBackOff".into(),
            message: "rpc error: code = NotFound".into(),
        });
        assert!(w.step(20).status.is_none());
        let plan = w.step(60);
        assert_eq!(plan.delete_jobs, [job("main", 1)]);
        let main = w.step_status("main");
        assert_eq!(main.phase, StepPhase::Retrying);
        assert_eq!(
            main.message.as_deref(),
            Some(
                "StartTimeout: the worker did not start within 60s (ImagePullBackOff: Back-off pulling image \"worker:1\")"
            )
        );
        assert!(find(&w.status().conditions, "StartBlocked").is_none());
        assert_eq!(w.last_entry().reason, "RetryScheduled");
        assert_eq!(w.phase(), Running);
        assert!(w.step(70).launch.is_some(), "attempt 2 after the backoff");
        w.report_blocks();
        w.step(71);
        w.step(130);
        assert_eq!((w.phase(), w.reason()), (Failed, "RetriesExhausted"));
        assert!(w.message().contains("StartTimeout"), "{}", w.message());
        assert_eq!(w.deleted_jobs, [job("main", 1), job("main", 2)]);
        vec![w]
    }

    /// Without retries a start timeout fails the run with reason `StartTimeout`, also when no pod ever appeared
    /// (the Job controller could not create it: a missing ServiceAccount, a quota, a policy).
    pub fn start_timeout_without_retries_fails_the_run() -> Vec<World> {
        let mut w = World::new(spec(&[]));
        w.start_blocked = None;
        w.step(0);
        w.jobs[0].pod_started = false;
        w.jobs[0].pod_seen = false;
        let plan = w.step(1);
        assert_eq!(
            plan.requeue_after_seconds,
            Some(9),
            "the Job controller is asked after 10 s without a pod"
        );
        assert_eq!(w.reason(), "StepRunning");
        let plan = w.step(10);
        assert_eq!(plan.explain_job, Some(job("main", 1)), "no Event says why");
        assert_eq!(
            plan.requeue_after_seconds,
            Some(590),
            "the operator's default"
        );
        w.step(600);
        assert_eq!((w.phase(), w.reason()), (Failed, "StartTimeout"));
        assert!(
            w.message()
                .contains("its pod was not created or not scheduled yet"),
            "{}",
            w.message()
        );
        vec![w]
    }

    /// A Job whose pod the Job controller cannot create (quota, policy, a missing ServiceAccount) has no pod: after
    /// a while its Events are read once and say why; the attempt still ends with `StartTimeout`.
    pub fn a_pod_that_cannot_be_created_is_explained_then_times_out() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            start_timeout_seconds: Some(60),
            ..spec(&[])
        });
        w.step(0);
        w.jobs[0].pod_started = false;
        w.jobs[0].pod_seen = false;
        w.pod_refusal = Some(StartBlock {
            reason: "FailedCreate".into(),
            message: "pods \"report-main-1-x\" is forbidden: exceeded quota: no-pods".into(),
        });
        assert!(w.step(5).explain_job.is_none(), "too early to ask");
        w.step(10);
        assert_eq!(w.reason(), "FailedCreate");
        assert_eq!(w.cond_is("StartBlocked"), ("True", "FailedCreate"));
        let recorded = w.step_status("main").message.clone().unwrap();
        assert!(recorded.starts_with("FailedCreate: pods"), "{recorded}");
        w.pod_refusal = None;
        let plan = w.step(20);
        assert!(
            plan.explain_job.is_none() && plan.status.is_none(),
            "asked once per attempt; the report stays"
        );
        w.step(60);
        assert_eq!((w.phase(), w.reason()), (Failed, "StartTimeout"));
        assert!(w.message().contains("exceeded quota"), "{}", w.message());
        vec![w]
    }

    /// A worker blocked for a while that then starts runs on as usual: the block report goes.
    pub fn worker_that_starts_late_runs_normally() -> Vec<World> {
        let mut w = World::new(spec(&[]));
        w.start_blocked = Some(StartBlock {
            reason: "Unschedulable".into(),
            message: "0/3 nodes are available: 3 Insufficient cpu.".into(),
        });
        w.step(0);
        w.report_blocks();
        w.step(1);
        assert_eq!(w.reason(), "Unschedulable");
        w.jobs[0].pod_started = true;
        w.jobs[0].start_blocked = None;
        w.step(30);
        assert_eq!(w.reason(), "StepRunning");
        assert!(w.step_status("main").message.is_none());
        assert!(find(&w.status().conditions, "StartBlocked").is_none());
        w.succeed(&job("main", 1), 40, "ok");
        w.step(40);
        assert_eq!(w.phase(), Succeeded);
        vec![w]
    }

    /// An injector annotation is refused before anything runs; a ServiceAccount or Secret the namespace's owner
    /// did not open to workers fails the run at its launch, with reason `InvalidSpec` either way.
    pub fn worker_policy_refusals_are_invalid_specs() -> Vec<World> {
        let mut annotated = World::new(CrewExecutionSpec {
            pod_annotations: Some(
                [(
                    "vault.hashicorp.com/agent-inject".to_string(),
                    "true".to_string(),
                )]
                .into(),
            ),
            ..spec(&[])
        });
        let plan = annotated.step(0);
        assert!(plan.launch.is_none());
        assert_eq!(
            (annotated.phase(), annotated.reason()),
            (Failed, "InvalidSpec")
        );
        assert!(
            annotated
                .message()
                .contains("vault.hashicorp.com/agent-inject"),
            "{}",
            annotated.message()
        );
        let mut powerful = World::new(CrewExecutionSpec {
            service_account_name: Some("powerful".into()),
            retry: retry(3, 0),
            ..spec(&[])
        });
        powerful.refuse_next_launch_by_policy =
            Some("ServiceAccount \"powerful\" may not run workers".into());
        powerful.step(0);
        assert_eq!(
            (powerful.phase(), powerful.reason()),
            (Failed, "InvalidSpec")
        );
        assert_eq!(powerful.job_creates, 0, "no retry: no attempt can cure it");
        assert!(
            powerful.message().contains("powerful"),
            "{}",
            powerful.message()
        );
        vec![annotated, powerful]
    }

    pub fn execution_timeout() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            timeout_seconds: Some(60),
            ..spec(&["a", "b"])
        });
        w.step(0);
        assert_eq!(w.quiet(1), Some(59), "timer to the execution deadline");
        w.succeed(&job("a", 1), 30, "a");
        let plan = w.step(30);
        assert!(plan.launch.is_some());
        assert_eq!(plan.requeue_after_seconds, Some(30));
        let plan = w.step(60);
        assert_eq!(plan.delete_jobs, [job("b", 1)]);
        assert!(plan.launch.is_none());
        assert_eq!((w.phase(), w.reason()), (Failed, "TimedOut"));
        assert_eq!(w.message(), "execution exceeded spec.timeoutSeconds (60s)");
        let b = w.step_status("b");
        assert_eq!(b.phase, StepPhase::Cancelled);
        assert_eq!(
            b.message.as_deref(),
            Some("stopped: the execution timed out")
        );
        assert_eq!(b.completion_time, Some(time(60)));
        assert_eq!(w.step_status("a").phase, StepPhase::Succeeded);
        let last = w.last_entry();
        assert_eq!(
            (
                last.from,
                last.to,
                last.reason.as_str(),
                last.step.as_deref()
            ),
            (Running, Failed, "TimedOut", Some("b"))
        );
        assert_eq!(w.warnings(), ["TimedOut"]);
        assert_eq!(w.status().duration_seconds, Some(60));
        assert_eq!(w.progress().display, "1/2 (50%)");
        assert_eq!(w.cond_is("Stalled"), ("True", "TimedOut"));
        // The killed Job's failure changes nothing.
        w.fail(&job("b", 1), 62, 137, "");
        assert_eq!(w.quiet(62), None);
        vec![w]
    }

    /// Paused time counts toward `spec.timeoutSeconds`; a paused execution fails on resume.
    pub fn execution_timeout_while_paused() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            timeout_seconds: Some(60),
            ..spec(&["a", "b"])
        });
        w.step(0);
        w.edit(|s| s.suspend = true);
        w.step(5);
        w.succeed(&job("a", 1), 20, "a");
        w.step(20);
        assert_eq!(w.phase(), Paused);
        assert_eq!(w.quiet(30), Some(30));
        assert_eq!(
            w.quiet(100),
            None,
            "no timer while paused past the deadline"
        );
        assert_eq!(w.phase(), Paused);
        w.edit(|s| s.suspend = false);
        let plan = w.step(120);
        assert!(plan.launch.is_none());
        assert_eq!((w.phase(), w.reason()), (Failed, "TimedOut"));
        let tail: Vec<_> = w.history().into_iter().rev().take(2).collect();
        assert_eq!(
            tail,
            [(Running, Failed, "TimedOut"), (Paused, Running, "Resumed")]
        );
        vec![w]
    }

    /// Cancel from every live phase: Cancelled, the running Job (if any) deleted, nothing launched.
    pub fn cancel_from_every_live_phase() -> Vec<World> {
        type Setup = fn(&mut World);
        let cases: [(&str, Phase, Option<&str>, Setup); 7] = [
            ("pending, never written", Pending, None, |_| {}),
            ("pending, queue missing", Pending, None, |w| {
                w.admission = Admission::QueueNotFound("q".into());
                w.step(0);
            }),
            ("queued", Queued, None, |w| {
                w.admission = Admission::Wait {
                    queue: "q".into(),
                    position: 2,
                };
                w.step(0);
            }),
            ("running", Running, Some("report-a-1"), |w| {
                w.step(0);
            }),
            ("running, second step", Running, Some("report-b-1"), |w| {
                w.step(0);
                w.succeed(&job("a", 1), 3, "");
                w.step(3);
            }),
            ("running, retry backoff", Running, None, |w| {
                w.edit(|s| s.retry = retry(1, 100));
                w.step(0);
                w.fail(&job("a", 1), 3, 1, "");
                w.step(3);
            }),
            ("paused", Paused, None, |w| {
                w.edit(|s| s.suspend = true);
                w.step(0);
            }),
        ];
        let mut worlds = Vec::new();
        for (label, phase, running, setup) in cases {
            let mut w = World::new(spec(&["a", "b"]));
            setup(&mut w);
            assert_eq!(w.phase(), phase, "{label}");
            assert_eq!(w.live_job().map(|j| j.name.as_str()), running, "{label}");
            let events_before = w.events.len();
            w.edit(|s| s.cancel = true);
            let plan = w.step(10);
            assert!(plan.launch.is_none(), "{label}");
            assert_eq!(
                plan.delete_jobs,
                running.map(String::from).into_iter().collect::<Vec<_>>(),
                "{label}"
            );
            assert_eq!((w.phase(), w.reason()), (Cancelled, "Cancelled"), "{label}");
            let last = w.last_entry();
            assert_eq!((last.from, last.to), (phase, Cancelled), "{label}");
            assert_eq!(w.event_reasons()[events_before..], ["Cancelled"], "{label}");
            assert!(!w.events.last().unwrap().warning, "{label}");
            assert_eq!(w.status().completion_time, Some(time(10)), "{label}");
            assert_eq!(w.cond_is("Succeeded").0, "False", "{label}");
            assert_eq!(w.cond_is("Reconciling").0, "False", "{label}");
            if let Some(name) = running {
                let step = &name["report-".len()..name.len() - 2];
                let s = w.step_status(step);
                assert_eq!(s.phase, StepPhase::Cancelled, "{label}");
                assert_eq!(s.message.as_deref(), Some("cancelled"), "{label}");
                assert_eq!(last.step.as_deref(), Some(step), "{label}");
            }
            assert_eq!(w.quiet(20), None, "{label}");
            worlds.push(w);
        }
        worlds
    }

    pub fn clearing_cancel_is_irreversible() -> Vec<World> {
        let mut w = World::new(spec(&[]));
        w.step(0);
        w.edit(|s| s.cancel = true);
        w.step(5);
        assert_eq!(w.phase(), Cancelled);
        let writes = w.status_writes;
        w.edit(|s| s.cancel = false);
        let plan = w.step(10);
        assert_eq!(plan.events.len(), 1);
        assert_eq!(
            (plan.events[0].warning, plan.events[0].reason.as_str()),
            (true, "CancelIrreversible")
        );
        assert_eq!(w.phase(), Cancelled);
        assert_eq!(w.status().observed_generation, Some(w.generation));
        assert!(
            w.status()
                .conditions
                .iter()
                .all(|c| c.observed_generation == Some(w.generation))
        );
        assert_eq!(w.status_writes, writes + 1, "observedGeneration moves");
        assert_eq!(w.quiet(11), None, "warned once");
        assert_eq!(w.quiet(500), None);
        assert_eq!(w.warnings(), ["CancelIrreversible"]);
        vec![w]
    }

    pub fn suspend_before_start() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            suspend: true,
            ..spec(&[])
        });
        let plan = w.step(0);
        assert!(plan.launch.is_none() && !plan.ensure_config_map);
        assert_eq!((w.phase(), w.reason()), (Paused, "Paused"));
        assert_eq!(w.message(), "paused before step main");
        assert_eq!(w.cond_is("Paused"), ("True", "Paused"));
        assert_eq!(w.cond_is("Reconciling").0, "False");
        assert_eq!(w.status().start_time, None);
        assert_eq!(w.progress().current_step, None);
        assert_eq!(w.history(), [(Pending, Paused, "Paused")]);
        assert_eq!(w.quiet(100), None);
        w.edit(|s| s.suspend = false);
        let plan = w.step(200);
        assert!(plan.launch.is_some() && plan.ensure_config_map);
        assert_eq!(w.last_entry().reason, "Started", "first start from Paused");
        assert_eq!(w.status().start_time, Some(time(200)));
        assert_eq!(w.cond_is("Paused"), ("False", "NotPaused"));
        vec![w]
    }

    pub fn suspend_while_running_then_resume() -> Vec<World> {
        let mut w = World::new(spec(&["a", "b"]));
        w.step(0);
        w.edit(|s| s.suspend = true);
        let plan = w.step(5);
        assert!(
            plan.status.is_some(),
            "condition and observedGeneration change"
        );
        assert!(plan.launch.is_none() && plan.delete_jobs.is_empty());
        assert!(plan.events.is_empty());
        assert_eq!((w.phase(), w.reason()), (Running, "StepRunning"));
        assert_eq!(w.cond_is("Paused"), ("True", "PauseRequested"));
        assert_eq!(w.cond_is("Reconciling").0, "True");
        w.succeed(&job("a", 1), 20, "a");
        let plan = w.step(20);
        assert!(plan.launch.is_none(), "no new step while suspended");
        assert_eq!((w.phase(), w.reason()), (Paused, "Paused"));
        assert_eq!(w.message(), "paused before step b");
        assert_eq!(w.cond_is("Paused"), ("True", "Paused"));
        assert_eq!(w.progress().display, "1/2 (50%)");
        assert_eq!(w.progress().current_step, None);
        assert_eq!(w.step_status("b").phase, StepPhase::Pending);
        let tail: Vec<_> = w.history().into_iter().rev().take(2).collect();
        assert_eq!(
            tail,
            [
                (Running, Paused, "Paused"),
                (Running, Running, "StepSucceeded")
            ]
        );
        assert_eq!(w.quiet(100), None);

        w.edit(|s| s.suspend = false);
        let plan = w.step(120);
        let launch = plan.launch.expect("the next step launches on resume");
        assert_eq!(launch.job_name, job("b", 1));
        assert_eq!(
            (w.phase(), w.last_entry().reason.as_str()),
            (Running, "Resumed")
        );
        assert_eq!(w.cond_is("Paused"), ("False", "NotPaused"));
        assert_eq!(w.status().start_time, Some(time(0)), "first start is kept");
        w.succeed(&job("b", 1), 150, "b");
        w.step(150);
        assert_eq!(w.phase(), Succeeded);
        assert_eq!(w.status().duration_seconds, Some(150), "paused time counts");
        assert_eq!(
            w.event_reasons(),
            ["Started", "StepSucceeded", "Paused", "Resumed", "Succeeded"]
        );
        vec![w]
    }

    /// Suspended while a failed step waits for its retry: Paused; on resume the retry runs.
    pub fn suspend_during_retry_backoff() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            retry: retry(1, 30),
            ..spec(&[])
        });
        w.step(0);
        w.fail(&job("main", 1), 10, 1, "");
        w.step(10);
        assert_eq!(w.reason(), "RetryBackoff");
        w.edit(|s| s.suspend = true);
        let plan = w.step(15);
        assert!(plan.launch.is_none());
        assert_eq!(
            (w.phase(), w.message()),
            (Paused, "paused before retrying step main")
        );
        assert_eq!(w.status().next_retry_time, None);
        assert_eq!(w.step_status("main").phase, StepPhase::Retrying);
        assert_eq!(w.quiet(100), None, "no retry while paused");
        w.edit(|s| s.suspend = false);
        let plan = w.step(110);
        assert_eq!(plan.launch.map(|l| l.attempt), Some(2));
        assert_eq!(w.last_entry().reason, "StepStarted");
        assert_eq!(w.warnings(), ["RetryScheduled"], "retry noted once");
        vec![w]
    }

    /// Resumed while its queue is full: the execution waits in Queued (it used to be caught up to Running by the
    /// restart catch-up on the next reconcile, launching the next step past the queue).
    pub fn resume_into_full_queue_waits() -> Vec<World> {
        let mut w = World::new(spec(&["a", "b"]));
        w.step(0);
        w.edit(|s| s.suspend = true);
        w.succeed(&job("a", 1), 10, "a");
        w.step(10);
        assert_eq!(w.phase(), Paused);
        w.admission = Admission::Wait {
            queue: "q".into(),
            position: 1,
        };
        w.edit(|s| s.suspend = false);
        let plan = w.step(20);
        assert!(plan.launch.is_none());
        assert_eq!((w.phase(), w.reason()), (Queued, "Queued"));
        assert_eq!(w.last_entry().from, Paused);
        assert_eq!(w.quiet(21), None, "stays queued");
        assert_eq!(w.quiet(60), None);
        w.admission = Admission::Admitted;
        let plan = w.step(70);
        assert_eq!(plan.launch.map(|l| l.job_name), Some(job("b", 1)));
        assert_eq!(
            w.history()[w.history().len() - 1],
            (Queued, Running, "Resumed")
        );
        assert_eq!(w.status().start_time, Some(time(0)));
        vec![w]
    }

    pub fn admission_wait_queues() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            queue: Some("gpu".into()),
            ..spec(&[])
        });
        w.admission = Admission::Wait {
            queue: "gpu".into(),
            position: 2,
        };
        let plan = w.step(0);
        assert!(plan.launch.is_none() && !plan.ensure_config_map);
        assert_eq!((w.phase(), w.reason()), (Queued, "Queued"));
        assert_eq!(w.message(), "waiting for a free slot in queue gpu");
        assert_eq!(w.cond_is("Admitted"), ("False", "Queued"));
        assert_eq!(w.cond_is("Reconciling").0, "True");
        assert_eq!(w.event_reasons(), ["Queued"]);
        w.admission = Admission::Wait {
            queue: "gpu".into(),
            position: 1,
        };
        assert_eq!(w.quiet(10), None);
        w.admission = Admission::Admitted;
        let plan = w.step(20);
        assert!(plan.launch.is_some());
        assert_eq!(w.last_entry().reason, "Started");
        assert_eq!(
            w.history(),
            [(Pending, Queued, "Queued"), (Queued, Running, "Started")]
        );
        assert_eq!(
            w.status().start_time,
            Some(time(20)),
            "queued time is not run time"
        );
        assert_eq!(w.cond_is("Admitted"), ("True", "Admitted"));
        vec![w]
    }

    pub fn queue_not_found_warns_once() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            queue: Some("missing".into()),
            ..spec(&[])
        });
        w.admission = Admission::QueueNotFound("missing".into());
        let plan = w.step(0);
        assert!(plan.launch.is_none());
        assert_eq!((w.phase(), w.reason()), (Pending, "QueueNotFound"));
        assert_eq!(w.cond_is("Admitted"), ("False", "QueueNotFound"));
        assert_eq!(
            w.cond("Admitted").message,
            "queue missing does not exist; the execution starts once it does"
        );
        assert_eq!(w.warnings(), ["QueueNotFound"]);
        assert!(w.status().history.is_empty());
        assert_eq!(w.quiet(30), None, "not repeated");
        assert_eq!(w.quiet(300), None);
        assert_eq!(w.events.len(), 1);
        w.admission = Admission::Admitted;
        assert!(w.step(400).launch.is_some());
        assert_eq!(w.history(), [(Pending, Running, "Started")]);
        assert_eq!(w.cond_is("Admitted"), ("True", "Admitted"));
        vec![w]
    }

    pub fn invalid_spec_fails() -> Vec<World> {
        let cases: [(&str, CrewExecutionSpec, &str); 3] = [
            (
                "no image",
                CrewExecutionSpec {
                    image: None,
                    ..spec(&[])
                },
                "has no image",
            ),
            (
                "duplicate step names",
                spec(&["a", "b", "a"]),
                "used more than once",
            ),
            (
                "step without image",
                CrewExecutionSpec {
                    image: None,
                    steps: vec![
                        StepSpec {
                            image: Some("x:1".into()),
                            ..step_spec("a")
                        },
                        step_spec("b"),
                    ],
                    ..spec(&[])
                },
                "step \"b\" has no image",
            ),
        ];
        let mut worlds = Vec::new();
        for (label, spec, needle) in cases {
            let mut w = World::new(spec);
            let plan = w.step(0);
            assert!(plan.launch.is_none() && !plan.ensure_config_map, "{label}");
            assert_eq!((w.phase(), w.reason()), (Failed, "InvalidSpec"), "{label}");
            assert!(w.message().starts_with("invalid spec: "), "{label}");
            assert!(w.message().contains(needle), "{label}: {}", w.message());
            assert_eq!(w.cond_is("Stalled"), ("True", "InvalidSpec"), "{label}");
            assert_eq!(w.cond_is("Succeeded").0, "False", "{label}");
            assert_eq!(w.warnings(), ["InvalidSpec"], "{label}");
            assert_eq!(w.history(), [(Pending, Failed, "InvalidSpec")], "{label}");
            assert_eq!(w.status().completion_time, Some(time(0)), "{label}");
            assert_eq!(w.quiet(10), None, "{label}");
            assert_eq!(w.job_creates, 0, "{label}");
            worlds.push(w);
        }
        worlds
    }

    /// A spec edited into an invalid one while its step runs: the Job is deleted and the execution fails.
    pub fn invalid_spec_edit_while_running() -> Vec<World> {
        // Review finding 11: an edit of the steps after the start does not apply to the run, valid or not; it is
        // reported (Warning Event, condition StepsChanged) and the run goes on with the steps it started with.
        let mut w = World::new(spec(&["a", "b"]));
        w.step(0);
        w.edit(|s| s.steps.push(step_spec("a")));
        let plan = w.step(5);
        assert!(plan.delete_jobs.is_empty(), "the running step goes on");
        assert_eq!(w.phase(), Running);
        assert_eq!(w.warnings(), ["StepsChanged"]);
        assert_eq!(w.cond_is("StepsChanged"), ("True", "StepsFrozen"));
        assert_eq!(w.quiet(6), None);
        w.succeed(&job("a", 1), 10, "a");
        w.step(10);
        w.succeed(&job("b", 1), 20, "b");
        w.step(20);
        assert_eq!(w.phase(), Succeeded);
        assert_eq!(w.warnings(), ["StepsChanged"], "reported once");
        vec![w]
    }

    /// An invalid value of a field that stays live (here `retry`) fails a running run, as before the freeze.
    pub fn invalid_live_field_edit_while_running() -> Vec<World> {
        let mut w = World::new(spec(&["a", "b"]));
        w.step(0);
        w.edit(|s| {
            s.retry = Some(RetryPolicy {
                limit: 1,
                backoff_seconds: 10,
                max_backoff_seconds: 5,
            })
        });
        let plan = w.step(5);
        assert_eq!(plan.delete_jobs, [job("a", 1)]);
        assert_eq!((w.phase(), w.reason()), (Failed, "InvalidSpec"));
        assert_eq!(w.warnings(), ["InvalidSpec"]);
        assert_eq!(w.quiet(6), None);
        vec![w]
    }

    /// Review finding 11: renaming the running step (or reordering, inserting, removing steps) mid-run started the
    /// renamed step beside the running one and dropped the old step's status. The run keeps its frozen steps: no
    /// second Job, every step's status kept, the edit reported once.
    pub fn steps_renamed_mid_run_keep_the_frozen_steps() -> Vec<World> {
        let mut w = World::new(spec(&["a", "b", "c"]));
        w.step(0);
        w.succeed(&job("a", 1), 5, "a");
        w.step(5);
        let frozen = w.status().resolved_steps.clone();
        assert_eq!(
            frozen.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(
            frozen[1].image.as_deref(),
            Some("worker:1"),
            "inherited fields written out"
        );
        w.edit(|s| {
            s.steps = vec![step_spec("a"), step_spec("b2"), step_spec("c")];
            s.image = Some("worker:2".into());
        });
        let plan = w.step(8);
        assert!(plan.launch.is_none(), "no parallel step b2");
        assert_eq!(
            w.status()
                .steps
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(w.cond_is("StepsChanged"), ("True", "StepsFrozen"));
        w.succeed(&job("b", 1), 10, "b");
        let plan = w.step(10);
        let launch = plan.launch.expect("c starts");
        assert_eq!(
            (launch.step.name.as_str(), launch.step.image.as_str()),
            ("c", "worker:1"),
            "as frozen, not as edited"
        );
        w.edit(|s| {
            s.steps = vec![step_spec("a"), step_spec("b"), step_spec("c")];
            s.image = Some("worker:1".into());
        });
        w.step(11);
        assert!(
            find(&w.status().conditions, "StepsChanged").is_none(),
            "gone once the spec matches again"
        );
        w.succeed(&job("c", 1), 15, "c");
        w.step(15);
        assert_eq!(w.phase(), Succeeded);
        assert_eq!(w.warnings(), ["StepsChanged"]);
        assert_eq!(w.status().resolved_steps, frozen, "kept as written");
        vec![w]
    }

    /// An invalid spec while Paused or Queued fails the run like anywhere else: a stalled member used to keep its
    /// place at the head of its queue forever (review finding 5).
    pub fn invalid_spec_edit_while_paused_or_queued() -> Vec<World> {
        type Setup = fn(&mut World);
        let cases: [(&str, Phase, Setup); 2] = [
            ("paused", Paused, |w| {
                w.edit(|s| s.suspend = true);
                w.step(0);
            }),
            ("queued", Queued, |w| {
                w.admission = Admission::Wait {
                    queue: "q".into(),
                    position: 1,
                };
                w.step(0);
            }),
        ];
        let mut worlds = Vec::new();
        for (label, phase, setup) in cases {
            let mut w = World::new(spec(&["a"]));
            setup(&mut w);
            assert_eq!(w.phase(), phase, "{label}");
            let before = w.events.len();
            w.edit(|s| s.image = None);
            let plan = w.step(10);
            assert!(plan.launch.is_none(), "{label}");
            assert_eq!((w.phase(), w.reason()), (Failed, "InvalidSpec"), "{label}");
            assert_eq!(w.cond_is("Stalled"), ("True", "InvalidSpec"), "{label}");
            let new: Vec<_> = w.events[before..]
                .iter()
                .map(|e| e.reason.as_str())
                .collect();
            assert_eq!(new, ["InvalidSpec"], "{label}");
            assert_eq!(w.quiet(20), None, "{label}");
            worlds.push(w);
        }
        worlds
    }

    /// The retry limit lowered to 0 while a failed attempt waits, paused or queued: the run fails at once (it used
    /// to stay Paused/Queued forever, refusing the move and warning on every reconcile).
    pub fn retry_limit_lowered_while_paused_or_queued() -> Vec<World> {
        let mut worlds = Vec::new();
        for queued in [false, true] {
            let label = if queued { "queued" } else { "paused" };
            let mut w = World::new(CrewExecutionSpec {
                retry: retry(2, 60),
                ..spec(&[])
            });
            w.step(0);
            w.fail(&job("main", 1), 5, 1, "boom");
            w.step(5);
            assert_eq!(
                (w.phase(), w.reason()),
                (Running, "RetryBackoff"),
                "{label}"
            );
            w.edit(|s| s.suspend = true);
            w.step(6);
            assert_eq!(w.phase(), Paused, "{label}");
            if queued {
                w.admission = Admission::Wait {
                    queue: "q".into(),
                    position: 1,
                };
                w.edit(|s| s.suspend = false);
                w.step(7);
                assert_eq!(w.phase(), Queued, "{label}");
            }
            w.edit(|s| s.retry = retry(0, 60));
            let plan = w.step(8);
            assert!(plan.launch.is_none(), "{label}");
            assert_eq!((w.phase(), w.reason()), (Failed, "StepFailed"), "{label}");
            assert!(!w.event_reasons().contains(&"InvalidTransition"), "{label}");
            assert_eq!(w.quiet(20), None, "{label}");
            worlds.push(w);
        }
        worlds
    }

    /// The steps still to run removed from the spec while paused or queued between steps: the run succeeds with
    /// the steps it ran.
    pub fn remaining_steps_removed_while_paused_or_queued() -> Vec<World> {
        // Steps removed after the start do not apply to the run (review finding 11): it resumes with the steps it
        // started with, the edit reported.
        let mut worlds = Vec::new();
        for queued in [false, true] {
            let label = if queued { "queued" } else { "paused" };
            let mut w = World::new(spec(&["a", "b"]));
            w.step(0);
            w.edit(|s| s.suspend = true);
            w.step(1);
            w.succeed(&job("a", 1), 5, "a done");
            w.step(5);
            assert_eq!(w.phase(), Paused, "{label}");
            if queued {
                w.admission = Admission::Wait {
                    queue: "q".into(),
                    position: 1,
                };
                w.edit(|s| s.suspend = false);
                w.step(6);
                assert_eq!(w.phase(), Queued, "{label}");
            }
            w.edit(|s| s.steps.truncate(1));
            let plan = w.step(8);
            assert!(plan.launch.is_none(), "{label}");
            assert_eq!(w.warnings(), ["StepsChanged"], "{label}");
            if queued {
                w.admission = Admission::Admitted;
            } else {
                w.edit(|s| s.suspend = false);
            }
            let plan = w.step(9);
            assert_eq!(
                plan.launch.map(|l| l.step.name),
                Some("b".into()),
                "{label}"
            );
            w.succeed(&job("b", 1), 12, "b done");
            w.step(12);
            assert_eq!(w.phase(), Succeeded, "{label}");
            assert!(!w.event_reasons().contains(&"InvalidTransition"), "{label}");
            assert_eq!(w.quiet(20), None, "{label}");
            worlds.push(w);
        }
        worlds
    }

    /// The API server refuses the Job for a reason no retry can cure (422: a pod annotation key that is not a
    /// qualified name): the run fails at once with `JobRejected` and the API's message, even with retries left
    /// (review finding 2: it used to retry the create forever with no status).
    pub fn invalid_job_fails_the_run_at_once() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            retry: retry(3, 10),
            ..spec(&["a", "b"])
        });
        w.reject_next_launch = Some((
            true,
            "metadata.annotations: Invalid value: \"not a key\"".into(),
        ));
        let plan = w.step(0);
        assert!(plan.launch.is_none());
        assert_eq!((w.phase(), w.reason()), (Failed, "JobRejected"));
        assert!(
            w.message()
                .contains("Job report-a-1 rejected by the API server"),
            "{}",
            w.message()
        );
        assert!(w.message().contains("not a key"), "{}", w.message());
        let a = w.step_status("a");
        assert_eq!((a.phase, a.attempt), (StepPhase::Failed, 1));
        assert!(a.message.as_deref().unwrap().contains("not a key"));
        assert_eq!(w.event_reasons(), ["Started", "JobRejected"]);
        assert_eq!(w.warnings(), ["JobRejected"]);
        assert_eq!(w.job_creates, 0);
        assert_eq!(w.quiet(100), None);
        vec![w]
    }

    /// A refusal that may pass later (quota exceeded, an admission webhook, 429, 5xx) is a failed attempt under the
    /// retry policy: retried with its backoff, and the run fails with `JobRejected` once no retry is left.
    pub fn refused_job_is_retried_under_the_policy() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            retry: retry(1, 20),
            ..spec(&[])
        });
        w.reject_next_launch = Some((false, "exceeded quota: count/jobs.batch=0".into()));
        w.step(0);
        assert_eq!((w.phase(), w.reason()), (Running, "RetryBackoff"));
        let main = w.step_status("main");
        assert_eq!((main.phase, main.attempt), (StepPhase::Retrying, 1));
        assert_eq!(w.event_reasons(), ["Started", "RetryScheduled"]);
        assert_eq!(w.quiet(10), Some(10));
        w.reject_next_launch = Some((false, "exceeded quota: count/jobs.batch=0".into()));
        let plan = w.step(20);
        assert!(plan.launch.is_none());
        assert_eq!((w.phase(), w.reason()), (Failed, "JobRejected"));
        assert_eq!(
            w.event_reasons(),
            ["Started", "RetryScheduled", "JobRejected"]
        );
        assert_eq!(w.job_creates, 0);
        vec![w]
    }

    /// With no backoff, each refused attempt is still recorded before the next starts: no loop within a reconcile.
    pub fn refused_jobs_without_backoff_take_one_attempt_per_reconcile() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            retry: retry(2, 0),
            ..spec(&[])
        });
        for attempt in 1..=2 {
            w.reject_next_launch = Some((
                false,
                "the server is currently unable to handle the request".into(),
            ));
            let plan = w.step(attempt);
            assert!(plan.launch.is_none(), "attempt {attempt}");
            assert_eq!(w.step_status("main").attempt, attempt as u32);
            assert_eq!(w.phase(), Running);
        }
        let plan = w.step(3);
        assert_eq!(plan.launch.map(|l| l.attempt), Some(3));
        w.succeed(&job("main", 3), 4, "ok");
        w.step(4);
        assert_eq!(w.phase(), Succeeded);
        vec![w]
    }

    /// Another controller adds a condition of its own (server-side apply merges conditions by type): it is no
    /// reason to write, and the operator's writes never carry it (so never take it over).
    pub fn another_writers_condition_is_left_alone() -> Vec<World> {
        let mut w = World::new(spec(&[]));
        w.step(0);
        let foreign = Condition {
            type_: "PolicyChecked".into(),
            status: "True".into(),
            reason: "Checked".into(),
            message: "checked by another controller".into(),
            last_transition_time: time(0),
            observed_generation: None,
        };
        if let Some(status) = w.status.as_mut() {
            status.conditions.push(foreign);
        }
        w.quiet(1);
        w.succeed(&job("main", 1), 5, "");
        let plan = w.step(5);
        let written = plan.status.expect("the success is written");
        assert!(
            written
                .conditions
                .iter()
                .all(|c| c.type_ != "PolicyChecked"),
            "another writer's condition was written back: {:?}",
            written.conditions
        );
        assert_eq!(w.phase(), Succeeded);
        vec![w]
    }

    pub fn ttl_deletes_after_finish() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            ttl_seconds_after_finished: Some(100),
            ..spec(&[])
        });
        w.step(0);
        w.succeed(&job("main", 1), 30, "");
        let plan = w.step(30);
        assert!(!plan.delete_execution);
        assert_eq!(w.phase(), Succeeded);
        assert_eq!(w.quiet(31), Some(99));
        assert_eq!(w.quiet(129), Some(1));
        let plan = w.step(130);
        assert!(plan.delete_execution);
        assert!(plan.status.is_none() && plan.events.is_empty());
        assert!(w.execution_deleted);
        vec![w]
    }

    pub fn ttl_zero_after_failure() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            ttl_seconds_after_finished: Some(0),
            ..spec(&[])
        });
        w.step(0);
        w.fail(&job("main", 1), 5, 1, "");
        w.step(5);
        assert_eq!(w.phase(), Failed);
        assert!(w.step(6).delete_execution);
        vec![w]
    }

    pub fn job_name_taken_by_earlier_execution() -> Vec<World> {
        let mut w = World::new(spec(&[]));
        w.jobs.push(ObservedJob {
            name: job("main", 1),
            step: "main".into(),
            attempt: 1,
            owned: false,
            state: JobState::Succeeded,
            created: Some(at(-1000)),
            started: Some(at(-1000)),
            finished: Some(at(-900)),
            seen_finished: Some(at(-900)),
            failure_reason: None,
            failure_message: None,
            worker: Some(WorkerOutcome::default()),
            pod_seen: true,
            pod_started: true,
            start_blocked: None,
            deleting: true,
        });
        let plan = w.step(0);
        assert!(plan.launch.is_none());
        assert!(plan.delete_jobs.is_empty(), "not ours to delete");
        assert_eq!(plan.requeue_after_seconds, Some(5));
        assert_eq!(w.reason(), "JobNameTaken");
        assert!(w.message().contains("report-main-1"), "{}", w.message());
        assert_eq!(w.warnings(), ["JobNameTaken"]);
        assert!(!w.phase().is_terminal());
        let steps = &w.status().steps;
        assert_eq!(
            steps[0].phase,
            StepPhase::Pending,
            "the old Job is not our attempt"
        );
        assert_eq!(w.quiet(5), Some(5), "warned once");
        w.jobs.clear();
        let plan = w.step(10);
        assert_eq!(
            plan.launch.map(|l| l.job_name).as_deref(),
            Some("report-main-1")
        );
        assert_eq!(w.reason(), "StepRunning");
        assert_eq!(w.warnings(), ["JobNameTaken"]);
        w.succeed(&job("main", 1), 20, "");
        w.step(20);
        assert_eq!(w.phase(), Succeeded);
        vec![w]
    }

    /// A finished Job whose pod outcome is not in the cache: wait up to 10s, then record it without exit code.
    pub fn missing_pod_outcome() -> Vec<World> {
        let mut worlds = Vec::new();
        for succeeded in [true, false] {
            let label = if succeeded { "succeeded" } else { "failed" };
            let mut w = World::new(spec(&[]));
            w.step(0);
            let state = if succeeded {
                JobState::Succeeded
            } else {
                JobState::Failed
            };
            w.finish(&job("main", 1), 30, state, |j| {
                if !succeeded {
                    j.failure_reason = Some("BackoffLimitExceeded".into());
                    j.failure_message = Some("Job has reached the specified backoff limit".into());
                }
            });
            for t in [30, 35, 39] {
                let plan = w.step(t);
                assert!(plan.is_noop(), "{label} t={t}: {plan:#?}");
                assert_eq!(plan.requeue_after_seconds, Some(2), "{label} t={t}");
            }
            assert_eq!(w.phase(), Running, "{label}");
            w.step(40);
            let main = w.step_status("main");
            assert_eq!(
                (main.exit_code, main.result.as_deref()),
                (None, None),
                "{label}"
            );
            assert_eq!(
                main.completion_time,
                Some(time(30)),
                "{label}: the Job's time"
            );
            if succeeded {
                assert_eq!(w.phase(), Succeeded);
                assert_eq!(w.status().completion_time, Some(time(30)));
            } else {
                assert_eq!((w.phase(), w.reason()), (Failed, "StepFailed"));
                assert_eq!(
                    main.message.as_deref(),
                    Some("Job has reached the specified backoff limit")
                );
            }
            worlds.push(w);
        }
        worlds
    }

    /// Review finding 10, scenario 2: a finished step's pod is deleted (pod GC, by hand) and the operator restarts
    /// (its outcome is no longer in the cache): the recorded result, exit code and message are kept as written.
    pub fn recorded_outcome_outlives_its_pod() -> Vec<World> {
        let mut w = World::new(spec(&["a", "b"]));
        w.step(0);
        w.succeed(&job("a", 1), 10, r#"{"x":1}"#);
        w.step(11);
        let recorded = w.step_status("a").clone();
        assert_eq!(recorded.result.as_deref(), Some(r#"{"x":1}"#));
        assert_eq!(recorded.exit_code, Some(0));
        for j in w.jobs.iter_mut().filter(|j| j.step == "a") {
            j.worker = None;
            j.seen_finished = Some(at(100));
        }
        for t in [100, 120] {
            let plan = w.step(t);
            assert!(
                plan.status.is_none(),
                "t={t}: nothing to rewrite: {plan:#?}"
            );
        }
        assert_eq!(*w.step_status("a"), recorded);
        w.succeed(&job("b", 1), 130, "done");
        w.step(131);
        assert_eq!(w.phase(), Succeeded);
        assert_eq!(*w.step_status("a"), recorded);
        vec![w]
    }

    /// Review finding 10, scenarios 1 and 3: the wait for a finished Job's pod outcome counts from when the
    /// operator saw the Job finished, on its own clock, not from the Job controller's timestamp (clock skew, or a
    /// Job event that arrives late, would otherwise record the step without its result at once).
    pub fn pod_grace_counts_from_when_the_job_was_seen_finished() -> Vec<World> {
        let mut w = World::new(spec(&[]));
        w.step(0);
        w.finish(&job("main", 1), 30, JobState::Succeeded, |j| {
            j.seen_finished = Some(at(60));
        });
        for t in [60, 65, 69] {
            let plan = w.step(t);
            assert!(
                plan.status.is_none(),
                "t={t}: still waiting for the pod: {plan:#?}"
            );
        }
        assert_eq!(w.phase(), Running);
        w.jobs[0].worker = Some(WorkerOutcome {
            exit_code: 0,
            reason: Some("Completed".into()),
            message: Some("late but there".into()),
        });
        w.step(69);
        assert_eq!(w.phase(), Succeeded);
        let main = w.step_status("main");
        assert_eq!(main.result.as_deref(), Some("late but there"));
        assert_eq!(main.completion_time, Some(time(30)), "the Job's own time");
        vec![w]
    }

    /// The cache stops showing a running Job (a stalled watch) while the API server still has it: after 60 s the
    /// shell reads it fresh, finds it, and the step keeps running; nothing is declared lost and no second attempt
    /// starts beside the first (review finding 13).
    pub fn job_missing_from_the_cache_only_is_not_lost() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            retry: retry(1, 10),
            ..spec(&[])
        });
        w.step(0);
        let name = job("main", 1);
        let hidden: Vec<_> = w.jobs.drain(..).collect();
        w.uncached_jobs.insert(name.clone());
        for t in [30, 60, 65, 120] {
            let plan = w.step(t);
            assert!(plan.launch.is_none(), "t={t}");
            assert_eq!(
                plan.verify_job.as_deref(),
                (t >= 60).then_some(name.as_str()),
                "t={t}"
            );
            assert_eq!(
                (w.phase(), w.step_status("main").phase),
                (Running, StepPhase::Running),
                "t={t}"
            );
        }
        // The watch comes back with the Job, which finishes.
        w.jobs = hidden;
        w.uncached_jobs.clear();
        w.succeed(&name, 130, "ok");
        w.step(130);
        assert_eq!(w.phase(), Succeeded);
        assert_eq!(w.job_creates, 1);
        vec![w]
    }

    /// Status says a Job was created but the cache does not show it: wait, and after 60s count a failed attempt.
    pub fn launched_job_missing_from_cache() -> Vec<World> {
        let mut worlds = Vec::new();
        for limit in [0, 1] {
            let mut w = World::new(CrewExecutionSpec {
                retry: retry(limit, 10),
                ..spec(&[])
            });
            w.step(0);
            w.jobs.clear();
            for t in [1, 30, 59] {
                assert_eq!(w.quiet(t), Some(5), "limit {limit} t={t}");
            }
            assert_eq!(w.phase(), Running);
            let plan = w.step(60);
            assert!(plan.launch.is_none());
            let main = w.step_status("main");
            assert_eq!(
                main.message.as_deref(),
                Some("Job report-main-1 disappeared before its outcome was seen")
            );
            assert_eq!(main.exit_code, None);
            if limit == 0 {
                assert_eq!((w.phase(), w.reason()), (Failed, "StepFailed"));
                assert_eq!(main.phase, StepPhase::Failed);
            } else {
                assert_eq!((w.phase(), w.reason()), (Running, "RetryBackoff"));
                assert_eq!(main.phase, StepPhase::Retrying);
                assert_eq!(w.status().next_retry_time, Some(time(70)));
                assert_eq!(w.warnings(), ["RetryScheduled"]);
                assert_eq!(w.quiet(65), Some(5));
                assert_eq!(w.step(70).launch.map(|l| l.attempt), Some(2));
                w.succeed(&job("main", 2), 80, "");
                w.step(80);
                assert_eq!(w.phase(), Succeeded);
            }
            worlds.push(w);
        }
        worlds
    }

    pub fn history_cap_keeps_newest() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            history_limit: 3,
            ..spec(&["a", "b", "c"])
        });
        w.step(0);
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            let t = 10 * (i as i64 + 1);
            w.succeed(&job(name, 1), t, "");
            w.step(t);
        }
        assert_eq!(w.phase(), Succeeded);
        assert_eq!(w.full_history.len(), 4);
        assert_eq!(
            w.history(),
            [
                (Running, Running, "StepSucceeded"),
                (Running, Running, "StepSucceeded"),
                (Running, Succeeded, "Succeeded"),
            ]
        );
        assert_eq!(w.status().history[..], w.full_history[1..]);
        assert_eq!(w.status().history[0].step.as_deref(), Some("a"));
        vec![w]
    }

    // ---- restart / idempotence ----

    /// The first Job was created but the status write was lost: no second Job, and the status catches up.
    pub fn restart_after_first_launch() -> Vec<World> {
        let mut w = World::new(spec(&[]));
        w.lose_next_write = true;
        let plan = w.step(0);
        assert!(plan.launch.is_some());
        assert!(w.status.is_none(), "write lost");
        assert!(w.events.is_empty(), "events go with the write");
        let plan = w.step(3);
        assert!(plan.launch.is_none(), "no second Job");
        assert_eq!((w.phase(), w.reason()), (Running, "StepRunning"));
        assert_eq!(w.history(), [(Pending, Running, "Started")]);
        assert_eq!(w.last_entry().message.as_deref(), Some("started step main"));
        assert_eq!(w.event_reasons(), ["Started"]);
        assert_eq!(
            w.status().start_time,
            Some(time(0)),
            "from the Job's creation"
        );
        assert_eq!(w.step_status("main").start_time, Some(time(0)));
        assert_eq!((w.job_creates, w.status_writes), (1, 1));
        w.succeed(&job("main", 1), 10, "");
        w.step(10);
        assert_eq!(w.status().duration_seconds, Some(10));
        vec![w]
    }

    /// Status lost while waiting in the queue and then admitted and launched: catches up from Queued.
    pub fn restart_after_launch_from_queue() -> Vec<World> {
        let mut w = World::new(spec(&[]));
        w.admission = Admission::Wait {
            queue: "q".into(),
            position: 1,
        };
        w.step(0);
        w.admission = Admission::Admitted;
        w.lose_next_write = true;
        assert!(w.step(5).launch.is_some());
        assert_eq!(w.phase(), Queued);
        w.admission = Admission::Wait {
            queue: "q".into(),
            position: 1,
        };
        let plan = w.step(6);
        assert!(plan.launch.is_none());
        assert_eq!(w.phase(), Running, "a running Job holds its slot");
        assert_eq!(w.last_entry().reason, "Started");
        vec![w]
    }

    /// Resumed into a full queue, then admitted and launched, but that write was lost: the running Job is seen and
    /// the execution resumes (no second Job, no catch-up "Started").
    pub fn restart_after_resume_from_queue() -> Vec<World> {
        let mut w = World::new(spec(&["a", "b"]));
        w.step(0);
        w.edit(|s| s.suspend = true);
        w.succeed(&job("a", 1), 10, "a");
        w.step(10);
        w.admission = Admission::Wait {
            queue: "q".into(),
            position: 1,
        };
        w.edit(|s| s.suspend = false);
        w.step(20);
        assert_eq!(w.phase(), Queued);
        w.admission = Admission::Admitted;
        w.lose_next_write = true;
        assert!(w.step(30).launch.is_some());
        assert_eq!(w.phase(), Queued);
        w.admission = Admission::Wait {
            queue: "q".into(),
            position: 1,
        };
        let plan = w.step(31);
        assert!(plan.launch.is_none());
        assert_eq!((w.phase(), w.reason()), (Running, "StepRunning"));
        assert_eq!(w.last_entry().reason, "Resumed");
        assert_eq!(w.step_status("b").start_time, Some(time(30)));
        vec![w]
    }

    /// Status lost after the second step's Job was created: no second Job, the first step's success is noted.
    pub fn restart_mid_run() -> Vec<World> {
        let mut w = World::new(spec(&["plan", "research", "write"]));
        w.step(0);
        w.succeed(&job("plan", 1), 10, "");
        w.lose_next_write = true;
        assert!(w.step(10).launch.is_some());
        assert_eq!(
            w.step_status("plan").phase,
            StepPhase::Running,
            "write lost"
        );
        let plan = w.step(12);
        assert!(plan.launch.is_none());
        assert_eq!(w.last_entry().reason, "StepSucceeded");
        assert_eq!(w.progress().current_step.as_deref(), Some("research"));
        assert_eq!(w.step_status("research").phase, StepPhase::Running);
        assert_eq!(w.step_status("research").start_time, Some(time(10)));
        assert_eq!(w.job_creates, 2);
        vec![w]
    }

    /// Status lost after a retry's Job was created: no third Job, the attempt number is caught up.
    pub fn restart_after_retry_launch() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            retry: retry(3, 10),
            ..spec(&[])
        });
        w.step(0);
        w.fail(&job("main", 1), 5, 1, "");
        w.step(5);
        w.lose_next_write = true;
        assert_eq!(w.step(15).launch.map(|l| l.attempt), Some(2));
        assert_eq!(w.status().attempt, Some(1));
        let plan = w.step(16);
        assert!(plan.launch.is_none());
        assert_eq!(w.status().attempt, Some(2));
        assert_eq!(w.step_status("main").phase, StepPhase::Running);
        assert_eq!(
            w.step_status("main").job_name.as_deref(),
            Some("report-main-2")
        );
        assert_eq!(w.status().next_retry_time, None);
        assert_eq!(w.reason(), "StepRunning");
        assert_eq!(w.job_creates, 2);
        vec![w]
    }

    /// A worker's reports: written only when due, or with a write made anyway; the last report before the step
    /// ends rides on its outcome write; the execution's percent counts the running step's fraction.
    pub fn progress_reports_are_coalesced_and_ride_on_the_outcome() -> Vec<World> {
        let mut w = World::new(spec(&["plan", "write"]));
        w.step(0);
        w.succeed(&job("plan", 1), 5, "{}");
        w.step(5);
        assert_eq!(w.step_status("write").attempt, 1);
        let mut book = AttemptReports::new("write", 1, at(6));
        let sent = |book: &mut AttemptReports, json: &str, t: i64| {
            book.apply(serde_json::from_str(json).unwrap(), at(t))
                .unwrap();
        };
        sent(
            &mut book,
            r#"{"percent": 40, "message": "chapter 4", "metrics": {"pages": 12}}"#,
            6,
        );
        w.report = Some(book.clone());
        w.report_due = false;
        assert!(w.step(6).status.is_none(), "not due: no write");
        w.report_due = true;
        assert!(w.step(7).status.is_some(), "due: one write");
        let write = w.step_status("write");
        let progress = write.progress.clone().unwrap();
        assert_eq!(
            (progress.percent, progress.message.as_deref()),
            (40, Some("chapter 4"))
        );
        assert_eq!(progress.update_time, Some(time(6)));
        assert_eq!(write.metrics["pages"], 12.0);
        assert_eq!(w.progress().display, "1/2 (70%)");
        // A heartbeat alone is never worth a write, due or not.
        sent(&mut book, "{}", 8);
        w.report = Some(book.clone());
        assert!(w.step(9).status.is_none(), "heartbeat: no write");
        // Newer progress, not due; then the step ends: the outcome write carries it.
        sent(
            &mut book,
            r#"{"percent": 90, "warnings": ["rate limited once"]}"#,
            10,
        );
        w.report = Some(book.clone());
        w.report_due = false;
        assert!(w.step(10).status.is_none());
        w.succeed(&job("write", 1), 12, "done");
        w.step(12);
        assert_eq!(w.phase(), Succeeded);
        let write = w.step_status("write");
        assert_eq!(write.progress.as_ref().map(|p| p.percent), Some(90));
        assert_eq!(write.warnings, ["rate limited once"]);
        assert_eq!(w.progress().display, "2/2 (100%)");
        assert_eq!(
            w.status_writes, 4,
            "start, plan done, the due progress, the outcome"
        );
        vec![w]
    }

    /// A silent worker: after `stallTimeoutSeconds` without a report the condition `ProgressStalled` and one
    /// Warning Event; a report clears it.
    pub fn a_silent_worker_is_reported_stalled_then_recovers() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            stall_timeout_seconds: Some(30),
            ..spec(&[])
        });
        w.step(0);
        let plan = w.step(1);
        assert_eq!(
            plan.requeue_after_seconds,
            Some(29),
            "back when the stall timeout ends"
        );
        assert!(w.step(29).status.is_none());
        w.step(30);
        assert_eq!(w.cond_is("ProgressStalled"), ("True", "NoProgressReport"));
        assert_eq!(w.phase(), Running, "Warn keeps it running");
        assert_eq!(w.warnings(), ["ProgressStalled"]);
        assert!(
            w.step(45).status.is_none(),
            "still stalled: no new write, no new Event"
        );
        assert_eq!(w.warnings(), ["ProgressStalled"]);
        let mut book = AttemptReports::new("main", 1, at(50));
        book.apply(serde_json::from_str("{}").unwrap(), at(50))
            .unwrap();
        w.report = Some(book);
        w.report_due = true;
        w.step(50);
        assert!(
            find(&w.status().conditions, "ProgressStalled").is_none(),
            "a heartbeat clears it"
        );
        w.step(79);
        assert!(find(&w.status().conditions, "ProgressStalled").is_none());
        w.step(80);
        assert_eq!(
            w.cond_is("ProgressStalled").0,
            "True",
            "30 s after the last report"
        );
        vec![w]
    }

    /// `onStall: Fail` fails the run and deletes the Job; `Retry` fails the attempt under the retry policy.
    pub fn on_stall_fail_and_retry() -> Vec<World> {
        let mut fail = World::new(CrewExecutionSpec {
            stall_timeout_seconds: Some(20),
            on_stall: Some(OnStall::Fail),
            retry: retry(3, 5),
            ..spec(&[])
        });
        fail.step(0);
        let plan = fail.step(20);
        assert_eq!(plan.delete_jobs, [job("main", 1)]);
        assert_eq!((fail.phase(), fail.reason()), (Failed, "ProgressStalled"));
        assert_eq!(fail.step_status("main").phase, StepPhase::Failed);

        let mut retried = World::new(CrewExecutionSpec {
            steps: vec![StepSpec {
                name: "main".into(),
                stall_timeout_seconds: Some(20),
                on_stall: Some(OnStall::Retry),
                ..Default::default()
            }],
            retry: retry(1, 5),
            ..spec(&[])
        });
        retried.step(0);
        let plan = retried.step(20);
        assert_eq!(plan.delete_jobs, [job("main", 1)]);
        assert_eq!(retried.step_status("main").phase, StepPhase::Retrying);
        assert!(
            retried
                .step_status("main")
                .message
                .as_deref()
                .unwrap_or_default()
                .starts_with("ProgressStalled: "),
        );
        assert!(
            retried.step(25).launch.is_some(),
            "attempt 2 after the backoff"
        );
        retried.step(45);
        assert_eq!(
            (retried.phase(), retried.reason()),
            (Failed, "RetriesExhausted")
        );
        vec![fail, retried]
    }

    /// A replica that just began acting (start-up, failover) gives the worker a full stall timeout: reports sent
    /// to the replica before it were not seen here.
    pub fn a_new_leader_does_not_count_a_stall_from_before_it() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            stall_timeout_seconds: Some(30),
            ..spec(&[])
        });
        w.step(0);
        w.acting_since = Some(25);
        assert!(w.step(40).status.is_none());
        w.step(55);
        assert_eq!(w.cond_is("ProgressStalled").0, "True");
        vec![w]
    }

    /// `OnStepCompletion`: each step's Job goes in the reconcile that writes its outcome (after the write), and
    /// nothing of the outcome goes with it; no extra status write.
    pub fn finished_jobs_released_on_step_completion() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            job_cleanup: Some(JobCleanup::OnStepCompletion),
            ..spec(&["plan", "write"])
        });
        w.step(0);
        w.succeed(&job("plan", 1), 10, "outline");
        let plan = w.step(10);
        assert!(plan.status.is_some(), "the outcome is written");
        assert_eq!(plan.release_jobs, [job("plan", 1)]);
        assert_eq!(plan.launch.map(|l| l.job_name), Some(job("write", 1)));
        assert!(w.jobs.iter().all(|j| j.name != job("plan", 1)), "deleted");
        assert_eq!(w.quiet(11), None, "a gone Job changes nothing");
        let plan_step = w.step_status("plan");
        assert_eq!(
            (
                plan_step.phase,
                plan_step.exit_code,
                plan_step.result.as_deref()
            ),
            (StepPhase::Succeeded, Some(0), Some("outline"))
        );
        w.succeed(&job("write", 1), 20, "text");
        let plan = w.step(20);
        assert_eq!(plan.release_jobs, [job("write", 1)]);
        assert_eq!(w.phase(), Succeeded);
        assert!(w.jobs.is_empty());
        assert_eq!(w.step_status("write").result.as_deref(), Some("text"));
        assert_eq!((w.status_writes, w.job_creates), (3, 2), "as with Keep");
        assert_eq!(w.released_jobs, [job("plan", 1), job("write", 1)]);
        vec![w]
    }

    /// `OnStepSuccess` keeps a failed attempt's Job (for its logs) and lets the successful retry's go.
    pub fn failed_attempts_kept_on_step_success() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            job_cleanup: Some(JobCleanup::OnStepSuccess),
            retry: retry(1, 10),
            ..spec(&[])
        });
        w.step(0);
        w.fail(&job("main", 1), 5, 1, "flaky");
        assert!(w.step(5).release_jobs.is_empty(), "a failure is kept");
        w.step(15);
        w.succeed(&job("main", 2), 20, "ok");
        assert_eq!(w.step(20).release_jobs, [job("main", 2)]);
        assert_eq!(w.phase(), Succeeded);
        let kept: Vec<_> = w.jobs.iter().map(|j| j.name.clone()).collect();
        assert_eq!(kept, [job("main", 1)]);
        vec![w]
    }

    /// The shell stops after writing an outcome and before deleting its Job: the next reconcile deletes it, with
    /// no status write. A lost status write releases nothing.
    pub fn release_survives_a_restart() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            job_cleanup: Some(JobCleanup::OnStepCompletion),
            ..spec(&["a", "b"])
        });
        w.step(0);
        w.succeed(&job("a", 1), 10, "ok");
        w.lose_next_write = true;
        w.step(10);
        assert!(
            w.released_jobs.is_empty(),
            "nothing stored, nothing released"
        );
        w.skip_next_release = true;
        let plan = w.step(11);
        assert_eq!(plan.release_jobs, [job("a", 1)]);
        assert!(w.released_jobs.is_empty(), "the shell stopped");
        let writes = w.status_writes;
        let plan = w.step(12);
        assert_eq!(plan.release_jobs, [job("a", 1)]);
        assert!(plan.status.is_none() && plan.launch.is_none());
        assert_eq!(w.status_writes, writes);
        assert_eq!(w.released_jobs, [job("a", 1)]);
        assert_eq!(w.step_status("a").phase, StepPhase::Succeeded);
        vec![w]
    }

    /// A cancel while a finished Job's pod is not yet in the cache: the step ends `Cancelled` with the run (it
    /// stayed `Running` in the finished status before), and its Job is released like any ended attempt's.
    pub fn cancel_while_awaiting_the_pod_ends_the_step() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            job_cleanup: Some(JobCleanup::OnStepCompletion),
            ..spec(&[])
        });
        w.step(0);
        w.finish(&job("main", 1), 5, JobState::Failed, |_| {});
        assert!(w.step(5).status.is_none(), "waits for the pod");
        w.edit(|s| s.cancel = true);
        let plan = w.step(6);
        assert!(plan.delete_jobs.is_empty(), "the Job has finished");
        assert_eq!(plan.release_jobs, [job("main", 1)]);
        assert_eq!(w.phase(), Cancelled);
        assert_eq!(w.step_status("main").phase, StepPhase::Cancelled);
        vec![w]
    }

    /// The Cancelled write is lost: the next reconcile cancels again (deleting the Job again is harmless).
    pub fn restart_terminal_write_lost() -> Vec<World> {
        let mut w = World::new(spec(&[]));
        w.step(0);
        w.edit(|s| s.cancel = true);
        w.lose_next_write = true;
        let plan = w.step(5);
        assert_eq!(plan.delete_jobs, [job("main", 1)]);
        assert_eq!(w.phase(), Running, "write lost");
        let plan = w.step(6);
        assert_eq!(
            plan.delete_jobs,
            [job("main", 1)],
            "deleted again, harmlessly"
        );
        assert_eq!(w.phase(), Cancelled);
        assert_eq!(w.event_reasons(), ["Started", "Cancelled"]);
        vec![w]
    }
}

macro_rules! stories {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                story::$name();
            }
        )*

        /// Every story, by name.
        const STORIES: &[(&str, fn() -> Vec<World>)] = &[$((stringify!($name), story::$name)),*];
    };
}

stories!(
    one_step_success,
    finished_jobs_released_on_step_completion,
    failed_attempts_kept_on_step_success,
    release_survives_a_restart,
    cancel_while_awaiting_the_pod_ends_the_step,
    three_step_success,
    failing_step_without_retry,
    retries_then_success,
    retries_exhausted,
    step_deadline_is_a_failed_attempt,
    worker_that_cannot_start_times_out_and_is_retried,
    start_timeout_without_retries_fails_the_run,
    progress_reports_are_coalesced_and_ride_on_the_outcome,
    a_silent_worker_is_reported_stalled_then_recovers,
    on_stall_fail_and_retry,
    a_new_leader_does_not_count_a_stall_from_before_it,
    worker_that_starts_late_runs_normally,
    a_pod_that_cannot_be_created_is_explained_then_times_out,
    worker_policy_refusals_are_invalid_specs,
    execution_timeout,
    execution_timeout_while_paused,
    cancel_from_every_live_phase,
    clearing_cancel_is_irreversible,
    suspend_before_start,
    suspend_while_running_then_resume,
    suspend_during_retry_backoff,
    resume_into_full_queue_waits,
    admission_wait_queues,
    queue_not_found_warns_once,
    invalid_spec_fails,
    invalid_spec_edit_while_running,
    invalid_live_field_edit_while_running,
    steps_renamed_mid_run_keep_the_frozen_steps,
    invalid_spec_edit_while_paused_or_queued,
    retry_limit_lowered_while_paused_or_queued,
    remaining_steps_removed_while_paused_or_queued,
    invalid_job_fails_the_run_at_once,
    refused_job_is_retried_under_the_policy,
    refused_jobs_without_backoff_take_one_attempt_per_reconcile,
    another_writers_condition_is_left_alone,
    ttl_deletes_after_finish,
    ttl_zero_after_failure,
    job_name_taken_by_earlier_execution,
    missing_pod_outcome,
    recorded_outcome_outlives_its_pod,
    pod_grace_counts_from_when_the_job_was_seen_finished,
    launched_job_missing_from_cache,
    job_missing_from_the_cache_only_is_not_lost,
    history_cap_keeps_newest,
    restart_after_first_launch,
    restart_after_launch_from_queue,
    restart_after_resume_from_queue,
    restart_mid_run,
    restart_after_retry_launch,
    restart_terminal_write_lost,
);

#[test]
fn every_story_history_respects_the_transition_graph() {
    let mut checked = 0;
    for (name, run) in STORIES {
        for (i, w) in run().iter().enumerate() {
            check_whole_life(&format!("{name}[{i}]"), w);
            checked += 1;
        }
    }
    assert!(checked >= STORIES.len());
}

/// Writes of a clean run of `n` steps: n+1 status writes and events, n Jobs, one ConfigMap.
#[test]
fn write_counts_per_clean_run() {
    for n in 1..=4usize {
        let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut w = World::new(spec(&refs));
        w.step(0);
        for (i, name) in names.iter().enumerate() {
            let t = 10 * (i as i64 + 1);
            w.succeed(&job(name, 1), t, "ok");
            w.step(t);
            w.quiet(t + 1);
        }
        assert_eq!(w.phase(), Phase::Succeeded);
        println!(
            "{n}-step run: {} status writes, {} events, {} job creates, {} config maps",
            w.status_writes,
            w.events.len(),
            w.job_creates,
            w.config_maps
        );
        assert_eq!(
            (
                w.status_writes,
                w.events.len(),
                w.job_creates,
                w.config_maps
            ),
            (n + 1, n + 1, n, 1)
        );
    }
    let mut w = World::new(CrewExecutionSpec {
        crew: None,
        inputs: None,
        ..spec(&[])
    });
    assert!(
        !w.step(0).ensure_config_map,
        "no ConfigMap without crew or inputs"
    );
}

/// Sub-second parts of `now` are dropped: the status written survives an API round trip unchanged.
#[test]
fn sub_second_time_is_truncated() {
    let w = World::new(spec(&[]));
    let observed = Observed {
        name: NAME,
        generation: Some(1),
        spec: &w.spec,
        status: None,
        jobs: Vec::new(),
        admission: Admission::Admitted,
        rejected: None,
        missing_job: None,
        default_start_timeout_seconds: DEFAULT_START_TIMEOUT_SECONDS,
        pod_refused: None,
        worker_policy: &WorkerPolicy::default(),
        report: None,
        report_due: false,
        acting_since: None,
    };
    let now = at(0)
        .checked_add(jiff::SignedDuration::from_millis(750))
        .unwrap();
    let status = decide(&observed, now).status.unwrap();
    assert_eq!(status.start_time, Some(time(0)));
    assert_eq!(status.history[0].time, time(0));
}

// ---- property test ----

#[derive(Clone, Debug)]
enum Act {
    Advance(i64),
    Succeed(bool),
    Fail(i32),
    Deadline,
    FinishWithoutPod(bool),
    ToggleSuspend,
    Cancel,
    Admit(u8),
    LoseNextWrite,
    PurgeDeleted,
    Reconcile,
    /// `spec.retry.limit` set to this (retries stay live mid-run).
    SetRetryLimit(u32),
    /// The last step removed from `spec.steps` (when more than one is left).
    DropLastStep,
    /// The API server refuses the next Job create (permanently or not).
    RejectNextLaunch(bool),
    /// The shell stops between the next status write and its Job releases.
    SkipNextRelease,
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        5 => (1i64..120).prop_map(Act::Advance),
        4 => any::<bool>().prop_map(Act::Succeed),
        3 => (1i32..256).prop_map(Act::Fail),
        1 => Just(Act::Deadline),
        1 => any::<bool>().prop_map(Act::FinishWithoutPod),
        2 => Just(Act::ToggleSuspend),
        1 => Just(Act::Cancel),
        2 => (0u8..3).prop_map(Act::Admit),
        1 => Just(Act::LoseNextWrite),
        1 => Just(Act::PurgeDeleted),
        1 => Just(Act::Reconcile),
        1 => (0u32..=3).prop_map(Act::SetRetryLimit),
        1 => Just(Act::DropLastStep),
        1 => any::<bool>().prop_map(Act::RejectNextLaunch),
        1 => Just(Act::SkipNextRelease),
    ]
}

fn arb_spec() -> impl Strategy<Value = CrewExecutionSpec> {
    (
        1usize..=4,
        0u32..=3,
        0u32..=20,
        prop::option::of(30i64..600),
        2u32..=20,
        any::<bool>(),
        any::<bool>(),
        prop::bool::weighted(0.05),
        prop::sample::select(vec![
            None,
            Some(JobCleanup::Keep),
            Some(JobCleanup::OnStepCompletion),
            Some(JobCleanup::OnStepSuccess),
        ]),
    )
        .prop_map(
            |(steps, limit, backoff, timeout, history_limit, suspend, crew, cancel, cleanup)| {
                let names: Vec<String> = (0..steps).map(|i| format!("s{i}")).collect();
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                let base = spec(&refs);
                CrewExecutionSpec {
                    retry: retry(limit, backoff),
                    timeout_seconds: timeout,
                    history_limit,
                    suspend,
                    cancel,
                    job_cleanup: cleanup,
                    queue: Some("q".into()),
                    crew: base.crew.clone().filter(|_| crew),
                    ..base
                }
            },
        )
}

fn admission(kind: u8) -> Admission {
    match kind {
        0 => Admission::Admitted,
        1 => Admission::Wait {
            queue: "q".into(),
            position: 3,
        },
        _ => Admission::QueueNotFound("q".into()),
    }
}

fn any_active_job(w: &World) -> Option<String> {
    w.jobs
        .iter()
        .find(|j| j.owned && j.state == JobState::Active)
        .map(|j| j.name.clone())
}

fn run_random(spec: CrewExecutionSpec, first_admission: u8, acts: Vec<Act>) {
    let mut w = World::new(spec);
    w.admission = admission(first_admission);
    let mut now = 0;
    w.step(now);
    for a in acts {
        match a {
            Act::Advance(d) => now += d,
            Act::Succeed(with_result) => {
                if let Some(name) = any_active_job(&w) {
                    w.succeed(&name, now, if with_result { "done" } else { "" });
                }
            }
            Act::Fail(code) => {
                if let Some(name) = any_active_job(&w) {
                    w.fail(&name, now, code, "failed");
                }
            }
            Act::Deadline => {
                if let Some(name) = any_active_job(&w) {
                    w.exceed_deadline(&name, now);
                }
            }
            Act::FinishWithoutPod(ok) => {
                if let Some(name) = any_active_job(&w) {
                    let state = if ok {
                        JobState::Succeeded
                    } else {
                        JobState::Failed
                    };
                    w.finish(&name, now, state, |_| {});
                }
            }
            Act::ToggleSuspend => w.edit(|s| s.suspend = !s.suspend),
            Act::Cancel => w.edit(|s| s.cancel = true),
            Act::Admit(kind) => w.admission = admission(kind),
            Act::LoseNextWrite => w.lose_next_write = !w.last_write_lost,
            Act::PurgeDeleted => w.jobs.retain(|j| !j.deleting),
            Act::Reconcile => {}
            Act::SetRetryLimit(limit) => w.edit(|s| {
                let backoff = s.retry.as_ref().map_or(0, |r| r.backoff_seconds);
                s.retry = retry(limit, backoff);
            }),
            Act::RejectNextLaunch(permanent) => {
                w.reject_next_launch = Some((permanent, "refused".into()));
            }
            Act::SkipNextRelease => w.skip_next_release = true,
            Act::DropLastStep => {
                // Only steps that have not started: editing a started step mid-run is review finding 11 (the
                // spec is to be frozen at start), not covered here yet.
                let last = w.spec.steps.last().map(|s| s.name.clone());
                let started = last.as_ref().is_some_and(|name| {
                    w.jobs.iter().any(|j| &j.step == name)
                        || w.status.as_ref().is_some_and(|st| {
                            st.steps.iter().any(|s| &s.name == name && s.attempt > 0)
                        })
                });
                if w.spec.steps.len() > 1 && !started {
                    w.edit(|s| {
                        s.steps.pop();
                    });
                }
            }
        }
        w.step(now);
    }

    // Resume, admit and let every Job succeed: the run must end.
    w.lose_next_write = false;
    w.reject_next_launch = None;
    if w.spec.suspend {
        w.edit(|s| s.suspend = false);
    }
    w.admission = Admission::Admitted;
    for _ in 0..200 {
        w.step(now);
        if w.phase().is_terminal() {
            break;
        }
        if let Some(job) = w.live_job().map(|j| j.name.clone()) {
            w.succeed(&job, now, "ok");
        }
        now += 11;
    }
    assert!(w.phase().is_terminal(), "did not finish: {:#?}", w.status);
    w.step(now + 1000);
    check_whole_life("random run", &w);
    check_cleaned_up(&w);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_runs_keep_the_invariants(
        spec in arb_spec(),
        first_admission in 0u8..3,
        acts in prop::collection::vec(act(), 0..60),
    ) {
        run_random(spec, first_admission, acts);
    }
}
