//! The reconciles that have nothing to do yet, and what they wait for.

use crate::controller::context::Context;
use crew_api::CrewExecution;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use std::time::Duration;

/// How soon to look again while a cache has not listed.
const UNSYNCED_REQUEUE: Duration = Duration::from_millis(500);
/// How soon to look again while the cache has not shown our last status write.
const OWN_WRITE_REQUEUE: Duration = Duration::from_secs(5);

/// What to do instead of reconciling `cx` now, if anything:
/// - a standby keeps its caches warm but acts on nothing (becoming the leader reconciles every execution);
/// - until every cache has listed, no decision is made on a partial view;
/// - while the cache still shows the version our last status write was computed from, acting would act on a
///   stale view.
pub fn gate(cx: &CrewExecution, ctx: &Context) -> Option<Action> {
    if !ctx.is_leading() {
        return Some(Action::await_change());
    }
    if !ctx.readiness().synced() {
        return Some(Action::requeue(UNSYNCED_REQUEUE));
    }
    let uid = cx.uid().unwrap_or_default();
    if ctx
        .objects
        .cache_lags_own_write(&uid, cx.resource_version().as_deref())
    {
        tracing::trace!("cache has not seen our last status write yet");
        return Some(Action::requeue(OWN_WRITE_REQUEUE));
    }
    None
}
