//! What both runs share: a fresh control plane (KWOK playing the kubelet) with the CRDs and the namespaces, the
//! watches that record the timeline, the API server scrape, and waiting for the work to finish.

use super::apiserver_metrics::{RequestCounts, diff, request_counts};
use super::procstat;
use super::prom;
use super::report::{ApiFigures, Mode, OperatorFigures, RunResult};
use super::slim::{SlimExecution, SlimJob};
use super::timeline::Timeline;
use super::workload::{namespace_name, parse_execution_name, parse_job_name};
use crew_core::build::labels;
use crew_testkit::{COMPONENTS, ControlPlane, create_namespace, install_crds};
use futures::StreamExt;
use futures::channel::mpsc::UnboundedSender;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Parameters of one run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Chains.
    pub n: usize,
    /// Steps per chain.
    pub steps: usize,
    /// Namespaces.
    pub namespaces: usize,
    /// kube-controller-manager `--kube-api-qps`.
    pub api_qps: u32,
    /// Creates in flight at most.
    pub concurrency: usize,
    /// Limit on waiting for the work to finish.
    pub timeout: Duration,
    /// Log filter of the operator (`--log-level` and `RUST_LOG`).
    pub operator_log: String,
    /// Extra arguments for `crew-operator run`.
    pub operator_args: Vec<String>,
    /// Keep each run's directory (control-plane and operator logs) even when it completed.
    pub keep_dirs: bool,
    /// Delete each finished Job once its completion is seen: the operator's executions set `jobCleanup:
    /// OnStepCompletion`, the baseline deletes its Jobs itself the same way (propagation Background).
    pub job_cleanup: bool,
    /// The operator run has a CrewSink in every namespace (`--sink`).
    pub sink: bool,
    /// The operator run archives every execution in a PostgreSQL of its own (`--archive`).
    pub archive: bool,
}

/// A fresh control plane (KWOK playing the kubelet) and the recording watches.
pub struct Harness {
    /// Working directory of the control plane.
    pub dir: PathBuf,
    /// The control plane.
    pub plane: ControlPlane,
    /// Admin client.
    pub client: Client,
    /// Reference point of every timestamp.
    pub start: Instant,
    /// What the watches recorded.
    pub timeline: Arc<Mutex<Timeline>>,
    tasks: Vec<JoinHandle<()>>,
}

