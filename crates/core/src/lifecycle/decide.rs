//! `decide`: from one observed snapshot and the time, the whole plan of one reconcile.
//!
//! Running `decide` again on the state its plan produces yields no further writes (the fixed-point property the
//! tests check), which is what keeps repeated reconciles silent.

use crate::lifecycle::backoff::{may_retry, retry_delay_seconds};
use crate::lifecycle::cleanup::released_jobs;
use crate::lifecycle::conditions::{self, ConditionInputs, conditions};
use crate::lifecycle::draft::Draft;
use crate::lifecycle::history;
use crate::lifecycle::names::job_name;
use crate::lifecycle::progress::{progress, with_running_step};
use crate::lifecycle::report;
use crate::lifecycle::resolve::live_field_problems;
use crate::lifecycle::steps::{
    LOST_JOB_SECONDS, NO_POD_SECONDS, StepRecord, StepView, step_records,
};
use crate::lifecycle::timefmt::{add_seconds, human_duration, seconds_between, whole_seconds};
use crate::lifecycle::{
    Admission, InvalidSpec, JobRejection, JobState, Launch, Observed, Plan, ResolvedStep,
    resolve_frozen, resolve_steps,
};
use crew_api::{CrewExecutionStatus, OnStall, Phase, StepPhase, StepStatus};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Seconds to wait for the cache to show a Job this operator just created, or a name to be freed.
pub const CACHE_LAG_REQUEUE_SECONDS: u64 = 5;
/// Seconds to wait for a finished Job's pod to reach the cache.
pub const POD_LAG_REQUEUE_SECONDS: u64 = 2;

/// Derived facts that become status fields besides phase, reason and history.
#[derive(Default)]
struct Outcome {
    records: Vec<StepRecord>,
    completed: usize,
    current: Option<usize>,
    start_time: Option<Timestamp>,
    completion_time: Option<Timestamp>,
    next_retry_time: Option<Timestamp>,
    pause_requested: bool,
    not_admitted: Option<(String, String)>,
    /// Why the spec's steps are not the ones this run executes, when they differ.
    steps_changed: Option<String>,
    /// Why the current attempt's worker cannot start (reason, message), while it cannot.
    start_blocked: Option<(String, String)>,
    /// How long the running worker has not reported, while that is longer than its stall timeout.
    stalled: Option<String>,
}

/// The steps this run executes: the ones it froze at its start (`status.resolvedSteps`), else the spec's. Once
/// frozen, the spec's own steps only matter for the report of an edit that does not apply (the second value); its
/// live fields are still checked (an invalid value there fails the run).
fn steps_to_run(
    observed: &Observed<'_>,
    previous: &CrewExecutionStatus,
) -> (Result<Vec<ResolvedStep>, InvalidSpec>, Option<String>) {
    if previous.resolved_steps.is_empty() {
        let steps = resolve_steps(observed.spec).and_then(|steps| {
            let refused = observed.worker_policy.pod_key_problems(&steps);
            if refused.is_empty() {
                Ok(steps)
            } else {
                Err(InvalidSpec(refused.join("; ")))
            }
        });
        return (steps, None);
    }
    let live = live_field_problems(observed.spec);
    if !live.is_empty() {
        return (Err(InvalidSpec(live.join("; "))), None);
    }
    let frozen = resolve_frozen(&previous.resolved_steps);
    if observed.generation == previous.observed_generation {
        // The spec is the one the last status was computed from: its verdict stands (resolving and comparing the
        // whole spec on every reconcile of a running execution would be work for nothing).
        let changed = conditions::find(&previous.conditions, "StepsChanged")
            .filter(|c| c.status == "True")
            .map(|c| c.message.clone());
        return (frozen, changed);
    }
    let changed = match (resolve_steps(observed.spec), &frozen) {
        (Ok(now), Ok(frozen)) if now == *frozen => None,
        (Ok(_), _) => Some(
            "spec.steps (or a field the steps inherit) was edited after the run started; this run keeps the \
             steps it started with (status.resolvedSteps), the edit applies to new executions"
                .to_string(),
        ),
        (Err(invalid), _) => Some(format!(
            "spec.steps (or a field the steps inherit) was edited after the run started and is invalid \
             ({invalid}); this run keeps the steps it started with (status.resolvedSteps)"
        )),
    };
    (frozen, changed)
}

