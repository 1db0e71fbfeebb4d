//! What volumes a worker pod may mount: the volume half of the worker policy (`worker_policy` holds the rest).
//!
//! A volume can carry what its author may not have: a token of a ServiceAccount, a Secret fetched with the
//! namespace's credentials, another team's data, the node itself. The rule, by volume type:
//!
//! - **Always**: `emptyDir`, `configMap`, `downwardAPI`, `image`, and `ephemeral` that starts empty (no
//!   `dataSource`, `dataSourceRef` or `volumeName`: it would copy or bind existing data).
//! - **Secrets** (`secret`, a projected `secret`, and every Secret a volume names for its driver: csi
//!   `nodePublishSecretRef`, azureFile `secretName`, cephfs, rbd, iscsi, flexVolume, scaleIO and storageos
//!   `secretRef`): only when the ServiceAccount the pod runs as lists them in `crew.dev/worker-secrets`.
//! - **`projected` `serviceAccountToken`**: only when the step names a ServiceAccount (which must be opened to
//!   workers): without one it would mint a token of `default`, for any audience.
//! - **`csi`**: only drivers the ServiceAccount lists in `crew.dev/worker-csi-drivers` (a CSI driver may fetch
//!   secrets with the pod's identity, as the Secrets Store driver does).
//! - **`persistentVolumeClaim`**: only claims the ServiceAccount lists in `crew.dev/worker-volume-claims`.
//! - **Every other type** (`hostPath`, `nfs`, `iscsi`, `rbd`, `cephfs`, cloud disks, `gitRepo`, ...) is refused:
//!   each reaches the node or storage directly, past the claims and classes the namespace's owner controls (the Pod
//!   Security Standard `restricted` refuses them too).
//!
//! The checks that need no ServiceAccount ([`volume_problems`]) are pure and run where the spec is resolved and at
//! every launch; the chart's admission policy enforces the same types at apply. The others need the
//! ServiceAccount's annotations and run at launch ([`listed_problem`]).

use super::ResolvedStep;
use k8s_openapi::api::core::v1::Volume;
use std::collections::{BTreeMap, BTreeSet};

/// Volume types a worker may mount (some under the conditions above), as the API spells them.
pub const ALLOWED_VOLUME_TYPES: [&str; 9] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];
/// The annotation listing the PersistentVolumeClaims that workers running as the ServiceAccount may mount.
pub const WORKER_VOLUME_CLAIMS_ANNOTATION: &str = "crew.dev/worker-volume-claims";
/// The annotation listing the CSI drivers whose inline volumes workers running as the ServiceAccount may mount.
pub const WORKER_CSI_DRIVERS_ANNOTATION: &str = "crew.dev/worker-csi-drivers";

/// The source types `volume` sets (its fields besides `name`), as the API spells them.
pub fn volume_types(volume: &Volume) -> Vec<String> {
    match serde_json::to_value(volume) {
        Ok(serde_json::Value::Object(fields)) => fields
            .into_iter()
            .filter(|(key, value)| key != "name" && !value.is_null())
            .map(|(key, _)| key)
            .collect(),
        _ => Vec::new(),
    }
}

fn volumes(step: &ResolvedStep) -> impl Iterator<Item = &Volume> {
    step.pod_template.volumes.iter().flatten()
}

/// Why `step`'s volumes may not be mounted, whatever a ServiceAccount says (empty: they may): a type workers never
/// get, a ServiceAccount token without a named ServiceAccount, an ephemeral volume made from existing data.
pub fn volume_problems(step: &ResolvedStep) -> Vec<String> {
    let mut problems = Vec::new();
    for volume in volumes(step) {
        let name = &volume.name;
        let refused: Vec<String> = volume_types(volume)
            .into_iter()
            .filter(|t| !ALLOWED_VOLUME_TYPES.contains(&t.as_str()))
            .collect();
        if !refused.is_empty() {
            problems.push(format!(
                "volume {name:?} of type {} is not allowed for workers (it reaches the node or storage directly; \
                 allowed: {})",
                refused.join(", "),
                ALLOWED_VOLUME_TYPES.join(", ")
            ));
        }
        let projects_token = volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
            .any(|source| source.service_account_token.is_some());
        if projects_token && step.service_account_name.is_none() {
            problems.push(format!(
                "volume {name:?} projects a ServiceAccount token, which workers get only when their execution \
                 names a ServiceAccount its namespace's owner opened to them (serviceAccountName)"
            ));
        }
        let claim = volume
            .ephemeral
            .as_ref()
            .and_then(|e| e.volume_claim_template.as_ref())
            .map(|t| &t.spec);
        if claim.is_some_and(|c| {
            c.data_source.is_some() || c.data_source_ref.is_some() || c.volume_name.is_some()
        }) {
            problems.push(format!(
                "ephemeral volume {name:?} must start empty (no dataSource, dataSourceRef or volumeName); mount \
                 existing data as a persistentVolumeClaim the namespace's owner lists in \
                 {WORKER_VOLUME_CLAIMS_ANNOTATION}"
            ));
        }
    }
    problems
}

