//! `kubectl-crew`, the built binary, against the real control plane: golden output of list, describe, history
//! and stats at a fixed clock; watch's exit codes; bulk operations by selector; logs; errors a user can act on.

mod support;

use crew_api::{CrewExecution, CrewQueue};
use k8s_openapi::api::core::v1::{Event, ServiceAccount};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use support::conditions::all_in_phase;
use support::wait::wait_list;
use support::{TestNs, plane};

/// The clock of every golden output: later than every fixture's timestamps, earlier than any real creation
/// time (so real ages print as `0s`).
const FIXED_NOW: &str = "2026-11-29T12:00:00Z";

/// The `kubectl-crew` binary of this build; `KUBECTL_CREW_BIN` overrides.
fn cli_bin() -> PathBuf {
    support::workspace_bin("kubectl-crew", "KUBECTL_CREW_BIN")
}

/// What one run of the binary gave.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `kubectl-crew args…` with the test plane's kubeconfig (or `kubeconfig`), no colour, the clock fixed.
async fn crew_with(kubeconfig: &std::path::Path, args: &[&str]) -> Run {
    let output = tokio::process::Command::new(cli_bin())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env("KUBECTL_CREW_NOW", FIXED_NOW)
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("run kubectl-crew");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn crew(t: &TestNs, args: &[&str]) -> Run {
    let mut all = vec!["-n", t.ns.as_str()];
    all.extend_from_slice(args);
    crew_with(&plane().kubeconfig, &all).await
}

/// The golden fixtures shared with the CLI's own tests, in namespace `ns`: created, then their status written
/// as the operator would have (no operator runs here, so nothing changes them).
async fn create_fixtures(t: &TestNs) -> Vec<CrewExecution> {
    let fixtures: Vec<CrewExecution> =
        serde_saphyr::from_str(include_str!("../../cli/src/view/fixtures.yaml")).expect("fixtures");
    let api = t.executions();
    let mut created = Vec::new();
    for fixture in fixtures {
        let mut cx = CrewExecution::new(&fixture.name_any(), fixture.spec.clone());
        cx.metadata.labels = fixture.metadata.labels.clone();
        let made = api
            .create(&PostParams::default(), &cx)
            .await
            .expect("create");
        if let Some(status) = &fixture.status {
            let patch = serde_json::json!({"status": status});
            api.patch_status(
                &made.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .expect("write status");
        }
        created.push(api.get(&made.name_any()).await.expect("read back"));
    }
    created
}

/// `text` with what differs between runs replaced: the namespace, and each real creation time.
fn stable(text: &str, t: &TestNs, executions: &[CrewExecution]) -> String {
    let mut text = text.replace(&t.ns, "[ns]");
    for cx in executions {
        if let Some(created) = &cx.metadata.creation_timestamp {
            text = text.replace(&created.0.to_string(), "[created]");
        }
    }
    text
}

#[tokio::test]
async fn golden_output_of_list_describe_history_and_stats() {
    let t = TestNs::new("cli-golden", Duration::from_secs(1)).await;
    let executions = create_fixtures(&t).await;
    let queues: Api<CrewQueue> = Api::namespaced(t.client.clone(), &t.ns);
    let queue: CrewQueue = serde_json::from_value(serde_json::json!({
        "apiVersion": "crew.dev/v1alpha1", "kind": "CrewQueue",
        "metadata": {"name": "gpu"}, "spec": {"maxRunning": 1}
    }))
    .expect("queue");
    queues
        .create(&PostParams::default(), &queue)
        .await
        .expect("create queue");
    let events: Api<Event> = Api::namespaced(t.client.clone(), &t.ns);
    let event: Event = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "report-42.retry"},
        "involvedObject": {"apiVersion": "crew.dev/v1alpha1", "kind": "CrewExecution", "name": "report-42",
                           "namespace": t.ns},
        "type": "Warning", "reason": "RetryScheduled", "count": 1,
        "message": "step write attempt 1 failed (exit code 3); attempt 2 in 10s",
        "firstTimestamp": "2026-11-29T11:57:20Z", "lastTimestamp": "2026-11-29T11:57:20Z",
        "source": {"component": "crew-operator"}
    }))
    .expect("event");
    events
        .create(&PostParams::default(), &event)
        .await
        .expect("create event");

    // Three executions a page, so the list is read in several pages.
    let list = crew(&t, &["list", "--chunk-size", "2"]).await;
    assert_eq!(list.code, 0, "{}", list.stderr);
    insta::assert_snapshot!("cli_list", stable(&list.stdout, &t, &executions));

    let by_queue = crew(
        &t,
        &[
            "list",
            "--queue",
            "gpu",
            "--phase",
            "Running,Queued",
            "-o",
            "name",
        ],
    )
    .await;
    assert_eq!(
        by_queue.stdout,
        "crewexecution.crew.dev/backfill-3\ncrewexecution.crew.dev/report-42\n"
    );
    let one_phase = crew(&t, &["list", "--phase", "failed", "--no-headers"]).await;
    assert!(
        one_phase.stdout.starts_with("triage-7 "),
        "{}",
        one_phase.stdout
    );
    assert_eq!(one_phase.stdout.lines().count(), 1);

    let json = crew(&t, &["list", "-l", "team=a", "-o", "json"]).await;
    let parsed: serde_json::Value =
        serde_json::from_str(&json.stdout).expect("list -o json is JSON");
    assert_eq!(parsed["kind"], "List");
    assert_eq!(parsed["items"][0]["metadata"]["name"], "report-42");
    assert_eq!(parsed["items"][0]["kind"], "CrewExecution");

    let describe = crew(&t, &["describe", "report-42"]).await;
    assert_eq!(describe.code, 0, "{}", describe.stderr);
    insta::assert_snapshot!(
        "cli_describe_running",
        stable(&describe.stdout, &t, &executions)
    );
    let queued = crew(&t, &["describe", "backfill-3"]).await;
    insta::assert_snapshot!(
        "cli_describe_queued",
        stable(&queued.stdout, &t, &executions)
    );

    let history = crew(&t, &["history", "report-42"]).await;
    insta::assert_snapshot!("cli_history", stable(&history.stdout, &t, &executions));

    let stats = crew(&t, &["stats"]).await;
    insta::assert_snapshot!("cli_stats", stable(&stats.stdout, &t, &executions));
    let stats_json = crew(&t, &["stats", "--queue", "gpu", "-o", "json"]).await;
    let stats_json: serde_json::Value = serde_json::from_str(&stats_json.stdout).expect("JSON");
    assert_eq!(stats_json["total"], 3);
    assert_eq!(
        stats_json["failureReasons"][0]["reason"],
        "RetriesExhausted"
    );
}

