//! CrewSinks on the real control plane: every transition reaches the receiver as a CloudEvent (parsed by the
//! CloudEvents SDK), in order per execution, with stable ids; at least once across failures and restarts.
//!
//! What each test holds the operator to: a failing receiver gets everything once it recovers, and the sink's
//! status says so; a killed operator loses no event (duplicates and latency printed); selectors and `types`
//! filter; a leader failover loses nothing; a receiver that never answers does not slow the runs (latency printed against a namespace without
//! sinks); a run deleted while its events wait is held until they are delivered; Secrets are used only when
//! opted in, and signatures verify; a held run can be released by hand, and is released when its sink is deleted
//! or suspended; what a sink costs in writes (printed).

mod support;

use cloudevents::AttributesReader;
use crew_api::{CrewExecution, CrewSink};
use crew_operator::metrics::WriteKind;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::conditions::counts_by_phase;
use support::observed::Observed;
use support::receiver::{Received, Receiver};
use support::wait::{Named, wait_object, wait_until, when_list, when_object};
use support::{Operator, TestNs, phase_of};

const LIMIT: Duration = Duration::from_secs(60);
/// How long a sink's status may take to show a change: its checkpoint interval, and the write.
const CHECKPOINT: Duration = Duration::from_secs(7);
/// The finalizer that holds an execution while a sink has something of it to deliver.
const RETAIN: &str = "crew.dev/retain";

impl Observed for CrewSink {
    fn line(&self) -> String {
        let status = self.status.clone().unwrap_or_default();
        format!(
            "{} delivered={} failed={} pending={} ready={:?} deliveredUpTo={:?} lastError={:?}",
            self.name_any(),
            status.delivered,
            status.failed,
            status.pending,
            ready_of(self),
            status.delivered_up_to.map(|t| t.0.to_string()),
            status.last_error
        )
    }
}

/// The CrewSinks of `t`'s namespace.
fn sinks(t: &TestNs) -> Api<CrewSink> {
    Api::namespaced(t.client.clone(), &t.ns)
}

/// The status of the sink's `Ready` condition ("True", "False"), once written.
fn ready_of(sink: &CrewSink) -> Option<String> {
    sink.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

/// Follows sink `name` until `until` holds; returns it as then seen.
async fn wait_sink<F>(t: &TestNs, name: &str, limit: Duration, until: Named<F>) -> CrewSink
where
    F: FnMut(Option<&CrewSink>) -> bool,
{
    wait_object(sinks(t), name, limit, until).await
}

/// The ids a sink that wants everything gets about `cx`, in order: one per history entry, and `completed`.
fn expected_ids(cx: &CrewExecution) -> Vec<String> {
    crew_core::notify::events::transitions(cx, None)
        .into_iter()
        .map(|n| n.id)
        .collect()
}

/// (type, reason) of each event a sink that wants everything gets about `cx`, read from its history as the README
/// describes them (not with the operator's code): a phase change is `execution.state_changed`, and also
/// `execution.completed` when the phase is terminal; a step's transition within a phase is `step.state_changed`.
fn story_of(cx: &CrewExecution) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in cx.status.iter().flat_map(|s| &s.history) {
        if entry.from == entry.to {
            out.push(("step.state_changed".to_string(), entry.reason.clone()));
            continue;
        }
        out.push(("execution.state_changed".to_string(), entry.reason.clone()));
        if entry.to.is_terminal() {
            out.push(("execution.completed".to_string(), entry.reason.clone()));
        }
    }
    out
}

/// The ids of `events`, in arrival order.
fn ids(events: &[Received]) -> Vec<String> {
    events.iter().map(Received::id).collect()
}

/// Whether `cx` carries the operator's finalizer.
fn retained(cx: &CrewExecution) -> bool {
    cx.finalizers().iter().any(|f| f == RETAIN)
}

/// The ids of `events` in the order they first arrived (duplicates left out).
fn first_arrivals(events: &[Received]) -> Vec<String> {
    let mut seen = HashSet::new();
    events
        .iter()
        .map(Received::id)
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

/// What each of `executions` should reach a sink that wants everything as: its name → its ids, in order.
fn expected_by_name(executions: &[CrewExecution]) -> BTreeMap<String, Vec<String>> {
    executions
        .iter()
        .map(|cx| (cx.name_any(), expected_ids(cx)))
        .collect()
}

/// Creates an execution from each of `yamls`, 16 at a time.
async fn create_all(t: &TestNs, yamls: &[String]) {
    futures::stream::iter(yamls)
        .for_each_concurrent(16, |yaml| async move {
            t.create(yaml).await;
        })
        .await;
}

/// The `q` quantile of `samples` (nearest rank; zero when there are none).
fn quantile(samples: &[Duration], q: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Stops `op` as a crash would. Aborting its task (`Operator::kill`) leaves the tasks it spawned running in this
/// process (the sinks' watch and deliveries, the checkpoint), which a killed process would not: they are made
/// inert (a standby delivers and writes nothing) and the sinks' delivery states dropped (aborting their tasks).
async fn crash(op: Operator) {
    let ctx = op.ctx.clone();
    op.kill().await;
    ctx.set_leading(false);
    ctx.notify.sinks().clear();
}

/// Waits until `op` has listed its caches and may act (so that its start-up is not measured).
async fn ready(op: &Operator) {
    wait_until(LIMIT, "the operator ready to act", || async {
        op.ctx.readiness().may_act()
    })
    .await;
}

/// Creates Secret `name` in `t`'s namespace holding `value` under `key`, opted in for sinks or not.
async fn create_secret(t: &TestNs, name: &str, key: &str, value: &str, opted_in: bool) {
    let labels = if opted_in {
        json!({"crew.dev/sink-credentials": "true"})
    } else {
        json!({})
    };
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": t.ns, "labels": labels},
        "stringData": {key: value},
    }))
    .expect("a Secret");
    Api::<Secret>::namespaced(t.client.clone(), &t.ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the Secret");
}

