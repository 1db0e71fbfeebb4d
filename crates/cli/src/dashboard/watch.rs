//! The live list pushed to the page as Server-Sent Events: one API-server watch per open list, resumed from the
//! last resourceVersion when it ends (the API server closes watches after a few minutes) and when the browser
//! reconnects (its EventSource sends the last event id, which is a resourceVersion). A comment every 15 s keeps
//! proxies from closing an idle stream; `X-Accel-Buffering: no` keeps nginx from holding events back.
//!
//! Events: `change` (`{"type": "added"|"modified"|"deleted", "row": …}`), `bookmark` (a new resume point),
//! `reset` (the resourceVersion is too old: the page lists again), `failure` (`{"message": …}`: refused, say;
//! the page stops retrying). A broken or refused watch (429, 5xx, a stream that breaks, an object that does not
//! decode) is started again with a growing pause, never in a tight loop; after several failures in a row the page
//! is told.

use super::Dashboard;
use super::failure::Failure;
use super::runs::ListQuery;
use super::users::Caller;
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
    c: Caller,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let q = q.validated()?;
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
    let api = q.api(&c.cluster);
    let request = q.request("watch");
    let shutdown = d.shutdown.clone();
    tokio::spawn(async move {
        let _permit = permit;
        relay(api, watch, resume, request, sender, shutdown).await;
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

/// Failed watch starts in a row after which the page is told (and stops).
const MAX_FAILURES: u32 = 6;

/// Watches from `resource_version` and sends each change until the page goes away (the channel closes) or the
/// server stops.
async fn relay(
    api: kube::Api<SlimExecution>,
    params: WatchParams,
    mut resource_version: String,
    request: error::Request,
    sender: mpsc::Sender<Event>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    loop {
        if failures > 0 {
            if failures >= MAX_FAILURES {
                let _ = sender
                    .send(failure("the live stream keeps failing; reload the page"))
                    .await;
                return;
            }
            // 1, 2, 4, 8, 16 s between attempts.
            let pause = Duration::from_secs(1 << (failures - 1).min(4));
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = sender.closed() => return,
                () = stopping(&mut shutdown) => return,
            }
        }
        let stream = match api.watch(&params, &resource_version).await {
            Ok(stream) => stream,
            Err(e) => match error::status_code(&e) {
                Some(410) => {
                    let _ = sender.send(reset()).await;
                    return;
                }
                // Refused for good (forbidden, not found, a bad selector): retrying changes nothing.
                Some(code) if (400..500).contains(&code) && code != 429 => {
                    let _ = sender
                        .send(failure(&error::api(&request, e).to_string()))
                        .await;
                    return;
                }
                _ => {
                    failures += 1;
                    continue;
                }
            },
        };
        futures::pin_mut!(stream);
        // A watch that ends without delivering anything counts as a failure: no tight loop of empty watches.
        failures += 1;
        loop {
            // The page went away or the server stops: stop watching now, not at the next event.
            let event = tokio::select! {
                event = stream.next() => event,
                () = sender.closed() => return,
                () = stopping(&mut shutdown) => return,
            };
            let Some(event) = event else { break };
            let sent = match event {
                Ok(WatchEvent::Added(o)) => change(&mut resource_version, "added", o),
                Ok(WatchEvent::Modified(o)) => change(&mut resource_version, "modified", o),
                Ok(WatchEvent::Deleted(o)) => change(&mut resource_version, "deleted", o),
                Ok(WatchEvent::Bookmark(b)) => {
                    resource_version = b.metadata.resource_version;
                    Event::default()
                        .event("bookmark")
                        .id(resource_version.clone())
                        .data("{}")
                }
                Ok(WatchEvent::Error(e)) if e.code == 410 => {
                    let _ = sender.send(reset()).await;
                    return;
                }
                // Too large a resourceVersion, a timeout, an overloaded server: watch again after a pause.
                Ok(WatchEvent::Error(_)) => break,
                // The connection broke, or an object did not decode: watch again after a pause.
                Err(_) => break,
            };
            failures = 0;
            if sender.send(sent).await.is_err() {
                return;
            }
        }
    }
}

/// Resolves once the server stops (never, if nothing can tell it to).
async fn stopping(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn reset() -> Event {
    Event::default().event("reset").data("{}")
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
