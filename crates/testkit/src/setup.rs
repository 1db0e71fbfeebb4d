//! Getting a fresh control plane ready for executions: CRDs installed, namespaces able to run pods.

use super::DevClusterError;
use crew_api::FIELD_MANAGER;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use std::time::{Duration, Instant};

async fn poll<F, Fut>(limit: Duration, what: &'static str, check: F) -> Result<(), DevClusterError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        if Instant::now() > deadline {
            return Err(DevClusterError::Kube(
                what,
                format!("not ready within {limit:?}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Applies the operator's CRDs (the same ones `crds/` holds) and waits until they are served.
pub async fn install_crds(client: &Client) -> Result<(), DevClusterError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crds =
        crew_api::crds::crds().map_err(|e| DevClusterError::Kube("render CRDs", e.to_string()))?;
    for crd in crds {
        let name = crd["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .map_err(|e| DevClusterError::Kube("apply CRD", e.to_string()))?;
        poll(Duration::from_secs(60), "CRD established", || {
            let api = api.clone();
            let name = name.clone();
            async move {
                api.get(&name)
                    .await
                    .ok()
                    .and_then(|c| c.status)
                    .and_then(|s| s.conditions)
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    })
            }
        })
        .await?;
    }
    Ok(())
}

/// Creates namespace `name` (if missing) and waits until pods can be created in it: the ServiceAccount admission
/// refuses pods until the controller manager has made the namespace's `default` ServiceAccount.
pub async fn create_namespace(client: &Client, name: &str) -> Result<(), DevClusterError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace =
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    namespaces
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(&namespace),
        )
        .await
        .map_err(|e| DevClusterError::Kube("create namespace", e.to_string()))?;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
    poll(Duration::from_secs(60), "default ServiceAccount", || {
        let accounts = accounts.clone();
        async move {
            accounts
                .get_opt("default")
                .await
                .is_ok_and(|sa| sa.is_some())
        }
    })
    .await
}
