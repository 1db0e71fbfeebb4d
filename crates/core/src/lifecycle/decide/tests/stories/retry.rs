//! Stories of failed attempts and the retry policy: no retry, retries that succeed, retries exhausted, a Job deadline.

use crate::lifecycle::decide::tests::prelude::*;

stories!(
    failing_step_without_retry,
    retries_then_success,
    retries_exhausted,
    step_deadline_is_a_failed_attempt,
);

mod story {
    use super::*;
    use Phase::*;

    pub fn failing_step_without_retry() -> Vec<World> {
        let mut w = World::new(spec(&[]));
        w.step(0);
        w.fail(&job("main", 1), 20, 3, "boom: quota exceeded");
        let plan = w.step(20);
        assert!(plan.launch.is_none() && plan.delete_jobs.is_empty());
        assert_eq!((w.phase(), w.reason()), (Failed, "StepFailed"));
        assert_eq!(w.message(), "step main failed: exit code 3 (Error)");
        let main = w.step_status("main");
        assert_eq!(
            (main.phase, main.attempt, main.exit_code),
            (StepPhase::Failed, 1, Some(3))
        );
        assert_eq!(main.message.as_deref(), Some("exit code 3 (Error)"));
        assert_eq!(main.result.as_deref(), Some("boom: quota exceeded"));
        assert_eq!(main.completion_time, Some(time(20)));
        let last = w.last_entry();
        assert_eq!(
            (last.from, last.to, last.reason.as_str()),
            (Running, Failed, "StepFailed")
        );
        assert!(last.message.as_deref().unwrap().contains("exit code 3"));
        assert_eq!(w.event_reasons(), ["Started", "StepFailed"]);
        assert_eq!(w.warnings(), ["StepFailed"]);
        assert_eq!(w.status().completion_time, Some(time(20)));
        assert_eq!(w.status().duration_seconds, Some(20));
        assert_eq!(w.status().result.as_deref(), Some("boom: quota exceeded"));
        assert_eq!(w.progress().display, "0/1 (0%)");
        assert_eq!(w.cond_is("Stalled"), ("True", "StepFailed"));
        assert_eq!(w.cond_is("Succeeded"), ("False", "StepFailed"));
        assert_eq!(w.cond_is("Ready").0, "False");
        assert_eq!(w.cond_is("Reconciling").0, "False");
        assert_eq!(w.quiet(100), None);
        assert_eq!(w.job_creates, 1);
        vec![w]
    }

    pub fn retries_then_success() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            retry: retry(2, 10),
            ..spec(&[])
        });
        w.step(0);
        w.fail(&job("main", 1), 20, 1, "flaky");
        let plan = w.step(20);
        assert!(plan.launch.is_none());
        assert_eq!(plan.requeue_after_seconds, Some(10), "requeue = backoff");
        assert_eq!((w.phase(), w.reason()), (Running, "RetryBackoff"));
        assert_eq!(w.status().next_retry_time, Some(time(30)));
        let main = w.step_status("main");
        assert_eq!(
            (main.phase, main.attempt, main.exit_code),
            (StepPhase::Retrying, 1, Some(1))
        );
        let last = w.last_entry();
        assert_eq!(
            (last.from, last.to, last.reason.as_str()),
            (Running, Running, "RetryScheduled")
        );
        assert_eq!(
            last.message.as_deref(),
            Some("step main attempt 1 failed (exit code 1 (Error)); attempt 2 in 10s")
        );
        assert_eq!(w.warnings(), ["RetryScheduled"]);
        assert_eq!(w.progress().current_step.as_deref(), Some("main"));
        assert_eq!(w.cond_is("Reconciling"), ("True", "RetryBackoff"));
        assert_eq!(w.quiet(25), Some(5));

        let plan = w.step(30);
        let launch = plan.launch.expect("attempt 2");
        assert_eq!(launch.attempt, 2);
        assert!(launch.job_name.ends_with("-2"), "{}", launch.job_name);
        assert!(!plan.ensure_config_map);
        assert_eq!(w.status().attempt, Some(2));
        assert_eq!(w.status().next_retry_time, None);
        assert_eq!(w.reason(), "StepRunning");
        assert_eq!(w.message(), "running step main (1/1), attempt 2");
        assert_eq!(w.last_entry().reason, "StepStarted");
        assert_eq!(w.step_status("main").start_time, Some(time(30)));
        assert_eq!(w.step_status("main").exit_code, None);

        w.succeed(&job("main", 2), 50, "ok");
        w.step(50);
        assert_eq!(w.phase(), Succeeded);
        assert_eq!(w.status().attempt, Some(2));
        assert_eq!(w.step_status("main").attempt, 2);
        assert_eq!(w.step_status("main").duration_seconds, Some(20));
        assert_eq!(w.status().duration_seconds, Some(50));
        assert_eq!(
            w.event_reasons(),
            ["Started", "RetryScheduled", "StepStarted", "Succeeded"]
        );
        assert_eq!((w.status_writes, w.job_creates), (4, 2));
        vec![w]
    }

    pub fn retries_exhausted() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            retry: retry(2, 5),
            ..spec(&[])
        });
        w.step(0);
        let mut requeues = Vec::new();
        let mut t = 0;
        for attempt in 1..=3 {
            let running = w.live_job().expect("a running attempt").clone();
            assert_eq!(
                (running.name.clone(), running.attempt),
                (job("main", attempt), attempt)
            );
            t += 10;
            w.fail(&running.name, t, 2, "still broken");
            let plan = w.step(t);
            if let Some(delay) = plan.requeue_after_seconds {
                requeues.push(delay);
                t += delay as i64;
                w.step(t);
            }
        }
        assert_eq!(requeues, [5, 10], "backoff doubles");
        assert_eq!((w.phase(), w.reason()), (Failed, "RetriesExhausted"));
        assert_eq!(
            w.message(),
            "step main failed after 3 attempts: exit code 2 (Error)"
        );
        assert_eq!(w.step_status("main").phase, StepPhase::Failed);
        assert_eq!(w.status().attempt, Some(3));
        assert_eq!(
            w.warnings(),
            ["RetryScheduled", "RetryScheduled", "RetriesExhausted"]
        );
        assert_eq!(w.job_creates, 3);
        vec![w]
    }

    pub fn step_deadline_is_a_failed_attempt() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            retry: retry(1, 10),
            steps: vec![StepSpec {
                timeout_seconds: Some(30),
                ..step_spec("main")
            }],
            ..spec(&[])
        });
        let launch = w.step(0).launch.unwrap();
        assert_eq!(launch.step.timeout_seconds, Some(30));
        // No pod outcome, but a deadline failure is recorded at once (no pod grace).
        w.exceed_deadline(&job("main", 1), 30);
        let plan = w.step(30);
        assert_eq!(plan.requeue_after_seconds, Some(10));
        let main = w.step_status("main");
        assert_eq!((main.phase, main.exit_code), (StepPhase::Retrying, None));
        assert_eq!(
            main.message.as_deref(),
            Some("timed out: Job was active longer than specified deadline")
        );
        assert_eq!(w.last_entry().reason, "RetryScheduled");
        assert!(w.step(40).launch.is_some());
        w.exceed_deadline(&job("main", 2), 70);
        w.step(70);
        assert_eq!((w.phase(), w.reason()), (Failed, "RetriesExhausted"));
        assert!(w.message().contains("timed out"), "{}", w.message());
        vec![w]
    }
}
