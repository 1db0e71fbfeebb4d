//! One run: what `kubectl crew describe` reads (the object, its Events and Jobs, where it waits), shaped for the
//! run page, with every attempt of every step for the timeline. An archived run is read from the archive (its
//! Events and Jobs are gone with the object).

use super::failure::Failure;
use super::names;
use super::users::Caller;
use super::wire::{Attempt, Row, RunDetail, WaitingRow};
use crate::archive::escape;
use crate::clock::now;
use crate::cluster::EXECUTIONS;
use crate::cmd::describe::{events_of, jobs_of, waiting_of};
use crate::error::{self, Request};
use crate::view::waiting::sentence;
use axum::Json;
use axum::extract::{Path, Query};
use crew_api::CrewExecution;
use crew_core::archive::ArchiveRecord;
use kube::Api;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct DetailQuery {
    #[serde(default)]
    source: Option<String>,
}

pub async fn detail(
    c: Caller,
    Path((namespace, name)): Path<(String, String)>,
    Query(q): Query<DetailQuery>,
) -> Result<Json<RunDetail>, Failure> {
    names::namespace(&namespace)?;
    names::object(&name)?;
    if q.source.as_deref() == Some("archived") {
        let archive = c.archive()?;
        let path = format!(
            "/v1/namespaces/{}/executions/{}",
            escape(&namespace),
            escape(&name)
        );
        let cx: CrewExecution = archive.get_json(&path).await?;
        let mut detail = shape(&cx, true);
        detail
            .notes
            .push("Archived: its Events and Jobs went with the object.".into());
        return Ok(Json(detail));
    }
    let api: Api<CrewExecution> = Api::namespaced(c.cluster.client.clone(), &namespace);
    let cx = api.get(&name).await.map_err(|e| {
        error::api(
            &Request::new("get", EXECUTIONS, Some(&namespace)).named(&name),
            e,
        )
    })?;
    let mut detail = shape(&cx, false);
    let (events, jobs, waiting) = futures::join!(
        events_of(&c.cluster, &namespace, &name),
        jobs_of(&c.cluster, &namespace, &name),
        waiting_of(&c.cluster, &cx),
    );
    match events {
        Ok(events) => detail.events = events,
        Err(e) => detail.notes.push(format!("Events left out: {e}")),
    }
    match jobs {
        Ok(jobs) => detail.jobs = jobs,
        Err(e) => detail.notes.push(format!("Jobs left out: {e}")),
    }
    match waiting {
        Ok(waiting) => {
            detail.waiting = waiting.map(|w| WaitingRow {
                sentence: sentence(&w),
                position: w.position,
                waiting: w.waiting,
                holders: w.holders,
            })
        }
        Err(e) => detail.notes.push(format!("Queue position left out: {e}")),
    }
    Ok(Json(detail))
}

/// The parts of the page that come from the object alone.
fn shape(cx: &CrewExecution, archived: bool) -> RunDetail {
    let mut row = Row::live(cx, now());
    row.archived = archived;
    let status = cx.status.clone().unwrap_or_default();
    let attempts = ArchiveRecord::of(cx)
        .steps
        .into_iter()
        .map(|a| Attempt {
            step: a.name,
            attempt: a.attempt,
            phase: a.phase.as_str().to_string(),
            started: a.started,
            finished: a.finished,
            exit_code: a.exit_code,
            reason: a.reason,
            message: a.message,
            job_name: a.job_name,
        })
        .collect();
    RunDetail {
        row,
        // A crew's steps are resolved by the operator; a plain spec lists them.
        steps: if cx.spec.steps.is_empty() {
            &status.resolved_steps
        } else {
            &cx.spec.steps
        }
        .iter()
        .map(|s| serde_json::json!({ "name": s.name }))
        .collect(),
        status: status.steps,
        attempts,
        history: status.history,
        conditions: status.conditions,
        events: Vec::new(),
        jobs: Vec::new(),
        waiting: None,
        next_retry_time: status.next_retry_time.map(|t| t.0),
        result: status.result,
        suspend: cx.spec.suspend,
        cancel: cx.spec.cancel,
        notes: Vec::new(),
        resource_version: cx.metadata.resource_version.clone(),
    }
}
