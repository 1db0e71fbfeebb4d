//! Execution control on a real control plane: queues and priorities, retries, timeouts, pause / resume, cancel,
//! TTL, queue statistics, the operator-wide limit, and operator restarts in the middle of all that.

mod support;

use crew_api::{CrewExecution, CrewQueue, CrewQueueSpec, StepPhase};
use crew_core::lifecycle::names::config_map_name;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::conditions::{
    has_condition_reason, has_event, has_reason, is_phase, live_names_are, names_are, none, step_is,
};
use support::wait::wait_until;
use support::wait::{try_wait_list, wait_object, when_list, when_object};
use support::{TestNs, events_of, history_reasons, job_names, jobs_of, phase_of};

const LIMIT: Duration = Duration::from_secs(60);

async fn wait_event(t: &TestNs, name: &str, kind: &str, reason: &str) {
    t.wait_events(name, LIMIT, has_event(kind, reason)).await;
}

fn reason_of(cx: &CrewExecution) -> String {
    cx.status
        .as_ref()
        .and_then(|s| s.reason.clone())
        .unwrap_or_default()
}

fn condition(cx: &CrewExecution, type_: &str) -> Option<Condition> {
    cx.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

/// (status, reason) of the condition `type_` ("" when absent).
fn condition_of(cx: &CrewExecution, type_: &str) -> (String, String) {
    condition(cx, type_).map_or_else(Default::default, |c| (c.status, c.reason))
}

fn step_phase(cx: &CrewExecution, index: usize) -> Option<StepPhase> {
    cx.status.as_ref()?.steps.get(index).map(|s| s.phase)
}

async fn create_queue(t: &TestNs, name: &str, max_running: u32) {
    let api: Api<CrewQueue> = Api::namespaced(t.client.clone(), &t.ns);
    let mut queue = CrewQueue::new(name, CrewQueueSpec { max_running });
    queue.metadata.namespace = Some(t.ns.clone());
    api.create(&PostParams::default(), &queue)
        .await
        .expect("create queue");
}

/// Merge-patches the execution's spec (`suspend`, `cancel`, ...), as `kubectl patch --type merge` would.
async fn patch_spec(t: &TestNs, name: &str, spec: serde_json::Value) {
    t.executions()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .expect("patch spec");
}

/// What watching the executions saw.
#[derive(Debug, Default)]
struct Timeline {
    /// When each execution was first seen Running.
    started: BTreeMap<String, Instant>,
    /// Most executions seen Running at once (in any one state the watch saw).
    max_running: usize,
    /// Executions seen in phase Queued with condition Admitted=False.
    seen_waiting: BTreeSet<String>,
    /// Every `status.reason` seen, per execution.
    reasons: BTreeMap<String, BTreeSet<String>>,
    /// The executions as last seen (all terminal).
    last: BTreeMap<String, CrewExecution>,
}

/// Watches the executions `names` through every change until all of them reached a terminal phase.
async fn observe_until_finished(
    api: Api<CrewExecution>,
    names: Vec<String>,
    limit: Duration,
) -> Timeline {
    let mut timeline = Timeline::default();
    let mut phases = BTreeMap::new();
    let all_finished = when_list(
        "every execution finished",
        |all: &[Arc<CrewExecution>]| {
            let at = Instant::now();
            let mut running = 0;
            let mut finished = 0;
            phases.clear();
            for cx in all.iter().filter(|cx| names.contains(&cx.name_any())) {
                let name = cx.name_any();
                let phase = phase_of(cx);
                match phase.as_str() {
                    "Running" => {
                        running += 1;
                        timeline.started.entry(name.clone()).or_insert(at);
                    }
                    "Queued" if condition_of(cx, "Admitted").0 == "False" => {
                        timeline.seen_waiting.insert(name.clone());
                    }
                    "Succeeded" | "Failed" | "Cancelled" => finished += 1,
                    _ => {}
                }
                timeline
                    .reasons
                    .entry(name.clone())
                    .or_default()
                    .insert(reason_of(cx));
                phases.insert(name.clone(), phase);
                timeline.last.insert(name, CrewExecution::clone(cx));
            }
            timeline.max_running = timeline.max_running.max(running);
            finished == names.len()
        },
    );
    if let Err(timed_out) = try_wait_list(api, Default::default(), limit, all_finished).await {
        panic!("executions not finished within {limit:?}: {phases:?}\n{timed_out}");
    }
    timeline
}

/// Sleeps until the wall clock is past the start of the next whole second (creation timestamps have whole-second
/// resolution, so objects created on either side compare strictly).
async fn next_second() {
    let ms = Timestamp::now().subsec_millisecond();
    tokio::time::sleep(Duration::from_millis((1000 - ms as u64) + 50)).await;
}

fn created(cx: &CrewExecution) -> Timestamp {
    cx.metadata.creation_timestamp.clone().unwrap().0
}

#[tokio::test]
async fn queue_admits_highest_priority_then_first_come_never_exceeding_max_running() {
    let t = TestNs::new("priority", Duration::from_secs(2)).await;
    create_queue(&t, "gpu", 2).await;
    // Three creation batches, each in its own second. Within one priority, later batches get names that sort
    // first, so only creation order (not the name tie-break) explains a first-come-first-served start order.
    let batches: [&[(i32, &str)]; 3] = [
        &[(0, "p0-c"), (5, "p5-c"), (1, "p1-c")],
        &[(0, "p0-b"), (10, "p10-b"), (5, "p5-b")],
        &[(0, "p0-a"), (10, "p10-a"), (5, "p5-a"), (1, "p1-a")],
    ];
    let mut batch_times = Vec::new();
    for batch in batches {
        let mut times = BTreeSet::new();
        for (priority, name) in batch {
            let cx = t
                .create(&format!(
                    "metadata: {{name: {name}}}\nspec: {{image: busybox, queue: gpu, priority: {priority}, inputs: {{who: {name}}}}}\n"
                ))
                .await;
            times.insert(created(&cx));
        }
        batch_times.push(times);
        next_second().await;
    }
    for pair in batch_times.windows(2) {
        assert!(
            pair[0].last() < pair[1].first(),
            "creation batches must be in distinct seconds: {batch_times:?}"
        );
    }
    let expected = [
        "p10-b", "p10-a", "p5-c", "p5-b", "p5-a", "p1-c", "p1-a", "p0-c", "p0-b", "p0-a",
    ];
    // Started after the executions exist, so the very first admission decision sees all ten.
    let op = t.start_operator();
    let names: Vec<String> = expected.iter().map(|n| n.to_string()).collect();
    let timeline = observe_until_finished(t.executions(), names.clone(), LIMIT * 2).await;

    assert!(
        timeline.max_running <= 2,
        "at most maxRunning=2 Running at once, saw {}",
        timeline.max_running
    );
    assert_eq!(timeline.max_running, 2, "both slots were used");
    for name in &names {
        let cx = &timeline.last[name];
        assert_eq!(phase_of(cx), "Succeeded", "{name}");
        assert!(timeline.started.contains_key(name), "{name} seen Running");
    }
    let mut order: Vec<(&Instant, &String)> =
        timeline.started.iter().map(|(n, i)| (i, n)).collect();
    order.sort();
    let origin = *order[0].0;
    let shown: Vec<String> = order
        .iter()
        .map(|(i, n)| format!("{n}@{}ms", i.duration_since(origin).as_millis()))
        .collect();
    println!("start order: {shown:?}");
    // Two executions admitted together start within a few hundred ms of each other (either may be seen first);
    // the next pair only after a 2 s pod finished. So an execution seen starting more than 700 ms before one that
    // precedes it in the admission order was admitted out of order.
    let tolerance = Duration::from_millis(700);
    for (i, earlier) in expected.iter().enumerate() {
        for later in &expected[i + 1..] {
            let (a, b) = (timeline.started[*earlier], timeline.started[*later]);
            assert!(
                a <= b + tolerance,
                "{earlier} must start no later than {later}; start order: {shown:?}"
            );
        }
    }
    for name in &expected[..2] {
        assert_eq!(
            history_reasons(&timeline.last[*name]),
            ["Started", "Succeeded"],
            "{name} was admitted at once"
        );
    }
    for name in &expected[2..] {
        assert!(
            timeline.seen_waiting.contains(*name),
            "{name} was seen Queued with Admitted=False"
        );
        assert_eq!(
            history_reasons(&timeline.last[*name]),
            ["Queued", "Started", "Succeeded"],
            "{name}"
        );
    }
    // Queued runs wait without their inputs in the operator's cache and read them when admitted (finding 3).
    let config_maps: Api<ConfigMap> = Api::namespaced(t.client.clone(), &t.ns);
    for name in &names {
        let uid = timeline.last[name].uid().unwrap();
        let data = config_maps
            .get(&config_map_name(name, &uid))
            .await
            .expect("inputs ConfigMap")
            .data
            .unwrap();
        assert!(
            data["inputs.json"].contains(name.as_str()),
            "{name}: {data:?}"
        );
    }
    op.stop().await;
}

#[tokio::test]
async fn failed_attempts_are_retried_with_backoff_until_success() {
    let t = TestNs::new("retry", Duration::from_millis(300)).await;
    let op = t.start_operator();
    t.create(
        r#"
metadata: {name: flaky}
spec:
  image: busybox
  retry: {limit: 3, backoffSeconds: 1, maxBackoffSeconds: 2}
  podAnnotations: {sim.crew.dev/fail-attempts: "2"}
"#,
    )
    .await;
    // Watch through the run to catch the backoff state.
    let mut backoff_seen = None;
    let succeeded = when_object("phase Succeeded", |cx: &CrewExecution| {
        if let Some(status) = &cx.status
            && status.reason.as_deref() == Some("RetryBackoff")
            && backoff_seen.is_none()
        {
            backoff_seen = Some(status.clone());
        }
        phase_of(cx) == "Succeeded"
    });
    let cx = t.wait_for("flaky", LIMIT, succeeded).await;
    let backoff = backoff_seen.expect("status.reason RetryBackoff observed during a backoff");
    assert!(
        backoff.next_retry_time.is_some(),
        "nextRetryTime set while in backoff"
    );
    assert_eq!(
        backoff.phase.map(|p| p.to_string()).as_deref(),
        Some("Running"),
        "the execution stays Running while it waits for its retry"
    );
    assert_eq!(backoff.steps[0].phase, StepPhase::Retrying);

    let status = cx.status.clone().unwrap();
    assert_eq!(status.steps[0].attempt, 3);
    assert_eq!(status.steps[0].phase, StepPhase::Succeeded);
    assert_eq!(status.steps[0].job_name.as_deref(), Some("flaky-main-3"));
    assert_eq!(status.attempt, Some(3));
    assert!(status.next_retry_time.is_none(), "no retry pending");
    assert_eq!(
        history_reasons(&cx),
        [
            "Started",
            "RetryScheduled",
            "StepStarted",
            "RetryScheduled",
            "StepStarted",
            "Succeeded"
        ]
    );
    let jobs = jobs_of(&t, "flaky").await;
    let mut names: Vec<_> = jobs
        .iter()
        .filter_map(|j| j.metadata.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["flaky-main-1", "flaky-main-2", "flaky-main-3"]);
    // Each retry waited its backoff after the previous attempt failed: 1 s, then 2 s.
    let job = |n: &str| {
        jobs.iter()
            .find(|j| j.metadata.name.as_deref() == Some(n))
            .unwrap()
    };
    let failed_at = |n: &str| {
        job(n)
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.type_ == "Failed" && c.status == "True")
            })
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| panic!("{n} failed"))
            .0
    };
    let created_at = |n: &str| job(n).metadata.creation_timestamp.clone().unwrap().0;
    assert!(
        created_at("flaky-main-2")
            >= failed_at("flaky-main-1") + jiff::SignedDuration::from_secs(1)
    );
    assert!(
        created_at("flaky-main-3")
            >= failed_at("flaky-main-2") + jiff::SignedDuration::from_secs(2)
    );
    t.wait_events("flaky", LIMIT, support::conditions::events_at_least(6))
        .await;
    let events = events_of(&t, "flaky").await;
    let count = |kind: &str, reason: &str| {
        events
            .iter()
            .filter(|(k, r)| k == kind && r == reason)
            .count()
    };
    assert_eq!(count("Warning", "RetryScheduled"), 2, "{events:?}");
    assert_eq!(count("Normal", "StepStarted"), 2, "{events:?}");
    op.stop().await;
}

