//! `crew-bench --cli N`: `kubectl-crew` against N finished-looking executions on a fresh control plane.
//!
//! Measures, as a user would see them (wall time of the process, including its start and every page):
//! `list -A` and `stats -A` over N executions (each with a three-step status and a history, as the operator
//! writes them), and `cancel -A -l SELECTOR --yes` over a labelled subset. No operator runs: the figures are the
//! CLI's and the API server's alone.

use crate::create::with_retry;
use crate::workload::namespace_name;
use crew_api::CrewExecution;
use crew_testkit::{ControlPlane, create_namespace, install_crds};
use futures::StreamExt;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use std::path::Path;
use std::time::Instant;

/// What `--cli` measures.
pub struct CliBench<'a> {
    pub n: usize,
    /// How many of them carry the label the bulk cancel selects.
    pub cancel: usize,
    pub namespaces: usize,
    pub concurrency: usize,
    pub api_qps: u32,
    /// The `kubectl-crew` binary.
    pub cli: &'a Path,
}

/// The status every benchmark execution carries: what a finished three-step run looks like.
fn status() -> serde_json::Value {
    let step = |name: &str, start: &str, end: &str| {
        serde_json::json!({"name": name, "phase": "Succeeded", "attempt": 1, "jobName": format!("x-{name}-1"),
            "startTime": start, "completionTime": end, "durationSeconds": 60, "exitCode": 0,
            "result": "{\"ok\": true, \"tokens\": 1234}"})
    };
    let entry = |time: &str, from: &str, to: &str, reason: &str, step: &str| {
        serde_json::json!({"time": time, "from": from, "to": to, "reason": reason, "step": step,
            "message": format!("step {step}: {reason}")})
    };
    serde_json::json!({
        "phase": "Succeeded", "reason": "Succeeded", "message": "all 3 steps succeeded", "attempt": 1,
        "startTime": "2026-11-29T10:00:00Z", "completionTime": "2026-11-29T10:03:00Z",
        "durationSeconds": 180, "duration": "3m0s", "observedGeneration": 1,
        "progress": {"percent": 100, "completedSteps": 3, "totalSteps": 3, "display": "3/3 (100%)"},
        "steps": [
            step("research", "2026-11-29T10:00:00Z", "2026-11-29T10:01:00Z"),
            step("write", "2026-11-29T10:01:00Z", "2026-11-29T10:02:00Z"),
            step("review", "2026-11-29T10:02:00Z", "2026-11-29T10:03:00Z"),
        ],
        "history": [
            entry("2026-11-29T10:00:00Z", "Pending", "Running", "Started", "research"),
            entry("2026-11-29T10:01:00Z", "Running", "Running", "StepSucceeded", "research"),
            entry("2026-11-29T10:02:00Z", "Running", "Running", "StepSucceeded", "write"),
            entry("2026-11-29T10:03:00Z", "Running", "Succeeded", "Succeeded", "review"),
        ],
    })
}

async fn create_one(
    client: &Client,
    i: usize,
    namespaces: usize,
    cancel: bool,
) -> Result<(), String> {
    let ns = namespace_name(i % namespaces);
    let api: Api<CrewExecution> = Api::namespaced(client.clone(), &ns);
    let name = format!("cx-{i:05}");
    let mut cx: CrewExecution = serde_json::from_value(serde_json::json!({
        "apiVersion": "crew.dev/v1alpha1", "kind": "CrewExecution",
        "metadata": {"name": name, "labels": {"bench": "cli"}},
        "spec": {"image": "busybox", "steps": [{"name": "research"}, {"name": "write"}, {"name": "review"}]}
    }))
    .map_err(|e| e.to_string())?;
    if cancel {
        cx.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("cancel".into(), "yes".into());
    }
    let post = PostParams::default();
    with_retry(|| api.create(&post, &cx))
        .await
        .map_err(|e| format!("create {ns}/{name}: {e}"))?;
    let mut status = status();
    if cancel {
        // The cancel targets are still running (a finished execution is "already so" for a cancel).
        status["phase"] = "Running".into();
        status["reason"] = "StepRunning".into();
    }
    let body = serde_json::json!({ "status": status });
    let (params, patch) = (PatchParams::default(), Patch::Merge(&body));
    with_retry(|| api.patch_status(&name, &params, &patch))
        .await
        .map_err(|e| format!("status {ns}/{name}: {e}"))
}