/// The Secrets `step`'s volumes name: `secret` volumes, projected `secret` sources, and the Secrets volume drivers
/// are given (csi `nodePublishSecretRef`, azureFile `secretName`, cephfs, rbd, iscsi, flexVolume, scaleIO and
/// storageos `secretRef`).
pub fn volume_secrets(step: &ResolvedStep) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for v in volumes(step) {
        names.extend(v.secret.as_ref().and_then(|s| s.secret_name.clone()));
        names.extend(
            v.projected
                .iter()
                .flat_map(|p| p.sources.iter().flatten())
                .filter_map(|source| source.secret.as_ref())
                .map(|secret| secret.name.clone()),
        );
        names.extend(v.azure_file.as_ref().map(|a| a.secret_name.clone()));
        let driver_refs = [
            v.csi
                .as_ref()
                .and_then(|c| c.node_publish_secret_ref.as_ref()),
            v.cephfs.as_ref().and_then(|c| c.secret_ref.as_ref()),
            v.rbd.as_ref().and_then(|r| r.secret_ref.as_ref()),
            v.iscsi.as_ref().and_then(|i| i.secret_ref.as_ref()),
            v.flex_volume.as_ref().and_then(|f| f.secret_ref.as_ref()),
            v.scale_io.as_ref().map(|s| &s.secret_ref),
            v.storageos.as_ref().and_then(|s| s.secret_ref.as_ref()),
        ];
        names.extend(driver_refs.into_iter().flatten().map(|r| r.name.clone()));
    }
    names.retain(|n| !n.is_empty());
    names
}

/// The PersistentVolumeClaims `step`'s volumes mount.
pub fn volume_claims(step: &ResolvedStep) -> BTreeSet<String> {
    volumes(step)
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.clone())
        .collect()
}

/// The CSI drivers of `step`'s inline CSI volumes.
pub fn csi_drivers(step: &ResolvedStep) -> BTreeSet<String> {
    volumes(step)
        .filter_map(|v| v.csi.as_ref())
        .map(|c| c.driver.clone())
        .collect()
}