#[tokio::test]
async fn exhausted_retries_fail_the_execution_with_the_last_exit_code() {
    let t = TestNs::new("exhausted", Duration::from_millis(300)).await;
    let op = t.start_operator();
    t.create(
        r#"
metadata: {name: doomed}
spec:
  image: busybox
  retry: {limit: 1, backoffSeconds: 1}
  podAnnotations: {sim.crew.dev/exit-code: "7"}
"#,
    )
    .await;
    let cx = t.wait_phase("doomed", "Failed", LIMIT).await;
    let status = cx.status.clone().unwrap();
    assert_eq!(status.reason.as_deref(), Some("RetriesExhausted"));
    assert!(
        status
            .message
            .as_deref()
            .unwrap()
            .contains("after 2 attempts"),
        "{:?}",
        status.message
    );
    let step = &status.steps[0];
    assert_eq!(
        (step.phase, step.attempt, step.exit_code),
        (StepPhase::Failed, 2, Some(7))
    );
    assert_eq!(
        history_reasons(&cx),
        [
            "Started",
            "RetryScheduled",
            "StepStarted",
            "RetriesExhausted"
        ]
    );
    assert_eq!(
        condition_of(&cx, "Stalled"),
        ("True".to_string(), "RetriesExhausted".to_string())
    );
    assert_eq!(
        job_names(&t, "doomed").await,
        ["doomed-main-1", "doomed-main-2"]
    );
    wait_event(&t, "doomed", "Warning", "RetriesExhausted").await;
    op.stop().await;
}

#[tokio::test]
async fn step_timeout_is_enforced_by_the_job_controller() {
    let t = TestNs::new("step-timeout", Duration::from_millis(300)).await;
    let op = t.start_operator();
    t.create(
        r#"
metadata: {name: slowpoke}
spec:
  image: busybox
  steps:
  - name: think
    timeoutSeconds: 2
    podAnnotations: {sim.crew.dev/hang: "true"}
"#,
    )
    .await;
    let cx = t.wait_phase("slowpoke", "Failed", LIMIT).await;
    let status = cx.status.clone().unwrap();
    assert_eq!(status.reason.as_deref(), Some("StepFailed"));
    let step = &status.steps[0];
    assert_eq!((step.phase, step.attempt), (StepPhase::Failed, 1));
    let message = step.message.clone().unwrap_or_default();
    assert!(message.contains("timed out"), "step message: {message}");
    assert!(
        step.duration_seconds.is_some_and(|d| d >= 1),
        "ran until its deadline: {:?}",
        step.duration_seconds
    );
    assert_eq!(history_reasons(&cx), ["Started", "StepFailed"]);
    let jobs = jobs_of(&t, "slowpoke").await;
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(
        job.spec.as_ref().unwrap().active_deadline_seconds,
        Some(2),
        "the step timeout is the Job's activeDeadlineSeconds"
    );
    let failed = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Failed" && c.status == "True")
        .expect("Job condition Failed");
    assert_eq!(failed.reason.as_deref(), Some("DeadlineExceeded"));
    wait_event(&t, "slowpoke", "Warning", "StepFailed").await;
    op.stop().await;
}

