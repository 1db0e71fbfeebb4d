//! crew-bench: measures the operator against a baseline. For every (N, steps) it runs, each on a fresh local
//! control plane (etcd + kube-apiserver + kube-controller-manager + kube-scheduler, see `crew_testkit`) with
//! KWOK playing the kubelet:
//!
//! - the **operator** run: N CrewExecutions of `steps` steps, run by `crew-operator` as its own process;
//! - the **baseline** run: no operator; the benchmark chains the same bare Jobs itself.
//!
//! It reports wall time, throughput, latencies, API requests (from kube-apiserver's `/metrics`), the operator's
//! writes per execution, peak RSS and CPU, prints a table and writes JSON. Run it through `make bench`.

use crew_bench as bench;

use bench::harness::RunConfig;
use bench::report::{BenchConfig, Mode, PairResult, Report, RunResult, render, render_pair};
use bench::{run_baseline, run_operator};
use clap::Parser;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Benchmarks crew-operator against a baseline that chains bare Jobs itself (see BENCHMARKS.md).
#[derive(Debug, Parser)]
#[command(name = "crew-bench", version)]
struct Args {
    /// Numbers of executions (chains), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1000, 10000])]
    sizes: Vec<usize>,
    /// Steps per execution, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 3])]
    steps: Vec<usize>,
    /// Namespaces the executions are spread over (round-robin).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=99))]
    namespaces: u64,
    /// Where the JSON report goes.
    #[arg(long, default_value = "target/bench/results.json")]
    out: PathBuf,
    /// kube-controller-manager --kube-api-qps (burst twice that), the same for both runs.
    #[arg(long, default_value_t = 500)]
    api_qps: u32,
    /// Create calls in flight at most.
    #[arg(long, default_value_t = 48)]
    concurrency: usize,
    /// Limit on one run's work in seconds (0: 300 + N x steps / 10).
    #[arg(long, default_value_t = 0)]
    timeout_secs: u64,
    /// Log filter of the operator process (its --log-level and RUST_LOG).
    #[arg(long, default_value = "warn")]
    operator_log: String,
    /// Keep every run's directory (control-plane and operator logs); failed runs' are always kept.
    #[arg(long)]
    keep_dirs: bool,
    /// Delete each finished Job (and so its pod) once its outcome is read, in both runs: `on`, `off`, or `auto`
    /// (on when N x steps exceeds 12 500, the controller manager's terminated-pod limit; see BENCHMARKS.md).
    #[arg(long, value_enum, default_value_t = JobCleanupChoice::Auto)]
    job_cleanup: JobCleanupChoice,
    /// The operator runs with a CrewSink in every namespace, delivering every event to a receiver in this process:
    /// the figures then include the finalizer and sink status writes and the delivery latency.
    #[arg(long)]
    sink: bool,
    /// The operator archives every execution in a PostgreSQL of its own: the figures then include the archive's
    /// finalizer and `Archived` condition writes, and how long the archive takes to catch up.
    #[arg(long)]
    archive: bool,
    /// Extra arguments for `crew-operator run`, whitespace-separated (e.g. "--max-api-requests 64").
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    operator_args: String,
    /// Run the operator only (for comparing operator settings; the table shows no ratio).
    #[arg(long)]
    skip_baseline: bool,
    /// Instead of the cluster runs: measure admission in one queue of this many executions, without a cluster
    /// (the queue book against a pass over every member).
    #[arg(long)]
    admission: Option<usize>,
    /// maxRunning of the `--admission` queue.
    #[arg(long, default_value_t = 50)]
    admission_limit: u32,
    /// Instead of the operator runs: time `kubectl-crew` (list -A, stats -A, a bulk cancel by selector) over this
    /// many executions (see BENCHMARKS.md, "The CLI").
    #[arg(long)]
    cli: Option<usize>,
    /// How many of the `--cli` executions the bulk cancel targets.
    #[arg(long, default_value_t = 1000)]
    cli_cancel: usize,
    /// The `kubectl-crew` binary for `--cli` (default: beside this one).
    #[arg(long)]
    cli_bin: Option<PathBuf>,
    /// Instead of the operator runs: this many workers post progress reports (`--progress-rate` a second for
    /// `--progress-seconds`); measures the status writes they cost (see BENCHMARKS.md, "Progress reports").
    #[arg(long)]
    progress: Option<usize>,
    /// How long the `--progress` workers post.
    #[arg(long, default_value_t = 60)]
    progress_seconds: u64,
    /// Reports per second of each `--progress` worker.
    #[arg(long, default_value_t = 10)]
    progress_rate: u32,
    /// Instead of the operator runs: this many executions wait in one CrewQueue while nothing moves; measures the
    /// operator's CPU, reconciles and writes over `--queue-idle-seconds` (see BENCHMARKS.md).
    #[arg(long)]
    queue_idle: Option<usize>,
    /// Instead of the cluster runs: archive this many finished executions in a PostgreSQL of its own and time the
    /// archive's reads at that size (see BENCHMARKS.md, "The archive").
    #[arg(long)]
    archive_scale: Option<usize>,
    /// How long the `--queue-idle` operator is watched while nothing moves.
    #[arg(long, default_value_t = 70)]
    queue_idle_seconds: u64,
}

/// Whether the runs delete finished Jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum JobCleanupChoice {
    /// When N x steps exceeds [`TERMINATED_POD_LIMIT`].
    Auto,
    On,
    Off,
}

