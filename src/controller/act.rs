//! Executes a [`Plan`]: the only place that writes to the API server on behalf of a reconcile.
//!
//! Order: delete the execution (TTL) | ConfigMap, Job creation, Job deletion, then the one status write, then the
//! Events (only once the status they describe is stored, so a failed write does not leave Events about nothing),
//! then the deletion of finished Jobs whose outcome that status stores (`spec.jobCleanup`).

use super::context::Context;
use super::events::EventDraft;
use crate::error::{Error, is_reason, kube as kube_err};
use crate::metrics::WriteKind;
use crate::notify::RETAIN_FINALIZER;
use crew_api::{CrewExecution, CrewExecutionStatus, FIELD_MANAGER};
use crew_core::build::{
    config_map::crew_config_map, status_patch::status_apply_body, worker_job::worker_job,
};
use crew_core::lifecycle::draft::entry_event;
use crew_core::lifecycle::{EventNote, FinalizerChange, JobRejection, Launch, Plan};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy};
use kube::{Api, Resource, ResourceExt};

pub(crate) const ALREADY_EXISTS: &str = "AlreadyExists";
const NOT_FOUND: &str = "NotFound";
const CONFLICT: &str = "Conflict";

/// What happened to the status write.
#[derive(Debug, PartialEq, Eq)]
pub enum StatusWrite {
    /// Nothing to write.
    Unchanged,
    /// Written.
    Written,
    /// Refused because the object changed since it was read (stale view): retry after the cache catches up.
    Stale,
}

/// Applies `plan` for `execution`.
pub async fn execute(
    execution: &CrewExecution,
    plan: &Plan,
    ctx: &Context,
) -> Result<StatusWrite, Error> {
    let ns = execution.namespace().unwrap_or_default();
    let name = execution.name_any();
    // The finalizer first: a run a sink must hear the end of carries it before anything of the run happens. Its
    // write moves the resourceVersion, which the status write below is then guarded by.
    let mut version = execution.resource_version();
    if let Some(change) = plan.finalizer {
        still_leading(ctx, "finalizer change")?;
        match Box::pin(change_finalizer(
            execution,
            change,
            version.as_deref(),
            ctx,
            &ns,
        ))
        .await?
        {
            Some(moved) => version = Some(moved),
            None => return Ok(StatusWrite::Stale),
        }
    }
    if plan.delete_execution {
        still_leading(ctx, "execution delete")?;
        return Box::pin(delete_execution(execution, version, ctx, &ns)).await;
    }
    // Deleting a Job cannot be undone, and the status write after it is guarded by the resourceVersion but the
    // delete is not: act only on the version the plan was made from (a timeout raised or a cancel cleared in the
    // meantime would otherwise stop a step that should run on). One read, and only for plans that stop Jobs.
    if !plan.delete_jobs.is_empty()
        && !Box::pin(still_current(execution, version.as_deref(), ctx, &ns)).await?
    {
        return Ok(StatusWrite::Stale);
    }
    // Each write is boxed: an execution waiting on the API server holds only the future of the write in flight,
    // not the largest of all of them (the difference is most of the operator's memory when thousands wait).
    Box::pin(worker_files(execution, plan, ctx, &ns)).await?;
    if let Some(launch) = &plan.launch {
        still_leading(ctx, "Job create")?;
        Box::pin(create_job(execution, launch, ctx, &ns)).await?;
    }
    for job in &plan.delete_jobs {
        still_leading(ctx, "Job delete")?;
        Box::pin(delete_job(ctx, &ns, job, WriteKind::JobDelete)).await?;
    }
    let written = match &plan.status {
        Some(status) => {
            still_leading(ctx, "status write")?;
            Box::pin(write_status(
                execution,
                status,
                version.as_deref(),
                ctx,
                &ns,
            ))
            .await?
        }
        None => StatusWrite::Unchanged,
    };
    if written == StatusWrite::Stale {
        return Ok(written);
    }
    let status = plan.status.as_ref().or(execution.status.as_ref());
    for note in &plan.events {
        Box::pin(publish(execution, note, status, ctx)).await;
    }
    // Only now is each released Job's outcome stored: its deletion loses nothing (`spec.jobCleanup`). After the
    // Events: a failed delete is retried by the next reconcile, the Events of this status would not be.
    for job in &plan.release_jobs {
        still_leading(ctx, "finished Job delete")?;
        Box::pin(delete_job(ctx, &ns, job, WriteKind::JobCleanup)).await?;
        ctx.indexes.children.mark_deleting(&ns, &name, job);
    }
    Ok(written)
}

