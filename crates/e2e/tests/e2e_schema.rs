//! What the API server itself enforces and offers from the CRDs, on the real control plane: CEL rules and bounds
//! rejected at `kubectl apply` with a clear message, list-map merging under server-side apply, field selectors,
//! and `helm install --wait` waiting for an execution to finish (kstatus).

mod support;

use crew_api::CrewExecution;
use kube::api::{Patch, PatchParams};
use std::time::{Duration, Instant};
use support::{TestNs, phase_of};

/// A CrewExecution manifest named `name` with `spec` (flow-style YAML).
fn execution(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: crew.dev/v1alpha1\nkind: CrewExecution\nmetadata: {{name: {name}}}\nspec: {spec}\n"
    )
}

/// `kubectl apply` of `yaml` in the test's namespace (server-side with `--field-manager` when given).
async fn apply(t: &TestNs, yaml: &str, manager: Option<&str>) -> (bool, String) {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), yaml).expect("write manifest");
    let path = file.path().to_string_lossy().into_owned();
    let mut args = vec!["apply", "-f", path.as_str()];
    if let Some(manager) = manager {
        args.extend(["--server-side", "--field-manager", manager]);
    }
    t.kubectl(&args).await
}

/// Asserts that applying `yaml` is refused and the refusal says `expected`.
async fn assert_refused(t: &TestNs, yaml: &str, expected: &str) {
    let (ok, out) = apply(t, yaml, None).await;
    assert!(!ok, "accepted although it should not be:\n{yaml}\n{out}");
    assert!(
        out.contains(expected),
        "refused, but without {expected:?}:\n{out}"
    );
}

#[tokio::test]
async fn out_of_range_integers_and_bad_step_lists_are_refused_at_apply() {
    let t = TestNs::new("schema-refuse", Duration::from_millis(300)).await;
    // Values the typed client could not decode (i32 / u32 overflow) never reach the operator's watch.
    assert_refused(
        &t,
        &execution("bad", "{image: busybox, priority: 2147483648}"),
        "spec.priority",
    )
    .await;
    assert_refused(
        &t,
        &execution("bad", "{image: busybox, priority: -1000000001}"),
        "should be greater than or equal to -1000000000",
    )
    .await;
    assert_refused(
        &t,
        "apiVersion: crew.dev/v1alpha1\nkind: CrewQueue\nmetadata: {name: q}\nspec: {maxRunning: 4294967296}\n",
        "spec.maxRunning",
    )
    .await;
    assert_refused(
        &t,
        &execution("bad", "{image: busybox, retry: {limit: 101}}"),
        "spec.retry.limit",
    )
    .await;
    for field in ["timeoutSeconds: 0", "timeoutSeconds: 2147483648"] {
        assert_refused(
            &t,
            &execution("bad", &format!("{{image: busybox, {field}}}")),
            "spec.timeoutSeconds",
        )
        .await;
    }
    assert_refused(
        &t,
        &execution(
            "bad",
            "{image: busybox, steps: [{name: a}, {name: b, timeoutSeconds: 0}]}",
        ),
        "timeoutSeconds",
    )
    .await;
    assert_refused(
        &t,
        &execution(
            "bad",
            "{image: busybox, steps: [{name: fetch}, {name: write}, {name: fetch}]}",
        ),
        "step names must be unique",
    )
    .await;
    // Any legal name is accepted whatever its steps: Job names past 63 characters are cut and hashed. Only what
    // Kubernetes itself refuses for every object (a name over 253 characters) is refused.
    let steps = "{image: busybox, suspend: true, steps: [{name: a}, {name: research}]}";
    for length in [50, 51, 253] {
        let (ok, out) = apply(&t, &execution(&"x".repeat(length), steps), None).await;
        assert!(
            ok,
            "a {length}-character name with its steps is accepted: {out}"
        );
    }
    let no_steps = "{image: busybox, suspend: true, priority: 1000000000}";
    let (ok, out) = apply(&t, &execution(&"y".repeat(55), no_steps), None).await;
    assert!(ok, "55 + main + 5 > 63 is accepted too: {out}");
    let (ok, out) = apply(&t, &execution(&"y".repeat(54), no_steps), None).await;
    assert!(ok, "54 + main + 5 = 63 fits, and priority 1e9 too: {out}");
    assert_refused(
        &t,
        &execution(&"z".repeat(254), no_steps),
        "must be no more than 253 characters",
    )
    .await;
}

#[tokio::test]
async fn cancel_cannot_be_cleared_and_the_refusal_says_why() {
    let t = TestNs::new("schema-cancel", Duration::from_millis(300)).await;
    let manifest = |cancel: bool| {
        execution(
            "stop",
            &format!("{{image: busybox, suspend: true, cancel: {cancel}}}"),
        )
    };
    let (ok, out) = apply(&t, &manifest(false), None).await;
    assert!(ok, "{out}");
    let (ok, out) = apply(&t, &manifest(true), None).await;
    assert!(ok, "setting cancel is allowed: {out}");
    assert_refused(
        &t,
        &manifest(false),
        "spec.cancel cannot be cleared: cancelling is irreversible",
    )
    .await;
    // A patch that removes the field altogether is refused too.
    let removed = t
        .executions()
        .patch(
            "stop",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(
                    serde_json::json!([{"op": "remove", "path": "/spec/cancel"}]),
                )
                .expect("JSON patch"),
            ),
        )
        .await;
    let cx = t.executions().get("stop").await.expect("get");
    assert!(
        cx.spec.cancel,
        "cancel is still set after removing it: {removed:?}"
    );
}

