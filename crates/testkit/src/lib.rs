//! A local control plane (etcd + kube-apiserver + kube-controller-manager + kube-scheduler, with KWOK playing the
//! kubelet of a few fake nodes) for tests, the demo and benchmarks.
//!
//! The binaries come from `crates/testkit/control-plane/install.sh` (cached under
//! `~/.cache/crew-operator/k8s-<version>/bin`, [`KUBERNETES_VERSION`] by default) or from `$CREW_TEST_ASSETS`. Processes are started with a parent-death signal, so they never outlive the
//! program that started them, even when it crashes; [`ControlPlane`] stops them on drop.

pub mod postgres;
pub mod process;
mod scratch;
mod setup;

pub use scratch::scratch_dir;
pub use setup::{create_namespace, install_crds};

use process::Supervised;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevClusterError {
    /// A binary is missing.
    #[error(
        "{0} not found: run `make control-plane` (crates/testkit/control-plane/install.sh) or set CREW_TEST_ASSETS"
    )]
    MissingBinary(PathBuf),
    /// A process could not be started or a file written.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// A component did not become ready in time.
    #[error("{0} did not become ready within {1:?}; see {2}")]
    NotReady(&'static str, Duration, PathBuf),
    /// Talking to the API server failed.
    #[error("{0}: {1}")]
    Kube(&'static str, String),
}

/// The Kubernetes version of the default control plane (`control-plane/go/k8s-v1.37` in this crate).
pub const KUBERNETES_VERSION: &str = "v1.37.2";

/// Where the control-plane binaries live.
pub fn assets_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CREW_TEST_ASSETS") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    let cache = std::env::var_os("CREW_CACHE_DIR")
        .map_or_else(|| home.join(".cache/crew-operator"), PathBuf::from);
    cache.join(format!("k8s-{KUBERNETES_VERSION}/bin"))
}

/// The version the kube-apiserver of [`assets_dir`] reports (`v1.37.2`), or [`KUBERNETES_VERSION`] if it cannot
/// be run.
pub fn kubernetes_version() -> String {
    std::process::Command::new(assets_dir().join("kube-apiserver"))
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .find(|word| word.starts_with('v'))
                .map(str::to_string)
        })
        .unwrap_or_else(|| KUBERNETES_VERSION.to_string())
}

/// A running local control plane.
pub struct ControlPlane {
    /// Working directory (data, certificates, logs, kubeconfig).
    pub dir: PathBuf,
    /// `https://127.0.0.1:<port>`.
    pub server: String,
    /// Bearer token of the `admin` user (group system:masters).
    pub token: String,
    /// Path of a kubeconfig for the admin user.
    pub kubeconfig: PathBuf,
    /// Directory holding the binaries (kubectl, helm included).
    pub bin: PathBuf,
    /// In [`COMPONENTS`] order; behind a lock so that a shared control plane can restart its API server.
    processes: std::sync::Mutex<Vec<Supervised>>,
    /// How its kube-apiserver was started (`None` for an [`existing`](Self::existing) cluster).
    apiserver: Option<ApiserverArgs>,
}

/// What a restart of the kube-apiserver needs: the same etcd, port and service-account key.
#[derive(Clone)]
struct ApiserverArgs {
    etcd_url: String,
    port: u16,
    key: PathBuf,
}

/// Index of the kube-apiserver in [`COMPONENTS`].
const APISERVER: usize = 1;

pub(crate) fn free_port() -> Result<u16, DevClusterError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| DevClusterError::Io("bind".into(), e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| DevClusterError::Io("local_addr".into(), e))
}

pub(crate) fn write(path: &Path, text: &str) -> Result<(), DevClusterError> {
    std::fs::write(path, text)
        .map_err(|e| DevClusterError::Io(format!("write {}", path.display()), e))
}

/// The processes a local control plane runs (kubectl and helm are needed too, by tests and the demo).
pub const COMPONENTS: [&str; 5] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
];
/// KWOK's configuration: the Stages that play the kubelet of the fake nodes (see the file for the pod annotations).
pub const KWOK_CONFIG: &str = include_str!("../control-plane/kwok/kwok.yaml");
/// The worker-pod annotation that sets how long KWOK keeps a pod of a Job running (`2s`, `250ms`, `0`; 1 s without).
pub const POD_DURATION_ANNOTATION: &str = "sim.crew.dev/duration";
/// The fake nodes: two general ones and a tainted GPU node.
pub const NODES: &str = include_str!("../control-plane/kwok/nodes.yaml");