/// Decides one reconcile of one execution.
pub fn decide(observed: &Observed<'_>, now: Timestamp) -> Plan {
    let now = whole_seconds(now);
    let previous = observed.status.cloned().unwrap_or_default();
    let mut draft = Draft::new(observed, &previous, now);
    let mut plan = Plan::default();
    if draft.phase.is_terminal() {
        return decide_finished(draft, plan);
    }
    let mut outcome = Outcome {
        start_time: previous.start_time.as_ref().map(|t| t.0),
        ..Default::default()
    };
    let (steps, steps_changed) = steps_to_run(observed, &previous);
    if let Some(change) = &steps_changed
        && observed.generation != previous.observed_generation
    {
        draft.warn("StepsChanged", change.clone());
    }
    outcome.steps_changed = steps_changed;
    match steps {
        Err(invalid) => decide_invalid(&mut draft, &mut plan, &mut outcome, invalid),
        Ok(steps) => {
            outcome.records = step_records(steps, &observed.jobs, &previous, now);
            carry_reports(&mut outcome.records);
            if !observed.spec.cancel
                && outcome
                    .records
                    .iter()
                    .any(|r| r.view == StepView::AwaitingPod)
            {
                plan.requeue_within(POD_LAG_REQUEUE_SECONDS);
                return plan;
            }
            decide_steps(&mut draft, &mut plan, &mut outcome);
        }
    }
    let mut status = compose(&draft, &outcome);
    if draft.phase.is_terminal()
        && let Some(ttl) = observed.spec.ttl_seconds_after_finished
    {
        plan.requeue_within(ttl.max(1) as u64);
    }
    plan.events = draft.events();
    let written = conditions::without_foreign(&previous);
    if let Some(report) = observed.report {
        // Reports are coalesced: written when due, or with a write made for another reason (a step's outcome
        // carries the last report before it). A heartbeat alone is never worth a write.
        let writing = status != *written;
        let mut folded = status.clone();
        for step in &mut folded.steps {
            report.fold_into(step);
        }
        let reported = !same_reports(&folded, &status);
        if writing || (observed.report_due && reported) {
            status = folded;
            if let Some(progress) = status.progress.take() {
                status.progress = Some(running_fraction(progress, &status.steps));
            }
        }
    }
    plan.release_jobs = released_jobs(&observed.jobs, &status, observed.spec.job_cleanup);
    if status != *written {
        plan.status = Some(status);
    }
    plan
}

/// Whether `a` and `b` show the same worker reports (progress times aside).
fn same_reports(a: &CrewExecutionStatus, b: &CrewExecutionStatus) -> bool {
    let content = |s: &CrewExecutionStatus| -> Vec<_> {
        s.steps
            .iter()
            .map(|step| {
                (
                    step.progress
                        .as_ref()
                        .map(|p| (p.percent, p.message.clone())),
                    step.metrics.clone(),
                    step.warnings.clone(),
                )
            })
            .collect()
    };
    content(a) == content(b)
}

/// The execution's progress, counting the running step's reported percent.
fn running_fraction(progress: crew_api::Progress, steps: &[StepStatus]) -> crew_api::Progress {
    let reported = progress
        .current_step
        .as_deref()
        .and_then(|name| steps.iter().find(|s| s.name == name))
        .filter(|s| s.phase == StepPhase::Running)
        .map_or(0, report::step_percent);
    with_running_step(progress, reported)
}

/// What the latest attempt's worker reported stays with the step while it is that attempt's: the Job-derived
/// record starts without it.
fn carry_reports(records: &mut [StepRecord]) {
    for record in records {
        let Some(recorded) = record
            .recorded
            .as_ref()
            .filter(|r| r.attempt == record.status.attempt && r.attempt > 0)
        else {
            continue;
        };
        if record.status.progress.is_none() {
            record.status.progress = recorded.progress.clone();
        }
        if record.status.metrics.is_empty() {
            record.status.metrics = recorded.metrics.clone();
        }
        if record.status.warnings.is_empty() {
            record.status.warnings = recorded.warnings.clone();
        }
    }
}

fn decide_invalid(
    draft: &mut Draft<'_>,
    plan: &mut Plan,
    outcome: &mut Outcome,
    invalid: InvalidSpec,
) {
    let message = format!("invalid spec: {invalid}");
    outcome.records = Vec::new();
    // Every live phase may fail: an invalid spec ends the run wherever it stands (a stalled Queued member would
    // hold the head of its queue).
    draft.transition(Phase::Failed, "InvalidSpec", message, None);
    outcome.completion_time = Some(draft.now);
    plan.delete_jobs = active_owned_jobs(draft);
}