#[tokio::test]
async fn watch_gates_on_the_outcome() {
    let t = TestNs::new("cli-watch", Duration::from_millis(500)).await;
    let operator = t.start_operator();
    t.create("metadata: {name: ok}\nspec: {image: busybox, steps: [{name: a}, {name: b}]}")
        .await;
    t.create(
        "metadata: {name: broken}\nspec: {image: busybox, podAnnotations: {sim.crew.dev/exit-code: '3'}}",
    )
    .await;
    t.create("metadata: {name: slow}\nspec: {image: busybox, podAnnotations: {sim.crew.dev/hang: 'true'}}")
        .await;

    let ok = crew(&t, &["watch", "ok", "--timeout", "60s"]).await;
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    // Without a terminal: one plain line per transition, ending in the terminal phase.
    let last = ok.stdout.lines().last().unwrap_or_default();
    assert!(last.contains(" ok Succeeded 2/2"), "{}", ok.stdout);
    assert!(ok.stderr.contains("1 succeeded"), "{}", ok.stderr);

    let broken = crew(&t, &["watch", "broken", "ok", "--timeout", "60s"]).await;
    assert_eq!(broken.code, 1, "{}{}", broken.stdout, broken.stderr);
    assert!(
        broken.stderr.contains("1 succeeded, 1 failed"),
        "{}",
        broken.stderr
    );

    let slow = crew(&t, &["watch", "slow", "--timeout", "2s"]).await;
    assert_eq!(slow.code, 2, "{}{}", slow.stdout, slow.stderr);
    assert!(
        slow.stderr.contains("timed out after 2s"),
        "{}",
        slow.stderr
    );

    // The live run's summary shows its Jobs and the operator's Events.
    let describe = crew(&t, &["describe", "ok"]).await;
    assert!(describe.stdout.contains("ok-a-1"), "{}", describe.stdout);
    assert!(
        describe.stdout.contains("StepSucceeded"),
        "{}",
        describe.stdout
    );

    // No kubelet serves logs here: the message says so, and which pod and node.
    let logs = crew(&t, &["logs", "ok", "--step", "a"]).await;
    assert_eq!(logs.code, 1);
    assert!(
        logs.stderr
            .contains("could not fetch the log of pod ok-a-1-"),
        "{}",
        logs.stderr
    );
    // The pod gone: said so, with the step's result from status.
    let (deleted, out) = t
        .kubectl(&[
            "delete",
            "pods",
            "-l",
            "crew.dev/execution=ok,crew.dev/step=b",
            "--wait",
        ])
        .await;
    assert!(deleted, "{out}");
    let gone = crew(&t, &["logs", "ok"]).await;
    assert_eq!(gone.code, 1);
    assert!(
        gone.stderr
            .contains("no pod left for step \"b\" attempt 1 of \"ok\""),
        "{}",
        gone.stderr
    );
    let no_step = crew(&t, &["logs", "ok", "--step", "zzz"]).await;
    assert!(
        no_step.stderr.contains("has no step \"zzz\" (steps: a, b)"),
        "{}",
        no_step.stderr
    );

    // Cancelled while watched: exit 1.
    let watching = crew(&t, &["watch", "slow", "--timeout", "60s"]);
    let cancel = async {
        // Part of the scenario, not a wait: the watch has started before the cancel (no object shows that).
        tokio::time::sleep(Duration::from_secs(1)).await;
        crew(&t, &["cancel", "slow"]).await
    };
    let (watched, cancelled) = tokio::join!(watching, cancel);
    assert_eq!(cancelled.code, 0, "{}", cancelled.stderr);
    assert_eq!(watched.code, 1, "{}{}", watched.stdout, watched.stderr);
    assert!(
        watched.stdout.contains("slow Cancelled"),
        "{}",
        watched.stdout
    );
    operator.stop().await;
}

