//! Slim watch types: only the fields the benchmark reads, so that decoding thousands of watch events costs the
//! benchmark process (which shares the CPUs with everything it measures) as little as possible.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::NamespaceResourceScope;
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// A `batch/v1` Job: name and `status.succeeded`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct SlimJob {
    /// Name, namespace, resourceVersion.
    #[serde(default, deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    /// Status, partial.
    #[serde(default)]
    pub status: Option<SlimJobStatus>,
}

/// `Job.status`, partial.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct SlimJobStatus {
    /// Pods that succeeded.
    #[serde(default)]
    pub succeeded: Option<i32>,
    /// Pods that failed.
    #[serde(default)]
    pub failed: Option<i32>,
}

impl SlimJob {
    /// `status.succeeded >= 1`.
    pub fn succeeded(&self) -> bool {
        self.status
            .as_ref()
            .and_then(|s| s.succeeded)
            .is_some_and(|n| n >= 1)
    }

    /// `status.failed >= 1`.
    pub fn failed(&self) -> bool {
        self.status
            .as_ref()
            .and_then(|s| s.failed)
            .is_some_and(|n| n >= 1)
    }
}

/// A `CrewExecution`: name and `status.phase`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct SlimExecution {
    /// Name, namespace, resourceVersion.
    #[serde(default, deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    /// Status, partial.
    #[serde(default)]
    pub status: Option<SlimExecutionStatus>,
}

/// `CrewExecution.status`, partial.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct SlimExecutionStatus {
    /// Lifecycle phase.
    #[serde(default)]
    pub phase: Option<String>,
}

impl SlimExecution {
    /// `status.phase`, or `""`.
    pub fn phase(&self) -> &str {
        self.status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("")
    }
}

macro_rules! namespaced_resource {
    ($ty:ty, $kind:literal, $group:literal, $version:literal, $plural:literal) => {
        impl kube::Resource for $ty {
            type DynamicType = ();
            type Scope = NamespaceResourceScope;

            fn kind(_: &()) -> Cow<'_, str> {
                $kind.into()
            }

            fn group(_: &()) -> Cow<'_, str> {
                $group.into()
            }

            fn version(_: &()) -> Cow<'_, str> {
                $version.into()
            }

            fn plural(_: &()) -> Cow<'_, str> {
                $plural.into()
            }

            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }

            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

namespaced_resource!(SlimJob, "Job", "batch", "v1", "jobs");
namespaced_resource!(
    SlimExecution,
    "CrewExecution",
    "crew.dev",
    "v1alpha1",
    "crewexecutions"
);

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;
    use serde_json::json;

    #[test]
    fn decodes_what_the_benchmark_reads() {
        let job: SlimJob = serde_json::from_value(json!({
            "metadata": {"name": "j", "namespace": "ns", "resourceVersion": "7",
                         "managedFields": [{"manager": "x"}]},
            "spec": {"backoffLimit": 0},
            "status": {"succeeded": 1, "active": 0}
        }))
        .unwrap();
        assert!(job.succeeded() && !job.failed());
        assert_eq!(job.metadata.resource_version.as_deref(), Some("7"));
        assert!(job.metadata.managed_fields.is_none());
        assert_eq!(SlimJob::url_path(&(), None), "/apis/batch/v1/jobs");
        let cx: SlimExecution = serde_json::from_value(
            json!({"metadata": {"name": "c"}, "status": {"phase": "Succeeded"}}),
        )
        .unwrap();
        assert_eq!(cx.phase(), "Succeeded");
        assert_eq!(
            SlimExecution::url_path(&(), Some("a")),
            "/apis/crew.dev/v1alpha1/namespaces/a/crewexecutions"
        );
        let bare: SlimJob = serde_json::from_value(json!({"metadata": {}})).unwrap();
        assert!(!bare.succeeded());
    }
}

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
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    deletion_timestamp: Option<Time>,
}

/// Decodes only the metadata fields a watcher and its user read (name, namespace, uid, resourceVersion, labels,
/// annotations, deletionTimestamp), skipping `managedFields` and the rest (for slim watch types).
pub fn slim_meta<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    let m = SlimMeta::deserialize(deserializer)?;
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        labels: m.labels,
        annotations: m.annotations,
        deletion_timestamp: m.deletion_timestamp,
        ..ObjectMeta::default()
    })
}