#[tokio::test]
async fn a_new_execution_reads_as_in_progress_until_the_operator_has_seen_it() {
    let t = TestNs::new("schema-observed", Duration::from_millis(300)).await;
    let created = t
        .create("metadata: {name: fresh}\nspec: {image: busybox}\n")
        .await;
    // No operator runs: what kstatus reads is the schema default.
    let status = created.status.expect("a status from the schema default");
    assert_eq!(status.observed_generation, Some(0));
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(
        phase_of(&t.executions().get("fresh").await.expect("get")),
        ""
    );
    let operator = t.start_operator();
    let done = t
        .wait_phase("fresh", "Succeeded", Duration::from_secs(60))
        .await;
    assert_eq!(
        done.status.and_then(|s| s.observed_generation),
        Some(1),
        "the operator's write replaces the default"
    );
    operator.stop().await;
}

#[tokio::test]
async fn server_side_apply_merges_steps_and_conditions_by_key() {
    let t = TestNs::new("schema-merge", Duration::from_millis(300)).await;
    let (ok, out) = apply(
        &t,
        &execution(
            "merged",
            "{image: busybox, suspend: true, steps: [{name: fetch}, {name: write}]}",
        ),
        Some("author"),
    )
    .await;
    assert!(ok, "{out}");
    // A second manager sets one field of one step: with a map-list it owns just that, and the steps stay.
    let (ok, out) = apply(
        &t,
        &execution("merged", "{steps: [{name: write, image: writer:2}]}"),
        Some("tuner"),
    )
    .await;
    assert!(ok, "a second manager may set one step's image: {out}");
    let cx = t.executions().get("merged").await.expect("get");
    let steps: Vec<(&str, Option<&str>)> = cx
        .spec
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.image.as_deref()))
        .collect();
    assert_eq!(steps, vec![("fetch", None), ("write", Some("writer:2"))]);

    // Conditions merge by type: another writer's condition survives the operator's writes, and the operator's own
    // conditions survive the other writer's.
    let operator = t.start_operator();
    t.wait_phase("merged", "Paused", Duration::from_secs(30))
        .await;
    let other = serde_json::json!({
        "apiVersion": "crew.dev/v1alpha1", "kind": "CrewExecution", "metadata": {"name": "merged"},
        "status": {"conditions": [{"type": "PolicyChecked", "status": "True", "reason": "Checked",
                                    "message": "checked by another controller",
                                    "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    });
    t.executions()
        .patch_status(
            "merged",
            &PatchParams::apply("policy-checker"),
            &Patch::Apply(&other),
        )
        .await
        .expect("another manager's condition");
    t.executions()
        .patch(
            "merged",
            &PatchParams::apply("author"),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "crew.dev/v1alpha1", "kind": "CrewExecution", "metadata": {"name": "merged"},
                "spec": {"image": "busybox", "suspend": false, "steps": [{"name": "fetch"}, {"name": "write"}]}
            })),
        )
        .await
        .expect("resume");
    let done = t
        .wait_phase("merged", "Succeeded", Duration::from_secs(60))
        .await;
    let types: Vec<String> = done
        .status
        .map(|s| s.conditions.into_iter().map(|c| c.type_).collect())
        .unwrap_or_default();
    for expected in ["Ready", "Succeeded", "PolicyChecked"] {
        assert!(
            types.iter().any(|t| t == expected),
            "{expected} missing from {types:?}"
        );
    }
    operator.stop().await;
}

#[tokio::test]
async fn kubectl_selects_executions_by_queue_and_by_phase() {
    let t = TestNs::new("schema-select", Duration::from_millis(300)).await;
    let (ok, out) = apply(
        &t,
        "apiVersion: crew.dev/v1alpha1\nkind: CrewQueue\nmetadata: {name: gpu}\nspec: {maxRunning: 5}\n",
        None,
    )
    .await;
    assert!(ok, "{out}");
    let hang = "podAnnotations: {sim.crew.dev/hang: \"true\"}";
    for (name, queue) in [("a", "queue: gpu, "), ("b", "queue: gpu, "), ("c", "")] {
        t.create(&format!(
            "metadata: {{name: {name}}}\nspec: {{image: busybox, {queue}{hang}}}\n"
        ))
        .await;
    }
    t.create("metadata: {name: done}\nspec: {image: busybox}\n")
        .await;
    let operator = t.start_operator();
    for name in ["a", "b", "c"] {
        t.wait_phase(name, "Running", Duration::from_secs(30)).await;
    }
    t.wait_phase("done", "Succeeded", Duration::from_secs(30))
        .await;
    let names = |out: String| {
        let mut names: Vec<String> = out.lines().map(str::to_string).collect();
        names.sort();
        names
    };
    let (ok, out) = t
        .kubectl(&[
            "get",
            "cx",
            "--field-selector",
            "spec.queue=gpu",
            "-o",
            "name",
        ])
        .await;
    assert!(ok, "{out}");
    assert_eq!(
        names(out),
        ["crewexecution.crew.dev/a", "crewexecution.crew.dev/b"]
    );
    let (ok, out) = t
        .kubectl(&[
            "get",
            "cx",
            "--field-selector",
            "status.phase=Running",
            "-o",
            "name",
        ])
        .await;
    assert!(ok, "{out}");
    assert_eq!(
        names(out),
        [
            "crewexecution.crew.dev/a",
            "crewexecution.crew.dev/b",
            "crewexecution.crew.dev/c"
        ]
    );
    let (ok, out) = t
        .kubectl(&[
            "get",
            "cx",
            "--field-selector",
            "status.phase!=Running",
            "-o",
            "name",
        ])
        .await;
    assert!(ok, "{out}");
    assert_eq!(names(out), ["crewexecution.crew.dev/done"]);
    operator.stop().await;
}

/// A one-template chart holding `execution`, written to a temporary directory.
fn chart_with(execution: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("Chart.yaml"),
        "apiVersion: v2\nname: crew-wait\nversion: 0.1.0\n",
    )
    .expect("Chart.yaml");
    std::fs::create_dir(dir.path().join("templates")).expect("templates/");
    std::fs::write(dir.path().join("templates/execution.yaml"), execution).expect("template");
    dir
}

