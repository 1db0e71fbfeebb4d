//! crew-pod-simulator: plays the kubelet for the worker pods of crew-operator's Jobs on a control plane
//! without nodes (see `crew_operator::simulator`). Uses KUBECONFIG / in-cluster config.

use clap::{Parser, ValueEnum};
use crew_operator::simulator::{self, SimulatorConfig, parse_duration};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Simulates the kubelet for pods matching a selector: Running after a start delay, then Succeeded or
/// Failed after a duration. Per-pod overrides via sim.crew.dev/{duration,exit-code,message,fail-attempts,hang}
/// annotations.
#[derive(Debug, Parser)]
#[command(name = "crew-pod-simulator", version)]
struct Args {
    /// Namespace to watch (default: all namespaces).
    #[arg(long, short = 'n', env = "SIM_NAMESPACE")]
    namespace: Option<String>,
    /// Label selector of the pods to simulate.
    #[arg(long, env = "SIM_SELECTOR", default_value = "crew.dev/execution")]
    selector: String,
    /// Default time from Running to terminated (e.g. 1s, 500ms, 0s).
    #[arg(long, env = "SIM_DURATION", default_value = "1s", value_parser = parse_duration)]
    duration: Duration,
    /// Default exit code (0 = Succeeded, else Failed).
    #[arg(
        long,
        env = "SIM_EXIT_CODE",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    exit_code: i32,
    /// Delay from seeing a pod to marking it Running (e.g. 0s, 200ms).
    #[arg(long, env = "SIM_START_DELAY", default_value = "0s", value_parser = parse_duration)]
    start_delay: Duration,
    /// Log format. Log level via RUST_LOG (default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(e) => {
            error!(error = %e, "cannot create a Kubernetes client (KUBECONFIG / in-cluster config)");
            return ExitCode::FAILURE;
        }
    };
    let config = SimulatorConfig {
        namespace: args.namespace,
        label_selector: args.selector,
        default_duration: args.duration,
        default_exit_code: args.exit_code,
        start_delay: args.start_delay,
    };
    tokio::select! {
        result = simulator::run(client, config) => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                error!(error = %e, "pod simulator failed");
                ExitCode::FAILURE
            }
        },
        // Dropping the run future aborts every pod task.
        () = crew_operator::shutdown::signal() => {
            info!("stop requested; shutting down");
            ExitCode::SUCCESS
        }
    }
}