#[tokio::test]
async fn execution_timeout_fails_the_run_and_deletes_the_running_job() {
    let t = TestNs::new("exec-timeout", Duration::from_millis(300)).await;
    let op = t.start_operator();
    let begin = Instant::now();
    t.create(
        r#"
metadata: {name: endless}
spec:
  image: busybox
  timeoutSeconds: 3
  steps:
  - {name: first, podAnnotations: {sim.crew.dev/duration: 200ms}}
  - {name: forever, podAnnotations: {sim.crew.dev/hang: "true"}}
"#,
    )
    .await;
    t.wait_for(
        "endless",
        LIMIT,
        step_is(1, StepPhase::Running).or(is_phase("Failed")),
    )
    .await;
    let cx = t
        .wait_phase("endless", "Failed", Duration::from_secs(20))
        .await;
    let took = begin.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took <= Duration::from_secs(12),
        "timed out after about 3 s, took {took:?}"
    );
    let status = cx.status.clone().unwrap();
    assert_eq!(status.reason.as_deref(), Some("TimedOut"));
    assert!(
        status.message.as_deref().unwrap_or_default().contains("3s"),
        "{:?}",
        status.message
    );
    assert_eq!(status.steps[0].phase, StepPhase::Succeeded);
    assert_eq!(status.steps[1].phase, StepPhase::Cancelled);
    assert_eq!(
        history_reasons(&cx),
        ["Started", "StepSucceeded", "TimedOut"]
    );
    assert!(
        status
            .duration_seconds
            .is_some_and(|d| (3..=8).contains(&d))
    );
    t.wait_jobs("endless", LIMIT, live_names_are(&["endless-first-1"]))
        .await;
    wait_event(&t, "endless", "Warning", "TimedOut").await;
    op.stop().await;
}

#[tokio::test]
async fn pause_while_running_lets_the_step_finish_then_resume_runs_the_rest() {
    let t = TestNs::new("pause-run", Duration::from_secs(3)).await;
    let op = t.start_operator();
    t.create("metadata: {name: pausable}\nspec:\n  image: busybox\n  steps: [{name: one}, {name: two}]\n")
        .await;
    t.wait_for("pausable", LIMIT, step_is(0, StepPhase::Running))
        .await;
    patch_spec(&t, "pausable", json!({"suspend": true})).await;
    let cx = t
        .wait_for(
            "pausable",
            Duration::from_secs(10),
            has_condition_reason("Paused", "PauseRequested"),
        )
        .await;
    assert_eq!(phase_of(&cx), "Running", "the running step goes on");
    assert_eq!(condition_of(&cx, "Paused").0, "True");
    assert_eq!(step_phase(&cx, 0), Some(StepPhase::Running));

    let cx = t.wait_phase("pausable", "Paused", LIMIT).await;
    assert_eq!(step_phase(&cx, 0), Some(StepPhase::Succeeded));
    assert_eq!(step_phase(&cx, 1), Some(StepPhase::Pending));
    assert_eq!(
        condition_of(&cx, "Paused"),
        ("True".to_string(), "Paused".to_string())
    );
    assert_eq!(
        cx.status
            .as_ref()
            .unwrap()
            .progress
            .as_ref()
            .unwrap()
            .display,
        "1/2 (50%)"
    );
    // It stays paused: no Job for step two appears. Part of the scenario, not a wait: time passes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        phase_of(&t.executions().get("pausable").await.unwrap()),
        "Paused"
    );
    assert_eq!(job_names(&t, "pausable").await, ["pausable-one-1"]);

    patch_spec(&t, "pausable", json!({"suspend": false})).await;
    let cx = t
        .wait_phase("pausable", "Running", Duration::from_secs(10))
        .await;
    assert_eq!(
        condition_of(&cx, "Paused"),
        ("False".to_string(), "NotPaused".to_string())
    );
    let cx = t.wait_phase("pausable", "Succeeded", LIMIT).await;
    assert_eq!(
        history_reasons(&cx),
        ["Started", "StepSucceeded", "Paused", "Resumed", "Succeeded"]
    );
    assert_eq!(
        job_names(&t, "pausable").await,
        ["pausable-one-1", "pausable-two-1"]
    );
    wait_event(&t, "pausable", "Normal", "Paused").await;
    wait_event(&t, "pausable", "Normal", "Resumed").await;
    op.stop().await;
}

#[tokio::test]
async fn pause_while_queued_keeps_the_execution_out_of_a_freed_slot_until_resumed() {
    let t = TestNs::new("pause-queued", Duration::from_millis(500)).await;
    create_queue(&t, "single", 1).await;
    let op = t.start_operator();
    t.create("metadata: {name: holder}\nspec: {image: busybox, queue: single, podAnnotations: {sim.crew.dev/duration: 6s}}\n")
        .await;
    t.wait_phase("holder", "Running", LIMIT).await;
    t.create("metadata: {name: waiter}\nspec: {image: busybox, queue: single}\n")
        .await;
    let cx = t.wait_phase("waiter", "Queued", LIMIT).await;
    assert_eq!(
        condition_of(&cx, "Admitted"),
        ("False".to_string(), "Queued".to_string())
    );
    patch_spec(&t, "waiter", json!({"suspend": true})).await;
    let cx = t
        .wait_phase("waiter", "Paused", Duration::from_secs(10))
        .await;
    assert_eq!(condition_of(&cx, "Paused").0, "True");
    t.wait_phase("holder", "Succeeded", LIMIT).await;
    // The slot is free, but a paused execution does not take it. Part of the scenario, not a wait: time passes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cx = t.executions().get("waiter").await.unwrap();
    assert_eq!(phase_of(&cx), "Paused");
    assert!(
        job_names(&t, "waiter").await.is_empty(),
        "no Job while paused"
    );

    patch_spec(&t, "waiter", json!({"suspend": false})).await;
    let cx = t.wait_phase("waiter", "Succeeded", LIMIT).await;
    assert_eq!(
        history_reasons(&cx),
        ["Queued", "Paused", "Started", "Succeeded"]
    );
    assert_eq!(job_names(&t, "waiter").await, ["waiter-main-1"]);
    op.stop().await;
}

/// Cancels `name` (expected in phase `from`), checks the outcome, then tries to clear `spec.cancel` and checks
/// that the API server refuses and the execution stays cancelled.
async fn cancel_and_check(t: &TestNs, name: &str, from: &str) -> CrewExecution {
    assert_eq!(
        phase_of(&t.executions().get(name).await.unwrap()),
        from,
        "{name}"
    );
    patch_spec(t, name, json!({"cancel": true})).await;
    let cx = t
        .wait_phase(name, "Cancelled", Duration::from_secs(15))
        .await;
    let status = cx.status.clone().unwrap();
    assert_eq!(status.reason.as_deref(), Some("Cancelled"), "{name}");
    assert!(status.completion_time.is_some(), "{name}");
    let last = status.history.last().unwrap();
    assert_eq!(
        (
            last.from.to_string(),
            last.to.to_string(),
            last.reason.as_str()
        ),
        (from.to_string(), "Cancelled".to_string(), "Cancelled"),
        "{name}"
    );
    assert_eq!(
        condition_of(&cx, "Stalled"),
        ("True".to_string(), "Cancelled".to_string())
    );
    wait_event(t, name, "Normal", "Cancelled").await;

    // The API server refuses to clear it (a CEL transition rule); the operator's own guard, for servers that would
    // let it through, is covered by the `clearing_cancel_is_irreversible` story of the core.
    let cleared = t
        .executions()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": {"cancel": false} })),
        )
        .await;
    let refusal = cleared
        .expect_err("clearing spec.cancel is refused")
        .to_string();
    assert!(
        refusal.contains("cancelling is irreversible"),
        "{name}: {refusal}"
    );
    let after = t.executions().get(name).await.expect("get");
    assert_eq!(phase_of(&after), "Cancelled", "{name} stays cancelled");
    assert_eq!(
        history_reasons(&after),
        history_reasons(&cx),
        "{name}: clearing cancel adds no history"
    );
    cx
}

