//! `crew-dev demo [DIR]`: the embedded default. Starts a local control plane (etcd, kube-apiserver,
//! kube-controller-manager), the operator and the pod simulator, applies the executions in DIR (default
//! `examples/`) to namespace `demo`, and streams `kubectl get cx -w` until Ctrl-C, which stops everything.

use crew_operator::controller::{self, ControllerConfig};
use crew_operator::devcluster::{ControlPlane, create_namespace, install_crds};
use crew_operator::simulator::{self, SimulatorConfig};
use crew_operator::telemetry::{self, LogFormat};
use std::path::PathBuf;
use std::time::Duration;

const NAMESPACE: &str = "demo";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("demo") {
        eprintln!("usage: crew-dev demo [DIR]   (run it through `make demo`)");
        std::process::exit(2);
    }
    let examples = PathBuf::from(args.next().unwrap_or_else(|| "examples".into()));
    telemetry::init(LogFormat::Text, "warn,crew_operator::controller=info");
    let dir = std::env::temp_dir().join(format!("crew-dev-{}", std::process::id()));
    eprintln!(
        "starting a local control plane in {} (first start takes ~10 s)...",
        dir.display()
    );
    let plane = ControlPlane::start(&dir, None)?;
    let client = plane.client().await?;
    install_crds(&client).await?;
    create_namespace(&client, NAMESPACE).await?;

    let (stop_operator, stopped) = tokio::sync::oneshot::channel();
    let config = ControllerConfig {
        namespace: None,
        instance: Some("crew-dev".into()),
        max_running: None,
        ..Default::default()
    };
    let ctx = controller::context(client.clone(), &config);
    let operator = tokio::spawn(controller::run(ctx, config, async {
        let _ = stopped.await;
    }));
    let sim_config = SimulatorConfig {
        default_duration: Duration::from_secs(3),
        ..Default::default()
    };
    let sim = tokio::spawn(simulator::run(client.clone(), sim_config));

    let kubectl = plane.bin.join("kubectl");
    let apply = tokio::process::Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(&plane.kubeconfig)
        .args(["-n", NAMESPACE, "apply", "-f"])
        .arg(&examples)
        .status()
        .await?;
    if !apply.success() {
        eprintln!("kubectl apply -f {} failed", examples.display());
    }
    println!("\nThe operator and the pod simulator are running. From another shell:");
    println!("  export KUBECONFIG={}", plane.kubeconfig.display());
    println!("  export PATH={}:$PATH", plane.bin.display());
    println!(
        "  kubectl -n {NAMESPACE} get cx            # or: kubectl -n {NAMESPACE} describe cx market-report"
    );
    println!("Press Ctrl-C to stop everything.\n");
    let mut watch = tokio::process::Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(&plane.kubeconfig)
        .args(["-n", NAMESPACE, "get", "cx", "-w"])
        .kill_on_drop(true)
        .spawn()?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
        _ = watch.wait() => {}
    }
    eprintln!("\nstopping...");
    let _ = watch.kill().await;
    let _ = stop_operator.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), operator).await;
    sim.abort();
    drop(plane);
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("stopped; nothing left running.");
    Ok(())
}
