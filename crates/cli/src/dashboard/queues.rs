//! Queues: each admission line with its running runs, its waiting runs in admission order, and why each waits —
//! counted as the operator counts (its queue book, over the unfinished runs and the Jobs that run), over what the
//! user may read in the scope.

use super::Dashboard;
use super::failure::Failure;
use super::runs::ListQuery;
use super::users::Caller;
use super::wire::{QueueLine, Row, WaitingEntry};
use crate::clock::now;
use crate::cluster::Cluster;
use crate::cluster::list_all;
use crate::error::Request;
use crate::slim::into_execution;
use crate::view::waiting::{Waiting, running_owners, sentence};
use axum::Json;
use axum::extract::{Query, State};
use crew_api::{CrewExecution, CrewQueue};
use crew_core::build::labels;
use crew_core::lifecycle::membership::key_of;
use crew_core::lifecycle::queue_book::{Entry, LineId, QueueBook};
use k8s_openapi::api::batch::v1::Job;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use std::collections::{BTreeMap, HashMap};

/// Waiting runs listed per line (the count says how many more).
const WAITING_SHOWN: usize = 100;

pub async fn lines(
    State(d): State<Dashboard>,
    c: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, Failure> {
    let q = q.validated()?;
    // Each user's own answer: what one may read is not what another may.
    let key = format!("{}\0{}", c.user, q.namespace().unwrap_or_default());
    let answer = d.queues.clone().get(&key, || read(&c.cluster, &q)).await?;
    Ok(Json(answer))
}

async fn read(cluster: &Cluster, q: &ListQuery) -> Result<serde_json::Value, Failure> {
    let namespace = q.namespace();
    let client = cluster.client.clone();
    let page = cluster.page;
    let scoped = |resource: &'static str| Request::new("list", resource, namespace.as_deref());
    let unfinished = ListParams::default()
        .fields("status.phase!=Succeeded,status.phase!=Failed,status.phase!=Cancelled")
        .limit(page);
    // Only Jobs that have not succeeded can hold a slot.
    let holding = ListParams::default()
        .labels(labels::EXECUTION)
        .fields("status.successful=0")
        .limit(page);
    let (queues_api, jobs_api): (Api<CrewQueue>, Api<Job>) = match &namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let executions_api = q.api(cluster);
    let (executions, queues, jobs) = futures::join!(
        list_all(
            &executions_api,
            unfinished,
            scoped("crewexecutions.crew.dev")
        ),
        list_all(
            &queues_api,
            ListParams::default().limit(page),
            scoped("crewqueues.crew.dev")
        ),
        list_all(&jobs_api, holding, scoped("jobs")),
    );
    let executions: Vec<CrewExecution> = executions?.into_iter().map(into_execution).collect();
    let queues = queues?;
    // Without the Jobs (not allowed to list them) positions fall back to the statuses.
    let running = jobs.map(|jobs| running_owners(&jobs)).unwrap_or_default();
    Ok(serde_json::json!({
        "queues": build(&executions, &queues, running, namespace.is_none()),
        "scoped": namespace.is_some(),
    }))
}

/// The lines of `executions` (unfinished), with the queues' limits.
fn build(
    executions: &[CrewExecution],
    queues: &[CrewQueue],
    running: std::collections::HashSet<String>,
    spans_namespaces: bool,
) -> Vec<QueueLine> {
    let at = now();
    let mut book = QueueBook::default();
    book.replace_running_jobs(running);
    let mut members: BTreeMap<LineId, Vec<&CrewExecution>> = BTreeMap::new();
    for cx in executions {
        let entry = Entry::of(cx);
        members.entry(entry.line.clone()).or_default().push(cx);
        book.apply(entry);
    }
    let limits: HashMap<(String, String), u32> = queues
        .iter()
        .map(|q| {
            (
                (q.namespace().unwrap_or_default(), q.name_any()),
                q.spec.max_running,
            )
        })
        .collect();
    // A queue with nothing running or waiting is shown too (idle, with its limit).
    for q in queues {
        members
            .entry(LineId::of(
                &q.namespace().unwrap_or_default(),
                Some(&q.name_any()),
            ))
            .or_default();
    }
    members
        .into_iter()
        .map(|(line, runs)| {
            let (namespace, name) = match &line {
                LineId::Queue { namespace, name } => (namespace.clone(), name.clone()),
                LineId::OperatorWide => (String::new(), String::new()),
            };
            let max_running = limits.get(&(namespace.clone(), name.clone())).copied();
            let holders: Vec<(String, String)> = book.holders(&line);
            let mut holder_names: Vec<String> = holders
                .iter()
                .map(|(ns, n)| {
                    if spans_namespaces {
                        format!("{ns}/{n}")
                    } else {
                        n.clone()
                    }
                })
                .collect();
            holder_names.sort();
            let waiting_total = book.summary(&line).waiting;
            let mut waiting: Vec<WaitingEntry> = runs
                .iter()
                .filter_map(|cx| {
                    let position = book.place(&line, &key_of(cx))?;
                    let why = sentence(&Waiting {
                        queue: cx.spec.queue.clone(),
                        max_running,
                        position,
                        waiting: waiting_total,
                        holders: holder_names.clone(),
                    });
                    Some(WaitingEntry {
                        row: Row::live(cx, at),
                        position,
                        why,
                    })
                })
                .collect();
            waiting.sort_by_key(|w| w.position);
            waiting.truncate(WAITING_SHOWN);
            let mut running: Vec<Row> = runs
                .iter()
                .filter(|cx| {
                    holders
                        .iter()
                        .any(|(ns, n)| cx.namespace().as_deref() == Some(ns) && &cx.name_any() == n)
                })
                .map(|cx| Row::live(cx, at))
                .collect();
            running.sort_by(|a, b| a.name.cmp(&b.name));
            QueueLine {
                namespace,
                name,
                max_running,
                running,
                waiting,
                waiting_total,
            }
        })
        .collect()
}
