//! Stories of workers that do not start: blocked pods, pods that cannot be created, the start timeout.

use crate::lifecycle::decide::tests::prelude::*;

stories!(
    worker_that_cannot_start_times_out_and_is_retried,
    start_timeout_without_retries_fails_the_run,
    a_pod_that_cannot_be_created_is_explained_then_times_out,
    worker_that_starts_late_runs_normally,
);

mod story {
    use super::*;

    use Phase::*;

    /// A worker that cannot start shows why (the step's message, the run's reason, `StartBlocked`) at the cost of
    /// one write, and fails its attempt with `StartTimeout` at the deadline; the retry policy applies.
    pub fn worker_that_cannot_start_times_out_and_is_retried() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            retry: retry(1, 10),
            start_timeout_seconds: Some(60),
            ..spec(&[])
        });
        w.start_blocked = Some(StartBlock {
            reason: "ImagePullBackOff".into(),
            message: "Back-off pulling image \"worker:1\"".into(),
        });
        w.step(0);
        w.report_blocks();
        let plan = w.step(1);
        assert_eq!(plan.requeue_after_seconds, Some(59));
        assert_eq!(w.reason(), "ImagePullBackOff");
        let blocked = "ImagePullBackOff: Back-off pulling image \"worker:1\"";
        assert_eq!(w.step_status("main").message.as_deref(), Some(blocked));
        let condition = w.cond("StartBlocked");
        assert_eq!(
            (condition.status.as_str(), condition.reason.as_str()),
            ("True", "ImagePullBackOff")
        );
        // The kubelet's message changes while it retries: no write for that.
        w.jobs[0].start_blocked = Some(StartBlock {
            reason: "ImagePullBackOff".into(),
            message: "rpc error: code = NotFound".into(),
        });
        assert!(w.step(20).status.is_none());
        let plan = w.step(60);
        assert_eq!(plan.delete_jobs, [job("main", 1)]);
        let main = w.step_status("main");
        assert_eq!(main.phase, StepPhase::Retrying);
        assert_eq!(
            main.message.as_deref(),
            Some(
                "StartTimeout: the worker did not start within 60s (ImagePullBackOff: Back-off pulling image \"worker:1\")"
            )
        );
        assert!(find(&w.status().conditions, ConditionType::StartBlocked).is_none());
        assert_eq!(w.last_entry().reason, "RetryScheduled");
        assert_eq!(w.phase(), Running);
        assert!(w.step(70).launch.is_some(), "attempt 2 after the backoff");
        w.report_blocks();
        w.step(71);
        w.step(130);
        assert_eq!((w.phase(), w.reason()), (Failed, "RetriesExhausted"));
        assert!(w.message().contains("StartTimeout"), "{}", w.message());
        assert_eq!(w.deleted_jobs, [job("main", 1), job("main", 2)]);
        vec![w]
    }

    /// Without retries a start timeout fails the run with reason `StartTimeout`, also when no pod ever appeared
    /// (the Job controller could not create it: a missing ServiceAccount, a quota, a policy).
    pub fn start_timeout_without_retries_fails_the_run() -> Vec<World> {
        let mut w = World::new(spec(&[]));
        w.start_blocked = None;
        w.step(0);
        w.jobs[0].pod_started = false;
        w.jobs[0].pod_seen = false;
        let plan = w.step(1);
        assert_eq!(
            plan.requeue_after_seconds,
            Some(9),
            "the Job controller is asked after 10 s without a pod"
        );
        assert_eq!(w.reason(), "StepRunning");
        let plan = w.step(10);
        assert_eq!(
            plan.read,
            Some(Read::PodRefusal(job("main", 1))),
            "no Event says why"
        );
        assert_eq!(
            plan.requeue_after_seconds,
            Some(590),
            "the operator's default"
        );
        w.step(600);
        assert_eq!((w.phase(), w.reason()), (Failed, "StartTimeout"));
        assert!(
            w.message()
                .contains("its pod was not created or not scheduled yet"),
            "{}",
            w.message()
        );
        let failure = w.entry_event("StartTimeout");
        assert!(
            failure.warning,
            "the run's failure is a Warning: {failure:?}"
        );
        assert_eq!(w.warnings(), ["StartTimeout"]);
        vec![w]
    }

    /// A Job whose pod the Job controller cannot create (quota, policy, a missing ServiceAccount) has no pod: after
    /// a while its Events are read once and say why; the attempt still ends with `StartTimeout`.
    pub fn a_pod_that_cannot_be_created_is_explained_then_times_out() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            start_timeout_seconds: Some(60),
            ..spec(&[])
        });
        w.step(0);
        w.jobs[0].pod_started = false;
        w.jobs[0].pod_seen = false;
        w.pod_refusal = Some(StartBlock {
            reason: "FailedCreate".into(),
            message: "pods \"report-main-1-x\" is forbidden: exceeded quota: no-pods".into(),
        });
        assert!(w.step(5).read.is_none(), "too early to ask");
        w.step(10);
        assert_eq!(w.reason(), "FailedCreate");
        assert_eq!(w.cond_is("StartBlocked"), ("True", "FailedCreate"));
        let recorded = w.step_status("main").message.clone().unwrap();
        assert!(recorded.starts_with("FailedCreate: pods"), "{recorded}");
        w.pod_refusal = None;
        let plan = w.step(20);
        assert!(
            plan.read.is_none() && plan.status.is_none(),
            "asked once per attempt; the report stays"
        );
        w.step(60);
        assert_eq!((w.phase(), w.reason()), (Failed, "StartTimeout"));
        assert!(w.message().contains("exceeded quota"), "{}", w.message());
        vec![w]
    }

    /// A worker blocked for a while that then starts runs on as usual: the block report goes.
    pub fn worker_that_starts_late_runs_normally() -> Vec<World> {
        let mut w = World::new(spec(&[]));
        w.start_blocked = Some(StartBlock {
            reason: "Unschedulable".into(),
            message: "0/3 nodes are available: 3 Insufficient cpu.".into(),
        });
        w.step(0);
        w.report_blocks();
        w.step(1);
        assert_eq!(w.reason(), "Unschedulable");
        w.jobs[0].pod_started = true;
        w.jobs[0].start_blocked = None;
        w.step(30);
        assert_eq!(w.reason(), "StepRunning");
        assert!(w.step_status("main").message.is_none());
        assert!(find(&w.status().conditions, ConditionType::StartBlocked).is_none());
        w.succeed(&job("main", 1), 40, "ok");
        w.step(40);
        assert_eq!(w.phase(), Succeeded);
        vec![w]
    }
}
