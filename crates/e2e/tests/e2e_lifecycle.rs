//! The lifecycle on a real control plane: kube-apiserver + etcd + kube-controller-manager (Job controller, garbage
//! collector), with KWOK playing the kubelet.

mod support;

use crew_api::StepPhase;
use crew_core::lifecycle::names::config_map_name;
use crew_operator::metrics::WriteKind;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{DeleteParams, ListParams};
use kube::{Api, ResourceExt};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use support::conditions::{events_at_least, has_condition, has_event, none, step_is};
use support::wait::{wait_deleted, wait_list, wait_until, when_list};
use support::{TestNs, events_of, history_reasons, http_get, jobs_of};

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn one_step_execution_succeeds_with_progress_timings_history_and_events() {
    let t = TestNs::new("one-step", Duration::from_millis(1500)).await;
    let op = t.start_operator();
    t.create(
        r#"
metadata: {name: hello}
spec:
  image: busybox
  podAnnotations: {sim.crew.dev/message: '{"answer": 42}'}
"#,
    )
    .await;
    let cx = t.wait_phase("hello", "Succeeded", LIMIT).await;
    let status = cx.status.clone().unwrap();
    let progress = status.progress.clone().unwrap();
    assert_eq!(
        (progress.percent, progress.display.as_str()),
        (100, "1/1 (100%)")
    );
    assert!(status.start_time.is_some() && status.completion_time.is_some());
    assert!(
        status.duration_seconds.is_some_and(|d| d >= 1),
        "duration {:?}",
        status.duration_seconds
    );
    assert_eq!(status.steps.len(), 1);
    let step = &status.steps[0];
    assert_eq!(
        (step.name.as_str(), step.phase, step.attempt, step.exit_code),
        ("main", StepPhase::Succeeded, 1, Some(0))
    );
    assert_eq!(step.job_name.as_deref(), Some("hello-main-1"));
    assert_eq!(step.result.as_deref(), Some(r#"{"answer": 42}"#));
    assert_eq!(status.result.as_deref(), Some(r#"{"answer": 42}"#));
    assert_eq!(history_reasons(&cx), ["Started", "Succeeded"]);
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Succeeded")
        .unwrap();
    assert_eq!(ready.status, "True");
    t.wait_events("hello", LIMIT, events_at_least(2)).await;
    let events = events_of(&t, "hello").await;
    assert_eq!(
        events,
        [
            ("Normal".to_string(), "Started".to_string()),
            ("Normal".into(), "Succeeded".into())
        ]
    );
    let writes = &op.ctx.metrics;
    println!(
        "one-step execution writes: status={} job_create={} events={} configmap={} total={}",
        writes.writes(WriteKind::Status),
        writes.writes(WriteKind::JobCreate),
        writes.writes(WriteKind::Event),
        writes.writes(WriteKind::ConfigMap),
        writes.all_writes()
    );
    assert_eq!(writes.writes(WriteKind::Status), 2);
    assert_eq!(writes.writes(WriteKind::JobCreate), 1);
    op.stop().await;
}

#[tokio::test]
async fn three_step_execution_runs_steps_in_order_and_counts_its_writes() {
    let t = TestNs::new("three-step", Duration::from_millis(500)).await;
    let op = t.start_operator();
    t.create(
        r#"
metadata: {name: crew}
spec:
  image: busybox
  crew: {agents: [{role: researcher}, {role: writer}], process: sequential}
  inputs: {topic: operators}
  steps:
  - {name: research}
  - {name: write, podAnnotations: {sim.crew.dev/message: draft}}
  - {name: review, image: reviewer:2, podAnnotations: {sim.crew.dev/message: approved}}
"#,
    )
    .await;
    let cx = t.wait_phase("crew", "Succeeded", LIMIT).await;
    let status = cx.status.clone().unwrap();
    let names: Vec<_> = status
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.phase))
        .collect();
    assert_eq!(
        names,
        [
            ("research", StepPhase::Succeeded),
            ("write", StepPhase::Succeeded),
            ("review", StepPhase::Succeeded)
        ]
    );
    let starts: Vec<_> = status
        .steps
        .iter()
        .map(|s| s.start_time.clone().unwrap().0)
        .collect();
    let ends: Vec<_> = status
        .steps
        .iter()
        .map(|s| s.completion_time.clone().unwrap().0)
        .collect();
    assert!(
        starts[1] >= ends[0] && starts[2] >= ends[1],
        "steps ran in order: {starts:?} {ends:?}"
    );
    assert_eq!(status.progress.as_ref().unwrap().display, "3/3 (100%)");
    assert_eq!(status.result.as_deref(), Some("approved"));
    assert_eq!(
        history_reasons(&cx),
        ["Started", "StepSucceeded", "StepSucceeded", "Succeeded"]
    );
    let jobs = jobs_of(&t, "crew").await;
    let job_names: BTreeSet<_> = jobs
        .iter()
        .filter_map(|j| j.metadata.name.clone())
        .collect();
    assert_eq!(
        job_names,
        BTreeSet::from([
            "crew-research-1".into(),
            "crew-write-1".into(),
            "crew-review-1".into()
        ])
    );
    let review = jobs
        .iter()
        .find(|j| j.metadata.name.as_deref() == Some("crew-review-1"))
        .unwrap();
    let container = &review
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    assert_eq!(container.image.as_deref(), Some("reviewer:2"));
    let cm: Api<ConfigMap> = Api::namespaced(t.client.clone(), &t.ns);
    let data = cm
        .get(&config_map_name("crew", &cx.uid().unwrap()))
        .await
        .expect("crew ConfigMap")
        .data
        .unwrap();
    assert!(data["crew.json"].contains("researcher") && data["inputs.json"].contains("operators"));
    t.wait_events("crew", LIMIT, events_at_least(4)).await;
    let writes = &op.ctx.metrics;
    // The watch may show the last Event before the operator has counted its create (it counts on the answer).
    wait_until(LIMIT, "the operator to count its fourth Event", || async {
        writes.writes(WriteKind::Event) >= 4
    })
    .await;
    println!(
        "three-step execution writes: status={} job_create={} events={} configmap={} total={}",
        writes.writes(WriteKind::Status),
        writes.writes(WriteKind::JobCreate),
        writes.writes(WriteKind::Event),
        writes.writes(WriteKind::ConfigMap),
        writes.all_writes()
    );
    assert_eq!(writes.writes(WriteKind::JobCreate), 3);
    assert_eq!(writes.writes(WriteKind::Status), 4);
    assert_eq!(writes.writes(WriteKind::Event), 4);
    assert_eq!(writes.writes(WriteKind::ConfigMap), 1);
    op.stop().await;
}

#[tokio::test]
async fn failing_step_fails_the_execution_with_exit_code_and_message() {
    let t = TestNs::new("failing", Duration::from_millis(300)).await;
    let op = t.start_operator();
    t.create(
        r#"
metadata: {name: broken}
spec:
  image: busybox
  steps:
  - {name: ok}
  - {name: boom, podAnnotations: {sim.crew.dev/exit-code: "3", sim.crew.dev/message: "model quota exceeded"}}
  - {name: never}
"#,
    )
    .await;
    let cx = t.wait_phase("broken", "Failed", LIMIT).await;
    let status = cx.status.clone().unwrap();
    assert_eq!(status.reason.as_deref(), Some("StepFailed"));
    let boom = &status.steps[1];
    assert_eq!((boom.phase, boom.exit_code), (StepPhase::Failed, Some(3)));
    assert_eq!(boom.result.as_deref(), Some("model quota exceeded"));
    assert!(boom.message.as_deref().unwrap().contains("exit code 3"));
    assert_eq!(status.steps[2].phase, StepPhase::Pending);
    assert_eq!(status.progress.as_ref().unwrap().display, "1/3 (33%)");
    assert_eq!(
        history_reasons(&cx).last().map(String::as_str),
        Some("StepFailed")
    );
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .unwrap();
    assert_eq!(stalled.status, "True");
    assert_eq!(
        jobs_of(&t, "broken").await.len(),
        2,
        "the step after the failure never ran"
    );
    t.wait_events("broken", LIMIT, has_event("Warning", "StepFailed"))
        .await;
    op.stop().await;
}

#[tokio::test]
async fn deleting_an_execution_garbage_collects_its_jobs_and_config_map() {
    let t = TestNs::new("gc", Duration::from_millis(300)).await;
    let op = t.start_operator();
    t.create("metadata: {name: doomed}\nspec: {image: busybox, inputs: {x: 1}}\n")
        .await;
    let doomed = t.wait_phase("doomed", "Succeeded", LIMIT).await;
    let config_map = config_map_name("doomed", &doomed.uid().unwrap());
    assert_eq!(jobs_of(&t, "doomed").await.len(), 1);
    t.executions()
        .delete("doomed", &DeleteParams::background())
        .await
        .expect("delete");
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), &t.ns);
    // Garbage collection: the Jobs, then the ConfigMap (once gone, neither comes back).
    t.wait_jobs("doomed", LIMIT, none()).await;
    wait_deleted(cms, &config_map, LIMIT).await;
    op.stop().await;
}