#[tokio::test]
async fn bulk_operations_by_selector() {
    let t = TestNs::new("cli-bulk", Duration::from_secs(1)).await;
    let operator = t.start_operator();
    for i in 0..12 {
        t.create(&format!(
            "metadata: {{name: batch-{i}, labels: {{batch: b1}}}}\nspec: {{image: busybox, podAnnotations: {{sim.crew.dev/hang: 'true'}}}}"
        ))
        .await;
    }
    t.create("metadata: {name: other}\nspec: {image: busybox, podAnnotations: {sim.crew.dev/hang: 'true'}}")
        .await;
    let api = t.executions();

    // A dry run lists every target and changes nothing.
    let dry = crew(&t, &["cancel", "-l", "batch=b1", "--dry-run"]).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(dry.stdout.lines().count(), 12, "{}", dry.stdout);
    assert!(
        dry.stdout
            .contains(r#"merge patch {"spec":{"cancel":true}}"#)
    );
    assert!(!api.get("batch-0").await.expect("get").spec.cancel);

    // Without a filter, names or --all, nothing is targeted.
    let nothing = crew(&t, &["cancel"]).await;
    assert_eq!(nothing.code, 1);
    assert!(
        nothing.stderr.contains("say which executions"),
        "{}",
        nothing.stderr
    );

    // Suspend and resume two by name; then again: already so.
    let suspend = crew(&t, &["suspend", "batch-0", "batch-1"]).await;
    assert!(
        suspend.stderr.contains("2 suspended, 0 already"),
        "{}",
        suspend.stderr
    );
    let again = crew(&t, &["suspend", "batch-0"]).await;
    assert!(
        again.stderr.contains("0 suspended, 1 already"),
        "{}",
        again.stderr
    );
    let resume = crew(&t, &["resume", "-l", "batch=b1"]).await;
    assert!(
        resume.stderr.contains("2 resumed, 10 already"),
        "{}",
        resume.stderr
    );

    // Cancel the whole batch (more than 10: no question without a terminal); `other` is untouched.
    let cancel = crew(&t, &["cancel", "-l", "batch=b1"]).await;
    assert_eq!(cancel.code, 0, "{}", cancel.stderr);
    assert!(
        cancel.stderr.contains("12 cancelled, 0 already"),
        "{}",
        cancel.stderr
    );
    let cx = api.get("batch-3").await.expect("get");
    assert!(cx.spec.cancel);
    let managers: Vec<String> = cx
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        managers.contains(&"kubectl-crew".to_string()),
        "{managers:?}"
    );
    assert!(!api.get("other").await.expect("get").spec.cancel);
    wait_list(
        api.clone(),
        kube::runtime::watcher::Config::default().labels("batch=b1"),
        Duration::from_secs(60),
        all_in_phase("Cancelled"),
    )
    .await;

    // Rerun: a new execution with the same spec, labelled rerun-of, not cancelled.
    let rerun = crew(&t, &["rerun", "batch-3"]).await;
    assert_eq!(rerun.code, 0, "{}", rerun.stderr);
    assert!(
        rerun.stdout.contains("created (rerun of batch-3)"),
        "{}",
        rerun.stdout
    );
    let named = crew(&t, &["rerun", "batch-3", "--name", "batch-3-again"]).await;
    assert_eq!(named.code, 0, "{}", named.stderr);
    let copy = api.get("batch-3-again").await.expect("the named rerun");
    assert_eq!(copy.labels()["crew.dev/rerun-of"], "batch-3");
    assert_eq!(copy.labels()["batch"], "b1");
    assert!(!copy.spec.cancel);
    let two = crew(&t, &["rerun", "-l", "batch=b1", "--name", "x"]).await;
    assert!(
        two.stderr.contains("--name needs exactly one"),
        "{}",
        two.stderr
    );

    // Delete the cancelled ones by phase; the reruns (running) stay.
    let delete = crew(&t, &["delete", "-l", "batch=b1", "--phase", "Cancelled"]).await;
    assert!(delete.stderr.contains("12 deleted"), "{}", delete.stderr);
    let left = crew(&t, &["list", "-l", "batch=b1", "-o", "name"]).await;
    assert_eq!(left.stdout.lines().count(), 2, "{}", left.stdout);
    operator.stop().await;
}