/// The hex HMAC-SHA256 of `body` under `key`, computed here (not with the operator's code).
fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Follows the Jobs of `t`'s namespace from now on: when the first Job of each execution was seen. Returns once
/// the watch has listed.
async fn first_jobs(
    t: &TestNs,
) -> (
    Arc<Mutex<HashMap<String, Instant>>>,
    tokio::task::JoinHandle<()>,
) {
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let (listed_tx, listed_rx) = tokio::sync::oneshot::channel();
    let jobs: Api<Job> = Api::namespaced(t.client.clone(), &t.ns);
    let record = seen.clone();
    let task = tokio::spawn(async move {
        let mut listed = Some(listed_tx);
        let mut events = std::pin::pin!(watcher(
            jobs,
            watcher::Config::default().labels("crew.dev/execution")
        ));
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(job) | watcher::Event::InitApply(job)) => {
                    if let Some(execution) = job.labels().get("crew.dev/execution") {
                        record
                            .lock()
                            .expect("the record")
                            .entry(execution.clone())
                            .or_insert_with(Instant::now);
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    if let Some(listed) = listed.take() {
                        let _ = listed.send(());
                    }
                }
                _ => {}
            }
        }
    });
    listed_rx.await.expect("the Job watch lists");
    (seen, task)
}

/// Between two creates of [`create_to_first_job`]: 30 runs then arrive over about 3 s, longer than a hanging
/// delivery's timeout and its retry.
const CREATE_INTERVAL: Duration = Duration::from_millis(100);

/// Creates `count` one-step executions named `prefix-N` one after another in `t`'s namespace and returns, for
/// each, the time from just before its create call to its first Job being seen.
async fn create_to_first_job(t: &TestNs, prefix: &str, count: usize) -> Vec<Duration> {
    let (seen, watch) = first_jobs(t).await;
    let mut created = HashMap::new();
    for i in 0..count {
        let name = format!("{prefix}-{i:02}");
        created.insert(name.clone(), Instant::now());
        t.create(&one_step(&name, "300ms", "{}")).await;
        tokio::time::sleep(CREATE_INTERVAL).await;
    }
    let names: Vec<String> = created.keys().cloned().collect();
    wait_until(LIMIT, &format!("a Job for each of {count} runs"), || {
        let (seen, names) = (seen.clone(), names.clone());
        async move {
            let seen = seen.lock().expect("the record");
            names.iter().all(|name| seen.contains_key(name))
        }
    })
    .await;
    watch.abort();
    let seen = seen.lock().expect("the record");
    created
        .iter()
        .map(|(name, at)| seen[name].duration_since(*at))
        .collect()
}

/// A one-step execution named `name` whose worker runs for `duration`, labelled `labels` (YAML flow mapping).
fn one_step(name: &str, duration: &str, labels: &str) -> String {
    format!(
        "metadata: {{name: {name}, labels: {labels}}}\nspec: {{image: busybox, podAnnotations: {{sim.crew.dev/duration: {duration}}}}}\n"
    )
}

/// Creates a CrewSink named `name` in `t`'s namespace sending to `receiver`, with `extra` spec fields.
async fn create_sink(
    t: &TestNs,
    name: &str,
    receiver: &Receiver,
    extra: serde_json::Value,
) -> CrewSink {
    let mut spec = serde_json::json!({"url": receiver.url(), "retry": {"limit": 20, "backoffSeconds": 1, "maxBackoffSeconds": 2}});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    let sink: CrewSink = serde_json::from_value(serde_json::json!({
        "apiVersion": "crew.dev/v1alpha1", "kind": "CrewSink",
        "metadata": {"name": name, "namespace": t.ns}, "spec": spec,
    }))
    .expect("a CrewSink");
    Api::<CrewSink>::namespaced(t.client.clone(), &t.ns)
        .create(&PostParams::default(), &sink)
        .await
        .expect("create the sink")
}

