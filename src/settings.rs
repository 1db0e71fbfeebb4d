//! The operator's settings, one group per concern: the flags of `crew-operator run` are these groups flattened
//! (`#[command(flatten)]`), and each group travels as it is to the code that uses it. A new flag is one field in
//! its group (plus its `Default`, which a test keeps equal to the flag's default).

use crate::leader::{self, LeaderConfig};
use crate::telemetry::LogFormat;
use crew_core::lifecycle::worker_policy::WorkerPolicy;
use std::time::Duration;

/// Everything `crew-operator run` takes.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct RunArgs {
    /// Where the operator connects and what it watches.
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// How much runs at once.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// What workers may use, and how long they may take to start.
    #[command(flatten)]
    pub workers: WorkerArgs,
    /// Where workers report progress.
    #[command(flatten)]
    pub progress: ProgressArgs,
    /// Deliveries to CrewSinks.
    #[command(flatten)]
    pub notify: NotifyArgs,
    /// The PostgreSQL archive.
    #[command(flatten)]
    pub archive: ArchiveArgs,
    /// Several replicas, one acting.
    #[command(flatten)]
    pub leader: LeaderArgs,
    /// Logs and metrics.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// Where the operator connects and what it watches.
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectionArgs {
    /// Watch only this namespace.
    #[arg(long, env = "CREW_NAMESPACE")]
    pub namespace: Option<String>,
    /// Kubeconfig context to use (default: the current context, or in-cluster config).
    #[arg(long, env = "CREW_KUBE_CONTEXT")]
    pub context: Option<String>,
    /// Most API requests in flight at once (default: unlimited). The rest wait their turn in the operator, first
    /// come first served, and reuse warm connections instead of opening new ones. A low bound saves sockets but,
    /// under a burst of thousands of executions, queues requests in the operator (see BENCHMARKS.md).
    #[arg(long, env = "CREW_MAX_API_REQUESTS", value_parser = clap::value_parser!(u16).range(1..))]
    pub max_api_requests: Option<u16>,
    /// Name reported as the Event reporting instance and used as the leader-election identity (default: $POD_NAME,
    /// else the host name and process id).
    #[arg(long, env = "POD_NAME")]
    pub instance: Option<String>,
}

/// How much runs at once.
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct LimitArgs {
    /// Most executions without `spec.queue` running at once, operator-wide (default: unlimited). They wait in
    /// phase Queued, highest priority first, then oldest first.
    #[arg(long, env = "CREW_MAX_RUNNING", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_running: Option<u32>,
    /// Most reconciles in flight at once (0: unbounded, the default). Executions beyond it wait in the controller's
    /// queue as a small reference instead of a suspended reconcile (~1.5 KiB plus its write in flight), at the
    /// cost of first-Job latency under a burst: at N = 10 000, first-Job p99 88 s with 64 and 49 s with 1 024,
    /// against 3 s unbounded (BENCHMARKS.md). The API server queues better than a slot limit.
    #[arg(long, env = "CREW_MAX_CONCURRENT_RECONCILES", default_value_t = 0)]
    pub max_concurrent_reconciles: u16,
}

/// What workers may use, and how long they may take to start.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
pub struct WorkerArgs {
    /// How long a worker may take to start when its execution sets no `spec.startTimeoutSeconds`: an attempt
    /// whose pod cannot be scheduled, pulled or created fails with reason `StartTimeout` after this.
    #[arg(long, env = "CREW_START_TIMEOUT_SECONDS", default_value_t = DEFAULT_START_TIMEOUT_SECONDS,
        value_parser = clap::value_parser!(i64).range(1..=2_147_483_647))]
    pub start_timeout_seconds: i64,
    /// A ServiceAccount workers may run as without the `crew.dev/worker: "true"` annotation (repeat the flag for
    /// more; applies in every watched namespace).
    #[arg(
        long = "worker-service-account",
        env = "CREW_WORKER_SERVICE_ACCOUNTS",
        value_delimiter = ','
    )]
    pub service_accounts: Vec<String>,
    /// A pod annotation or label key workers may carry although the default deny list refuses it (`*` ends a
    /// prefix, e.g. `sidecar.istio.io/*`; repeat the flag for more).
    #[arg(
        long = "allow-pod-annotation",
        env = "CREW_ALLOW_POD_ANNOTATIONS",
        value_delimiter = ','
    )]
    pub allow_pod_annotations: Vec<String>,
    /// A pod annotation or label key to refuse besides the default deny list (`*` ends a prefix).
    #[arg(
        long = "deny-pod-annotation",
        env = "CREW_DENY_POD_ANNOTATIONS",
        value_delimiter = ','
    )]
    pub deny_pod_annotations: Vec<String>,
}

