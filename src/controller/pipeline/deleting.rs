//! An execution being deleted: its Jobs go with it (garbage collection); the operator only lets it go, removing
//! its finalizer once no sink has anything of it left to deliver and the archive has stored it (the sink's task,
//! or the archiver, reconciles it when that happens).

use crate::controller::act::change_finalizer;
use crate::controller::context::Context;
use crate::error::Error;
use crate::notify::RETAIN_FINALIZER;
use crew_api::CrewExecution;
use crew_core::lifecycle::FinalizerChange;
use kube::ResourceExt;
use kube::runtime::controller::Action;

/// The reconcile of an execution being deleted.
pub async fn let_go(cx: &CrewExecution, ctx: &Context) -> Result<Action, Error> {
    let ours = cx.finalizers().iter().any(|f| f == RETAIN_FINALIZER);
    if ours && !ctx.retains(cx) && ctx.is_leading() {
        let version = cx.resource_version();
        let namespace = cx.namespace().unwrap_or_default();
        Box::pin(change_finalizer(
            cx,
            FinalizerChange::Remove,
            version.as_deref(),
            ctx,
            &namespace,
        ))
        .await?;
    }
    if !ours || !ctx.retains(cx) {
        ctx.forget(&cx.uid().unwrap_or_default());
    }
    Ok(Action::await_change())
}