/// (type, reason) of each event, in arrival order.
fn story(events: &[Received]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|r| {
            (
                r.kind().trim_start_matches("dev.crew.").to_string(),
                r.data()["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_transition_reaches_the_sink_in_order_as_cloudevents() {
    let t = TestNs::new("notify-order", Duration::from_millis(300)).await;
    let receiver = Receiver::start().await;
    let structured = Receiver::start().await;
    create_sink(&t, "binary", &receiver, serde_json::json!({})).await;
    create_sink(
        &t,
        "structured",
        &structured,
        serde_json::json!({"mode": "structured"}),
    )
    .await;
    let op = t.start_operator();
    t.create(
        "metadata: {name: flaky, labels: {team: a}}\nspec:\n  image: busybox\n  retry: {limit: 2, backoffSeconds: 1}\n  \
         steps: [{name: research, podAnnotations: {sim.crew.dev/fail-attempts: \"1\"}}, {name: write}]\n",
    )
    .await;
    t.wait_phase("flaky", "Succeeded", LIMIT).await;
    let expected = [
        ("execution.state_changed", "Started"),
        ("step.state_changed", "RetryScheduled"),
        ("step.state_changed", "StepStarted"),
        ("step.state_changed", "StepSucceeded"),
        ("execution.state_changed", "Succeeded"),
        ("execution.completed", "Succeeded"),
    ];
    for sink in [&receiver, &structured] {
        sink.wait_for(LIMIT, "every transition of flaky", |all| {
            all.len() >= expected.len()
        })
        .await;
        let events = sink.about("flaky");
        let got = story(&events);
        let want: Vec<(String, String)> = expected
            .iter()
            .map(|(k, r)| (k.to_string(), r.to_string()))
            .collect();
        assert_eq!(got, want, "in order, each once");
        for event in &events {
            assert!(
                event.error.is_none(),
                "the SDK parses it: {:?}",
                event.error
            );
            let e = event.event.as_ref().expect("an event");
            assert_eq!(e.specversion().to_string(), "1.0");
            assert_eq!(
                e.source().to_string(),
                format!(
                    "/apis/crew.dev/v1alpha1/namespaces/{}/crewexecutions/flaky",
                    t.ns
                )
            );
            assert_eq!(e.subject(), Some("flaky"));
            assert!(e.time().is_some());
            let data = event.data();
            assert_eq!(data["namespace"], t.ns.as_str());
            assert_eq!(data["labels"]["team"], "a");
            assert!(
                data["uid"]
                    .as_str()
                    .is_some_and(|uid| event.id().starts_with(uid))
            );
        }
        let attempts: Vec<_> = events.iter().map(|e| e.data()["attempt"].clone()).collect();
        assert_eq!(attempts[1], 1, "the failed attempt");
        assert_eq!(attempts[2], 2, "the retry");
        let completed = events.last().expect("completed").data();
        assert_eq!(completed["previousPhase"], "Running");
        assert_eq!(completed["progress"], 100);
        assert!(completed["durationSeconds"].as_i64().is_some());
    }
    // Both sinks got the same ids: stable, one per transition.
    let ids = |r: &Receiver| {
        r.about("flaky")
            .iter()
            .map(Received::id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&receiver), ids(&structured));
    // Structured mode is one document; binary mode puts the attributes in headers.
    assert!(
        structured.all()[0].headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/cloudevents+json")
    );
    assert!(receiver.all()[0].headers.contains_key("ce-id"));
    // The run let go of its finalizer once its end was delivered.
    let done = t
        .wait_for(
            "flaky",
            LIMIT,
            support::wait::when_object("no finalizer", |cx: &crew_api::CrewExecution| {
                cx.metadata.finalizers.as_ref().is_none_or(Vec::is_empty)
            }),
        )
        .await;
    assert_eq!(done.status.unwrap().phase, Some(crew_api::Phase::Succeeded));
    op.stop().await;
}

/// A receiver that refuses its first 8 requests (503) still gets every event of every run, in order per run and
/// each once; afterwards the sink's status counts them all delivered and none failed, is Ready again, keeps the
/// refusal as its last error, and its delivery position has passed the last transition.
#[tokio::test]
async fn a_sink_that_fails_then_recovers_gets_everything_in_order() {
    const RUNS: usize = 5;
    const REFUSED: usize = 8;
    let t = TestNs::new("notify-recover", Duration::from_millis(300)).await;
    let receiver = Receiver::start().await;
    receiver
        .behaviour()
        .refuse_first
        .store(REFUSED, Ordering::Relaxed);
    create_sink(&t, "recovering", &receiver, json!({})).await;
    let op = t.start_operator();
    let yamls: Vec<String> = (0..RUNS)
        .map(|i| {
            format!("metadata: {{name: run-{i}}}\nspec: {{image: busybox, steps: [{{name: a}}, {{name: b}}]}}\n")
        })
        .collect();
    create_all(&t, &yamls).await;
    let done = t
        .wait_executions(LIMIT, counts_by_phase(&[("Succeeded", RUNS)]))
        .await;
    let expected = expected_by_name(&done);
    let total: usize = expected.values().map(Vec::len).sum();
    receiver
        .wait_for(LIMIT, "every event of every run", |all| all.len() >= total)
        .await;
    for cx in &done {
        let name = cx.name_any();
        let got = receiver.about(&name);
        assert_eq!(
            ids(&got),
            expected[&name],
            "{name}: every event, in order, each once"
        );
        assert_eq!(story(&got), story_of(cx), "{name}: what its history says");
    }
    let refused = receiver.all().iter().filter(|r| r.answered == 503).count();
    assert_eq!(refused, REFUSED, "the receiver refused its first requests");
    let newest = done
        .iter()
        .filter_map(|cx| cx.status.as_ref()?.history.last().map(|e| e.time.0))
        .max()
        .expect("transitions");
    let sink = wait_sink(
        &t,
        "recovering",
        CHECKPOINT,
        when_object(
            format!("{total} delivered, Ready True, delivered up to {newest}"),
            move |sink: &CrewSink| {
                let status = sink.status.clone().unwrap_or_default();
                status.delivered == total as u64
                    && ready_of(sink).as_deref() == Some("True")
                    && status.delivered_up_to.is_some_and(|t| t.0 >= newest)
            },
        ),
    )
    .await;
    let status = sink.status.unwrap_or_default();
    assert_eq!((status.failed, status.pending), (0, 0), "{status:?}");
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("503")),
        "the refusals are recorded: {:?}",
        status.last_error
    );
    op.stop().await;
}

/// 200 one-step runs; the operator is killed once a third of them have succeeded and another one started: every
/// run's events (its start, its end, completed) reach the receiver at least once, the first arrivals of each run in
/// order. Prints how many arrived twice, and the delivery latency.
#[tokio::test]
async fn a_killed_operator_loses_no_event_in_a_burst_of_200_executions() {
    const RUNS: usize = 200;
    let t = TestNs::new("notify-kill", Duration::from_millis(500)).await;
    let receiver = Receiver::start().await;
    create_sink(&t, "burst", &receiver, json!({})).await;
    let first = t.start_operator();
    let yamls: Vec<String> = (0..RUNS)
        .map(|i| one_step(&format!("burst-{i:03}"), "500ms", "{}"))
        .collect();
    let started = Instant::now();
    let (killed_at, second) = tokio::join!(create_all(&t, &yamls), async {
        t.wait_executions(
            LIMIT,
            when_list(
                format!("{} succeeded", RUNS / 3),
                |all: &[Arc<CrewExecution>]| {
                    all.iter().filter(|cx| phase_of(cx) == "Succeeded").count() >= RUNS / 3
                },
            ),
        )
        .await;
        crash(first).await;
        (started.elapsed(), t.start_operator())
    })
    .1;
    let done = t
        .wait_executions(
            Duration::from_secs(120),
            counts_by_phase(&[("Succeeded", RUNS)]),
        )
        .await;
    let expected = expected_by_name(&done);
    for (name, want) in &expected {
        assert_eq!(want.len(), 3, "{name}: started, succeeded, completed");
    }
    let all_ids: HashSet<String> = expected.values().flatten().cloned().collect();
    let missing = || {
        let got: HashSet<String> = receiver.acknowledged().iter().map(Received::id).collect();
        let mut missing: Vec<(String, String)> = done
            .iter()
            .flat_map(|cx| crew_core::notify::events::transitions(cx, None))
            .filter(|n| !got.contains(&n.id))
            .map(|n| (n.data.execution, n.kind.as_str().to_string()))
            .collect();
        missing.sort();
        missing
    };
    let deadline = Instant::now() + LIMIT;
    while !missing().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lost = missing();
    assert!(
        lost.is_empty(),
        "{} of {} events never arrived (killed at {killed_at:.1?}; {}): {:?}",
        lost.len(),
        all_ids.len(),
        sinks(&t).get("burst").await.expect("the sink").line(),
        &lost[..lost.len().min(30)]
    );
    let acknowledged = receiver.acknowledged();
    for (name, want) in &expected {
        let about: Vec<Received> = acknowledged
            .iter()
            .filter(|r| r.execution() == *name)
            .cloned()
            .collect();
        assert_eq!(
            &first_arrivals(&about),
            want,
            "{name}: every event, first arrivals in order"
        );
    }
    let mut latencies = Vec::new();
    let mut seen = HashSet::new();
    for event in &acknowledged {
        if seen.insert(event.id()) {
            latencies.push(event.latency().unwrap_or_default());
        }
    }
    let (total, distinct) = (acknowledged.len(), seen.len());
    eprintln!(
        "burst of {RUNS} runs, operator killed at {killed_at:.1?}: {total} events received, {distinct} distinct, \
         {} duplicates; delivery latency (event time, whole seconds, to arrival) p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        total - distinct,
        quantile(&latencies, 0.5),
        quantile(&latencies, 0.99),
        quantile(&latencies, 1.0),
    );
    assert_eq!(distinct, all_ids.len(), "nothing but these runs' events");
    second.stop().await;
}

/// An operator replica (the binary, leader election on) with its log in the temporary directory.
fn replica(t: &TestNs, name: &str) -> tokio::process::Child {
    let log = std::fs::File::create(std::env::temp_dir().join(format!("{}-{name}.log", t.ns)))
        .expect("replica log");
    tokio::process::Command::new(support::operator_bin())
        .args(["run", "--namespace", &t.ns, "--leader-election"])
        .args(["--lease-namespace", &t.ns, "--instance", name])
        .args([
            "--metrics-addr",
            "127.0.0.1:0",
            "--progress-addr",
            "127.0.0.1:0",
        ])
        .args(["--log-level", "info"])
        .env("KUBECONFIG", &support::plane().kubeconfig)
        .env_remove("POD_NAME")
        .env_remove("POD_NAMESPACE")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start crew-operator")
}

/// Two replicas with leader election (processes); the leader is SIGKILLed once a third of 60 runs have
/// succeeded: the new leader delivers from the sink's recorded position, and every run's events reach the
/// receiver, the first arrivals of each run in order. Prints the duplicates the failover cost.
#[tokio::test]
async fn a_leader_failover_loses_no_event() {
    const RUNS: usize = 60;
    let t = TestNs::new("notify-failover", Duration::from_millis(500)).await;
    let receiver = Receiver::start().await;
    create_sink(&t, "failover", &receiver, json!({})).await;
    let mut replicas = HashMap::from([("a", replica(&t, "a")), ("b", replica(&t, "b"))]);
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(t.client.clone(), &t.ns);
    let lease = wait_object(
        leases.clone(),
        "crew-operator",
        LIMIT,
        support::conditions::held(),
    )
    .await;
    let leader = support::conditions::holder_of(&lease)
        .expect("a holder")
        .to_string();
    let standby = if leader == "a" { "b" } else { "a" };
    let yamls: Vec<String> = (0..RUNS)
        .map(|i| one_step(&format!("run-{i:02}"), "500ms", "{}"))
        .collect();
    create_all(&t, &yamls).await;
    t.wait_executions(
        LIMIT,
        when_list(
            format!("{} succeeded", RUNS / 3),
            |all: &[Arc<CrewExecution>]| {
                all.iter().filter(|cx| phase_of(cx) == "Succeeded").count() >= RUNS / 3
            },
        ),
    )
    .await;
    let mut killed = replicas
        .remove(leader.as_str())
        .expect("the leader's process");
    killed.start_kill().expect("SIGKILL the leader");
    let _ = killed.wait().await;
    wait_object(
        leases,
        "crew-operator",
        LIMIT,
        support::conditions::held_by(standby),
    )
    .await;
    let done = t
        .wait_executions(
            Duration::from_secs(120),
            counts_by_phase(&[("Succeeded", RUNS)]),
        )
        .await;
    let expected = expected_by_name(&done);
    let all_ids: HashSet<String> = expected.values().flatten().cloned().collect();
    receiver
        .wait_for(LIMIT, "every event of every run", |all| {
            let got: HashSet<String> = all.iter().map(Received::id).collect();
            all_ids.is_subset(&got)
        })
        .await;
    let acknowledged = receiver.acknowledged();
    for (name, want) in &expected {
        let about: Vec<Received> = acknowledged
            .iter()
            .filter(|r| r.execution() == *name)
            .cloned()
            .collect();
        assert_eq!(
            &first_arrivals(&about),
            want,
            "{name}: every event, first arrivals in order"
        );
    }
    let distinct: HashSet<String> = acknowledged.iter().map(Received::id).collect();
    assert_eq!(distinct, all_ids, "nothing but these runs' events");
    eprintln!(
        "leader failover during {RUNS} runs: {} events received, {} distinct, {} duplicates",
        acknowledged.len(),
        distinct.len(),
        acknowledged.len() - distinct.len()
    );
    drop(replicas);
}

/// A sink with a label selector gets only the runs it selects; a sink with `types` only those types; a sink with
/// neither gets everything. Their statuses count exactly that.
#[tokio::test]
async fn a_selector_and_types_limit_what_a_sink_gets() {
    let t = TestNs::new("notify-filter", Duration::from_millis(300)).await;
    let everything = Receiver::start().await;
    let team_a = Receiver::start().await;
    let completed = Receiver::start().await;
    create_sink(&t, "everything", &everything, json!({})).await;
    create_sink(
        &t,
        "team-a",
        &team_a,
        json!({"selector": {"matchLabels": {"team": "a"}}}),
    )
    .await;
    create_sink(
        &t,
        "completed",
        &completed,
        json!({"types": ["dev.crew.execution.completed"]}),
    )
    .await;
    let op = t.start_operator();
    t.create(&one_step("of-a", "300ms", "{team: a}")).await;
    t.create(&one_step("of-b", "300ms", "{team: b}")).await;
    let done = t
        .wait_executions(LIMIT, counts_by_phase(&[("Succeeded", 2)]))
        .await;
    let expected = expected_by_name(&done);
    let total: usize = expected.values().map(Vec::len).sum();
    everything
        .wait_for(LIMIT, "every event", |all| all.len() >= total)
        .await;
    // The statuses say when each sink has nothing left to send.
    for (sink, delivered) in [
        ("everything", total),
        ("team-a", expected["of-a"].len()),
        ("completed", 2),
    ] {
        wait_sink(
            &t,
            sink,
            LIMIT,
            when_object(
                format!("{delivered} delivered, none pending"),
                move |s: &CrewSink| {
                    s.status
                        .as_ref()
                        .is_some_and(|st| st.delivered == delivered as u64 && st.pending == 0)
                },
            ),
        )
        .await;
    }
    for name in ["of-a", "of-b"] {
        assert_eq!(ids(&everything.about(name)), expected[name], "{name}");
    }
    assert_eq!(
        ids(&team_a.all()),
        expected["of-a"],
        "the selector: of-a only"
    );
    let uid = |name: &str| {
        done.iter()
            .find(|cx| cx.name_any() == name)
            .and_then(|cx| cx.uid())
            .expect("a uid")
    };
    let mut got: Vec<(String, String)> =
        completed.all().iter().map(|r| (r.kind(), r.id())).collect();
    got.sort();
    let mut want = vec![
        (
            "dev.crew.execution.completed".to_string(),
            format!("{}.completed", uid("of-a")),
        ),
        (
            "dev.crew.execution.completed".to_string(),
            format!("{}.completed", uid("of-b")),
        ),
    ];
    want.sort();
    assert_eq!(got, want, "types: completed only, one per run");
    op.stop().await;
}

/// A receiver that never answers (the sink gives up on each attempt after 2 s) does not slow the runs of its
/// namespace: from create to the first Job, 30 runs with such a sink take about as long as 30 runs in a namespace
/// without sinks.
#[tokio::test]
async fn a_receiver_that_never_answers_does_not_slow_the_runs() {
    const RUNS: usize = 30;
    let quiet = TestNs::new("notify-nosink", Duration::from_millis(300)).await;
    let op = quiet.start_operator();
    ready(&op).await;
    // The first run after a start is slower (about 2 s): both namespaces warm up first.
    create_to_first_job(&quiet, "warmup", crew_operator::notify::sink::PARALLEL).await;
    let without = create_to_first_job(&quiet, "plain", RUNS).await;
    op.stop().await;

    let t = TestNs::new("notify-hang", Duration::from_millis(300)).await;
    let receiver = Receiver::start().await;
    receiver.behaviour().hang.store(true, Ordering::Relaxed);
    create_sink(&t, "hanging", &receiver, json!({"timeoutSeconds": 2})).await;
    let op = t.start_operator();
    ready(&op).await;
    // First fill every delivery slot of the sink with a request that hangs.
    let warmup: Vec<String> = (0..crew_operator::notify::sink::PARALLEL)
        .map(|i| one_step(&format!("warmup-{i}"), "300ms", "{}"))
        .collect();
    create_all(&t, &warmup).await;
    wait_until(LIMIT, "every delivery slot hanging", || async {
        receiver.started() >= crew_operator::notify::sink::PARALLEL
    })
    .await;
    let with = create_to_first_job(&t, "hung", RUNS).await;
    let hanging_requests = receiver.started();
    op.stop().await;
    receiver.behaviour().hang.store(false, Ordering::Relaxed);

    let (p50, p99) = (quantile(&without, 0.5), quantile(&without, 0.99));
    let (hung_p50, hung_p99) = (quantile(&with, 0.5), quantile(&with, 0.99));
    eprintln!(
        "create → first Job, {RUNS} runs: without sinks p50 {p50:.2?} p99 {p99:.2?}; with a receiver that never \
         answers ({hanging_requests} requests hung) p50 {hung_p50:.2?} p99 {hung_p99:.2?}"
    );
    assert!(
        hanging_requests > crew_operator::notify::sink::PARALLEL,
        "the sink tried the hanging receiver again meanwhile: {hanging_requests} requests"
    );
    assert!(
        hung_p99 < Duration::from_secs(5) && hung_p99 < p99 * 3 + Duration::from_secs(1),
        "with a hanging receiver p99 {hung_p99:?}, without sinks p99 {p99:?}"
    );
}

/// While its receiver is down, a finished run is not deleted before its events are delivered: neither by its TTL
/// (`ttlSecondsAfterFinished: 0`) nor by `kubectl delete`; it waits with a deletionTimestamp and the finalizer.
/// Once the receiver is back, each run's events arrive, the completed one last, and then the run is gone.
#[tokio::test]
async fn a_deleted_executions_completed_event_still_arrives() {
    let t = TestNs::new("notify-deleted", Duration::from_millis(300)).await;
    let receiver = Receiver::start().await;
    receiver.behaviour().down.store(true, Ordering::Relaxed);
    create_sink(&t, "waiting", &receiver, json!({})).await;
    let op = t.start_operator();
    t.create("metadata: {name: ttl}\nspec: {image: busybox, ttlSecondsAfterFinished: 0}\n")
        .await;
    t.create(&one_step("kept", "300ms", "{}")).await;
    let ttl = t
        .wait_for(
            "ttl",
            LIMIT,
            when_object(
                "deleted by its TTL, held by the finalizer",
                |cx: &CrewExecution| cx.metadata.deletion_timestamp.is_some() && retained(cx),
            ),
        )
        .await;
    assert_eq!(phase_of(&ttl), "Succeeded");
    let kept = t
        .wait_for(
            "kept",
            LIMIT,
            when_object("Succeeded, with the finalizer", |cx: &CrewExecution| {
                phase_of(cx) == "Succeeded" && retained(cx)
            }),
        )
        .await;
    let (deleted, out) = t
        .kubectl(&["delete", "crewexecution", "kept", "--wait=false"])
        .await;
    assert!(deleted, "{out}");
    t.wait_for(
        "kept",
        LIMIT,
        when_object("being deleted", |cx: &CrewExecution| {
            cx.metadata.deletion_timestamp.is_some()
        }),
    )
    .await;
    // The receiver stays down a while: both runs stay, held.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for name in ["ttl", "kept"] {
        let cx = t.executions().get_opt(name).await.expect("read");
        assert!(
            cx.as_ref().is_some_and(retained),
            "{name} is held while its events wait"
        );
    }
    assert!(
        receiver.acknowledged().is_empty(),
        "nothing acknowledged yet"
    );
    assert!(!receiver.all().is_empty(), "the sink tried");
    receiver.behaviour().down.store(false, Ordering::Relaxed);
    for cx in [ttl, kept] {
        let name = cx.name_any();
        let want = expected_ids(&cx);
        let completed = format!("{}.completed", cx.uid().expect("a uid"));
        assert_eq!(want.last(), Some(&completed));
        receiver
            .wait_for(LIMIT, &format!("{name}'s completed event"), |all| {
                all.iter().any(|r| r.id() == completed)
            })
            .await;
        t.wait_deleted(&name, LIMIT).await;
        assert_eq!(
            first_arrivals(&receiver.about(&name)),
            want,
            "{name}: every event, in order"
        );
    }
    op.stop().await;
}