/// The names a ServiceAccount lists in its annotation `annotation` (comma-separated).
pub fn listed<'a>(
    annotations: &'a BTreeMap<String, String>,
    annotation: &str,
) -> BTreeSet<&'a str> {
    annotations
        .get(annotation)
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Why the `what` in `referenced` may not be used by workers running as `service_account` with `annotations`
/// (None: all are listed in its `annotation`).
pub fn listed_problem(
    what: &str,
    referenced: &BTreeSet<String>,
    service_account: &str,
    annotations: &BTreeMap<String, String>,
    annotation: &str,
) -> Option<String> {
    let listed = listed(annotations, annotation);
    let refused: Vec<&str> = referenced
        .iter()
        .map(String::as_str)
        .filter(|name| !listed.contains(name))
        .collect();
    (!refused.is_empty()).then(|| {
        format!(
            "{what} {refused:?} may not be used by workers running as ServiceAccount {service_account:?}: its \
             namespace's owner must list them in its annotation {annotation}"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::resolve_steps;
    use crew_api::CrewExecutionSpec;

    fn step(spec: serde_json::Value) -> ResolvedStep {
        let spec: CrewExecutionSpec = serde_json::from_value(spec).unwrap();
        resolve_steps(&spec).unwrap().remove(0)
    }

    fn with_volumes(volumes: serde_json::Value) -> ResolvedStep {
        step(serde_json::json!({"image": "w", "podTemplate": {"volumes": volumes}}))
    }

    /// Review finding 4: a projected `serviceAccountToken` gave a worker a token of `default` (for the API server,
    /// or any audience: IRSA, Vault) although no ServiceAccount was named and none was opened to workers.
    #[test]
    fn a_projected_service_account_token_is_refused() {
        let token = serde_json::json!([{"name": "t", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token", "audience": "sts.amazonaws.com"}}]}}]);
        let problems = volume_problems(&with_volumes(token.clone()));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("\"t\" projects a ServiceAccount token"),
            "{problems:?}"
        );
        let named = step(
            serde_json::json!({"image": "w", "serviceAccountName": "runner",
            "podTemplate": {"volumes": token}}),
        );
        assert!(
            volume_problems(&named).is_empty(),
            "with a named ServiceAccount (checked at launch to be opened to workers) the token is its own"
        );
        let harmless = with_volumes(serde_json::json!([
            {"name": "info", "projected": {"sources": [{"downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}, {"configMap": {"name": "c"}}]}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "conf", "configMap": {"name": "c"}},
            {"name": "fresh", "ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}}}]));
        assert!(volume_problems(&harmless).is_empty());
    }

    /// Review finding 4: Secrets reached a worker through volume drivers (CSI, azureFile, rbd, cephfs, ...) past
    /// `crew.dev/worker-secrets`. Every Secret a volume names counts.
    #[test]
    fn csi_and_in_tree_secret_refs_count_as_secrets() {
        let step = with_volumes(serde_json::json!([
            {"name": "a", "csi": {"driver": "secrets-store.csi.k8s.io", "nodePublishSecretRef": {"name": "csi-creds"}}},
            {"name": "b", "azureFile": {"secretName": "azure-creds", "shareName": "s"}},
            {"name": "c", "cephfs": {"monitors": ["m"], "secretRef": {"name": "ceph-creds"}}},
            {"name": "d", "rbd": {"monitors": ["m"], "image": "i", "secretRef": {"name": "rbd-creds"}}},
            {"name": "e", "iscsi": {"targetPortal": "p", "iqn": "q", "lun": 0, "secretRef": {"name": "iscsi-creds"}}},
            {"name": "f", "flexVolume": {"driver": "x", "secretRef": {"name": "flex-creds"}}},
            {"name": "g", "scaleIO": {"gateway": "g", "system": "s", "secretRef": {"name": "scaleio-creds"}}},
            {"name": "h", "storageos": {"secretRef": {"name": "storageos-creds"}}},
            {"name": "i", "secret": {"secretName": "plain"}},
            {"name": "j", "projected": {"sources": [{"secret": {"name": "projected"}}]}}]));
        assert_eq!(
            volume_secrets(&step)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            [
                "azure-creds",
                "ceph-creds",
                "csi-creds",
                "flex-creds",
                "iscsi-creds",
                "plain",
                "projected",
                "rbd-creds",
                "scaleio-creds",
                "storageos-creds"
            ]
        );
        assert_eq!(
            csi_drivers(&step).into_iter().collect::<Vec<_>>(),
            ["secrets-store.csi.k8s.io"]
        );
        // The in-tree driver types reach storage directly: refused whatever their Secrets.
        let refused = volume_problems(&step).join("\n");
        for kind in [
            "azureFile",
            "cephfs",
            "rbd",
            "iscsi",
            "flexVolume",
            "scaleIO",
            "storageos",
        ] {
            assert!(
                refused.contains(&format!("of type {kind} ")),
                "{kind}: {refused}"
            );
        }
        for allowed in ["\"a\"", "\"i\"", "\"j\""] {
            assert!(!refused.contains(allowed), "{allowed}: {refused}");
        }
    }

    #[test]
    fn node_level_volumes_and_ephemeral_copies_are_refused() {
        let step = with_volumes(serde_json::json!([
            {"name": "host", "hostPath": {"path": "/var/run/docker.sock"}},
            {"name": "share", "nfs": {"server": "s", "path": "/"}},
            {"name": "repo", "gitRepo": {"repository": "r"}},
            {"name": "copy", "ephemeral": {"volumeClaimTemplate": {"spec": {
                "dataSource": {"kind": "PersistentVolumeClaim", "name": "prod-db"}}}}},
            {"name": "bound", "ephemeral": {"volumeClaimTemplate": {"spec": {"volumeName": "pv-1"}}}}]));
        let problems = volume_problems(&step);
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(
            problems[0].contains("\"host\" of type hostPath"),
            "{problems:?}"
        );
        assert!(
            problems[3].contains("\"copy\" must start empty"),
            "{problems:?}"
        );
        assert!(
            problems[4].contains("\"bound\" must start empty"),
            "{problems:?}"
        );
    }

    /// Review finding 4: any PVC of the namespace could be mounted. A claim is mounted only when the ServiceAccount
    /// the worker runs as lists it in `crew.dev/worker-volume-claims`.
    #[test]
    fn a_claim_is_mounted_only_when_its_service_account_lists_it() {
        let step = with_volumes(serde_json::json!([
            {"name": "data", "persistentVolumeClaim": {"claimName": "team-data"}},
            {"name": "db", "persistentVolumeClaim": {"claimName": "prod-db", "readOnly": true}}]));
        assert!(
            volume_problems(&step).is_empty(),
            "no problem before the ServiceAccount says"
        );
        let claims = volume_claims(&step);
        let annotations = |list: &str| {
            BTreeMap::from([(
                WORKER_VOLUME_CLAIMS_ANNOTATION.to_string(),
                list.to_string(),
            )])
        };
        let problem = listed_problem(
            "PersistentVolumeClaim(s)",
            &claims,
            "default",
            &BTreeMap::new(),
            WORKER_VOLUME_CLAIMS_ANNOTATION,
        )
        .unwrap();
        assert!(
            problem.contains("prod-db") && problem.contains("team-data"),
            "{problem}"
        );
        let partly = listed_problem(
            "PersistentVolumeClaim(s)",
            &claims,
            "default",
            &annotations("team-data"),
            WORKER_VOLUME_CLAIMS_ANNOTATION,
        )
        .unwrap();
        assert!(
            partly.contains("prod-db") && !partly.contains("team-data"),
            "{partly}"
        );
        assert!(
            listed_problem(
                "PersistentVolumeClaim(s)",
                &claims,
                "default",
                &annotations(" team-data , prod-db "),
                WORKER_VOLUME_CLAIMS_ANNOTATION,
            )
            .is_none()
        );
    }
}
