//! Faults on the real control plane: the operator binary killed with SIGKILL over and over while executions run.
//! Whatever instant a kill lands on, every run must end, once, with one Job per (step, attempt) and its history
//! one unbroken chain.

mod support;

use crew_api::CrewExecution;
use kube::ResourceExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::wait::{try_wait_list, when_list};
use support::{TestNs, jobs_of};

/// Review (issue 12, fault suite): kill -9 the operator every 2 s for 40 s with 150 three-step executions in
/// flight, a fifth of them failing an attempt and retrying. All succeed, no (execution, step, attempt) ever has a
/// second Job, and every history is one unbroken chain with one terminal entry.
#[tokio::test]
async fn sigkill_every_two_seconds_loses_and_duplicates_nothing() {
    const RUNS: usize = 150;
    let t = TestNs::new("chaos", Duration::from_millis(800)).await;
    let log = std::env::temp_dir().join(format!("{}-operator.log", t.ns));
    for i in 0..RUNS {
        let retrying = if i % 5 == 0 {
            ", retry: {limit: 2, backoffSeconds: 1}, steps: [{name: a}, {name: b, podAnnotations: {sim.crew.dev/fail-attempts: \"1\"}}, {name: c}]"
        } else {
            ", steps: [{name: a}, {name: b}, {name: c}]"
        };
        t.create(&format!(
            "metadata: {{name: run-{i:03}}}\nspec: {{image: busybox{retrying}}}\n"
        ))
        .await;
    }

    let chaos_until = Instant::now() + Duration::from_secs(40);
    let mut kills = 0;
    while Instant::now() < chaos_until {
        let mut operator = support::operator_process(&t, &log);
        // Part of the scenario, not a wait: the operator runs 2 s between kills.
        tokio::time::sleep(Duration::from_secs(2)).await;
        operator.kill().await.expect("SIGKILL the operator");
        kills += 1;
    }
    let mut operator = support::operator_process(&t, &log);

    let mut open = Vec::new();
    let all_succeeded = when_list("every run Succeeded", |all: &[Arc<CrewExecution>]| {
        open = all
            .iter()
            .filter(|cx| support::phase_of(cx) != "Succeeded")
            .map(|cx| format!("{} {}", cx.name_any(), support::phase_of(cx)))
            .collect();
        open.is_empty()
    });
    let watched = try_wait_list(
        t.executions(),
        Default::default(),
        Duration::from_secs(240),
        all_succeeded,
    )
    .await;
    let executions = watched.unwrap_or_else(|timed_out| {
        panic!(
            "{} runs not Succeeded after {kills} kills: {open:?}\noperator log: {}\n{}",
            open.len(),
            log.display(),
            timed_out.what
        )
    });
    assert_eq!(executions.len(), RUNS);

    let mut problems = Vec::new();
    for cx in &executions {
        problems.extend(support::history_problems(cx));
        let per_attempt = support::jobs_per_attempt(&jobs_of(&t, &cx.name_any()).await);
        // Exactly the attempts the run needed: b fails once where it retries, nothing else is tried twice (an
        // attempt wrongly declared lost would show as an extra one).
        let retries = cx.spec.retry.is_some();
        let mut expected = vec![("a", "1"), ("b", "1"), ("c", "1")];
        if retries {
            expected.push(("b", "2"));
        }
        let expected: BTreeMap<(String, String), usize> = expected
            .into_iter()
            .map(|(s, a)| ((s.to_string(), a.to_string()), 1))
            .collect();
        if per_attempt != expected {
            problems.push(format!(
                "{}: Jobs per (step, attempt) {per_attempt:?}",
                cx.name_any()
            ));
        }
    }
    assert!(kills >= 15, "only {kills} kills");
    assert!(problems.is_empty(), "after {kills} kills: {problems:#?}");
    operator.kill().await.expect("stop the operator");
}