/// An execution named with 253 characters (the longest name Kubernetes takes, as `generateName` and GitOps tools
/// make them) and a 63-character step: `watch` and `list` show it, `describe` finds its Job and `logs` its pod by
/// the hashed execution label, and `rerun` gives a valid generated name (the prefix cut, its `-` kept) that runs.
#[tokio::test]
async fn the_longest_names_are_watched_described_and_rerun() {
    use crew_core::lifecycle::names::{generate_name, job_name, label_value};
    let t = TestNs::new("cli-long", Duration::from_millis(300)).await;
    let operator = t.start_operator();
    let name = format!("gitops-{}", "g".repeat(246));
    let step = format!("step-{}", "s".repeat(58));
    assert_eq!((name.len(), step.len()), (253, 63));
    t.create(&format!(
        "metadata: {{name: {name}}}\nspec: {{image: busybox, steps: [{{name: {step}}}]}}"
    ))
    .await;

    let watch = crew(&t, &["watch", &name, "--timeout", "60s"]).await;
    assert_eq!(watch.code, 0, "{}{}", watch.stdout, watch.stderr);
    let list = crew(&t, &["list", "-o", "name"]).await;
    assert!(
        list.stdout
            .contains(&format!("crewexecution.crew.dev/{name}\n")),
        "{}",
        list.stdout
    );
    let job = job_name(&name, &step, 1);
    let describe = crew(&t, &["describe", &name]).await;
    assert_eq!(describe.code, 0, "{}", describe.stderr);
    assert!(describe.stdout.contains(&job), "{job}: {}", describe.stdout);
    // No kubelet serves logs here: the pod was found by its labels, and is named.
    let logs = crew(&t, &["logs", &name]).await;
    assert!(
        logs.stderr.contains("could not fetch the log of pod") && logs.stderr.contains(&job[..40]),
        "{}",
        logs.stderr
    );

    let rerun = crew(&t, &["rerun", &name]).await;
    assert_eq!(rerun.code, 0, "{}", rerun.stderr);
    let made = rerun
        .stdout
        .split("crewexecution.crew.dev/")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_default()
        .to_string();
    let prefix = generate_name(&name);
    assert!(
        made.starts_with(&prefix) && made.len() == prefix.len() + 5 && made.len() <= 63,
        "{made:?} from {prefix:?}: {}",
        rerun.stdout
    );
    let copy = t
        .wait_phase(&made, "Succeeded", Duration::from_secs(60))
        .await;
    assert_eq!(copy.labels()["crew.dev/rerun-of"], label_value(&name));
    // A rerun given another 253-character name runs as well.
    let again = format!("again-{}", "a".repeat(247));
    let named = crew(&t, &["rerun", &name, "--name", &again]).await;
    assert_eq!(named.code, 0, "{}", named.stderr);
    t.wait_phase(&again, "Succeeded", Duration::from_secs(60))
        .await;
    operator.stop().await;
}

