//! Stories of `spec.cancel` and `spec.suspend`: from every phase, before a start, mid-step, during a backoff.

use crate::lifecycle::decide::tests::prelude::*;

stories!(
    cancel_from_every_live_phase,
    cancel_while_awaiting_the_pod_ends_the_step,
    clearing_cancel_is_irreversible,
    suspend_before_start,
    suspend_while_running_then_resume,
    suspend_during_retry_backoff,
);

mod story {
    use super::*;
    use Phase::*;

    /// Cancel from every live phase: Cancelled, the running Job (if any) deleted, nothing launched.
    pub fn cancel_from_every_live_phase() -> Vec<World> {
        type Setup = fn(&mut World);
        let cases: [(&str, Phase, Option<&str>, Setup); 7] = [
            ("pending, never written", Pending, None, |_| {}),
            ("pending, queue missing", Pending, None, |w| {
                w.admission = Admission::QueueNotFound("q".into());
                w.step(0);
            }),
            ("queued", Queued, None, |w| {
                w.admission = Admission::Wait {
                    queue: "q".into(),
                    position: 2,
                };
                w.step(0);
            }),
            ("running", Running, Some("report-a-1"), |w| {
                w.step(0);
            }),
            ("running, second step", Running, Some("report-b-1"), |w| {
                w.step(0);
                w.succeed(&job("a", 1), 3, "");
                w.step(3);
            }),
            ("running, retry backoff", Running, None, |w| {
                w.edit(|s| s.retry = retry(1, 100));
                w.step(0);
                w.fail(&job("a", 1), 3, 1, "");
                w.step(3);
            }),
            ("paused", Paused, None, |w| {
                w.edit(|s| s.suspend = true);
                w.step(0);
            }),
        ];
        let mut worlds = Vec::new();
        for (label, phase, running, setup) in cases {
            let mut w = World::new(spec(&["a", "b"]));
            setup(&mut w);
            assert_eq!(w.phase(), phase, "{label}");
            assert_eq!(w.live_job().map(|j| j.name.as_str()), running, "{label}");
            let events_before = w.events.len();
            w.edit(|s| s.cancel = true);
            let plan = w.step(10);
            assert!(plan.launch.is_none(), "{label}");
            assert_eq!(
                plan.delete_jobs,
                running.map(String::from).into_iter().collect::<Vec<_>>(),
                "{label}"
            );
            assert_eq!((w.phase(), w.reason()), (Cancelled, "Cancelled"), "{label}");
            let last = w.last_entry();
            assert_eq!((last.from, last.to), (phase, Cancelled), "{label}");
            assert_eq!(w.event_reasons()[events_before..], ["Cancelled"], "{label}");
            assert!(!w.events.last().unwrap().warning, "{label}");
            assert_eq!(w.status().completion_time, Some(time(10)), "{label}");
            assert_eq!(w.cond_is("Succeeded").0, "False", "{label}");
            assert_eq!(w.cond_is("Reconciling").0, "False", "{label}");
            if let Some(name) = running {
                let step = &name["report-".len()..name.len() - 2];
                let s = w.step_status(step);
                assert_eq!(s.phase, StepPhase::Cancelled, "{label}");
                assert_eq!(s.message.as_deref(), Some("cancelled"), "{label}");
                assert_eq!(last.step.as_deref(), Some(step), "{label}");
            }
            assert_eq!(w.quiet(20), None, "{label}");
            worlds.push(w);
        }
        worlds
    }