/// Review finding 9: an execution created again under the same name while its predecessor's ConfigMap still
/// awaited garbage collection mounted the predecessor's inputs. Each execution's ConfigMap is named after its UID.
#[tokio::test]
async fn an_execution_created_again_under_its_name_gets_its_own_inputs() {
    use kube::api::{Patch, PatchParams};
    let t = TestNs::new("again", Duration::from_millis(300)).await;
    let op = t.start_operator();
    let first = t
        .create("metadata: {name: report}\nspec: {image: busybox, inputs: {v: first}}\n")
        .await;
    t.wait_phase("report", "Succeeded", LIMIT).await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), &t.ns);
    let old = config_map_name("report", &first.uid().unwrap());
    // Hold the old ConfigMap, as a slow garbage collection would.
    let hold = |finalizers: serde_json::Value| {
        Patch::Merge(serde_json::json!({"metadata": {"finalizers": finalizers}}))
    };
    cms.patch(
        &old,
        &PatchParams::default(),
        &hold(serde_json::json!(["test.crew.dev/hold"])),
    )
    .await
    .expect("hold the old ConfigMap");
    t.executions()
        .delete("report", &DeleteParams::background())
        .await
        .expect("delete");
    t.wait_deleted("report", LIMIT).await;

    let second = t
        .create("metadata: {name: report}\nspec: {image: busybox, inputs: {v: second}}\n")
        .await;
    t.wait_phase("report", "Succeeded", LIMIT).await;
    let own = config_map_name("report", &second.uid().unwrap());
    assert_ne!(own, old);
    let config_map = cms
        .get(&own)
        .await
        .expect("the second execution's ConfigMap");
    assert!(config_map.data.unwrap()["inputs.json"].contains("second"));
    let job = jobs_of(&t, "report")
        .await
        .into_iter()
        .find(|j| {
            j.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == second.uid().as_ref())
        })
        .expect("the second execution's Job");
    let mounted = job.spec.unwrap().template.spec.unwrap().volumes.unwrap()[0]
        .projected
        .clone()
        .and_then(|p| p.sources)
        .and_then(|s| s.into_iter().next())
        .and_then(|s| s.config_map)
        .expect("the crew files' first source: the execution's ConfigMap")
        .name;
    assert_eq!(mounted, own, "the Job mounts its own execution's inputs");
    assert!(
        cms.get_opt(&old).await.unwrap().is_some(),
        "the old one still awaits deletion"
    );
    cms.patch(
        &old,
        &PatchParams::default(),
        &hold(serde_json::Value::Null),
    )
    .await
    .expect("release the old ConfigMap");
    op.stop().await;
}

