//! What the simulator needs to know about a watched pod: who it is, where it stands, what it runs. Pure.

use super::pod::{SimContainer, SimPod};
use super::status::ContainerRef;
use jiff::Timestamp;

/// A pod's identity. The same name with another UID is another pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodId {
    /// Namespace (empty for a pod without one, which the API never returns).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

impl PodId {
    /// Of a pod with a name and a UID.
    pub fn of(pod: &SimPod) -> Option<Self> {
        let meta = &pod.metadata;
        Some(Self {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone()?,
            uid: meta.uid.clone()?,
        })
    }

    /// `namespace/name`, the key the simulator tracks pods by.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

impl std::fmt::Display for PodId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Where a pod stands, as far as the simulator is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// `Succeeded` or `Failed`: nothing left to do.
    Finished {
        /// `Succeeded` (else `Failed`).
        succeeded: bool,
    },
    /// Has a `deletionTimestamp`: needs a forced delete, since no kubelet will confirm it.
    Deleting,
    /// Still to be run; `running_since` is its `startTime` if it is already `Running` (simulator restart).
    Active {
        /// `status.startTime` of a `Running` pod.
        running_since: Option<Timestamp>,
    },
}

/// Classifies a pod (deletion first: a finished pod being deleted still needs the forced delete).
pub fn stage(pod: &SimPod) -> Stage {
    if pod.metadata.deletion_timestamp.is_some() {
        return Stage::Deleting;
    }
    let status = pod.status.as_ref();
    match status.and_then(|s| s.phase.as_deref()) {
        Some("Succeeded") => Stage::Finished { succeeded: true },
        Some("Failed") => Stage::Finished { succeeded: false },
        Some("Running") => Stage::Active {
            running_since: status.and_then(|s| s.start_time.as_ref()).map(|t| t.0),
        },
        _ => Stage::Active {
            running_since: None,
        },
    }
}

fn refs(containers: &[SimContainer]) -> Vec<ContainerRef> {
    containers
        .iter()
        .map(|c| ContainerRef {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
        })
        .collect()
}

/// The pod's (app containers, init containers).
pub fn containers(pod: &SimPod) -> (Vec<ContainerRef>, Vec<ContainerRef>) {
    match &pod.spec {
        Some(spec) => (refs(&spec.containers), refs(&spec.init_containers)),
        None => (Vec::new(), Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> SimPod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn identity() {
        let p = pod(json!({"metadata": {"name": "a", "namespace": "ns", "uid": "u1"}}));
        let id = PodId::of(&p).unwrap();
        assert_eq!(id.key(), "ns/a");
        assert_eq!(id.to_string(), "ns/a");
        assert_eq!(id.uid, "u1");
        assert!(PodId::of(&pod(json!({"metadata": {"name": "a"}}))).is_none());
    }

    #[test]
    fn stages() {
        let pending = pod(json!({"metadata": {"name": "a"}, "status": {"phase": "Pending"}}));
        assert_eq!(
            stage(&pending),
            Stage::Active {
                running_since: None
            }
        );
        let no_status = pod(json!({"metadata": {"name": "a"}}));
        assert_eq!(
            stage(&no_status),
            Stage::Active {
                running_since: None
            }
        );
        let running = pod(json!({"metadata": {"name": "a"},
            "status": {"phase": "Running", "startTime": "2026-01-02T03:04:05Z"}}));
        assert_eq!(
            stage(&running),
            Stage::Active {
                running_since: Some("2026-01-02T03:04:05Z".parse().unwrap())
            }
        );
        for (phase, succeeded) in [("Succeeded", true), ("Failed", false)] {
            let p = pod(json!({"metadata": {"name": "a"}, "status": {"phase": phase}}));
            assert_eq!(stage(&p), Stage::Finished { succeeded });
        }
        let deleting = pod(
            json!({"metadata": {"name": "a", "deletionTimestamp": "2026-01-02T03:04:05Z"},
            "status": {"phase": "Succeeded"}}),
        );
        assert_eq!(stage(&deleting), Stage::Deleting);
    }

    #[test]
    fn container_refs() {
        let p = pod(json!({"metadata": {"name": "a"}, "spec": {
            "containers": [{"name": "worker", "image": "img:1"}, {"name": "noimage"}],
            "initContainers": [{"name": "setup", "image": "busybox"}]}}));
        let (app, init) = containers(&p);
        assert_eq!(
            app,
            [
                ContainerRef {
                    name: "worker".into(),
                    image: "img:1".into()
                },
                ContainerRef {
                    name: "noimage".into(),
                    image: String::new()
                }
            ]
        );
        assert_eq!(init.len(), 1);
        assert_eq!(init[0].name, "setup");
    }
}
