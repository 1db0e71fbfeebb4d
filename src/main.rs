//! `crew-operator`: the operator binary.

use clap::{Parser, Subcommand};
use crew_operator::controller::{self, ControllerConfig};
use crew_operator::leader::{self, LeaderConfig};
use crew_operator::shutdown;
use crew_operator::telemetry::{self, LogFormat};
use std::time::Duration;

/// Runs CrewExecutions (a crew of AI agents, or any multi-step batch work) on Kubernetes as queued, retried,
/// observable worker Jobs.
#[derive(Parser, Debug)]
#[command(name = "crew-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controller (all namespaces unless --namespace is given).
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Watch only this namespace.
    #[arg(long, env = "CREW_NAMESPACE")]
    namespace: Option<String>,
    /// Kubeconfig context to use (default: the current context, or in-cluster config).
    #[arg(long, env = "CREW_KUBE_CONTEXT")]
    context: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "CREW_LOG_FORMAT")]
    log_format: LogFormat,
    /// Log level / filter directive (RUST_LOG overrides).
    #[arg(long, default_value = "info", env = "CREW_LOG_LEVEL")]
    log_level: String,
    /// Most executions without `spec.queue` running at once, operator-wide (default: unlimited). They wait in
    /// phase Queued, highest priority first, then oldest first.
    #[arg(long, env = "CREW_MAX_RUNNING", value_parser = clap::value_parser!(u32).range(1..))]
    max_running: Option<u32>,
    /// How long a worker may take to start when its execution sets no `spec.startTimeoutSeconds`: an attempt
    /// whose pod cannot be scheduled, pulled or created fails with reason `StartTimeout` after this.
    #[arg(long, env = "CREW_START_TIMEOUT_SECONDS", default_value_t = 600,
        value_parser = clap::value_parser!(i64).range(1..=2_147_483_647))]
    start_timeout_seconds: i64,
    /// A ServiceAccount workers may run as without the `crew.dev/worker: "true"` annotation (repeat the flag for
    /// more; applies in every watched namespace).
    #[arg(
        long = "worker-service-account",
        env = "CREW_WORKER_SERVICE_ACCOUNTS",
        value_delimiter = ','
    )]
    worker_service_accounts: Vec<String>,
    /// A pod annotation or label key workers may carry although the default deny list refuses it (`*` ends a
    /// prefix, e.g. `sidecar.istio.io/*`; repeat the flag for more).
    #[arg(
        long = "allow-pod-annotation",
        env = "CREW_ALLOW_POD_ANNOTATIONS",
        value_delimiter = ','
    )]
    allow_pod_annotations: Vec<String>,
    /// A pod annotation or label key to refuse besides the default deny list (`*` ends a prefix).
    #[arg(
        long = "deny-pod-annotation",
        env = "CREW_DENY_POD_ANNOTATIONS",
        value_delimiter = ','
    )]
    deny_pod_annotations: Vec<String>,
    /// Most reconciles in flight at once (0: unbounded, the default). Executions beyond it wait in the controller's
    /// queue as a small reference instead of a suspended reconcile (~1.5 KiB plus its write in flight), at the
    /// cost of first-Job latency under a burst (see BENCHMARKS.md).
    #[arg(long, env = "CREW_MAX_CONCURRENT_RECONCILES", default_value_t = 0)]
    max_concurrent_reconciles: u16,
    /// Most API requests in flight at once (default: unlimited). The rest wait their turn in the operator, first
    /// come first served, and reuse warm connections instead of opening new ones. A low bound saves sockets but,
    /// under a burst of thousands of executions, queues requests in the operator (see BENCHMARKS.md).
    #[arg(long, env = "CREW_MAX_API_REQUESTS", value_parser = clap::value_parser!(u16).range(1..))]
    max_api_requests: Option<u16>,
    /// Address of the HTTP server for /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080", env = "CREW_METRICS_ADDR")]
    metrics_addr: std::net::SocketAddr,
    /// Address of the endpoint workers report progress to (`POST /v1/progress`).
    #[arg(long, default_value = "0.0.0.0:8081", env = "CREW_PROGRESS_ADDR")]
    progress_addr: std::net::SocketAddr,
    /// The URL workers are told to post progress to (`CREW_PROGRESS_URL` in every worker), e.g.
    /// `http://crew-operator-progress.crew-system.svc:8081/v1/progress` (the chart sets it). Unset: workers are
    /// not given a URL and cannot report.
    #[arg(long, env = "CREW_PROGRESS_URL")]
    progress_url: Option<String>,
    /// At most one status write per execution this often for progress reports, however often workers post
    /// (milliseconds).
    #[arg(long, env = "CREW_PROGRESS_INTERVAL_MS", default_value_t = 2000,
        value_parser = clap::value_parser!(u64).range(100..=600_000))]
    progress_interval_ms: u64,
    /// Name reported as the Event reporting instance and used as the leader-election identity (default: $POD_NAME,
    /// else the host name and process id).
    #[arg(long, env = "POD_NAME")]
    instance: Option<String>,
    /// Run as one of several replicas: only the holder of a coordination.k8s.io Lease acts; the others stand by.
    #[arg(long, env = "CREW_LEADER_ELECTION", default_value_t = false, action = clap::ArgAction::Set,
        num_args = 0..=1, default_missing_value = "true")]
    leader_election: bool,
    /// Name of the leader-election Lease.
    #[arg(long, env = "CREW_LEASE_NAME", default_value = "crew-operator")]
    lease_name: String,
    /// Namespace of the leader-election Lease (default: $POD_NAMESPACE, else --namespace, else "default").
    #[arg(long, env = "CREW_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Seconds a leader's claim lasts without renewal (a killed leader is replaced after about this long).
    #[arg(long, default_value_t = leader::DEFAULT_LEASE_DURATION.as_secs(), env = "CREW_LEASE_DURATION_SECONDS")]
    lease_duration_seconds: u64,
    /// Seconds after its last renewal at which a leader that cannot renew stops (exits); < the lease duration.
    #[arg(long, default_value_t = leader::DEFAULT_RENEW_DEADLINE.as_secs(), env = "CREW_LEASE_RENEW_DEADLINE_SECONDS")]
    lease_renew_deadline_seconds: u64,
    /// Seconds between Lease renewals (leader) or looks (standby); < the renew deadline.
    #[arg(long, default_value_t = leader::DEFAULT_RETRY_PERIOD.as_secs(), env = "CREW_LEASE_RETRY_PERIOD_SECONDS")]
    lease_retry_period_seconds: u64,
}