/// CPU seconds (user + system) of the children this process waited for.
fn children_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we pass and reads nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_CHILDREN is a valid `who`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    if rc == 0 {
        seconds(usage.ru_utime) + seconds(usage.ru_stime)
    } else {
        0.0
    }
}

/// One timed run of the CLI: wall seconds, CPU seconds, bytes of stdout, and stderr (bulk summaries go there).
fn timed(
    cli: &Path,
    kubeconfig: &Path,
    args: &[&str],
) -> Result<(f64, f64, usize, String), String> {
    let cpu = children_cpu_seconds();
    let started = Instant::now();
    let out = std::process::Command::new(cli)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .map_err(|e| format!("run {}: {e}", cli.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !out.status.success() {
        return Err(format!("kubectl-crew {}: {stderr}", args.join(" ")));
    }
    Ok((
        seconds,
        children_cpu_seconds() - cpu,
        out.stdout.len(),
        stderr,
    ))
}

/// Peak RSS of the children this process waited for, in MiB.
fn children_peak_rss_mib() -> f64 {
    // SAFETY: getrusage writes into the struct we pass and reads nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_CHILDREN is a valid `who`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    if rc == 0 {
        usage.ru_maxrss as f64 / 1024.0
    } else {
        0.0
    }
}

/// Runs the measurement and returns a Markdown report.
pub async fn run(bench: &CliBench<'_>) -> Result<String, String> {
    let dir = crew_testkit::scratch_dir("crew-bench", Some("cli"));
    let mut plane = ControlPlane::start(&dir, Some(bench.api_qps))
        .map_err(|e| format!("control plane: {e}"))?;
    let result = measure(bench, &plane).await;
    plane.stop();
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn measure(bench: &CliBench<'_>, plane: &ControlPlane) -> Result<String, String> {
    let client = plane.client().await.map_err(|e| e.to_string())?;
    install_crds(&client).await.map_err(|e| e.to_string())?;
    for k in 0..bench.namespaces {
        create_namespace(&client, &namespace_name(k))
            .await
            .map_err(|e| e.to_string())?;
    }
    let started = Instant::now();
    let mut creates = futures::stream::iter(0..bench.n)
        .map(|i| create_one(&client, i, bench.namespaces, i < bench.cancel))
        .buffer_unordered(bench.concurrency.max(1));
    while let Some(result) = creates.next().await {
        result?;
    }
    let setup = started.elapsed();
    let kubeconfig = plane.kubeconfig.as_path();
    let mut rows = Vec::new();
    // In this order: the peak RSS column is the largest so far, and `-o json` (whole objects) comes last.
    for (what, args) in [
        ("list -A", vec!["list", "-A"]),
        ("stats -A", vec!["stats", "-A"]),
        (
            "cancel -A -l cancel=yes --yes",
            vec!["cancel", "-A", "-l", "cancel=yes", "--yes"],
        ),
        ("list -A -o json", vec!["list", "-A", "-o", "json"]),
    ] {
        let bulk = args[0] == "cancel";
        let mut times = Vec::new();
        let mut output = String::new();
        let mut cpu = 0.0;
        let runs = if bulk { 1 } else { 3 };
        for _ in 0..runs {
            let (seconds, used, bytes, stderr) = timed(bench.cli, kubeconfig, &args)?;
            times.push(seconds);
            output = if bulk {
                stderr.lines().last().unwrap_or_default().to_string()
            } else {
                format!("{:.1} KiB", bytes as f64 / 1024.0)
            };
            cpu += used / runs as f64;
        }
        times.sort_by(f64::total_cmp);
        let over = if bulk {
            format!("{} targets of {}", bench.cancel, bench.n)
        } else {
            format!("over {}", bench.n)
        };
        rows.push(format!(
            "| `{what}` {over} | {:.2} | {:.2} | {cpu:.2} | {:.1} | {output} |",
            times[times.len() / 2],
            times[0],
            children_peak_rss_mib(),
        ));
    }
    Ok(format!(
        "kubectl-crew over {} executions in {} namespaces ({} created with statuses in {:.1} s); pages of 500\n\n\
         | command | median s | best s | CLI CPU s | peak RSS MiB (so far) | output |\n\
         | --- | ---: | ---: | ---: | ---: | --- |\n{}\n",
        bench.n,
        bench.namespaces,
        bench.n,
        setup.as_secs_f64(),
        rows.join("\n"),
    ))
}
