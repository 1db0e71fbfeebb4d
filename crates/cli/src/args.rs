//! The command line: kubectl's connection flags, then one subcommand.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// kubectl crew: CrewExecutions at a terminal (progress, summaries, statistics, bulk operations).
#[derive(Debug, Parser)]
#[command(name = "kubectl-crew", bin_name = "kubectl crew", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub command: Command,
}

/// Which cluster and namespace, as kubectl says it.
#[derive(Debug, Args, Clone)]
pub struct Target {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then the in-cluster account).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace (default: the context's namespace, else `default`).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE", value_parser = non_empty)]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
    /// Objects per page of a list (lists are always paginated, as kubectl's are).
    #[arg(long, global = true, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub chunk_size: u32,
    /// The operator's archive read API, for `--archived` (e.g. `http://127.0.0.1:8082` through
    /// `kubectl port-forward svc/crew-operator-archive 8082`); asked with your kubeconfig's credentials.
    #[arg(long, global = true, value_name = "URL", env = "CREW_ARCHIVE_SERVER")]
    pub archive_server: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List executions: phase, a progress bar, the running step, queue, duration.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Everything about one execution: summary, steps, conditions, history, Events, Jobs, and why it waits.
    Describe(NameArg),
    /// Live progress of executions until all have finished; exit 0 if all succeeded, 1 if any failed or was
    /// cancelled, 2 on --timeout.
    Watch(WatchArgs),
    /// The phase transitions of one execution, with the time spent in each phase.
    History(NameArg),
    /// Totals, success rate, durations, slowest steps and top failure reasons.
    Stats(StatsArgs),
    /// Cancel executions (irreversible): sets spec.cancel.
    Cancel(BulkArgs),
    /// Pause executions: sets spec.suspend (a running step finishes first).
    Suspend(BulkArgs),
    /// Resume paused executions: clears spec.suspend.
    Resume(BulkArgs),
    /// Run executions again: a new execution from each one's spec, labelled crew.dev/rerun-of, without the
    /// labels GitOps tools track their objects by (Argo CD's and Flux's; annotations are never copied).
    Rerun(RerunArgs),
    /// Delete executions (their Jobs and ConfigMaps go with them).
    Delete(BulkArgs),
    /// Run a Failed or Cancelled execution again from the step it stopped at: a new execution that takes over the
    /// steps before it (their outcomes and results) and runs no Job for them (spec.resumeFrom).
    Retry(RetryArgs),
    /// A step's full result: what its worker posted (read from its ConfigMap and checked against the recorded
    /// SHA-256), else its termination message.
    Result(ResultArgs),
    /// A step's worker log.
    Logs(LogsArgs),
    /// A web dashboard on this machine: live runs with progress bars, each run's step timeline, queues and
    /// statistics, read with your own kubeconfig credentials (it sees what kubectl lets you see). Read-only unless
    /// --allow-actions.
    Dashboard(DashboardArgs),
    /// Shell completion script.
    Completion(CompletionArgs),
}

impl Command {
    /// The targets of a bulk command (`cancel`, `suspend`, `resume`, `rerun`, `delete`).
    pub fn bulk(&self) -> Option<&BulkArgs> {
        match self {
            Command::Cancel(args)
            | Command::Suspend(args)
            | Command::Resume(args)
            | Command::Delete(args) => Some(args),
            Command::Rerun(args) => Some(&args.bulk),
            _ => None,
        }
    }
}

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Where to listen. Keep it on loopback: the dashboard acts with your credentials (a session token in the
    /// printed link guards it, and requests for another host name are refused).
    #[arg(long, default_value = "127.0.0.1:8765", value_name = "HOST:PORT")]
    pub address: std::net::SocketAddr,
    /// Print the link instead of opening a browser.
    #[arg(long)]
    pub no_browser: bool,
    /// Allow cancel, suspend, resume and rerun from the page (each a Kubernetes request made as you, the same
    /// patches as `kubectl crew cancel|suspend|resume|rerun`). Without it every write answers 403.
    #[arg(long)]
    pub allow_actions: bool,
    /// Serve many users from inside the cluster (the Helm chart's `dashboard`): every request brings its user's
    /// bearer token (`Authorization` from an authenticating proxy, or the page's sign-in) and is made with it, so the
    /// API server authorizes each with that user's rights. The dashboard's own credentials (its ServiceAccount, or
    /// --kubeconfig) only create TokenReviews. No link, no session token.
    #[arg(long)]
    pub in_cluster: bool,
}

