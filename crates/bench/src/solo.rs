//! The operator alone on a fresh control plane, for the measurements that need no baseline (`--progress`,
//! `--queue-idle`): the plane started and stopped around a measurement, the CRDs and one namespace made, and the
//! operator binary started watching that namespace, ready.

use crate::process::{ChildProcess, free_port, sibling_binary, wait_http_ok};
use crate::workload::namespace_name;
use crew_testkit::{ControlPlane, create_namespace, install_crds};
use kube::Client;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// Runs `measure` on a fresh control plane (labelled `label` in its scratch directory, which is kept when the
/// measurement fails), then stops the plane.
pub async fn on_fresh_plane<F, Fut>(label: &str, api_qps: u32, measure: F) -> Result<String, String>
where
    F: FnOnce(ControlPlane, std::path::PathBuf) -> Fut,
    Fut: Future<Output = (ControlPlane, Result<String, String>)>,
{
    let dir = crew_testkit::scratch_dir("crew-bench", Some(label));
    let plane =
        ControlPlane::start(&dir, Some(api_qps)).map_err(|e| format!("control plane: {e}"))?;
    let (mut plane, result) = measure(plane, dir.clone()).await;
    plane.stop();
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// The operator running alone on a plane.
pub struct Solo {
    /// A client of the plane.
    pub client: Client,
    /// The namespace it watches.
    pub namespace: String,
    /// Its `/metrics`, `/readyz` address.
    pub metrics: SocketAddr,
    /// Its process.
    pub operator: ChildProcess,
}

/// Installs the CRDs, makes one namespace and starts the operator binary watching it (with `extra` arguments),
/// ready (its `/readyz` answers 200).
pub async fn start(plane: &ControlPlane, dir: &Path, extra: &[String]) -> Result<Solo, String> {
    let client = plane.client().await.map_err(|e| e.to_string())?;
    install_crds(&client).await.map_err(|e| e.to_string())?;
    let namespace = namespace_name(0);
    create_namespace(&client, &namespace)
        .await
        .map_err(|e| e.to_string())?;
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let mut args: Vec<String> = ["run", "--namespace", &namespace, "--metrics-addr"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(metrics.to_string());
    args.extend(["--log-level".to_string(), "warn".to_string()]);
    args.extend(extra.iter().cloned());
    let mut operator = ChildProcess::spawn(
        "crew-operator",
        &sibling_binary("crew-operator")?,
        &args,
        &plane.kubeconfig,
        &dir.join("operator.log"),
        "warn",
    )?;
    wait_http_ok(&mut operator, metrics, "/readyz", Duration::from_secs(60)).await?;
    Ok(Solo {
        client,
        namespace,
        metrics,
        operator,
    })
}