/// A kubeconfig for ServiceAccount `sa` of the test namespace (a bound token from the TokenRequest API).
async fn kubeconfig_of(t: &TestNs, sa: &str) -> tempfile::NamedTempFile {
    let accounts: Api<ServiceAccount> = Api::namespaced(t.client.clone(), &t.ns);
    let account: ServiceAccount =
        serde_json::from_value(serde_json::json!({"metadata": {"name": sa}})).expect("sa");
    accounts
        .create(&PostParams::default(), &account)
        .await
        .expect("create sa");
    let request: k8s_openapi::api::authentication::v1::TokenRequest =
        serde_json::from_value(serde_json::json!({"spec": {"expirationSeconds": 3600}}))
            .expect("request");
    let token = accounts
        .create_token_request(sa, &PostParams::default(), &request)
        .await
        .expect("token")
        .status
        .expect("token status")
        .token;
    let admin = std::fs::read_to_string(&plane().kubeconfig).expect("kubeconfig");
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), admin.replace(&plane().token, &token)).expect("write kubeconfig");
    file
}

#[tokio::test]
async fn errors_say_what_to_do() {
    let t = TestNs::new("cli-errors", Duration::from_secs(1)).await;
    t.create("metadata: {name: mine}\nspec: {image: busybox}")
        .await;

    let missing = crew(&t, &["describe", "nope"]).await;
    assert_eq!(missing.code, 1);
    assert_eq!(
        missing.stderr,
        format!(
            "error: CrewExecution \"nope\" not found in namespace \"{}\"\n",
            t.ns
        )
    );

    // A user who may read executions but not change them: the bulk summary names the reason per target.
    let role: k8s_openapi::api::rbac::v1::Role = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "reader"},
        "rules": [{"apiGroups": ["crew.dev"], "resources": ["crewexecutions"], "verbs": ["get", "list", "watch"]}]
    }))
    .expect("role");
    Api::<k8s_openapi::api::rbac::v1::Role>::namespaced(t.client.clone(), &t.ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("role");
    let binding: k8s_openapi::api::rbac::v1::RoleBinding =
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": t.ns}]
        }))
        .expect("binding");
    Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(t.client.clone(), &t.ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding");
    let reader = kubeconfig_of(&t, "reader").await;
    let ns = t.ns.as_str();
    let list = crew_with(reader.path(), &["-n", ns, "list", "-o", "name"]).await;
    assert_eq!(list.code, 0, "{}", list.stderr);
    let cancel = crew_with(reader.path(), &["-n", ns, "cancel", "mine"]).await;
    assert_eq!(cancel.code, 1, "{}", cancel.stderr);
    assert!(
        cancel
            .stderr
            .contains("0 cancelled, 0 already in that state, 1 failed"),
        "{}",
        cancel.stderr
    );
    assert!(
        cancel
            .stderr
            .contains("mine: Forbidden: forbidden: you may not patch"),
        "{}",
        cancel.stderr
    );
    let everywhere = crew_with(reader.path(), &["list", "-A"]).await;
    assert_eq!(everywhere.code, 1);
    assert!(
        everywhere.stderr.starts_with(
            "error: forbidden: you may not list crewexecutions.crew.dev in any namespace"
        ),
        "{}",
        everywhere.stderr
    );

    // No API server behind the address: said so, with the address.
    let admin = std::fs::read_to_string(&plane().kubeconfig).expect("kubeconfig");
    let nowhere = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(
        nowhere.path(),
        admin.replace(&plane().server, "https://127.0.0.1:9"),
    )
    .expect("write");
    let unreachable = crew_with(nowhere.path(), &["list"]).await;
    assert_eq!(unreachable.code, 1);
    assert!(
        unreachable
            .stderr
            .starts_with("error: no cluster reachable at https://127.0.0.1:9/"),
        "{}",
        unreachable.stderr
    );
    assert!(!unreachable.stderr.contains("panicked"));
}

