//! The operator run: CrewExecutions created as fast as the API server accepts them, run by the operator as a
//! separate process (the release binary), until every one is `Succeeded`.

use super::create::with_retry;
use super::harness::{Harness, RunConfig, lock};
use super::process::{ChildProcess, free_port, http_get, sibling_binary, wait_http_ok};
use super::procstat;
use super::prom;
use super::report::{Mode, OperatorFigures, RunResult};
use super::workload::{execution, namespace_of};
use crew_api::CrewExecution;
use futures::StreamExt;
use kube::Api;
use kube::api::PostParams;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Counter values of `name` by the value of label `label`.
fn counter_by(samples: &[prom::Sample], name: &str, label: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for s in prom::samples(samples, name) {
        *out.entry(s.label(label).to_string()).or_insert(0) += s.value.max(0.0).round() as u64;
    }
    out
}

/// The operator's figures from its `/metrics` text and a process sample.
pub fn operator_figures(
    metrics: &str,
    n: usize,
    process: procstat::ProcSample,
    cpu_during_work: f64,
    open_sockets: usize,
) -> OperatorFigures {
    let samples = prom::parse(metrics);
    let writes_by_kind = counter_by(&samples, "crew_api_writes_total", "kind");
    let per = |v: u64| if n > 0 { v as f64 / n as f64 } else { 0.0 };
    OperatorFigures {
        writes_per_execution: writes_by_kind
            .iter()
            .map(|(k, v)| (k.clone(), per(*v)))
            .collect(),
        writes_per_execution_total: per(writes_by_kind.values().sum()),
        writes_by_kind,
        reconciles: counter_by(&samples, "crew_reconciles_total", "result"),
        reconcile_errors: counter_by(&samples, "crew_reconcile_errors_total", "kind"),
        process,
        cpu_seconds_during_work: cpu_during_work,
        open_sockets,
        sink: None,
        archive: None,
    }
}

/// Runs N executions of `steps` steps on a fresh control plane with the operator as its own process.
pub async fn run(config: &RunConfig) -> RunResult {
    let label = format!("operator-{}x{}", config.n, config.steps);
    let mut harness = match Harness::start(config, &label).await {
        Ok(h) => h,
        Err(e) => return RunResult::failed(Mode::Operator, config.n, config.steps, e),
    };
    let mut operator = None;
    let result = measure(config, &mut harness, &mut operator).await;
    if let Some(op) = operator {
        op.stop(Duration::from_secs(15)).await;
    }
    let (mut result, keep) = match result {
        Ok(r) => {
            let keep = !r.completed || config.keep_dirs;
            (r, keep)
        }
        Err(e) => (
            RunResult::failed(Mode::Operator, config.n, config.steps, e),
            true,
        ),
    };
    result.kept_dir = harness.finish(keep).await;
    result
}

