//! Stories of a cache that lags: a pod outcome not seen yet or gone, a launched Job the cache does not show.

use crate::lifecycle::decide::tests::prelude::*;

stories!(
    missing_pod_outcome,
    recorded_outcome_outlives_its_pod,
    pod_grace_counts_from_when_the_job_was_seen_finished,
    launched_job_missing_from_cache,
    job_missing_from_the_cache_only_is_not_lost,
);

mod story {
    use super::*;

    use Phase::*;

    /// A finished Job whose pod outcome is not in the cache: wait up to 10s, then record it without exit code.
    pub fn missing_pod_outcome() -> Vec<World> {
        let mut worlds = Vec::new();
        for succeeded in [true, false] {
            let label = if succeeded { "succeeded" } else { "failed" };
            let mut w = World::new(spec(&[]));
            w.step(0);
            let state = if succeeded {
                JobState::Succeeded
            } else {
                JobState::Failed
            };
            w.finish(&job("main", 1), 30, state, |j| {
                if !succeeded {
                    j.failure_reason = Some("BackoffLimitExceeded".into());
                    j.failure_message = Some("Job has reached the specified backoff limit".into());
                }
            });
            for t in [30, 35, 39] {
                let plan = w.step(t);
                assert!(plan.is_noop(), "{label} t={t}: {plan:#?}");
                assert_eq!(plan.requeue_after_seconds, Some(2), "{label} t={t}");
            }
            assert_eq!(w.phase(), Running, "{label}");
            w.step(40);
            let main = w.step_status("main");
            assert_eq!(
                (main.exit_code, main.result.as_deref()),
                (None, None),
                "{label}"
            );
            assert_eq!(
                main.completion_time,
                Some(time(30)),
                "{label}: the Job's time"
            );
            if succeeded {
                assert_eq!(w.phase(), Succeeded);
                assert_eq!(w.status().completion_time, Some(time(30)));
            } else {
                assert_eq!((w.phase(), w.reason()), (Failed, "StepFailed"));
                assert_eq!(
                    main.message.as_deref(),
                    Some("Job has reached the specified backoff limit")
                );
            }
            worlds.push(w);
        }
        worlds
    }

    /// Review finding 10, scenario 2: a finished step's pod is deleted (pod GC, by hand) and the operator restarts
    /// (its outcome is no longer in the cache): the recorded result, exit code and message are kept as written.
    pub fn recorded_outcome_outlives_its_pod() -> Vec<World> {
        let mut w = World::new(spec(&["a", "b"]));
        w.step(0);
        w.succeed(&job("a", 1), 10, r#"{"x":1}"#);
        w.step(11);
        let recorded = w.step_status("a").clone();
        assert_eq!(recorded.result.as_deref(), Some(r#"{"x":1}"#));
        assert_eq!(recorded.exit_code, Some(0));
        for j in w.jobs.iter_mut().filter(|j| j.step == "a") {
            j.worker = None;
            j.seen_finished = Some(at(100));
        }
        for t in [100, 120] {
            let plan = w.step(t);
            assert!(
                plan.status.is_none(),
                "t={t}: nothing to rewrite: {plan:#?}"
            );
        }
        assert_eq!(*w.step_status("a"), recorded);
        w.succeed(&job("b", 1), 130, "done");
        w.step(131);
        assert_eq!(w.phase(), Succeeded);
        assert_eq!(*w.step_status("a"), recorded);
        vec![w]
    }

    /// Review finding 10, scenarios 1 and 3: the wait for a finished Job's pod outcome counts from when the
    /// operator saw the Job finished, on its own clock, not from the Job controller's timestamp (clock skew, or a
    /// Job event that arrives late, would otherwise record the step without its result at once).
    pub fn pod_grace_counts_from_when_the_job_was_seen_finished() -> Vec<World> {
        let mut w = World::new(spec(&[]));
        w.step(0);
        w.finish(&job("main", 1), 30, JobState::Succeeded, |j| {
            j.seen_finished = Some(at(60));
        });
        for t in [60, 65, 69] {
            let plan = w.step(t);
            assert!(
                plan.status.is_none(),
                "t={t}: still waiting for the pod: {plan:#?}"
            );
        }
        assert_eq!(w.phase(), Running);
        w.jobs[0].worker = Some(WorkerOutcome {
            exit_code: 0,
            reason: Some("Completed".into()),
            message: Some("late but there".into()),
        });
        w.step(69);
        assert_eq!(w.phase(), Succeeded);
        let main = w.step_status("main");
        assert_eq!(main.result.as_deref(), Some("late but there"));
        assert_eq!(main.completion_time, Some(time(30)), "the Job's own time");
        vec![w]
    }

    /// Status says a Job was created but the cache does not show it: wait, and after 60s count a failed attempt.
    pub fn launched_job_missing_from_cache() -> Vec<World> {
        let mut worlds = Vec::new();
        for limit in [0, 1] {
            let mut w = World::new(CrewExecutionSpec {
                retry: retry(limit, 10),
                ..spec(&[])
            });
            w.step(0);
            w.jobs.clear();
            for t in [1, 30, 59] {
                assert_eq!(w.quiet(t), Some(5), "limit {limit} t={t}");
            }
            assert_eq!(w.phase(), Running);
            let plan = w.step(60);
            assert!(plan.launch.is_none());
            let main = w.step_status("main");
            assert_eq!(
                main.message.as_deref(),
                Some("Job report-main-1 disappeared before its outcome was seen")
            );
            assert_eq!(main.exit_code, None);
            if limit == 0 {
                assert_eq!((w.phase(), w.reason()), (Failed, "StepFailed"));
                assert_eq!(main.phase, StepPhase::Failed);
            } else {
                assert_eq!((w.phase(), w.reason()), (Running, "RetryBackoff"));
                assert_eq!(main.phase, StepPhase::Retrying);
                assert_eq!(w.status().next_retry_time, Some(time(70)));
                assert_eq!(w.warnings(), ["RetryScheduled"]);
                assert_eq!(w.quiet(65), Some(5));
                assert_eq!(w.step(70).launch.map(|l| l.attempt), Some(2));
                w.succeed(&job("main", 2), 80, "");
                w.step(80);
                assert_eq!(w.phase(), Succeeded);
            }
            worlds.push(w);
        }
        worlds
    }

    /// The cache stops showing a running Job (a stalled watch) while the API server still has it: after 60 s the
    /// shell reads it fresh, finds it, and the step keeps running; nothing is declared lost and no second attempt
    /// starts beside the first (review finding 13).
    pub fn job_missing_from_the_cache_only_is_not_lost() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            retry: retry(1, 10),
            ..spec(&[])
        });
        w.step(0);
        let name = job("main", 1);
        let hidden: Vec<_> = w.jobs.drain(..).collect();
        w.uncached_jobs.insert(name.clone());
        for t in [30, 60, 65, 120] {
            let plan = w.step(t);
            assert!(plan.launch.is_none(), "t={t}");
            assert_eq!(
                plan.read,
                (t >= 60).then(|| Read::Job(name.clone())),
                "t={t}"
            );
            assert_eq!(
                (w.phase(), w.step_status("main").phase),
                (Running, StepPhase::Running),
                "t={t}"
            );
        }
        // The watch comes back with the Job, which finishes.
        w.jobs = hidden;
        w.uncached_jobs.clear();
        w.succeed(&name, 130, "ok");
        w.step(130);
        assert_eq!(w.phase(), Succeeded);
        assert_eq!(w.job_creates, 1);
        vec![w]
    }
}
