//! Executions as lists read them: only the fields tables, statistics and bulk decisions use.
//!
//! A list of 10 000 executions is tens of megabytes of JSON, most of it `spec.crew`, `spec.inputs`,
//! `status.history` and `status.resolvedSteps`. Deserializing pages into these types skips those fields without
//! allocating them; the result converts into a [`CrewExecution`] holding just the rest, so the views are the
//! same for a listed execution and one read whole.

use crew_api::{
    CrewExecution, CrewExecutionSpec, CrewExecutionStatus, Phase, Progress, StepSpec, StepStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use kube::Resource;
use kube::core::NamespaceResourceScope;
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// A listed execution: the same resource as [`CrewExecution`], fewer fields.
#[derive(Clone, Debug, Deserialize)]
pub struct SlimExecution {
    /// Without `managedFields` and annotations (often the largest part of a small object).
    #[serde(deserialize_with = "slim_metadata")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: SlimSpec,
    #[serde(default)]
    pub status: Option<SlimStatus>,
}

impl Resource for SlimExecution {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        CrewExecution::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        CrewExecution::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        CrewExecution::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        CrewExecution::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The metadata fields the views use.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    generation: Option<i64>,
    #[serde(default)]
    creation_timestamp: Option<Time>,
    #[serde(default)]
    deletion_timestamp: Option<Time>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

fn slim_metadata<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    let m = SlimMeta::deserialize(deserializer)?;
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        generation: m.generation,
        creation_timestamp: m.creation_timestamp,
        deletion_timestamp: m.deletion_timestamp,
        labels: m.labels,
        ..Default::default()
    })
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimSpec {
    #[serde(default)]
    pub queue: Option<String>,
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub suspend: bool,
    #[serde(default)]
    pub cancel: bool,
    #[serde(default)]
    pub steps: Vec<SlimStep>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct SlimStep {
    pub name: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimStatus {
    #[serde(default)]
    pub phase: Option<Phase>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub progress: Option<Progress>,
    #[serde(default)]
    pub steps: Vec<StepStatus>,
    #[serde(default)]
    pub attempt: Option<u32>,
    #[serde(default)]
    pub start_time: Option<Time>,
    #[serde(default)]
    pub completion_time: Option<Time>,
    #[serde(default)]
    pub duration_seconds: Option<i64>,
    #[serde(default)]
    pub next_retry_time: Option<Time>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// The execution with only the listed fields set.
pub fn into_execution(slim: SlimExecution) -> CrewExecution {
    let spec = CrewExecutionSpec {
        queue: slim.spec.queue,
        priority: slim.spec.priority,
        suspend: slim.spec.suspend,
        cancel: slim.spec.cancel,
        steps: slim
            .spec
            .steps
            .into_iter()
            .map(|s| StepSpec {
                name: s.name,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let mut cx = CrewExecution::new("", spec);
    cx.metadata = slim.metadata;
    cx.status = slim.status.map(|s| CrewExecutionStatus {
        phase: s.phase,
        reason: s.reason,
        message: s.message,
        progress: s.progress,
        steps: s.steps,
        attempt: s.attempt,
        start_time: s.start_time,
        completion_time: s.completion_time,
        duration_seconds: s.duration_seconds,
        next_retry_time: s.next_retry_time,
        conditions: s.conditions,
        ..Default::default()
    });
    cx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::summary::Summary;

    #[test]
    fn a_listed_execution_reads_as_the_whole_one() {
        let now: jiff::Timestamp = "2026-11-29T12:00:00Z".parse().unwrap();
        let fixtures: Vec<CrewExecution> =
            serde_saphyr::from_str(include_str!("view/fixtures.yaml")).unwrap();
        let mut slimmed = Vec::new();
        for whole in &fixtures {
            let mut json = serde_json::to_value(whole).unwrap();
            json["metadata"]["managedFields"] =
                serde_json::json!([{"manager": "x", "fieldsV1": {"f:a": {}}}]);
            let slim: SlimExecution = serde_json::from_value(json).unwrap();
            assert!(slim.metadata.managed_fields.is_none());
            let cx = into_execution(slim);
            assert_eq!(Summary::of(&cx, now), Summary::of(whole, now));
            slimmed.push(cx);
        }
        let stats = |items: &[CrewExecution]| crate::view::stats::compute(items, "*", None, now);
        assert_eq!(stats(&slimmed), stats(&fixtures));
    }
}
