//! Stories of runs that go well: one and several steps, the history cap, worker reports, conditions other writers own.

use crate::lifecycle::decide::tests::prelude::*;

stories!(
    one_step_success,
    three_step_success,
    progress_reports_are_coalesced_and_ride_on_the_outcome,
    history_cap_keeps_newest,
    another_writers_condition_is_left_alone,
);

mod story {
    use super::*;
    use Phase::*;

    pub fn one_step_success() -> Vec<World> {
        let mut w = World::new(spec(&[]));
        let plan = w.step(0);
        let launch = plan.launch.expect("the first reconcile launches");
        assert_eq!(
            (
                launch.job_name.as_str(),
                launch.attempt,
                launch.step.name.as_str()
            ),
            ("report-main-1", 1, "main")
        );
        assert_eq!(launch.step.image, "worker:1");
        assert!(plan.ensure_config_map);
        assert_eq!((w.phase(), w.reason()), (Running, "StepRunning"));
        assert_eq!(w.message(), "running step main (1/1), attempt 1");
        assert_eq!(w.progress().display, "0/1 (0%)");
        assert_eq!(w.progress().current_step.as_deref(), Some("main"));
        assert_eq!(w.status().start_time, Some(time(0)));
        assert_eq!(w.status().attempt, Some(1));
        assert_eq!(w.status().observed_generation, Some(1));
        assert_eq!(w.cond_is("Reconciling"), ("True", "StepRunning"));
        assert_eq!(w.cond_is("Succeeded").0, "Unknown");
        assert_eq!(w.cond_is("Paused"), ("False", "NotPaused"));
        assert_eq!(w.cond_is("Admitted"), ("True", "Admitted"));
        assert_eq!(w.quiet(10), None);

        w.succeed(&job("main", 1), 30, "the report");
        w.step(30);
        assert_eq!(w.phase(), Succeeded);
        assert_eq!(
            (
                w.status_writes,
                w.events.len(),
                w.job_creates,
                w.config_maps
            ),
            (2, 2, 1, 1)
        );
        println!(
            "one-step success: {} status writes, {} events, {} job creates, {} config maps",
            w.status_writes,
            w.events.len(),
            w.job_creates,
            w.config_maps
        );
        assert_eq!(w.event_reasons(), ["Started", "Succeeded"]);
        assert!(w.warnings().is_empty());
        assert_eq!(w.events[0].note, "Pending -> Running: started at step main");
        assert_eq!(
            w.events[1].note,
            "Running -> Succeeded: all 1 steps succeeded"
        );
        assert_eq!(
            w.history(),
            [
                (Pending, Running, "Started"),
                (Running, Succeeded, "Succeeded")
            ]
        );
        assert_eq!(w.status().history[0].time, time(0));
        assert_eq!(w.status().history[1].time, time(30));
        assert_eq!(w.status().history[1].step.as_deref(), Some("main"));
        let p = w.progress();
        assert_eq!(
            (
                p.percent,
                p.completed_steps,
                p.total_steps,
                p.display.as_str()
            ),
            (100, 1, 1, "1/1 (100%)")
        );
        assert_eq!(p.current_step, None);
        let s = w.status();
        assert_eq!(
            (s.start_time.clone(), s.completion_time.clone()),
            (Some(time(0)), Some(time(30)))
        );
        assert_eq!(
            (s.duration_seconds, s.duration.as_deref()),
            (Some(30), Some("30s"))
        );
        assert_eq!(s.result.as_deref(), Some("the report"));
        assert_eq!(s.next_retry_time, None);
        let main = w.step_status("main");
        assert_eq!(
            (
                main.phase,
                main.attempt,
                main.exit_code,
                main.duration_seconds
            ),
            (StepPhase::Succeeded, 1, Some(0), Some(30))
        );
        assert_eq!(main.result.as_deref(), Some("the report"));
        assert_eq!(main.message.as_deref(), Some("succeeded"));
        assert_eq!(w.cond_is("Succeeded"), ("True", "Succeeded"));
        assert_eq!(w.cond_is("Ready"), ("True", "Succeeded"));
        assert_eq!(w.cond_is("Reconciling").0, "False");
        assert_eq!(w.cond_is("Stalled").0, "False");
        assert_eq!(w.cond("Ready").last_transition_time, time(30));
        assert_eq!(w.cond("Stalled").last_transition_time, time(0));
        assert_eq!(w.quiet(1000), None);
        vec![w]
    }

