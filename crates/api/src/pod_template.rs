//! `podTemplate`: the part of the worker pods a user may shape (scheduling, pull secrets, security, extra
//! volumes), set for the whole execution and per step.

use super::schema::bounded_string_map;
use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, PodSecurityContext, SecurityContext, Toleration, Volume,
    VolumeMount,
};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Scheduling, security and extra volumes of the worker pods: a documented subset of the PodSpec. The operator
/// owns the rest: the `worker` container, the `crew` volume mounted at `/crew`, the `crew.dev/*` labels, the
/// restart policy and the ServiceAccount (`serviceAccountName`).
///
/// A step's `podTemplate` is merged over the execution's: maps (`labels`, `annotations`, `nodeSelector`) key by
/// key, `tolerations` and `imagePullSecrets` as a union, `volumes` by name and `volumeMounts` by mount path; every
/// other field the step sets replaces the execution's.
///
/// Unless set here, the worker pods meet the Pod Security Standard `restricted`: the pod runs as non-root with
/// the `RuntimeDefault` seccomp profile, and the worker container may not escalate privileges and drops every
/// capability. A field set here wins over that default, field by field.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplate {
    /// Labels added to the worker pods. Keys under `crew.dev/` are the operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "bounded_string_map")]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('crew.dev/'))")
        .message("labels under crew.dev/ are reserved for the operator"))]
    pub labels: Option<BTreeMap<String, String>>,

    /// Annotations added to the worker pods (`podAnnotations` are merged over these).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "bounded_string_map")]
    pub annotations: Option<BTreeMap<String, String>>,

    /// Node labels a worker pod's node must have (the pod's `nodeSelector`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "bounded_string_map")]
    pub node_selector: Option<BTreeMap<String, String>>,

    /// Taints the worker pods tolerate (e.g. a GPU pool's `nvidia.com/gpu:NoSchedule`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub tolerations: Option<Vec<Toleration>>,

    /// Node and pod affinity and anti-affinity of the worker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// Secrets (in the execution's namespace) holding credentials for pulling the worker image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,

    /// PriorityClass of the worker pods (scheduling priority and preemption, not queue order: see
    /// `spec.priority`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub priority_class_name: Option<String>,

    /// Pod-level security attributes. Unset fields get the `restricted` defaults (`runAsNonRoot: true`,
    /// `seccompProfile: RuntimeDefault`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,

    /// Security attributes of the worker container. Unset fields get the `restricted` defaults
    /// (`allowPrivilegeEscalation: false`, `capabilities.drop: [ALL]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_security_context: Option<SecurityContext>,

    /// Extra volumes of the worker pods. The names `crew` and `crew-progress` are the operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.all(v, v.name != 'crew' && v.name != 'crew-progress')")
        .message("the volume names crew and crew-progress are reserved for the operator"))]
    pub volumes: Option<Vec<Volume>>,

    /// Where the worker container mounts the extra volumes. `/crew`, `/var/run/secrets/crew.dev` and paths below
    /// them are the operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.all(m, m.mountPath != '/crew' && !m.mountPath.startsWith('/crew/') && m.mountPath != '/var/run/secrets/crew.dev' && !m.mountPath.startsWith('/var/run/secrets/crew.dev/'))")
        .message("the mount paths /crew and /var/run/secrets/crew.dev are reserved for the operator"))]
    pub volume_mounts: Option<Vec<VolumeMount>>,

    /// RuntimeClass of the worker pods (e.g. a sandboxed runtime such as gVisor or Kata).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub runtime_class_name: Option<String>,

    /// Scheduler that places the worker pods (default: the cluster's default scheduler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub scheduler_name: Option<String>,
}