fn decide_steps(draft: &mut Draft<'_>, plan: &mut Plan, outcome: &mut Outcome) {
    let spec = draft.observed.spec;
    let total = outcome.records.len();
    let started = outcome
        .records
        .iter()
        .any(|r| r.view != StepView::NotStarted);
    if started
        && outcome.start_time.is_none()
        && matches!(draft.phase, Phase::Pending | Phase::Queued)
    {
        // Status was never written after the first Job was created (a restart in between): catch up. A Queued
        // execution that started before (resumed into a full queue) must keep waiting for its slot instead.
        let first = outcome.records[0].spec.name.clone();
        draft.transition(
            Phase::Running,
            "Started",
            format!("started step {first}"),
            Some(&first),
        );
    }
    if started && outcome.start_time.is_none() {
        outcome.start_time = outcome
            .records
            .iter()
            .filter_map(|r| r.status.start_time.as_ref().map(|t| t.0))
            .min();
    }

    if spec.cancel {
        return cancel(draft, plan, outcome);
    }
    let completed = outcome.records.iter().take_while(|r| r.succeeded()).count();
    outcome.completed = completed;
    for record in &outcome.records[..completed.min(total.saturating_sub(1))] {
        if record.newly_finished() {
            let next = outcome
                .records
                .get(completed)
                .map_or(String::new(), |r| format!("; next: step {}", r.spec.name));
            let took = record.status.duration_seconds.unwrap_or_default();
            draft.note(
                "StepSucceeded",
                format!(
                    "step {} succeeded in {}{next}",
                    record.spec.name,
                    human_duration(took)
                ),
                &record.spec.name,
            );
        }
    }
    if timed_out(draft, plan, outcome) {
        return;
    }
    if completed == total {
        let last = &outcome.records[total - 1];
        let finished = outcome
            .records
            .iter()
            .filter_map(|r| r.status.completion_time.as_ref().map(|t| t.0))
            .max();
        let message = format!("all {total} steps succeeded");
        draft.transition(
            Phase::Succeeded,
            "Succeeded",
            message,
            Some(&last.spec.name.clone()),
        );
        outcome.completion_time = Some(finished.unwrap_or(draft.now));
        return;
    }
    outcome.current = Some(completed);
    let view = outcome.records[completed].view.clone();
    match view {
        StepView::Active { attempt } => {
            if !awaits_start(draft, plan, outcome, attempt)
                && !stalled(draft, plan, outcome, attempt)
            {
                running(draft, outcome, attempt);
            }
        }
        StepView::Launched { attempt, since } => {
            let job = outcome.records[completed]
                .status
                .job_name
                .clone()
                .unwrap_or_default();
            let overdue = since.is_some_and(|s| seconds_between(s, draft.now) >= LOST_JOB_SECONDS);
            let confirmed = draft.observed.missing_job.as_deref() == Some(job.as_str());
            if !overdue || !confirmed {
                // Not in the cache yet: wait; overdue, ask for a fresh read before counting the attempt lost.
                if overdue {
                    plan.verify_job = Some(job);
                }
                plan.requeue_within(CACHE_LAG_REQUEUE_SECONDS);
                running(draft, outcome, attempt);
            } else {
                let record = &mut outcome.records[completed];
                record.status.phase = StepPhase::Failed;
                record.status.message =
                    Some(format!("Job {job} disappeared before its outcome was seen"));
                record.status.completion_time = Some(Time(draft.now));
                record.recorded = None;
                failed(draft, plan, outcome, attempt, draft.now);
            }
        }
        StepView::Finished {
            attempt, finished, ..
        } => failed(draft, plan, outcome, attempt, finished),
        StepView::NotStarted | StepView::AwaitingPod => start(draft, plan, outcome, 1),
    }
}