    pub fn three_step_success() -> Vec<World> {
        let mut w = World::new(spec(&["plan", "research", "write"]));
        let first = w.step(0).launch.expect("launch plan");
        assert_eq!(first.job_name, "report-plan-1");
        assert_eq!(w.progress().display, "0/3 (0%)");
        w.succeed(&job("plan", 1), 10, "outline");
        let second = w.step(10);
        assert_eq!(
            second.launch.map(|l| l.job_name).as_deref(),
            Some("report-research-1")
        );
        assert!(!second.ensure_config_map, "the ConfigMap is made once");
        assert_eq!(w.progress().display, "1/3 (33%)");
        assert_eq!(w.progress().current_step.as_deref(), Some("research"));
        assert_eq!(w.step_status("plan").phase, StepPhase::Succeeded);
        assert_eq!(w.step_status("write").phase, StepPhase::Pending);
        assert_eq!(
            w.last_entry().message.as_deref(),
            Some("step plan succeeded in 10s; next: step research")
        );
        assert_eq!(w.status().result.as_deref(), Some("outline"));
        w.quiet(15);
        w.succeed(&job("research", 1), 25, "notes");
        w.step(25);
        assert_eq!(w.progress().display, "2/3 (66%)");
        w.succeed(&job("write", 1), 45, "final");
        w.step(45);
        w.quiet(50);
        assert_eq!(w.phase(), Succeeded);
        println!(
            "three-step success: {} status writes, {} events, {} job creates, {} config maps",
            w.status_writes,
            w.events.len(),
            w.job_creates,
            w.config_maps
        );
        assert_eq!(
            (
                w.status_writes,
                w.events.len(),
                w.job_creates,
                w.config_maps
            ),
            (4, 4, 3, 1)
        );
        assert_eq!(
            w.event_reasons(),
            ["Started", "StepSucceeded", "StepSucceeded", "Succeeded"]
        );
        assert_eq!(
            w.history(),
            [
                (Pending, Running, "Started"),
                (Running, Running, "StepSucceeded"),
                (Running, Running, "StepSucceeded"),
                (Running, Succeeded, "Succeeded"),
            ]
        );
        let steps: Vec<_> = w
            .status()
            .steps
            .iter()
            .map(|s| (s.name.as_str(), s.phase, s.duration_seconds))
            .collect();
        assert_eq!(
            steps,
            [
                ("plan", StepPhase::Succeeded, Some(10)),
                ("research", StepPhase::Succeeded, Some(15)),
                ("write", StepPhase::Succeeded, Some(20)),
            ]
        );
        assert_eq!(w.progress().display, "3/3 (100%)");
        assert_eq!(w.status().duration_seconds, Some(45));
        assert_eq!(w.status().result.as_deref(), Some("final"));
        vec![w]
    }

    /// A worker's reports: written only when due, or with a write made anyway; the last report before the step
    /// ends rides on its outcome write; the execution's percent counts the running step's fraction.
    pub fn progress_reports_are_coalesced_and_ride_on_the_outcome() -> Vec<World> {
        let mut w = World::new(spec(&["plan", "write"]));
        w.step(0);
        w.succeed(&job("plan", 1), 5, "{}");
        w.step(5);
        assert_eq!(w.step_status("write").attempt, 1);
        let mut book = AttemptReports::new("write", 1, at(6));
        let sent = |book: &mut AttemptReports, json: &str, t: i64| {
            book.apply(serde_json::from_str(json).unwrap(), at(t))
                .unwrap();
        };
        sent(
            &mut book,
            r#"{"percent": 40, "message": "chapter 4", "metrics": {"pages": 12}}"#,
            6,
        );
        w.report = Some(book.clone());
        w.report_due = false;
        assert!(w.step(6).status.is_none(), "not due: no write");
        w.report_due = true;
        assert!(w.step(7).status.is_some(), "due: one write");
        let write = w.step_status("write");
        let progress = write.progress.clone().unwrap();
        assert_eq!(
            (progress.percent, progress.message.as_deref()),
            (40, Some("chapter 4"))
        );
        assert_eq!(progress.update_time, Some(time(6)));
        assert_eq!(write.metrics["pages"], 12.0);
        assert_eq!(w.progress().display, "1/2 (70%)");
        // A heartbeat alone is never worth a write, due or not.
        sent(&mut book, "{}", 8);
        w.report = Some(book.clone());
        assert!(w.step(9).status.is_none(), "heartbeat: no write");
        // Newer progress, not due; then the step ends: the outcome write carries it.
        sent(
            &mut book,
            r#"{"percent": 90, "warnings": ["rate limited once"]}"#,
            10,
        );
        w.report = Some(book.clone());
        w.report_due = false;
        assert!(w.step(10).status.is_none());
        w.succeed(&job("write", 1), 12, "done");
        w.step(12);
        assert_eq!(w.phase(), Succeeded);
        let write = w.step_status("write");
        assert_eq!(write.progress.as_ref().map(|p| p.percent), Some(90));
        assert_eq!(write.warnings, ["rate limited once"]);
        assert_eq!(w.progress().display, "2/2 (100%)");
        assert_eq!(
            w.status_writes, 4,
            "start, plan done, the due progress, the outcome"
        );
        vec![w]
    }

    pub fn history_cap_keeps_newest() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            history_limit: 3,
            ..spec(&["a", "b", "c"])
        });
        w.step(0);
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            let t = 10 * (i as i64 + 1);
            w.succeed(&job(name, 1), t, "");
            w.step(t);
        }
        assert_eq!(w.phase(), Succeeded);
        assert_eq!(w.full_history.len(), 4);
        assert_eq!(
            w.history(),
            [
                (Running, Running, "StepSucceeded"),
                (Running, Running, "StepSucceeded"),
                (Running, Succeeded, "Succeeded"),
            ]
        );
        assert_eq!(w.status().history[..], w.full_history[1..]);
        assert_eq!(w.status().history[0].step.as_deref(), Some("a"));
        vec![w]
    }

    /// Another controller adds a condition of its own (server-side apply merges conditions by type): it is no
    /// reason to write, and the operator's writes never carry it (so never take it over).
    pub fn another_writers_condition_is_left_alone() -> Vec<World> {
        let mut w = World::new(spec(&[]));
        w.step(0);
        let foreign = Condition {
            type_: "PolicyChecked".into(),
            status: "True".into(),
            reason: "Checked".into(),
            message: "checked by another controller".into(),
            last_transition_time: time(0),
            observed_generation: None,
        };
        if let Some(status) = w.status.as_mut() {
            status.conditions.push(foreign);
        }
        w.quiet(1);
        w.succeed(&job("main", 1), 5, "");
        let plan = w.step(5);
        let written = plan.status.expect("the success is written");
        assert!(
            written
                .conditions
                .iter()
                .all(|c| c.type_ != "PolicyChecked"),
            "another writer's condition was written back: {:?}",
            written.conditions
        );
        assert_eq!(w.phase(), Succeeded);
        vec![w]
    }
}
