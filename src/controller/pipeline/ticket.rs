//! The queue's verdict for one reconcile, as a ticket: an admission reserves a slot in the queue book, and the
//! reservation never expires while the ticket lives (however slow the reconcile). A plan that takes the slot
//! commits it (it then holds until the execution's Running status or Job is visible, or the book's expiry);
//! dropping the ticket otherwise releases it, so no early return or error can leak a slot.

use crate::controller::context::Context;
use crate::controller::queues;
use crew_api::{CrewExecution, Phase};
use crew_core::lifecycle::queue::member_key;
use crew_core::lifecycle::{Admission, Plan};
use kube::ResourceExt;

/// One reconcile's admission (see the module documentation).
pub struct AdmissionTicket<'a> {
    ctx: &'a Context,
    /// The execution's key in the queue book.
    key: String,
    admission: Admission,
    held: bool,
}

impl<'a> AdmissionTicket<'a> {
    /// Asks the queue book whether `execution` may take a running slot now (reserving it if so).
    pub fn take(ctx: &'a Context, execution: &CrewExecution) -> Self {
        AdmissionTicket {
            admission: queues::admission(ctx, execution),
            key: member_key(
                &execution.namespace().unwrap_or_default(),
                &execution.name_any(),
            ),
            ctx,
            held: true,
        }
    }

    /// The verdict.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Releases the reservation now unless `plan` takes the slot (before its writes wait on the API server, so
    /// that another member may take the slot meanwhile).
    pub fn settle(&mut self, plan: &Plan) {
        if self.held && !takes_slot(plan) {
            self.release();
        }
    }

    /// Keeps the reservation when `plan`, now written, takes the slot (until the cache shows the execution holding
    /// it, or the book's expiry counted from now); else releases it.
    pub fn keep_if_taken(mut self, plan: &Plan) {
        if self.held && takes_slot(plan) {
            self.held = false;
            self.ctx
                .indexes
                .book()
                .commit(&self.key, jiff::Timestamp::now());
        }
    }

    fn release(&mut self) {
        self.held = false;
        self.ctx.indexes.book().release(&self.key);
    }
}

impl Drop for AdmissionTicket<'_> {
    fn drop(&mut self) {
        if self.held {
            self.release();
        }
    }
}

/// Whether executing `plan` holds a running slot (a launch, or a Running status).
pub fn takes_slot(plan: &Plan) -> bool {
    plan.launch.is_some()
        || plan
            .status
            .as_ref()
            .is_some_and(|s| s.phase == Some(Phase::Running))
}
