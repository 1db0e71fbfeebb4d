//! Launching an attempt: paused first when `spec.suspend` is set, waiting while an earlier execution's Job holds
//! the name (`JobNameTaken`, bounded: see `name_taken`) or no slot is free, refused when the worker may not run as
//! it asks (`InvalidSpec`: a ServiceAccount or Secret its namespace's owner did not open to workers, read first),
//! when a Job nobody will delete holds the name, and when the API server refused the Job (`JobRejected`).

use super::admission::{Slot, acquire_slot};
use super::name_taken::{NameVerdict, name_verdict};
use super::outcome::Outcome;
use super::pause_cancel::pause;
use super::{retry, walk};
use crate::lifecycle::backoff::may_retry;
use crate::lifecycle::draft::Draft;
use crate::lifecycle::names::job_name;
use crate::lifecycle::results::{EarlierResult, earlier_results, substitute};
use crate::lifecycle::text::bounded_message;
use crate::lifecycle::worker_policy::{account_to_check, volume_problems_of};
use crate::lifecycle::{Launch, Plan, Read, ResolvedStep};
use crew_api::{Phase, Reason, StepPhase, StepStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Starts attempt `attempt` of the current step: the plan creates its Job (and, before the run's first Job, the
/// ConfigMap).
pub(super) fn start(draft: &mut Draft<'_>, plan: &mut Plan, outcome: &mut Outcome, attempt: u32) {
    let spec = draft.observed.spec;
    let index = outcome.completed;
    let name = outcome.current().spec.name.clone();
    if spec.suspend {
        return pause(draft, &name, format!("paused before step {name}"));
    }
    let job = job_name(draft.observed.name, &name, attempt);
    let name_refused = match name_verdict(draft, plan, outcome, &job) {
        NameVerdict::Free => None,
        NameVerdict::Wait => return,
        NameVerdict::Refused(message) => Some(message),
    };
    if acquire_slot(draft, outcome, &name) == Slot::Wait {
        return;
    }
    if let Some(message) = name_refused {
        // As the API server's AlreadyExists for a stranger's Job: a failed attempt, so the next (another name)
        // runs under the retry policy.
        return refused(
            draft,
            plan,
            outcome,
            attempt,
            Reason::JobRejected,
            message,
            false,
        );
    }
    match worker_access(draft, &outcome.current().spec) {
        Access::Open => {}
        Access::Read(account) => {
            plan.read = Some(Read::ServiceAccount(account));
            return;
        }
        Access::Refused { message, permanent } => {
            return refused(
                draft,
                plan,
                outcome,
                attempt,
                Reason::InvalidSpec,
                message,
                permanent,
            );
        }
    }
    if let Some(rejection) = draft
        .observed
        .rejected
        .as_ref()
        .filter(|r| r.job_name == job)
    {
        let message = format!(
            "Job {} rejected by the API server: {}",
            rejection.job_name, rejection.message
        );
        let permanent = rejection.permanent;
        return refused(
            draft,
            plan,
            outcome,
            attempt,
            Reason::JobRejected,
            message,
            permanent,
        );
    }
    // What the earlier steps produced, for this attempt's worker: every attempt of the step gets the same (they
    // are kept as written once their steps ended).
    let earlier: Vec<StepStatus> = outcome.records[..index]
        .iter()
        .map(|r| r.status.clone())
        .collect();
    let handed = match hand_over_results(&outcome.current().spec, &earlier) {
        Ok(handed) => handed,
        Err(message) => {
            return refused(
                draft,
                plan,
                outcome,
                attempt,
                Reason::InvalidSpec,
                message,
                true,
            );
        }
    };
    let record = outcome.current_mut();
    record.status = StepStatus {
        name: name.clone(),
        phase: StepPhase::Running,
        attempt,
        job_name: Some(job.clone()),
        start_time: Some(Time(draft.now)),
        ..Default::default()
    };
    plan.ensure_config_map =
        index == 0 && attempt == 1 && (spec.crew.is_some() || spec.inputs.is_some());
    let (step, results) = handed;
    plan.launch = Some(Launch {
        step,
        attempt,
        job_name: job.clone(),
        results,
    });
    if attempt > 1 {
        draft.note(
            Reason::StepStarted,
            format!("step {name} attempt {attempt} started"),
            &name,
        );
        draft.relate_last(job.clone());
    }
    outcome.start_time.get_or_insert(draft.now);
    walk::running(draft, outcome, attempt);
}

/// Whether the worker may run as its launch asks.
enum Access {
    /// Nothing to check, or the check passed.
    Open,
    /// Read this ServiceAccount first.
    Read(String),
    /// The worker policy refuses it.
    Refused { message: String, permanent: bool },
}

/// The worker policy's verdict on the current step's launch: its volumes are of types workers may mount (checked
/// again here: a run frozen before a rule existed is held to it too); a worker runs as a named ServiceAccount only
/// when its owner opened it to workers, and references only the Secrets, claims and CSI drivers that ServiceAccount
/// lists; both are read from the ServiceAccount, once per launch, and only when the step names one or references
/// one of those. The ServiceAccount is the resolved step's (frozen once the run started), the one its Job will run
/// as.
fn worker_access(draft: &Draft<'_>, step: &crate::lifecycle::ResolvedStep) -> Access {
    let observed = draft.observed;
    let volumes = volume_problems_of(std::slice::from_ref(step));
    if !volumes.is_empty() {
        return Access::Refused {
            message: volumes.join("; "),
            permanent: true,
        };
    }
    let Some(account) = account_to_check(step) else {
        return Access::Open;
    };
    let Some(fact) = observed
        .service_account
        .as_ref()
        .filter(|f| f.name() == account)
    else {
        return Access::Read(account);
    };
    match observed.worker_policy.access_refusal(fact, step) {
        None => Access::Open,
        Some(refusal) => Access::Refused {
            message: refusal.message,
            permanent: refusal.permanent,
        },
    }
}

/// This attempt's Job is refused (by the worker policy, `InvalidSpec`, or by the API server, `JobRejected`): the
/// attempt failed, with `message`. A refusal no retry can cure ends the run at once; any other goes through the
/// retry policy like a failed Job, so every run ends, with a reason, instead of retrying the create forever.
fn refused(
    draft: &mut Draft<'_>,
    plan: &mut Plan,
    outcome: &mut Outcome,
    attempt: u32,
    reason: Reason,
    message: String,
    permanent: bool,
) {
    let name = outcome.current().spec.name.clone();
    let message = bounded_message(message);
    let record = outcome.current_mut();
    record.status = StepStatus {
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
    if permanent || !may_retry(&policy, attempt) {
        draft.transition(
            Phase::Failed,
            reason,
            format!("step {name} attempt {attempt}: {message}"),
            Some(&name),
        );
        outcome.completion_time = Some(draft.now);
        return;
    }
    retry::failed(draft, plan, outcome, attempt, draft.now);
}

/// The step as its worker runs it: the earlier results it references substituted into its `args` and `env`, with
/// the earlier results for its `/crew/results/`; or why it cannot run.
fn hand_over_results(
    step: &ResolvedStep,
    earlier: &[StepStatus],
) -> Result<(ResolvedStep, Vec<EarlierResult>), String> {
    let results = earlier_results(earlier)?;
    let mut step = step.clone();
    let name = step.name.clone();
    if let Some(args) = &mut step.args {
        for arg in args.iter_mut() {
            *arg = substitute(arg, earlier).map_err(|e| format!("step {name} args: {e}"))?;
        }
    }
    for var in &mut step.env {
        if let Some(value) = &mut var.value {
            *value = substitute(value, earlier)
                .map_err(|e| format!("step {name} env {}: {e}", var.name))?;
        }
    }
    Ok((step, results))
}