async fn measure(
    config: &RunConfig,
    harness: &mut Harness,
    operator_slot: &mut Option<ChildProcess>,
) -> Result<RunResult, String> {
    let port = free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut args = vec![
        "run".to_string(),
        "--metrics-addr".into(),
        addr.to_string(),
        "--progress-addr".into(),
        "127.0.0.1:0".into(),
        "--log-level".into(),
        config.operator_log.clone(),
    ];
    args.extend(config.operator_args.iter().cloned());
    let database = if config.archive {
        let server = crew_testkit::postgres::Postgres::start(&harness.dir.join("postgres"))
            .map_err(|e| format!("PostgreSQL: {e}"))?;
        let (url, password) = server.url_and_password();
        let password_file = harness.dir.join("archive-password");
        std::fs::write(&password_file, password).map_err(|e| format!("password file: {e}"))?;
        args.extend([
            "--archive-url".to_string(),
            url,
            "--archive-password-file".into(),
            password_file.to_string_lossy().into_owned(),
        ]);
        Some(server)
    } else {
        None
    };
    let operator = operator_slot.insert(ChildProcess::spawn(
        "crew-operator",
        &sibling_binary("crew-operator")?,
        &args,
        &harness.plane.kubeconfig,
        &harness.dir.join("operator.log"),
        &config.operator_log,
    )?);
    wait_http_ok(operator, addr, "/readyz", Duration::from_secs(60)).await?;
    let operator_pid = operator.pid();
    let receiver = if config.sink {
        let receiver = crate::sink_receiver::SinkReceiver::start().await?;
        for i in 0..config.namespaces {
            receiver
                .sink_in(&harness.client, &crate::workload::namespace_name(i))
                .await?;
        }
        Some(receiver)
    } else {
        None
    };
    let jobs_listed = harness.watch_jobs(None, false, false);
    let executions_listed = harness.watch_executions();
    Harness::wait_listed(vec![jobs_listed, executions_listed]).await?;
    let before = harness.scrape_apiserver().await?;
    let cpu_before = harness.cpu(&[("crew-operator", operator_pid)]);
    eprintln!(
        "  operator run: creating {} executions of {} step(s)",
        config.n, config.steps
    );

    let (client, start, timeline) = (
        harness.client.clone(),
        harness.start,
        Arc::clone(&harness.timeline),
    );
    let (n, steps, namespaces, concurrency, job_cleanup) = (
        config.n,
        config.steps,
        config.namespaces,
        config.concurrency,
        config.job_cleanup,
    );
    let creator = tokio::spawn(async move {
        futures::stream::iter(0..n)
            .for_each_concurrent(concurrency, |i| {
                let (client, timeline) = (client.clone(), Arc::clone(&timeline));
                async move {
                    let ns = namespace_of(i, namespaces);
                    let cx = match execution(i, &ns, steps, job_cleanup) {
                        Ok(cx) => cx,
                        Err(e) => {
                            eprintln!("execution {i}: {e}");
                            lock(&timeline).chain_failed();
                            return;
                        }
                    };
                    let api: Api<CrewExecution> = Api::namespaced(client, &ns);
                    let params = PostParams::default();
                    lock(&timeline).created(i, start.elapsed());
                    if let Err(e) = with_retry(|| api.create(&params, &cx)).await {
                        eprintln!("create execution {i}: {e}");
                        lock(&timeline).chain_failed();
                    }
                }
            })
            .await;
    });
    harness.adopt(creator);
    let stopped_early = harness.wait_done(config.n, config.timeout).await;
    if let Some(receiver) = &receiver {
        receiver
            .wait_completed(config.n, Duration::from_secs(120))
            .await;
        // The last finalizer removals follow the last deliveries.
        tokio::time::sleep(Duration::from_secs(6)).await;
    }
    let archive = match &database {
        Some(server) => Some(wait_archived(server, config.n, Duration::from_secs(300)).await),
        None => None,
    };
    // Let trailing writes (the last Events) land before the final scrapes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = harness.scrape_apiserver().await?;
    let cpu_after = harness.cpu(&[("crew-operator", operator_pid)]);
    let process = procstat::sample(&operator_pid.to_string())
        .ok_or_else(|| "the operator process is gone".to_string())?;
    let (code, metrics) = http_get(addr, "/metrics").await?;
    if code != 200 {
        return Err(format!("operator /metrics answered {code}"));
    }
    let cpu = Harness::cpu_delta(&cpu_before, &cpu_after);
    let mut figures = operator_figures(
        &metrics,
        config.n,
        process,
        cpu.get("crew-operator").copied().unwrap_or(0.0),
        procstat::open_sockets(&operator_pid.to_string()).unwrap_or(0),
    );
    figures.sink = receiver.as_ref().map(|r| r.figures());
    figures.archive = archive;
    Ok(harness.result(
        Mode::Operator,
        config,
        stopped_early,
        (&before, &after),
        cpu,
        Some(figures),
    ))
}

/// Waits until `server` holds `n` executions (at most `limit`), then for the finalizer removals that follow.
async fn wait_archived(
    server: &crew_testkit::postgres::Postgres,
    n: usize,
    limit: Duration,
) -> crate::report::ArchiveFigures {
    let started = std::time::Instant::now();
    let mut stored = 0;
    while started.elapsed() < limit {
        stored = server
            .psql("crew", "SELECT count(*) FROM executions")
            .ok()
            .and_then(|count| count.parse().ok())
            .unwrap_or(0);
        if stored >= n as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let catch_up_seconds = started.elapsed().as_secs_f64();
    // The finalizer removals and `Archived` condition writes follow each commit.
    tokio::time::sleep(Duration::from_secs(5)).await;
    crate::report::ArchiveFigures {
        stored,
        catch_up_seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_figures_from_metrics_text() {
        let text = "# HELP crew_api_writes API writes\n# TYPE crew_api_writes counter\n\
                    crew_api_writes_total{kind=\"status\"} 200\ncrew_api_writes_total{kind=\"job_create\"} 100\n\
                    crew_api_writes_total{kind=\"event\"} 200\ncrew_reconciles_total{result=\"ok\"} 450\n# EOF\n";
        let f = operator_figures(text, 100, procstat::ProcSample::default(), 1.5, 7);
        assert_eq!(f.writes_by_kind["status"], 200);
        assert_eq!(f.writes_per_execution["job_create"], 1.0);
        assert_eq!(f.writes_per_execution_total, 5.0);
        assert_eq!(f.reconciles["ok"], 450);
        assert!(f.reconcile_errors.is_empty());
        assert_eq!(f.cpu_seconds_during_work, 1.5);
        assert_eq!(f.open_sockets, 7);
    }
}
