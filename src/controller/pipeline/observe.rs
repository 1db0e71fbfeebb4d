//! Everything one reconcile's decision reads besides the execution itself, taken from the caches and indexes the
//! watches keep (no request), plus the answers to the reads a plan asks for (`decide_act`).

use crate::controller::context::Context;
use crate::progress::book::Held;
use crew_api::CrewExecution;
use crew_core::lifecycle::worker_policy::ServiceAccountFact;
use crew_core::lifecycle::{
    Admission, ArchiveFact, JobRejection, Observed, ObservedJob, ResumeSource, StartBlock,
};
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

/// What one reconcile has seen (see the module documentation).
#[derive(Debug)]
pub struct Seen {
    /// The Jobs labelled with the execution, summarised.
    pub jobs: Vec<ObservedJob>,
    /// The queue's verdict.
    pub admission: Admission,
    /// What the current attempt's worker reported, and whether it may be written now (coalescing).
    pub held: Option<Held>,
    /// Answers to the reads the plans of this reconcile asked for.
    pub answers: Answers,
    /// Whether a sink or the archive still needs the execution kept (its finalizer).
    pub retain: bool,
    /// What the archive holds of it.
    pub archive: ArchiveFact,
}

/// Facts one reconcile learned beyond its caches, each asked for by a plan.
#[derive(Debug, Default)]
pub struct Answers {
    /// A Job the status records that the API server does not have either (the cache was not just late).
    pub missing_job: Option<String>,
    /// Why the Job controller creates no pod for a Job (its latest `FailedCreate` Event).
    pub pod_refused: Option<StartBlock>,
    /// The Job create the API server refused.
    pub rejected: Option<JobRejection>,
    /// The ServiceAccount a launch's worker would run as.
    pub service_account: Option<ServiceAccountFact>,
}

/// What the caches and indexes show of `cx`. Outcomes its status already records are released from the child
/// index first: they are kept as written, the index need not hold them any longer.
pub fn observe(cx: &CrewExecution, ctx: &Context, admission: Admission) -> Seen {
    let (namespace, name, uid) = (
        cx.namespace().unwrap_or_default(),
        cx.name_any(),
        cx.uid().unwrap_or_default(),
    );
    let children = &ctx.indexes.children;
    if let Some(status) = &cx.status {
        let recorded = status
            .steps
            .iter()
            .filter(|step| step.completion_time.is_some())
            .filter_map(|step| step.job_name.as_deref());
        children.release_outcomes(&namespace, &name, recorded);
    }
    Seen {
        jobs: children.jobs_of(&namespace, &name, &uid),
        admission,
        held: ctx.progress.held(&uid, std::time::Instant::now()),
        answers: Answers::default(),
        retain: ctx.retains(cx),
        archive: ctx.archive_fact(cx),
    }
}

impl Seen {
    /// The snapshot the core decides on.
    pub fn observed<'a>(&'a self, cx: &'a CrewExecution, ctx: &'a Context) -> Observed<'a> {
        let workers = &ctx.settings.workers;
        Observed {
            name: cx.metadata.name.as_deref().unwrap_or_default(),
            generation: cx.metadata.generation,
            spec: &cx.spec,
            status: cx.status.as_ref(),
            jobs: &self.jobs,
            admission: self.admission.clone(),
            rejected: self.answers.rejected.clone(),
            missing_job: self.answers.missing_job.clone(),
            default_start_timeout_seconds: workers.args.start_timeout_seconds,
            pod_refused: self.answers.pod_refused.clone(),
            service_account: self.answers.service_account.clone(),
            worker_policy: &workers.policy,
            report: self.held.as_ref().map(|held| &held.reports),
            report_due: self.held.as_ref().is_some_and(|held| held.due),
            acting_since: Some(ctx.leadership.since()),
            retain: self.retain,
            resume_source: resume_source(cx, ctx),
            archive: self.archive.clone(),
            has_finalizer: cx
                .finalizers()
                .iter()
                .any(|f| f == crate::notify::RETAIN_FINALIZER),
        }
    }
}

/// The execution `cx` resumes from, as cached, while `cx` has not started a step (after that it is never read).
fn resume_source(cx: &CrewExecution, ctx: &Context) -> Option<ResumeSource> {
    let from = cx.spec.resume_from.as_ref()?;
    let started = cx
        .status
        .as_ref()
        .is_some_and(|s| s.steps.iter().any(|step| step.attempt > 0));
    if started {
        return None;
    }
    let reference = ObjectRef::<CrewExecution>::new(&from.execution)
        .within(&cx.namespace().unwrap_or_default());
    let source = ctx.caches.executions.get(&reference)?;
    Some(ResumeSource {
        uid: source.uid().unwrap_or_default(),
        steps: source
            .status
            .as_ref()
            .map(|s| s.steps.clone())
            .unwrap_or_default(),
    })
}
