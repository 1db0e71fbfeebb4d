//! `SimPod`: a pod with only the fields the simulator reads. Every watch event and every patch response is
//! a whole pod; decoding it into `k8s_openapi`'s `Pod` (with its `managedFields` as JSON values) costs far
//! more CPU than the simulation itself, so the simulator decodes into this and skips the rest.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::core::NamespaceResourceScope;
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// A `v1/Pod`, read-only and partial.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct SimPod {
    /// Name, namespace, UID, resourceVersion, labels, annotations and deletionTimestamp only.
    #[serde(default, deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    /// The containers.
    #[serde(default)]
    pub spec: Option<SimPodSpec>,
    /// Phase and start time.
    #[serde(default)]
    pub status: Option<SimPodStatus>,
}

/// `spec`, partial.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimPodSpec {
    /// `containers`.
    #[serde(default)]
    pub containers: Vec<SimContainer>,
    /// `initContainers`.
    #[serde(default)]
    pub init_containers: Vec<SimContainer>,
}

/// A container, partial.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct SimContainer {
    /// `name`.
    pub name: String,
    /// `image`.
    #[serde(default)]
    pub image: Option<String>,
}

/// `status`, partial.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimPodStatus {
    /// `phase`.
    #[serde(default)]
    pub phase: Option<String>,
    /// `startTime`.
    #[serde(default)]
    pub start_time: Option<Time>,
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

impl kube::Resource for SimPod {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Pod".into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        "pods".into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;
    use serde_json::json;

    #[test]
    fn decodes_the_fields_it_needs_and_skips_the_rest() {
        let pod: SimPod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "42",
                "labels": {"crew.dev/attempt": "2"}, "annotations": {"sim.crew.dev/hang": "true"},
                "deletionTimestamp": "2026-01-02T03:04:05Z",
                "managedFields": [{"manager": "kcm", "fieldsV1": {"f:spec": {}}}],
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "x"}],
            },
            "spec": {"restartPolicy": "Never", "containers": [{"name": "w", "image": "i", "args": ["a"]}],
                     "initContainers": [{"name": "init"}]},
            "status": {"phase": "Running", "startTime": "2026-01-02T03:04:00Z", "qosClass": "BestEffort"},
        }))
        .unwrap();
        let meta = pod.meta();
        assert_eq!(meta.name.as_deref(), Some("p"));
        assert_eq!(meta.namespace.as_deref(), Some("ns"));
        assert_eq!(meta.uid.as_deref(), Some("u"));
        assert_eq!(meta.resource_version.as_deref(), Some("42"));
        assert_eq!(meta.labels.as_ref().unwrap()["crew.dev/attempt"], "2");
        assert_eq!(
            meta.annotations.as_ref().unwrap()["sim.crew.dev/hang"],
            "true"
        );
        assert!(meta.deletion_timestamp.is_some());
        assert!(meta.managed_fields.is_none());
        let spec = pod.spec.unwrap();
        assert_eq!(spec.containers[0].name, "w");
        assert_eq!(spec.containers[0].image.as_deref(), Some("i"));
        assert_eq!(spec.init_containers[0].image, None);
        let status = pod.status.unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(status.start_time.is_some());
        assert_eq!(
            SimPod::url_path(&(), Some("ns")),
            "/api/v1/namespaces/ns/pods"
        );

        let bare: SimPod = serde_json::from_value(json!({"metadata": {"name": "b"}})).unwrap();
        assert!(bare.spec.is_none() && bare.status.is_none());
    }
}