/// Deletes the finished execution (its TTL), only at `version`: an edit since (a longer TTL) makes the API server
/// refuse.
async fn delete_execution(
    execution: &CrewExecution,
    version: Option<String>,
    ctx: &Context,
    ns: &str,
) -> Result<StatusWrite, Error> {
    let api: Api<CrewExecution> = Api::namespaced(ctx.client.clone(), ns);
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions {
            resource_version: version,
            uid: execution.uid(),
        }),
        ..Default::default()
    };
    match api.delete(&execution.name_any(), &params).await {
        Ok(_) => ctx.count_write(WriteKind::ExecutionDelete),
        Err(e) if is_reason(&e, NOT_FOUND) => {}
        Err(e) if is_reason(&e, CONFLICT) => return Ok(StatusWrite::Stale),
        Err(e) => return Err(kube_err("delete execution")(e)),
    }
    Ok(StatusWrite::Unchanged)
}

/// Whether the API server still has `version` of the execution (the one the cache showed, or the one this
/// reconcile's own finalizer change made), with the same UID.
async fn still_current(
    execution: &CrewExecution,
    version: Option<&str>,
    ctx: &Context,
    ns: &str,
) -> Result<bool, Error> {
    let api: Api<CrewExecution> = Api::namespaced(ctx.client.clone(), ns);
    let fresh = api
        .get_metadata_opt(&execution.name_any())
        .await
        .map_err(kube_err("read execution before deleting Jobs"))?;
    Ok(fresh.is_some_and(|fresh| {
        fresh.uid() == execution.uid() && fresh.resource_version().as_deref() == version
    }))
}

/// What the plan's workers read besides their Job: results of a run resumed from, shared with this one; the crew
/// ConfigMap before the first Job.
async fn worker_files(
    execution: &CrewExecution,
    plan: &Plan,
    ctx: &Context,
    ns: &str,
) -> Result<(), Error> {
    for config_map in &plan.adopt_results {
        still_leading(ctx, "result ConfigMap adoption")?;
        Box::pin(crate::results::adopt(ctx, execution, config_map)).await?;
    }
    if plan.ensure_config_map {
        still_leading(ctx, "ConfigMap create")?;
        Box::pin(create_config_map(execution, ctx, ns)).await?;
    }
    Ok(())
}

/// Fails before a write once this replica's leadership has lapsed (checked just before each write: a reconcile
/// may have started while leading and waited on the API server since).
pub fn still_leading(ctx: &Context, write: &'static str) -> Result<(), Error> {
    if ctx.is_leading() {
        Ok(())
    } else {
        Err(Error::NotLeading(write))
    }
}

async fn create_config_map(
    execution: &CrewExecution,
    ctx: &Context,
    ns: &str,
) -> Result<(), Error> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    match api
        .create(&PostParams::default(), &crew_config_map(execution)?)
        .await
    {
        Ok(_) => {
            ctx.count_write(WriteKind::ConfigMap);
            Ok(())
        }
        Err(e) if is_reason(&e, ALREADY_EXISTS) => Ok(()),
        Err(e) => Err(kube_err("create ConfigMap")(e)),
    }
}

