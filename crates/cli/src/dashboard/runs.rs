//! The run list, a page at a time: live runs from the API server (its own `limit`/`continue` paging and field
//! selectors), archived runs from the archive's keyset pages, or both (live first, then archived).

use super::failure::Failure;
use super::names;
use super::users::Caller;
use super::wire::{Row, RunsPage};
use crate::archive::escape;
use crate::args::Filter;
use crate::clock::now;
use crate::cluster::Cluster;
use crate::cluster::{EXECUTIONS, list_params};
use crate::error::{self, Request};
use crate::slim::{SlimExecution, into_execution};
use axum::Json;
use axum::extract::Query;
use axum::http::StatusCode;
use kube::Api;
use serde::Deserialize;

/// Rows per page unless asked otherwise, and the most a page may hold.
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;
const LIVE: &str = "live:";
const ARCHIVED: &str = "archive:";

/// The list's query: the scope and filters every list view shares.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ListQuery {
    /// One namespace; empty or absent: every namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub selector: Option<String>,
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub queue: Option<String>,
    /// One run by name (the run page's watch).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default, rename = "continue")]
    pub continue_: Option<String>,
    /// Where a watch starts.
    #[serde(default, rename = "resourceVersion")]
    pub resource_version: Option<String>,
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

impl ListQuery {
    /// The query with its names checked (namespace, run, queue; the phase is checked with the filter).
    pub fn validated(self) -> Result<ListQuery, Failure> {
        if let Some(ns) = self.namespace() {
            names::namespace(&ns)?;
        }
        if let Some(name) = non_empty(&self.name) {
            names::object(&name)?;
        }
        if let Some(queue) = non_empty(&self.queue) {
            names::queue(&queue)?;
        }
        Ok(self)
    }

    pub fn namespace(&self) -> Option<String> {
        non_empty(&self.namespace)
    }

    /// The filter as `kubectl crew list` takes it (phase and queue become field selectors, as there).
    pub fn filter(&self) -> Filter {
        Filter {
            selector: non_empty(&self.selector),
            phase: non_empty(&self.phase).into_iter().collect(),
            queue: non_empty(&self.queue),
        }
    }

    /// The live API of executions in the query's scope.
    pub fn api(&self, cluster: &Cluster) -> Api<SlimExecution> {
        match self.namespace() {
            Some(ns) => Api::namespaced(cluster.client.clone(), &ns),
            None => Api::all(cluster.client.clone()),
        }
    }

    pub fn request(&self, verb: &'static str) -> Request {
        Request::new(verb, EXECUTIONS, self.namespace().as_deref())
    }
}

pub async fn list(c: Caller, Query(q): Query<ListQuery>) -> Result<Json<RunsPage>, Failure> {
    let q = q.validated()?;
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let token = q.continue_.clone().unwrap_or_default();
    let source = q.source.as_deref().unwrap_or("live");
    let page = match (source, token.as_str()) {
        ("live", _) => live_page(&c, &q, limit, token.strip_prefix(LIVE).unwrap_or(&token)).await?,
        ("archived", t) => {
            archived_page(&c, &q, limit, t.strip_prefix(ARCHIVED).unwrap_or(t)).await?
        }
        ("all", t) if t.starts_with(ARCHIVED) => {
            archived_page(&c, &q, limit, &t[ARCHIVED.len()..]).await?
        }
        ("all", t) => {
            let mut page = live_page(&c, &q, limit, t.strip_prefix(LIVE).unwrap_or(t)).await?;
            // The live list exhausted: the next page is the archive's first.
            if page.continue_.is_none() && c.archive.is_some() {
                page.continue_ = Some(ARCHIVED.to_string());
            }
            page
        }
        (other, _) => {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                format!("unknown source `{other}`: live, archived or all"),
            ));
        }
    };
    Ok(Json(page))
}

async fn live_page(
    c: &Caller,
    q: &ListQuery,
    limit: u32,
    token: &str,
) -> Result<RunsPage, Failure> {
    let (mut params, _) = list_params(&q.filter(), limit)?;
    if !token.is_empty() {
        params = params.continue_token(token);
    }
    let page = q
        .api(&c.cluster)
        .list(&params)
        .await
        .map_err(|e| error::api(&q.request("list"), e))?;
    // A later page's list carries the first page's (old) snapshot version; its watch starts from now instead (a
    // version that old is soon refused with 410, which would list and watch again and again).
    let resource_version = if token.is_empty() {
        page.metadata.resource_version.clone()
    } else {
        let (fresh, _) = list_params(&q.filter(), 1)?;
        q.api(&c.cluster)
            .list_metadata(&fresh)
            .await
            .map_err(|e| error::api(&q.request("list"), e))?
            .metadata
            .resource_version
    };
    let at = now();
    Ok(RunsPage {
        items: page
            .items
            .into_iter()
            .map(|slim| Row::live(&into_execution(slim), at))
            .collect(),
        continue_: page
            .metadata
            .continue_
            .filter(|t| !t.is_empty())
            .map(|t| format!("{LIVE}{t}")),
        resource_version,
    })
}

async fn archived_page(
    c: &Caller,
    q: &ListQuery,
    limit: u32,
    token: &str,
) -> Result<RunsPage, Failure> {
    let archive = c.archive()?;
    let mut query = vec![format!("limit={limit}")];
    let filter = q.filter();
    if let Some(selector) = &filter.selector {
        query.push(format!("labelSelector={}", escape(selector)));
    }
    if let [phase] = filter.phase.as_slice() {
        query.push(format!("phase={}", escape(phase)));
    }
    if let Some(queue) = &filter.queue {
        query.push(format!("queue={}", escape(queue)));
    }
    if !token.is_empty() {
        query.push(format!("continue={}", escape(token)));
    }
    let base = match q.namespace() {
        Some(ns) => format!("/v1/namespaces/{}/executions", escape(&ns)),
        None => "/v1/executions".into(),
    };
    let page: crew_api::archive::Page = archive
        .get_json(&format!("{base}?{}", query.join("&")))
        .await?;
    Ok(RunsPage {
        items: page.items.iter().map(Row::archived).collect(),
        continue_: page.next.map(|t| format!("{ARCHIVED}{t}")),
        resource_version: None,
    })
}
