//! Decide once, answer the reads the plan asks for (and decide again with the answers), then act; a Job create
//! the API server refuses is one more fact, decided on once more.

use super::observe::Seen;
use super::ticket::AdmissionTicket;
use crate::controller::act::{self, StatusWrite};
use crate::controller::context::Context;
use crate::error::Error;
use crew_api::CrewExecution;
use crew_core::lifecycle::{Plan, Read, decide};
use k8s_openapi::api::batch::v1::Job;
use kube::{Api, ResourceExt};

/// Decides on what `seen` shows, answering each read the plan asks for (at most once each) and deciding again with
/// the answer (a plan that still asks for a read after its answer brought no news is carried out as it stands);
/// makes the final plan's writes. Boxed plans: a plan (a whole status) stays alive while its writes wait
/// on the API server.
pub async fn decide_and_act(
    cx: &CrewExecution,
    seen: &mut Seen,
    ticket: &mut AdmissionTicket<'_>,
    ctx: &Context,
) -> Result<(Box<Plan>, StatusWrite), Error> {
    let now = jiff::Timestamp::now();
    // Until the watch shows what this reconcile writes, the sinks' delivery position stays before it.
    let uid = cx.uid().unwrap_or_default();
    let sinks = ctx.notify.has_sinks_in(&cx.namespace().unwrap_or_default());
    if sinks {
        ctx.notify
            .writing(&uid, crew_core::lifecycle::timefmt::whole_seconds(now));
    }
    let mut answered = Vec::new();
    loop {
        let plan = Box::new(decide(&seen.observed(cx, ctx), now));
        if let Some(read) = plan.read.clone().filter(|read| !answered.contains(read)) {
            answered.push(read.clone());
            if Box::pin(answer(&read, cx, seen, ctx)).await? {
                continue;
            }
        }
        if !plan.is_noop() {
            tracing::debug!(launch = ?plan.launch.as_ref().map(|l| &l.job_name), delete = ?plan.delete_jobs,
                release = ?plan.release_jobs, status = plan.status.is_some(), events = plan.events.len(),
                "executing plan");
        }
        ticket.settle(&plan);
        // Boxed, like each write inside: thousands of reconciles wait here at once during a burst.
        match Box::pin(act::execute(cx, &plan, ctx)).await {
            // The API server refused the Job: decide again knowing it (the attempt fails, visibly) and write that.
            Err(Error::JobRejected(rejection)) if seen.answers.rejected.is_none() => {
                tracing::info!(job = %rejection.job_name, permanent = rejection.permanent,
                    message = %rejection.message, "Job create refused");
                seen.answers.rejected = Some(rejection);
            }
            outcome => {
                if sinks && !records_new_entries(cx, &plan, &outcome) {
                    ctx.notify.not_written(&uid);
                }
                return outcome.map(|written| (plan, written));
            }
        }
    }
}

/// Whether `outcome` may have stored new history entries of `plan` (an error may have: the write's fate is
/// unknown).
fn records_new_entries(
    cx: &CrewExecution,
    plan: &Plan,
    outcome: &Result<StatusWrite, Error>,
) -> bool {
    let newest = |status: Option<&crew_api::CrewExecutionStatus>| {
        status
            .and_then(|s| s.history.last())
            .map(|e| e.time.clone())
    };
    match outcome {
        Ok(StatusWrite::Written) => newest(plan.status.as_ref()) > newest(cx.status.as_ref()),
        Ok(_) => false,
        Err(_) => true,
    }
}

/// Answers `read` into `seen`; returns whether the answer is news the plan must be decided again on.
async fn answer(
    read: &Read,
    cx: &CrewExecution,
    seen: &mut Seen,
    ctx: &Context,
) -> Result<bool, Error> {
    let namespace = cx.namespace().unwrap_or_default();
    match read {
        Read::Job(job) => {
            let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
            let found = jobs
                .get_metadata_opt(job)
                .await
                .map_err(crate::error::kube("read a Job missing from the cache"))?;
            if found.is_some() {
                tracing::info!(%job, "Job missing from the cache but present: the watch lags");
                return Ok(false);
            }
            seen.answers.missing_job = Some(job.clone());
            Ok(true)
        }
        Read::PodRefusal(job) => {
            // None yet: the pod is only late, and the plan stands.
            let job_uid = ctx
                .indexes
                .children
                .job_uid(&namespace, &cx.name_any(), job);
            seen.answers.pod_refused = ctx.indexes.refusals.of(&namespace, job, job_uid.as_deref());
            Ok(seen.answers.pod_refused.is_some())
        }
        Read::ServiceAccount(name) => {
            let fact =
                crate::controller::worker_access::read_service_account(ctx, &namespace, name);
            seen.answers.service_account = Some(fact.await?);
            Ok(true)
        }
    }
}