#[tokio::test]
async fn cancel_from_every_non_terminal_phase_is_final() {
    let t = TestNs::new("cancel", Duration::from_millis(500)).await;
    create_queue(&t, "one", 1).await;
    let op = t.start_operator();
    t.create("metadata: {name: pending}\nspec: {image: busybox, queue: missing}\n")
        .await;
    t.create("metadata: {name: running}\nspec: {image: busybox, queue: one, podAnnotations: {sim.crew.dev/hang: \"true\"}}\n")
        .await;
    t.create("metadata: {name: paused}\nspec: {image: busybox, suspend: true}\n")
        .await;
    t.wait_phase("running", "Running", LIMIT).await;
    t.create("metadata: {name: queued}\nspec: {image: busybox, queue: one}\n")
        .await;

    // Pending: its queue does not exist.
    let cx = t
        .wait_for("pending", LIMIT, has_reason("QueueNotFound"))
        .await;
    assert_eq!(phase_of(&cx), "Pending");
    assert_eq!(
        condition_of(&cx, "Admitted"),
        ("False".to_string(), "QueueNotFound".to_string())
    );
    wait_event(&t, "pending", "Warning", "QueueNotFound").await;
    t.wait_phase("queued", "Queued", LIMIT).await;
    t.wait_phase("paused", "Paused", LIMIT).await;

    // Queued first, while the running one still holds the only slot.
    cancel_and_check(&t, "queued", "Queued").await;
    assert!(job_names(&t, "queued").await.is_empty());

    let cx = cancel_and_check(&t, "running", "Running").await;
    let step = &cx.status.as_ref().unwrap().steps[0];
    assert_eq!(step.phase, StepPhase::Cancelled);
    assert_eq!(step.job_name.as_deref(), Some("running-main-1"));
    t.wait_jobs("running", LIMIT, live_names_are(&[])).await;

    cancel_and_check(&t, "pending", "Pending").await;
    cancel_and_check(&t, "paused", "Paused").await;
    for name in ["pending", "paused"] {
        assert!(job_names(&t, name).await.is_empty(), "{name} never ran");
    }
    // The freed slot admits nobody: the cancelled waiter stays cancelled. Part of the scenario, not a wait: time
    // passes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        phase_of(&t.executions().get("queued").await.unwrap()),
        "Cancelled"
    );
    op.stop().await;
}

#[tokio::test]
async fn execution_waits_for_a_missing_queue_and_runs_once_it_is_created() {
    let t = TestNs::new("later", Duration::from_millis(500)).await;
    let op = t.start_operator();
    t.create("metadata: {name: patient}\nspec: {image: busybox, queue: later}\n")
        .await;
    let cx = t
        .wait_for("patient", LIMIT, has_reason("QueueNotFound"))
        .await;
    assert_eq!(phase_of(&cx), "Pending");
    assert_eq!(
        condition_of(&cx, "Admitted"),
        ("False".to_string(), "QueueNotFound".to_string())
    );
    assert!(
        cx.status
            .as_ref()
            .unwrap()
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("later"),
        "the message names the queue"
    );
    wait_event(&t, "patient", "Warning", "QueueNotFound").await;
    // Part of the scenario, not a wait: time passes without the queue.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cx = t.executions().get("patient").await.unwrap();
    assert_eq!(phase_of(&cx), "Pending", "stays Pending without its queue");
    assert!(job_names(&t, "patient").await.is_empty());

    create_queue(&t, "later", 1).await;
    let cx = t.wait_phase("patient", "Succeeded", LIMIT).await;
    assert_eq!(history_reasons(&cx), ["Started", "Succeeded"]);
    assert_eq!(
        condition_of(&cx, "Admitted"),
        ("True".to_string(), "Admitted".to_string())
    );
    assert_eq!(job_names(&t, "patient").await, ["patient-main-1"]);
    let warnings = events_of(&t, "patient")
        .await
        .iter()
        .filter(|(k, r)| k == "Warning" && r == "QueueNotFound")
        .count();
    assert_eq!(warnings, 1, "QueueNotFound is warned once");
    op.stop().await;
}

#[tokio::test]
async fn finished_execution_is_deleted_after_its_ttl() {
    let t = TestNs::new("ttl", Duration::from_millis(500)).await;
    let op = t.start_operator();
    t.create("metadata: {name: ephemeral}\nspec: {image: busybox, ttlSecondsAfterFinished: 2}\n")
        .await;
    let cx = t.wait_phase("ephemeral", "Succeeded", LIMIT).await;
    let completed = cx.status.unwrap().completion_time.unwrap().0;
    assert_eq!(job_names(&t, "ephemeral").await, ["ephemeral-main-1"]);
    t.wait_deleted("ephemeral", Duration::from_secs(20)).await;
    let gone = Timestamp::now();
    assert!(
        gone >= completed + jiff::SignedDuration::from_secs(2),
        "deleted no earlier than 2 s after completion ({completed}), seen gone at {gone}"
    );
    assert!(
        gone <= completed + jiff::SignedDuration::from_secs(12),
        "deleted soon after its TTL ({completed}), seen gone at {gone}"
    );
    t.wait_jobs("ephemeral", LIMIT, none()).await;
    op.stop().await;
}

