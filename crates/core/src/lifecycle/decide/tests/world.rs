//! The simulated world: what the shell would see of one execution, every plan applied the way the shell applies
//! it, and the checks made after every reconcile (fixed point, transition graph, history chain and cap, monotone
//! attempts, terminal phases stay, one Job per step attempt, at most one live Job, releases that lose no outcome).

use crate::lifecycle::Read;
use crate::lifecycle::conditions::find;
use crate::lifecycle::history::effective_limit;
use crate::lifecycle::names::job_name;
use crate::lifecycle::report::AttemptReports;
use crate::lifecycle::steps::DEFAULT_START_TIMEOUT_SECONDS;
use crate::lifecycle::transitions::allowed;
use crate::lifecycle::worker_policy::{DEFAULT_SERVICE_ACCOUNT, ServiceAccountFact, WorkerPolicy};
use crate::lifecycle::{
    Admission, EventNote, JobController, JobRejection, JobState, Observed, ObservedJob, Plan,
    StartBlock, WorkerOutcome, decide,
};
use crew_api::execution::DEFAULT_HISTORY_LIMIT;
use crew_api::{
    ConditionType, CrewExecutionSpec, CrewExecutionStatus, HistoryEntry, JobCleanup, Phase,
    Progress, Reason, RetryPolicy, StepPhase, StepSpec, StepStatus,
};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use std::collections::{BTreeMap, HashSet};
/// Name of the simulated execution.
pub const NAME: &str = "report";
/// Time 0 of every story: 2026-01-01T00:00:00Z.
pub const EPOCH: i64 = 1_767_225_600;

pub fn at(second: i64) -> Timestamp {
    Timestamp::from_second(EPOCH + second).unwrap()
}

pub fn time(second: i64) -> Time {
    Time(at(second))
}

pub fn job(step: &str, attempt: u32) -> String {
    job_name(NAME, step, attempt)
}

/// The controller reference of the simulated execution's own Jobs.
pub fn own_controller() -> JobController {
    JobController {
        api_version: "crew.dev/v1alpha1".into(),
        kind: "CrewExecution".into(),
        name: NAME.into(),
        uid: "uid-of-this-execution".into(),
    }
}

/// The controller reference of the Jobs of an earlier execution of the same name (deleted; its Jobs go with it).
pub fn earlier_controller() -> JobController {
    JobController {
        uid: "uid-of-an-earlier-execution".into(),
        ..own_controller()
    }
}

/// A Job this execution does not own, holding the name of its `step`'s attempt `attempt`: still running, not being
/// deleted, controlled by `controller` (None: orphaned).
pub fn foreign_job(step: &str, attempt: u32, controller: Option<JobController>) -> ObservedJob {
    ObservedJob {
        name: job(step, attempt),
        step: step.into(),
        attempt,
        owned: false,
        controller,
        state: JobState::Active,
        created: Some(at(-1000)),
        started: Some(at(-1000)),
        finished: None,
        seen_finished: None,
        failure_reason: None,
        failure_message: None,
        worker: None,
        pod_seen: true,
        pod_started: true,
        start_blocked: None,
        deleting: false,
        posted: None,
    }
}

pub fn step_spec(name: &str) -> StepSpec {
    StepSpec {
        name: name.into(),
        ..Default::default()
    }
}

/// A valid spec with a crew and inputs (so the first launch asks for the ConfigMap); no steps means `main`.
pub fn spec(steps: &[&str]) -> CrewExecutionSpec {
    CrewExecutionSpec {
        image: Some("worker:1".into()),
        crew: Some(serde_json::json!({ "agents": [{ "role": "researcher" }] })),
        inputs: Some(serde_json::json!({ "topic": "tests" })),
        steps: steps.iter().map(|n| step_spec(n)).collect(),
        history_limit: DEFAULT_HISTORY_LIMIT,
        ..Default::default()
    }
}

pub fn retry(limit: u32, backoff_seconds: u32) -> Option<RetryPolicy> {
    Some(RetryPolicy {
        limit,
        backoff_seconds,
        max_backoff_seconds: 300,
    })
}

