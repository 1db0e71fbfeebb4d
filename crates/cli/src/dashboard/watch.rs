//! The live list pushed to the page as Server-Sent Events: one API-server watch per open list, resumed from the
//! last resourceVersion when it ends (the API server closes watches after a few minutes) and when the browser
//! reconnects (its EventSource sends the last event id, which is a resourceVersion). A comment every 15 s keeps
//! proxies from closing an idle stream; `X-Accel-Buffering: no` keeps nginx from holding events back.
//!
//! Events: `change` (`{"type": "upsert"|"delete", "row": …}`), `bookmark` (a new resume point, no data),
//! `reset` (the resourceVersion is too old: the page lists again), `failure` (`{"message": …}`: refused, say;
//! the page stops retrying).

use super::Dashboard;
use super::failure::Failure;
use super::runs::ListQuery;
use super::wire::{Change, Row};
use crate::clock::now;
use crate::cluster::list_params;
use crate::error;
use crate::slim::{SlimExecution, into_execution};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use kube::api::{WatchEvent, WatchParams};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long the API server keeps one watch open before the loop starts the next.
const WATCH_SECONDS: u32 = 290;
/// Events buffered for a slow page before the watch waits for it.
const BUFFER: usize = 64;

pub async fn stream(
    State(d): State<Dashboard>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let permit = d.watches.clone().try_acquire_owned().map_err(|_| {
        Failure::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many live views open at once: close some tabs",
        )
    })?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(q.resource_version.clone())
        .filter(|rv| !rv.is_empty() && rv.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                "a watch starts at the resourceVersion of a list (resourceVersion=…)",
            )
        })?;
    let (mut params, _) = list_params(&q.filter(), 1)?;
    let mut fields: Vec<String> = params.field_selector.take().into_iter().collect();
    if let Some(name) = q.name.as_deref().filter(|n| !n.is_empty()) {
        // An object name, not more selectors.
        let valid = name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "name: an object name",
            ));
        }
        fields.push(format!("metadata.name={name}"));
    }
    let mut watch = WatchParams::default().timeout(WATCH_SECONDS);
    if let Some(labels) = params.label_selector.take() {
        watch = watch.labels(&labels);
    }
    if !fields.is_empty() {
        watch = watch.fields(&fields.join(","));
    }
    let (sender, receiver) = mpsc::channel::<Event>(BUFFER);
    let api = q.api(&d);
    let request = q.request("watch");
    tokio::spawn(async move {
        let _permit = permit;
        relay(api, watch, resume, request, sender).await;
    });
    let events = futures::stream::unfold(receiver, |mut receiver| async move {
        let event = receiver.recv().await?;
        Some((Ok::<Event, Infallible>(event), receiver))
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// Watches from `resource_version` and sends each change until the page goes away (the channel closes).
async fn relay(
    api: kube::Api<SlimExecution>,
    params: WatchParams,
    mut resource_version: String,
    request: error::Request,
    sender: mpsc::Sender<Event>,
) {
    let mut failures = 0u32;
    loop {
        let stream = match api.watch(&params, &resource_version).await {
            Ok(stream) => stream,
            Err(e) => {
                failures += 1;
                if error::status_code(&e).is_some() || failures > 5 {
                    let message = error::api(&request, e).to_string();
                    let _ = sender.send(failure(&message)).await;
                    return;
                }
                tokio::time::sleep(Duration::from_secs(u64::from(failures))).await;
                continue;
            }
        };
        futures::pin_mut!(stream);
        loop {
            // The page went away: stop watching now, not at the next event.
            let event = tokio::select! {
                event = stream.next() => event,
                () = sender.closed() => return,
            };
            let Some(event) = event else { break };
            let sent = match event {
                Ok(WatchEvent::Added(o)) | Ok(WatchEvent::Modified(o)) => {
                    failures = 0;
                    change(&mut resource_version, "upsert", o)
                }
                Ok(WatchEvent::Deleted(o)) => change(&mut resource_version, "delete", o),
                Ok(WatchEvent::Bookmark(b)) => {
                    resource_version = b.metadata.resource_version;
                    Event::default()
                        .event("bookmark")
                        .id(resource_version.clone())
                        .data("{}")
                }
                Ok(WatchEvent::Error(e)) if e.code == 410 => {
                    let _ = sender
                        .send(Event::default().event("reset").data("{}"))
                        .await;
                    return;
                }
                Ok(WatchEvent::Error(e)) => failure(&e.message),
                // The connection broke: watch again from the last resourceVersion.
                Err(_) => break,
            };
            if sender.send(sent).await.is_err() {
                return;
            }
        }
        if sender.is_closed() {
            return;
        }
    }
}

fn change(resource_version: &mut String, type_: &'static str, slim: SlimExecution) -> Event {
    if let Some(rv) = slim.metadata.resource_version.clone() {
        *resource_version = rv;
    }
    let row = Row::live(&into_execution(slim), now());
    let data = serde_json::to_string(&Change { type_, row }).unwrap_or_default();
    Event::default()
        .event("change")
        .id(resource_version.clone())
        .data(data)
}

fn failure(message: &str) -> Event {
    Event::default()
        .event("failure")
        .data(serde_json::json!({ "message": message }).to_string())
}