#[tokio::test]
async fn operator_restart_mid_execution_creates_no_duplicate_job_and_keeps_history() {
    let t = TestNs::new("restart", Duration::from_millis(1500)).await;
    let op = t.start_operator();
    t.create("metadata: {name: sturdy}\nspec:\n  image: busybox\n  steps: [{name: a}, {name: b}, {name: c}]\n").await;
    t.wait_for("sturdy", LIMIT, step_is(1, StepPhase::Running))
        .await;
    op.kill().await;
    let before = t.executions().get("sturdy").await.unwrap();
    // Part of the scenario, not a wait: step b finishes while no operator runs.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let op = t.start_operator();
    let cx = t.wait_phase("sturdy", "Succeeded", LIMIT).await;
    let history_before = before.status.unwrap().history;
    let history_after = cx.status.clone().unwrap().history;
    assert_eq!(
        &history_after[..history_before.len()],
        &history_before[..],
        "history kept as written"
    );
    assert_eq!(
        history_reasons(&cx),
        ["Started", "StepSucceeded", "StepSucceeded", "Succeeded"]
    );
    assert_eq!(
        support::job_names(&t, "sturdy").await,
        ["sturdy-a-1", "sturdy-b-1", "sturdy-c-1"],
        "exactly one Job per step attempt"
    );
    op.stop().await;
}