impl RunArgs {
    /// The leader-election settings, when it is on.
    fn leader_config(&self) -> Option<LeaderConfig> {
        if !self.leader_election {
            return None;
        }
        let namespace = self
            .lease_namespace
            .clone()
            .or_else(|| {
                std::env::var("POD_NAMESPACE")
                    .ok()
                    .filter(|n| !n.is_empty())
            })
            .or_else(|| self.namespace.clone())
            .unwrap_or_else(|| "default".into());
        let identity = self.instance.clone().unwrap_or_else(|| {
            let host = controller::host_name().unwrap_or_else(|| controller::REPORTER.into());
            format!("{host}-{}", std::process::id())
        });
        Some(LeaderConfig {
            lease_name: self.lease_name.clone(),
            namespace,
            identity,
            lease_duration: Duration::from_secs(self.lease_duration_seconds),
            renew_deadline: Duration::from_secs(self.lease_renew_deadline_seconds),
            retry_period: Duration::from_secs(self.lease_retry_period_seconds),
        })
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for (_, yaml) in crew_api::crds::crd_files()? {
                match writeln!(out, "---\n{yaml}") {
                    // A reader that has seen enough (`| head`, `| grep -q`) is not an error.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                    written => written?,
                }
            }
            Ok(())
        }
        Command::Run(args) => {
            limit_malloc_arenas();
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(run(*args))
        }
    }
}

async fn run(args: RunArgs) -> Result<(), Box<dyn std::error::Error>> {
    telemetry::init(args.log_format, &args.log_level);
    let leader_config = args.leader_config();
    if let Some(leader) = &leader_config {
        leader.validate()?;
    }
    let client = crew_operator::client::connect(
        args.context.as_deref(),
        args.max_api_requests.map(usize::from),
    )
    .await?;
    let config = ControllerConfig {
        namespace: args.namespace,
        instance: leader_config
            .as_ref()
            .map(|l| l.identity.clone())
            .or(args.instance),
        max_running: args.max_running,
        start_timeout_seconds: Some(args.start_timeout_seconds),
        worker_policy: {
            let mut policy = crew_core::lifecycle::worker_policy::WorkerPolicy::default();
            policy.denied_pod_keys.extend(args.deny_pod_annotations);
            policy.allowed_pod_keys = args.allow_pod_annotations;
            policy.service_accounts = args.worker_service_accounts;
            policy
        },
        max_concurrent_reconciles: args.max_concurrent_reconciles,
        progress_url: args.progress_url,
        progress_interval: Some(std::time::Duration::from_millis(args.progress_interval_ms)),
    };
    tracing::info!(namespace = ?config.namespace, version = env!("CARGO_PKG_VERSION"), "crew-operator starting");
    let ctx = controller::context(client, &config);
    let listener = tokio::net::TcpListener::bind(args.metrics_addr).await?;
    tracing::info!(addr = %args.metrics_addr, "serving /metrics, /healthz, /readyz");
    let http = tokio::spawn(crew_operator::http::serve(listener, ctx.clone()));
    let progress_listener = tokio::net::TcpListener::bind(args.progress_addr).await?;
    tracing::info!(addr = %args.progress_addr, url = ?ctx.progress_url, "serving POST /v1/progress");
    let progress = tokio::spawn(crew_operator::progress::endpoint::serve(
        progress_listener,
        ctx.clone(),
    ));
    match leader_config {
        None => controller::run(ctx, config, shutdown::signal()).await,
        Some(leader) => {
            tracing::info!(lease = %leader.lease_name, namespace = %leader.namespace, identity = %leader.identity,
                "leader election on: standing by until this replica holds the Lease");
            if let Err(lost) =
                leader::run_when_leading(ctx, config, leader, shutdown::signal()).await
            {
                // I8: stop at once; no in-flight reconcile may write after the lease is gone.
                tracing::error!(%lost, "lost leadership; exiting");
                std::process::exit(1);
            }
        }
    }
    http.abort();
    progress.abort();
    tracing::info!("crew-operator stopped");
    Ok(())
}

/// glibc gives each thread that allocates its own heap arena; with the runtime's worker threads that multiplied
/// the resident memory of the caches several times over (fragmentation across arenas). Two arenas are plenty for a
/// process that mostly waits on the network. (musl has no arenas.)
fn limit_malloc_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator tuning; called before the runtime starts its threads.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