/// While the current attempt's worker has not started: reports why it cannot (the step's message, the run's
/// reason and the `StartBlocked` condition), and fails the attempt with reason `StartTimeout` once the start
/// timeout has passed since its Job was created (deleting the Job; the retry policy applies). Returns whether it
/// handled the step (false: the worker started, or the Job is not the attempt's).
fn awaits_start(
    draft: &mut Draft<'_>,
    plan: &mut Plan,
    outcome: &mut Outcome,
    attempt: u32,
) -> bool {
    let index = outcome.completed;
    let job_name = outcome.records[index].status.job_name.clone();
    let Some(job) = draft
        .observed
        .jobs
        .iter()
        .find(|j| j.owned && Some(&j.name) == job_name.as_ref() && !j.pod_started)
        .cloned()
    else {
        return false;
    };
    let created = job.created.unwrap_or(draft.now);
    // What this attempt's step showed before: a report it keeps (see below).
    let shown = outcome.records[index]
        .recorded
        .as_ref()
        .filter(|r| r.attempt == attempt)
        .and_then(|r| r.message.clone());
    let blocked = match job.start_blocked {
        Some(block) => Some(block),
        None if !job.pod_seen => pod_refusal(draft, plan, &job.name, created, shown.as_deref()),
        None => None,
    };
    // The kubelet's and scheduler's messages change while they retry; the first one seen for this reason stays,
    // so a blocked pod costs one status write, not one per retry.
    let reported = blocked.map(|block| {
        let prefix = format!("{}: ", block.reason);
        let message = shown.filter(|m| m.starts_with(&prefix)).unwrap_or_else(|| {
            crate::lifecycle::text::bounded_message(format!("{prefix}{}", block.message))
        });
        (block.reason, message)
    });
    let limit = draft
        .observed
        .spec
        .start_timeout_seconds
        .unwrap_or(draft.observed.default_start_timeout_seconds)
        .max(1);
    let deadline = add_seconds(created, limit);
    if draft.now >= deadline {
        let why = reported.map_or_else(
            || "its pod was not created or not scheduled yet".to_string(),
            |(_, message)| message,
        );
        end_attempt(
            &mut outcome.records[index],
            format!("StartTimeout: the worker did not start within {limit}s ({why})"),
            draft.now,
        );
        plan.delete_jobs.push(job.name);
        failed_because(draft, plan, outcome, attempt, draft.now, "StartTimeout");
        return true;
    }
    plan.requeue_within((seconds_between(draft.now, deadline) as u64).max(1));
    let Some((reason, message)) = reported else {
        return false;
    };
    let name = outcome.records[index].spec.name.clone();
    outcome.records[index].status.message = Some(message.clone());
    running(draft, outcome, attempt);
    draft.set_reason(
        &reason,
        format!(
            "step {name} attempt {attempt} cannot start: {message}; it fails with StartTimeout at {deadline}"
        ),
    );
    outcome.start_blocked = Some((reason, message));
    true
}