#[test]
fn completion_scripts_are_printed() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(cli_bin())
            .args(["completion", shell])
            .output()
            .expect("run");
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("kubectl-crew"), "{shell}: {script}");
        assert!(script.contains("rerun"), "{shell}");
    }
}

/// Runs `command` (a shell line) on a pseudo-terminal (util-linux `script`), with `input` typed at it; returns
/// (exit code, everything the terminal showed).
async fn on_terminal(command: &str, input: &str, no_color: bool) -> (i32, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .env("KUBECONFIG", &plane().kubeconfig)
        .env("KUBECTL_CREW_NOW", FIXED_NOW)
        .env_remove("NO_COLOR")
        .envs(no_color.then_some(("NO_COLOR", "1")))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script(1)");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes()).await;
    }
    let out = child.wait_with_output().await.expect("script output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn on_a_terminal_it_asks_colours_and_draws_bars() {
    let t = TestNs::new("cli-tty", Duration::from_millis(300)).await;
    for i in 0..11 {
        t.create(&format!(
            "metadata: {{name: run-{i}, labels: {{set: s}}}}\nspec: {{image: busybox}}"
        ))
        .await;
    }
    let bin = cli_bin();
    let bin = bin.display();
    let ns = t.ns.as_str();

    // More than 10 targets on a terminal: asked first; "n" changes nothing.
    let (code, shown) = on_terminal(&format!("{bin} -n {ns} cancel -l set=s"), "n\n", true).await;
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains("Cancel 11 executions in namespace"),
        "{shown}"
    );
    assert!(shown.contains("Nothing changed."), "{shown}");
    assert!(!t.executions().get("run-0").await.expect("get").spec.cancel);

    // Colour on a terminal, none with NO_COLOR.
    let (_, coloured) = on_terminal(&format!("{bin} -n {ns} list"), "", false).await;
    assert!(coloured.contains("\u{1b}["), "{coloured}");
    let (_, plain) = on_terminal(&format!("{bin} -n {ns} list"), "", true).await;
    assert!(!plain.contains("\u{1b}[3"), "{plain}");

    // `list -w`: the table, then a line for each change.
    {
        use tokio::io::AsyncBufReadExt;
        let mut command = std::process::Command::new(cli_bin());
        command
            .args(["--kubeconfig"])
            .arg(&plane().kubeconfig)
            .args(["-n", ns, "list", "-w", "--no-headers"])
            .stdout(std::process::Stdio::piped());
        // It never ends by itself: it dies with the test binary even if the test fails before killing it.
        crew_testkit::process::die_with_parent(&mut command);
        let mut child = tokio::process::Command::from(command)
            .kill_on_drop(true)
            .spawn()
            .expect("list -w");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        for _ in 0..11 {
            let line = lines.next_line().await.expect("read").expect("a row");
            assert!(line.starts_with("run-"), "{line}");
        }
        t.create("metadata: {name: late}\nspec: {image: busybox}")
            .await;
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("a line for the new execution")
            .expect("read")
            .expect("a row");
        assert!(line.starts_with("late "), "{line}");
        let _ = child.kill().await;
    }

    // Watch with bars until all finish (the operator runs them).
    let operator = t.start_operator();
    let (code, shown) = on_terminal(
        &format!("{bin} -n {ns} watch -l set=s --timeout 60s"),
        "",
        true,
    )
    .await;
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains("██████████████████████ 1/1") || shown.contains("█ 1/1"),
        "{shown}"
    );
    assert!(shown.contains("11 succeeded"), "{shown}");
    operator.stop().await;
}