#[tokio::test]
async fn queue_status_counts_a_mixed_batch_and_kubectl_shows_it() {
    let t = TestNs::new("stats", Duration::from_millis(500)).await;
    create_queue(&t, "stats", 3).await;
    let op = t.start_operator();
    t.create("metadata: {name: stop}\nspec: {image: busybox, queue: stats, priority: 9, podAnnotations: {sim.crew.dev/hang: \"true\"}}\n")
        .await;
    for name in ["ok-1", "ok-2", "ok-3"] {
        t.create(&format!(
            "metadata: {{name: {name}}}\nspec: {{image: busybox, queue: stats}}\n"
        ))
        .await;
    }
    for name in ["bad-1", "bad-2"] {
        t.create(&format!(
            "metadata: {{name: {name}}}\nspec: {{image: busybox, queue: stats, podAnnotations: {{sim.crew.dev/exit-code: \"2\"}}}}\n"
        ))
        .await;
    }
    t.wait_phase("stop", "Running", LIMIT).await;
    let names: Vec<String> = ["ok-1", "ok-2", "ok-3", "bad-1", "bad-2"]
        .iter()
        .map(|n| n.to_string())
        .collect();
    let timeline = observe_until_finished(t.executions(), names.clone(), LIMIT).await;
    assert!(
        timeline.max_running <= 2,
        "with `stop` holding one of 3 slots at most 2 others run, saw {}",
        timeline.max_running
    );
    patch_spec(&t, "stop", json!({"cancel": true})).await;
    t.wait_phase("stop", "Cancelled", LIMIT).await;

    let queues: Api<CrewQueue> = Api::namespaced(t.client.clone(), &t.ns);
    let counted = when_object(
        "succeeded 3, failed 2, cancelled 1, running 0, queued 0",
        |q: &CrewQueue| {
            q.status.as_ref().is_some_and(|s| {
                (s.succeeded, s.failed, s.cancelled, s.running, s.queued) == (3, 2, 1, 0, 0)
            })
        },
    );
    let status = wait_object(queues, "stats", Duration::from_secs(20), counted)
        .await
        .status
        .expect("queue status");
    assert_eq!((status.pending, status.paused), (0, 0));
    assert_eq!(status.success_rate, Some(50), "3 of 6 finished succeeded");
    assert_eq!(status.oldest_queued_seconds, None, "nobody waits");
    assert_eq!(status.observed_generation, Some(1));
    assert!(status.update_time.is_some());
    let mut durations: Vec<u64> = Vec::new();
    for cx in t
        .executions()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        durations.push(cx.status.unwrap().duration_seconds.expect("duration") as u64);
    }
    durations.sort();
    assert_eq!(durations.len(), 6);
    assert_eq!(
        status.average_duration_seconds,
        Some(durations.iter().sum::<u64>() / 6),
        "mean of {durations:?}"
    );
    assert_eq!(
        status.p95_duration_seconds,
        Some(durations[5]),
        "nearest-rank p95 of six is the largest: {durations:?}"
    );

    let (ok, table) = t.kubectl(&["get", "cq"]).await;
    assert!(ok, "{table}");
    let mut lines = table.lines();
    let header: Vec<_> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "MAX",
            "RUNNING",
            "QUEUED",
            "SUCCEEDED",
            "FAILED",
            "SUCCESS%",
            "AGE"
        ]
    );
    let row: Vec<_> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..7],
        ["stats", "3", "0", "0", "3", "2", "50"],
        "{table}"
    );
    op.stop().await;
}

#[tokio::test]
async fn operator_restart_during_a_retry_backoff_keeps_the_retry_time() {
    let t = TestNs::new("restart-backoff", Duration::from_millis(300)).await;
    let op = t.start_operator();
    t.create(
        r#"
metadata: {name: phoenix}
spec:
  image: busybox
  retry: {limit: 2, backoffSeconds: 4}
  podAnnotations: {sim.crew.dev/fail-attempts: "1"}
"#,
    )
    .await;
    let cx = t
        .wait_for("phoenix", LIMIT, has_reason("RetryBackoff"))
        .await;
    op.kill().await;
    let retry_at = cx
        .status
        .as_ref()
        .unwrap()
        .next_retry_time
        .clone()
        .expect("nextRetryTime in backoff")
        .0;
    // Part of the scenario, not a wait: the backoff goes on while no operator runs.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(job_names(&t, "phoenix").await, ["phoenix-main-1"]);
    let op = t.start_operator();
    let cx = t.wait_phase("phoenix", "Succeeded", LIMIT).await;
    let jobs = jobs_of(&t, "phoenix").await;
    let mut names: Vec<_> = jobs
        .iter()
        .filter_map(|j| j.metadata.name.clone())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["phoenix-main-1", "phoenix-main-2"],
        "exactly one Job per attempt"
    );
    let second = jobs
        .iter()
        .find(|j| j.metadata.name.as_deref() == Some("phoenix-main-2"))
        .unwrap();
    let launched = second.metadata.creation_timestamp.clone().unwrap().0;
    assert!(
        launched >= retry_at,
        "attempt 2 launched at {launched}, before nextRetryTime {retry_at}"
    );
    assert!(
        launched <= retry_at + jiff::SignedDuration::from_secs(5),
        "attempt 2 launched at {launched}, long after nextRetryTime {retry_at}"
    );
    let status = cx.status.clone().unwrap();
    assert_eq!(status.steps[0].attempt, 2);
    assert!(status.steps[0].start_time.as_ref().unwrap().0 >= retry_at);
    assert_eq!(
        history_reasons(&cx),
        ["Started", "RetryScheduled", "StepStarted", "Succeeded"],
        "no history entry duplicated by the restart"
    );
    wait_event(&t, "phoenix", "Normal", "Succeeded").await;
    let retries = events_of(&t, "phoenix")
        .await
        .iter()
        .filter(|(k, r)| k == "Warning" && r == "RetryScheduled")
        .count();
    assert_eq!(
        retries, 1,
        "no RetryScheduled Event repeated by the restart"
    );
    op.stop().await;
}

#[tokio::test]
async fn operator_restart_during_a_queue_wait_keeps_the_limit() {
    let t = TestNs::new("restart-queue", Duration::from_millis(500)).await;
    create_queue(&t, "solo", 1).await;
    let op = t.start_operator();
    t.create("metadata: {name: first}\nspec: {image: busybox, queue: solo, podAnnotations: {sim.crew.dev/duration: 3s}}\n")
        .await;
    t.wait_phase("first", "Running", LIMIT).await;
    t.create("metadata: {name: second}\nspec: {image: busybox, queue: solo, podAnnotations: {sim.crew.dev/duration: 1s}}\n")
        .await;
    t.wait_phase("second", "Queued", LIMIT).await;
    let observer = tokio::spawn(observe_until_finished(
        t.executions(),
        vec!["first".into(), "second".into()],
        LIMIT,
    ));
    op.kill().await;
    // Part of the scenario, not a wait: a moment with no operator.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let op = t.start_operator();
    let timeline = observer.await.expect("observer");
    assert_eq!(timeline.max_running, 1, "never two Running at once");
    for name in ["first", "second"] {
        assert_eq!(phase_of(&timeline.last[name]), "Succeeded", "{name}");
    }
    assert!(
        !timeline.reasons["second"].contains("QueueNotFound"),
        "the restart never reported the queue missing: {:?}",
        timeline.reasons["second"]
    );
    let first = timeline.last["first"].status.clone().unwrap();
    let second = timeline.last["second"].status.clone().unwrap();
    assert!(
        second.start_time.unwrap().0 >= first.completion_time.unwrap().0,
        "second started after first finished"
    );
    assert_eq!(
        history_reasons(&timeline.last["second"]),
        ["Queued", "Started", "Succeeded"]
    );
    assert_eq!(job_names(&t, "first").await, ["first-main-1"]);
    assert_eq!(job_names(&t, "second").await, ["second-main-1"]);
    op.stop().await;
}

#[tokio::test]
async fn operator_wide_limit_runs_executions_without_a_queue_one_at_a_time() {
    let t = TestNs::new("global", Duration::from_millis(1500)).await;
    let op = t.start_operator_with(Some(1));
    t.create("metadata: {name: early}\nspec: {image: busybox}\n")
        .await;
    t.wait_phase("early", "Running", LIMIT).await;
    // Created later, and the low-priority one first: priority beats creation order.
    t.create("metadata: {name: low}\nspec: {image: busybox}\n")
        .await;
    t.create("metadata: {name: high}\nspec: {image: busybox, priority: 5}\n")
        .await;
    let cx = t.wait_phase("low", "Queued", LIMIT).await;
    assert!(
        cx.status
            .as_ref()
            .unwrap()
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("operator-wide limit"),
        "{:?}",
        cx.status.as_ref().unwrap().message
    );
    let names: Vec<String> = ["early", "low", "high"]
        .iter()
        .map(|n| n.to_string())
        .collect();
    let timeline = observe_until_finished(t.executions(), names, LIMIT).await;
    assert_eq!(timeline.max_running, 1, "never more than one Running");
    for name in ["early", "low", "high"] {
        assert_eq!(phase_of(&timeline.last[name]), "Succeeded", "{name}");
    }
    for name in ["low", "high"] {
        assert!(timeline.seen_waiting.contains(name), "{name} waited");
    }
    assert!(
        timeline.started["early"] < timeline.started["high"]
            && timeline.started["high"] < timeline.started["low"],
        "start order early, high, low: {:?}",
        timeline.started
    );
    let end = |n: &str| timeline.last[n].status.clone().unwrap();
    assert!(end("high").start_time.unwrap().0 >= end("early").completion_time.unwrap().0);
    assert!(end("low").start_time.unwrap().0 >= end("high").completion_time.unwrap().0);
    op.stop().await;
}

