//! Stories of the execution deadline (`spec.timeoutSeconds`), running or paused.

use crate::lifecycle::decide::tests::prelude::*;

stories!(execution_timeout, execution_timeout_while_paused);

mod story {
    use super::*;
    use Phase::*;

    pub fn execution_timeout() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            timeout_seconds: Some(60),
            ..spec(&["a", "b"])
        });
        w.step(0);
        assert_eq!(w.quiet(1), Some(59), "timer to the execution deadline");
        w.succeed(&job("a", 1), 30, "a");
        let plan = w.step(30);
        assert!(plan.launch.is_some());
        assert_eq!(plan.requeue_after_seconds, Some(30));
        let plan = w.step(60);
        assert_eq!(plan.delete_jobs, [job("b", 1)]);
        assert!(plan.launch.is_none());
        assert_eq!((w.phase(), w.reason()), (Failed, "TimedOut"));
        assert_eq!(w.message(), "execution exceeded spec.timeoutSeconds (60s)");
        let b = w.step_status("b");
        assert_eq!(b.phase, StepPhase::Cancelled);
        assert_eq!(
            b.message.as_deref(),
            Some("stopped: the execution timed out")
        );
        assert_eq!(b.completion_time, Some(time(60)));
        assert_eq!(w.step_status("a").phase, StepPhase::Succeeded);
        let last = w.last_entry();
        assert_eq!(
            (
                last.from,
                last.to,
                last.reason.as_str(),
                last.step.as_deref()
            ),
            (Running, Failed, "TimedOut", Some("b"))
        );
        assert_eq!(w.warnings(), ["TimedOut"]);
        assert_eq!(w.status().duration_seconds, Some(60));
        assert_eq!(w.progress().display, "1/2 (50%)");
        assert_eq!(w.cond_is("Stalled"), ("True", "TimedOut"));
        // The killed Job's failure changes nothing.
        w.fail(&job("b", 1), 62, 137, "");
        assert_eq!(w.quiet(62), None);
        vec![w]
    }

    /// Paused time counts toward `spec.timeoutSeconds`; a paused execution fails on resume.
    pub fn execution_timeout_while_paused() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            timeout_seconds: Some(60),
            ..spec(&["a", "b"])
        });
        w.step(0);
        w.edit(|s| s.suspend = true);
        w.step(5);
        w.succeed(&job("a", 1), 20, "a");
        w.step(20);
        assert_eq!(w.phase(), Paused);
        assert_eq!(w.quiet(30), Some(30));
        assert_eq!(
            w.quiet(100),
            None,
            "no timer while paused past the deadline"
        );
        assert_eq!(w.phase(), Paused);
        w.edit(|s| s.suspend = false);
        let plan = w.step(120);
        assert!(plan.launch.is_none());
        assert_eq!((w.phase(), w.reason()), (Failed, "TimedOut"));
        let tail: Vec<_> = w.history().into_iter().rev().take(2).collect();
        assert_eq!(
            tail,
            [(Running, Failed, "TimedOut"), (Paused, Running, "Resumed")]
        );
        vec![w]
    }
}
