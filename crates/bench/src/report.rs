//! The results: one [`RunResult`] per run, paired per (N, steps), rendered as a human table and as JSON.

use super::apiserver_metrics::{RequestDelta, RequestDiff};
use super::procstat::ProcSample;
use super::stats::Summary;
use super::timeline::Latencies;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Which kind of run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// CrewExecutions run by the operator (a separate process).
    Operator,
    /// The benchmark chains bare Jobs itself, no operator.
    Baseline,
}

/// The operator process's own figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OperatorFigures {
    /// `crew_api_writes_total` by kind.
    pub writes_by_kind: BTreeMap<String, u64>,
    /// `crew_api_writes_total` by kind divided by N.
    pub writes_per_execution: BTreeMap<String, f64>,
    /// All operator writes divided by N.
    pub writes_per_execution_total: f64,
    /// `crew_reconciles_total` by result.
    pub reconciles: BTreeMap<String, u64>,
    /// `crew_reconcile_errors_total` by kind.
    pub reconcile_errors: BTreeMap<String, u64>,
    /// Memory and CPU of the operator process at the end of the run (peak RSS = `VmHWM`).
    pub process: ProcSample,
    /// CPU seconds the operator spent between the first create and the end of the run.
    pub cpu_seconds_during_work: f64,
    /// Sockets the operator held open at the end of the run (idle pooled connections included).
    pub open_sockets: usize,
    /// What the run's CrewSink receiver saw (`--sink`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sink: Option<crate::sink_receiver::SinkFigures>,
    /// What the run's archive stored (`--archive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<ArchiveFigures>,
}

/// What an `--archive` run's database holds once every execution finished.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ArchiveFigures {
    /// Executions stored.
    pub stored: u64,
    /// From the last execution's end to the last one stored, in seconds.
    pub catch_up_seconds: f64,
}

/// The API server's view of a run: `apiserver_request_total` diffed over the run (every client: the benchmark,
/// KWOK, kube-controller-manager, kube-scheduler and, in operator runs, the operator).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ApiFigures {
    /// Requests whose verb writes.
    pub writes: u64,
    /// Writes divided by N.
    pub writes_per_chain: f64,
    /// Requests whose verb reads (GET, LIST, WATCH; a WATCH is counted when it ends).
    pub reads: u64,
    /// Every (verb, resource) that grew.
    pub requests: Vec<RequestDelta>,
    /// Responses with code >= 400.
    pub errors: Vec<RequestDelta>,
}

impl ApiFigures {
    /// Figures of `diff` for `n` chains.
    pub fn new(diff: RequestDiff, n: usize) -> Self {
        let writes = diff.writes();
        ApiFigures {
            writes,
            writes_per_chain: if n > 0 { writes as f64 / n as f64 } else { 0.0 },
            reads: diff.reads(),
            requests: diff.requests,
            errors: diff.errors,
        }
    }
}

/// Everything measured in one run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunResult {
    /// Operator or baseline.
    pub mode: Mode,
    /// Chains (executions) created.
    pub n: usize,
    /// Steps per chain.
    pub steps: usize,
    /// Every chain done, none failed, no error.
    pub completed: bool,
    /// Chains done.
    pub done: usize,
    /// Chains failed.
    pub failed: usize,
    /// Why the run stopped early, if it did.
    pub error: Option<String>,
    /// First create → last chain done, seconds.
    pub wall_seconds: f64,
    /// Chains done per second of wall time.
    pub throughput_per_second: f64,
    /// Latencies in milliseconds.
    pub latency_ms: Latencies,
    /// The API server's request counts over the run.
    pub api: ApiFigures,
    /// The operator's own figures (operator runs only).
    pub operator: Option<OperatorFigures>,
    /// CPU seconds each process spent over the run (etcd, kube-apiserver, kube-controller-manager,
    /// kube-scheduler, kwok, crew-bench, crew-operator).
    pub cpu_seconds: BTreeMap<String, f64>,
    /// Control-plane working directory, kept when the run failed (logs).
    pub kept_dir: Option<String>,
    /// Whether finished Jobs were deleted as the run went (`--job-cleanup`).
    #[serde(default)]
    pub job_cleanup: bool,
}

