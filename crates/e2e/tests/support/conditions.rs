//! The named conditions the tests wait for: on one execution (its phase, reason, conditions, steps), on any
//! object (deleted), on a Lease, on lists (every execution in a phase, the names present) and on an execution's
//! Events. Each carries the words a timeout message quotes.

use super::phase_of;
use super::wait::{Named, when, when_list, when_object};
use crew_api::{CrewExecution, StepPhase};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The object does not exist (never did, or was deleted).
pub fn deleted<K>() -> Named<impl FnMut(Option<&K>) -> bool> {
    when("deleted", |object: Option<&K>| object.is_none())
}

/// `status.phase` is `phase`.
pub fn is_phase(phase: &str) -> Named<impl FnMut(Option<&CrewExecution>) -> bool> {
    let phase = phase.to_string();
    when_object(format!("phase {phase}"), move |cx: &CrewExecution| {
        phase_of(cx) == phase
    })
}

/// `status.reason` is `reason`.
pub fn has_reason(reason: &str) -> Named<impl FnMut(Option<&CrewExecution>) -> bool> {
    let reason = reason.to_string();
    when_object(format!("reason {reason}"), move |cx: &CrewExecution| {
        cx.status.as_ref().and_then(|s| s.reason.as_deref()) == Some(reason.as_str())
    })
}

/// The condition `type_` has status `status` ("True", "False").
pub fn has_condition(
    type_: &str,
    status: &str,
) -> Named<impl FnMut(Option<&CrewExecution>) -> bool> {
    let (type_, status) = (type_.to_string(), status.to_string());
    when_object(
        format!("condition {type_}={status}"),
        move |cx: &CrewExecution| {
            cx.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == type_ && c.status == status)
            })
        },
    )
}

/// The condition `type_` has reason `reason` (whatever its status).
pub fn has_condition_reason(
    type_: &str,
    reason: &str,
) -> Named<impl FnMut(Option<&CrewExecution>) -> bool> {
    let (type_, reason) = (type_.to_string(), reason.to_string());
    when_object(
        format!("condition {type_} with reason {reason}"),
        move |cx: &CrewExecution| {
            cx.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == type_ && c.reason == reason)
            })
        },
    )
}

/// Step `index` (from 0) of `status.steps` is in `phase`.
pub fn step_is(
    index: usize,
    phase: StepPhase,
) -> Named<impl FnMut(Option<&CrewExecution>) -> bool> {
    when_object(
        format!("step {index} {phase}"),
        move |cx: &CrewExecution| {
            cx.status
                .as_ref()
                .and_then(|s| s.steps.get(index))
                .is_some_and(|step| step.phase == phase)
        },
    )
}

/// Step `index` (from 0) reports progress of exactly `percent`.
pub fn step_percent(
    index: usize,
    percent: u32,
) -> Named<impl FnMut(Option<&CrewExecution>) -> bool> {
    when_object(
        format!("step {index} at {percent}%"),
        move |cx: &CrewExecution| {
            cx.status
                .as_ref()
                .and_then(|s| s.steps.get(index))
                .and_then(|step| step.progress.as_ref())
                .is_some_and(|p| p.percent == percent)
        },
    )
}

/// The Lease has a holder (any).
pub fn held() -> Named<impl FnMut(Option<&Lease>) -> bool> {
    when_object("a holder", |lease: &Lease| holder_of(lease).is_some())
}

/// The Lease is held by `identity`.
pub fn held_by(identity: &str) -> Named<impl FnMut(Option<&Lease>) -> bool> {
    let identity = identity.to_string();
    when_object(format!("held by {identity}"), move |lease: &Lease| {
        holder_of(lease) == Some(identity.as_str())
    })
}

/// The Lease's holder ("" counts as none).
pub fn holder_of(lease: &Lease) -> Option<&str> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty())
}