/// Locks the timeline, recovering from a poisoned lock (the data are plain timestamps).
pub fn lock(timeline: &Mutex<Timeline>) -> std::sync::MutexGuard<'_, Timeline> {
    timeline
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Waits until kube-controller-manager watches CrewExecutions (its garbage collector picks a new CRD up at its next
/// discovery resync, up to 30 s after the install), as it always does on a cluster whose CRDs were installed
/// beforehand. Measured (audit log, 1 000 × 1): a workload started at once made the garbage collector GET every
/// owner it had seen on a Job before that (286 `GET crewexecutions`, 10 a second for half a minute) — a cost of
/// installing the CRDs just before the run, not of the operator.
async fn wait_for_garbage_collector(client: &Client) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let request = http::Request::get("/metrics")
            .body(Vec::new())
            .map_err(|e| e.to_string())?;
        let text = client
            .request_text(request)
            .await
            .map_err(|e| format!("GET /metrics of kube-apiserver: {e}"))?;
        // Before the operator starts, a watch of CrewExecutions is the controller manager's.
        let watching = prom::parse(&text).iter().any(|s| {
            s.name == "apiserver_longrunning_requests"
                && s.labels.get("resource").map(String::as_str) == Some("crewexecutions")
                && s.labels.get("verb").map(String::as_str) == Some("WATCH")
                && s.value >= 1.0
        });
        if watching {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(
                "kube-controller-manager did not start watching CrewExecutions within 90 s".into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

impl Harness {
    /// Starts a control plane in a fresh directory (call from the main thread: the processes die with the
    /// thread that started them), installs the CRDs and creates the namespaces. Worker pods run for no time: the
    /// workload asks KWOK for that with `sim.crew.dev/duration: "0"`.
    pub async fn start(config: &RunConfig, label: &str) -> Result<Self, String> {
        let dir = crew_testkit::scratch_dir("crew-bench", Some(label));
        let plane = ControlPlane::start(&dir, Some(config.api_qps))
            .map_err(|e| format!("control plane: {e}"))?;
        let client = plane.client().await.map_err(|e| e.to_string())?;
        install_crds(&client).await.map_err(|e| e.to_string())?;
        wait_for_garbage_collector(&client).await?;
        let namespaces = (0..config.namespaces)
            .map(namespace_name)
            .collect::<Vec<_>>();
        for result in
            futures::future::join_all(namespaces.iter().map(|ns| create_namespace(&client, ns)))
                .await
        {
            result.map_err(|e| format!("namespace: {e}"))?;
        }
        let timeline = Arc::new(Mutex::new(Timeline::new(config.n, config.steps)));
        let harness = Harness {
            dir,
            plane,
            client,
            start: Instant::now(),
            timeline,
            tasks: Vec::new(),
        };
        Ok(harness)
    }

    /// Time since the harness started.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Watches the worker Jobs in all namespaces: records first seen and first seen complete. A completed step
    /// sends `(chain, next step)` to `next` (the baseline creates it; with `release_last` the last step's completion
    /// sends `(chain, steps)` too, for its deletion); with `last_is_done` the last step's completion is the chain's
    /// end (baseline). Resolves the returned receiver once the initial list is done.
    pub fn watch_jobs(
        &mut self,
        next: Option<UnboundedSender<(usize, usize)>>,
        last_is_done: bool,
        release_last: bool,
    ) -> oneshot::Receiver<()> {
        let api: Api<SlimJob> = Api::all(self.client.clone());
        let config = watcher::Config::default().labels(labels::EXECUTION);
        let timeline = Arc::clone(&self.timeline);
        let mut failed = HashSet::new();
        self.watch(api, config, "job", move |job: SlimJob, at| {
            let Some((chain, step)) = job.metadata.name.as_deref().and_then(parse_job_name) else {
                return;
            };
            let mut t = lock(&timeline);
            t.job_seen(chain, step, at);
            if job.succeeded() && t.job_done(chain, step, at) {
                if step + 1 < t.steps() {
                    if let Some(next) = &next {
                        let _ = next.unbounded_send((chain, step + 1));
                    }
                } else if last_is_done {
                    t.chain_done(chain, at);
                    if let Some(next) = next.as_ref().filter(|_| release_last) {
                        let _ = next.unbounded_send((chain, step + 1));
                    }
                }
            } else if job.failed() && last_is_done && failed.insert(chain) {
                t.chain_failed();
            }
        })
    }

    /// Watches the CrewExecutions in all namespaces: `Succeeded` ends a chain, `Failed`/`Cancelled` fails it.
    pub fn watch_executions(&mut self) -> oneshot::Receiver<()> {
        let api: Api<SlimExecution> = Api::all(self.client.clone());
        let timeline = Arc::clone(&self.timeline);
        let mut failed = HashSet::new();
        self.watch(
            api,
            watcher::Config::default(),
            "execution",
            move |cx: SlimExecution, at| {
                let Some(chain) = cx.metadata.name.as_deref().and_then(parse_execution_name) else {
                    return;
                };
                match cx.phase() {
                    "Succeeded" => {
                        lock(&timeline).chain_done(chain, at);
                    }
                    "Failed" | "Cancelled" if failed.insert(chain) => {
                        lock(&timeline).chain_failed()
                    }
                    _ => {}
                }
            },
        )
    }

    /// Runs a watch until [`Harness::finish`], calling `seen` with every object applied (listed or changed) and the
    /// time since the harness started. Resolves the returned receiver once the initial list is done.
    fn watch<K, F>(
        &mut self,
        api: Api<K>,
        config: watcher::Config,
        what: &'static str,
        mut seen: F,
    ) -> oneshot::Receiver<()>
    where
        K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
        F: FnMut(K, Duration) + Send + 'static,
    {
        let (ready, listed) = oneshot::channel();
        let start = self.start;
        let task = tokio::spawn(async move {
            let events = watcher(api, config).default_backoff();
            let mut events = std::pin::pin!(events);
            let mut ready = Some(ready);
            while let Some(event) = events.next().await {
                let at = start.elapsed();
                match event {
                    Ok(Event::Apply(object) | Event::InitApply(object)) => seen(object, at),
                    Ok(Event::InitDone) => {
                        if let Some(ready) = ready.take() {
                            let _ = ready.send(());
                        }
                    }
                    Ok(_) => {}
                    Err(e) => eprintln!("{what} watch: {e}"),
                }
            }
        });
        self.tasks.push(task);
        listed
    }

    /// Waits until every watch in `listed` has done its initial list (60 s at most).
    pub async fn wait_listed(listed: Vec<oneshot::Receiver<()>>) -> Result<(), String> {
        for listed in listed {
            tokio::time::timeout(Duration::from_secs(60), listed)
                .await
                .map_err(|_| "a watch did not list within 60 s".to_string())?
                .map_err(|_| "a watch ended before listing".to_string())?;
        }
        Ok(())
    }

    /// The figures of a finished run, from the timeline and the API server scrapes taken before and after.
    pub fn result(
        &self,
        mode: Mode,
        config: &RunConfig,
        stopped_early: Option<String>,
        requests: (&RequestCounts, &RequestCounts),
        cpu_seconds: BTreeMap<String, f64>,
        operator: Option<OperatorFigures>,
    ) -> RunResult {
        let t = lock(&self.timeline);
        RunResult {
            mode,
            n: config.n,
            steps: config.steps,
            completed: stopped_early.is_none() && t.failed() == 0 && t.done() == config.n,
            done: t.done(),
            failed: t.failed(),
            error: stopped_early,
            wall_seconds: t.wall().as_secs_f64(),
            throughput_per_second: t.throughput(),
            latency_ms: t.latencies(mode == Mode::Operator),
            api: ApiFigures::new(diff(requests.0, requests.1), config.n),
            operator,
            cpu_seconds,
            kept_dir: None,
            job_cleanup: config.job_cleanup,
        }
    }

    /// Keeps `task` running until [`Harness::finish`].
    pub fn adopt(&mut self, task: JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// kube-apiserver's `apiserver_request_total`, summed by key.
    pub async fn scrape_apiserver(&self) -> Result<RequestCounts, String> {
        let request = http::Request::get("/metrics")
            .body(Vec::new())
            .map_err(|e| e.to_string())?;
        let text = self
            .client
            .request_text(request)
            .await
            .map_err(|e| format!("GET /metrics of kube-apiserver: {e}"))?;
        Ok(request_counts(&prom::parse(&text)))
    }

    /// CPU seconds so far of the control-plane processes (KWOK included), this process and `extra`, and of the
    /// whole machine (`machine`). Over a run, `machine` minus the others is CPU taken by processes the benchmark
    /// does not measure (anything else running on the machine disturbs the figures).
    pub fn cpu(&self, extra: &[(&str, u32)]) -> BTreeMap<String, f64> {
        let mut out: BTreeMap<String, f64> = COMPONENTS
            .iter()
            .zip(self.plane.pids())
            .map(|(name, pid)| (name.to_string(), procstat::cpu_seconds(&pid.to_string())))
            .collect();
        out.insert("crew-bench".into(), procstat::cpu_seconds("self"));
        for (name, pid) in extra {
            out.insert(name.to_string(), procstat::cpu_seconds(&pid.to_string()));
        }
        out.insert("machine".into(), procstat::machine_busy_seconds());
        out
    }

    /// `after - before` per process, plus `unmeasured`: the machine's busy CPU time not spent by the measured
    /// processes (other processes on the machine, the kernel).
    pub fn cpu_delta(
        before: &BTreeMap<String, f64>,
        after: &BTreeMap<String, f64>,
    ) -> BTreeMap<String, f64> {
        let mut out: BTreeMap<String, f64> = after
            .iter()
            .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
            .collect();
        let measured: f64 = out
            .iter()
            .filter(|(k, _)| *k != "machine")
            .map(|(_, v)| v)
            .sum();
        if let Some(machine) = out.get("machine").copied() {
            out.insert("unmeasured".into(), (machine - measured).max(0.0));
        }
        out
    }

    /// Waits until every chain is done or failed, the control plane dies, or `limit` passes; prints progress
    /// every 10 s. Returns why it stopped early, if it did.
    pub async fn wait_done(&mut self, n: usize, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        let mut last_report = Instant::now();
        loop {
            let (done, failed, line) = {
                let t = lock(&self.timeline);
                let (seen, complete) = t.jobs_seen_and_done();
                (
                    t.done(),
                    t.failed(),
                    format!(
                        "  [{:>6.1}s] created {}, first Jobs {}, Jobs seen {seen} / complete {complete}, done {}, failed {}",
                        self.now().as_secs_f64(),
                        t.created_count(),
                        t.first_jobs_seen(),
                        t.done(),
                        t.failed()
                    ),
                )
            };
            if done + failed >= n {
                return None;
            }
            if Instant::now() > deadline {
                return Some(format!("timed out after {limit:?}: {line}"));
            }
            if !self.plane.alive() {
                return Some(format!("the control plane died: {line}"));
            }
            if last_report.elapsed() >= Duration::from_secs(10) {
                eprintln!("{line}");
                last_report = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the watches and the control plane; removes the directory unless `keep`. Returns
    /// the directory when kept.
    pub async fn finish(mut self, keep: bool) -> Option<String> {
        for task in &self.tasks {
            task.abort();
        }
        self.plane.stop();
        if keep {
            Some(self.dir.display().to_string())
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
            None
        }
    }
}
