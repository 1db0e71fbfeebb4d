//! Live progress from inside a step, on the real control plane: workers post to the operator's endpoint with a
//! token bound to their pod (TokenRequest, as the kubelet projects it); progress reaches the status within the
//! write interval; a wrong token, a finished attempt, bad and oversized reports are refused without a write;
//! reports are coalesced; silent workers are reported stalled and `onStall` acts.

mod support;

use crew_api::CrewExecution;
use crew_operator::metrics::WriteKind;
use crew_operator::settings::{ProgressArgs, Settings};
use k8s_openapi::api::core::v1::Pod;
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
    post_to(addr, "/v1/progress", token, "application/json", body).await
}

/// `(status code, body)` of `POST <path>` with `token` (None: no Authorization header) and `content_type`.
async fn post_to(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: &str,
) -> (u16, String) {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: localhost\r\n{auth}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
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
    support::pod_token(&t.client, pod, audience).await
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

/// `(status code, body)` of `POST /v1/result` with `token` and `content_type`.
async fn post_result(
    addr: SocketAddr,
    token: Option<&str>,
    content_type: &str,
    body: &str,
) -> (u16, String) {
    post_to(addr, "/v1/result", token, content_type, body).await
}

/// The status of step `step` of `cx`.
fn step_of(cx: &CrewExecution, step: &str) -> crew_api::StepStatus {
    cx.status
        .as_ref()
        .and_then(|s| s.steps.iter().find(|s| s.name == step).cloned())
        .unwrap_or_default()
}

/// The pod template of `job`.
fn template_of(
    job: &k8s_openapi::api::batch::v1::Job,
) -> k8s_openapi::api::core::v1::PodTemplateSpec {
    job.spec.clone().expect("a Job spec").template
}

/// The one Job of `execution`'s step `step` attempt `attempt`, once it exists.
async fn job_of(
    t: &TestNs,
    execution: &str,
    step: &str,
    attempt: u32,
) -> k8s_openapi::api::batch::v1::Job {
    let name = crew_core::lifecycle::names::job_name(execution, step, attempt);
    let wanted = name.clone();
    t.wait_jobs(
        execution,
        Duration::from_secs(60),
        support::wait::when_list(
            format!("Job {name}"),
            move |all: &[std::sync::Arc<k8s_openapi::api::batch::v1::Job>]| {
                all.iter().any(|j| j.name_any() == wanted)
            },
        ),
    )
    .await
    .into_iter()
    .find(|j| j.name_any() == name)
    .expect("the Job")
}

/// A worker posts a 1 MiB JSON result: it is kept byte for byte in a ConfigMap the run owns, the status holds a
/// preview, its size and SHA-256 (and stays small), a small termination-message result is substituted into a
/// later step's args, and the last step's worker gets both earlier results as files under /crew/results.
/// Prints the writes per result, the status size, and the time from the post to the next step's Job.
#[tokio::test]
async fn a_posted_result_is_kept_whole_and_handed_to_the_later_steps() {
    let t = TestNs::new("results-flow", Duration::from_millis(300)).await;
    let (operator, addr) = operator_with_endpoint(&t, Duration::from_millis(500)).await;
    t.create(
        r#"
metadata: {name: chain}
spec:
  image: busybox
  steps:
  - name: research
    podAnnotations: {sim.crew.dev/hang: "true"}
  - name: outline
    podAnnotations: {sim.crew.dev/message: '{"topic": {"name": "tides"}, "parts": 3}'}
  - name: write
    args: ["--topic=$(steps.outline.result.topic.name)", "--parts=$(steps.outline.result.parts)"]
    env: [{name: OUTLINE, value: "$(steps.outline.result)"}]
  - name: report
"#,
    )
    .await;
    let pad = "x".repeat(1024 * 1024 - 64);
    let body = format!(r#"{{"findings": "{pad}", "n": 1}}"#);
    assert!(body.len() <= 1024 * 1024);
    let (answer, posted_at) =
        post_then_exit(&t, addr, ("chain", "research"), "application/json", &body).await;
    let described: serde_json::Value = serde_json::from_str(&answer).expect("a JSON answer");
    let sha = crew_core::lifecycle::results::sha256_hex(body.as_bytes());
    assert_eq!(described["sha256"], sha.as_str());
    assert_eq!(described["size"], body.len() as u64);
    let next = job_of(&t, "chain", "outline", 1).await;
    let to_next_job = posted_at.elapsed();
    assert!(next.metadata.creation_timestamp.is_some());
    let done = t
        .wait_phase("chain", "Succeeded", Duration::from_secs(90))
        .await;

    let research = step_of(&done, "research");
    let reference = research.result_ref.clone().expect("a result reference");
    assert_eq!(
        (
            reference.size,
            reference.sha256.as_str(),
            reference.content_type.as_str()
        ),
        (body.len() as u64, sha.as_str(), "application/json")
    );
    let preview = research.result.clone().expect("a preview");
    assert!(preview.len() <= 1024 && body.starts_with(preview.trim_end_matches("…[truncated]")));
    let config_map =
        Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(t.client.clone(), &t.ns)
            .get(&reference.config_map)
            .await
            .expect("the result ConfigMap");
    assert_eq!(
        config_map.data.as_ref().expect("data")["result"],
        body,
        "kept byte for byte"
    );
    assert_eq!(
        config_map.owner_references()[0].uid,
        done.uid().expect("a uid"),
        "owned by the run (garbage-collected with it)"
    );
    let status_bytes = serde_json::to_vec(&done.status).expect("status JSON").len();
    assert!(status_bytes < 16 * 1024, "status is {status_bytes} bytes");

    // A small result substituted into a later step's args and env.
    let write = job_of(&t, "chain", "write", 1).await;
    let container = template_of(&write).spec.expect("pod spec").containers[0].clone();
    assert_eq!(
        container.args.clone().unwrap_or_default(),
        ["--topic=tides", "--parts=3"]
    );
    let outline_env = container
        .env
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.name == "OUTLINE")
        .and_then(|e| e.value);
    assert_eq!(
        outline_env.as_deref(),
        Some(r#"{"topic": {"name": "tides"}, "parts": 3}"#)
    );

    // The last step's worker: research's result from its ConfigMap, outline's from its own annotation.
    let report = template_of(&job_of(&t, "chain", "report", 1).await);
    let sources = report.spec.expect("pod spec").volumes.expect("volumes")[0]
        .projected
        .clone()
        .expect("the crew files")
        .sources
        .unwrap_or_default();
    let from_config_map = sources
        .iter()
        .filter_map(|s| s.config_map.clone())
        .find(|c| c.name == reference.config_map)
        .expect("research's result ConfigMap is projected");
    assert_eq!(
        from_config_map.items.unwrap_or_default()[0].path,
        "results/research"
    );
    let inline: Vec<String> = sources
        .iter()
        .filter_map(|s| s.downward_api.clone())
        .flat_map(|d| d.items.unwrap_or_default())
        .map(|i| i.path)
        .collect();
    assert!(
        inline.contains(&"results/outline".to_string()),
        "{inline:?}"
    );
    assert_eq!(
        report
            .metadata
            .expect("metadata")
            .annotations
            .unwrap_or_default()["result.crew.dev/outline"],
        r#"{"topic": {"name": "tides"}, "parts": 3}"#
    );
    // `kubectl crew result` prints it whole, checked against the recorded hash; a termination message likewise.
    let cli = |args: &[&str]| {
        std::process::Command::new(support::workspace_bin("kubectl-crew", "KUBECTL_CREW_BIN"))
            .args([
                "--kubeconfig",
                &support::plane().kubeconfig.to_string_lossy(),
                "-n",
                &t.ns,
            ])
            .args(args)
            .output()
            .expect("run kubectl-crew")
    };
    let printed = cli(&["result", "chain", "--step", "research"]);
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    assert_eq!(printed.stdout, body.as_bytes(), "printed byte for byte");
    let json = cli(&["result", "chain", "--step", "outline", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("-o json");
    assert_eq!(
        (
            json["source"].as_str(),
            json["result"]["topic"]["name"].as_str()
        ),
        (Some("terminationMessage"), Some("tides"))
    );
    let described = cli(&["describe", "chain"]);
    let described = String::from_utf8_lossy(&described.stdout);
    assert!(
        described.contains(&reference.sha256[..12]) && described.contains(&reference.config_map),
        "{described}"
    );
    let writes = operator.ctx.metrics.writes(WriteKind::Result);
    assert_eq!(writes, 2, "a ConfigMap apply and a Job annotation");
    println!(
        "a 1 MiB result: {writes} writes; status {status_bytes} bytes; posted → next step's Job created in {:.2} s",
        to_next_job.as_secs_f64()
    );
    operator.stop().await;
}

/// The step `step` runs.
fn step_running(
    step: &'static str,
) -> support::wait::Named<impl FnMut(Option<&CrewExecution>) -> bool> {
    support::wait::when(
        format!("step {step} Running"),
        move |cx: Option<&CrewExecution>| {
            cx.is_some_and(|cx| step_of(cx, step).phase == crew_api::StepPhase::Running)
        },
    )
}

/// Only a running attempt's own worker may post, and only a result: no token, a finished attempt, a body over
/// 1 MiB, JSON that is not, an unknown content type and a second post within a second are each refused with their
/// own answer, and none of them writes. A retried step's second attempt gets what the first one got.
#[tokio::test]
async fn results_are_refused_unless_they_come_from_the_running_attempt() {
    let t = TestNs::new("results-refused", Duration::from_millis(300)).await;
    let (operator, addr) = operator_with_endpoint(&t, Duration::from_millis(500)).await;
    t.create(
        r#"
metadata: {name: flaky}
spec:
  image: busybox
  retry: {limit: 1, backoffSeconds: 1}
  steps:
  - name: first
    podAnnotations: {sim.crew.dev/message: 'seed'}
  - name: second
    args: ["--seed=$(steps.first.result)"]
    podAnnotations: {sim.crew.dev/fail-attempts: "1", sim.crew.dev/duration: "4s"}
"#,
    )
    .await;
    t.wait_for("flaky", Duration::from_secs(60), step_running("second"))
        .await;
    let first_pod = worker_pod(&t, "flaky", "second", 1).await;
    let first_token = token_of(&t, &first_pod, "crew-operator").await;
    assert_eq!(post_result(addr, None, "text/plain", "x").await.0, 401);
    // A body over 1 MiB is refused from its declared length, before it is read.
    let oversized = format!(
        "POST /v1/result HTTP/1.0\r\nHost: localhost\r\nAuthorization: Bearer {first_token}\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\n\r\nyyyy",
        1024 * 1024 + 1
    );
    assert_eq!(support::http_exchange(addr, &oversized).await.0, 413);
    assert_eq!(
        post_result(addr, Some(&first_token), "application/json", "{not json")
            .await
            .0,
        400
    );
    assert_eq!(
        post_result(addr, Some(&first_token), "application/xml", "<x/>")
            .await
            .0,
        415
    );
    let (code, answer) = post_result(addr, Some(&first_token), "text/plain", "attempt one").await;
    assert_eq!(code, 201, "{answer}");
    assert_eq!(
        post_result(addr, Some(&first_token), "text/plain", "again")
            .await
            .0,
        429
    );
    // The first attempt fails; the second runs.
    let second_job = job_of(&t, "flaky", "second", 2).await;
    t.wait_for(
        "flaky",
        Duration::from_secs(60),
        support::wait::when("second attempt Running", |cx: Option<&CrewExecution>| {
            cx.is_some_and(|cx| {
                let s = step_of(cx, "second");
                s.attempt == 2 && s.phase == crew_api::StepPhase::Running
            })
        }),
    )
    .await;
    let (code, answer) = post_result(addr, Some(&first_token), "text/plain", "late").await;
    assert_eq!(code, 409, "a finished attempt: {answer}");
    let first_job = job_of(&t, "flaky", "second", 1).await;
    let spec_of = |job: &k8s_openapi::api::batch::v1::Job| {
        let pod = template_of(job).spec.expect("pod spec");
        (pod.containers[0].args.clone(), pod.volumes.clone())
    };
    assert_eq!(
        spec_of(&second_job),
        spec_of(&first_job),
        "the retry gets what the first attempt got"
    );
    assert_eq!(
        spec_of(&second_job).0,
        Some(vec!["--seed=seed".to_string()])
    );
    let done = t
        .wait_phase("flaky", "Succeeded", Duration::from_secs(60))
        .await;
    assert_eq!(
        step_of(&done, "second").result_ref,
        None,
        "the first attempt's post is not the second attempt's result"
    );
    assert_eq!(
        operator.ctx.metrics.writes(WriteKind::Result),
        2,
        "one post kept"
    );
    operator.stop().await;
}

/// The worker of `execution`'s step `step` (first attempt) posts `body` as `content_type`, then exits at once.
/// Returns the answer and when it came.
async fn post_then_exit(
    t: &TestNs,
    addr: SocketAddr,
    (execution, step): (&str, &'static str),
    content_type: &str,
    body: &str,
) -> (String, Instant) {
    t.wait_for(execution, Duration::from_secs(60), step_running(step))
        .await;
    let pod = worker_pod(t, execution, step, 1).await;
    let token = token_of(t, &pod, "crew-operator").await;
    let (code, answer) = post_result(addr, Some(&token), content_type, body).await;
    assert_eq!(code, 201, "{step}: {answer}");
    let posted_at = Instant::now();
    Api::<Pod>::namespaced(t.client.clone(), &t.ns)
        .patch(
            &pod.name_any(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"metadata": {"annotations": {
                "sim.crew.dev/hang": "false", "sim.crew.dev/duration": "0"}}})),
        )
        .await
        .expect("let the pod finish");
    (answer, posted_at)
}

/// Three steps each post 1 MiB: the execution's status stays a few KiB (its size printed).
#[tokio::test]
async fn three_one_mib_results_leave_the_status_small() {
    let t = TestNs::new("results-size", Duration::from_millis(300)).await;
    let (operator, addr) = operator_with_endpoint(&t, Duration::from_millis(500)).await;
    t.create(
        r#"
metadata: {name: big}
spec:
  image: busybox
  podAnnotations: {sim.crew.dev/hang: "true"}
  steps: [{name: one}, {name: two}, {name: three}]
"#,
    )
    .await;
    for (step, fill) in [("one", "a"), ("two", "b"), ("three", "c")] {
        post_then_exit(
            &t,
            addr,
            ("big", step),
            "text/plain",
            &fill.repeat(1024 * 1024),
        )
        .await;
    }
    let done = t
        .wait_phase("big", "Succeeded", Duration::from_secs(60))
        .await;
    let steps = &done.status.as_ref().expect("status").steps;
    assert!(
        steps
            .iter()
            .all(|s| s.result_ref.as_ref().is_some_and(|r| r.size == 1024 * 1024))
    );
    let status_bytes = serde_json::to_vec(&done.status).expect("status JSON").len();
    let object_bytes = serde_json::to_vec(&done).expect("object JSON").len();
    println!("three 1 MiB results: status {status_bytes} bytes, whole object {object_bytes} bytes");
    assert!(status_bytes < 16 * 1024, "status is {status_bytes} bytes");
    operator.stop().await;
}

/// A run fails at its second step; `kubectl crew retry` makes a new run that takes over the first step (its
/// recorded outcome and posted result, never run again), starts at the failed one and hands it the old result.
/// The old run is not modified, and deleting it leaves the result to the new one.
#[tokio::test]
async fn a_retry_resumes_from_the_failed_step_with_the_earlier_results() {
    let t = TestNs::new("results-retry", Duration::from_millis(300)).await;
    let (operator, addr) = operator_with_endpoint(&t, Duration::from_millis(500)).await;
    t.create(
        r#"
metadata: {name: first}
spec:
  image: busybox
  steps:
  - name: research
    podAnnotations: {sim.crew.dev/hang: "true"}
  - name: write
    podAnnotations: {sim.crew.dev/exit-code: "1"}
"#,
    )
    .await;
    let body = r#"{"topic": "tides"}"#;
    post_then_exit(&t, addr, ("first", "research"), "application/json", body).await;
    let failed = t
        .wait_phase("first", "Failed", Duration::from_secs(60))
        .await;
    let reference = step_of(&failed, "research")
        .result_ref
        .expect("research posted its result");

    let retry =
        std::process::Command::new(support::workspace_bin("kubectl-crew", "KUBECTL_CREW_BIN"))
            .args([
                "--kubeconfig",
                &support::plane().kubeconfig.to_string_lossy(),
                "-n",
                &t.ns,
            ])
            .args(["retry", "first", "--new-name", "second"])
            .output()
            .expect("run kubectl-crew");
    let said = String::from_utf8_lossy(&retry.stdout);
    assert!(
        retry.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&retry.stderr)
    );
    assert!(said.contains("from step write"), "{said}");

    let write = job_of(&t, "second", "write", 1).await;
    let second = t
        .wait_for(
            "second",
            Duration::from_secs(60),
            support::wait::when("write attempt 1 recorded", |cx: Option<&CrewExecution>| {
                cx.is_some_and(|cx| step_of(cx, "write").attempt == 1)
            }),
        )
        .await;
    assert_eq!(
        second
            .spec
            .resume_from
            .as_ref()
            .map(|r| (r.execution.as_str(), r.step.as_str())),
        Some(("first", "write"))
    );
    let taken = step_of(&second, "research");
    assert_eq!(
        (taken.phase, taken.result_ref.clone()),
        (crew_api::StepPhase::Succeeded, Some(reference.clone())),
        "research taken over as recorded"
    );
    assert!(
        support::history_reasons(&second).contains(&"StepsReused".to_string()),
        "{:?}",
        support::history_reasons(&second)
    );
    let jobs: Vec<String> = jobs_of(&t, "second")
        .await
        .iter()
        .map(|j| j.name_any())
        .collect();
    assert!(
        jobs.iter().all(|j| !j.contains("research")),
        "no Job for the step taken over: {jobs:?}"
    );
    let sources = template_of(&write)
        .spec
        .expect("pod spec")
        .volumes
        .expect("volumes")[0]
        .projected
        .clone()
        .expect("the crew files")
        .sources
        .unwrap_or_default();
    assert!(
        sources
            .iter()
            .filter_map(|s| s.config_map.as_ref())
            .any(|c| c.name == reference.config_map),
        "the resumed step gets the old result"
    );
    let unchanged = t.executions().get("first").await.expect("first");
    assert_eq!(
        unchanged.status, failed.status,
        "the old run is never modified"
    );

    // Deleting the old run leaves the result to the new one (it owns it too).
    t.executions()
        .delete("first", &Default::default())
        .await
        .expect("delete first");
    let config_maps =
        Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(t.client.clone(), &t.ns);
    let owners = |cm: &k8s_openapi::api::core::v1::ConfigMap| -> Vec<String> {
        cm.owner_references()
            .iter()
            .map(|o| o.name.clone())
            .collect()
    };
    let kept = config_maps
        .get(&reference.config_map)
        .await
        .expect("the result");
    assert!(
        owners(&kept).contains(&"second".to_string()),
        "{:?}",
        owners(&kept)
    );
    t.wait_deleted("first", Duration::from_secs(30)).await;
    // The garbage collector has had its turn at the first run's dependents (its Jobs go).
    t.wait_jobs(
        "first",
        Duration::from_secs(60),
        support::wait::when_list(
            "gone",
            |all: &[std::sync::Arc<k8s_openapi::api::batch::v1::Job>]| all.is_empty(),
        ),
    )
    .await;
    assert!(
        config_maps
            .get_opt(&reference.config_map)
            .await
            .expect("get")
            .is_some(),
        "the result outlives the run it was posted in"
    );
    assert!(
        operator.ctx.metrics.writes(WriteKind::Result) >= 3,
        "2 for the post, 1 to share it"
    );
    operator.stop().await;
}