/// Creates the attempt's Job. `AlreadyExists` is success only when the existing Job is controlled by this
/// execution (never two Jobs for one step attempt, never adopting a stranger's).
async fn create_job(
    execution: &CrewExecution,
    launch: &Launch,
    ctx: &Context,
    ns: &str,
) -> Result<(), Error> {
    // Serialized in a statement of its own, so that the Job is dropped before the request waits on the API server.
    let request = {
        let mut job = worker_job(execution, launch)?;
        if let Some(url) = &ctx.settings.progress.progress_url {
            crew_core::build::progress_token::add_progress_reporting(&mut job, url);
        }
        post_request(ns, &job).map_err(kube_err("create Job"))?
    };
    // The response (the created Job) is not decoded: nothing reads it, the watch brings the Job.
    match ctx.client.request_text(request).await {
        Ok(_) => {
            ctx.count_write(WriteKind::JobCreate);
            Ok(())
        }
        Err(e) if is_reason(&e, ALREADY_EXISTS) => {
            let existing = Api::<Job>::namespaced(ctx.client.clone(), ns)
                .get(&launch.job_name)
                .await
                .map_err(kube_err("read existing Job"))?;
            match crew_core::lifecycle::job_summary::controller_of(&existing) {
                Some(owner) if Some(&owner.uid) == execution.uid().as_ref() => Ok(()),
                // An earlier execution of the same name: its Job goes with it (the decision waits, visibly, once
                // the cache shows that Job under this execution's label).
                Some(owner)
                    if owner.kind == "CrewExecution" && owner.name == execution.name_any() =>
                {
                    Err(Error::JobNameTaken(launch.job_name.clone()))
                }
                // Another object's Job has this name (`a` + step `b-c` and `a-b` + step `c`, or two long names
                // shortened to one): a failed attempt, so the next one (another name) runs under the retry policy.
                other => Err(Error::JobRejected(JobRejection {
                    job_name: launch.job_name.clone(),
                    permanent: false,
                    message: format!(
                        "the name is taken by a Job of {}; rename the execution or the step (a retry uses the \
                         next attempt's name)",
                        other.map_or("another owner".to_string(), |o| format!(
                            "{} {}",
                            o.kind, o.name
                        ))
                    ),
                })),
            }
        }
        Err(e) => Err(match rejection(&launch.job_name, &e) {
            Some(rejection) => Error::JobRejected(rejection),
            None => kube_err("create Job")(e),
        }),
    }
}

/// The API server's refusal of a Job create, when it answered one. 400 and 422 mean the spec makes an invalid Job,
/// which no retry cures; any other answer (403 from quota or an admission policy, 429, 5xx from a failing webhook
/// or an overloaded server) may pass later. No answer at all (a connection error, a timeout) is not a refusal: the
/// Job may exist, and the reconcile is retried with its error backoff.
pub fn rejection(job_name: &str, error: &kube::Error) -> Option<JobRejection> {
    let kube::Error::Api(status) = error else {
        return None;
    };
    Some(JobRejection {
        job_name: job_name.to_string(),
        permanent: matches!(status.code, 400 | 422),
        message: if status.message.is_empty() {
            format!("{} ({})", status.reason, status.code)
        } else {
            status.message.clone()
        },
    })
}

/// Adds or removes the operator's finalizer on `execution` (guarded by `version`); the new resourceVersion, or
/// None when the object changed meanwhile (the next reconcile decides again).
pub async fn change_finalizer(
    execution: &CrewExecution,
    change: FinalizerChange,
    version: Option<&str>,
    ctx: &Context,
    ns: &str,
) -> Result<Option<String>, Error> {
    let mut finalizers: Vec<String> = execution
        .finalizers()
        .iter()
        .filter(|f| f.as_str() != RETAIN_FINALIZER)
        .cloned()
        .collect();
    if change == FinalizerChange::Add {
        finalizers.push(RETAIN_FINALIZER.to_string());
    }
    let patch =
        serde_json::json!({"metadata": {"resourceVersion": version, "finalizers": finalizers}});
    let api: Api<CrewExecution> = Api::namespaced(ctx.client.clone(), ns);
    match api
        .patch_metadata(
            &execution.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(changed) => {
            ctx.count_write(WriteKind::Finalizer);
            // Like a status write: until the cache shows this change, the reconcile waits (it would make it again).
            if let Some(uid) = execution.uid() {
                ctx.objects
                    .wrote_status_from(&uid, execution.resource_version().as_deref());
            }
            Ok(changed.resource_version())
        }
        Err(e) if is_reason(&e, CONFLICT) => Ok(None),
        Err(e) if is_reason(&e, NOT_FOUND) => Ok(None),
        Err(e) => Err(kube_err("change the finalizer")(e)),
    }
}