/// Runs `command` (a shell line) on a pseudo-terminal, answers `answer` to its `[y/N]` question once `meanwhile`
/// has run (what happens while a person reads the question); returns (exit code, everything the terminal showed).
async fn answering_on_terminal<F, Fut>(command: &str, meanwhile: F, answer: &str) -> (i32, String)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut child = tokio::process::Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .env("KUBECONFIG", &plane().kubeconfig)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("script(1)");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut shown = Vec::new();
    let asked = tokio::time::timeout(Duration::from_secs(30), async {
        let mut chunk = [0u8; 4096];
        while !String::from_utf8_lossy(&shown).contains("[y/N]") {
            let n = stdout.read(&mut chunk).await.expect("read the terminal");
            assert!(
                n > 0,
                "ended without asking: {}",
                String::from_utf8_lossy(&shown)
            );
            shown.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    assert!(
        asked.is_ok(),
        "no question: {}",
        String::from_utf8_lossy(&shown)
    );
    meanwhile().await;
    stdin.write_all(answer.as_bytes()).await.expect("answer");
    stdout
        .read_to_end(&mut shown)
        .await
        .expect("read the terminal");
    let status = child.wait().await.expect("script exit");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&shown).into_owned(),
    )
}

/// Deletes execution `name` and creates it again (same name, another UID), as a GitOps sync or a script might
/// while a bulk command waits for its answer.
async fn recreate(t: &TestNs, name: &str, yaml: &str) {
    let (deleted, out) = t
        .kubectl(&["delete", "crewexecution", name, "--wait"])
        .await;
    assert!(deleted, "{out}");
    t.create(yaml).await;
}

