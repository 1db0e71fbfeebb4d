//! `crew-operator`: the operator binary.

use clap::{Parser, Subcommand};
use crew_operator::controller::Operator;
use crew_operator::leader;
use crew_operator::settings::{RunArgs, Settings};
use crew_operator::shutdown;
use crew_operator::telemetry;

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
    telemetry::init(args.telemetry.log_format, &args.telemetry.log_level);
    let connection = &args.connection;
    let leader_config = args.leader.config(
        connection.namespace.as_deref(),
        connection.instance.as_deref(),
    );
    if let Some(leader) = &leader_config {
        leader.validate()?;
    }
    let client = crew_operator::client::connect(
        connection.context.as_deref(),
        connection.max_api_requests.map(usize::from),
    )
    .await?;
    let mut settings = Settings::of(&args);
    settings.archive = args.archive.connection()?;
    if let Some(archive) = &settings.archive {
        crew_operator::archive::connect::pool(archive)?;
        tracing::info!(database = ?archive, "archiving finished executions");
    }
    // Under leader election the Events report the leader's identity.
    if let Some(leader) = &leader_config {
        settings.connection.instance = Some(leader.identity.clone());
    }
    tracing::info!(namespace = ?settings.connection.namespace, version = env!("CARGO_PKG_VERSION"),
        "crew-operator starting");
    let operator = Operator::new(client, settings);
    let ctx = operator.context();
    let metrics_addr = args.telemetry.metrics_addr;
    let listener = tokio::net::TcpListener::bind(metrics_addr).await?;
    tracing::info!(addr = %metrics_addr, "serving /metrics, /healthz, /readyz");
    let http = tokio::spawn(crew_operator::http::serve(listener, ctx.clone()));
    // Workers learn the endpoint's URL from `--progress-url`; without it none can report, and nothing listens.
    let progress = match &args.progress.progress_url {
        Some(url) => {
            let progress_addr = args.progress.progress_addr;
            let listener = tokio::net::TcpListener::bind(progress_addr).await?;
            tracing::info!(addr = %progress_addr, %url, "serving POST /v1/progress");
            let endpoint = crew_operator::progress::endpoint::Endpoint::new(ctx.clone());
            Some(tokio::spawn(crew_operator::progress::endpoint::serve(
                listener, endpoint,
            )))
        }
        None => {
            tracing::info!(
                "no --progress-url: workers cannot report progress, the endpoint is off"
            );
            None
        }
    };
    // The archive's read API: on every replica (it only reads), when there is an archive and an address for it.
    let archive_api = match (&ctx.settings.archive, args.archive.archive_addr) {
        (Some(archive), Some(addr)) => {
            let pool = crew_operator::archive::connect::pool_of(
                archive,
                crew_operator::archive::serve::READ_POOL_SIZE,
            )?;
            let listener = tokio::net::TcpListener::bind(addr).await?;
            tracing::info!(%addr, "serving the archive's read API");
            let api = crew_operator::archive::serve::ArchiveApi::new(pool, ctx.client.clone());
            Some(tokio::spawn(crew_operator::archive::serve::serve(
                listener, api,
            )))
        }
        (None, Some(_)) => return Err("--archive-addr needs --archive-url".into()),
        _ => None,
    };
    match leader_config {
        None => operator.run(shutdown::signal()).await,
        Some(leader) => {
            tracing::info!(lease = %leader.lease_name, namespace = %leader.namespace, identity = %leader.identity,
                "leader election on: standing by until this replica holds the Lease");
            if let Err(lost) = leader::run_when_leading(operator, leader, shutdown::signal()).await
            {
                // I8: stop at once; no in-flight reconcile may write after the lease is gone.
                tracing::error!(%lost, "lost leadership; exiting");
                std::process::exit(1);
            }
        }
    }
    http.abort();
    if let Some(archive_api) = archive_api {
        archive_api.abort();
    }
    if let Some(progress) = progress {
        progress.abort();
    }
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