/// kube-controller-manager's default `--terminated-pod-gc-threshold`: past it, the pod garbage collector deletes
/// finished pods one by one, competing with the Job controller (BENCHMARKS.md, N = 10 000 on v1.37).
const TERMINATED_POD_LIMIT: usize = 12_500;

impl JobCleanupChoice {
    fn applies(self, n: usize, steps: usize) -> bool {
        match self {
            JobCleanupChoice::Auto => n * steps > TERMINATED_POD_LIMIT,
            JobCleanupChoice::On => true,
            JobCleanupChoice::Off => false,
        }
    }
}

fn machine() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert(
        "nproc".into(),
        std::thread::available_parallelism().map_or("?".into(), |n| n.to_string()),
    );
    let read = |path: &str, key: &str| {
        std::fs::read_to_string(path).ok().and_then(|text| {
            text.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
    };
    if let Some(model) = read("/proc/cpuinfo", "model name") {
        out.insert("cpu_model".into(), model);
    }
    if let Some(mem) = read("/proc/meminfo", "MemTotal") {
        out.insert("memory".into(), mem);
    }
    out
}

fn write_json(path: &Path, report: &Report) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("write {}: {e}", path.display()))
}

/// `--cli N`.
async fn cli_bench(args: &Args, n: usize) -> ExitCode {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("kubectl-crew")));
    let Some(cli) = args.cli_bin.clone().or(beside) else {
        eprintln!("no kubectl-crew binary: pass --cli-bin");
        return ExitCode::FAILURE;
    };
    let bench = bench::cli::CliBench {
        n,
        cancel: args.cli_cancel.min(n),
        namespaces: args.namespaces as usize,
        concurrency: args.concurrency,
        api_qps: args.api_qps,
        cli: &cli,
    };
    match bench::cli::run(&bench).await {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("crew-bench --cli: {e}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(n) = args.admission {
        println!(
            "{}",
            bench::admission::compare(n, args.admission_limit.max(1))
        );
        return ExitCode::SUCCESS;
    }
    if let Some(n) = args.cli {
        return cli_bench(&args, n).await;
    }
    if let Some(n) = args.archive_scale {
        return match bench::archive_scale::run(n).await {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("crew-bench --archive-scale: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(waiting) = args.queue_idle {
        let bench = bench::queue_idle::QueueIdleBench {
            waiting,
            seconds: args.queue_idle_seconds,
            concurrency: args.concurrency,
            api_qps: args.api_qps,
        };
        return match bench::queue_idle::run(&bench).await {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("crew-bench --queue-idle: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(workers) = args.progress {
        let bench = bench::progress::ProgressBench {
            workers,
            seconds: args.progress_seconds,
            per_second: args.progress_rate,
            api_qps: args.api_qps,
        };
        return match bench::progress::run(&bench).await {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("crew-bench --progress: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let namespaces = args.namespaces as usize;
    let mut report = Report {
        schema: 1,
        started_at: jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .map_or_else(|_| String::new(), |t| t.to_string()),
        config: BenchConfig {
            sizes: args.sizes.clone(),
            steps: args.steps.clone(),
            namespaces,
            api_qps: args.api_qps,
            concurrency: args.concurrency,
            kubernetes_version: crew_testkit::kubernetes_version(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
        },
        machine: machine(),
        results: Vec::new(),
    };
    let mut all_completed = true;
    for &n in &args.sizes {
        for &steps in &args.steps {
            if n == 0 || steps == 0 || steps > crew_api::execution::MAX_STEPS {
                eprintln!("skipping N={n} steps={steps}: N must be > 0 and steps in 1..=64");
                continue;
            }
            let timeout = if args.timeout_secs > 0 {
                Duration::from_secs(args.timeout_secs)
            } else {
                Duration::from_secs(300 + (n * steps / 10) as u64)
            };
            let config = RunConfig {
                n,
                steps,
                namespaces,
                api_qps: args.api_qps,
                concurrency: args.concurrency.max(1),
                timeout,
                operator_log: args.operator_log.clone(),
                operator_args: args
                    .operator_args
                    .split_whitespace()
                    .map(String::from)
                    .collect(),
                keep_dirs: args.keep_dirs,
                job_cleanup: args.job_cleanup.applies(n, steps),
                sink: args.sink,
                archive: args.archive,
            };
            eprintln!(
                "N={n} steps={steps}: operator run on a fresh control plane{}",
                if config.job_cleanup {
                    " (finished Jobs deleted)"
                } else {
                    ""
                }
            );
            let operator = run_operator::run(&config).await;
            let baseline = if args.skip_baseline {
                RunResult::failed(Mode::Baseline, n, steps, "skipped (--skip-baseline)".into())
            } else {
                eprintln!("N={n} steps={steps}: baseline run on a fresh control plane");
                run_baseline::run(&config).await
            };
            let pair = PairResult::new(operator, baseline);
            all_completed &=
                pair.operator.completed && (args.skip_baseline || pair.baseline.completed);
            eprintln!("{}", render_pair(&pair));
            report.results.push(pair);
            if let Err(e) = write_json(&args.out, &report) {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("{}", render(&report));
    println!("JSON: {}", args.out.display());
    if all_completed {
        ExitCode::SUCCESS
    } else {
        eprintln!("at least one run did not complete (see the table)");
        ExitCode::FAILURE
    }
}