/// Default of `--start-timeout-seconds`.
pub const DEFAULT_START_TIMEOUT_SECONDS: i64 =
    crew_core::lifecycle::steps::DEFAULT_START_TIMEOUT_SECONDS;

impl Default for WorkerArgs {
    fn default() -> Self {
        WorkerArgs {
            start_timeout_seconds: DEFAULT_START_TIMEOUT_SECONDS,
            service_accounts: Vec::new(),
            allow_pod_annotations: Vec::new(),
            deny_pod_annotations: Vec::new(),
        }
    }
}

impl WorkerArgs {
    /// The worker policy these flags make (the default deny list, extended and opened as the flags say).
    pub fn policy(&self) -> WorkerPolicy {
        let mut policy = WorkerPolicy::default();
        policy
            .denied_pod_keys
            .extend(self.deny_pod_annotations.iter().cloned());
        policy.allowed_pod_keys = self.allow_pod_annotations.clone();
        policy.service_accounts = self.service_accounts.clone();
        policy
    }
}

/// Where workers report progress.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
pub struct ProgressArgs {
    /// Address of the endpoint workers report progress to (`POST /v1/progress`).
    #[arg(long, default_value = DEFAULT_PROGRESS_ADDR, env = "CREW_PROGRESS_ADDR")]
    pub progress_addr: std::net::SocketAddr,
    /// The URL workers are told to post progress to (`CREW_PROGRESS_URL` in every worker), e.g.
    /// `http://crew-operator-progress.crew-system.svc:8081/v1/progress` (the chart sets it). Unset: workers are
    /// not given a URL and cannot report.
    #[arg(long, env = "CREW_PROGRESS_URL")]
    pub progress_url: Option<String>,
    /// At most one status write per execution this often for progress reports, however often workers post
    /// (milliseconds).
    #[arg(long, env = "CREW_PROGRESS_INTERVAL_MS", default_value_t = DEFAULT_PROGRESS_INTERVAL_MS,
        value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub progress_interval_ms: u64,
}

const DEFAULT_PROGRESS_ADDR: &str = "0.0.0.0:8081";
/// Default of `--progress-interval-ms`: reports cost at most one status write per execution this often.
pub const DEFAULT_PROGRESS_INTERVAL_MS: u64 = 2_000;

impl Default for ProgressArgs {
    fn default() -> Self {
        ProgressArgs {
            progress_addr: std::net::SocketAddr::from(([0, 0, 0, 0], 8081)),
            progress_url: None,
            progress_interval_ms: DEFAULT_PROGRESS_INTERVAL_MS,
        }
    }
}

impl ProgressArgs {
    /// At most one status write per execution this often for progress reports.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.progress_interval_ms)
    }
}

/// Deliveries to CrewSinks.
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct NotifyArgs {
    /// Read sink credentials (bearer tokens, signing keys) from Secrets labelled `crew.dev/sink-credentials: "true"`
    /// (a watch of those Secrets only; needs list and watch on Secrets). Off (the default): the operator reads no
    /// Secret at all, and sinks that name one get no deliveries (their `lastError` says why).
    #[arg(long, env = "CREW_SINK_CREDENTIALS", default_value_t = false, action = clap::ArgAction::Set,
        num_args = 0..=1, default_missing_value = "true")]
    pub sink_credentials: bool,
}

/// The PostgreSQL archive of finished executions (see README, "Archive").
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchiveArgs {
    /// Archive every finished execution in this PostgreSQL database, e.g.
    /// `postgres://crew@db.example:5432/crew?sslmode=require` (default: no archive). Put the password in
    /// `--archive-password-file` or `CREW_ARCHIVE_PASSWORD`; a URL holding one is taken only from the environment
    /// (a Secret), never from the command line.
    #[arg(long, env = "CREW_ARCHIVE_URL")]
    pub archive_url: Option<String>,
    /// A file holding the database password (e.g. a mounted Secret).
    #[arg(long, env = "CREW_ARCHIVE_PASSWORD_FILE")]
    pub archive_password_file: Option<std::path::PathBuf>,
    /// A PEM file of the CA that signs the database's certificate, for `sslmode=require` (default: the public web
    /// roots).
    #[arg(long, env = "CREW_ARCHIVE_CA_FILE")]
    pub archive_ca_file: Option<std::path::PathBuf>,
    /// Address of the archive's read API (`kubectl crew … --archived`, the dashboard), e.g. `0.0.0.0:8082`
    /// (default: not served). Every request is made as its caller: a TokenReview of the bearer token, a
    /// SubjectAccessReview of every read.
    #[arg(long, env = "CREW_ARCHIVE_ADDR")]
    pub archive_addr: Option<std::net::SocketAddr>,
    /// Delete archived executions that finished more than this many days ago (default: keep them all); the
    /// statistics rollups stay.
    #[arg(long, env = "CREW_ARCHIVE_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    pub archive_retention_days: Option<u32>,
}