    /// A cancel while a finished Job's pod is not yet in the cache: the step ends `Cancelled` with the run (it
    /// stayed `Running` in the finished status before), and its Job is released like any ended attempt's.
    pub fn cancel_while_awaiting_the_pod_ends_the_step() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            job_cleanup: Some(JobCleanup::OnStepCompletion),
            ..spec(&[])
        });
        w.step(0);
        w.finish(&job("main", 1), 5, JobState::Failed, |_| {});
        assert!(w.step(5).status.is_none(), "waits for the pod");
        w.edit(|s| s.cancel = true);
        let plan = w.step(6);
        assert!(plan.delete_jobs.is_empty(), "the Job has finished");
        assert_eq!(plan.release_jobs, [job("main", 1)]);
        assert_eq!(w.phase(), Cancelled);
        assert_eq!(w.step_status("main").phase, StepPhase::Cancelled);
        vec![w]
    }

    pub fn clearing_cancel_is_irreversible() -> Vec<World> {
        let mut w = World::new(spec(&[]));
        w.step(0);
        w.edit(|s| s.cancel = true);
        w.step(5);
        assert_eq!(w.phase(), Cancelled);
        let writes = w.status_writes;
        w.edit(|s| s.cancel = false);
        let plan = w.step(10);
        assert_eq!(plan.events.len(), 1);
        assert_eq!(
            (plan.events[0].warning, plan.events[0].reason.as_str()),
            (true, "CancelIrreversible")
        );
        assert_eq!(w.phase(), Cancelled);
        assert_eq!(w.status().observed_generation, Some(w.generation));
        assert!(
            w.status()
                .conditions
                .iter()
                .all(|c| c.observed_generation == Some(w.generation))
        );
        assert_eq!(w.status_writes, writes + 1, "observedGeneration moves");
        assert_eq!(w.quiet(11), None, "warned once");
        assert_eq!(w.quiet(500), None);
        assert_eq!(w.warnings(), ["CancelIrreversible"]);
        vec![w]
    }

    pub fn suspend_before_start() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            suspend: true,
            ..spec(&[])
        });
        let plan = w.step(0);
        assert!(plan.launch.is_none() && !plan.ensure_config_map);
        assert_eq!((w.phase(), w.reason()), (Paused, "Paused"));
        assert_eq!(w.message(), "paused before step main");
        assert_eq!(w.cond_is("Paused"), ("True", "Paused"));
        assert_eq!(w.cond_is("Reconciling").0, "False");
        assert_eq!(w.status().start_time, None);
        assert_eq!(w.progress().current_step, None);
        assert_eq!(w.history(), [(Pending, Paused, "Paused")]);
        assert_eq!(w.quiet(100), None);
        w.edit(|s| s.suspend = false);
        let plan = w.step(200);
        assert!(plan.launch.is_some() && plan.ensure_config_map);
        assert_eq!(w.last_entry().reason, "Started", "first start from Paused");
        assert_eq!(w.status().start_time, Some(time(200)));
        assert_eq!(w.cond_is("Paused"), ("False", "NotPaused"));
        vec![w]
    }

    pub fn suspend_while_running_then_resume() -> Vec<World> {
        let mut w = World::new(spec(&["a", "b"]));
        w.step(0);
        w.edit(|s| s.suspend = true);
        let plan = w.step(5);
        assert!(
            plan.status.is_some(),
            "condition and observedGeneration change"
        );
        assert!(plan.launch.is_none() && plan.delete_jobs.is_empty());
        assert!(plan.events.is_empty());
        assert_eq!((w.phase(), w.reason()), (Running, "StepRunning"));
        assert_eq!(w.cond_is("Paused"), ("True", "PauseRequested"));
        assert_eq!(w.cond_is("Reconciling").0, "True");
        w.succeed(&job("a", 1), 20, "a");
        let plan = w.step(20);
        assert!(plan.launch.is_none(), "no new step while suspended");
        assert_eq!((w.phase(), w.reason()), (Paused, "Paused"));
        assert_eq!(w.message(), "paused before step b");
        assert_eq!(w.cond_is("Paused"), ("True", "Paused"));
        assert_eq!(w.progress().display, "1/2 (50%)");
        assert_eq!(w.progress().current_step, None);
        assert_eq!(w.step_status("b").phase, StepPhase::Pending);
        let tail: Vec<_> = w.history().into_iter().rev().take(2).collect();
        assert_eq!(
            tail,
            [
                (Running, Paused, "Paused"),
                (Running, Running, "StepSucceeded")
            ]
        );
        assert_eq!(w.quiet(100), None);

        w.edit(|s| s.suspend = false);
        let plan = w.step(120);
        let launch = plan.launch.expect("the next step launches on resume");
        assert_eq!(launch.job_name, job("b", 1));
        assert_eq!(
            (w.phase(), w.last_entry().reason.as_str()),
            (Running, "Resumed")
        );
        assert_eq!(w.cond_is("Paused"), ("False", "NotPaused"));
        assert_eq!(w.status().start_time, Some(time(0)), "first start is kept");
        w.succeed(&job("b", 1), 150, "b");
        w.step(150);
        assert_eq!(w.phase(), Succeeded);
        assert_eq!(w.status().duration_seconds, Some(150), "paused time counts");
        assert_eq!(
            w.event_reasons(),
            ["Started", "StepSucceeded", "Paused", "Resumed", "Succeeded"]
        );
        vec![w]
    }

    /// Suspended while a failed step waits for its retry: Paused; on resume the retry runs.
    pub fn suspend_during_retry_backoff() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            retry: retry(1, 30),
            ..spec(&[])
        });
        w.step(0);
        w.fail(&job("main", 1), 10, 1, "");
        w.step(10);
        assert_eq!(w.reason(), "RetryBackoff");
        w.edit(|s| s.suspend = true);
        let plan = w.step(15);
        assert!(plan.launch.is_none());
        assert_eq!(
            (w.phase(), w.message()),
            (Paused, "paused before retrying step main")
        );
        assert_eq!(w.status().next_retry_time, None);
        assert_eq!(w.step_status("main").phase, StepPhase::Retrying);
        assert_eq!(w.quiet(100), None, "no retry while paused");
        w.edit(|s| s.suspend = false);
        let plan = w.step(110);
        assert_eq!(plan.launch.map(|l| l.attempt), Some(2));
        assert_eq!(w.last_entry().reason, "StepStarted");
        assert_eq!(w.warnings(), ["RetryScheduled"], "retry noted once");
        vec![w]
    }
}
