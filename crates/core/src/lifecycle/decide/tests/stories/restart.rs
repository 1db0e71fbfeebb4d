//! Stories of an operator restart at every point: after a launch, a resume, a retry, a lost terminal write.

use crate::lifecycle::decide::tests::prelude::*;

stories!(
    restart_after_first_launch,
    restart_after_launch_from_queue,
    restart_after_resume_from_queue,
    restart_mid_run,
    restart_after_retry_launch,
    restart_terminal_write_lost,
);

mod story {
    use super::*;
    use Phase::*;

    // ---- restart / idempotence ----

    /// The first Job was created but the status write was lost: no second Job, and the status catches up.
    pub fn restart_after_first_launch() -> Vec<World> {
        let mut w = World::new(spec(&[]));
        w.lose_next_write = true;
        let plan = w.step(0);
        assert!(plan.launch.is_some());
        assert!(w.status.is_none(), "write lost");
        assert!(w.events.is_empty(), "events go with the write");
        let plan = w.step(3);
        assert!(plan.launch.is_none(), "no second Job");
        assert_eq!((w.phase(), w.reason()), (Running, "StepRunning"));
        assert_eq!(w.history(), [(Pending, Running, "Started")]);
        assert_eq!(w.last_entry().message.as_deref(), Some("started step main"));
        assert_eq!(w.event_reasons(), ["Started"]);
        assert_eq!(
            w.status().start_time,
            Some(time(0)),
            "from the Job's creation"
        );
        assert_eq!(w.step_status("main").start_time, Some(time(0)));
        assert_eq!((w.job_creates, w.status_writes), (1, 1));
        w.succeed(&job("main", 1), 10, "");
        w.step(10);
        assert_eq!(w.status().duration_seconds, Some(10));
        vec![w]
    }

    /// Status lost while waiting in the queue and then admitted and launched: catches up from Queued.
    pub fn restart_after_launch_from_queue() -> Vec<World> {
        let mut w = World::new(spec(&[]));
        w.admission = Admission::Wait {
            queue: "q".into(),
            position: 1,
        };
        w.step(0);
        w.admission = Admission::Admitted;
        w.lose_next_write = true;
        assert!(w.step(5).launch.is_some());
        assert_eq!(w.phase(), Queued);
        w.admission = Admission::Wait {
            queue: "q".into(),
            position: 1,
        };
        let plan = w.step(6);
        assert!(plan.launch.is_none());
        assert_eq!(w.phase(), Running, "a running Job holds its slot");
        assert_eq!(w.last_entry().reason, "Started");
        vec![w]
    }

    /// Resumed into a full queue, then admitted and launched, but that write was lost: the running Job is seen and
    /// the execution resumes (no second Job, no catch-up "Started").
    pub fn restart_after_resume_from_queue() -> Vec<World> {
        let mut w = World::new(spec(&["a", "b"]));
        w.step(0);
        w.edit(|s| s.suspend = true);
        w.succeed(&job("a", 1), 10, "a");
        w.step(10);
        w.admission = Admission::Wait {
            queue: "q".into(),
            position: 1,
        };
        w.edit(|s| s.suspend = false);
        w.step(20);
        assert_eq!(w.phase(), Queued);
        w.admission = Admission::Admitted;
        w.lose_next_write = true;
        assert!(w.step(30).launch.is_some());
        assert_eq!(w.phase(), Queued);
        w.admission = Admission::Wait {
            queue: "q".into(),
            position: 1,
        };
        let plan = w.step(31);
        assert!(plan.launch.is_none());
        assert_eq!((w.phase(), w.reason()), (Running, "StepRunning"));
        assert_eq!(w.last_entry().reason, "Resumed");
        assert_eq!(w.step_status("b").start_time, Some(time(30)));
        vec![w]
    }

    /// Status lost after the second step's Job was created: no second Job, the first step's success is noted.
    pub fn restart_mid_run() -> Vec<World> {
        let mut w = World::new(spec(&["plan", "research", "write"]));
        w.step(0);
        w.succeed(&job("plan", 1), 10, "");
        w.lose_next_write = true;
        assert!(w.step(10).launch.is_some());
        assert_eq!(
            w.step_status("plan").phase,
            StepPhase::Running,
            "write lost"
        );
        let plan = w.step(12);
        assert!(plan.launch.is_none());
        assert_eq!(w.last_entry().reason, "StepSucceeded");
        assert_eq!(w.progress().current_step.as_deref(), Some("research"));
        assert_eq!(w.step_status("research").phase, StepPhase::Running);
        assert_eq!(w.step_status("research").start_time, Some(time(10)));
        assert_eq!(w.job_creates, 2);
        vec![w]
    }

    /// Status lost after a retry's Job was created: no third Job, the attempt number is caught up.
    pub fn restart_after_retry_launch() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            retry: retry(3, 10),
            ..spec(&[])
        });
        w.step(0);
        w.fail(&job("main", 1), 5, 1, "");
        w.step(5);
        w.lose_next_write = true;
        assert_eq!(w.step(15).launch.map(|l| l.attempt), Some(2));
        assert_eq!(w.status().attempt, Some(1));
        let plan = w.step(16);
        assert!(plan.launch.is_none());
        assert_eq!(w.status().attempt, Some(2));
        assert_eq!(w.step_status("main").phase, StepPhase::Running);
        assert_eq!(
            w.step_status("main").job_name.as_deref(),
            Some("report-main-2")
        );
        assert_eq!(w.status().next_retry_time, None);
        assert_eq!(w.reason(), "StepRunning");
        assert_eq!(w.job_creates, 2);
        vec![w]
    }

    /// The Cancelled write is lost: the next reconcile cancels again (deleting the Job again is harmless).
    pub fn restart_terminal_write_lost() -> Vec<World> {
        let mut w = World::new(spec(&[]));
        w.step(0);
        w.edit(|s| s.cancel = true);
        w.lose_next_write = true;
        let plan = w.step(5);
        assert_eq!(plan.delete_jobs, [job("main", 1)]);
        assert_eq!(w.phase(), Running, "write lost");
        let plan = w.step(6);
        assert_eq!(
            plan.delete_jobs,
            [job("main", 1)],
            "deleted again, harmlessly"
        );
        assert_eq!(w.phase(), Cancelled);
        assert_eq!(w.event_reasons(), ["Started", "Cancelled"]);
        vec![w]
    }
}
