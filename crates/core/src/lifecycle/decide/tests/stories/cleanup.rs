//! Stories of what is deleted after the fact: finished Jobs under `spec.jobCleanup`, the execution after its TTL.

use crate::lifecycle::decide::tests::prelude::*;

stories!(
    finished_jobs_released_on_step_completion,
    failed_attempts_kept_on_step_success,
    release_survives_a_restart,
    ttl_deletes_after_finish,
    ttl_zero_after_failure,
    a_sink_keeps_the_run_until_its_end_is_delivered,
);

mod story {
    use super::*;
    use Phase::*;

    /// While a sink has something of the run to deliver, the run carries the operator's finalizer: added with its
    /// first writes, kept through its end, removed once its end is delivered (two writes in its whole life).
    pub fn a_sink_keeps_the_run_until_its_end_is_delivered() -> Vec<World> {
        let mut w = World::new(spec(&[]));
        w.retain = true;
        let plan = w.step(0);
        assert_eq!(plan.finalizer, Some(crate::lifecycle::FinalizerChange::Add));
        assert!(
            plan.launch.is_some(),
            "the run starts in the same reconcile"
        );
        w.succeed(&job("main", 1), 10, "done");
        let plan = w.step(10);
        assert_eq!(w.phase(), Succeeded);
        assert_eq!(plan.finalizer, None, "its end is not delivered yet");
        assert!(w.has_finalizer);
        // The sink acknowledged the end.
        w.retain = false;
        let plan = w.step(11);
        assert_eq!(
            plan.finalizer,
            Some(crate::lifecycle::FinalizerChange::Remove)
        );
        assert!(!w.has_finalizer);
        assert_eq!(w.finalizer_writes, 2);
        assert_eq!(w.quiet(20), None);
        vec![w]
    }

    /// `OnStepCompletion`: each step's Job goes in the reconcile that writes its outcome (after the write), and
    /// nothing of the outcome goes with it; no extra status write.
    pub fn finished_jobs_released_on_step_completion() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            job_cleanup: Some(JobCleanup::OnStepCompletion),
            ..spec(&["plan", "write"])
        });
        w.step(0);
        w.succeed(&job("plan", 1), 10, "outline");
        let plan = w.step(10);
        assert!(plan.status.is_some(), "the outcome is written");
        assert_eq!(plan.release_jobs, [job("plan", 1)]);
        assert_eq!(plan.launch.map(|l| l.job_name), Some(job("write", 1)));
        assert!(w.jobs.iter().all(|j| j.name != job("plan", 1)), "deleted");
        assert_eq!(w.quiet(11), None, "a gone Job changes nothing");
        let plan_step = w.step_status("plan");
        assert_eq!(
            (
                plan_step.phase,
                plan_step.exit_code,
                plan_step.result.as_deref()
            ),
            (StepPhase::Succeeded, Some(0), Some("outline"))
        );
        w.succeed(&job("write", 1), 20, "text");
        let plan = w.step(20);
        assert_eq!(plan.release_jobs, [job("write", 1)]);
        assert_eq!(w.phase(), Succeeded);
        assert!(w.jobs.is_empty());
        assert_eq!(w.step_status("write").result.as_deref(), Some("text"));
        assert_eq!((w.status_writes, w.job_creates), (3, 2), "as with Keep");
        assert_eq!(w.released_jobs, [job("plan", 1), job("write", 1)]);
        vec![w]
    }

    /// `OnStepSuccess` keeps a failed attempt's Job (for its logs) and lets the successful retry's go.
    pub fn failed_attempts_kept_on_step_success() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            job_cleanup: Some(JobCleanup::OnStepSuccess),
            retry: retry(1, 10),
            ..spec(&[])
        });
        w.step(0);
        w.fail(&job("main", 1), 5, 1, "flaky");
        assert!(w.step(5).release_jobs.is_empty(), "a failure is kept");
        w.step(15);
        w.succeed(&job("main", 2), 20, "ok");
        assert_eq!(w.step(20).release_jobs, [job("main", 2)]);
        assert_eq!(w.phase(), Succeeded);
        let kept: Vec<_> = w.jobs.iter().map(|j| j.name.clone()).collect();
        assert_eq!(kept, [job("main", 1)]);
        vec![w]
    }

    /// The shell stops after writing an outcome and before deleting its Job: the next reconcile deletes it, with
    /// no status write. A lost status write releases nothing.
    pub fn release_survives_a_restart() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            job_cleanup: Some(JobCleanup::OnStepCompletion),
            ..spec(&["a", "b"])
        });
        w.step(0);
        w.succeed(&job("a", 1), 10, "ok");
        w.lose_next_write = true;
        w.step(10);
        assert!(
            w.released_jobs.is_empty(),
            "nothing stored, nothing released"
        );
        w.skip_next_release = true;
        let plan = w.step(11);
        assert_eq!(plan.release_jobs, [job("a", 1)]);
        assert!(w.released_jobs.is_empty(), "the shell stopped");
        let writes = w.status_writes;
        let plan = w.step(12);
        assert_eq!(plan.release_jobs, [job("a", 1)]);
        assert!(plan.status.is_none() && plan.launch.is_none());
        assert_eq!(w.status_writes, writes);
        assert_eq!(w.released_jobs, [job("a", 1)]);
        assert_eq!(w.step_status("a").phase, StepPhase::Succeeded);
        vec![w]
    }

    pub fn ttl_deletes_after_finish() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            ttl_seconds_after_finished: Some(100),
            ..spec(&[])
        });
        w.step(0);
        w.succeed(&job("main", 1), 30, "");
        let plan = w.step(30);
        assert!(!plan.delete_execution);
        assert_eq!(w.phase(), Succeeded);
        assert_eq!(w.quiet(31), Some(99));
        assert_eq!(w.quiet(129), Some(1));
        let plan = w.step(130);
        assert!(plan.delete_execution);
        assert!(plan.status.is_none() && plan.events.is_empty());
        assert!(w.execution_deleted);
        vec![w]
    }

    pub fn ttl_zero_after_failure() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            ttl_seconds_after_finished: Some(0),
            ..spec(&[])
        });
        w.step(0);
        w.fail(&job("main", 1), 5, 1, "");
        w.step(5);
        assert_eq!(w.phase(), Failed);
        assert!(w.step(6).delete_execution);
        vec![w]
    }
}
