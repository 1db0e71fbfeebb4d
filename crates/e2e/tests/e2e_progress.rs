//! Live progress from inside a step, on the real control plane: workers post to the operator's endpoint with a
//! token bound to their pod (TokenRequest, as the kubelet projects it); progress reaches the status within the
//! write interval; a wrong token, a finished attempt, bad and oversized reports are refused without a write;
//! reports are coalesced; silent workers are reported stalled and `onStall` acts.

mod support;

use crew_api::CrewExecution;
use crew_operator::metrics::WriteKind;
use crew_operator::settings::{ProgressArgs, Settings};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::conditions::{has_condition, some, step_percent};
use support::{Operator, TestNs, events_of, jobs_of, phase_of, start_operator};

/// The operator for `t`'s namespace with its progress endpoint on a local port; returns the endpoint's address.
async fn operator_with_endpoint(t: &TestNs, interval: Duration) -> (Operator, SocketAddr) {
    let (operator, addr, _) = operator_with_served_endpoint(t, interval).await;
    (operator, addr)
}

/// The operator for `t`'s namespace with its progress endpoint on a local port: the operator, the endpoint's
/// address and the endpoint (its TokenReview count).
async fn operator_with_served_endpoint(
    t: &TestNs,
    interval: Duration,
) -> (
    Operator,
    SocketAddr,
    std::sync::Arc<crew_operator::progress::endpoint::Endpoint>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let operator = start_operator(
        &t.client,
        Settings {
            progress: ProgressArgs {
                progress_url: Some(format!("http://{addr}/v1/progress")),
                progress_interval_ms: interval.as_millis() as u64,
                ..Default::default()
            },
            ..Settings::for_namespace(Some(&t.ns), "test")
        },
    );
    let endpoint = crew_operator::progress::endpoint::Endpoint::new(operator.ctx.clone());
    tokio::spawn(crew_operator::progress::endpoint::serve(
        listener,
        endpoint.clone(),
    ));
    (operator, addr, endpoint)
}

/// `(status code, body)` of `POST /v1/progress` with `token` (None: no Authorization header).
async fn post(addr: SocketAddr, token: Option<&str>, body: &str) -> (u16, String) {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST /v1/progress HTTP/1.0\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    support::http_exchange(addr, &request).await
}

/// The worker pod of `execution`'s step attempt, once it exists.
async fn worker_pod(t: &TestNs, execution: &str, step: &str, attempt: u32) -> Pod {
    let selector =
        format!("crew.dev/execution={execution},crew.dev/step={step},crew.dev/attempt={attempt}");
    t.wait_pods(&selector, Duration::from_secs(60), some())
        .await
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no pod for {selector}"))
}

/// A token of `pod`'s ServiceAccount for `audience`, bound to the pod, as the kubelet projects it.
async fn token_of(t: &TestNs, pod: &Pod, audience: &str) -> String {
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let accounts: Api<ServiceAccount> = Api::namespaced(t.client.clone(), &t.ns);
    let request: TokenRequest = serde_json::from_value(serde_json::json!({
        "spec": {
            "audiences": [audience],
            "expirationSeconds": 600,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod.name_any(), "uid": pod.uid()}
        }
    }))
    .expect("token request");
    accounts
        .create_token_request(&sa, &PostParams::default(), &request)
        .await
        .expect("token")
        .status
        .expect("token status")
        .token
}

/// The first step's status of `name`.
fn first_step(cx: &CrewExecution) -> crew_api::StepStatus {
    cx.status
        .as_ref()
        .and_then(|s| s.steps.first().cloned())
        .unwrap_or_default()
}

const HANGING: &str = "podAnnotations: {sim.crew.dev/hang: 'true'}";

