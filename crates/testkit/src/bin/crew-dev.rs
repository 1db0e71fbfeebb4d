//! `crew-dev demo [DIR]`: the embedded default. Starts a local control plane (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, and KWOK playing the kubelet of a few fake nodes) and the operator,
//! applies the executions in DIR (default `examples/`) to namespace `demo`, and streams `kubectl get cx -w` until
//! Ctrl-C, which stops everything. With PostgreSQL installed (`make tools`), a server of its own keeps the archive:
//! finished runs stay readable (`kubectl crew … --archived`) after they are gone.
//!
//! `crew-dev plane`: only the control plane (no operator), until Ctrl-C; prints its `KUBECONFIG`. For poking at the
//! test cluster by hand (its logs stay in the printed directory while it runs).

use crew_operator::controller::Operator;
use crew_operator::settings::Settings;
use crew_operator::telemetry::{self, LogFormat};
use crew_testkit::{ControlPlane, create_namespace, install_crds};
use std::path::PathBuf;
use std::time::Duration;

const NAMESPACE: &str = "demo";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("demo") => {}
        Some("plane") => return plane_only().await,
        _ => {
            eprintln!(
                "usage: crew-dev demo [DIR] | crew-dev plane   (see `make demo`, `make plane`)"
            );
            std::process::exit(2);
        }
    }
    let examples = PathBuf::from(args.next().unwrap_or_else(|| "examples".into()));
    telemetry::init(LogFormat::Text, "warn,crew_operator::controller=info");
    let dir = crew_testkit::scratch_dir("crew-dev", None);
    eprintln!(
        "starting a local control plane in {} (first start takes ~10 s)...",
        dir.display()
    );
    let plane = ControlPlane::start(&dir, None)?;
    let client = plane.client().await?;
    install_crds(&client).await?;
    create_namespace(&client, NAMESPACE).await?;

    let mut settings = Settings::for_namespace(None, "crew-dev");
    let database = match crew_testkit::postgres::Postgres::start(&dir.join("postgres")) {
        Ok(database) => {
            settings.archive = Some(database.archive_connection(crew_testkit::postgres::DATABASE));
            Some(database)
        }
        Err(error) => {
            eprintln!("no archive ({error}); runs are not kept after they are gone");
            None
        }
    };
    let (stop_operator, stopped) = tokio::sync::oneshot::channel();
    let operator = Operator::new(client.clone(), settings.clone());
    let archive_api = match &settings.archive {
        Some(archive) => {
            let pool = crew_operator::archive::connect::pool_of(archive, 2)?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let api = crew_operator::archive::serve::ArchiveApi::new(pool, client.clone());
            tokio::spawn(crew_operator::archive::serve::serve(listener, api));
            Some(addr)
        }
        None => None,
    };
    let operator = tokio::spawn(operator.run(async {
        let _ = stopped.await;
    }));

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
    println!(
        "\nThe operator is running; KWOK plays the kubelet of the fake nodes. From another shell:"
    );
    println!("  export KUBECONFIG={}", plane.kubeconfig.display());
    println!("  export PATH={}:$PATH", plane.bin.display());
    println!(
        "  kubectl -n {NAMESPACE} get cx            # or: kubectl -n {NAMESPACE} describe cx market-report"
    );
    if let Some(addr) = archive_api {
        println!(
            "The archive keeps every finished run (PostgreSQL, read as you with your kubeconfig's token):"
        );
        println!("  kubectl crew -n {NAMESPACE} --archive-server http://{addr} list --archived");
        println!("  kubectl crew -n {NAMESPACE} --archive-server http://{addr} stats --archived");
    }
    let archive_flag = archive_api
        .map(|addr| format!(" --archive-server http://{addr}"))
        .unwrap_or_default();
    println!(
        "The dashboard (live runs, timelines, queues, statistics; your kubeconfig's rights, read-only):"
    );
    println!("  cargo run -q -p kubectl-crew -- -n {NAMESPACE}{archive_flag} dashboard");
    println!("Press Ctrl-C to stop everything.\n");
    let mut watch = tokio::process::Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(&plane.kubeconfig)
        .args(["-n", NAMESPACE, "get", "cx", "-w"])
        .kill_on_drop(true)
        .spawn()?;
    tokio::select! {
        () = crew_operator::shutdown::signal() => {}
        _ = watch.wait() => {}
    }
    eprintln!("\nstopping...");
    let _ = watch.kill().await;
    let _ = stop_operator.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), operator).await;
    drop(database);
    drop(plane);
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("stopped; nothing left running.");
    Ok(())
}

/// `crew-dev plane`: the control plane alone, until Ctrl-C or SIGTERM.
async fn plane_only() -> Result<(), Box<dyn std::error::Error>> {
    let dir = crew_testkit::scratch_dir("crew-plane", None);
    let plane = ControlPlane::start(&dir, None)?;
    install_crds(&plane.client().await?).await?;
    println!(
        "control plane up (logs in {}); from another shell:",
        dir.display()
    );
    println!("  export KUBECONFIG={}", plane.kubeconfig.display());
    println!("  export PATH={}:$PATH", plane.bin.display());
    println!("Press Ctrl-C to stop it.");
    crew_operator::shutdown::signal().await;
    drop(plane);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