/// Waits until the operator has listed its caches and sees `queue`, so that what is created next reaches it one
/// watch event at a time.
async fn operator_sees_queue(op: &support::Operator, t: &TestNs, queue: &str) {
    tokio::time::timeout(LIMIT, op.ctx.caches.executions.wait_until_ready())
        .await
        .expect("the executions cache lists within the limit")
        .expect("executions cache");
    let key = ObjectRef::<CrewQueue>::new(queue).within(&t.ns);
    wait_until(LIMIT, "the operator's caches", || async {
        op.ctx.indexes.children.synced() && op.ctx.caches.queues.get(&key).is_some()
    })
    .await;
}

#[tokio::test]
async fn queue_limit_holds_when_a_higher_priority_execution_arrives_during_an_admission() {
    let t = TestNs::new("admit-race", Duration::from_secs(2)).await;
    create_queue(&t, "narrow", 1).await;
    let op = t.start_operator();
    operator_sees_queue(&op, &t, "narrow").await;
    // Back to back, as `kubectl apply -f dir/` would: `low` takes the free slot; `high` arrives while low's
    // admission (Job create + status write) is still on its way to the cache.
    t.create("metadata: {name: low}\nspec: {image: busybox, queue: narrow}\n")
        .await;
    t.create("metadata: {name: high}\nspec: {image: busybox, queue: narrow, priority: 10}\n")
        .await;
    let names = vec!["low".to_string(), "high".to_string()];
    let timeline = observe_until_finished(t.executions(), names, LIMIT).await;
    for name in ["low", "high"] {
        assert_eq!(phase_of(&timeline.last[name]), "Succeeded", "{name}");
    }
    let span = |n: &str| {
        let s = timeline.last[n].status.clone().unwrap();
        (s.start_time.unwrap().0, s.completion_time.unwrap().0)
    };
    let (low, high) = (span("low"), span("high"));
    assert!(
        high.0 >= low.1 || low.0 >= high.1,
        "maxRunning 1: the runs must not overlap, low ran {low:?}, high ran {high:?}"
    );
    assert_eq!(timeline.max_running, 1, "never two Running at once");
    op.stop().await;
}

/// Review finding 2: a spec the schema accepts but the Job API refuses (here a pod annotation key that is not a
/// qualified name: 422) used to retry the create forever with no status and block its queue. It now fails at once
/// with `JobRejected` and the API's message, and the queue's next member runs.
#[tokio::test]
async fn a_job_the_api_refuses_fails_its_run_at_once_and_frees_the_queue() {
    let t = TestNs::new("rejected", Duration::from_millis(300)).await;
    let op = t.start_operator();
    create_queue(&t, "q", 1).await;
    t.create(
        "metadata: {name: bad}\nspec: {image: busybox, queue: q, retry: {limit: 3}, podAnnotations: {\"not a key\": x}}\n",
    )
    .await;
    let bad = t.wait_phase("bad", "Failed", Duration::from_secs(20)).await;
    assert_eq!(reason_of(&bad), "JobRejected");
    let status = bad.status.clone().unwrap();
    let message = status.message.clone().unwrap_or_default();
    assert!(
        message.contains("rejected by the API server") && message.contains("not a key"),
        "{message}"
    );
    assert_eq!(status.steps[0].phase, StepPhase::Failed);
    assert_eq!(
        status.steps[0].attempt, 1,
        "no retry of a refusal no retry cures"
    );
    assert!(job_names(&t, "bad").await.is_empty());
    wait_event(&t, "bad", "Warning", "JobRejected").await;

    t.create("metadata: {name: good}\nspec: {image: busybox, queue: q}\n")
        .await;
    t.wait_phase("good", "Succeeded", LIMIT).await;
    op.stop().await;
}

/// A refusal that may pass later (a ResourceQuota allowing no Job: 403) is a failed attempt under the retry
/// policy, and the run ends `JobRejected` once no retry is left, with the quota's message.
#[tokio::test]
async fn a_job_refused_by_a_quota_is_retried_under_the_policy_then_fails() {
    use k8s_openapi::api::core::v1::ResourceQuota;
    let t = TestNs::new("quota", Duration::from_millis(300)).await;
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "no-jobs"},
        "spec": {"hard": {"count/jobs.batch": "0"}}
    }))
    .expect("quota");
    Api::<ResourceQuota>::namespaced(t.client.clone(), &t.ns)
        .create(&PostParams::default(), &quota)
        .await
        .expect("create quota");
    // The quota admission plugin refuses creates only once the quota controller has computed its usage.
    let computed = when_object("usage of count/jobs.batch computed", |q: &ResourceQuota| {
        q.status
            .as_ref()
            .and_then(|s| s.used.as_ref())
            .is_some_and(|used| used.contains_key("count/jobs.batch"))
    });
    wait_object(
        Api::<ResourceQuota>::namespaced(t.client.clone(), &t.ns),
        "no-jobs",
        LIMIT,
        computed,
    )
    .await;
    let op = t.start_operator();
    t.create(
        "metadata: {name: capped}\nspec: {image: busybox, retry: {limit: 1, backoffSeconds: 1}}\n",
    )
    .await;
    let capped = t.wait_phase("capped", "Failed", LIMIT).await;
    assert_eq!(reason_of(&capped), "JobRejected");
    let status = capped.status.clone().unwrap();
    assert!(
        status
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("exceeded quota"),
        "{:?}",
        status.message
    );
    assert_eq!(status.steps[0].attempt, 2, "retried once under the policy");
    assert_eq!(
        history_reasons(&capped),
        ["Started", "RetryScheduled", "JobRejected"]
    );
    op.stop().await;
}

/// Review finding 12: `a` + step `b-c` and `a-b` + step `c` both name their first Job `a-b-c-1`. The second used
/// to retry the create forever with no status; its attempt now fails visibly, and a retry (another name) runs.
#[tokio::test]
async fn a_job_name_taken_by_another_execution_fails_the_attempt_and_a_retry_runs() {
    let t = TestNs::new("clash", Duration::from_millis(300)).await;
    let op = t.start_operator();
    t.create("metadata: {name: a}\nspec: {image: busybox, steps: [{name: b-c, podAnnotations: {sim.crew.dev/hang: \"true\"}}]}\n")
        .await;
    t.wait_phase("a", "Running", LIMIT).await;
    t.create("metadata: {name: a-b}\nspec: {image: busybox, steps: [{name: c}]}\n")
        .await;
    let lone = t.wait_phase("a-b", "Failed", Duration::from_secs(20)).await;
    assert_eq!(reason_of(&lone), "JobRejected");
    let message = lone.status.clone().unwrap().message.unwrap_or_default();
    assert!(
        message.contains("taken by a Job of CrewExecution a"),
        "{message}"
    );

    // With a retry, the next attempt's name is free.
    t.executions()
        .delete("a-b", &Default::default())
        .await
        .expect("delete a-b");
    t.wait_deleted("a-b", LIMIT).await;
    t.create("metadata: {name: a-b}\nspec: {image: busybox, retry: {limit: 1, backoffSeconds: 1}, steps: [{name: c}]}\n")
        .await;
    let retried = t.wait_phase("a-b", "Succeeded", LIMIT).await;
    assert_eq!(retried.status.unwrap().steps[0].attempt, 2);
    op.stop().await;
}

