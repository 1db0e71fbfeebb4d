//! Faults on the real control plane: the kube-apiserver killed (SIGKILL) and restarted ~14 s later while two-step
//! executions run. In its own test binary because the outage hits everything on this control plane.
//!
//! During the outage the first steps' pods end (KWOK plays them as soon as it can reach the API server again), so
//! the first thing the operator sees after the outage is Jobs completing. It must start the second steps at once,
//! not after an error backoff grown during the outage or a watch that has not resumed.
//!
//! The first steps' Jobs are marked complete by kube-controller-manager, whose own watches back off during the
//! outage (client-go's reflector: up to 30 s plus jitter), so the time the operator answers for is measured from
//! the later of "API server ready" and "that Job complete".

mod support;

use crew_api::{CrewExecution, StepPhase};
use kube::ResourceExt;
use std::sync::Arc;
use std::time::Duration;
use support::conditions::all_in_phase;
use support::wait::{try_wait_list, when_list};
use support::{TestNs, jobs_of, plane};

const RUNS: usize = 60;
/// How long the API server stays down, as in the trial the review describes.
const DOWN: Duration = Duration::from_secs(14);
/// The longest a run may take to finish once the API server is back and its first step's Job is complete. The
/// review asks for 10 s; this includes the test bed's recovery (scheduling, KWOK, the Job controller), measured at
/// about 8 s, so the bound is looser; the operator's own share is bounded by [`REACTION`].
const RECOVERY: Duration = Duration::from_secs(20);
/// The longest the operator may take to act on a Job's completion after the outage (create the next step's Job, or
/// record the run's end); timestamps have whole seconds.
const REACTION: Duration = Duration::from_secs(3);

/// Review (issue 12, fault suite): kube-apiserver killed and restarted with 60 executions in flight. All finish,
/// none has a second Job for a (step, attempt), every history is one chain, and the last run finishes within 10 s
/// of the API server being ready again.
#[tokio::test]
async fn apiserver_restart_mid_run_finishes_every_run_within_seconds() {
    let t = TestNs::new("outage", Duration::from_millis(250)).await;
    let log = std::env::temp_dir().join(format!("{}-operator.log", t.ns));
    let mut operator = support::operator_process(&t, &log);
    for i in 0..RUNS {
        // The first step runs long enough to still be running when the API server dies.
        t.create(&format!(
            "metadata: {{name: run-{i:02}}}\nspec:\n  image: busybox\n  steps:\n  - {{name: a, podAnnotations: {{sim.crew.dev/duration: 6s}}}}\n  - {{name: b}}\n"
        ))
        .await;
    }
    let first_steps_running = when_list(
        format!("all {RUNS} first steps Running"),
        |all: &[Arc<CrewExecution>]| {
            all.len() == RUNS
                && all.iter().all(|cx| {
                    cx.status.as_ref().is_some_and(|s| {
                        s.steps
                            .first()
                            .is_some_and(|step| step.phase == StepPhase::Running)
                    })
                })
        },
    );
    support::wait::wait_list(
        t.executions(),
        Default::default(),
        Duration::from_secs(60),
        first_steps_running,
    )
    .await;

    tokio::task::spawn_blocking(|| plane().restart_apiserver(DOWN))
        .await
        .expect("restart task")
        .expect("kube-apiserver back");
    let back = jiff::Timestamp::now();

    let executions = try_wait_list(
        t.executions(),
        Default::default(),
        Duration::from_secs(180),
        all_in_phase("Succeeded"),
    )
    .await
    .unwrap_or_else(|timed_out| {
        panic!(
            "runs not Succeeded 180 s after the API server came back; operator log: {}\n{timed_out}",
            log.display()
        )
    });
    assert_eq!(executions.len(), RUNS);

    let mut problems = Vec::new();
    let mut reactions = Vec::new();
    let mut recoveries = Vec::new();
    let mut last_first_step_done = back;
    for cx in &executions {
        problems.extend(support::history_problems(cx));
        let jobs = jobs_of(&t, &cx.name_any()).await;
        let per_attempt = support::jobs_per_attempt(&jobs);
        let mut first_done = None;
        let mut second_created = None;
        let mut second_done = None;
        for job in &jobs {
            if job.labels().get("crew.dev/step").map(String::as_str) == Some("a") {
                first_done = job
                    .status
                    .as_ref()
                    .and_then(|s| s.completion_time.clone())
                    .map(|t| t.0);
            } else {
                second_created = job.metadata.creation_timestamp.clone().map(|t| t.0);
                second_done = job
                    .status
                    .as_ref()
                    .and_then(|s| s.completion_time.clone())
                    .map(|t| t.0);
            }
        }
        if per_attempt.values().any(|n| *n > 1) || per_attempt.len() != 2 {
            problems.push(format!(
                "{}: Jobs per (step, attempt) {per_attempt:?}",
                cx.name_any()
            ));
        }
        let finished = cx
            .status
            .as_ref()
            .and_then(|s| s.completion_time.clone())
            .map(|t| t.0);
        match (first_done, second_created, second_done, finished) {
            (Some(first_done), Some(second_created), Some(second_done), Some(finished)) => {
                last_first_step_done = last_first_step_done.max(first_done);
                let reaction = second_created
                    .duration_since(first_done)
                    .max(finished.duration_since(second_done));
                reactions.push((reaction.as_secs_f64(), cx.name_any()));
                recoveries.push((
                    finished.duration_since(first_done.max(back)).as_secs_f64(),
                    cx.name_any(),
                ));
            }
            other => problems.push(format!("{}: timestamps missing: {other:?}", cx.name_any())),
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    reactions.sort_by(|a, b| a.0.total_cmp(&b.0));
    recoveries.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (slowest_reaction, slowest_recovery) = (&reactions[RUNS - 1], &recoveries[RUNS - 1]);
    eprintln!(
        "API server back; last first-step Job complete {:.1} s later (kube-controller-manager); operator's \
         reaction to a Job's completion (next Job created, or run finished): p50 {:.0} s, max {:.0} s; run \
         finished after max(API back, first step complete): p50 {:.0} s, max {:.0} s",
        last_first_step_done.duration_since(back).as_secs_f64(),
        reactions[RUNS / 2].0,
        slowest_reaction.0,
        recoveries[RUNS / 2].0,
        slowest_recovery.0,
    );
    assert!(
        slowest_reaction.0 <= REACTION.as_secs_f64(),
        "{} reacted {:.0} s after a Job completed (limit {REACTION:?}); operator log: {}",
        slowest_reaction.1,
        slowest_reaction.0,
        log.display()
    );
    assert!(
        slowest_recovery.0 <= RECOVERY.as_secs_f64(),
        "{} finished {:.0} s after the API server was back and its first step done (limit {RECOVERY:?}); \
         operator log: {}",
        slowest_recovery.1,
        slowest_recovery.0,
        log.display()
    );
    operator.kill().await.expect("stop the operator");
}
