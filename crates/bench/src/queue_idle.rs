//! `crew-bench --queue-idle N`: what N executions waiting in one CrewQueue cost the operator while nothing moves.
//! One run holds the queue's only slot (its worker never ends); N more wait behind it. Once all are Queued, the
//! operator is left alone for `--queue-idle-seconds` (its clock refreshes the queue's status every 30 s) and its CPU,
//! reconciles and writes over that window are read from `/proc` and `/metrics`.

use crate::create::with_retry;
use crate::process::http_get;
use crate::procstat;
use crew_api::{CrewExecution, CrewQueue};
use crew_testkit::ControlPlane;
use futures::StreamExt;
use kube::api::PostParams;
use kube::runtime::wait::await_condition;
use kube::{Api, Client};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What `--queue-idle` measures.
pub struct QueueIdleBench {
    pub waiting: usize,
    pub seconds: u64,
    pub concurrency: usize,
    pub api_qps: u32,
}

/// Runs the measurement on a fresh control plane and returns a Markdown report.
pub async fn run(bench: &QueueIdleBench) -> Result<String, String> {
    crate::solo::on_fresh_plane("queue-idle", bench.api_qps, |plane, dir| async move {
        let result = measure(bench, &plane, &dir).await;
        (plane, result)
    })
    .await
}

/// (reconciles, status writes, queue status writes) the operator counted so far.
async fn counters(metrics: SocketAddr) -> Result<(f64, f64, f64), String> {
    let (_, text) = http_get(metrics, "/metrics").await?;
    let samples = crate::prom::parse(&text);
    let sum = |name: &str, kind: Option<&str>| -> f64 {
        crate::prom::samples(&samples, name)
            .filter(|s| kind.is_none_or(|k| s.label("kind") == k))
            .map(|s| s.value)
            .sum()
    };
    Ok((
        sum("crew_reconciles_total", None),
        sum("crew_api_writes_total", Some("status")),
        sum("crew_api_writes_total", Some("queue_status")),
    ))
}

async fn create(client: &Client, ns: &str, name: String, hang: bool) -> Result<(), String> {
    let api: Api<CrewExecution> = Api::namespaced(client.clone(), ns);
    let annotations = if hang {
        serde_json::json!({"sim.crew.dev/hang": "true"})
    } else {
        serde_json::json!({})
    };
    let cx: CrewExecution = serde_json::from_value(serde_json::json!({
        "apiVersion": "crew.dev/v1alpha1", "kind": "CrewExecution",
        "metadata": {"name": name},
        "spec": {"image": "busybox", "queue": "line", "podAnnotations": annotations}
    }))
    .map_err(|e| e.to_string())?;
    let params = PostParams::default();
    with_retry(|| api.create(&params, &cx))
        .await
        .map_err(|e| format!("create {name}: {e}"))
}

async fn measure(
    bench: &QueueIdleBench,
    plane: &ControlPlane,
    dir: &std::path::Path,
) -> Result<String, String> {
    let crate::solo::Solo {
        client,
        namespace: ns,
        metrics,
        operator,
    } = crate::solo::start(plane, dir, &[]).await?;
    let queues: Api<CrewQueue> = Api::namespaced(client.clone(), &ns);
    let queue: CrewQueue = serde_json::from_value(serde_json::json!({
        "apiVersion": "crew.dev/v1alpha1", "kind": "CrewQueue",
        "metadata": {"name": "line"}, "spec": {"maxRunning": 1}
    }))
    .map_err(|e| e.to_string())?;
    queues
        .create(&PostParams::default(), &queue)
        .await
        .map_err(|e| format!("queue: {e}"))?;
    create(&client, &ns, "holder".into(), true).await?;
    let filled = Instant::now();
    let results: Vec<Result<(), String>> = futures::stream::iter(0..bench.waiting)
        .map(|i| create(&client, &ns, format!("w{i:05}"), false))
        .buffer_unordered(bench.concurrency.max(1))
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>, String>>()?;
    let waiting = bench.waiting as u32;
    let queued = await_condition(queues.clone(), "line", move |q: Option<&CrewQueue>| {
        q.and_then(|q| q.status.as_ref())
            .is_some_and(|s| s.queued == waiting && s.running == 1)
    });
    tokio::time::timeout(Duration::from_secs(1800), queued)
        .await
        .map_err(|_| format!("{} executions not all Queued within 30 min", bench.waiting))?
        .map_err(|e| e.to_string())?;
    let fill_seconds = filled.elapsed().as_secs_f64();
    // Settle: the last arrivals' own reconciles.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pid = operator.pid().to_string();
    let (cpu_before, counts_before) = (procstat::cpu_seconds(&pid), counters(metrics).await?);
    let idle = Instant::now();
    tokio::time::sleep(Duration::from_secs(bench.seconds)).await;
    let idle_seconds = idle.elapsed().as_secs_f64();
    let (cpu_after, counts_after) = (procstat::cpu_seconds(&pid), counters(metrics).await?);
    let memory = procstat::sample(&pid);
    operator.stop(Duration::from_secs(10)).await;
    let cpu = cpu_after - cpu_before;
    Ok(format!(
        "### {} executions waiting in one CrewQueue (maxRunning 1), idle for {:.0} s\n\n\
         | figure | value |\n| --- | ---: |\n\
         | time to create them and see all Queued | {:.1} s |\n\
         | operator CPU while idle | {:.2} s ({:.2} % of one core) |\n\
         | reconciles while idle | {} |\n\
         | execution status writes while idle | {} |\n\
         | queue status writes while idle | {} |\n\
         | operator RSS at the end | {:.1} MiB |\n",
        bench.waiting,
        idle_seconds,
        fill_seconds,
        cpu,
        100.0 * cpu / idle_seconds,
        counts_after.0 - counts_before.0,
        counts_after.1 - counts_before.1,
        counts_after.2 - counts_before.2,
        memory.map_or(0.0, |m| m.rss_mib),
    ))
}