/// Review finding 8: an execution whose Job was created but whose Running status was never written (the write
/// failed, or the operator stopped in between) held no slot in the queue's eyes, so a higher-priority execution
/// was admitted beside it and `maxRunning: 1` was exceeded once the first caught up. Admission now counts owned
/// running Jobs. The state is made by hand: the Job the operator would have created, and no status.
#[tokio::test]
async fn a_job_created_before_an_unwritten_admission_still_holds_its_queue_slot() {
    use crew_core::build::worker_job::worker_job;
    use crew_core::lifecycle::{Launch, names::job_name, resolve_steps};
    use k8s_openapi::api::batch::v1::Job;
    let t = TestNs::new("unwritten", Duration::from_millis(300)).await;
    create_queue(&t, "q", 1).await;
    let first = t
        .create("metadata: {name: first}\nspec: {image: busybox, queue: q, podAnnotations: {sim.crew.dev/hang: \"true\"}}\n")
        .await;
    let launch = Launch {
        step: resolve_steps(&first.spec).expect("valid").remove(0),
        attempt: 1,
        job_name: job_name("first", "main", 1),
        results: Vec::new(),
    };
    Api::<Job>::namespaced(t.client.clone(), &t.ns)
        .create(
            &PostParams::default(),
            &worker_job(&first, &launch).expect("Job"),
        )
        .await
        .expect("the Job an interrupted reconcile created");
    t.create("metadata: {name: urgent}\nspec: {image: busybox, queue: q, priority: 10}\n")
        .await;

    let op = t.start_operator();
    t.wait_phase("first", "Running", LIMIT).await;
    let urgent = t.wait_phase("urgent", "Queued", LIMIT).await;
    assert_eq!(condition_of(&urgent, "Admitted").0, "False");
    // Part of the scenario, not a wait: time passes, and urgent must stay out.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let urgent = t.executions().get("urgent").await.expect("get");
    assert_eq!(
        phase_of(&urgent),
        "Queued",
        "urgent ran beside first with maxRunning 1"
    );
    patch_spec(&t, "first", json!({"cancel": true})).await;
    t.wait_phase("urgent", "Succeeded", LIMIT).await;
    op.stop().await;
}

#[tokio::test]
async fn finished_jobs_are_deleted_under_job_cleanup() {
    use crew_operator::metrics::WriteKind;
    use k8s_openapi::api::core::v1::Pod;
    let t = TestNs::new("cleanup", Duration::from_millis(500)).await;
    let op = t.start_operator();
    t.create(
        "metadata: {name: tidy}\nspec:\n  image: busybox\n  jobCleanup: OnStepCompletion\n  steps:\n  \
         - {name: a, podAnnotations: {sim.crew.dev/message: first}}\n  \
         - {name: b, podAnnotations: {sim.crew.dev/message: second}}\n",
    )
    .await;
    t.create(
        "metadata: {name: keeps-failures}\nspec:\n  image: busybox\n  jobCleanup: OnStepSuccess\n  \
         retry: {limit: 1, backoffSeconds: 0}\n  podAnnotations: {sim.crew.dev/fail-attempts: \"1\"}\n",
    )
    .await;
    let cx = t.wait_phase("tidy", "Succeeded", LIMIT).await;
    let status = cx.status.expect("status");
    let results: Vec<_> = status
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.phase, s.exit_code, s.result.as_deref()))
        .collect();
    assert_eq!(
        results,
        [
            ("a", StepPhase::Succeeded, Some(0), Some("first")),
            ("b", StepPhase::Succeeded, Some(0), Some("second")),
        ],
        "the outcomes stay in status"
    );
    // tidy's Jobs, then their pods, deleted (once gone, neither comes back).
    t.wait_jobs("tidy", LIMIT, none()).await;
    t.wait_pods("crew.dev/execution=tidy", LIMIT, none::<Pod>())
        .await;

    t.wait_phase("keeps-failures", "Succeeded", LIMIT).await;
    t.wait_jobs(
        "keeps-failures",
        LIMIT,
        names_are(&["keeps-failures-main-1"]),
    )
    .await;
    // The watch may show the Job gone before the operator has counted its delete (it counts on the answer).
    wait_until(
        LIMIT,
        "the operator to count its third Job cleanup",
        || async { op.ctx.metrics.writes(WriteKind::JobCleanup) >= 3 },
    )
    .await;
    // One delete per released Job (the NotFound of a repeat is not a write), and the run stays as it was.
    assert_eq!(op.ctx.metrics.writes(WriteKind::JobCleanup), 3);
    // Part of the scenario, not a wait: time passes, and nothing more is deleted or changed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        phase_of(&t.executions().get("tidy").await.expect("get")),
        "Succeeded"
    );
    assert_eq!(
        job_names(&t, "keeps-failures").await,
        ["keeps-failures-main-1"]
    );
    op.stop().await;
}

/// Review finding 3: `kubectl delete cx nightly --cascade=orphan` leaves `nightly-main-1` running, labelled, with no
/// owner. A new `nightly` waited for ever for that name (`JobNameTaken`), at the head of its queue, and everything
/// behind it waited too. The name now counts as refused: attempt 1 fails, attempt 2 (another name) runs, and the
/// queue drains.
#[tokio::test]
async fn an_orphaned_job_of_the_same_name_does_not_block_the_queue() {
    use kube::api::{DeleteParams, PropagationPolicy};
    let t = TestNs::new("orphan-name", Duration::from_millis(300)).await;
    create_queue(&t, "q", 1).await;
    let op = t.start_operator();
    t.create("metadata: {name: nightly}\nspec: {image: busybox, queue: q, podAnnotations: {sim.crew.dev/hang: \"true\"}}\n")
        .await;
    t.wait_phase("nightly", "Running", LIMIT).await;
    let orphan = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..Default::default()
    };
    t.executions()
        .delete("nightly", &orphan)
        .await
        .expect("delete nightly, orphaning its Job");
    wait_until(LIMIT, "nightly gone, its Job orphaned", || async {
        let gone = t
            .executions()
            .get_opt("nightly")
            .await
            .ok()
            .flatten()
            .is_none();
        let orphaned = jobs_of(&t, "nightly").await.iter().any(|j| {
            j.metadata.name.as_deref() == Some("nightly-main-1")
                && j.metadata
                    .owner_references
                    .as_ref()
                    .is_none_or(Vec::is_empty)
                && j.metadata.deletion_timestamp.is_none()
        });
        gone && orphaned
    })
    .await;

    t.create("metadata: {name: nightly}\nspec: {image: busybox, queue: q, retry: {limit: 1, backoffSeconds: 0}}\n")
        .await;
    t.create("metadata: {name: behind}\nspec: {image: busybox, queue: q}\n")
        .await;
    let nightly = t.wait_phase("nightly", "Succeeded", LIMIT).await;
    let step = &nightly.status.as_ref().expect("status").steps[0];
    assert_eq!(
        (step.attempt, step.job_name.as_deref()),
        (2, Some("nightly-main-2")),
        "attempt 1's name is the orphan's; attempt 2 ran under its own"
    );
    let reasons = history_reasons(&nightly);
    assert!(
        reasons.iter().any(|r| r == "RetryScheduled"),
        "attempt 1 failed visibly: {reasons:?}"
    );
    t.wait_phase("behind", "Succeeded", LIMIT).await;
    assert!(
        jobs_of(&t, "nightly")
            .await
            .iter()
            .any(|j| j.metadata.name.as_deref() == Some("nightly-main-1")),
        "the orphan is not the operator's to delete"
    );
    op.stop().await;
}