/// The environment variable that may hold the archive's password (from a Secret).
pub const ARCHIVE_PASSWORD_ENV: &str = "CREW_ARCHIVE_PASSWORD";

impl ArchiveArgs {
    /// How to connect, when an archive is configured: the password read from its file or environment variable.
    pub fn connection(&self) -> Result<Option<crate::archive::connect::ArchiveConnection>, String> {
        let Some(url) = &self.archive_url else {
            return Ok(None);
        };
        let from_environment =
            std::env::var("CREW_ARCHIVE_URL").ok().as_deref() == Some(url.as_str());
        let parsed: tokio_postgres::Config =
            url.parse().map_err(|e| format!("--archive-url: {e}"))?;
        if parsed.get_password().is_some() && !from_environment {
            return Err(
                "--archive-url holds a password, which the process list shows to everyone on the host: put it in \
                 --archive-password-file or CREW_ARCHIVE_PASSWORD, or pass the whole URL as CREW_ARCHIVE_URL"
                    .into(),
            );
        }
        let password = match &self.archive_password_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("--archive-password-file {}: {e}", path.display()))?
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
            ),
            None => std::env::var(ARCHIVE_PASSWORD_ENV)
                .ok()
                .filter(|p| !p.is_empty()),
        };
        Ok(Some(crate::archive::connect::ArchiveConnection {
            url: url.clone(),
            password,
            ca_file: self.archive_ca_file.clone(),
        }))
    }
}

/// Several replicas, one acting.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
pub struct LeaderArgs {
    /// Run as one of several replicas: only the holder of a coordination.k8s.io Lease acts; the others stand by.
    #[arg(long, env = "CREW_LEADER_ELECTION", default_value_t = false, action = clap::ArgAction::Set,
        num_args = 0..=1, default_missing_value = "true")]
    pub leader_election: bool,
    /// Name of the leader-election Lease.
    #[arg(long, env = "CREW_LEASE_NAME", default_value = DEFAULT_LEASE_NAME)]
    pub lease_name: String,
    /// Namespace of the leader-election Lease (default: $POD_NAMESPACE, else --namespace, else "default").
    #[arg(long, env = "CREW_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Seconds a leader's claim lasts without renewal (a killed leader is replaced after about this long).
    #[arg(long, default_value_t = leader::DEFAULT_LEASE_DURATION.as_secs(), env = "CREW_LEASE_DURATION_SECONDS")]
    pub lease_duration_seconds: u64,
    /// Seconds after its last renewal at which a leader that cannot renew stops (exits); < the lease duration.
    #[arg(long, default_value_t = leader::DEFAULT_RENEW_DEADLINE.as_secs(), env = "CREW_LEASE_RENEW_DEADLINE_SECONDS")]
    pub lease_renew_deadline_seconds: u64,
    /// Seconds between Lease renewals (leader) or looks (standby); < the renew deadline.
    #[arg(long, default_value_t = leader::DEFAULT_RETRY_PERIOD.as_secs(), env = "CREW_LEASE_RETRY_PERIOD_SECONDS")]
    pub lease_retry_period_seconds: u64,
}

const DEFAULT_LEASE_NAME: &str = "crew-operator";

impl Default for LeaderArgs {
    fn default() -> Self {
        LeaderArgs {
            leader_election: false,
            lease_name: DEFAULT_LEASE_NAME.into(),
            lease_namespace: None,
            lease_duration_seconds: leader::DEFAULT_LEASE_DURATION.as_secs(),
            lease_renew_deadline_seconds: leader::DEFAULT_RENEW_DEADLINE.as_secs(),
            lease_retry_period_seconds: leader::DEFAULT_RETRY_PERIOD.as_secs(),
        }
    }
}

