//! `stats`.

use crate::args::{StatsArgs, StatsFormat};
use crate::clock::now;
use crate::cluster::Cluster;
use crate::error::{CliError, Exit};
use crate::output::{print, stdout_is_terminal};
use crate::view::stats::{compute, render};
use crate::view::style::Style;

pub async fn run(cluster: &Cluster, args: &StatsArgs) -> Result<Exit, CliError> {
    let items = cluster.executions(&args.filter).await?;
    let scope = cluster.namespace.clone().unwrap_or_else(|| "*".into());
    let stats = compute(&items, &scope, args.since, now());
    match args.output {
        Some(StatsFormat::Json) => {
            let json = serde_json::to_string_pretty(&stats)
                .map_err(|e| CliError::Config(format!("cannot print JSON: {e}")))?;
            print(&format!("{json}\n"))?
        }
        None => print(&render(&stats, Style::detect(stdout_is_terminal())))?,
    }
    Ok(Exit::Ok)
}
