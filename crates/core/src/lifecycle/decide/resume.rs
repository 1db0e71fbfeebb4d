//! Resuming (`spec.resumeFrom`): when the run has not started a step yet, the steps before its resume step are
//! taken over from the execution it names (their recorded outcomes and results, as written there), and the run
//! starts at the resume step. The other execution is never written; its posted results' ConfigMaps get this run as
//! a second owner (`Plan.adopt_results`), so deleting it later deletes nothing this run reads.

use super::outcome::Outcome;
use crate::lifecycle::draft::Draft;
use crate::lifecycle::steps::StepView;
use crate::lifecycle::{InvalidSpec, Plan};
use crew_api::{Reason, StepPhase, StepStatus};

/// Takes over the steps before the resume step (see the module documentation); an execution that cannot be
/// resumed from as asked is an invalid spec.
pub(super) fn take_over(
    draft: &mut Draft<'_>,
    plan: &mut Plan,
    outcome: &mut Outcome,
) -> Result<(), InvalidSpec> {
    let observed = draft.observed;
    let Some(from) = &observed.spec.resume_from else {
        return Ok(());
    };
    let started = observed
        .status
        .is_some_and(|s| s.steps.iter().any(|step| step.attempt > 0));
    if started {
        return Ok(());
    }
    let invalid = |why: String| InvalidSpec(format!("spec.resumeFrom: {why}"));
    let at = outcome
        .records
        .iter()
        .position(|r| r.spec.name == from.step)
        .ok_or_else(|| invalid(format!("{:?} is not a step of this run", from.step)))?;
    let source = observed.resume_source.as_ref().ok_or_else(|| {
        invalid(format!(
            "execution {:?} does not exist in this namespace",
            from.execution
        ))
    })?;
    let mut taken = Vec::new();
    for record in &mut outcome.records[..at] {
        let name = record.spec.name.clone();
        let old = source
            .steps
            .iter()
            .find(|s| s.name == name && s.phase == StepPhase::Succeeded)
            .ok_or_else(|| {
                invalid(format!(
                    "step {name:?} did not succeed in execution {:?}",
                    from.execution
                ))
            })?;
        record.status = StepStatus {
            job_name: None,
            message: Some(format!("reused from execution {}", from.execution)),
            progress: None,
            ..old.clone()
        };
        record.view = StepView::Finished {
            attempt: old.attempt.max(1),
            succeeded: true,
            finished: old.completion_time.as_ref().map_or(draft.now, |t| t.0),
        };
        record.recorded = None;
        if let Some(reference) = &old.result_ref {
            plan.adopt_results.push(reference.config_map.clone());
        }
        taken.push(name);
    }
    if !taken.is_empty() {
        draft.note(
            Reason::StepsReused,
            format!(
                "steps {} reused from execution {} (uid {}); starting at step {}",
                taken.join(", "),
                from.execution,
                source.uid,
                from.step
            ),
            &from.step,
        );
    }
    Ok(())
}