/// Every Job of the test's namespace, as (name, execution label, step label, attempt label), sorted by name.
async fn jobs_in_namespace(t: &TestNs) -> Vec<(String, String, String, String)> {
    let api: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(t.client.clone(), &t.ns);
    let mut jobs: Vec<_> = api
        .list(&ListParams::default())
        .await
        .expect("list jobs")
        .items
        .iter()
        .map(|job| {
            let label = |key: &str| job.labels().get(key).cloned().unwrap_or_default();
            (
                job.name_any(),
                label("crew.dev/execution"),
                label("crew.dev/step"),
                label("crew.dev/attempt"),
            )
        })
        .collect();
    jobs.sort();
    jobs
}

/// The longest name Kubernetes takes (253 characters, as `generateName` and GitOps tools make them) with the
/// longest step name (63): it is accepted, its Job names and label values are cut and hashed, and a stopped, then
/// a killed, operator derive the same names again, so each attempt has exactly one Job.
#[tokio::test]
async fn a_253_character_name_with_a_63_character_step_retries_across_restarts_with_one_job_per_attempt()
 {
    use crew_core::lifecycle::names::{job_name, label_value};
    let t = TestNs::new("long-names", Duration::from_secs(3)).await;
    let name = format!("nightly-report-{}", "n".repeat(238));
    let step = format!("write-{}", "s".repeat(57));
    assert_eq!((name.len(), step.len()), (253, 63));
    let op = t.start_operator();
    t.create(&format!(
        r#"
metadata: {{name: {name}}}
spec:
  image: busybox
  inputs: {{topic: long names}}
  retry: {{limit: 2, backoffSeconds: 3}}
  podAnnotations: {{sim.crew.dev/fail-attempts: "1"}}
  steps: [{{name: {step}}}]
"#
    ))
    .await;
    let first = job_name(&name, &step, 1);
    let second = job_name(&name, &step, 2);
    let label = label_value(&name);
    assert!(first.len() <= 63 && second.len() <= 63 && label.len() <= 63);

    // Attempt 1 fails; the operator stops gracefully during the backoff.
    let cx = t
        .wait_for(
            &name,
            LIMIT,
            support::conditions::has_reason("RetryBackoff"),
        )
        .await;
    assert_eq!(
        cx.status.as_ref().and_then(|s| s.steps[0].job_name.clone()),
        Some(first.clone())
    );
    op.stop().await;
    let attempt_one = (first.clone(), label.clone(), step.clone(), "1".to_string());
    assert_eq!(
        jobs_in_namespace(&t).await,
        std::slice::from_ref(&attempt_one)
    );

    // Restarted, it launches attempt 2 under the name it derives again; killed while that runs.
    let op = t.start_operator();
    let attempt_two = (second.clone(), label.clone(), step.clone(), "2".to_string());
    let mut both = vec![attempt_one, attempt_two];
    both.sort();
    wait_until(LIMIT, "attempt 2's Job", || async {
        jobs_in_namespace(&t).await == both
    })
    .await;
    op.kill().await;

    // Started again, it finds attempt 2's Job by its name and label, creates none, and the run succeeds.
    let op = t.start_operator();
    let cx = t.wait_phase(&name, "Succeeded", LIMIT).await;
    assert_eq!(
        jobs_in_namespace(&t).await,
        both,
        "exactly one Job per attempt"
    );
    let status = cx.status.clone().unwrap();
    assert_eq!(status.steps[0].attempt, 2);
    assert_eq!(status.steps[0].job_name.as_deref(), Some(second.as_str()));
    // One unbroken history. The kill may fall between attempt 2's Job create and the status write recording it:
    // the restarted operator then adopts the Job it finds under its name, and no `StepStarted` entry is written.
    assert!(
        support::history_problems(&cx).is_empty(),
        "{:?}",
        support::history_problems(&cx)
    );
    let reasons = history_reasons(&cx);
    assert!(
        reasons == ["Started", "RetryScheduled", "StepStarted", "Succeeded"]
            || reasons == ["Started", "RetryScheduled", "Succeeded"],
        "{reasons:?}"
    );
    // Its inputs ConfigMap and its Events have names of their own that fit, too.
    let config_maps: Api<ConfigMap> = Api::namespaced(t.client.clone(), &t.ns);
    let data = config_maps
        .get(&config_map_name(&name, &cx.uid().unwrap()))
        .await
        .expect("inputs ConfigMap")
        .data
        .unwrap();
    assert!(data["inputs.json"].contains("long names"), "{data:?}");
    wait_event(&t, &name, "Normal", "Succeeded").await;
    wait_event(&t, &name, "Warning", "RetryScheduled").await;
    op.stop().await;
}

/// Review finding 6: every status write of a CrewQueue (the operator's own, up to once a second per queue)
/// reconciled every waiting member, each counting its place under the queue book's lock: O(N) reconciles and O(N²)
/// steps per write. Now only a queue's creation, deletion or spec change wakes its members.
#[tokio::test]
async fn a_queue_status_write_does_not_reconcile_its_waiting_members() {
    const WAITING: usize = 300;
    let t = TestNs::new("queue-wake", Duration::from_millis(500)).await;
    create_queue(&t, "line", 1).await;
    let op = t.start_operator();
    t.create("metadata: {name: holder}\nspec: {image: busybox, queue: line, podAnnotations: {sim.crew.dev/hang: \"true\"}}\n")
        .await;
    t.wait_phase("holder", "Running", LIMIT).await;
    use futures::StreamExt;
    futures::stream::iter(0..WAITING)
        .for_each_concurrent(16, |i| {
            let t = &t;
            async move {
                t.create(&format!(
                    "metadata: {{name: w{i}}}\nspec: {{image: busybox, queue: line}}\n"
                ))
                .await;
            }
        })
        .await;
    let queues: Api<CrewQueue> = Api::namespaced(t.client.clone(), &t.ns);
    let all_queued = |queued: u32| {
        when_object(format!("{queued} queued"), move |q: &CrewQueue| {
            q.status.as_ref().is_some_and(|s| s.queued == queued)
        })
    };
    wait_object(queues.clone(), "line", LIMIT, all_queued(WAITING as u32)).await;
    // Let the last reconciles of the arrivals settle.
    wait_until(LIMIT, "the reconciles to settle", || {
        let op = &op;
        async move {
            let before = op.ctx.metrics.reconcile_count();
            tokio::time::sleep(Duration::from_secs(1)).await;
            op.ctx.metrics.reconcile_count() == before
        }
    })
    .await;
    let before = op.ctx.metrics.reconcile_count();
    // One more arrival: its own reconcile, and a queue status write counting it.
    t.create("metadata: {name: last}\nspec: {image: busybox, queue: line}\n")
        .await;
    wait_object(queues, "line", LIMIT, all_queued(WAITING as u32 + 1)).await;
    // Part of the scenario, not a wait: give a wake of every member the time to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let reconciles = op.ctx.metrics.reconcile_count() - before;
    eprintln!("{reconciles} reconciles after a queue status write with {WAITING} members waiting");
    assert!(
        reconciles < 10,
        "{reconciles} reconciles for one arrival and one queue status write"
    );
    op.stop().await;
}