/// Review finding 10, scenario 2: a finished step's pod is deleted (pod GC, or by hand) while no operator runs.
/// After the restart the step's recorded result and exit code stay as written; rebuilding from the Job alone used to
/// set them to null.
#[tokio::test]
async fn a_recorded_result_survives_its_pod_and_a_restart() {
    let t = TestNs::new("podgc", Duration::from_millis(250)).await;
    let op = t.start_operator();
    t.create(
        "metadata: {name: kept}\nspec:\n  image: busybox\n  steps:\n  - {name: a, podAnnotations: {sim.crew.dev/message: '{\"x\": 1}'}}\n  - {name: b, podAnnotations: {sim.crew.dev/hang: 'true'}}\n",
    )
    .await;
    let running = t
        .wait_for("kept", LIMIT, step_is(1, StepPhase::Running))
        .await;
    let a = running
        .status
        .as_ref()
        .map(|s| s.steps[0].clone())
        .expect("step a");
    assert_eq!(
        (a.result.as_deref(), a.exit_code),
        (Some(r#"{"x": 1}"#), Some(0))
    );
    op.kill().await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), &t.ns);
    pods.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("crew.dev/step=a"),
    )
    .await
    .expect("delete step a's pod");
    t.wait_pods("crew.dev/step=a", LIMIT, none()).await;
    let op = t.start_operator();
    // A change that makes the restarted operator write the status: cancel.
    t.executions()
        .patch(
            "kept",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"cancel": true}})),
        )
        .await
        .expect("cancel");
    let cx = t.wait_phase("kept", "Cancelled", LIMIT).await;
    let after = cx
        .status
        .as_ref()
        .map(|s| s.steps[0].clone())
        .expect("step a");
    assert_eq!(after, a, "step a kept as written");
    op.stop().await;
}

/// Review finding 11: `steps: [a, b, c]`, and while `b` runs the user renames it to `b2`. The run keeps the steps
/// it started with: no Job for `b2` ever, `b` stays in `status.steps`, the edit is reported (condition
/// `StepsChanged`, a Warning Event) and the run finishes with `a, b, c`.
#[tokio::test]
async fn renaming_a_running_step_starts_no_parallel_step_and_keeps_its_status() {
    let t = TestNs::new("frozen", Duration::from_millis(300)).await;
    let op = t.start_operator();
    t.create(
        "metadata: {name: frozen}\nspec:\n  image: busybox\n  steps:\n  - {name: a}\n  - {name: b, podAnnotations: {sim.crew.dev/duration: 4s}}\n  - {name: c}\n",
    )
    .await;
    t.wait_for("frozen", LIMIT, step_is(1, StepPhase::Running))
        .await;
    let (ok, out) = t
        .kubectl(&[
            "patch",
            "crewexecution",
            "frozen",
            "--type",
            "json",
            "-p",
            r#"[{"op": "replace", "path": "/spec/steps/1/name", "value": "b2"}]"#,
        ])
        .await;
    assert!(ok, "{out}");
    let cx = t
        .wait_for("frozen", LIMIT, has_condition("StepsChanged", "True"))
        .await;
    let names = |cx: &crew_api::CrewExecution| -> Vec<String> {
        cx.status
            .iter()
            .flat_map(|s| s.steps.iter().map(|step| step.name.clone()))
            .collect()
    };
    assert_eq!(names(&cx), ["a", "b", "c"]);
    let cx = t.wait_phase("frozen", "Succeeded", LIMIT).await;
    assert_eq!(names(&cx), ["a", "b", "c"]);
    assert_eq!(
        support::job_names(&t, "frozen").await,
        ["frozen-a-1", "frozen-b-1", "frozen-c-1"],
        "no Job for b2"
    );
    let warnings: Vec<_> = events_of(&t, "frozen")
        .await
        .into_iter()
        .filter(|(_, reason)| reason == "StepsChanged")
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    op.stop().await;
}

