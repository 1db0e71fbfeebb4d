//! One sink's task: delivers the heads of its outbox's lanes (at most [`PARALLEL`] at once, one per execution),
//! records each outcome, and sleeps until something new arrives or a backoff ends. A standby replica, or a
//! suspended sink, delivers nothing (its events wait).

use super::deliver::{self, Credentials, DeliveryError};
use super::{SinkKey, count, execution_ref};
use crate::controller::context::Context;
use crate::controller::events::EventDraft;
use crew_api::Reason;
use crew_api::sink::CrewSink;
use crew_core::notify::events::Notification;
use crew_core::notify::outbox::Failed;
use jiff::Timestamp;
use kube::Resource;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Deliveries in flight at once per sink (each of another execution).
pub const PARALLEL: usize = 8;
/// Longest sleep without a wake-up (a safety net for a missed one).
const IDLE: Duration = Duration::from_secs(5);
/// At most one Warning Event about dropped deliveries per sink this often.
const WARNING_INTERVAL: Duration = Duration::from_secs(60);

struct Outcome {
    uid: String,
    notification: Notification,
    result: Result<(), DeliveryError>,
}

/// What one round may deliver: the due heads, with what to deliver them with.
struct Round {
    sink: Arc<CrewSink>,
    credentials: Result<Credentials, String>,
    due: Vec<(String, Notification)>,
    next_retry: Option<Timestamp>,
}

/// Runs sink `key`'s deliveries until its state is gone (the sink deleted) or the task is aborted.
pub async fn run(ctx: Arc<Context>, key: SinkKey, wake: Arc<tokio::sync::Notify>) {
    let http = deliver::http_client();
    let mut in_flight: JoinSet<Outcome> = JoinSet::new();
    let mut last_warning: Option<Instant> = None;
    loop {
        let Some(round) = next_round(&ctx, &key, PARALLEL.saturating_sub(in_flight.len())) else {
            return;
        };
        for (uid, notification) in round.due {
            let (http, sink, credentials) =
                (http.clone(), round.sink.clone(), round.credentials.clone());
            in_flight.spawn(async move {
                let result = match credentials {
                    Ok(credentials) => {
                        deliver::deliver(&http, &sink.spec, &credentials, &notification).await
                    }
                    Err(missing) => Err(DeliveryError::Build(missing)),
                };
                Outcome {
                    uid,
                    notification,
                    result,
                }
            });
        }
        let sleep = round
            .next_retry
            .map(|at| Timestamp::now().duration_until(at).unsigned_abs().min(IDLE))
            .unwrap_or(IDLE);
        tokio::select! {
            Some(Ok(outcome)) = in_flight.join_next() => {
                record(&ctx, &key, outcome, &mut last_warning);
            }
            () = wake.notified() => {}
            () = tokio::time::sleep(sleep) => {}
        }
    }
}

/// The heads due now (at most `room`), unless this replica stands by or the sink is suspended. None: the sink is
/// gone.
fn next_round(ctx: &Context, key: &SinkKey, room: usize) -> Option<Round> {
    let mut sinks = ctx.notify.sinks();
    let state = sinks.get_mut(key)?;
    let sink = state.sink.clone();
    let acting = ctx.is_leading() && !sink.spec.suspend;
    let due = if acting && room > 0 {
        state.outbox.due(Timestamp::now(), room)
    } else {
        Vec::new()
    };
    let next_retry = state.outbox.next_retry();
    drop(sinks);
    let credentials = ctx.notify.credentials.for_sink(&sink);
    Some(Round {
        sink,
        credentials,
        due,
        next_retry,
    })
}

/// Records one delivery's outcome: the outbox moves on, the counts and metrics follow, a drop is told (a Warning
/// Event on the sink, at most one a minute), and an execution whose lane cleared is reconciled (its finalizer may
/// go).
fn record(ctx: &Context, key: &SinkKey, outcome: Outcome, last_warning: &mut Option<Instant>) {
    let Outcome {
        uid,
        notification,
        result,
    } = outcome;
    let now = Timestamp::now();
    let kind = notification.kind;
    let mut sinks = ctx.notify.sinks();
    let Some(state) = sinks.get_mut(key) else {
        return;
    };
    state.dirty = true;
    tracing::debug!(sink = %key.1, id = %notification.id, result = ?result, "delivery");
    let dropped = match result {
        Ok(()) => {
            state.outbox.delivered(&uid, &notification.id);
            state.delivered += 1;
            state.last_delivery = Some(now);
            state.failing = false;
            count(&ctx.metrics, key, kind, "delivered");
            ctx.metrics.notification_delivered(
                now.duration_since(notification.time).as_secs_f64().max(0.0),
            );
            None
        }
        Err(error) => {
            let message = error.to_string();
            state.last_error = Some(message.clone());
            state.failing = true;
            match state
                .outbox
                .failed(&uid, &notification.id, &state.sink.spec.retry, now)
            {
                Failed::RetryAt(_) => {
                    count(&ctx.metrics, key, kind, "retried");
                    None
                }
                Failed::Dropped => {
                    state.failed += 1;
                    count(&ctx.metrics, key, kind, "dropped");
                    Some((message, state.sink.clone(), state.failed))
                }
            }
        }
    };
    let cleared = state.outbox.is_clear(&uid);
    drop(sinks);
    if cleared {
        let data = &notification.data;
        ctx.triggers
            .retention_may_end(execution_ref(&data.namespace, &data.execution));
    }
    if let Some((message, sink, failed)) = dropped
        && last_warning.is_none_or(|at| at.elapsed() >= WARNING_INTERVAL)
    {
        *last_warning = Some(Instant::now());
        warn_dropped(ctx, &sink, &notification, &message, failed);
    }
}

fn warn_dropped(
    ctx: &Context,
    sink: &CrewSink,
    notification: &Notification,
    why: &str,
    failed: u64,
) {
    let note = format!(
        "dropped {} {} of {} after its last retry ({failed} dropped so far): {why}",
        notification.kind.as_str(),
        notification.id,
        notification.data.execution
    );
    let regarding = sink.object_ref(&());
    let events = ctx.events.clone();
    tokio::spawn(async move {
        events
            .send(EventDraft {
                warning: Reason::NotificationDropped.is_warning(),
                reason: Reason::NotificationDropped.as_str(),
                note: &note,
                action: "Deliver",
                regarding,
                related: None,
                entry_key: None,
                time: None,
            })
            .await;
    });
}