/// `helm install --wait` of `chart` in namespace `ns`: (success, output, how long it took). Async, so that the
/// operator in this test's runtime goes on meanwhile.
async fn helm_install_wait(
    chart: &std::path::Path,
    ns: &str,
    release: &str,
) -> (bool, String, Duration) {
    let plane = support::plane();
    let started = Instant::now();
    let out = tokio::process::Command::new(plane.bin.join("helm"))
        .args(["install", release])
        .arg(chart)
        .args([
            "--namespace",
            ns,
            "--wait",
            "--timeout",
            "90s",
            "--kubeconfig",
        ])
        .arg(&plane.kubeconfig)
        .output()
        .await
        .expect("run helm");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text, started.elapsed())
}

#[tokio::test]
async fn helm_install_wait_returns_when_the_execution_succeeded_and_fails_fast_when_it_failed() {
    let t = TestNs::new("helm-wait", Duration::from_millis(300)).await;
    let operator = t.start_operator();
    let succeeding = chart_with(&execution(
        "waited",
        "{image: busybox, podAnnotations: {sim.crew.dev/duration: 4s}}",
    ));
    let (ok, out, took) = helm_install_wait(succeeding.path(), &t.ns, "ok").await;
    assert!(ok, "helm install --wait: {out}");
    let cx: CrewExecution = t.executions().get("waited").await.expect("get");
    assert_eq!(
        phase_of(&cx),
        "Succeeded",
        "helm returned after {took:?} before the execution finished"
    );
    assert!(took >= Duration::from_secs(4), "returned after {took:?}");

    let failing = chart_with(&execution(
        "broken",
        "{image: busybox, podAnnotations: {sim.crew.dev/duration: 1s, sim.crew.dev/exit-code: \"2\"}}",
    ));
    let (ok, out, took) = helm_install_wait(failing.path(), &t.ns, "failing").await;
    assert!(
        !ok,
        "helm install --wait succeeded for a failed execution: {out}"
    );
    assert!(
        took < Duration::from_secs(60),
        "a failed execution should fail the wait fast, not at the 90 s timeout: {took:?}\n{out}"
    );
    let cx: CrewExecution = t.executions().get("broken").await.expect("get");
    assert_eq!(phase_of(&cx), "Failed");
    operator.stop().await;
}

/// Review finding 2: a `serviceAccountName` the API server cannot even be asked about (`""`, a trailing space) made
/// every launch fail before its status write, silently, for ever. The schema refuses both at apply, naming the
/// field; a ServiceAccount name that is a DNS subdomain still passes.
#[tokio::test]
async fn a_service_account_name_that_cannot_be_looked_up_is_refused_at_apply() {
    let t = TestNs::new("schema-sa-name", Duration::from_millis(300)).await;
    for name in ["''", "'runner '", "Runner", "a_b"] {
        assert_refused(
            &t,
            &execution(
                "bad",
                &format!("{{image: busybox, serviceAccountName: {name}}}"),
            ),
            "spec.serviceAccountName",
        )
        .await;
    }
    let (ok, out) = apply(
        &t,
        &execution(
            "good",
            "{image: busybox, serviceAccountName: crew-worker.v2}",
        ),
        None,
    )
    .await;
    assert!(
        ok,
        "a DNS-subdomain name is a valid ServiceAccount name: {out}"
    );
}
