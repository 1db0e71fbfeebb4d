//! Stories of running workers that stop reporting: `ProgressStalled` and each `onStall` action.

use crate::lifecycle::decide::tests::prelude::*;

stories!(
    a_silent_worker_is_reported_stalled_then_recovers,
    on_stall_fail_and_retry,
    a_new_leader_does_not_count_a_stall_from_before_it,
);

mod story {
    use super::*;
    use Phase::*;

    /// A silent worker: after `stallTimeoutSeconds` without a report the condition `ProgressStalled` and one
    /// Warning Event; a report clears it.
    pub fn a_silent_worker_is_reported_stalled_then_recovers() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            stall_timeout_seconds: Some(30),
            ..spec(&[])
        });
        w.step(0);
        let plan = w.step(1);
        assert_eq!(
            plan.requeue_after_seconds,
            Some(29),
            "back when the stall timeout ends"
        );
        assert!(w.step(29).status.is_none());
        w.step(30);
        assert_eq!(w.cond_is("ProgressStalled"), ("True", "NoProgressReport"));
        assert_eq!(w.phase(), Running, "Warn keeps it running");
        assert_eq!(w.warnings(), ["ProgressStalled"]);
        assert!(
            w.step(45).status.is_none(),
            "still stalled: no new write, no new Event"
        );
        assert_eq!(w.warnings(), ["ProgressStalled"]);
        let mut book = AttemptReports::new("main", 1, at(50));
        book.apply(serde_json::from_str("{}").unwrap(), at(50))
            .unwrap();
        w.report = Some(book);
        w.report_due = true;
        w.step(50);
        assert!(
            find(&w.status().conditions, ConditionType::ProgressStalled).is_none(),
            "a heartbeat clears it"
        );
        w.step(79);
        assert!(find(&w.status().conditions, ConditionType::ProgressStalled).is_none());
        w.step(80);
        assert_eq!(
            w.cond_is("ProgressStalled").0,
            "True",
            "30 s after the last report"
        );
        vec![w]
    }

    /// `onStall: Fail` fails the run and deletes the Job; `Retry` fails the attempt under the retry policy.
    pub fn on_stall_fail_and_retry() -> Vec<World> {
        let mut fail = World::new(CrewExecutionSpec {
            stall_timeout_seconds: Some(20),
            on_stall: Some(OnStall::Fail),
            retry: retry(3, 5),
            ..spec(&[])
        });
        fail.step(0);
        let plan = fail.step(20);
        assert_eq!(plan.delete_jobs, [job("main", 1)]);
        assert_eq!((fail.phase(), fail.reason()), (Failed, "ProgressStalled"));
        assert_eq!(fail.step_status("main").phase, StepPhase::Failed);
        let failure = fail.entry_event("ProgressStalled");
        assert!(
            failure.warning,
            "the run's failure is a Warning: {failure:?}"
        );
        assert_eq!(
            fail.warnings(),
            ["ProgressStalled", "ProgressStalled"],
            "the stall, then the run's failure"
        );

        let mut retried = World::new(CrewExecutionSpec {
            steps: vec![StepSpec {
                name: "main".into(),
                stall_timeout_seconds: Some(20),
                on_stall: Some(OnStall::Retry),
                ..Default::default()
            }],
            retry: retry(1, 5),
            ..spec(&[])
        });
        retried.step(0);
        let plan = retried.step(20);
        assert_eq!(plan.delete_jobs, [job("main", 1)]);
        assert_eq!(retried.step_status("main").phase, StepPhase::Retrying);
        assert!(
            retried
                .step_status("main")
                .message
                .as_deref()
                .unwrap_or_default()
                .starts_with("ProgressStalled: "),
        );
        assert!(
            retried.step(25).launch.is_some(),
            "attempt 2 after the backoff"
        );
        retried.step(45);
        assert_eq!(
            (retried.phase(), retried.reason()),
            (Failed, "RetriesExhausted")
        );
        vec![fail, retried]
    }

    /// A replica that just began acting (start-up, failover) gives the worker a full stall timeout: reports sent
    /// to the replica before it were not seen here.
    pub fn a_new_leader_does_not_count_a_stall_from_before_it() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            stall_timeout_seconds: Some(30),
            ..spec(&[])
        });
        w.step(0);
        w.acting_since = Some(25);
        assert!(w.step(40).status.is_none());
        w.step(55);
        assert_eq!(w.cond_is("ProgressStalled").0, "True");
        vec![w]
    }
}