/// A sink naming a Secret nobody opted in (no label `crew.dev/sink-credentials: "true"`) sends nothing, and says
/// why (`lastError`, Ready False); once the Secret is labelled, the deliveries go on, with `Authorization: Bearer
/// <token>`. A signing sink's `x-crew-signature: sha256=<hex>` is the HMAC-SHA256 of the body under its key.
#[tokio::test]
async fn a_sink_secret_is_used_only_when_opted_in() {
    let t = TestNs::new("notify-secret", Duration::from_millis(300)).await;
    let authed = Receiver::start().await;
    let signed = Receiver::start().await;
    create_secret(&t, "hook-token", "token", "s3cret", false).await;
    create_secret(&t, "hook-key", "key", "k3y-for-signing", true).await;
    create_sink(
        &t,
        "authed",
        &authed,
        json!({"auth": {"bearerTokenSecretRef": {"name": "hook-token", "key": "token"}}}),
    )
    .await;
    create_sink(
        &t,
        "signed",
        &signed,
        json!({"signing": {"secretRef": {"name": "hook-key", "key": "key"}}}),
    )
    .await;
    let op = t.start_operator_changed(|s| s.notify.sink_credentials = true);
    t.create(&one_step("one", "300ms", "{}")).await;
    let done = t.wait_phase("one", "Succeeded", LIMIT).await;
    let want = expected_ids(&done);
    let refused = wait_sink(
        &t,
        "authed",
        LIMIT,
        when_object("Ready False: the Secret is not opted in", |s: &CrewSink| {
            ready_of(s).as_deref() == Some("False")
                && s.status
                    .as_ref()
                    .and_then(|st| st.last_error.as_deref())
                    .is_some_and(|e| e.contains("not opted in"))
        }),
    )
    .await;
    assert_eq!(refused.status.unwrap_or_default().delivered, 0);
    assert!(
        authed.all().is_empty(),
        "nothing is sent with a Secret that is not opted in"
    );
    // The namespace's owner opts the Secret in.
    Api::<Secret>::namespaced(t.client.clone(), &t.ns)
        .patch(
            "hook-token",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"crew.dev/sink-credentials": "true"}}})),
        )
        .await
        .expect("label the Secret");
    authed
        .wait_for(LIMIT, "every event of one", |all| all.len() >= want.len())
        .await;
    assert_eq!(ids(&authed.about("one")), want);
    for request in authed.all() {
        assert_eq!(
            request
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer s3cret")
        );
    }
    wait_sink(
        &t,
        "authed",
        CHECKPOINT,
        when_object("Ready True", |s: &CrewSink| {
            ready_of(s).as_deref() == Some("True")
        }),
    )
    .await;
    signed
        .wait_for(LIMIT, "every event of one", |all| all.len() >= want.len())
        .await;
    assert_eq!(ids(&signed.about("one")), want);
    for request in signed.all() {
        let header = request
            .headers
            .get("x-crew-signature")
            .and_then(|v| v.to_str().ok())
            .expect("a signature")
            .to_string();
        assert_eq!(
            header,
            format!("sha256={}", hmac_hex(b"k3y-for-signing", &request.body)),
            "the signature verifies against the body"
        );
        assert_ne!(
            header,
            format!("sha256={}", hmac_hex(b"another key", &request.body))
        );
        assert!(!request.headers.contains_key("authorization"));
    }
    op.stop().await;
}