#[tokio::test]
async fn a_workers_report_reaches_the_status_and_its_pod_gets_the_token() {
    let t = TestNs::new("progress-status", Duration::from_secs(1)).await;
    let (operator, addr) = operator_with_endpoint(&t, Duration::from_millis(500)).await;
    t.create(&format!(
        "metadata: {{name: work}}\nspec: {{image: busybox, {HANGING}, steps: [{{name: crunch}}, {{name: write}}]}}"
    ))
    .await;
    t.wait_phase("work", "Running", Duration::from_secs(30))
        .await;
    let pod = worker_pod(&t, "work", "crunch", 1).await;
    // The worker is told where to report and has a token for it, and still no API token.
    let spec = pod.spec.clone().expect("pod spec");
    let env: Vec<String> = spec.containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| format!("{}={}", e.name, e.value.clone().unwrap_or_default()))
        .collect();
    assert!(
        env.contains(&format!("CREW_PROGRESS_URL=http://{addr}/v1/progress")),
        "{env:?}"
    );
    assert!(
        env.iter()
            .any(|e| e.starts_with("CREW_PROGRESS_TOKEN_FILE="))
    );
    assert_eq!(spec.automount_service_account_token, Some(false));

    let token = token_of(&t, &pod, "crew-operator").await;
    let mut latencies = Vec::new();
    for percent in [10, 25, 45] {
        let sent = Instant::now();
        let body = format!(
            r#"{{"percent": {percent}, "message": "batch {percent}", "metrics": {{"records_processed": {}}}, "warnings": ["slow page {percent}"]}}"#,
            percent * 100
        );
        let (code, answer) = post(addr, Some(&token), &body).await;
        assert_eq!(code, 202, "{answer}");
        let cx = t
            .wait_for("work", Duration::from_secs(10), step_percent(0, percent))
            .await;
        latencies.push(sent.elapsed());
        let step = first_step(&cx);
        assert_eq!(
            step.progress.and_then(|p| p.message).as_deref(),
            Some(format!("batch {percent}").as_str())
        );
        assert_eq!(step.metrics["records_processed"], f64::from(percent * 100));
        assert_eq!(
            step.warnings.last().map(String::as_str),
            Some(format!("slow page {percent}").as_str())
        );
        assert_eq!(
            cx.status.and_then(|s| s.progress).map(|p| p.display),
            Some(format!("0/2 ({}%)", percent / 2))
        );
    }
    eprintln!("report -> status latencies: {latencies:?}");
    // Percent never goes back within the attempt.
    assert_eq!(post(addr, Some(&token), r#"{"percent": 5}"#).await.0, 202);
    // Part of the scenario, not a wait: a write of the lower percent would have landed by now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cx = t.executions().get("work").await.expect("get");
    assert_eq!(first_step(&cx).progress.map(|p| p.percent), Some(45));
    operator.stop().await;
}

#[tokio::test]
async fn wrong_tokens_finished_attempts_and_bad_reports_are_refused() {
    let t = TestNs::new("progress-refused", Duration::from_secs(1)).await;
    let (operator, addr) = operator_with_endpoint(&t, Duration::from_millis(500)).await;
    t.create(&format!(
        "metadata: {{name: mine}}\nspec: {{image: busybox, {HANGING}}}"
    ))
    .await;
    t.create("metadata: {name: done}\nspec: {image: busybox, podAnnotations: {sim.crew.dev/duration: 200ms}}")
        .await;
    t.wait_phase("mine", "Running", Duration::from_secs(30))
        .await;
    t.wait_phase("done", "Succeeded", Duration::from_secs(30))
        .await;
    let pod = worker_pod(&t, "mine", "main", 1).await;
    let token = token_of(&t, &pod, "crew-operator").await;
    let writes = || operator.ctx.metrics.writes(WriteKind::Status);
    let before = writes();

    let (code, _) = post(addr, None, "{}").await;
    assert_eq!(code, 401, "no token");
    let (code, _) = post(addr, Some("not-a-token"), "{}").await;
    assert_eq!(code, 401, "garbage");
    let api_token = token_of(&t, &pod, "https://kubernetes.default.svc").await;
    let (code, body) = post(addr, Some(&api_token), "{}").await;
    assert_eq!(code, 401, "another audience: {body}");
    // A token of a finished attempt's pod: 409.
    let finished_pod = worker_pod(&t, "done", "main", 1).await;
    let finished = token_of(&t, &finished_pod, "crew-operator").await;
    let (code, body) = post(addr, Some(&finished), r#"{"percent": 50}"#).await;
    assert_eq!(code, 409, "{body}");
    // A pod that is not a worker: 403.
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), &t.ns);
    let stranger: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "stranger"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .expect("pod");
    let stranger = pods
        .create(&PostParams::default(), &stranger)
        .await
        .expect("create pod");
    let stranger_token = token_of(&t, &stranger, "crew-operator").await;
    let (code, body) = post(addr, Some(&stranger_token), "{}").await;
    assert_eq!(code, 403, "{body}");
    // Bad reports.
    let (code, _) = post(addr, Some(&token), "not json").await;
    assert_eq!(code, 400);
    let long = "x".repeat(300);
    let (code, body) = post(addr, Some(&token), &format!(r#"{{"message": "{long}"}}"#)).await;
    assert_eq!(code, 422, "{body}");
    let metrics: Vec<String> = (0..33).map(|i| format!(r#""m{i}": {i}"#)).collect();
    let (code, _) = post(
        addr,
        Some(&token),
        &format!(r#"{{"metrics": {{{}}}}}"#, metrics.join(",")),
    )
    .await;
    assert_eq!(code, 422);
    let huge = format!(r#"{{"message": "{}"}}"#, "y".repeat(20_000));
    let (code, _) = post(addr, Some(&token), &huge).await;
    assert_eq!(code, 413);
    assert_eq!(writes(), before, "no refused report wrote anything");
    // Too fast: 429 once the burst is spent.
    let mut limited = 0;
    for _ in 0..60 {
        if post(addr, Some(&token), "{}").await.0 == 429 {
            limited += 1;
        }
    }
    assert!(limited > 0, "the rate limit applies");
    operator.stop().await;
}

#[tokio::test]
async fn reports_are_coalesced_into_few_writes() {
    const WORKERS: usize = 10;
    const SECONDS: u64 = 8;
    let t = TestNs::new("progress-budget", Duration::from_secs(1)).await;
    let (operator, addr) = operator_with_endpoint(&t, Duration::from_secs(2)).await;
    for i in 0..WORKERS {
        t.create(&format!(
            "metadata: {{name: w{i}}}\nspec: {{image: busybox, {HANGING}}}"
        ))
        .await;
    }
    let mut tokens = Vec::new();
    for i in 0..WORKERS {
        t.wait_phase(&format!("w{i}"), "Running", Duration::from_secs(30))
            .await;
        let pod = worker_pod(&t, &format!("w{i}"), "main", 1).await;
        tokens.push(token_of(&t, &pod, "crew-operator").await);
    }
    let before = operator.ctx.metrics.writes(WriteKind::Status);
    let started = Instant::now();
    let workers: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            tokio::spawn(async move {
                let mut sent = 0u32;
                while started.elapsed() < Duration::from_secs(SECONDS) {
                    let percent = (started.elapsed().as_millis() / 100) as u32;
                    let body = format!(r#"{{"percent": {percent}, "metrics": {{"n": {sent}}}}}"#);
                    let (code, answer) = post(addr, Some(&token), &body).await;
                    assert_eq!(code, 202, "{answer}");
                    sent += 1;
                    // Part of the scenario, not a wait: a worker reports about 10 times a second.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                sent
            })
        })
        .collect();
    let mut sent = 0;
    for worker in workers {
        sent += worker.await.expect("worker");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let writes = operator.ctx.metrics.writes(WriteKind::Status) - before;
    let per_execution_second = writes as f64 / WORKERS as f64 / elapsed;
    eprintln!(
        "{sent} reports from {WORKERS} workers in {elapsed:.1} s: {writes} status writes, {per_execution_second:.2} per execution per second"
    );
    // One write per interval (2 s), plus the first report's, written at once.
    let allowed = (elapsed / 2.0 + 1.0) / elapsed;
    assert!(
        per_execution_second <= allowed,
        "{per_execution_second} > {allowed}"
    );
    assert!(
        sent as f64 / WORKERS as f64 / elapsed > 5.0,
        "workers posted about 10 a second"
    );
    operator.stop().await;
}

#[tokio::test]
async fn silent_workers_are_stalled_and_on_stall_acts() {
    let t = TestNs::new("progress-stall", Duration::from_secs(1)).await;
    let (operator, addr) = operator_with_endpoint(&t, Duration::from_millis(500)).await;
    t.create(&format!(
        "metadata: {{name: warn}}\nspec: {{image: busybox, {HANGING}, stallTimeoutSeconds: 3}}"
    ))
    .await;
    t.create(&format!(
        "metadata: {{name: fail}}\nspec: {{image: busybox, {HANGING}, stallTimeoutSeconds: 3, onStall: Fail}}"
    ))
    .await;
    t.create(&format!(
        "metadata: {{name: retry}}\nspec: {{image: busybox, {HANGING}, retry: {{limit: 1, backoffSeconds: 1}}, steps: [{{name: main, stallTimeoutSeconds: 3, onStall: Retry}}]}}"
    ))
    .await;
    let stalled = || has_condition("ProgressStalled", "True");
    t.wait_for("warn", Duration::from_secs(30), stalled()).await;
    assert_eq!(
        phase_of(&t.executions().get("warn").await.expect("get")),
        "Running"
    );
    assert!(
        events_of(&t, "warn")
            .await
            .contains(&("Warning".into(), "ProgressStalled".into()))
    );
    // A heartbeat clears it.
    let pod = worker_pod(&t, "warn", "main", 1).await;
    let token = token_of(&t, &pod, "crew-operator").await;
    assert_eq!(post(addr, Some(&token), "").await.0, 202);
    t.wait_for("warn", Duration::from_secs(10), stalled().not())
        .await;

    let failed = t
        .wait_phase("fail", "Failed", Duration::from_secs(30))
        .await;
    assert_eq!(
        failed.status.and_then(|s| s.reason).as_deref(),
        Some("ProgressStalled")
    );

    // Retry: attempt 1's Job deleted, attempt 2 started; it stalls too, and the retries run out.
    let retried = t
        .wait_phase("retry", "Failed", Duration::from_secs(60))
        .await;
    assert_eq!(
        retried.status.and_then(|s| s.reason).as_deref(),
        Some("RetriesExhausted")
    );
    let reasons: Vec<String> =
        support::history_reasons(&t.executions().get("retry").await.expect("get"));
    assert!(
        reasons.contains(&"RetryScheduled".to_string()),
        "{reasons:?}"
    );
    assert!(jobs_of(&t, "retry").await.len() <= 2);
    operator.stop().await;
}

/// An operator replica (the binary, leader election on) with its progress endpoint on `port`.
fn replica(t: &TestNs, name: &str, port: u16) -> tokio::process::Child {
    let log = std::fs::File::create(std::env::temp_dir().join(format!("{}-{name}.log", t.ns)))
        .expect("replica log");
    tokio::process::Command::new(support::operator_bin())
        .args(["run", "--namespace", &t.ns, "--leader-election"])
        .args(["--lease-namespace", &t.ns, "--instance", name])
        .args(["--metrics-addr", "127.0.0.1:0", "--log-level", "info"])
        .args(["--progress-addr", &format!("127.0.0.1:{port}")])
        .args([
            "--progress-url",
            &format!("http://127.0.0.1:{port}/v1/progress"),
        ])
        .args(["--progress-interval-ms", "500"])
        .env("KUBECONFIG", &support::plane().kubeconfig)
        .env_remove("POD_NAME")
        .env_remove("POD_NAMESPACE")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start crew-operator")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

#[tokio::test]
async fn progress_keeps_flowing_across_a_leader_failover() {
    let t = TestNs::new("progress-failover", Duration::from_secs(1)).await;
    let ports = [free_port(), free_port()];
    let mut replicas = vec![replica(&t, "a", ports[0]), replica(&t, "b", ports[1])];
    t.create(&format!(
        "metadata: {{name: long}}\nspec: {{image: busybox, {HANGING}}}"
    ))
    .await;
    t.wait_phase("long", "Running", Duration::from_secs(60))
        .await;
    let pod = worker_pod(&t, "long", "main", 1).await;
    let token = token_of(&t, &pod, "crew-operator").await;
    let addr = |i: usize| SocketAddr::from(([127, 0, 0, 1], ports[i]));
    // The leader takes the report; the standby answers 503 (with Retry-After), so a client retries elsewhere.
    let mut leader = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while leader.is_none() {
        for i in 0..2 {
            let (code, body) = post(addr(i), Some(&token), r#"{"percent": 30}"#).await;
            match code {
                202 => leader = Some(i),
                503 | 0 => {}
                other => panic!("replica {i}: {other} {body}"),
            }
        }
        assert!(Instant::now() < deadline, "no replica took the report");
    }
    let leader = leader.unwrap_or_default();
    let standby = 1 - leader;
    assert_eq!(post(addr(standby), Some(&token), "{}").await.0, 503);
    t.wait_for("long", Duration::from_secs(10), step_percent(0, 30))
        .await;
    // The leader dies; the worker's retries reach the new leader, and its reports reach the status.
    let _ = replicas[leader].start_kill();
    let _ = replicas[leader].wait().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, body) = post(
            addr(standby),
            Some(&token),
            r#"{"percent": 60, "message": "after failover"}"#,
        )
        .await;
        if code == 202 {
            break;
        }
        assert!(matches!(code, 503), "{code} {body}");
        assert!(Instant::now() < deadline, "the standby never took over");
        // Part of the scenario, not a wait on an object: the worker retries its report at its own pace.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let cx = t
        .wait_for("long", Duration::from_secs(15), step_percent(0, 60))
        .await;
    assert_eq!(
        first_step(&cx).progress.and_then(|p| p.message).as_deref(),
        Some("after failover")
    );
    assert_eq!(
        jobs_of(&t, "long").await.len(),
        1,
        "no second Job for the attempt"
    );
    drop(replicas);
}

/// The token's claims with another signature: the same pod, audience and expiry, but forged.
fn forged(token: &str, nonce: usize) -> String {
    let (signed, _) = token.rsplit_once('.').expect("a JWT");
    format!("{signed}.forged{nonce}")
}

/// Review finding 1: any pod could make the operator send one TokenReview per request under its own identity, so
/// a flood of made-up tokens starved the operator's own writes. Made-up tokens now cost no TokenReview at all, and
/// forged ones naming a real worker pod only as many as the per-source limit allows; a run created during the flood
/// starts as fast as one created before it.
#[tokio::test]
async fn a_flood_of_bogus_tokens_costs_almost_no_token_reviews_and_does_not_delay_runs() {
    const FLOOD: usize = 2_000;
    let t = TestNs::new("progress-flood", Duration::from_secs(1)).await;
    let (operator, addr, endpoint) =
        operator_with_served_endpoint(&t, Duration::from_millis(2000)).await;
    t.create(&format!(
        "metadata: {{name: worker}}\nspec: {{image: busybox, {HANGING}}}"
    ))
    .await;
    let started = Instant::now();
    t.create("metadata: {name: before}\nspec: {image: busybox}\n")
        .await;
    t.wait_phase("before", "Running", Duration::from_secs(30))
        .await;
    let quiet = started.elapsed();
    t.wait_phase("worker", "Running", Duration::from_secs(30))
        .await;
    let pod = worker_pod(&t, "worker", "main", 1).await;
    let real = token_of(&t, &pod, "crew-operator").await;
    assert_eq!(post(addr, Some(&real), "{}").await.0, 202);
    let reviews_before = endpoint.reviews_sent();

    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(200));
    let flood: Vec<_> = (0..FLOOD)
        .map(|i| {
            let token = if i % 2 == 0 {
                format!("garbage-{i}-{}", "x".repeat(i % 40))
            } else {
                forged(&real, i)
            };
            let slots = slots.clone();
            tokio::spawn(async move {
                let _slot = slots.acquire_owned().await.expect("slot");
                post(addr, Some(&token), "{}").await.0
            })
        })
        .collect();
    let started = Instant::now();
    t.create("metadata: {name: during}\nspec: {image: busybox}\n")
        .await;
    t.wait_phase("during", "Running", Duration::from_secs(30))
        .await;
    let flooded = started.elapsed();
    let mut codes = std::collections::BTreeMap::new();
    for request in flood {
        *codes.entry(request.await.expect("request")).or_insert(0) += 1;
    }
    let flood_seconds = started.elapsed().as_secs_f64();
    let reviews = endpoint.reviews_sent() - reviews_before;
    eprintln!(
        "{FLOOD} bogus requests in {flood_seconds:.1} s: answers {codes:?}, {reviews} TokenReviews \
         ({:.1} per 1 000); create -> Running {:.2} s before the flood, {:.2} s during it",
        reviews as f64 * 1000.0 / FLOOD as f64,
        quiet.as_secs_f64(),
        flooded.as_secs_f64()
    );
    assert!(
        codes.keys().all(|code| [401, 429, 503].contains(code)),
        "{codes:?}"
    );
    assert!(
        codes.get(&401).copied().unwrap_or(0) >= FLOOD / 2,
        "{codes:?}"
    );
    // The per-source burst, then its rate for as long as the flood lasts.
    let allowed = 20.0 + 5.0 * flood_seconds.ceil();
    assert!(
        (reviews as f64) <= allowed,
        "{reviews} TokenReviews for {FLOOD} bogus requests (at most {allowed})"
    );
    assert!(
        flooded < Duration::from_secs(10),
        "a run created during the flood took {flooded:?} to start"
    );
    // The real worker still reports.
    assert_eq!(post(addr, Some(&real), "{}").await.0, 202);
    operator.stop().await;
}
