//! A waiting execution's payload: the cache drops `spec.crew` and `spec.inputs` of executions that wait
//! (`watches::drop_payload`); the reconcile that may start one reads it whole from the API server first (one GET
//! per queued run, when it is admitted).

use crate::controller::context::Context;
use crate::controller::watches::waits_before_start;
use crate::error::Error;
use crew_api::CrewExecution;
use crew_core::lifecycle::Admission;
use kube::{Api, ResourceExt};
use std::sync::Arc;

/// `execution` with its payload when this reconcile may start its first step, else as cached. None: it is gone,
/// or replaced by another of the same name (its watch event follows).
pub async fn ensure(
    ctx: &Context,
    execution: Arc<CrewExecution>,
    admission: &Admission,
) -> Result<Option<Arc<CrewExecution>>, Error> {
    if !needs_payload(&execution, admission) {
        return Ok(Some(execution));
    }
    let api: Api<CrewExecution> = Api::namespaced(
        ctx.client.clone(),
        &execution.namespace().unwrap_or_default(),
    );
    let fresh = Box::pin(api.get_opt(&execution.name_any()))
        .await
        .map_err(crate::error::kube("read a queued execution's payload"))?;
    Ok(fresh
        .filter(|fresh| fresh.uid() == execution.uid())
        .map(Arc::new))
}

/// Whether this reconcile may start the run's first step from a cached copy without its payload.
fn needs_payload(execution: &CrewExecution, admission: &Admission) -> bool {
    waits_before_start(execution)
        && *admission == Admission::Admitted
        && !execution.spec.suspend
        && !execution.spec.cancel
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_admitted_waiting_run_that_may_start_is_read_whole() {
        let spec = serde_json::json!({"image": "busybox", "crew": {"a": 1}, "inputs": {"b": 2}});
        let mut queued = CrewExecution::new("a", serde_json::from_value(spec).unwrap());
        queued.status = serde_json::from_value(serde_json::json!({"phase": "Queued"})).unwrap();
        let wait = Admission::Wait {
            queue: "q".into(),
            position: 1,
        };
        assert!(!needs_payload(&queued, &wait));
        assert!(needs_payload(&queued, &Admission::Admitted));
        queued.spec.suspend = true;
        assert!(!needs_payload(&queued, &Admission::Admitted));
    }
}
