//! `kubectl crew dashboard` in a real browser (Debian's Chromium, headless, driven by playwright-core from npm)
//! against the real control plane: the list shows runs and their phases, a running run's progress bar moves without
//! a reload, the run page shows the timeline (queue wait, both attempts of a retried step, the backoff), the queue
//! page says why a run waits, statistics count failures by step, the read-only default refuses a write, a request
//! without the session is refused, `--allow-actions` cancels from the run page (as the user), and a user allowed
//! only one namespace sees only it. No JavaScript error may
//! reach the console. `CREW_DASHBOARD_SCREENSHOTS=DIR` keeps a PNG of each page (`make screenshots`).
//!
//! Needs `make dashboard` (the front end and its npm packages) and `make browser` (Debian's `chromium`); `make
//! test` runs both first.

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use support::conditions::is_phase;
use support::{TestNs, repo_root};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const LIMIT: Duration = Duration::from_secs(90);

/// A running `kubectl crew dashboard` and the link it printed.
struct Dashboard {
    child: Child,
    link: String,
}

impl Dashboard {
    async fn start(kubeconfig: &std::path::Path, ns: &str, extra: &[&str]) -> Dashboard {
        let mut child = Command::new(support::workspace_bin("kubectl-crew", "KUBECTL_CREW_BIN"))
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args([
                "-n",
                ns,
                "dashboard",
                "--no-browser",
                "--address",
                "127.0.0.1:0",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start kubectl-crew dashboard");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let link = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("read stdout") {
                // "Dashboard at <link>" (one user), "Dashboard for many users at <address>" (--in-cluster).
                if let Some(at) = line
                    .starts_with("Dashboard ")
                    .then(|| line.find("http://"))
                    .flatten()
                {
                    return line[at..]
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                }
            }
            panic!("kubectl-crew dashboard ended without printing its link");
        })
        .await
        .expect("the dashboard prints its link");
        // Keep reading (and dropping) what it prints, so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Dashboard { child, link }
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn front_end() -> PathBuf {
    repo_root().join("crates/cli/dashboard")
}

/// Runs the browser scenario; panics with what it printed unless every check passed.
async fn browse(dashboard: &Dashboard, scenario: &str, ns: &str, extra: &[(&str, &str)]) -> String {
    let script = front_end().join("tests/browser.mjs");
    assert!(
        front_end().join("node_modules/playwright-core").is_dir(),
        "the dashboard's npm packages are missing: run `make dashboard`"
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists()
            || std::env::var_os("CHROMIUM").is_some(),
        "Debian's chromium is missing: run `make browser`"
    );
    let mut command = Command::new("node");
    command
        .arg(&script)
        .current_dir(front_end())
        .env("DASHBOARD_URL", &dashboard.link)
        .env("SCENARIO", scenario)
        .env("CREW_NS", ns);
    if let Some(dir) = std::env::var_os("CREW_DASHBOARD_SCREENSHOTS") {
        command.env("SCREENSHOTS", dir);
    }
    for (k, v) in extra {
        command.env(k, v);
    }
    let output = tokio::time::timeout(Duration::from_secs(240), command.output())
        .await
        .expect("the browser scenario ends within 4 minutes")
        .expect("run node");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("--- browser scenario {scenario} ---\n{printed}");
    assert!(
        output.status.success(),
        "browser scenario {scenario} failed:\n{printed}"
    );
    printed
}

/// A kubeconfig like the admin's, with `token` instead of the admin's token.
fn kubeconfig_with(token: &str, name: &str) -> PathBuf {
    let plane = support::plane();
    let admin = std::fs::read_to_string(&plane.kubeconfig).expect("read the plane's kubeconfig");
    assert!(
        admin.contains(&plane.token),
        "the plane's kubeconfig holds its token"
    );
    let path = std::env::temp_dir().join(format!(
        "dashboard-{name}-{}.kubeconfig",
        std::process::id()
    ));
    std::fs::write(&path, admin.replace(&plane.token, token)).expect("write kubeconfig");
    path
}

/// Lets ServiceAccount `account` of `t`'s namespace read there what the dashboard reads, and nothing elsewhere.
async fn grant_viewing(t: &TestNs, account: &str) {
    let rules = "[{apiGroups: [crew.dev], resources: [crewexecutions, crewqueues], verbs: [get, list, watch]}, \
                 {apiGroups: [''], resources: [events], verbs: [list]}, \
                 {apiGroups: [batch], resources: [jobs], verbs: [list]}]";
    support::grant_in_namespace(t, account, "view-runs", rules).await;
}

/// A run whose worker reports progress (percent, message, a metric, a warning) and posts a result, as a real worker
/// would through the operator's endpoint; then its pod is let finish.
async fn report_and_post(t: &TestNs, progress: std::net::SocketAddr) {
    t.create(
        "metadata: {name: report}\nspec:\n  image: busybox\n  steps: [{name: write, podAnnotations: {sim.crew.dev/hang: 'true'}}]\n",
    )
    .await;
    let (pod, token) = support::running_worker(t, "report", 0, "write").await;
    let report = r#"{"percent": 40, "message": "drafting chapter 2", "metrics": {"tokens": 1234}, "warnings": ["rate limited once"]}"#;
    let (code, answer) =
        support::post_as_worker(progress, &token, "/v1/progress", "application/json", report).await;
    assert_eq!(code, 202, "{answer}");
    t.wait_for("report", LIMIT, support::conditions::step_percent(0, 40))
        .await;
    let result = "tide tables for the harbour\n";
    let (code, answer) =
        support::post_as_worker(progress, &token, "/v1/result", "text/plain", result).await;
    assert_eq!(code, 201, "{answer}");
    support::let_finish(t, &pod).await;
}

#[tokio::test]
async fn the_dashboard_shows_live_runs_timelines_queues_and_statistics_in_a_browser() {
    let t = TestNs::new("dash", Duration::from_millis(300)).await;
    let progress = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let progress_addr = progress.local_addr().unwrap();
    let op = t.start_operator_changed(move |settings| {
        settings.progress.progress_url = Some(format!("http://{progress_addr}/v1/progress"));
    });
    let endpoint = crew_operator::progress::endpoint::Endpoint::new(op.ctx.clone());
    tokio::spawn(crew_operator::progress::endpoint::serve(progress, endpoint));
    let queue = format!(
        "apiVersion: crew.dev/v1alpha1\nkind: CrewQueue\nmetadata: {{name: line, namespace: {}}}\nspec: {{maxRunning: 1}}\n",
        t.ns
    );
    let file = std::env::temp_dir().join(format!("dashboard-queue-{}.yaml", t.ns));
    std::fs::write(&file, queue).unwrap();
    let (ok, out) = t.kubectl(&["apply", "-f", &file.to_string_lossy()]).await;
    assert!(ok, "{out}");
    t.create("metadata: {name: done}\nspec: {image: busybox}\n")
        .await;
    t.create(
        r#"
metadata: {name: broken}
spec:
  image: busybox
  retry: {limit: 1, backoffSeconds: 2}
  steps:
  - {name: ok}
  - {name: boom, podAnnotations: {sim.crew.dev/exit-code: "3", sim.crew.dev/message: "model quota exceeded"}}
"#,
    )
    .await;
    report_and_post(&t, progress_addr).await;
    t.wait_phase("done", "Succeeded", LIMIT).await;
    t.wait_phase("broken", "Failed", LIMIT).await;
    t.wait_phase("report", "Succeeded", LIMIT).await;
    // Eight steps of five seconds: it runs through every check of the list, and holds the queue's one slot.
    let steps: String = (1..=8)
        .map(|i| format!("  - {{name: s{i}, podAnnotations: {{sim.crew.dev/duration: 5s}}}}\n"))
        .collect();
    t.create(&format!(
        "metadata: {{name: slow}}\nspec:\n  image: busybox\n  queue: line\n  steps:\n{steps}"
    ))
    .await;
    t.wait_phase("slow", "Running", LIMIT).await;
    t.create("metadata: {name: waiter}\nspec: {image: busybox, queue: line}\n")
        .await;
    t.wait_for("waiter", LIMIT, is_phase("Queued")).await;

    let admin = Dashboard::start(&support::plane().kubeconfig, &t.ns, &[]).await;
    browse(&admin, "admin", &t.ns, &[]).await;
    admin.stop().await;

    let acting = Dashboard::start(&support::plane().kubeconfig, &t.ns, &["--allow-actions"]).await;
    browse(&acting, "actions", &t.ns, &[]).await;
    acting.stop().await;
    let cx = t.executions().get("waiter").await.expect("waiter");
    assert!(cx.spec.cancel, "the page's cancel set spec.cancel");

    grant_viewing(&t, "viewer").await;
    let token = support::account_token(&t.client, &t.ns, "viewer").await;
    let kubeconfig = kubeconfig_with(&token, &t.ns);
    let viewer = Dashboard::start(&kubeconfig, &t.ns, &[]).await;
    browse(&viewer, "limited", &t.ns, &[("OTHER_NS", "default")]).await;
    viewer.stop().await;
    op.stop().await;
}

/// The page's load time and memory with 10 000 executions in the namespace (a measurement for BENCHMARKS.md, not
/// a timed test): `cargo test -p crew-e2e --test e2e_dashboard -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement: creates 10 000 executions"]
async fn ten_thousand_runs_first_page_load() {
    use futures::StreamExt;
    let runs: usize = std::env::var("CREW_DASHBOARD_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let t = TestNs::new("dash-load", Duration::from_millis(300)).await;
    let api = t.executions();
    let started = std::time::Instant::now();
    futures::stream::iter(0..runs)
        .map(|i| {
            let api = api.clone();
            async move {
                let cx: crew_api::CrewExecution = serde_saphyr::from_str(&format!(
                    "metadata: {{name: run-{i:05}, labels: {{batch: load}}}}\nspec:\n  image: busybox\n  steps: [{{name: fetch}}, {{name: train}}, {{name: report}}]\n"
                ))
                .unwrap();
                api.create(&Default::default(), &cx).await.expect("create");
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    eprintln!("created {runs} executions in {:?}", started.elapsed());
    let dashboard = Dashboard::start(&support::plane().kubeconfig, &t.ns, &[]).await;
    let printed = browse(&dashboard, "load", &t.ns, &[]).await;
    eprintln!("{}", printed.lines().last().unwrap_or_default());
    let pid = dashboard.child.id().unwrap_or_default();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .unwrap_or("VmRSS: ?");
    eprintln!("kubectl crew dashboard after the page loaded: {rss}");
    dashboard.stop().await;
}

/// Archived runs come from the operator's archive read API, asked with the same kubeconfig credentials: a run
/// deleted from the cluster is listed, opened (its timeline from the archived object) and counted in the statistics;
/// "live and archived" lists a run still in the cluster once.
#[tokio::test]
async fn archived_runs_come_from_the_archive_with_the_users_credentials() {
    use support::conditions::has_condition;
    let postgres = crew_testkit::postgres::Postgres::start(&crew_testkit::scratch_dir(
        "crew-e2e-dashboard",
        None,
    ))
    .expect("PostgreSQL starts (Debian package postgresql; `make tools`)");
    postgres
        .psql("postgres", "CREATE DATABASE dashboard")
        .unwrap();
    let connection = postgres.archive_connection("dashboard");
    let t = TestNs::new("dash-archive", Duration::from_millis(300)).await;
    let op = t.start_operator_changed({
        let connection = connection.clone();
        move |settings| settings.archive = Some(connection)
    });
    t.create("metadata: {name: kept}\nspec: {image: busybox}\n")
        .await;
    t.create("metadata: {name: gone}\nspec:\n  image: busybox\n  steps: [{name: fetch}, {name: train}]\n")
        .await;
    for name in ["kept", "gone"] {
        t.wait_for(name, LIMIT, has_condition("Archived", "True"))
            .await;
    }
    t.executions()
        .delete("gone", &Default::default())
        .await
        .expect("delete");
    t.wait_deleted("gone", LIMIT).await;

    let pool = crew_operator::archive::connect::pool_of(&connection, 2).unwrap();
    let api = crew_operator::archive::serve::ArchiveApi::new(pool, t.client.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = tokio::spawn(crew_operator::archive::serve::serve(listener, api));
    let server = format!("http://{addr}");
    let dashboard = Dashboard::start(
        &support::plane().kubeconfig,
        &t.ns,
        &["--archive-server", &server],
    )
    .await;
    browse(&dashboard, "archive", &t.ns, &[]).await;
    dashboard.stop().await;
    served.abort();
    op.stop().await;
}

/// `token` with one character of its signature changed, well inside it: the last character of a base64url
/// signature also carries padding bits a decoder ignores, so changing it may leave the signature as it was.
fn forged(token: &str) -> String {
    let at = token.len() - 10;
    let replacement = if &token[at..=at] == "A" { "B" } else { "A" };
    format!("{}{replacement}{}", &token[..at], &token[at + 1..])
}

/// `--in-cluster` (the chart's dashboard for many users): every request is made with its user's own token. The
/// dashboard's own ServiceAccount may only create TokenReviews, yet a viewer reads their namespace through it and is
/// refused every other one; no token, or a made-up one, gets 401 (a flood of them too); the page signs in with a
/// token and out again.
#[tokio::test]
async fn in_the_cluster_each_request_is_made_as_its_user() {
    let t = TestNs::new("dash-users", Duration::from_millis(300)).await;
    let op = t.start_operator();
    t.create("metadata: {name: done}\nspec: {image: busybox}\n")
        .await;
    t.wait_phase("done", "Succeeded", LIMIT).await;
    grant_viewing(&t, "viewer").await;
    let viewer = support::account_token(&t.client, &t.ns, "viewer").await;
    // The dashboard's own identity, with the chart's rights: TokenReviews, nothing else.
    let yaml = format!(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {ns}-dashboard}}
rules: [{{apiGroups: [authentication.k8s.io], resources: [tokenreviews], verbs: [create]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {ns}-dashboard}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {ns}-dashboard}}
subjects: [{{kind: ServiceAccount, name: dashboard, namespace: {ns}}}]
",
        ns = t.ns
    );
    let file = std::env::temp_dir().join(format!("dashboard-own-{}.yaml", t.ns));
    std::fs::write(&file, yaml).unwrap();
    let (ok, out) = t.kubectl(&["apply", "-f", &file.to_string_lossy()]).await;
    assert!(ok, "{out}");
    let own = support::account_token(&t.client, &t.ns, "dashboard").await;
    let kubeconfig = kubeconfig_with(&own, &format!("{}-own", t.ns));
    let dashboard = Dashboard::start(&kubeconfig, &t.ns, &["--in-cluster"]).await;
    let addr: std::net::SocketAddr = dashboard
        .link
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("the dashboard's address");
    let ns = t.ns.clone();
    let get = move |path: String, token: Option<String>| async move {
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}\r\n");
        support::http_exchange(addr, &request).await
    };
    let mine = format!("/api/runs?namespace={ns}");
    // RBAC reaches the authorizer's cache within a moment.
    support::wait::wait_until(Duration::from_secs(20), "the viewer may list", || async {
        get(mine.clone(), Some(viewer.clone())).await.0 == 200
    })
    .await;
    let (code, body) = get(mine.clone(), Some(viewer.clone())).await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("\"name\":\"done\""),
        "the viewer reads their namespace: {body}"
    );
    let (code, body) = get("/api/runs?namespace=default".into(), Some(viewer.clone())).await;
    assert_eq!(
        code, 403,
        "and nothing else, as the API server says: {body}"
    );
    assert!(
        body.contains("viewer"),
        "refused as the viewer, not as the dashboard: {body}"
    );
    let (code, _) = get(mine.clone(), None).await;
    assert_eq!(code, 401, "no token");
    let (code, _) = get(mine.clone(), Some(forged(&viewer))).await;
    assert_eq!(code, 401, "a forged token");
    // A flood of made-up tokens: refused, cheaply (reviews bounded and kept), and the viewer still gets in.
    let flood: Vec<_> = (0..300)
        .map(|i| {
            let path = mine.clone();
            tokio::spawn(async move {
                get(
                    path,
                    Some(format!("made-up-token-{i:06}-{}", "y".repeat(i % 30))),
                )
                .await
                .0
            })
        })
        .collect();
    let started = std::time::Instant::now();
    let mut unreviewed = 0;
    for request in flood {
        let code = request.await.expect("request");
        assert!([401, 503].contains(&code), "{code}");
        unreviewed += usize::from(code == 503);
    }
    eprintln!(
        "300 made-up tokens refused in {:?}, {unreviewed} of them without a TokenReview",
        started.elapsed()
    );
    assert!(
        unreviewed >= 150,
        "the review budget holds: {unreviewed} of 300 unreviewed"
    );
    assert_eq!(get(mine.clone(), Some(viewer.clone())).await.0, 200);

    browse(
        &dashboard,
        "signin",
        &t.ns,
        &[("SIGN_IN_TOKEN", viewer.as_str())],
    )
    .await;
    dashboard.stop().await;
    op.stop().await;
}