fn start_etcd(bin: &Path, dir: &Path, url: &str) -> Result<Supervised, DevClusterError> {
    let peer_url = format!("http://127.0.0.1:{}", free_port()?);
    Supervised::spawn(
        &bin.join("etcd"),
        &dir.join("etcd.log"),
        &[
            "--data-dir",
            &dir.join("etcd").to_string_lossy(),
            "--listen-client-urls",
            url,
            "--advertise-client-urls",
            url,
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
            "--initial-cluster",
            &format!("default={peer_url}"),
            "--quota-backend-bytes",
            "8589934592",
            "--unsafe-no-fsync",
        ],
    )
}

fn start_apiserver(
    bin: &Path,
    dir: &Path,
    args: &ApiserverArgs,
) -> Result<Supervised, DevClusterError> {
    let key = args.key.to_string_lossy();
    let mut flags: Vec<String> = [
        "--etcd-servers",
        &args.etcd_url,
        "--secure-port",
        &args.port.to_string(),
        "--bind-address",
        "127.0.0.1",
        "--cert-dir",
        &dir.join("certs").to_string_lossy(),
        "--token-auth-file",
        &dir.join("tokens.csv").to_string_lossy(),
        "--service-account-key-file",
        &key,
        "--service-account-signing-key-file",
        &key,
        "--service-account-issuer",
        "https://kubernetes.default.svc",
        "--authorization-mode",
        "RBAC",
        "--service-cluster-ip-range",
        "10.0.0.0/24",
        "--max-requests-inflight",
        "2000",
        "--max-mutating-requests-inflight",
        "1000",
    ]
    .iter()
    .map(|f| f.to_string())
    .collect();
    flags.extend(audit_flags(dir)?);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Supervised::spawn(
        &bin.join("kube-apiserver"),
        &dir.join("apiserver.log"),
        &flags,
    )
}

/// With `CREW_APISERVER_AUDIT=group/resource,...` (e.g. `crew.dev/crewexecutions`), the API server writes an audit
/// log (`audit.log` in the plane's directory, JSON lines, Metadata level: who asked what, with which user agent) of
/// requests for those resources only: to attribute API-server work to its clients (benchmarks). Off otherwise.
fn audit_flags(dir: &Path) -> Result<Vec<String>, DevClusterError> {
    let Ok(wanted) = std::env::var("CREW_APISERVER_AUDIT") else {
        return Ok(Vec::new());
    };
    let mut rules = String::new();
    for item in wanted.split(',').filter(|i| !i.trim().is_empty()) {
        let (group, resource) = item.trim().split_once('/').unwrap_or(("", item.trim()));
        rules.push_str(&format!(
            "- level: Metadata\n  omitStages: [RequestReceived]\n  resources: [{{group: \"{group}\", resources: [\"{resource}\"]}}]\n"
        ));
    }
    let policy = dir.join("audit-policy.yaml");
    write(
        &policy,
        &format!("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n{rules}- level: None\n"),
    )?;
    Ok(vec![
        "--audit-policy-file".into(),
        policy.to_string_lossy().into_owned(),
        "--audit-log-path".into(),
        dir.join("audit.log").to_string_lossy().into_owned(),
        "--audit-log-format".into(),
        "json".into(),
    ])
}

fn generate_key(key: &Path) -> Result<(), DevClusterError> {
    let status = std::process::Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(key)
        .arg("2048")
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| DevClusterError::Io("openssl genrsa (install openssl)".into(), e))?;
    if status.success() {
        Ok(())
    } else {
        Err(DevClusterError::Io(
            "openssl genrsa".into(),
            std::io::Error::other("failed"),
        ))
    }
}

