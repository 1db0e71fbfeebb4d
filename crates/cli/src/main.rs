//! `kubectl-crew`: CrewExecutions at a terminal. On `PATH` it is `kubectl crew …`.
//!
//! Layout: [`args`] (the command line), [`selection`] (what a bulk command targets), [`cluster`] (connection and paginated reads), [`view`] (pure rendering,
//! golden-tested at a fixed clock), [`cmd`] (the commands), [`dashboard`] (the web dashboard's server), [`error`] (messages a user can act on).

#![forbid(unsafe_code)]

mod archive;
mod args;
mod clock;
mod cluster;
mod cmd;
mod dashboard;
mod error;
mod output;
mod selection;
mod slim;
mod view;

use args::{Cli, Command};
use clap::{CommandFactory, Parser};
use cluster::Cluster;
use error::{CliError, Exit};
use view::bulk::Operation;

fn main() {
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(exit) => exit.code(),
        Err(e) => {
            output::note(&format!("error: {e}\n"));
            Exit::Failed.code()
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> Result<Exit, CliError> {
    if let Command::Completion(args) = &cli.command {
        let mut out = Vec::new();
        clap_complete::generate(args.shell, &mut Cli::command(), "kubectl-crew", &mut out);
        output::print(&String::from_utf8_lossy(&out))?;
        return Ok(Exit::Ok);
    }
    // What a bulk command targets is decided before connecting, so a refused selection never reaches a server.
    if let Some(bulk) = cli.command.bulk() {
        selection::of(bulk)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        if let Command::Dashboard(args) = &cli.command {
            return dashboard::run(&cli.target, args).await;
        }
        if let Some(exit) = archived(&cli).await? {
            return Ok(exit);
        }
        let cluster = Cluster::connect(&cli.target).await?;
        match &cli.command {
            Command::List(args) => cmd::list::run(&cluster, args).await,
            Command::Describe(args) => cmd::describe::describe(&cluster, &args.name).await,
            Command::History(args) => cmd::describe::history(&cluster, &args.name).await,
            Command::Watch(args) => cmd::watch::run(&cluster, args).await,
            Command::Stats(args) => cmd::stats::run(&cluster, args).await,
            Command::Cancel(args) => {
                cmd::bulk::run(&cluster, Operation::Cancel, args, &Default::default()).await
            }
            Command::Suspend(args) => {
                cmd::bulk::run(&cluster, Operation::Suspend, args, &Default::default()).await
            }
            Command::Resume(args) => {
                cmd::bulk::run(&cluster, Operation::Resume, args, &Default::default()).await
            }
            Command::Delete(args) => {
                cmd::bulk::run(&cluster, Operation::Delete, args, &Default::default()).await
            }
            Command::Rerun(args) => cmd::bulk::rerun(&cluster, args).await,
            Command::Retry(args) => cmd::bulk::retry(&cluster, args).await,
            Command::Result(args) => cmd::result::run(&cluster, args).await,
            Command::Logs(args) => cmd::logs::run(&cluster, args).await,
            Command::Completion(_) | Command::Dashboard(_) => Ok(Exit::Ok),
        }
    })
}

/// The `--archived` forms, read from the archive instead of the cluster (None: not asked for).
async fn archived(cli: &Cli) -> Result<Option<Exit>, CliError> {
    let target = &cli.target;
    let wants = match &cli.command {
        Command::List(args) => args.archived,
        Command::Describe(args) | Command::History(args) => args.archived,
        Command::Result(args) => args.archived,
        Command::Stats(args) => args.archived,
        _ => false,
    };
    if !wants {
        return Ok(None);
    }
    // The namespace as kubectl picks it (-n, else the context's), without asking the API server anything.
    let config = cluster::config_of(target).await?;
    let namespace = target
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let scope = (!target.all_namespaces).then(|| namespace.clone());
    let one = || -> Result<&str, CliError> {
        if target.all_namespaces {
            return Err(CliError::Usage(
                "a name needs one namespace: use -n instead of -A".into(),
            ));
        }
        Ok(&namespace)
    };
    let exit = match &cli.command {
        Command::List(args) => cmd::archived::list(target, scope, args).await?,
        Command::Describe(args) => cmd::archived::describe(target, one()?, &args.name).await?,
        Command::History(args) => cmd::archived::history(target, one()?, &args.name).await?,
        Command::Result(args) => cmd::archived::result(target, one()?, args).await?,
        Command::Stats(args) => cmd::archived::stats(target, scope, args).await?,
        _ => return Ok(None),
    };
    Ok(Some(exit))
}