impl LeaderArgs {
    /// The leader-election settings when it is on: the Lease's namespace from the flag, else $POD_NAMESPACE, else
    /// the watched namespace, else `default`; the identity is `instance`, else the host name and process id.
    pub fn config(
        &self,
        watched_namespace: Option<&str>,
        instance: Option<&str>,
    ) -> Option<LeaderConfig> {
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
            .or_else(|| watched_namespace.map(str::to_string))
            .unwrap_or_else(|| "default".into());
        let identity = instance.map(str::to_string).unwrap_or_else(|| {
            let host = crate::controller::host_name()
                .unwrap_or_else(|| crate::controller::REPORTER.into());
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

/// Logs and metrics.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
pub struct TelemetryArgs {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "CREW_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log level / filter directive (RUST_LOG overrides).
    #[arg(long, default_value = DEFAULT_LOG_LEVEL, env = "CREW_LOG_LEVEL")]
    pub log_level: String,
    /// Address of the HTTP server for /metrics, /healthz and /readyz.
    #[arg(long, default_value = DEFAULT_METRICS_ADDR, env = "CREW_METRICS_ADDR")]
    pub metrics_addr: std::net::SocketAddr,
}

const DEFAULT_LOG_LEVEL: &str = "info";
const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:8080";

impl Default for TelemetryArgs {
    fn default() -> Self {
        TelemetryArgs {
            log_format: LogFormat::Text,
            log_level: DEFAULT_LOG_LEVEL.into(),
            metrics_addr: std::net::SocketAddr::from(([0, 0, 0, 0], 8080)),
        }
    }
}

/// What the controller reads of the settings: the groups of [`RunArgs`] that reconciles use, as they are.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Watched namespace and reporting instance.
    pub connection: ConnectionArgs,
    /// How much runs at once.
    pub limits: LimitArgs,
    /// What workers may use (the policy made from the flags once, at start).
    pub workers: WorkerSettings,
    /// Where workers report progress.
    pub progress: ProgressArgs,
    /// Deliveries to CrewSinks.
    pub notify: NotifyArgs,
    /// The archive's connection, when there is one (read at start: `ArchiveArgs::connection`).
    pub archive: Option<crate::archive::connect::ArchiveConnection>,
    /// `--archive-retention-days`.
    pub archive_retention_days: Option<u32>,
}

/// [`WorkerArgs`] with the policy made from them.
#[derive(Clone, Debug, Default)]
pub struct WorkerSettings {
    /// The flags.
    pub args: WorkerArgs,
    /// The policy they make.
    pub policy: WorkerPolicy,
}

impl From<WorkerArgs> for WorkerSettings {
    fn from(args: WorkerArgs) -> Self {
        WorkerSettings {
            policy: args.policy(),
            args,
        }
    }
}

impl Settings {
    /// The controller's part of `args`.
    pub fn of(args: &RunArgs) -> Settings {
        Settings {
            connection: args.connection.clone(),
            limits: args.limits.clone(),
            workers: args.workers.clone().into(),
            progress: args.progress.clone(),
            notify: args.notify.clone(),
            archive: None,
            archive_retention_days: args.archive.archive_retention_days,
        }
    }

    /// Settings watching only `namespace`, reporting as `instance`, the rest by default (tests, tools).
    pub fn for_namespace(namespace: Option<&str>, instance: &str) -> Settings {
        Settings {
            connection: ConnectionArgs {
                namespace: namespace.map(str::to_string),
                instance: Some(instance.to_string()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// With `workers` as the worker flags.
    pub fn with_workers(mut self, workers: WorkerArgs) -> Settings {
        self.workers = workers.into();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: RunArgs,
    }

    /// The `Default` of every group is what `crew-operator run` with no flag gives (tests and tools build settings
    /// with `Default`, the binary with clap: they must agree).
    #[test]
    fn defaults_equal_the_flags_defaults() {
        let parsed = Cli::try_parse_from(["crew-operator"]).unwrap().args;
        let default = RunArgs::default();
        assert_eq!(parsed.connection, default.connection);
        assert_eq!(parsed.limits, default.limits);
        assert_eq!(parsed.workers, default.workers);
        assert_eq!(parsed.progress, default.progress);
        assert_eq!(parsed.notify, default.notify);
        assert_eq!(parsed.leader, default.leader);
        assert_eq!(parsed.telemetry, default.telemetry);
        assert_eq!(
            default.progress.progress_addr.to_string(),
            DEFAULT_PROGRESS_ADDR
        );
        assert_eq!(
            default.telemetry.metrics_addr.to_string(),
            DEFAULT_METRICS_ADDR
        );
    }

    #[test]
    fn worker_flags_open_and_extend_the_policy() {
        let args = Cli::try_parse_from([
            "crew-operator",
            "--worker-service-account",
            "a,b",
            "--deny-pod-annotation",
            "x.io/*",
            "--allow-pod-annotation",
            "sidecar.istio.io/*",
        ])
        .unwrap()
        .args;
        let policy = args.workers.policy();
        assert_eq!(policy.service_accounts, ["a", "b"]);
        assert_eq!(policy.allowed_pod_keys, ["sidecar.istio.io/*"]);
        assert!(policy.denied_pod_keys.iter().any(|k| k == "x.io/*"));
        assert!(policy.denied_pod_keys.len() > 1, "the default list stays");
    }
}
