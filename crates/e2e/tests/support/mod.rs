//! Test support for the integration tests: one real control plane per test binary (KWOK plays the kubelet of its
//! fake nodes), a namespace per test, the operator running in-process, scoped to that namespace. Tests wait by
//! watching ([`wait`]) for named conditions ([`conditions`]); a wait that times out shows what it last saw
//! ([`observed`]).
#![allow(dead_code)]

pub mod conditions;
pub mod observed;
pub mod receiver;
pub mod wait;

use crew_api::{CrewExecution, CrewQueue, Phase};
use crew_operator::controller;
use crew_operator::controller::context::Context;
use crew_operator::settings::{LimitArgs, Settings};
use crew_testkit::{ControlPlane, POD_DURATION_ANNOTATION, create_namespace};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::PostParams;
use kube::runtime::wait::Condition;
use kube::runtime::watcher;
use kube::{Api, Client, CustomResourceExt, ResourceExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wait::{Named, wait_list, wait_object, when_list};

static PLANE: OnceLock<ControlPlane> = OnceLock::new();

/// The repository's root (this crate is `crates/e2e`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The `crew-operator` binary of this build, for the tests that run it as a process (leader election, the chart's
/// arguments); `CREW_OPERATOR_BIN` overrides.
pub fn operator_bin() -> PathBuf {
    workspace_bin("crew-operator", "CREW_OPERATOR_BIN")
}

/// The binary `name` of this build: `cargo test --workspace` builds it beside the `deps/` directory this test
/// runs from (cargo sets `CARGO_BIN_EXE_*` only for a package's own binaries); the variable `overridden_by`
/// names another.
pub fn workspace_bin(name: &str, overridden_by: &str) -> PathBuf {
    if let Some(bin) = std::env::var_os(overridden_by) {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join(name))
        .expect("the test binary sits in target/<profile>/deps");
    assert!(
        bin.is_file(),
        "{} not found: build it first (`cargo build --workspace --bins`, `make test` does) or set {overridden_by}",
        bin.display()
    );
    bin
}
static NEXT_NS: AtomicU32 = AtomicU32::new(0);

/// The control plane of this test binary, started on first use. Its processes are started from a thread that
/// lives as long as the test binary, so they die with it (parent-death signal) even if a test panics.
pub fn plane() -> &'static ControlPlane {
    PLANE.get_or_init(|| {
        let filter =
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let dir = crew_testkit::scratch_dir("crew-test", None);
            let plane = match std::env::var_os("CREW_TEST_KUBECONFIG") {
                Some(kubeconfig) => Ok(ControlPlane::existing(std::path::Path::new(&kubeconfig))),
                None => ControlPlane::start(&dir, None),
            };
            let started = plane.map_err(|e| e.to_string()).and_then(|plane| {
                install_crds(&plane)?;
                Ok(plane)
            });
            let _ = tx.send(started);
            loop {
                std::thread::park();
            }
        });
        match rx.recv() {
            Ok(Ok(plane)) => plane,
            Ok(Err(e)) => panic!("control plane did not start: {e}"),
            Err(e) => panic!("control plane thread died: {e}"),
        }
    })
}

fn install_crds(plane: &ControlPlane) -> Result<(), String> {
    let crds = repo_root().join("crds");
    // Server-side, as the README says: the CRD's full schema is more than a client-side apply likes to store in
    // its last-applied annotation.
    let out = kubectl_in(
        plane,
        &["apply", "--server-side", "-f", &crds.to_string_lossy()],
    );
    if !out.0 {
        return Err(format!("kubectl apply crds/: {}", out.1));
    }
    // A runtime of its own: this runs on the control plane's thread, outside any test's runtime.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime for the CRD watch: {e}"))?;
    runtime.block_on(async {
        let client = plane.client().await.map_err(|e| e.to_string())?;
        let crds: Api<CustomResourceDefinition> = Api::all(client);
        for name in [CrewExecution::crd_name(), CrewQueue::crd_name()] {
            let established = kube::runtime::wait::conditions::is_crd_established();
            let until = wait::when("condition Established=True", |crd: Option<&_>| {
                established.matches_object(crd)
            });
            wait::try_wait_object(crds.clone(), name, Duration::from_secs(60), until)
                .await
                .map_err(|timed_out| timed_out.to_string())?;
        }
        Ok(())
    })
}