/// While the current attempt's worker runs: once it has not reported (`POST /v1/progress`, a heartbeat counts)
/// for its stall timeout, counted from the attempt's start, its last report or the time this replica began to
/// act, whichever is latest, the step is stalled: condition `ProgressStalled` and one Warning Event, and
/// `onStall` decides: `Warn` keeps it running, `Fail` fails the run, `Retry` fails the attempt (its Job deleted)
/// under the retry policy. Returns whether it ended the attempt.
fn stalled(draft: &mut Draft<'_>, plan: &mut Plan, outcome: &mut Outcome, attempt: u32) -> bool {
    let index = outcome.completed;
    let record = &outcome.records[index];
    let Some(limit) = record.spec.stall_timeout_seconds.map(|l| l.max(1)) else {
        return false;
    };
    let name = record.spec.name.clone();
    let reported = draft
        .observed
        .report
        .filter(|r| r.step == name && r.attempt == attempt)
        .map(|r| r.last_report);
    let clock = [
        record.status.start_time.as_ref().map(|t| t.0),
        report::written_report_time(&record.status),
        reported,
        draft.observed.acting_since,
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(draft.now);
    let deadline = add_seconds(clock, limit);
    if draft.now < deadline {
        plan.requeue_within((seconds_between(draft.now, deadline) as u64).max(1));
        return false;
    }
    // Stable while the stall lasts (a time, not a growing duration): a stalled step costs one status write.
    let message = format!(
        "step {name} attempt {attempt}: no progress report since {clock} (stallTimeoutSeconds {limit})"
    );
    let was_stalled = draft
        .previous
        .conditions
        .iter()
        .any(|c| c.type_ == "ProgressStalled" && c.status == "True");
    let action = record.spec.on_stall.unwrap_or_default();
    if !was_stalled || action != OnStall::Warn {
        draft.warn("ProgressStalled", message.clone());
    }
    match action {
        OnStall::Warn => {
            // Checked again when the next report comes (the shell reconciles on it) or a period later.
            plan.requeue_within(limit as u64);
            outcome.stalled = Some(message);
            false
        }
        OnStall::Fail | OnStall::Retry => {
            let record = &mut outcome.records[index];
            end_attempt(record, format!("ProgressStalled: {message}"), draft.now);
            if let Some(job) = record.status.job_name.clone() {
                plan.delete_jobs.push(job);
            }
            if action == OnStall::Retry {
                failed_because(draft, plan, outcome, attempt, draft.now, "ProgressStalled");
            } else {
                draft.transition(
                    Phase::Failed,
                    "ProgressStalled",
                    format!("step {name} stalled: {message}"),
                    Some(&name),
                );
                outcome.completion_time = Some(draft.now);
            }
            true
        }
    }
}

/// Ends a running attempt the operator stops itself (its Job is deleted): failed now, with `message`.
fn end_attempt(record: &mut StepRecord, message: String, now: Timestamp) {
    record.status.phase = StepPhase::Failed;
    record.status.message = Some(crate::lifecycle::text::bounded_message(message));
    record.status.completion_time = Some(Time(now));
    record.status.duration_seconds = record
        .status
        .start_time
        .as_ref()
        .map(|t| seconds_between(t.0, now));
    record.recorded = None;
}

/// Why the Job `job` (created at `created`) has no pod, once it has had none for [`NO_POD_SECONDS`]: the Job
/// controller's `FailedCreate` Event the shell looked up, or the one the step already shows; else the plan asks the
/// shell (every reconcile until one shows: the shell answers from a watched index, not a request) or to come back
/// when it is time.
fn pod_refusal(
    draft: &Draft<'_>,
    plan: &mut Plan,
    job: &str,
    created: Timestamp,
    shown: Option<&str>,
) -> Option<crate::lifecycle::StartBlock> {
    const REASON: &str = "FailedCreate";
    let since = seconds_between(created, draft.now);
    if since < NO_POD_SECONDS {
        plan.requeue_within((NO_POD_SECONDS - since) as u64);
        return None;
    }
    let shown = shown
        .and_then(|m| m.strip_prefix(REASON))
        .and_then(|m| m.strip_prefix(": "));
    let read = draft.observed.pod_refused.clone();
    if read.is_none() && shown.is_none() {
        plan.explain_job = Some(job.to_string());
    }
    read.or_else(|| {
        shown.map(|message| crate::lifecycle::StartBlock {
            reason: REASON.into(),
            message: message.to_string(),
        })
    })
}

fn running(draft: &mut Draft<'_>, outcome: &mut Outcome, attempt: u32) {
    let record = &outcome.records[outcome.completed];
    let name = record.spec.name.clone();
    if draft.phase != Phase::Running {
        draft.transition(
            Phase::Running,
            "Resumed",
            format!("step {name} is running"),
            Some(&name),
        );
    }
    outcome.pause_requested = draft.observed.spec.suspend;
    let total = outcome.records.len();
    let message = format!(
        "running step {name} ({}/{total}), attempt {attempt}",
        outcome.completed + 1
    );
    draft.set_reason("StepRunning", message);
}

fn failed(
    draft: &mut Draft<'_>,
    plan: &mut Plan,
    outcome: &mut Outcome,
    attempt: u32,
    finished: Timestamp,
) {
    failed_because(draft, plan, outcome, attempt, finished, "StepFailed");
}

/// [`failed`], with `reason` for the run's failure when no retry is left and none was allowed.
fn failed_because(
    draft: &mut Draft<'_>,
    plan: &mut Plan,
    outcome: &mut Outcome,
    attempt: u32,
    finished: Timestamp,
    reason: &str,
) {
    let spec = draft.observed.spec;
    let policy = spec.retry.clone().unwrap_or_default();
    let record = &mut outcome.records[outcome.completed];
    let name = record.spec.name.clone();
    let detail = record
        .status
        .message
        .clone()
        .unwrap_or_else(|| "failed".into());
    let newly = record.newly_finished() || record.recorded.is_none();
    if !may_retry(&policy, attempt) {
        record.status.phase = StepPhase::Failed;
        let (reason, tries) = if policy.limit > 0 {
            ("RetriesExhausted", format!(" after {attempt} attempts"))
        } else {
            (reason, String::new())
        };
        draft.transition(
            Phase::Failed,
            reason,
            format!("step {name} failed{tries}: {detail}"),
            Some(&name),
        );
        outcome.completion_time = Some(finished);
        return;
    }
    record.status.phase = StepPhase::Retrying;
    let delay = retry_delay_seconds(&policy, attempt);
    let retry_at = add_seconds(finished, delay as i64);
    if newly {
        let message = format!(
            "step {name} attempt {attempt} failed ({detail}); attempt {} in {delay}s",
            attempt + 1
        );
        draft.note("RetryScheduled", message, &name);
        draft.relate_last(job_name(draft.observed.name, &name, attempt));
    }
    if spec.suspend {
        draft.transition(
            Phase::Paused,
            "Paused",
            format!("paused before retrying step {name}"),
            Some(&name),
        );
        return;
    }
    // After a refused Job create the next attempt waits for the next reconcile (which follows the status write at
    // once when no backoff is due): one attempt per reconcile, each recorded.
    let refused_now = draft
        .observed
        .rejected
        .as_ref()
        .is_some_and(|r| r.job_name == job_name(draft.observed.name, &name, attempt));
    if draft.now >= retry_at && !refused_now {
        return start(draft, plan, outcome, attempt + 1);
    }
    if !acquire_slot(draft, outcome, &name) {
        return;
    }
    outcome.next_retry_time = Some(retry_at);
    draft.set_reason(
        "RetryBackoff",
        format!("step {name} attempt {} starts at {retry_at}", attempt + 1),
    );
    plan.requeue_within((seconds_between(draft.now, retry_at) as u64).max(1));
}

/// The API server refused the Job of this attempt: the attempt failed, with reason `JobRejected` and the API's
/// message. A refusal no retry can cure ends the run at once; any other goes through the retry policy like a
/// failed Job, so every run ends, with a reason, instead of retrying the create forever.
fn rejected(
    draft: &mut Draft<'_>,
    plan: &mut Plan,
    outcome: &mut Outcome,
    attempt: u32,
    rejection: &JobRejection,
) {
    let index = outcome.completed;
    let name = outcome.records[index].spec.name.clone();
    let (reason, message) = if rejection.policy {
        ("InvalidSpec", rejection.message.clone())
    } else {
        (
            "JobRejected",
            format!(
                "Job {} rejected by the API server: {}",
                rejection.job_name, rejection.message
            ),
        )
    };
    let message = crate::lifecycle::text::bounded_message(message);
    let record = &mut outcome.records[index];
    record.status = crew_api::StepStatus {
        name: name.clone(),
        phase: StepPhase::Failed,
        attempt,
        start_time: Some(Time(draft.now)),
        completion_time: Some(Time(draft.now)),
        duration_seconds: Some(0),
        message: Some(message.clone()),
        ..Default::default()
    };
    record.recorded = None;
    outcome.start_time.get_or_insert(draft.now);
    let policy = draft.observed.spec.retry.clone().unwrap_or_default();
    if rejection.permanent || !may_retry(&policy, attempt) {
        draft.transition(
            Phase::Failed,
            reason,
            format!("step {name} attempt {attempt}: {message}"),
            Some(&name),
        );
        outcome.completion_time = Some(draft.now);
        return;
    }
    failed(draft, plan, outcome, attempt, draft.now);
}

fn start(draft: &mut Draft<'_>, plan: &mut Plan, outcome: &mut Outcome, attempt: u32) {
    let spec = draft.observed.spec;
    let index = outcome.completed;
    let name = outcome.records[index].spec.name.clone();
    if spec.suspend {
        draft.transition(
            Phase::Paused,
            "Paused",
            format!("paused before step {name}"),
            Some(&name),
        );
        return;
    }
    let job = job_name(draft.observed.name, &name, attempt);
    if draft
        .observed
        .jobs
        .iter()
        .any(|j| !j.owned && j.name == job)
    {
        let message = format!(
            "Job {job} belongs to an earlier execution of the same name; waiting for it to be deleted"
        );
        draft.warn_once("JobNameTaken", message.clone());
        draft.set_reason("JobNameTaken", message);
        plan.requeue_within(CACHE_LAG_REQUEUE_SECONDS);
        return;
    }
    if !acquire_slot(draft, outcome, &name) {
        return;
    }
    if let Some(rejection) = draft
        .observed
        .rejected
        .as_ref()
        .filter(|r| r.job_name == job)
    {
        return rejected(draft, plan, outcome, attempt, rejection);
    }
    let record = &mut outcome.records[index];
    record.status = crew_api::StepStatus {
        name: name.clone(),
        phase: StepPhase::Running,
        attempt,
        job_name: Some(job.clone()),
        start_time: Some(Time(draft.now)),
        ..Default::default()
    };
    plan.ensure_config_map =
        index == 0 && attempt == 1 && (spec.crew.is_some() || spec.inputs.is_some());
    plan.launch = Some(Launch {
        step: record.spec.clone(),
        attempt,
        job_name: job.clone(),
    });
    if attempt > 1 {
        draft.note(
            "StepStarted",
            format!("step {name} attempt {attempt} started"),
            &name,
        );
        draft.relate_last(job.clone());
    }
    outcome.start_time.get_or_insert(draft.now);
    running(draft, outcome, attempt);
}

/// Takes a running slot if the execution does not hold one; false when it must wait (Queued / Pending).
fn acquire_slot(draft: &mut Draft<'_>, outcome: &mut Outcome, step: &str) -> bool {
    if draft.phase == Phase::Running {
        return true;
    }
    match &draft.observed.admission {
        Admission::Admitted => {
            let (reason, verb) = if outcome.start_time.is_none() {
                ("Started", "started")
            } else {
                ("Resumed", "resumed")
            };
            draft.transition(
                Phase::Running,
                reason,
                format!("{verb} at step {step}"),
                Some(step),
            )
        }
        Admission::Wait { queue, .. } => {
            let message = format!("waiting for a free slot in queue {queue}");
            draft.transition(Phase::Queued, "Queued", message.clone(), None);
            draft.set_reason("Queued", message);
            false
        }
        Admission::QueueNotFound(queue) => {
            let message =
                format!("queue {queue} does not exist; the execution starts once it does");
            if draft.phase == Phase::Pending {
                draft.warn_once("QueueNotFound", message.clone());
            } else {
                draft.transition(Phase::Queued, "QueueNotFound", message.clone(), None);
            }
            draft.set_reason("QueueNotFound", message.clone());
            outcome.not_admitted = Some(("QueueNotFound".into(), message));
            false
        }
    }
}

fn cancel(draft: &mut Draft<'_>, plan: &mut Plan, outcome: &mut Outcome) {
    let step = stop_current_step(draft, plan, outcome, "cancelled");
    if draft.transition(
        Phase::Cancelled,
        "Cancelled",
        "cancelled through spec.cancel".into(),
        step.as_deref(),
    ) {
        outcome.completion_time = Some(draft.now);
    }
}

/// Fails the execution once `spec.timeoutSeconds` has passed since its first start; else schedules the check.
fn timed_out(draft: &mut Draft<'_>, plan: &mut Plan, outcome: &mut Outcome) -> bool {
    let (Some(limit), Some(start)) = (draft.observed.spec.timeout_seconds, outcome.start_time)
    else {
        return false;
    };
    let deadline = add_seconds(start, limit);
    if draft.now < deadline {
        plan.requeue_within(seconds_between(draft.now, deadline) as u64);
        return false;
    }
    if outcome.completed == outcome.records.len() {
        return false;
    }
    let message = format!("execution exceeded spec.timeoutSeconds ({limit}s)");
    if matches!(draft.phase, Phase::Queued | Phase::Paused) {
        if draft.observed.spec.suspend {
            return false; // a paused execution fails on resume
        }
        draft.transition(
            Phase::Running,
            "Resumed",
            "resumed to time out".into(),
            None,
        );
    }
    let step = stop_current_step(draft, plan, outcome, "stopped: the execution timed out");
    if draft.transition(Phase::Failed, "TimedOut", message, step.as_deref()) {
        outcome.completion_time = Some(draft.now);
    }
    true
}

/// Deletes the running attempt's Job and marks the step; returns its name if one was running.
fn stop_current_step(
    draft: &Draft<'_>,
    plan: &mut Plan,
    outcome: &mut Outcome,
    why: &str,
) -> Option<String> {
    plan.delete_jobs = active_owned_jobs(draft);
    let record = outcome
        .records
        .iter_mut()
        .find(|r| !r.succeeded() && r.view != StepView::NotStarted)?;
    // A Job that finished while its pod's outcome was not yet read stops too: the run ends now, and a step left
    // `Running` in a finished run would never be updated again.
    if matches!(
        record.view,
        StepView::Active { .. } | StepView::Launched { .. } | StepView::AwaitingPod
    ) {
        if let Some(job) = &record.status.job_name
            && record.view != StepView::AwaitingPod
            && !plan.delete_jobs.contains(job)
        {
            plan.delete_jobs.push(job.clone());
        }
        record.status.phase = StepPhase::Cancelled;
        record.status.message = Some(why.to_string());
        record.status.completion_time = Some(Time(draft.now));
    }
    Some(record.spec.name.clone())
}

fn active_owned_jobs(draft: &Draft<'_>) -> Vec<String> {
    draft
        .observed
        .jobs
        .iter()
        .filter(|j| j.owned && j.state == JobState::Active && !j.deleting)
        .map(|j| j.name.clone())
        .collect()
}

fn compose(draft: &Draft<'_>, outcome: &Outcome) -> CrewExecutionStatus {
    let previous = draft.previous;
    let observed = draft.observed;
    let phase = draft.phase;
    let steps: Vec<_> = if outcome.records.is_empty() {
        // Invalid spec: the last known steps, with a step that was running marked as stopped.
        let mut steps = previous.steps.clone();
        for step in steps.iter_mut().filter(|s| {
            phase.is_terminal() && matches!(s.phase, StepPhase::Running | StepPhase::Retrying)
        }) {
            step.phase = StepPhase::Cancelled;
            step.message = Some("stopped: the spec became invalid".into());
            step.completion_time.get_or_insert(Time(draft.now));
        }
        steps
    } else {
        outcome.records.iter().map(|r| r.status.clone()).collect()
    };
    let completed = steps
        .iter()
        .take_while(|s| s.phase == StepPhase::Succeeded)
        .count() as u32;
    let current = outcome
        .current
        .filter(|_| phase == Phase::Running)
        .and_then(|i| steps.get(i))
        .map(|s| s.name.as_str());
    let total = if steps.is_empty() {
        1
    } else {
        steps.len() as u32
    };
    let attempt_step = outcome
        .current
        .and_then(|i| steps.get(i))
        .or_else(|| steps.iter().rev().find(|s| s.attempt > 0));
    let completion = outcome.completion_time.filter(|_| phase.is_terminal());
    let start = outcome.start_time;
    let duration = start.zip(completion).map(|(s, c)| seconds_between(s, c));
    let mut history = previous.history.clone();
    history::append(
        &mut history,
        &draft.entries,
        history::effective_limit(observed.spec.history_limit),
    );
    let inputs = ConditionInputs {
        phase,
        reason: &draft.reason,
        message: &draft.message,
        pause_requested: outcome.pause_requested,
        not_admitted: outcome
            .not_admitted
            .as_ref()
            .map(|(r, m)| (r.as_str(), m.as_str())),
        generation: observed.generation,
        steps_changed: outcome.steps_changed.as_deref(),
        start_blocked: outcome
            .start_blocked
            .as_ref()
            .map(|(r, m)| (r.as_str(), m.as_str())),
        stalled: outcome.stalled.as_deref(),
    };
    // Frozen at the first launch (a record with an attempt), kept from then on.
    let resolved_steps = if !previous.resolved_steps.is_empty() {
        previous.resolved_steps.clone()
    } else if outcome.records.iter().any(|r| r.status.attempt > 0) {
        outcome.records.iter().map(|r| r.spec.to_spec()).collect()
    } else {
        Vec::new()
    };
    CrewExecutionStatus {
        phase: Some(phase),
        resolved_steps,
        reason: Some(draft.reason.clone()).filter(|r| !r.is_empty()),
        message: Some(draft.message.clone()).filter(|m| !m.is_empty()),
        progress: Some(running_fraction(
            progress(phase, completed, total, current, None),
            &steps,
        )),
        attempt: attempt_step.map(|s| s.attempt).filter(|a| *a > 0),
        start_time: start.map(Time),
        completion_time: completion.map(Time),
        duration_seconds: duration,
        duration: duration.map(human_duration),
        next_retry_time: outcome.next_retry_time.map(Time),
        result: steps
            .iter()
            .rev()
            .find(|s| s.completion_time.is_some())
            .and_then(|s| s.result.clone()),
        observed_generation: observed.generation,
        history,
        conditions: conditions(&inputs, &previous.conditions, draft.now),
        steps,
    }
}

/// Terminal phases are kept as written; only spec-edit warnings, leftover Job clean-up and the TTL act.
fn decide_finished(mut draft: Draft<'_>, mut plan: Plan) -> Plan {
    let observed = draft.observed;
    let previous = draft.previous;
    plan.delete_jobs = active_owned_jobs(&draft);
    let mut status = previous.clone();
    if observed.generation != previous.observed_generation {
        if previous.phase == Some(Phase::Cancelled) && !observed.spec.cancel {
            draft.warn(
                "CancelIrreversible",
                "spec.cancel was cleared, but a cancelled execution stays cancelled".into(),
            );
        }
        status.observed_generation = observed.generation;
        for condition in &mut status.conditions {
            condition.observed_generation = observed.generation;
        }
    }
    if let (Some(ttl), Some(done)) = (
        observed.spec.ttl_seconds_after_finished,
        &previous.completion_time,
    ) {
        let expiry = add_seconds(done.0, ttl);
        if draft.now >= expiry {
            plan.delete_execution = true;
        } else {
            plan.requeue_within(seconds_between(draft.now, expiry) as u64);
        }
    }
    plan.events = draft.events();
    if !plan.delete_execution {
        plan.release_jobs = released_jobs(&observed.jobs, &status, observed.spec.job_cleanup);
    }
    if status != *previous {
        plan.status = Some(status);
    }
    plan
}
