//! The sinks' status: delivered, failed and pending counts, the last delivery and error, `Ready`, and the delivery
//! position (`deliveredUpTo`), written by the leader at most every [`INTERVAL`] per sink and only when something
//! changed, so that deliveries cost no write each.

use super::{SinkKey, SinkState};
use crate::controller::context::Context;
use crate::metrics::WriteKind;
use crew_api::sink::{CrewSink, CrewSinkStatus};
use crew_api::{ConditionType, FIELD_MANAGER};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use std::sync::Arc;
use std::time::Duration;

/// How often the sinks' status may be written.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// The `Ready` condition of a sink: False while its deliveries fail.
fn ready(
    state: &SinkState,
    previous: Option<&Condition>,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let (status, reason, message) = if state.sink.spec.suspend {
        (
            "False",
            "Suspended",
            "spec.suspend is set: events wait".to_string(),
        )
    } else if state.failing {
        (
            "False",
            "DeliveryFailing",
            state.last_error.clone().unwrap_or_default(),
        )
    } else {
        (
            "True",
            "Delivering",
            "the receiver acknowledges deliveries".to_string(),
        )
    };
    let transitioned = previous
        .filter(|p| p.status == status)
        .map_or(Time(now), |p| p.last_transition_time.clone());
    Condition {
        type_: ConditionType::Ready.as_str().to_string(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: transitioned,
    }
}

/// The status `state` makes at `now` with delivery position `watermark`.
fn status_of(state: &SinkState, watermark: Timestamp, now: Timestamp) -> CrewSinkStatus {
    let previous = state.sink.status.as_ref();
    let generation = state.sink.metadata.generation;
    let condition = ready(
        state,
        previous.and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == ConditionType::Ready.as_str())
        }),
        generation,
        now,
    );
    CrewSinkStatus {
        delivered: state.delivered,
        failed: state.failed,
        pending: state.outbox.pending() as u64,
        last_delivery_time: state.last_delivery.map(Time),
        last_error: state.last_error.clone(),
        delivered_up_to: Some(Time(crew_core::lifecycle::timefmt::whole_seconds(
            watermark,
        ))),
        conditions: vec![condition],
        observed_generation: generation,
    }
}

/// Writes the status of every sink whose deliveries changed, every [`INTERVAL`], while this replica leads.
pub async fn run(ctx: Arc<Context>) {
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticker.tick().await;
        if !ctx.is_leading() {
            continue;
        }
        let now = Timestamp::now();
        let changed: Vec<(SinkKey, CrewSinkStatus)> = {
            let mut sinks = ctx.notify.sinks();
            let mut changed = Vec::new();
            for (key, state) in sinks.iter_mut() {
                let watermark = ctx.notify.watermark(state, now);
                let status = status_of(state, watermark, now);
                let unchanged = state.sink.status.as_ref().is_some_and(|written| {
                    let mut same = written.clone();
                    same.delivered_up_to = status.delivered_up_to.clone();
                    same == status
                });
                if state.dirty || !unchanged {
                    state.dirty = false;
                    changed.push((key.clone(), status));
                }
            }
            changed
        };
        for (key, status) in changed {
            write(&ctx, &key, &status).await;
        }
    }
}

async fn write(ctx: &Context, (namespace, name): &SinkKey, status: &CrewSinkStatus) {
    let api: Api<CrewSink> = Api::namespaced(ctx.client.clone(), namespace);
    let body = serde_json::json!({
        "apiVersion": CrewSink::api_version(&()), "kind": CrewSink::kind(&()), "status": status,
    });
    let written = tokio::time::timeout(
        Duration::from_secs(10),
        api.patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        ),
    )
    .await;
    match written {
        Ok(Ok(_)) => ctx.count_write(WriteKind::SinkStatus),
        Ok(Err(error)) => tracing::warn!(%error, sink = %name, "could not write sink status"),
        Err(_) => tracing::warn!(sink = %name, "writing sink status timed out"),
    }
}