/// Every reason written is a [`Reason`] (a blocked start passes the reason Kubernetes gave through, in
/// `status.reason` and the `StartBlocked` condition; a condition falls back to the phase before any reason), every
/// condition type a [`ConditionType`], and every Event has its reason's type.
fn check_vocabulary(written: &CrewExecutionStatus, added: &[HistoryEntry], plan: &Plan, now: i64) {
    let blocked = find(&written.conditions, ConditionType::StartBlocked).map(|c| c.reason.as_str());
    let known = |reason: &str| Reason::parse(reason).is_some() || Some(reason) == blocked;
    for entry in added {
        assert!(
            Reason::parse(&entry.reason).is_some(),
            "t={now}: history reason {:?} is not a Reason",
            entry.reason
        );
    }
    if let Some(reason) = &written.reason {
        assert!(known(reason), "t={now}: status.reason {reason:?}");
    }
    for c in &written.conditions {
        assert!(
            ConditionType::parse(&c.type_).is_some(),
            "t={now}: condition type {:?}",
            c.type_
        );
        let phase = Phase::ALL.iter().any(|p| p.as_str() == c.reason);
        assert!(known(&c.reason) || phase, "t={now}: condition reason {c:?}");
    }
    for event in &plan.events {
        let reason = Reason::parse(&event.reason)
            .unwrap_or_else(|| panic!("t={now}: Event reason {:?}", event.reason));
        assert_eq!(
            event.warning,
            reason.is_warning(),
            "t={now}: Event type of {reason}: {event:?}"
        );
    }
}

/// History entries present in `new` but not in `old`: `new` is `old` (maybe with its oldest entries dropped by the
/// cap) followed by the added entries.
pub fn appended(old: &[HistoryEntry], new: &[HistoryEntry]) -> Vec<HistoryEntry> {
    let overlap = (0..=old.len().min(new.len()))
        .rev()
        .find(|&k| new[..k] == old[old.len() - k..])
        .unwrap_or(0);
    new[overlap..].to_vec()
}

/// What the shell sees of one execution, and what it did so far.
#[derive(Debug)]
pub struct World {
    pub generation: i64,
    /// The execution `spec.resumeFrom` names, as the shell's cache would show it.
    pub resume_source: Option<crate::lifecycle::ResumeSource>,
    pub spec: CrewExecutionSpec,
    pub status: Option<CrewExecutionStatus>,
    pub jobs: Vec<ObservedJob>,
    pub admission: Admission,
    /// The next reconcile's status write fails (its events are lost with it; Job writes before it happened).
    pub lose_next_write: bool,
    /// The API server refuses the next Job create: (permanent, message). The shell then decides again.
    pub reject_next_launch: Option<(bool, String)>,
    /// Jobs the API server has but the cache does not show (a stalled watch).
    pub uncached_jobs: HashSet<String>,
    pub last_write_lost: bool,
    pub now: i64,
    pub status_writes: usize,
    pub job_creates: usize,
    pub config_maps: usize,
    pub events: Vec<EventNote>,
    pub deleted_jobs: Vec<String>,
    /// Finished Jobs deleted under `spec.jobCleanup` (gone from the API server at once: no finalizer).
    pub released_jobs: Vec<String>,
    /// The shell stops between the next status write and its releases (a crash, a lost leadership).
    pub skip_next_release: bool,
    pub execution_deleted: bool,
    /// Every (step, attempt) ever launched.
    pub launched: HashSet<(String, u32)>,
    /// Every history entry ever written, uncapped.
    pub full_history: Vec<HistoryEntry>,
    /// Indexes of `full_history` where entries are missing before (one reconcile added more than the cap).
    pub history_gaps: Vec<usize>,
    /// Phase after every reconcile.
    pub phases: Vec<Phase>,
    /// When set, launched workers do not start, for this reason (reported once [`World::report_blocks`] runs:
    /// the kubelet reports after the Job exists).
    pub start_blocked: Option<StartBlock>,
    pub worker_policy: WorkerPolicy,
    /// The ServiceAccounts of the namespace, with their annotations (`default` exists, unannotated).
    pub service_accounts: BTreeMap<String, BTreeMap<String, String>>,
    /// What the Job controller's Events say when asked why a Job has no pod.
    pub pod_refusal: Option<StartBlock>,
    /// What the current attempt's worker reported (the shell's book).
    pub report: Option<AttemptReports>,
    /// Whether the report is due for a write.
    pub report_due: bool,
    /// Since when the replica acts.
    pub acting_since: Option<i64>,
    /// Whether a feature needs the execution kept (a sink has something of it to deliver).
    pub retain: bool,
    /// Whether the execution carries the operator's finalizer.
    pub has_finalizer: bool,
    /// What the archive holds of it.
    pub archive: crate::lifecycle::ArchiveFact,
    /// Finalizer adds and removes made.
    pub finalizer_writes: usize,
}

