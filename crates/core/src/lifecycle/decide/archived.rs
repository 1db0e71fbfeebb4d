//! A finished run and the archive: its `Archived` condition says whether it is stored (True) or storing it fails
//! (False, with why, and one Warning Event per distinct failure); its TTL waits until it is stored, so nothing is
//! deleted before it is safe. Without an archive nothing here acts.

use crate::lifecycle::ArchiveFact;
use crate::lifecycle::conditions::{find, is_true};
use crate::lifecycle::draft::Draft;
use crew_api::{ConditionType, CrewExecutionStatus, Reason};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Records in `status` what the archive holds of the finished run.
pub(super) fn record(draft: &mut Draft<'_>, status: &mut CrewExecutionStatus) {
    let wanted = match &draft.observed.archive {
        ArchiveFact::Off | ArchiveFact::Pending => return,
        ArchiveFact::Committed => (
            "True",
            Reason::Archived,
            "stored in the archive".to_string(),
        ),
        ArchiveFact::Failing(why) => ("False", Reason::ArchiveFailed, why.clone()),
    };
    let (state, reason, message) = wanted;
    let current = find(&status.conditions, ConditionType::Archived);
    if current
        .is_some_and(|c| c.status == state && c.reason == reason.as_str() && c.message == message)
    {
        return;
    }
    if reason == Reason::ArchiveFailed {
        draft.event(
            reason,
            format!("storing the run in the archive failed: {message}"),
        );
    }
    let condition = Condition {
        type_: ConditionType::Archived.as_str().to_string(),
        status: state.to_string(),
        reason: reason.as_str().to_string(),
        message,
        last_transition_time: current
            .filter(|c| c.status == state)
            .map_or(Time(draft.now), |c| c.last_transition_time.clone()),
        observed_generation: draft.observed.generation,
    };
    status
        .conditions
        .retain(|c| c.type_ != ConditionType::Archived.as_str());
    status.conditions.push(condition);
}

/// Whether the TTL must wait: an archive is configured and `status` does not say the run is stored.
pub(super) fn holds_ttl(draft: &Draft<'_>, status: &CrewExecutionStatus) -> bool {
    draft.observed.archive != ArchiveFact::Off
        && !is_true(&status.conditions, ConditionType::Archived)
}
