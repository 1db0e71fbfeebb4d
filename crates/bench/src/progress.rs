//! `crew-bench --progress N`: the write budget of worker progress reports. N executions whose workers run until
//! cancelled; each worker posts a report ten times a second for `--progress-seconds` to the operator (its own
//! process, `--progress-interval-ms` 2000), with a token bound to its pod as the kubelet would project it.
//! Measured: the operator's status writes per execution per second while they post, the answers, and the latency
//! from a report's send to a watch seeing it in `.status` (for the reports a write carried; the others were
//! superseded before their write, which is the point of coalescing).

use crate::process::{free_port, http_get};
use crew_api::CrewExecution;
use crew_testkit::ControlPlane;
use futures::StreamExt;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What `--progress` measures.
pub struct ProgressBench {
    pub workers: usize,
    pub seconds: u64,
    pub per_second: u32,
    pub api_qps: u32,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs the measurement on a fresh control plane and returns a Markdown report.
pub async fn run(bench: &ProgressBench) -> Result<String, String> {
    crate::solo::on_fresh_plane("progress", bench.api_qps, |plane, dir| async move {
        let result = measure(bench, &plane, &dir).await;
        (plane, result)
    })
    .await
}

async fn post(addr: SocketAddr, token: &str, body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!(
            "POST /v1/progress HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    match tokio::time::timeout(Duration::from_secs(10), exchange).await {
        Ok(Ok(response)) => String::from_utf8_lossy(&response)
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

async fn status_writes(addr: SocketAddr) -> Result<u64, String> {
    let (_, text) = http_get(addr, "/metrics").await?;
    Ok(
        crate::prom::samples(&crate::prom::parse(&text), "crew_api_writes_total")
            .filter(|s| s.label("kind") == "status")
            .map(|s| s.value.max(0.0) as u64)
            .sum(),
    )
}

async fn token_for(client: &Client, ns: &str, pod: &Pod) -> Result<String, String> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let request: TokenRequest = serde_json::from_value(serde_json::json!({
        "spec": {"audiences": ["crew-operator"], "expirationSeconds": 3600,
                 "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod.name_any(), "uid": pod.uid()}}
    }))
    .map_err(|e| e.to_string())?;
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    accounts
        .create_token_request(&sa, &PostParams::default(), &request)
        .await
        .map_err(|e| format!("token for {}: {e}", pod.name_any()))?
        .status
        .map(|s| s.token)
        .ok_or_else(|| "token request without status".to_string())
}

/// Nearest-rank percentile of sorted latencies, in milliseconds (the operator's own percentile).
fn percentile_ms(sorted: &[Duration], pct: usize) -> u64 {
    let millis: Vec<u64> = sorted.iter().map(|d| d.as_millis() as u64).collect();
    crew_core::lifecycle::queue_stats::percentile(&millis, pct).unwrap_or(0)
}

async fn measure(
    bench: &ProgressBench,
    plane: &ControlPlane,
    dir: &std::path::Path,
) -> Result<String, String> {
    let endpoint = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let extra = [
        "--progress-addr".to_string(),
        endpoint.to_string(),
        "--progress-url".to_string(),
        format!("http://{endpoint}/v1/progress"),
    ];
    let crate::solo::Solo {
        client,
        namespace: ns,
        metrics,
        operator: _operator,
    } = crate::solo::start(plane, dir, &extra).await?;
    let executions: Api<CrewExecution> = Api::namespaced(client.clone(), &ns);
    for i in 0..bench.workers {
        let cx: CrewExecution = serde_json::from_value(serde_json::json!({
            "apiVersion": "crew.dev/v1alpha1", "kind": "CrewExecution",
            "metadata": {"name": format!("w{i:03}")},
            "spec": {"image": "busybox", "podAnnotations": {"sim.crew.dev/hang": "true"}}
        }))
        .map_err(|e| e.to_string())?;
        executions
            .create(&PostParams::default(), &cx)
            .await
            .map_err(|e| format!("create: {e}"))?;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let deadline = Instant::now() + Duration::from_secs(180);
    let running = loop {
        let list = pods
            .list(&ListParams::default().labels("crew.dev/step=main"))
            .await
            .map_err(|e| e.to_string())?;
        let started: Vec<Pod> = list
            .items
            .into_iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .collect();
        if started.len() >= bench.workers {
            break started;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} of {} workers running",
                started.len(),
                bench.workers
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Wait until every execution shows its step Running, so reports are taken (409 before).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut workers = Vec::new();
    for pod in &running {
        let execution = pod
            .labels()
            .get("crew.dev/execution")
            .cloned()
            .unwrap_or_default();
        workers.push((execution, token_for(&client, &ns, pod).await?));
    }

    // Send times by (execution, sequence number), and the latencies the watch sees.
    let sent: Arc<Mutex<HashMap<(String, u64), Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let last_seen: Arc<Mutex<Option<Instant>>> = Arc::default();
    let watch = {
        let (sent, latencies, last_seen) = (sent.clone(), latencies.clone(), last_seen.clone());
        let api = executions.clone();
        tokio::spawn(async move {
            let mut seen: HashMap<String, u64> = HashMap::new();
            let mut events = watcher(api, watcher::Config::default()).boxed();
            while let Some(Ok(event)) = events.next().await {
                let (watcher::Event::Apply(cx) | watcher::Event::InitApply(cx)) = event else {
                    continue;
                };
                let seq = cx
                    .status
                    .as_ref()
                    .and_then(|s| s.steps.first())
                    .and_then(|s| s.progress.as_ref())
                    .and_then(|p| p.message.as_deref())
                    .and_then(|m| m.strip_prefix("seq "))
                    .and_then(|n| n.parse::<u64>().ok());
                let Some(seq) = seq else { continue };
                let name = cx.name_any();
                if seen.get(&name).is_some_and(|s| *s >= seq) {
                    continue;
                }
                seen.insert(name.clone(), seq);
                *locked(&last_seen) = Some(Instant::now());
                if let Some(at) = locked(&sent).get(&(name, seq)) {
                    locked(&latencies).push(at.elapsed());
                }
            }
        })
    };
    let before = status_writes(metrics).await?;
    let started = Instant::now();
    let codes: Arc<Mutex<BTreeMap<u16, u64>>> = Arc::default();
    let period = Duration::from_secs_f64(1.0 / f64::from(bench.per_second.max(1)));
    let total = bench.seconds * u64::from(bench.per_second);
    let posters: Vec<_> = workers
        .into_iter()
        .map(|(execution, token)| {
            let (sent, codes) = (sent.clone(), codes.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                for seq in 1..=total {
                    tick.tick().await;
                    let body = format!(
                        r#"{{"percent": {}, "message": "seq {seq}", "metrics": {{"seq": {seq}}}}}"#,
                        seq * 100 / total
                    );
                    locked(&sent).insert((execution.clone(), seq), Instant::now());
                    let code = post(endpoint, &token, &body).await;
                    *locked(&codes).entry(code).or_default() += 1;
                }
            })
        })
        .collect();
    for poster in posters {
        let _ = poster.await;
    }
    let posting = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let writes = status_writes(metrics).await? - before;
    watch.abort();
    let mut latencies = locked(&latencies).clone();
    latencies.sort();
    let codes = locked(&codes).clone();
    let reports: u64 = codes.values().sum();
    // Writes span from the first report to the last write, which follows the last report by up to an interval.
    let span = locked(&last_seen)
        .map_or(posting, |last| {
            last.saturating_duration_since(started).as_secs_f64()
        })
        .max(posting);
    let workers = bench.workers as f64;
    let per_execution_second = writes as f64 / workers / span;
    let steady = (writes as f64 - workers).max(0.0) / workers / posting;
    Ok(format!(
        "{} workers x {}/s for {} s ({reports} reports in {posting:.1} s; answers {codes:?})\n\n\
         | figure | value |\n| --- | ---: |\n\
         | status writes (operator's `crew_api_writes_total{{kind=\"status\"}}`) | {writes} |\n\
         | status writes per execution per second, first report to last write ({span:.1} s) | **{per_execution_second:.3}** |\n\
         | the same after each execution's first write (written at once), over the {posting:.1} s of posting | {steady:.3} |\n\
         | reports per status write | {:.1} |\n\
         | report -> `.status` seen by a watch, p50 | {} ms |\n\
         | report -> `.status` seen by a watch, p99 | {} ms |\n\
         | writes measured (reports a write carried) | {} |\n",
        bench.workers,
        bench.per_second,
        bench.seconds,
        reports as f64 / writes.max(1) as f64,
        percentile_ms(&latencies, 50),
        percentile_ms(&latencies, 99),
        latencies.len(),
    ))
}