/// The `POST` creating `job` in `ns`.
fn post_request(ns: &str, job: &Job) -> Result<http::Request<Vec<u8>>, kube::Error> {
    let body = serde_json::to_vec(job).map_err(kube::Error::SerdeError)?;
    kube::core::Request::new(Job::url_path(&(), Some(ns)))
        .create(&PostParams::default(), body)
        .map_err(kube::Error::BuildRequest)
}

async fn delete_job(ctx: &Context, ns: &str, job: &str, kind: WriteKind) -> Result<(), Error> {
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    match api.delete(job, &params).await {
        Ok(_) => {
            ctx.count_write(kind);
            Ok(())
        }
        Err(e) if is_reason(&e, NOT_FOUND) => Ok(()),
        Err(e) => Err(kube_err("delete Job")(e)),
    }
}

/// Writes `status`, guarded by `version` (the cached object's, or the one this reconcile's own finalizer change
/// made).
async fn write_status(
    execution: &CrewExecution,
    status: &CrewExecutionStatus,
    version: Option<&str>,
    ctx: &Context,
    ns: &str,
) -> Result<StatusWrite, Error> {
    let api: Api<CrewExecution> = Api::namespaced(ctx.client.clone(), ns);
    let rv = execution.resource_version();
    let body = status_apply_body(status, version);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api
        .patch_status(&execution.name_any(), &params, &Patch::Apply(&body))
        .await
    {
        Ok(written) => {
            ctx.count_write(WriteKind::Status);
            // A write that changed nothing keeps the resourceVersion: there is then no newer version for the
            // cache to catch up with, and waiting for one would wait forever. Otherwise the cache lags until it
            // shows neither the cached version nor the one this write was guarded by (this reconcile's own
            // finalizer change).
            if let Some(uid) = execution.uid()
                && written.resource_version().as_deref() != version.or(rv.as_deref())
            {
                ctx.objects.wrote_status_from(&uid, rv.as_deref());
                ctx.objects.wrote_status_from(&uid, version);
            }
            Ok(StatusWrite::Written)
        }
        Err(e) if is_reason(&e, CONFLICT) => Ok(StatusWrite::Stale),
        Err(e) => Err(kube_err("write status")(e)),
    }
}

/// Queues one Event (created in the background; a failure is logged, never fails the reconcile).
async fn publish(
    execution: &CrewExecution,
    note: &EventNote,
    status: Option<&CrewExecutionStatus>,
    ctx: &Context,
) {
    let related = note.step.as_ref().and_then(|step| {
        let job = match &note.job {
            Some(job) => job.clone(),
            None => status?
                .steps
                .iter()
                .find(|s| &s.name == step)?
                .job_name
                .clone()?,
        };
        Some(ObjectReference {
            api_version: Some("batch/v1".into()),
            kind: Some("Job".into()),
            name: Some(job),
            namespace: execution.namespace(),
            ..Default::default()
        })
    });
    let draft = EventDraft {
        warning: note.warning,
        reason: &note.reason,
        note: &note.note,
        action: "Reconcile",
        regarding: execution.object_ref(&()),
        related,
        entry_key: note.entry_key.as_deref(),
        time: note.time,
    };
    ctx.events.send(draft).await;
}

/// How recent an execution's newest history entry must be for its Event to be sent again when this replica starts
/// acting: enough to cover a crash and a restart, and well inside the API server's Event TTL (1 h by default), so
/// that an Event that existed and expired is not made again.
pub const RESEND_WINDOW: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