impl RunResult {
    /// A run that could not be carried out.
    pub fn failed(mode: Mode, n: usize, steps: usize, error: String) -> Self {
        RunResult {
            mode,
            n,
            steps,
            completed: false,
            done: 0,
            failed: 0,
            error: Some(error),
            wall_seconds: 0.0,
            throughput_per_second: 0.0,
            latency_ms: Latencies::default(),
            api: ApiFigures::default(),
            operator: None,
            cpu_seconds: BTreeMap::new(),
            kept_dir: None,
            job_cleanup: false,
        }
    }
}

/// Operator and baseline for one (N, steps).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PairResult {
    /// Chains.
    pub n: usize,
    /// Steps per chain.
    pub steps: usize,
    /// The operator run.
    pub operator: RunResult,
    /// The baseline run.
    pub baseline: RunResult,
    /// Operator throughput ÷ baseline throughput (both completed only).
    pub throughput_ratio: Option<f64>,
}

impl PairResult {
    /// Pairs two runs and computes the ratio.
    pub fn new(operator: RunResult, baseline: RunResult) -> Self {
        let throughput_ratio =
            (operator.completed && baseline.completed && baseline.throughput_per_second > 0.0)
                .then(|| operator.throughput_per_second / baseline.throughput_per_second);
        PairResult {
            n: operator.n,
            steps: operator.steps,
            operator,
            baseline,
            throughput_ratio,
        }
    }
}

/// How the benchmark was run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchConfig {
    /// N values.
    pub sizes: Vec<usize>,
    /// Steps values.
    pub steps: Vec<usize>,
    /// Namespaces the chains are spread over.
    pub namespaces: usize,
    /// kube-controller-manager `--kube-api-qps` (burst is twice that).
    pub api_qps: u32,
    /// Creates in flight at most.
    pub concurrency: usize,
    /// Control-plane version.
    pub kubernetes_version: String,
    /// The command line.
    pub command: String,
}

/// The whole report (what `--out` holds).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Report format version.
    pub schema: u32,
    /// Start time (RFC 3339, UTC).
    pub started_at: String,
    /// Configuration.
    pub config: BenchConfig,
    /// `nproc`, memory, CPU model.
    pub machine: BTreeMap<String, String>,
    /// One entry per (N, steps).
    pub results: Vec<PairResult>,
}

fn f(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.0}"))
}

fn pcts(s: &Summary) -> String {
    if s.count == 0 {
        return "-".to_string();
    }
    format!("{}/{}/{}", f(s.p50), f(s.p95), f(s.p99))
}

fn row(out: &mut String, label: &str, op: &str, base: &str) {
    let _ = writeln!(out, "  {label:<44} {op:>18} {base:>18}");
}