fn kubectl_in(plane: &ControlPlane, args: &[&str]) -> (bool, String) {
    let output = Command::new(plane.bin.join("kubectl"))
        .arg("--kubeconfig")
        .arg(&plane.kubeconfig)
        .args(args)
        .output();
    outcome(output)
}

/// (success, stdout followed by stderr) of a finished command.
fn outcome(output: std::io::Result<std::process::Output>) -> (bool, String) {
    match output {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, e.to_string()),
    }
}

/// Runs kubectl against the test control plane; returns (success, stdout+stderr).
pub fn kubectl(args: &[&str]) -> (bool, String) {
    kubectl_in(plane(), args)
}

/// The operator running in-process.
pub struct Operator {
    pub ctx: Arc<Context>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Operator {
    /// Graceful stop (finishes in-flight reconciles).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), &mut self.task).await;
    }

    /// Abrupt stop, as a crash would (the task is dropped wherever it is).
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Starts the operator in-process with `config` (`namespace: None` watches every namespace, as `crew-operator run`
/// does by default: only for test binaries of their own, since it acts on every other test's namespace too).
pub fn start_operator(client: &Client, settings: Settings) -> Operator {
    let operator = controller::Operator::new(client.clone(), settings);
    let ctx = operator.context();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(operator.run(async {
        let _ = rx.await;
    }));
    Operator {
        ctx,
        shutdown: Some(tx),
        task,
    }
}

/// One test's namespace.
pub struct TestNs {
    pub client: Client,
    pub ns: String,
    /// Run time of worker pods whose execution sets no `sim.crew.dev/duration` (given to [`TestNs::create`]d
    /// executions as a top-level pod annotation).
    pub pod_duration: Duration,
}

impl TestNs {
    /// A fresh namespace named after `prefix`, ready for pods (its default ServiceAccount exists), whose
    /// executions' pods run for `pod_duration` unless they say otherwise.
    pub async fn new(prefix: &str, pod_duration: Duration) -> TestNs {
        let plane = plane();
        let client = plane.client().await.expect("client");
        let ns = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            NEXT_NS.fetch_add(1, Ordering::Relaxed)
        );
        create_namespace(&client, &ns)
            .await
            .expect("namespace ready for pods");
        TestNs {
            client,
            ns,
            pod_duration,
        }
    }

    /// Starts the operator, watching only this namespace.
    pub fn start_operator(&self) -> Operator {
        self.start_operator_with(None)
    }

    /// Starts the operator for this namespace with an operator-wide limit on executions without a queue.
    pub fn start_operator_with(&self, max_running: Option<u32>) -> Operator {
        start_operator(
            &self.client,
            Settings {
                limits: LimitArgs {
                    max_running,
                    ..Default::default()
                },
                ..Settings::for_namespace(Some(&self.ns), "test")
            },
        )
    }

    /// Starts the operator for this namespace with `settings` changed by `change`.
    pub fn start_operator_changed(&self, change: impl FnOnce(&mut Settings)) -> Operator {
        let mut settings = Settings::for_namespace(Some(&self.ns), "test");
        change(&mut settings);
        start_operator(&self.client, settings)
    }

    /// API of executions in this namespace.
    pub fn executions(&self) -> Api<CrewExecution> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Creates an execution from YAML (the namespace is filled in, and the namespace's pod duration unless the
    /// execution sets `sim.crew.dev/duration` itself).
    pub async fn create(&self, yaml: &str) -> CrewExecution {
        let mut cx: CrewExecution = serde_saphyr::from_str(yaml).expect("execution YAML");
        cx.metadata.namespace = Some(self.ns.clone());
        cx.spec
            .pod_annotations
            .get_or_insert_with(Default::default)
            .entry(POD_DURATION_ANNOTATION.to_string())
            .or_insert_with(|| format!("{}ms", self.pod_duration.as_millis()));
        self.executions()
            .create(&PostParams::default(), &cx)
            .await
            .expect("create execution")
    }

    /// Follows the execution with a watch until `until` holds; returns it as then seen. Panics after `limit` with
    /// what it waited for and the execution as last seen (phase, reason, message, steps, conditions, history).
    pub async fn wait_for<F>(&self, name: &str, limit: Duration, until: Named<F>) -> CrewExecution
    where
        F: FnMut(Option<&CrewExecution>) -> bool,
    {
        wait_object(self.executions(), name, limit, until).await
    }

    /// Waits until the execution reaches `phase`.
    pub async fn wait_phase(&self, name: &str, phase: &str, limit: Duration) -> CrewExecution {
        self.wait_for(name, limit, conditions::is_phase(phase))
            .await
    }

    /// Waits until the execution no longer exists.
    pub async fn wait_deleted(&self, name: &str, limit: Duration) {
        wait::wait_deleted(self.executions(), name, limit).await;
    }

    /// Follows the namespace's executions until `until` holds for them; returns them as then seen, by name.
    pub async fn wait_executions<F>(&self, limit: Duration, until: Named<F>) -> Vec<CrewExecution>
    where
        F: FnMut(&[Arc<CrewExecution>]) -> bool,
    {
        wait_list(self.executions(), watcher::Config::default(), limit, until).await
    }

    /// Follows the Jobs labelled for execution `name` until `until` holds for them; returns them, by name.
    pub async fn wait_jobs<F>(&self, name: &str, limit: Duration, until: Named<F>) -> Vec<Job>
    where
        F: FnMut(&[Arc<Job>]) -> bool,
    {
        let jobs = Api::namespaced(self.client.clone(), &self.ns);
        let selected = watcher::Config::default().labels(&format!("crew.dev/execution={name}"));
        wait_list(jobs, selected, limit, until).await
    }

    /// Follows the pods that the label selector `labels` picks until `until` holds for them; returns them.
    pub async fn wait_pods<F>(&self, labels: &str, limit: Duration, until: Named<F>) -> Vec<Pod>
    where
        F: FnMut(&[Arc<Pod>]) -> bool,
    {
        let pods = Api::namespaced(self.client.clone(), &self.ns);
        wait_list(
            pods,
            watcher::Config::default().labels(labels),
            limit,
            until,
        )
        .await
    }

    /// Follows the Events about execution `name`, as (type, reason) pairs oldest first (what [`events_of`]
    /// lists), until `until` holds for them; returns them.
    pub async fn wait_events<F>(
        &self,
        name: &str,
        limit: Duration,
        until: Named<F>,
    ) -> Vec<(String, String)>
    where
        F: FnMut(&[(String, String)]) -> bool,
    {
        let Named { what, mut test } = until;
        let events: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        let about = when_list(
            format!("Events about {name}: {what}"),
            |all: &[Arc<Event>]| test(&event_pairs(all.iter().map(Arc::as_ref), name)),
        );
        let seen = wait_list(events, watcher::Config::default(), limit, about).await;
        event_pairs(seen.iter(), name)
    }

    /// kubectl in this namespace (async: the operator keeps running meanwhile).
    pub async fn kubectl(&self, args: &[&str]) -> (bool, String) {
        let plane = plane();
        let output = tokio::process::Command::new(plane.bin.join("kubectl"))
            .arg("--kubeconfig")
            .arg(&plane.kubeconfig)
            .args(["-n", self.ns.as_str()])
            .args(args)
            .output()
            .await;
        outcome(output)
    }
}

/// Names of the Jobs labelled for the execution `name`, sorted.
pub async fn job_names(t: &TestNs, name: &str) -> Vec<String> {
    let mut names: Vec<_> = jobs_of(t, name)
        .await
        .into_iter()
        .filter_map(|j| j.metadata.name)
        .collect();
    names.sort();
    names
}

/// How many of `jobs` there are per (step, attempt) label pair: one each when no attempt was ever duplicated.
pub fn jobs_per_attempt(
    jobs: &[k8s_openapi::api::batch::v1::Job],
) -> std::collections::BTreeMap<(String, String), usize> {
    let mut counts = std::collections::BTreeMap::new();
    for job in jobs {
        let labels = job.labels();
        let key = (
            labels.get("crew.dev/step").cloned().unwrap_or_default(),
            labels.get("crew.dev/attempt").cloned().unwrap_or_default(),
        );
        *counts.entry(key).or_default() += 1;
    }
    counts
}

/// `status.phase` as a string ("" before the first status write).
pub fn phase_of(cx: &CrewExecution) -> String {
    cx.status
        .as_ref()
        .and_then(|s| s.phase)
        .map(|p| p.to_string())
        .unwrap_or_default()
}

/// (type, reason) of the Events about execution `name`, oldest first.
pub async fn events_of(t: &TestNs, name: &str) -> Vec<(String, String)> {
    let api: Api<Event> = Api::namespaced(t.client.clone(), &t.ns);
    let events = api
        .list(&kube::api::ListParams::default())
        .await
        .expect("list events")
        .items;
    event_pairs(events.iter(), name)
}

/// (type, reason) of those of `events` about `name`, oldest first (by name where the time is equal).
fn event_pairs<'a>(events: impl Iterator<Item = &'a Event>, name: &str) -> Vec<(String, String)> {
    let mut about: Vec<&Event> = events
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect();
    about.sort_by_key(|e| (e.event_time.clone().map(|t| t.0), e.metadata.name.clone()));
    about
        .into_iter()
        .map(|e| {
            (
                e.type_.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// The Jobs labelled for execution `name`.
pub async fn jobs_of(t: &TestNs, name: &str) -> Vec<k8s_openapi::api::batch::v1::Job> {
    let api: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(t.client.clone(), &t.ns);
    api.list(&kube::api::ListParams::default().labels(&format!("crew.dev/execution={name}")))
        .await
        .expect("list jobs")
        .items
}

/// The reasons of the execution's history entries, oldest first.
pub fn history_reasons(cx: &CrewExecution) -> Vec<String> {
    cx.status
        .as_ref()
        .map(|s| s.history.iter().map(|h| h.reason.clone()).collect())
        .unwrap_or_default()
}

/// (status code, body) of `GET path` on `addr` (HTTP/1.0, so the server closes the connection after the body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    http_exchange(
        addr,
        &format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n"),
    )
    .await
}

/// (status code, body) of an HTTP/1.0 `request` sent to `addr` ((0, "") when there is no answer).
pub async fn http_exchange(addr: std::net::SocketAddr, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return (0, String::new());
    };
    if stream.write_all(request.as_bytes()).await.is_err() {
        return (0, String::new());
    }
    let mut response = String::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await;
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// Starts the operator binary for the namespace (no leader election: one process at a time here).
pub fn operator_process(t: &TestNs, log: &std::path::Path) -> tokio::process::Child {
    operator_process_with(t, log, &[])
}

/// [`operator_process`] with `extra` arguments.
pub fn operator_process_with(
    t: &TestNs,
    log: &std::path::Path,
    extra: &[&str],
) -> tokio::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("operator log");
    tokio::process::Command::new(operator_bin())
        .args(["run", "--namespace", &t.ns, "--metrics-addr", "127.0.0.1:0"])
        .args(["--progress-addr", "127.0.0.1:0"])
        .args(["--log-level", "info"])
        .args(extra)
        .env("KUBECONFIG", &plane().kubeconfig)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start crew-operator")
}

/// Problems with one finished execution's record: a history that is not one chain from Pending to exactly one
/// terminal entry at its end.
pub fn history_problems(cx: &CrewExecution) -> Vec<String> {
    let name = cx.name_any();
    let Some(status) = cx.status.as_ref() else {
        return vec![format!("{name}: no status")];
    };
    let mut problems = Vec::new();
    let mut phase = Phase::Pending;
    for (i, entry) in status.history.iter().enumerate() {
        if entry.from != phase {
            problems.push(format!(
                "{name}: entry {i} moves from {} after {phase}",
                entry.from
            ));
        }
        if entry.from.is_terminal() {
            problems.push(format!("{name}: entry {i} after the terminal phase"));
        }
        phase = entry.to;
    }
    let terminal = status
        .history
        .iter()
        .filter(|e| e.to.is_terminal() && e.from != e.to)
        .count();
    if terminal != 1 {
        problems.push(format!("{name}: {terminal} terminal entries"));
    }
    problems
}

/// A token of `pod`'s ServiceAccount for `audience`, bound to the pod, as the kubelet projects it (TokenRequest).
pub async fn pod_token(client: &Client, pod: &Pod, audience: &str) -> String {
    let account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let request: k8s_openapi::api::authentication::v1::TokenRequest =
        serde_json::from_value(serde_json::json!({"spec": {
            "audiences": [audience], "expirationSeconds": 600,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod.metadata.name, "uid": pod.metadata.uid}
        }}))
        .expect("token request");
    Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(client.clone(), &namespace)
        .create_token_request(&account, &PostParams::default(), &request)
        .await
        .expect("a token")
        .status
        .expect("token status")
        .token
}

/// A token of ServiceAccount `account` of `namespace` with the API server's own audience (as a user's would be).
pub async fn account_token(client: &kube::Client, namespace: &str, account: &str) -> String {
    use k8s_openapi::api::core::v1::ServiceAccount;
    let accounts: kube::Api<ServiceAccount> = kube::Api::namespaced(client.clone(), namespace);
    let object: ServiceAccount =
        serde_json::from_value(serde_json::json!({"metadata": {"name": account}})).unwrap();
    let _ = accounts.create(&Default::default(), &object).await;
    let request: k8s_openapi::api::authentication::v1::TokenRequest =
        serde_json::from_value(serde_json::json!({"spec": {"expirationSeconds": 600}})).unwrap();
    accounts
        .create_token_request(account, &Default::default(), &request)
        .await
        .expect("a token")
        .status
        .expect("token status")
        .token
}

/// The pod of step `index` (`step`) of `execution` once that step runs, and a token it could present to the
/// operator's progress endpoint (as the worker would read it from its projected volume).
pub async fn running_worker(
    t: &TestNs,
    execution: &str,
    index: usize,
    step: &str,
) -> (Pod, String) {
    t.wait_for(
        execution,
        Duration::from_secs(60),
        conditions::step_is(index, crew_api::StepPhase::Running),
    )
    .await;
    let pod = t
        .wait_pods(
            &format!("crew.dev/execution={execution},crew.dev/step={step}"),
            Duration::from_secs(60),
            conditions::some(),
        )
        .await
        .remove(0);
    let token = pod_token(&t.client, &pod, crew_core::build::progress_token::AUDIENCE).await;
    (pod, token)
}

/// `POST path` to the progress endpoint at `addr` with a worker's `token`: (status, body).
pub async fn post_as_worker(
    addr: std::net::SocketAddr,
    token: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, String) {
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    http_exchange(addr, &request).await
}

/// Lets a simulated pod that hangs (`sim.crew.dev/hang`) finish now.
pub async fn let_finish(t: &TestNs, pod: &Pod) {
    Api::<Pod>::namespaced(t.client.clone(), &t.ns)
        .patch(
            &pod.name_any(),
            &Default::default(),
            &kube::api::Patch::Merge(serde_json::json!({"metadata": {"annotations": {
                "sim.crew.dev/hang": "false", "sim.crew.dev/duration": "0"}}})),
        )
        .await
        .expect("let the pod finish");
}

/// Lets ServiceAccount `account` of `t`'s namespace do what `rules` (a YAML flow list of PolicyRules) allow there,
/// and nothing elsewhere: a Role `name` and its RoleBinding.
pub async fn grant_in_namespace(t: &TestNs, account: &str, name: &str, rules: &str) {
    let yaml = format!(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: {name}, namespace: {ns}}}
rules: {rules}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {name}, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {name}}}
subjects: [{{kind: ServiceAccount, name: {account}, namespace: {ns}}}]
",
        ns = t.ns
    );
    let file = std::env::temp_dir().join(format!("rbac-{name}-{}.yaml", t.ns));
    std::fs::write(&file, yaml).expect("write RBAC");
    let (ok, out) = t.kubectl(&["apply", "-f", &file.to_string_lossy()]).await;
    assert!(ok, "{out}");
}