/// A crash between a status write and its Event lost the Event (reliability review: 2 of 150 runs under kill -9).
/// Each history entry's Event is named after the entry, and an operator that starts sends the newest entry's
/// Event of every recently active execution again: the lost one comes back, the others are not duplicated.
#[tokio::test]
async fn an_event_lost_to_a_crash_is_sent_again_after_a_restart_and_none_is_duplicated() {
    use k8s_openapi::api::events::v1::Event;
    let t = TestNs::new("resend", Duration::from_millis(200)).await;
    let op = t.start_operator();
    t.create("metadata: {name: lost}\nspec: {image: busybox}\n")
        .await;
    t.create("metadata: {name: kept}\nspec: {image: busybox}\n")
        .await;
    t.wait_phase("lost", "Succeeded", LIMIT).await;
    t.wait_phase("kept", "Succeeded", LIMIT).await;
    let events: Api<Event> = Api::namespaced(t.client.clone(), &t.ns);
    // The names of those of `all` about execution `name`, sorted.
    fn names_about<'a>(all: impl Iterator<Item = &'a Event>, name: &str) -> Vec<String> {
        let mut names: Vec<String> = all
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .filter_map(|e| e.metadata.name.clone())
            .collect();
        names.sort();
        names
    }
    let about = |name: &'static str| {
        let events = events.clone();
        async move {
            let all = events
                .list(&ListParams::default())
                .await
                .expect("list Events")
                .items;
            names_about(all.iter(), name)
        }
    };
    // Both Events of each run are there (Started, Succeeded) once the lanes have drained.
    wait_list(
        events.clone(),
        Default::default(),
        LIMIT,
        when_list("two Events per execution", |all: &[Arc<Event>]| {
            let all = || all.iter().map(Arc::as_ref);
            names_about(all(), "lost").len() == 2 && names_about(all(), "kept").len() == 2
        }),
    )
    .await;
    op.stop().await;
    let all_lost = about("lost").await;
    let all_kept = about("kept").await;
    let succeeded = events
        .list(&ListParams::default())
        .await
        .expect("list Events")
        .items
        .into_iter()
        .find(|e| {
            e.reason.as_deref() == Some("Succeeded")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("lost")
        })
        .and_then(|e| e.metadata.name)
        .expect("the Succeeded Event of `lost`");
    events
        .delete(&succeeded, &DeleteParams::default())
        .await
        .expect("delete the Event, as a crash before its create would have left it missing");

    let op = t.start_operator();
    wait_list(
        events.clone(),
        Default::default(),
        LIMIT,
        when_list("the lost Event is back", |all: &[Arc<Event>]| {
            names_about(all.iter().map(Arc::as_ref), "lost") == all_lost
        }),
    )
    .await;
    // Part of the scenario, not a wait: give a duplicate resend its time to show, then check nothing was doubled.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(about("lost").await, all_lost);
    assert_eq!(about("kept").await, all_kept);
    assert_eq!(
        op.ctx.metrics.writes(WriteKind::Event),
        1,
        "only the lost Event was created again"
    );
    op.stop().await;
}

#[tokio::test]
async fn invalid_spec_fails_alone_and_a_valid_neighbour_still_succeeds() {
    let t = TestNs::new("invalid", Duration::from_millis(300)).await;
    let op = t.start_operator();
    // Accepted by the API server (duplicate step names no longer are), refused by the operator: no image.
    t.create("metadata: {name: bad}\nspec:\n  steps: [{name: a}, {name: b}]\n")
        .await;
    t.create("metadata: {name: good}\nspec: {image: busybox}\n")
        .await;
    let bad = t.wait_phase("bad", "Failed", LIMIT).await;
    let status = bad.status.clone().unwrap();
    assert_eq!(status.reason.as_deref(), Some("InvalidSpec"));
    let message = status.message.clone().unwrap();
    assert!(message.contains("no image"), "{message}");
    assert_eq!(
        status
            .conditions
            .iter()
            .find(|c| c.type_ == "Stalled")
            .unwrap()
            .status,
        "True"
    );
    t.wait_phase("good", "Succeeded", LIMIT).await;
    assert!(jobs_of(&t, "bad").await.is_empty());
    t.wait_events("bad", LIMIT, has_event("Warning", "InvalidSpec"))
        .await;
    op.stop().await;
}

