//! Keeping the execution until the operator is done with it: while a feature still needs it (a sink of its
//! namespace will be told more of it, or has not delivered everything of it yet), it carries the operator's
//! finalizer, so a deletion (TTL, `kubectl delete`) waits; once nothing needs it, the finalizer goes.

use crate::lifecycle::plan::FinalizerChange;
use crate::lifecycle::{Observed, Plan};

/// Adds the finalizer the execution needs and lacks, or removes the one it no longer needs.
pub(super) fn keep_or_release(observed: &Observed<'_>, plan: &mut Plan) {
    plan.finalizer = match (observed.retain, observed.has_finalizer) {
        (true, false) if !plan.delete_execution => Some(FinalizerChange::Add),
        (false, true) => Some(FinalizerChange::Remove),
        _ => None,
    };
}