#[derive(Debug, Args)]
pub struct NameArg {
    /// The execution's name.
    #[arg(value_parser = non_empty)]
    pub name: String,
    /// Read it from the archive (`--archive-server`): a run that is gone, as it was when it finished.
    #[arg(long)]
    pub archived: bool,
}

/// Which executions a listing covers.
#[derive(Debug, Args, Clone, Default)]
pub struct Filter {
    /// Label selector (`-l team=a,env!=prod`).
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR", value_parser = selector)]
    pub selector: Option<String>,
    /// Only these phases (comma-separated: `Running,Queued`).
    #[arg(long, value_name = "PHASE", value_delimiter = ',', value_parser = non_empty)]
    pub phase: Vec<String>,
    /// Only executions of this CrewQueue.
    #[arg(long, value_name = "QUEUE", value_parser = non_empty)]
    pub queue: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub filter: Filter,
    /// Sort by this column (default: namespace, then name).
    #[arg(long, value_enum)]
    pub sort_by: Option<SortKey>,
    /// Output format.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<ListFormat>,
    /// Leave the header line out.
    #[arg(long)]
    pub no_headers: bool,
    /// After the list, print a line for every change (as `kubectl get -w`).
    #[arg(short = 'w', long, conflicts_with = "archived")]
    pub watch: bool,
    /// List the archive (`--archive-server`): finished runs, newest first, also those that are gone.
    #[arg(long)]
    pub archived: bool,
    /// With `--archived`: only runs that failed in this step.
    #[arg(long, value_name = "STEP", value_parser = non_empty, requires = "archived")]
    pub failed_step: Option<String>,
    /// With `--archived`: only runs that finished within this long (`24h`, `7d`).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", requires = "archived")]
    pub since: Option<std::time::Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortKey {
    Name,
    Age,
    Phase,
    Duration,
    Progress,
    Priority,
    Queue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// More columns: priority, reason, message.
    Wide,
    Json,
    Yaml,
    /// `crewexecution.crew.dev/<name>`, one per line.
    Name,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Executions to watch (default: every execution the selector or namespace holds).
    #[arg(value_parser = non_empty)]
    pub names: Vec<String>,
    /// Label selector.
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR", value_parser = selector)]
    pub selector: Option<String>,
    /// Give up after this long (`90s`, `10m`, `1h`) and exit 2.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub filter: Filter,
    /// Only executions created within this long (`24h`, `7d`, `30m`); with `--archived`, finished within it
    /// (default 30d).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub since: Option<std::time::Duration>,
    /// Output format.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<StatsFormat>,
    /// Statistics of the archive (`--archive-server`): every run it stored, from its rollups (by queue, by day, by
    /// failed step).
    #[arg(long)]
    pub archived: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatsFormat {
    Json,
}

/// The targets of a bulk operation and how to carry it out.
#[derive(Debug, Args)]
pub struct BulkArgs {
    /// Executions by name.
    #[arg(value_parser = non_empty)]
    pub names: Vec<String>,
    #[command(flatten)]
    pub filter: Filter,
    /// Every execution of the namespace (with -n) or of every namespace (with -A). Required when the selection
    /// would match them all anyway (no names and no filter, or `--phase` naming every phase), as kubectl requires it.
    #[arg(long)]
    pub all: bool,
    /// List the targets and the change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask before changing more than 10 executions.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// How many requests run at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallel: u16,
}

#[derive(Debug, Args)]
pub struct RerunArgs {
    #[command(flatten)]
    pub bulk: BulkArgs,
    /// Name of the new execution (one target only; default: `generateName: <name>-`, the name shortened with a
    /// hash when longer than 57 characters).
    #[arg(long, value_name = "NAME", value_parser = non_empty)]
    pub name: Option<String>,
    /// Start at this step, taking over the outcomes and results of the steps before it from the original (which
    /// must have succeeded there); the original is not modified.
    #[arg(long, value_name = "STEP", value_parser = non_empty)]
    pub from_step: Option<String>,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The Failed or Cancelled execution.
    #[arg(value_parser = non_empty)]
    pub name: String,
    /// Name of the new execution (default: `generateName: <name>-`).
    #[arg(long, value_name = "NAME", value_parser = non_empty)]
    pub new_name: Option<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The execution's name.
    #[arg(value_parser = non_empty)]
    pub name: String,
    /// The step (default: the running step, else the last one that ran).
    #[arg(long, value_name = "STEP", value_parser = non_empty)]
    pub step: Option<String>,
    /// The attempt (default: the step's latest).
    #[arg(long, value_name = "N")]
    pub attempt: Option<u32>,
    /// Stream the log while the worker runs.
    #[arg(short = 'f', long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct ResultArgs {
    /// The execution's name.
    #[arg(value_parser = non_empty)]
    pub name: String,
    /// The step (default: the last step with a result).
    #[arg(long, value_name = "STEP", value_parser = non_empty)]
    pub step: Option<String>,
    /// `raw`: the result as posted; `json`: it with its step, attempt, source, size and SHA-256.
    #[arg(short = 'o', long, value_enum, default_value_t = ResultFormat::Raw)]
    pub output: ResultFormat,
    /// Read it from the archive (`--archive-server`), after the run is gone.
    #[arg(long)]
    pub archived: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResultFormat {
    Raw,
    Json,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// A value that says something: an empty one (`--queue "$QUEUE"` with `QUEUE` unset) is refused before any
/// request, never sent as a filter that matches everything (or nothing in particular).
pub fn non_empty(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("the value is empty: give one, or leave the option out".into());
    }
    Ok(text.to_string())
}

/// A label selector with at least one requirement: `""`, `" "` or `","` would select everything.
pub fn selector(text: &str) -> Result<String, String> {
    if text.chars().all(|c| c == ',' || c.is_whitespace()) {
        return Err(
            "the selector is empty, which would select everything: give a requirement (`team=a`), \
             or leave -l out (bulk commands take --all for everything)"
                .into(),
        );
    }
    Ok(text.to_string())
}

/// `90s`, `10m`, `2h`, `7d`, `1h30m`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(seconds));
    }
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(format!("`{text}`: unknown unit `{c}` (use s, m, h or d)")),
        };
        let n: u64 = number
            .parse()
            .map_err(|_| format!("`{text}`: a number must come before `{c}`"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() {
        return Err(format!("`{text}`: the last number has no unit"));
    }
    if total == 0 {
        return Err(format!("`{text}`: give a duration such as 90s, 10m or 24h"));
    }
    Ok(std::time::Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn empty_values_are_refused() {
        assert!(non_empty("").is_err());
        assert!(non_empty("  ").is_err());
        assert_eq!(non_empty("gpu").unwrap(), "gpu");
        for empty in ["", " ", ",", " , "] {
            assert!(selector(empty).is_err(), "{empty:?}");
        }
        assert_eq!(selector("team=a,env!=prod").unwrap(), "team=a,env!=prod");
        assert_eq!(selector("!canary").unwrap(), "!canary");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("7d").unwrap().as_secs(), 604_800);
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5m3").is_err());
        assert!(parse_duration("0s").is_err());
    }
}