/// Facts the shell read during one reconcile, for its plans.
#[derive(Clone, Debug, Default)]
pub struct Answers {
    pub rejected: Option<JobRejection>,
    pub missing_job: Option<String>,
    pub pod_refused: Option<StartBlock>,
    pub service_account: Option<ServiceAccountFact>,
}

impl World {
    pub fn new(spec: CrewExecutionSpec) -> Self {
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
            service_accounts: BTreeMap::from([(
                DEFAULT_SERVICE_ACCOUNT.to_string(),
                BTreeMap::new(),
            )]),
            pod_refusal: None,
            report: None,
            report_due: false,
            acting_since: None,
            retain: false,
            has_finalizer: false,
            archive: Default::default(),
            finalizer_writes: 0,
            resume_source: None,
        }
    }

    /// A spec edit: bumps `metadata.generation`.
    pub fn edit(&mut self, change: impl FnOnce(&mut CrewExecutionSpec)) {
        change(&mut self.spec);
        self.generation += 1;
    }

    /// The first plan at `now`, before the shell answers any read it asks for.
    pub fn decide_at(&self, now: i64) -> Plan {
        decide(&self.observed(&Answers::default()), at(now))
    }

    /// What the shell would observe of this world, with the facts it read for this reconcile.
    pub fn observed(&self, answers: &Answers) -> Observed<'_> {
        Observed {
            name: NAME,
            generation: Some(self.generation),
            spec: &self.spec,
            status: self.status.as_ref(),
            jobs: &self.jobs,
            admission: self.admission.clone(),
            rejected: answers.rejected.clone(),
            missing_job: answers.missing_job.clone(),
            default_start_timeout_seconds: DEFAULT_START_TIMEOUT_SECONDS,
            pod_refused: answers.pod_refused.clone(),
            service_account: answers.service_account.clone(),
            worker_policy: &self.worker_policy,
            report: self.report.as_ref(),
            report_due: self.report_due,
            acting_since: self.acting_since.map(at),
            retain: self.retain,
            has_finalizer: self.has_finalizer,
            archive: self.archive.clone(),
            resume_source: self.resume_source.clone(),
        }
    }

    /// What a read of ServiceAccount `name` finds in this world.
    pub fn service_account(&self, name: &str) -> ServiceAccountFact {
        match self.service_accounts.get(name) {
            Some(annotations) => ServiceAccountFact::Found {
                name: name.to_string(),
                annotations: annotations.clone(),
            },
            None => ServiceAccountFact::Missing {
                name: name.to_string(),
                namespace: "ns".into(),
            },
        }
    }

    /// The plan of a reconcile at `now`, the reads its plans ask for answered as the shell answers them (each
    /// once; an answer that is no news leaves the plan as it stands).
    pub fn decide_answering(&self, now: i64, answers: &mut Answers) -> Plan {
        let mut asked = Vec::new();
        loop {
            let plan = decide(&self.observed(answers), at(now));
            let Some(read) = plan.read.clone().filter(|read| !asked.contains(read)) else {
                return plan;
            };
            asked.push(read.clone());
            match read {
                Read::Job(job) if !self.uncached_jobs.contains(&job) => {
                    answers.missing_job = Some(job);
                }
                Read::PodRefusal(_) if self.pod_refusal.is_some() => {
                    answers.pod_refused = self.pod_refusal.clone();
                }
                Read::ServiceAccount(name) => {
                    answers.service_account = Some(self.service_account(&name));
                }
                Read::Job(_) | Read::PodRefusal(_) => return plan,
            }
        }
    }

    /// The first plan of a reconcile, with the fresh reads the shell makes when the plan asks for them.
    pub fn decide_verified(&self, now: i64) -> Plan {
        self.decide_answering(now, &mut Answers::default())
    }

    /// One reconcile at `now`: decide, check, apply like the shell, check the fixed point.
    pub fn step(&mut self, now: i64) -> Plan {
        assert!(now >= self.now, "time goes backwards: {now} < {}", self.now);
        self.now = now;
        let before = self.status.clone();
        let mut answers = Answers::default();
        let mut plan = self.decide_answering(now, &mut answers);
        let mut rejected_job = None;
        if let Some(launch) = &plan.launch
            && let Some((permanent, message)) = self.reject_next_launch.take()
        {
            // As the shell does: the ConfigMap was created, the Job refused; decide again knowing it.
            if plan.ensure_config_map {
                self.config_maps += 1;
            }
            answers.rejected = Some(JobRejection {
                job_name: launch.job_name.clone(),
                permanent,
                message,
            });
            rejected_job = Some(launch.job_name.clone());
            plan = self.decide_answering(now, &mut answers);
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
                    controller: Some(own_controller()),
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
                    posted: None,
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
        if let Some(change) = plan.finalizer {
            self.has_finalizer = change == crate::lifecycle::FinalizerChange::Add;
            self.finalizer_writes += 1;
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
        if let Some(written) = &plan.status {
            check_vocabulary(written, &added, plan, now);
        }
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
    pub fn report_blocks(&mut self) {
        for job in self.jobs.iter_mut().filter(|j| !j.pod_started) {
            job.pod_seen = true;
            job.start_blocked = self.start_blocked.clone();
        }
    }

    pub fn live_job(&self) -> Option<&ObservedJob> {
        self.jobs
            .iter()
            .find(|j| j.owned && j.state == JobState::Active && !j.deleting)
    }

    pub fn finish(
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
    pub fn succeed(&mut self, name: &str, t: i64, result: &str) {
        self.finish(name, t, JobState::Succeeded, |j| {
            j.worker = Some(WorkerOutcome {
                exit_code: 0,
                reason: Some("Completed".into()),
                message: Some(result.into()),
            });
        });
    }

    /// The Job fails (backoff limit reached) and its pod's termination is in the cache.
    pub fn fail(&mut self, name: &str, t: i64, exit_code: i32, message: &str) {
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
    pub fn exceed_deadline(&mut self, name: &str, t: i64) {
        self.finish(name, t, JobState::Failed, |j| {
            j.failure_reason = Some("DeadlineExceeded".into());
            j.failure_message = Some("Job was active longer than specified deadline".into());
        });
    }

    pub fn status(&self) -> &CrewExecutionStatus {
        self.status.as_ref().expect("status written")
    }

    pub fn phase(&self) -> Phase {
        self.status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or_default()
    }

    pub fn reason(&self) -> &str {
        self.status().reason.as_deref().unwrap_or_default()
    }

    pub fn message(&self) -> &str {
        self.status().message.as_deref().unwrap_or_default()
    }

    pub fn progress(&self) -> &Progress {
        self.status().progress.as_ref().expect("progress")
    }

    pub fn step_status(&self, name: &str) -> &StepStatus {
        self.status()
            .steps
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no step {name} in status"))
    }

    pub fn cond(&self, type_: &str) -> &Condition {
        let known =
            ConditionType::parse(type_).unwrap_or_else(|| panic!("{type_} is no condition type"));
        find(&self.status().conditions, known).unwrap_or_else(|| panic!("no condition {type_}"))
    }

    /// `(status, reason)` of a condition.
    pub fn cond_is(&self, type_: &str) -> (&str, &str) {
        let c = self.cond(type_);
        (c.status.as_str(), c.reason.as_str())
    }

    pub fn event_reasons(&self) -> Vec<&str> {
        self.events.iter().map(|e| e.reason.as_str()).collect()
    }

    pub fn warnings(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter(|e| e.warning)
            .map(|e| e.reason.as_str())
            .collect()
    }

    /// The Event of the newest history entry with `reason`.
    pub fn entry_event(&self, reason: &str) -> &EventNote {
        self.events
            .iter()
            .rev()
            .find(|e| e.entry_key.is_some() && e.reason == reason)
            .unwrap_or_else(|| panic!("no Event of a {reason} entry in {:?}", self.events))
    }

    /// `(from, to, reason)` of every entry in `status.history`.
    pub fn history(&self) -> Vec<(Phase, Phase, &str)> {
        self.status()
            .history
            .iter()
            .map(|e| (e.from, e.to, e.reason.as_str()))
            .collect()
    }

    pub fn last_entry(&self) -> &HistoryEntry {
        self.status().history.last().expect("history")
    }

    /// Runs a reconcile that must not write anything; returns its requeue timer.
    pub fn quiet(&mut self, now: i64) -> Option<u64> {
        let plan = self.step(now);
        assert!(plan.is_noop(), "t={now}: expected no writes, got {plan:#?}");
        plan.requeue_after_seconds
    }
}