/// Every execution seen is in `phase` (as the polling loops had it, true of an empty list too).
pub fn all_in_phase(phase: &str) -> Named<impl FnMut(&[Arc<CrewExecution>]) -> bool> {
    let phase = phase.to_string();
    when_list(
        format!("every execution {phase}"),
        move |all: &[Arc<CrewExecution>]| all.iter().all(|cx| phase_of(cx) == phase),
    )
}

/// Exactly these many executions in each phase named (other phases may hold any).
pub fn counts_by_phase(
    expected: &[(&str, usize)],
) -> Named<impl FnMut(&[Arc<CrewExecution>]) -> bool> {
    let expected: BTreeMap<String, usize> = expected
        .iter()
        .map(|(phase, n)| (phase.to_string(), *n))
        .collect();
    when_list(
        format!("executions per phase {expected:?}"),
        move |all: &[Arc<CrewExecution>]| {
            expected
                .iter()
                .all(|(phase, n)| all.iter().filter(|cx| phase_of(cx) == *phase).count() == *n)
        },
    )
}

/// No object is seen.
pub fn none<K>() -> Named<impl FnMut(&[Arc<K>]) -> bool> {
    when_list("none left", |all: &[Arc<K>]| all.is_empty())
}

/// At least one object is seen.
pub fn some<K>() -> Named<impl FnMut(&[Arc<K>]) -> bool> {
    when_list("at least one", |all: &[Arc<K>]| !all.is_empty())
}

/// The objects seen are exactly those named `expected`.
pub fn names_are<K: Resource>(expected: &[&str]) -> Named<impl FnMut(&[Arc<K>]) -> bool> {
    let expected: Vec<String> = expected.iter().map(|n| n.to_string()).collect();
    when_list(format!("exactly {expected:?}"), move |all: &[Arc<K>]| {
        sorted_names(all.iter().map(|o| o.as_ref())) == expected
    })
}

/// The objects seen that are not being deleted are exactly those named `expected`.
pub fn live_names_are<K: Resource>(expected: &[&str]) -> Named<impl FnMut(&[Arc<K>]) -> bool> {
    let expected: Vec<String> = expected.iter().map(|n| n.to_string()).collect();
    when_list(
        format!("exactly {expected:?} not being deleted"),
        move |all: &[Arc<K>]| {
            sorted_names(
                all.iter()
                    .map(|o| o.as_ref())
                    .filter(|o| o.meta().deletion_timestamp.is_none()),
            ) == expected
        },
    )
}

/// Every object seen is being deleted (or none is left).
pub fn all_deleting<K: Resource>() -> Named<impl FnMut(&[Arc<K>]) -> bool> {
    when_list("every one deleted or being deleted", |all: &[Arc<K>]| {
        all.iter().all(|o| o.meta().deletion_timestamp.is_some())
    })
}

fn sorted_names<'a, K: Resource + 'a>(objects: impl Iterator<Item = &'a K>) -> Vec<String> {
    let mut names: Vec<String> = objects.map(|o| o.name_any()).collect();
    names.sort();
    names
}

/// A condition on an execution's Events as (type, reason) pairs, oldest first (see
/// [`super::TestNs::wait_events`]).
pub fn when_events<F>(what: impl Into<String>, test: F) -> Named<F>
where
    F: FnMut(&[(String, String)]) -> bool,
{
    Named {
        what: what.into(),
        test,
    }
}

/// An Event of type `kind` ("Normal", "Warning") with `reason`.
pub fn has_event(kind: &str, reason: &str) -> Named<impl FnMut(&[(String, String)]) -> bool> {
    let (kind, reason) = (kind.to_string(), reason.to_string());
    when_events(
        format!("a {kind} Event {reason}"),
        move |events: &[(String, String)]| events.iter().any(|(k, r)| *k == kind && *r == reason),
    )
}

/// At least `n` Events.
pub fn events_at_least(n: usize) -> Named<impl FnMut(&[(String, String)]) -> bool> {
    when_events(
        format!("at least {n} Events"),
        move |events: &[(String, String)]| events.len() >= n,
    )
}