impl ControlPlane {
    /// Starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK in `dir` (created if missing),
    /// registers the fake [`nodes`] and waits until the API server is ready and every node is `Ready`.
    /// `api_qps` raises the client rate limits of the controller manager and the scheduler (for benchmarks).
    pub fn start(dir: &Path, api_qps: Option<u32>) -> Result<Self, DevClusterError> {
        let bin = assets_dir();
        for name in COMPONENTS {
            if !bin.join(name).exists() {
                return Err(DevClusterError::MissingBinary(bin.join(name)));
            }
        }
        std::fs::create_dir_all(dir.join("certs"))
            .map_err(|e| DevClusterError::Io("create dir".into(), e))?;
        let etcd_url = format!("http://127.0.0.1:{}", free_port()?);
        let etcd = start_etcd(&bin, dir, &etcd_url)?;
        let key = dir.join("sa.key");
        generate_key(&key)?;
        let token = format!("{:032x}", rand_u128());
        write(
            &dir.join("tokens.csv"),
            &format!("{token},admin,admin-uid,system:masters\n"),
        )?;
        let api_port = free_port()?;
        let certs = dir.join("certs");
        let apiserver_args = ApiserverArgs {
            etcd_url: etcd_url.clone(),
            port: api_port,
            key: key.clone(),
        };
        let apiserver = start_apiserver(&bin, dir, &apiserver_args)?;
        let server = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = dir.join("kubeconfig");
        write(
            &kubeconfig,
            &format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: crew-dev\n  cluster:\n    server: {server}\n    certificate-authority: {}/apiserver.crt\nusers:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: crew-dev\n  context: {{cluster: crew-dev, user: admin}}\ncurrent-context: crew-dev\n",
                certs.display()
            ),
        )?;
        let plane = ControlPlane {
            dir: dir.to_path_buf(),
            server,
            token,
            kubeconfig,
            bin: bin.clone(),
            processes: std::sync::Mutex::new(vec![etcd, apiserver]),
            apiserver: Some(apiserver_args),
        };
        plane.wait_ready(
            "kube-apiserver",
            "/readyz",
            Duration::from_secs(90),
            &dir.join("apiserver.log"),
        )?;
        let qps = api_qps.unwrap_or(100);
        let controller_manager = plane.start_controller_manager(&key, &certs, qps)?;
        let scheduler = plane.start_scheduler(qps)?;
        let kwok = plane.start_kwok()?;
        plane.with_processes(|processes| processes.extend([controller_manager, scheduler, kwok]));
        std::thread::sleep(Duration::from_millis(200));
        if plane.alive() {
            plane.register_nodes()?;
        }
        if !plane.alive() {
            return Err(DevClusterError::NotReady(
                "kube-controller-manager, kube-scheduler or kwok",
                Duration::ZERO,
                dir.to_path_buf(),
            ));
        }
        Ok(plane)
    }

    fn start_controller_manager(
        &self,
        key: &Path,
        certs: &Path,
        qps: u32,
    ) -> Result<Supervised, DevClusterError> {
        // KWOK's nodes mount no volumes and need no pod CIDRs. The node-lifecycle controller runs: it lifts the
        // `not-ready` taint that admission puts on every new node once KWOK reports it Ready and renews its Lease.
        let controllers = "*,-node-ipam-controller,-ttl-controller,\
            -persistentvolume-attach-detach-controller,-persistentvolume-binder-controller";
        Supervised::spawn(
            &self.bin.join("kube-controller-manager"),
            &self.dir.join("controller-manager.log"),
            &[
                "--kubeconfig",
                &self.kubeconfig.to_string_lossy(),
                "--service-account-private-key-file",
                &key.to_string_lossy(),
                "--root-ca-file",
                &certs.join("apiserver.crt").to_string_lossy(),
                "--use-service-account-credentials=false",
                "--leader-elect=false",
                "--secure-port",
                "0",
                "--controllers",
                controllers,
                "--kube-api-qps",
                &qps.to_string(),
                "--kube-api-burst",
                &(qps * 2).to_string(),
                "--concurrent-gc-syncs",
                "50",
            ],
        )
    }

    fn start_scheduler(&self, qps: u32) -> Result<Supervised, DevClusterError> {
        let config = self.dir.join("scheduler.yaml");
        write(
            &config,
            &format!(
                "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n\
                 clientConnection:\n  kubeconfig: {}\n  qps: {qps}\n  burst: {}\n\
                 leaderElection:\n  leaderElect: false\n",
                self.kubeconfig.display(),
                qps * 2
            ),
        )?;
        Supervised::spawn(
            &self.bin.join("kube-scheduler"),
            &self.dir.join("scheduler.log"),
            &["--config", &config.to_string_lossy(), "--secure-port", "0"],
        )
    }

    fn start_kwok(&self) -> Result<Supervised, DevClusterError> {
        let config = self.dir.join("kwok.yaml");
        write(&config, KWOK_CONFIG)?;
        Supervised::spawn(
            &self.bin.join("kwok"),
            &self.dir.join("kwok.log"),
            &[
                "--kubeconfig",
                &self.kubeconfig.to_string_lossy(),
                "--config",
                &config.to_string_lossy(),
            ],
        )
    }

    /// Creates the fake nodes and waits until KWOK has made every one `Ready`.
    fn register_nodes(&self) -> Result<(), DevClusterError> {
        let nodes = self.dir.join("nodes.yaml");
        write(&nodes, NODES)?;
        self.kubectl(&["apply", "-f", &nodes.to_string_lossy()])?;
        self.kubectl(&[
            "wait",
            "--for=condition=Ready",
            "node",
            "--all",
            "--timeout=60s",
        ])
        .map(drop)
    }

    /// Runs kubectl against this control plane; its stdout, or its stderr as the error.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, DevClusterError> {
        let out = std::process::Command::new(self.bin.join("kubectl"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .map_err(|e| DevClusterError::Io("run kubectl".into(), e))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(DevClusterError::Kube(
                "kubectl",
                format!(
                    "kubectl {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ))
        }
    }

    /// An existing cluster reached through `kubeconfig` instead of a local control plane (nothing is started or
    /// stopped). kubectl and helm are taken from [`assets_dir`] if present there, else from `PATH`.
    pub fn existing(kubeconfig: &Path) -> Self {
        let bin = assets_dir();
        let bin = if bin.join("kubectl").exists() {
            bin
        } else {
            PathBuf::from("/usr/bin")
        };
        ControlPlane {
            dir: std::env::temp_dir(),
            server: String::new(),
            token: String::new(),
            kubeconfig: kubeconfig.to_path_buf(),
            bin,
            processes: std::sync::Mutex::new(Vec::new()),
            apiserver: None,
        }
    }

    fn wait_ready(
        &self,
        what: &'static str,
        path: &str,
        limit: Duration,
        log: &Path,
    ) -> Result<(), DevClusterError> {
        let deadline = Instant::now() + limit;
        let url = format!("{}{path}", self.server);
        while Instant::now() < deadline {
            let out = std::process::Command::new("curl")
                .args([
                    "-ksf",
                    "-m",
                    "2",
                    "-H",
                    &format!("Authorization: Bearer {}", self.token),
                    &url,
                ])
                .output();
            if out.is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"ok")) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(DevClusterError::NotReady(what, limit, log.to_path_buf()))
    }

    /// A client for the admin user (build one per tokio runtime).
    pub async fn client(&self) -> Result<kube::Client, DevClusterError> {
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&self.kubeconfig)
                .map_err(|e| DevClusterError::Kube("read kubeconfig", e.to_string()))?,
            &Default::default(),
        )
        .await
        .map_err(|e| DevClusterError::Kube("kubeconfig", e.to_string()))?;
        kube::Client::try_from(config).map_err(|e| DevClusterError::Kube("client", e.to_string()))
    }

    fn with_processes<T>(&self, f: impl FnOnce(&mut Vec<Supervised>) -> T) -> T {
        let mut processes = self
            .processes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut processes)
    }

    /// Whether every process still runs.
    pub fn alive(&self) -> bool {
        self.with_processes(|processes| processes.iter_mut().all(Supervised::alive))
    }

    /// PIDs of the processes, in [`COMPONENTS`] order.
    pub fn pids(&self) -> Vec<u32> {
        self.with_processes(|processes| processes.iter().map(Supervised::pid).collect())
    }

    /// Kills the kube-apiserver (SIGKILL, as a crash or an OOM kill would), keeps it down for `down`, starts it
    /// again on the same port and etcd, and waits until it is ready. Clients see refused connections meanwhile;
    /// etcd and the other components keep running. The new process lives as long as this program.
    pub fn restart_apiserver(&self, down: Duration) -> Result<(), DevClusterError> {
        let Some(args) = self.apiserver.clone() else {
            return Err(DevClusterError::Kube(
                "restart kube-apiserver",
                "not started by this program".into(),
            ));
        };
        self.with_processes(|processes| processes.get_mut(APISERVER).map(Supervised::kill));
        std::thread::sleep(down);
        let (bin, dir) = (self.bin.clone(), self.dir.clone());
        let apiserver = process::spawn_for_life(move || start_apiserver(&bin, &dir, &args))?;
        self.with_processes(|processes| {
            if let Some(slot) = processes.get_mut(APISERVER) {
                *slot = apiserver;
            }
        });
        self.wait_ready(
            "kube-apiserver",
            "/readyz",
            Duration::from_secs(90),
            &self.dir.join("apiserver.log"),
        )
    }

    /// Stops every process (also done on drop).
    pub fn stop(&mut self) {
        self.with_processes(|processes| {
            for process in processes.iter_mut().rev() {
                process.stop();
            }
        });
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn rand_u128() -> u128 {
    let mut bytes = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_err()
    {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        return nanos ^ u128::from(std::process::id());
    }
    u128::from_le_bytes(bytes)
}
