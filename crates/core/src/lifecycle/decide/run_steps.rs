//! Which steps a run executes: the ones it froze at its first launch (`status.resolvedSteps`), else the spec's.
//! An edit of the steps after that is reported (`StepsChanged`), an invalid spec ends the run (`InvalidSpec`).

use super::outcome::Outcome;
use super::pause_cancel::active_owned_jobs;
use crate::lifecycle::conditions;
use crate::lifecycle::draft::Draft;
use crate::lifecycle::resolve::live_field_problems;
use crate::lifecycle::worker_policy::volume_problems_of;
use crate::lifecycle::{InvalidSpec, Observed, Plan, ResolvedStep, resolve_frozen, resolve_steps};
use crew_api::{ConditionType, CrewExecutionStatus, Phase, Reason};

/// The steps this run executes; records in `outcome` why the spec's own steps differ, and warns once per spec
/// edit that does not apply.
pub(super) fn steps_to_run(
    draft: &mut Draft<'_>,
    outcome: &mut Outcome,
) -> Result<Vec<ResolvedStep>, InvalidSpec> {
    let observed = draft.observed;
    let (steps, steps_changed) = frozen_or_spec(observed, draft.previous);
    if let Some(change) = &steps_changed
        && observed.generation != draft.previous.observed_generation
    {
        draft.event(Reason::StepsChanged, change.clone());
    }
    outcome.steps_changed = steps_changed;
    steps
}

/// The steps this run executes: the ones it froze at its start (`status.resolvedSteps`), else the spec's. Once
/// frozen, the spec's own steps only matter for the report of an edit that does not apply (the second value); its
/// live fields are still checked (an invalid value there fails the run).
fn frozen_or_spec(
    observed: &Observed<'_>,
    previous: &CrewExecutionStatus,
) -> (Result<Vec<ResolvedStep>, InvalidSpec>, Option<String>) {
    if previous.resolved_steps.is_empty() {
        let steps = resolve_steps(observed.spec).and_then(|steps| {
            let mut refused = observed.worker_policy.pod_key_problems(&steps);
            refused.extend(volume_problems_of(&steps));
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
        let changed = conditions::find(&previous.conditions, ConditionType::StepsChanged)
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

/// An invalid spec ends the run wherever it stands, with reason `InvalidSpec`, and stops its Job.
pub(super) fn fail_invalid(
    draft: &mut Draft<'_>,
    plan: &mut Plan,
    outcome: &mut Outcome,
    invalid: InvalidSpec,
) {
    let message = format!("invalid spec: {invalid}");
    outcome.records = Vec::new();
    // Every live phase may fail: an invalid spec ends the run wherever it stands (a stalled Queued member would
    // hold the head of its queue).
    draft.transition(Phase::Failed, Reason::InvalidSpec, message, None);
    outcome.completion_time = Some(draft.now);
    plan.delete_jobs = active_owned_jobs(draft);
}