#[tokio::test]
async fn bulk_writes_leave_an_execution_recreated_since_the_list_alone() {
    let t = TestNs::new("cli-recreated", Duration::from_secs(1)).await;
    let yaml = |i: usize| {
        format!("metadata: {{name: run-{i}, labels: {{set: s}}}}\nspec: {{image: busybox}}")
    };
    for i in 0..11 {
        t.create(&yaml(i)).await;
    }
    let api = t.executions();
    let bin = cli_bin();
    let bin = bin.display();
    let ns = t.ns.as_str();

    // Cancel: listed, asked, and run-0 re-created before the answer. The new run-0 is not the one the user saw.
    let before = api.get("run-0").await.expect("get").uid();
    let (code, shown) = answering_on_terminal(
        &format!("{bin} -n {ns} cancel -l set=s"),
        || async { recreate(&t, "run-0", &yaml(0)).await },
        "y\n",
    )
    .await;
    assert_eq!(code, 1, "{shown}");
    assert!(
        shown.contains("cancel: 10 cancelled, 0 already in that state, 1 failed"),
        "{shown}"
    );
    assert!(
        shown.contains("run-0: Conflict: not cancelled: an execution of this name was created since it was listed"),
        "{shown}"
    );
    let now = api.get("run-0").await.expect("the new run-0");
    assert_ne!(now.uid(), before);
    assert!(!now.spec.cancel, "the re-created run-0 was cancelled");
    assert!(api.get("run-1").await.expect("get").spec.cancel);

    // Delete: the same for run-1; the new run-1 stays.
    let before = api.get("run-1").await.expect("get").uid();
    let (code, shown) = answering_on_terminal(
        &format!("{bin} -n {ns} delete -l set=s"),
        || async { recreate(&t, "run-1", &yaml(1)).await },
        "y\n",
    )
    .await;
    assert_eq!(code, 1, "{shown}");
    assert!(
        shown.contains("delete: 10 deleted, 0 already in that state, 1 failed"),
        "{shown}"
    );
    assert!(
        shown.contains("run-1: Conflict: not deleted: an execution of this name was created since it was listed"),
        "{shown}"
    );
    let left = api
        .list(&kube::api::ListParams::default().labels("set=s"))
        .await
        .expect("list");
    let left: Vec<(String, Option<String>)> = left
        .items
        .iter()
        .map(|cx| (cx.name_any(), cx.uid()))
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].0, "run-1");
    assert_ne!(left[0].1, before);
}

#[tokio::test]
async fn rerun_of_a_long_name_is_valid_and_leaves_gitops_tracking_behind() {
    use crew_core::lifecycle::names::label_value;
    let t = TestNs::new("cli-rerun-long", Duration::from_secs(1)).await;
    let api = t.executions();
    let sixty = format!("{}-{}", "nightly-report".repeat(3), "a".repeat(17));
    let longest = format!("{}.{}", "x".repeat(126), "y".repeat(126));
    assert_eq!((sixty.len(), longest.len()), (60, 253));
    for original in [&sixty, &longest] {
        t.create(&format!(
            "metadata:\n  name: {original}\n  labels: {{team: a, app.kubernetes.io/instance: crews, \
             argocd.argoproj.io/instance: crews, kustomize.toolkit.fluxcd.io/name: crews}}\n  \
             annotations: {{argocd.argoproj.io/tracking-id: 'crews:crew.dev/CrewExecution:x/y'}}\n\
             spec: {{image: busybox}}"
        ))
        .await;
        let rerun = crew(&t, &["rerun", original]).await;
        assert_eq!(rerun.code, 0, "{}", rerun.stderr);
        assert!(
            rerun
                .stdout
                .contains(&format!("created (rerun of {original})")),
            "{}",
            rerun.stdout
        );
        assert!(
            rerun.stderr.contains(
                "GitOps tracking labels not copied: app.kubernetes.io/instance, \
                 argocd.argoproj.io/instance, kustomize.toolkit.fluxcd.io/name"
            ),
            "{}",
            rerun.stderr
        );
        let made = api
            .list(
                &kube::api::ListParams::default()
                    .labels(&format!("crew.dev/rerun-of={}", label_value(original))),
            )
            .await
            .expect("list");
        let [copy] = made.items.as_slice() else {
            panic!("one rerun of {original}: {:?}", made.items);
        };
        let name = copy.name_any();
        assert!(name.len() <= 63, "{name}");
        assert!(name.starts_with(&original[..40]), "{name}");
        assert_eq!(copy.labels().get("team").map(String::as_str), Some("a"));
        for tracking in [
            "app.kubernetes.io/instance",
            "argocd.argoproj.io/instance",
            "kustomize.toolkit.fluxcd.io/name",
        ] {
            assert!(!copy.labels().contains_key(tracking), "{tracking} copied");
        }
        assert!(copy.annotations().is_empty(), "{:?}", copy.annotations());
    }
}
