//! `crew-operator`: the operator binary.

use clap::{Parser, Subcommand};
use crew_operator::controller::{self, ControllerConfig};
use crew_operator::telemetry::{self, LogFormat};
use kube::config::{KubeConfigOptions, Kubeconfig};

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
    Run(RunArgs),
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
    /// Address of the HTTP server for /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080", env = "CREW_METRICS_ADDR")]
    metrics_addr: std::net::SocketAddr,
    /// Name reported as the Event reporting instance (default: $POD_NAME or the host name).
    #[arg(long, env = "POD_NAME")]
    instance: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => {
            for (_, yaml) in crew_operator::api::crds::crd_files()? {
                println!("---\n{yaml}");
            }
            Ok(())
        }
        Command::Run(args) => run(args).await,
    }
}

async fn run(args: RunArgs) -> Result<(), Box<dyn std::error::Error>> {
    telemetry::init(args.log_format, &args.log_level);
    let client = client(args.context.as_deref()).await?;
    let config = ControllerConfig {
        namespace: args.namespace,
        instance: args.instance,
        max_running: args.max_running,
    };
    tracing::info!(namespace = ?config.namespace, version = env!("CARGO_PKG_VERSION"), "crew-operator starting");
    let ctx = controller::context(client, &config);
    let listener = tokio::net::TcpListener::bind(args.metrics_addr).await?;
    tracing::info!(addr = %args.metrics_addr, "serving /metrics, /healthz, /readyz");
    let http = tokio::spawn(crew_operator::http::serve(listener, ctx.clone()));
    controller::run(ctx, config, None).await;
    http.abort();
    tracing::info!("crew-operator stopped");
    Ok(())
}

async fn client(context: Option<&str>) -> Result<kube::Client, Box<dyn std::error::Error>> {
    let config = match context {
        Some(context) => {
            let options = KubeConfigOptions {
                context: Some(context.to_string()),
                ..Default::default()
            };
            kube::Config::from_custom_kubeconfig(Kubeconfig::read()?, &options).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}
