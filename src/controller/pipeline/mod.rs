//! One reconcile of one execution, as a pipeline of named stages, each in its own file:
//!
//! ```text
//! gate ─▶ admission ticket ─▶ payload ─▶ observe ─▶ decide (+ the reads the plan asks for) ─▶ act ─▶ after write
//! ```
//!
//! - [`gate`]: nothing to do yet (standby, caches not listed, the cache lags our own write); [`deleting`]: an
//!   execution being deleted is let go once no sink needs it.
//! - [`ticket`]: the queue's verdict; a reservation that only a plan taking the slot keeps (dropping the ticket
//!   releases it, so no early return can leak a slot).
//! - [`payload`]: a waiting execution's `spec.crew`/`spec.inputs`, dropped from the cache, read when it is admitted.
//! - [`observe`]: everything the core reads, from the caches and indexes (no request).
//! - [`decide_act`]: the core decides once; the reads its plan asks for are answered and it decides again with
//!   them; the plan's writes are made (`super::act`); a Job the API server refuses is one more fact decided on.
//! - [`after_write`]: progress-book and metrics bookkeeping, waking the queue, the requeue.

pub mod after_write;
pub mod decide_act;
pub mod deleting;
pub mod gate;
pub mod observe;
pub mod payload;
pub mod ticket;

use super::context::Context;
use crate::error::Error;
use crew_api::CrewExecution;
use kube::runtime::controller::Action;
use std::sync::Arc;

/// One reconcile of one execution (see the module documentation).
pub async fn reconcile_one(cx: Arc<CrewExecution>, ctx: Arc<Context>) -> Result<Action, Error> {
    if let Some(action) = gate::gate(&cx, &ctx) {
        return Ok(action);
    }
    if cx.metadata.deletion_timestamp.is_some() {
        return deleting::let_go(&cx, &ctx).await;
    }
    let mut ticket = ticket::AdmissionTicket::take(&ctx, &cx);
    let Some(cx) = payload::ensure(&ctx, cx, ticket.admission()).await? else {
        // Deleted (or replaced) meanwhile: its watch event follows.
        return Ok(Action::await_change());
    };
    let mut seen = observe::observe(&cx, &ctx, ticket.admission().clone());
    let (plan, written) = decide_act::decide_and_act(&cx, &mut seen, &mut ticket, &ctx).await?;
    ticket.keep_if_taken(&plan);
    after_write::after_write(&ctx, &cx, &plan, &written, seen.held.as_ref());
    Ok(after_write::requeue(&written, &plan))
}