fn per_kind(op: &OperatorFigures) -> String {
    op.writes_per_execution
        .iter()
        .filter(|(_, v)| **v > 0.0)
        .map(|(k, v)| format!("{k} {v:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The human table of one pair.
pub fn render_pair(p: &PairResult) -> String {
    let (o, b) = (&p.operator, &p.baseline);
    let mut out = String::new();
    let cleanup = if o.job_cleanup || b.job_cleanup {
        " (finished Jobs deleted)"
    } else {
        ""
    };
    let _ = writeln!(out, "== N={} steps={}{cleanup} ==", p.n, p.steps);
    row(&mut out, "", "operator", "baseline");
    let status = |r: &RunResult| {
        let mut s = format!("{}/{}", r.done, r.n);
        if r.failed > 0 {
            s.push_str(&format!(" ({} failed)", r.failed));
        }
        if r.error.is_some() {
            s.push_str(" ERROR");
        }
        s
    };
    row(&mut out, "done", &status(o), &status(b));
    row(
        &mut out,
        "wall time (s)",
        &format!("{:.2}", o.wall_seconds),
        &format!("{:.2}", b.wall_seconds),
    );
    row(
        &mut out,
        "throughput (chains/s)",
        &format!("{:.1}", o.throughput_per_second),
        &format!("{:.1}", b.throughput_per_second),
    );
    row(
        &mut out,
        "create -> first Job seen p50/p95/p99 (ms)",
        &pcts(&o.latency_ms.create_to_first_job),
        &pcts(&b.latency_ms.create_to_first_job),
    );
    row(
        &mut out,
        "Job done -> next step's Job p50/p95/p99 (ms)",
        &pcts(&o.latency_ms.step_hop),
        &pcts(&b.latency_ms.step_hop),
    );
    row(
        &mut out,
        "last Job done -> Succeeded p50/p95/p99 (ms)",
        &o.latency_ms
            .last_step_to_done
            .as_ref()
            .map_or("-".into(), pcts),
        "n/a",
    );
    row(
        &mut out,
        "API writes (all clients), per chain",
        &format!("{} ({:.2})", o.api.writes, o.api.writes_per_chain),
        &format!("{} ({:.2})", b.api.writes, b.api.writes_per_chain),
    );
    row(
        &mut out,
        "API reads (GET/LIST/ended WATCH)",
        &o.api.reads.to_string(),
        &b.api.reads.to_string(),
    );
    if let Some(op) = &o.operator {
        row(
            &mut out,
            "operator writes per execution",
            &format!("{:.2}", op.writes_per_execution_total),
            "-",
        );
        let _ = writeln!(out, "    by kind: {}", per_kind(op));
        row(
            &mut out,
            "operator peak RSS (MiB) / CPU (s) / sockets",
            &format!(
                "{:.1} / {:.1} / {}",
                op.process.peak_rss_mib, op.process.cpu_seconds, op.open_sockets
            ),
            "-",
        );
        if let Some(sink) = &op.sink {
            let _ = writeln!(
                out,
                "    sink: {} received, {} distinct, {} completed; transition -> receiver p50/p99 {}/{} ms",
                sink.received,
                sink.distinct,
                sink.completed,
                sink.latency_p50_ms,
                sink.latency_p99_ms
            );
        }
        if let Some(archive) = &op.archive {
            let _ = writeln!(
                out,
                "    archive: {} stored; the last {:.1} s after the last run ended",
                archive.stored, archive.catch_up_seconds
            );
        }
        if !op.reconcile_errors.is_empty() {
            let _ = writeln!(out, "    reconcile errors: {:?}", op.reconcile_errors);
        }
    }
    let cpu = |r: &RunResult| {
        r.cpu_seconds
            .iter()
            .map(|(k, v)| format!("{k} {v:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "  CPU seconds, operator run: {}", cpu(o));
    let _ = writeln!(out, "  CPU seconds, baseline run: {}", cpu(b));
    let _ = writeln!(
        out,
        "  throughput ratio operator/baseline: {}",
        p.throughput_ratio.map_or_else(
            || "n/a (a run did not complete)".into(),
            |r| format!("{r:.2}")
        )
    );
    for (label, r) in [("operator", o), ("baseline", b)] {
        if let Some(e) = &r.error {
            let _ = writeln!(out, "  {label} run error: {e}");
        }
        if let Some(dir) = &r.kept_dir {
            let _ = writeln!(out, "  {label} run logs kept in {dir}");
        }
    }
    let _ = writeln!(
        out,
        "  API requests by verb and resource (operator | baseline):"
    );
    let count = |r: &RunResult| -> BTreeMap<(String, String), u64> {
        r.api
            .requests
            .iter()
            .map(|d| ((d.key().resource_path(), d.verb.clone()), d.count))
            .collect()
    };
    let (oc, bc) = (count(o), count(b));
    let keys: BTreeSet<_> = oc.keys().chain(bc.keys()).cloned().collect();
    for key in keys {
        let _ = writeln!(
            out,
            "    {:<8} {:<44} {:>8} | {:>8}",
            key.1,
            key.0,
            oc.get(&key).copied().unwrap_or(0),
            bc.get(&key).copied().unwrap_or(0)
        );
    }
    for (label, r) in [("operator", o), ("baseline", b)] {
        for e in &r.api.errors {
            let _ = writeln!(
                out,
                "    {label} run: {} x {} {} -> {}",
                e.count,
                e.verb,
                e.key().resource_path(),
                e.code.as_deref().unwrap_or("?")
            );
        }
    }
    out
}

/// One summary line per pair, then each pair's table.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "crew-bench: control plane {} (kube-controller-manager --kube-api-qps {}), {} namespaces",
        report.config.kubernetes_version, report.config.api_qps, report.config.namespaces
    );
    let _ = writeln!(
        out,
        "{:>6} {:>5} | {:>10} {:>10} {:>6} | {:>14} {:>9} {:>8} {:>6}",
        "N", "steps", "op /s", "base /s", "ratio", "p99 1st Job ms", "op wr/ex", "RSS MiB", "CPU s"
    );
    for p in &report.results {
        let op = p.operator.operator.as_ref();
        let _ = writeln!(
            out,
            "{:>6} {:>5} | {:>10.1} {:>10.1} {:>6} | {:>14} {:>9} {:>8} {:>6}",
            p.n,
            p.steps,
            p.operator.throughput_per_second,
            p.baseline.throughput_per_second,
            p.throughput_ratio.map_or("-".into(), |r| format!("{r:.2}")),
            f(p.operator.latency_ms.create_to_first_job.p99),
            op.map_or("-".into(), |o| format!(
                "{:.2}",
                o.writes_per_execution_total
            )),
            op.map_or("-".into(), |o| format!("{:.1}", o.process.peak_rss_mib)),
            op.map_or("-".into(), |o| format!("{:.1}", o.process.cpu_seconds)),
        );
    }
    out.push('\n');
    for p in &report.results {
        out.push_str(&render_pair(p));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::apiserver_metrics::{diff, request_counts};
    use super::super::prom::parse;
    use super::*;

    fn run(mode: Mode, throughput: f64) -> RunResult {
        let before = request_counts(&parse(""));
        let after = request_counts(&parse(
            "apiserver_request_total{verb=\"POST\",group=\"batch\",resource=\"jobs\",subresource=\"\",code=\"201\"} 10\n",
        ));
        RunResult {
            completed: true,
            done: 10,
            wall_seconds: 10.0 / throughput,
            throughput_per_second: throughput,
            api: ApiFigures::new(diff(&before, &after), 10),
            operator: (mode == Mode::Operator).then(|| OperatorFigures {
                writes_by_kind: BTreeMap::from([("job_create".into(), 10)]),
                writes_per_execution: BTreeMap::from([("job_create".into(), 1.0)]),
                writes_per_execution_total: 1.0,
                ..Default::default()
            }),
            error: None,
            ..RunResult::failed(mode, 10, 1, String::new())
        }
    }

    fn report() -> Report {
        Report {
            schema: 1,
            started_at: "2026-11-23T00:00:00Z".into(),
            config: BenchConfig {
                sizes: vec![10],
                steps: vec![1],
                namespaces: 10,
                api_qps: 500,
                concurrency: 48,
                kubernetes_version: "v1.20.2".into(),
                command: "crew-bench".into(),
            },
            machine: BTreeMap::from([("nproc".into(), "2".into())]),
            results: vec![PairResult::new(
                run(Mode::Operator, 8.0),
                run(Mode::Baseline, 10.0),
            )],
        }
    }

    #[test]
    fn json_shape() {
        let v = serde_json::to_value(report()).unwrap();
        assert_eq!(v["schema"], 1);
        assert_eq!(v["config"]["api_qps"], 500);
        let pair = &v["results"][0];
        assert_eq!(
            (pair["n"].clone(), pair["steps"].clone()),
            (10.into(), 1.into())
        );
        assert!((pair["throughput_ratio"].as_f64().unwrap() - 0.8).abs() < 1e-9);
        let op = &pair["operator"];
        assert_eq!(op["mode"], "operator");
        assert_eq!(op["completed"], true);
        for key in ["create_to_first_job", "step_hop", "last_step_to_done"] {
            assert!(op["latency_ms"].get(key).is_some(), "{key}");
        }
        for key in ["count", "p50", "p95", "p99", "max"] {
            assert!(
                op["latency_ms"]["create_to_first_job"].get(key).is_some(),
                "{key}"
            );
        }
        assert_eq!(op["api"]["writes"], 10);
        assert_eq!(op["api"]["requests"][0]["verb"], "POST");
        assert_eq!(op["api"]["requests"][0]["resource"], "jobs");
        assert!(op["api"]["requests"][0].get("code").is_none());
        assert_eq!(op["operator"]["writes_per_execution"]["job_create"], 1.0);
        for key in ["peak_rss_mib", "rss_mib", "cpu_seconds"] {
            assert!(op["operator"]["process"].get(key).is_some(), "{key}");
        }
        assert_eq!(pair["baseline"]["mode"], "baseline");
        assert!(pair["baseline"]["operator"].is_null());
    }

    #[test]
    fn no_ratio_unless_both_complete() {
        let mut failed = run(Mode::Operator, 8.0);
        failed.completed = false;
        assert_eq!(
            PairResult::new(failed, run(Mode::Baseline, 10.0)).throughput_ratio,
            None
        );
    }

    #[test]
    fn table_mentions_every_figure() {
        let text = render(&report());
        for needle in [
            "N=10 steps=1",
            "0.80",
            "POST",
            "jobs.batch",
            "job_create 1.00",
            "v1.20.2",
        ] {
            assert!(text.contains(needle), "{needle} in\n{text}");
        }
    }
}
