//! `describe` and `history`.

use crate::args::Filter;
use crate::clock::now;
use crate::cluster::{Cluster, list_all};
use crate::error::{self, CliError, Exit, Request};
use crate::output::{note, print, stdout_is_terminal};
use crate::view::describe::{DeliveryLine, Described, EventLine, JobLine, delivery_of, render};
use crate::view::style::Style;
use crate::view::waiting::{Waiting, running_owners, waiting};
use crew_api::{CrewExecution, CrewQueue, Phase};
use crew_core::build::labels;
use crew_core::lifecycle::membership::phase_of;
use crew_core::lifecycle::names::label_value;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use std::collections::HashSet;

pub async fn describe(cluster: &Cluster, name: &str) -> Result<Exit, CliError> {
    let cx = cluster.execution(name).await?;
    let ns = cluster.one_namespace()?;
    let (events, jobs, waiting, deliveries) = futures::join!(
        events_of(cluster, ns, name),
        jobs_of(cluster, ns, name),
        waiting_of(cluster, &cx),
        deliveries_of(cluster, ns, &cx),
    );
    let described = Described {
        cx: &cx,
        events: events.unwrap_or_else(|e| {
            note(&format!("(Events left out: {e})\n"));
            Vec::new()
        }),
        jobs: jobs.unwrap_or_else(|e| {
            note(&format!("(Jobs left out: {e})\n"));
            Vec::new()
        }),
        waiting: waiting.unwrap_or_else(|e| {
            note(&format!("(queue position left out: {e})\n"));
            None
        }),
        deliveries: deliveries.unwrap_or_else(|e| {
            note(&format!("(notifications left out: {e})\n"));
            Vec::new()
        }),
    };
    print(&render(
        &described,
        now(),
        Style::detect(stdout_is_terminal()),
    ))?;
    Ok(Exit::Ok)
}

/// Where `cx`'s events stand with each CrewSink of `ns` that wants them.
async fn deliveries_of(
    cluster: &Cluster,
    ns: &str,
    cx: &CrewExecution,
) -> Result<Vec<DeliveryLine>, CliError> {
    let api: Api<crew_api::CrewSink> = cluster.api_in(ns);
    let params = ListParams::default().limit(cluster.page);
    let sinks = list_all(&api, params, Request::new("list", "crewsinks", Some(ns))).await?;
    Ok(sinks
        .iter()
        .filter_map(|sink| delivery_of(sink, cx))
        .collect())
}

pub async fn history(cluster: &Cluster, name: &str) -> Result<Exit, CliError> {
    let cx = cluster.execution(name).await?;
    print(&crate::view::history::render(
        &cx,
        Style::detect(stdout_is_terminal()),
    ))?;
    Ok(Exit::Ok)
}

pub(crate) async fn events_of(
    cluster: &Cluster,
    ns: &str,
    name: &str,
) -> Result<Vec<EventLine>, CliError> {
    let api: Api<Event> = cluster.api_in(ns);
    let params = ListParams::default()
        .fields(&format!(
            "involvedObject.kind=CrewExecution,involvedObject.name={name}"
        ))
        .limit(cluster.page);
    let mut lines: Vec<EventLine> =
        list_all(&api, params, Request::new("list", "events", Some(ns)))
            .await?
            .into_iter()
            .map(|e| EventLine {
                last_seen: e
                    .series
                    .as_ref()
                    .and_then(|s| s.last_observed_time.as_ref().map(|t| t.0))
                    .or(e.last_timestamp.as_ref().map(|t| t.0))
                    .or(e.event_time.as_ref().map(|t| t.0))
                    .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0)),
                count: e
                    .series
                    .as_ref()
                    .and_then(|s| s.count)
                    .or(e.count)
                    .unwrap_or(1),
                type_: e.type_.unwrap_or_default(),
                reason: e.reason.unwrap_or_default(),
                message: e.message.unwrap_or_default(),
            })
            .collect();
    lines.sort_by_key(|e| e.last_seen);
    Ok(lines)
}

pub(crate) async fn jobs_of(
    cluster: &Cluster,
    ns: &str,
    name: &str,
) -> Result<Vec<JobLine>, CliError> {
    let api: Api<Job> = cluster.api_in(ns);
    let params = ListParams::default()
        .labels(&format!("{}={}", labels::EXECUTION, label_value(name)))
        .limit(cluster.page);
    let mut lines: Vec<JobLine> = list_all(&api, params, Request::new("list", "jobs", Some(ns)))
        .await?
        .iter()
        .map(JobLine::of)
        .collect();
    lines.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
    Ok(lines)
}

/// Where a Queued (or not yet admitted) execution stands in its queue line, counted over the line's executions and
/// the Jobs they run, as the operator counts.
pub(crate) async fn waiting_of(
    cluster: &Cluster,
    cx: &CrewExecution,
) -> Result<Option<Waiting>, CliError> {
    if !matches!(phase_of(cx), Phase::Queued | Phase::Pending) || cx.spec.suspend || cx.spec.cancel
    {
        return Ok(None);
    }
    let ns = cx.namespace().unwrap_or_default();
    let (scope, max_running) = match &cx.spec.queue {
        Some(queue) => {
            let queues: Api<CrewQueue> = cluster.api_in(&ns);
            let max_running = match queues.get(queue).await {
                Ok(q) => Some(q.spec.max_running),
                Err(e) if error::status_code(&e) == Some(404) => None,
                Err(e) => {
                    let request =
                        Request::new("get", "crewqueues.crew.dev", Some(&ns)).named(queue);
                    return Err(error::api(&request, e));
                }
            };
            let scoped = Cluster {
                namespace: Some(ns.clone()),
                ..cluster.clone()
            };
            (scoped, max_running)
        }
        // The operator-wide limit counts executions without a queue in every namespace.
        None => {
            let everywhere = Cluster {
                namespace: None,
                ..cluster.clone()
            };
            (everywhere, None)
        }
    };
    let filter = Filter {
        queue: cx.spec.queue.clone(),
        ..Default::default()
    };
    let (line, running) = futures::join!(scope.executions(&filter), running_owners_in(&scope));
    let mut line = line?;
    line.retain(|other| other.spec.queue == cx.spec.queue);
    let spans_namespaces = scope.namespace.is_none();
    Ok(Some(waiting(
        cx,
        &line,
        &running,
        max_running,
        spans_namespaces,
    )))
}

/// The executions (UIDs) in `scope` that own a Job that runs: they hold a slot whatever their status says. Without
/// the Jobs (not allowed to list them, say) the count falls back to the statuses, with a note.
async fn running_owners_in(scope: &Cluster) -> HashSet<String> {
    let params = ListParams::default()
        .labels(labels::EXECUTION)
        .limit(scope.page);
    let request = Request::new("list", "jobs", scope.namespace.as_deref());
    match list_all(&scope.api::<Job>(), params, request).await {
        Ok(jobs) => running_owners(&jobs),
        Err(e) => {
            note(&format!(
                "(running Jobs left out of the queue position: {e})\n"
            ));
            HashSet::new()
        }
    }
}