#[tokio::test]
async fn kubectl_get_shows_the_columns_and_kubectl_wait_returns() {
    let t = TestNs::new("kubectl", Duration::from_millis(1000)).await;
    let op = t.start_operator();
    t.create(
        "metadata: {name: shown}\nspec:\n  image: busybox\n  steps: [{name: one}, {name: two}]\n",
    )
    .await;
    let (ok, out) = t
        .kubectl(&[
            "wait",
            "--for=condition=Succeeded",
            "--timeout=60s",
            "cx/shown",
        ])
        .await;
    assert!(ok, "kubectl wait: {out}");
    let (ok, table) = t.kubectl(&["get", "cx"]).await;
    assert!(ok, "{table}");
    let header: Vec<_> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "PHASE", "PROGRESS", "STEP", "ATTEMPT", "DURATION", "AGE"
        ]
    );
    let row = table.lines().nth(1).unwrap();
    assert!(
        row.starts_with("shown")
            && row.contains("Succeeded")
            && row.contains("2/2")
            && row.contains("(100%)"),
        "{row}"
    );
    let (ok, out) = t.kubectl(&["get", "crewexec,crew"]).await;
    assert!(
        ok && out.contains("shown"),
        "short name and category: {out}"
    );
    let (ok, explain) = t
        .kubectl(&[
            "explain",
            "crewexecution.spec.retry",
            "--output=plaintext-openapiv2",
        ])
        .await;
    assert!(
        ok && explain.contains("How failed step attempts are retried"),
        "{explain}"
    );
    let (ok, explain) = t
        .kubectl(&[
            "explain",
            "crewexecution.spec.retry.backoffSeconds",
            "--output=plaintext-openapiv2",
        ])
        .await;
    assert!(
        ok && explain.contains("doubles with every further attempt"),
        "{explain}"
    );
    op.stop().await;
}

#[tokio::test]
async fn metrics_and_health_endpoints_report_what_happened() {
    let t = TestNs::new("metrics", Duration::from_millis(300)).await;
    let op = t.start_operator();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(crew_operator::http::serve(listener, op.ctx.clone()));
    assert_eq!(http_get(addr, "/healthz").await.0, 200);
    wait_until(Duration::from_secs(20), "readyz", || async {
        http_get(addr, "/readyz").await.0 == 200
    })
    .await;
    t.create(
        "metadata: {name: measured}\nspec:\n  image: busybox\n  steps: [{name: a}, {name: b}]\n",
    )
    .await;
    t.wait_phase("measured", "Succeeded", LIMIT).await;
    wait_until(LIMIT, "executions gauge", || async {
        http_get(addr, "/metrics")
            .await
            .1
            .contains("crew_executions{phase=\"Succeeded\"} 1")
    })
    .await;
    let (code, text) = http_get(addr, "/metrics").await;
    assert_eq!(code, 200);
    for needle in [
        "crew_reconciles_total{result=\"ok\"}",
        "crew_reconcile_duration_seconds_bucket",
        "crew_transitions_total{from=\"Pending\",to=\"Running\"} 1",
        "crew_transitions_total{from=\"Running\",to=\"Succeeded\"} 1",
        "crew_api_writes_total{kind=\"status\"} 3",
        "crew_api_writes_total{kind=\"job_create\"} 2",
        "crew_step_duration_seconds_count{outcome=\"succeeded\"} 2",
        "crew_execution_duration_seconds_count{phase=\"Succeeded\"} 1",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    server.abort();
    op.stop().await;
}

#[tokio::test]
async fn the_scheduler_places_workers_on_general_nodes_and_leaves_a_pod_that_fits_none_pending() {
    let t = TestNs::new("scheduling", Duration::from_millis(300)).await;
    let op = t.start_operator();
    t.create("metadata: {name: fits}\nspec: {image: busybox}\n")
        .await;
    // More CPU than any node has: as on a real cluster, the pod stays Pending and the scheduler says why.
    t.create(
        "metadata: {name: too-big}\nspec: {image: busybox, resources: {requests: {cpu: \"5000\"}}}\n",
    )
    .await;
    t.wait_phase("fits", "Succeeded", LIMIT).await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), &t.ns);
    let placed = pods
        .list(&ListParams::default().labels("crew.dev/execution=fits"))
        .await
        .expect("list pods");
    let node = placed.items[0]
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    assert!(
        node.starts_with("kwok-node-"),
        "a worker without a GPU toleration never lands on the tainted GPU node: {node}"
    );
    let unschedulable = |pod: &Pod| {
        pod.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.type_ == "PodScheduled"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("Unschedulable")
                })
            })
    };
    let pending = t
        .wait_pods(
            "crew.dev/execution=too-big",
            LIMIT,
            when_list("a pod Unschedulable", |pods: &[Arc<Pod>]| {
                pods.iter().any(|p| unschedulable(p))
            }),
        )
        .await
        .into_iter()
        .find(|p| unschedulable(p));
    let pod = pending.expect("pending pod");
    let status = pod.status.expect("status");
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    let message = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled")
        .and_then(|c| c.message)
        .unwrap_or_default();
    assert!(message.contains("Insufficient cpu"), "{message}");
    op.stop().await;
}