/// With the operator gone, an execution it holds (finalizer `crew.dev/retain`) can still be deleted: `kubectl
/// delete` leaves it with a deletionTimestamp, and removing the finalizer by hand lets it go (the README's escape
/// hatch).
#[tokio::test]
async fn an_execution_is_released_by_hand_when_the_operator_is_gone() {
    let t = TestNs::new("notify-release", Duration::from_millis(300)).await;
    let receiver = Receiver::start().await;
    create_sink(&t, "any", &receiver, json!({})).await;
    let op = t.start_operator();
    t.create("metadata: {name: held}\nspec: {image: busybox, podAnnotations: {sim.crew.dev/hang: \"true\"}}\n")
        .await;
    t.wait_for(
        "held",
        LIMIT,
        when_object("Running, with the finalizer", |cx: &CrewExecution| {
            phase_of(cx) == "Running" && retained(cx)
        }),
    )
    .await;
    op.stop().await;
    let (deleted, out) = t
        .kubectl(&["delete", "crewexecution", "held", "--wait=false"])
        .await;
    assert!(deleted, "{out}");
    t.wait_for(
        "held",
        LIMIT,
        when_object("being deleted", |cx: &CrewExecution| {
            cx.metadata.deletion_timestamp.is_some()
        }),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = t.executions().get_opt("held").await.expect("read");
    assert!(
        still.as_ref().is_some_and(retained),
        "the finalizer holds it while no operator runs"
    );
    let (released, out) = t
        .kubectl(&[
            "patch",
            "crewexecution",
            "held",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ])
        .await;
    assert!(released, "{out}");
    t.wait_deleted("held", LIMIT).await;
}

/// What a sink costs in writes: each run gets the finalizer once and loses it once (exactly two writes), the sink's
/// status is written at most every 5 s whatever the number of deliveries. Prints the writes per run by kind, and
/// how many of the runs' events the receiver got.
#[tokio::test]
async fn a_sink_costs_each_run_exactly_two_finalizer_writes() {
    const RUNS: usize = 5;
    let t = TestNs::new("notify-writes", Duration::from_millis(300)).await;
    let receiver = Receiver::start().await;
    create_sink(&t, "counted", &receiver, json!({})).await;
    let op = t.start_operator();
    wait_sink(
        &t,
        "counted",
        CHECKPOINT,
        when_object("a status", |s: &CrewSink| s.status.is_some()),
    )
    .await;
    let metrics = op.ctx.metrics.clone();
    let before: Vec<u64> = WriteKind::ALL.iter().map(|k| metrics.writes(*k)).collect();
    let finalizer_before = metrics.writes(WriteKind::Finalizer);
    let finalizer = move |m: &crew_operator::metrics::Metrics| {
        m.writes(WriteKind::Finalizer) - finalizer_before
    };
    let yamls: Vec<String> = (0..RUNS)
        .map(|i| one_step(&format!("counted-{i}"), "300ms", "{}"))
        .collect();
    create_all(&t, &yamls).await;
    // Released: whatever the sink had of them is delivered (or was never offered).
    let done = t
        .wait_executions(
            LIMIT,
            when_list(
                "every run Succeeded, none held",
                |all: &[Arc<CrewExecution>]| {
                    all.len() == RUNS
                        && all
                            .iter()
                            .all(|cx| phase_of(cx) == "Succeeded" && !retained(cx))
                },
            ),
        )
        .await;
    let total: usize = expected_by_name(&done).values().map(Vec::len).sum();
    // The operator counts a write when its answer arrives, and sends Events in the background.
    wait_until(
        Duration::from_secs(5),
        "two finalizer writes per run",
        || {
            let metrics = metrics.clone();
            async move { finalizer(&metrics) >= 2 * RUNS as u64 }
        },
    )
    .await;
    let delivered = receiver.acknowledged().len();
    wait_sink(
        &t,
        "counted",
        CHECKPOINT,
        when_object(format!("{delivered} delivered"), move |s: &CrewSink| {
            s.status
                .as_ref()
                .is_some_and(|st| st.delivered == delivered as u64)
        }),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let per_run: Vec<String> = WriteKind::ALL
        .iter()
        .zip(&before)
        .map(|(kind, before)| (kind, metrics.writes(*kind) - before))
        .filter(|(_, n)| *n > 0)
        .map(|(kind, n)| {
            if *kind == WriteKind::SinkStatus {
                format!("{} {n} in all", kind.label())
            } else {
                format!("{} {:.1}", kind.label(), n as f64 / RUNS as f64)
            }
        })
        .collect();
    eprintln!(
        "writes per one-step run with one sink ({RUNS} runs, {delivered} of their {total} events delivered): {}",
        per_run.join(", ")
    );
    assert_eq!(
        finalizer(&metrics),
        2 * RUNS as u64,
        "the finalizer added once and removed once per run"
    );
    op.stop().await;
}

/// A run created while its sink has nothing to do (its status written, nothing changing) still reaches the sink:
/// the operator offers every transition the executions watch shows, not only those it sees when the sink changes.
#[tokio::test]
async fn a_run_created_while_its_sink_is_idle_reaches_it() {
    let t = TestNs::new("notify-idle", Duration::from_millis(300)).await;
    let receiver = Receiver::start().await;
    create_sink(&t, "idle", &receiver, json!({})).await;
    let op = t.start_operator();
    wait_sink(
        &t,
        "idle",
        CHECKPOINT,
        when_object("a status", |s: &CrewSink| s.status.is_some()),
    )
    .await;
    // Past the next checkpoint: the sink's status is as written and nothing changes.
    tokio::time::sleep(CHECKPOINT).await;
    t.create(&one_step("later", "300ms", "{}")).await;
    let done = t.wait_phase("later", "Succeeded", LIMIT).await;
    let want = expected_ids(&done);
    receiver
        .wait_for(Duration::from_secs(15), "every event of later", |all| {
            all.len() >= want.len()
        })
        .await;
    assert_eq!(ids(&receiver.about("later")), want);
    op.stop().await;
}

/// Sink `sink` whose receiver is down, the operator, and run `held`, deleted by its TTL at once and held by the
/// finalizer while its events wait. Returns the receiver (kept alive) and the operator.
async fn held_by_a_down_sink(t: &TestNs, sink: &str) -> (Receiver, Operator) {
    let receiver = Receiver::start().await;
    receiver.behaviour().down.store(true, Ordering::Relaxed);
    create_sink(t, sink, &receiver, json!({})).await;
    let op = t.start_operator();
    t.create("metadata: {name: held}\nspec: {image: busybox, ttlSecondsAfterFinished: 0}\n")
        .await;
    t.wait_for(
        "held",
        LIMIT,
        when_object(
            "deleted by its TTL, held by the finalizer",
            |cx: &CrewExecution| cx.metadata.deletion_timestamp.is_some() && retained(cx),
        ),
    )
    .await;
    (receiver, op)
}

/// A run held for a sink (deleted by its TTL while its events wait on a receiver that is down) is let go when the
/// sink is deleted: nothing waits for that sink any more.
#[tokio::test]
async fn deleting_a_sink_releases_the_runs_it_held() {
    let t = TestNs::new("notify-sink-gone", Duration::from_millis(300)).await;
    let (_receiver, op) = held_by_a_down_sink(&t, "doomed").await;
    sinks(&t)
        .delete("doomed", &Default::default())
        .await
        .expect("delete the sink");
    t.wait_deleted("held", Duration::from_secs(15)).await;
    op.stop().await;
}

/// A run held for a sink is let go when the sink is suspended: a suspended sink holds no execution (its events
/// wait in the operator, and are delivered once it is resumed, as long as the operator runs).
#[tokio::test]
async fn suspending_a_sink_releases_the_runs_it_held() {
    let t = TestNs::new("notify-suspend", Duration::from_millis(300)).await;
    let (_receiver, op) = held_by_a_down_sink(&t, "paused").await;
    sinks(&t)
        .patch(
            "paused",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": true}})),
        )
        .await
        .expect("suspend the sink");
    t.wait_deleted("held", Duration::from_secs(15)).await;
    op.stop().await;
}

/// The example sinks (`examples/sinks/*.yaml`) are valid YAML, and what of them the test control plane knows
/// (CrewSinks, Secrets, Deployments, Services; not Knative's kinds) passes the API server's validation: a
/// server-side dry run with strict field validation.
#[tokio::test]
async fn the_example_sinks_are_accepted_by_the_api_server() {
    let t = TestNs::new("notify-examples", Duration::from_millis(300)).await;
    let dir = support::repo_root().join("examples/sinks");
    let mut known = Vec::new();
    let mut sinks_seen = 0;
    for file in ["webhook.yaml", "slack-relay.yaml", "knative.yaml"] {
        let text = std::fs::read_to_string(dir.join(file)).expect("an example");
        let documents: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        for document in documents {
            let kind = document["kind"].as_str().unwrap_or_default().to_string();
            if kind == "CrewSink" {
                sinks_seen += 1;
            }
            if ["CrewSink", "Secret", "Deployment", "Service"].contains(&kind.as_str()) {
                known.push(document);
            }
        }
    }
    assert_eq!(sinks_seen, 3, "one CrewSink per example");
    let list = tempfile::NamedTempFile::new().expect("a temporary file");
    std::fs::write(
        list.path(),
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "List", "items": known}))
            .expect("JSON"),
    )
    .expect("write the list");
    let path = list.path().to_string_lossy().to_string();
    let (accepted, out) = t
        .kubectl(&[
            "apply",
            "--dry-run=server",
            "--validate=strict",
            "-f",
            &path,
        ])
        .await;
    assert!(accepted, "{out}");
}