/// Sends again the Events of every cached execution's last status write (its history entries of the newest
/// entry's time: one write stamps all its entries alike) when younger than [`RESEND_WINDOW`]. A crash between a
/// status write and its Events, or with Events still queued in the lanes, lost them; for every other execution the
/// create hits `AlreadyExists` (the Event is named after its entry), so this costs about one request per entry of
/// each recently active execution's last write per start and never makes a duplicate. Run once the caches are
/// filled and this replica leads.
pub async fn resend_recent_events(ctx: &Context, now: jiff::Timestamp) {
    for execution in ctx.caches.executions.state() {
        let Some(status) = execution.status.as_ref() else {
            continue;
        };
        let Some(newest) = status.history.last() else {
            continue;
        };
        if now.duration_since(newest.time.0) > RESEND_WINDOW {
            continue;
        }
        let last_write = status
            .history
            .iter()
            .rev()
            .take_while(|entry| entry.time == newest.time)
            .collect::<Vec<_>>();
        for entry in last_write.into_iter().rev() {
            Box::pin(publish(
                &execution,
                &entry_event(entry, None),
                Some(status),
                ctx,
            ))
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crew_api::CrewExecutionSpec;
    use crew_core::lifecycle::resolve::resolve_steps;

    #[tokio::test]
    async fn a_job_create_waiting_on_the_api_server_does_not_hold_the_job() {
        let (ctx, _api) = super::super::mocked_context();
        let execution = CrewExecution::new(
            "x",
            CrewExecutionSpec {
                image: Some("worker:1".into()),
                ..Default::default()
            },
        );
        let launch = Launch {
            step: resolve_steps(&execution.spec).unwrap().remove(0),
            attempt: 1,
            job_name: "x-main-1".into(),
            results: Vec::new(),
        };
        let waiting = create_job(&execution, &launch, &ctx, "ns");
        let size = std::mem::size_of_val(&waiting);
        assert!(
            size < std::mem::size_of::<Job>(),
            "a waiting Job create is {size} bytes"
        );
    }

    /// Review finding 13: only the newest history entry's Event was sent again after a crash, so the first Event
    /// of a write that added two entries (a step's success and the run's) was lost.
    #[tokio::test]
    async fn every_event_of_the_last_write_is_sent_again() {
        let (service, mut api) = tower_test::mock::pair::<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        let (ctx, mut caches, _triggers) = crate::controller::context::Context::new(
            kube::Client::new(service, "default"),
            crate::settings::Settings::default(),
        );
        let now = jiff::Timestamp::now();
        let at =
            |seconds_ago: i64| (now - jiff::SignedDuration::from_secs(seconds_ago)).to_string();
        let execution: CrewExecution = serde_json::from_value(serde_json::json!({
            "apiVersion": "crew.dev/v1alpha1", "kind": "CrewExecution",
            "metadata": {"name": "x", "namespace": "ns", "uid": "u1"},
            "spec": {"image": "w"},
            "status": {"phase": "Succeeded", "history": [
                {"time": at(60), "from": "Pending", "to": "Running", "reason": "Started"},
                {"time": at(5), "from": "Running", "to": "Running", "reason": "StepSucceeded", "step": "a"},
                {"time": at(5), "from": "Running", "to": "Succeeded", "reason": "Succeeded", "step": "b"}
            ]}
        }))
        .unwrap();
        caches
            .executions
            .apply_watcher_event(&kube::runtime::watcher::Event::Apply(execution));
        let sending = tokio::spawn(async move { resend_recent_events(&ctx, now).await });
        let mut reasons = Vec::new();
        for _ in 0..2 {
            let (request, send) = api.next_request().await.expect("an Event");
            let body = request.into_body().collect_bytes().await.unwrap();
            let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
            reasons.push(event["reason"].as_str().unwrap_or_default().to_string());
            send.send_response(
                http::Response::builder()
                    .status(201)
                    .body(kube::client::Body::from(body.to_vec()))
                    .unwrap(),
            );
        }
        sending.await.unwrap();
        assert_eq!(reasons, ["StepSucceeded", "Succeeded"]);
        if let Ok(Some((request, _))) =
            tokio::time::timeout(std::time::Duration::from_millis(50), api.next_request()).await
        {
            let body = request.into_body().collect_bytes().await.unwrap();
            panic!("not the older entry: {}", String::from_utf8_lossy(&body));
        }
    }
}
