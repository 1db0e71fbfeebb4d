//! Stories of admission: waiting for a slot, resuming into a full queue, a queue that does not exist.

use crate::lifecycle::decide::tests::prelude::*;

stories!(
    resume_into_full_queue_waits,
    admission_wait_queues,
    queue_not_found_warns_once,
);

mod story {
    use super::*;
    use Phase::*;

    /// Resumed while its queue is full: the execution waits in Queued (it used to be caught up to Running by the
    /// restart catch-up on the next reconcile, launching the next step past the queue).
    pub fn resume_into_full_queue_waits() -> Vec<World> {
        let mut w = World::new(spec(&["a", "b"]));
        w.step(0);
        w.edit(|s| s.suspend = true);
        w.succeed(&job("a", 1), 10, "a");
        w.step(10);
        assert_eq!(w.phase(), Paused);
        w.admission = Admission::Wait {
            queue: "q".into(),
            position: 1,
        };
        w.edit(|s| s.suspend = false);
        let plan = w.step(20);
        assert!(plan.launch.is_none());
        assert_eq!((w.phase(), w.reason()), (Queued, "Queued"));
        assert_eq!(w.last_entry().from, Paused);
        assert_eq!(w.quiet(21), None, "stays queued");
        assert_eq!(w.quiet(60), None);
        w.admission = Admission::Admitted;
        let plan = w.step(70);
        assert_eq!(plan.launch.map(|l| l.job_name), Some(job("b", 1)));
        assert_eq!(
            w.history()[w.history().len() - 1],
            (Queued, Running, "Resumed")
        );
        assert_eq!(w.status().start_time, Some(time(0)));
        vec![w]
    }

    pub fn admission_wait_queues() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            queue: Some("gpu".into()),
            ..spec(&[])
        });
        w.admission = Admission::Wait {
            queue: "gpu".into(),
            position: 2,
        };
        let plan = w.step(0);
        assert!(plan.launch.is_none() && !plan.ensure_config_map);
        assert_eq!((w.phase(), w.reason()), (Queued, "Queued"));
        assert_eq!(w.message(), "waiting for a free slot in queue gpu");
        assert_eq!(w.cond_is("Admitted"), ("False", "Queued"));
        assert_eq!(w.cond_is("Reconciling").0, "True");
        assert_eq!(w.event_reasons(), ["Queued"]);
        w.admission = Admission::Wait {
            queue: "gpu".into(),
            position: 1,
        };
        assert_eq!(w.quiet(10), None);
        w.admission = Admission::Admitted;
        let plan = w.step(20);
        assert!(plan.launch.is_some());
        assert_eq!(w.last_entry().reason, "Started");
        assert_eq!(
            w.history(),
            [(Pending, Queued, "Queued"), (Queued, Running, "Started")]
        );
        assert_eq!(
            w.status().start_time,
            Some(time(20)),
            "queued time is not run time"
        );
        assert_eq!(w.cond_is("Admitted"), ("True", "Admitted"));
        vec![w]
    }

    pub fn queue_not_found_warns_once() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            queue: Some("missing".into()),
            ..spec(&[])
        });
        w.admission = Admission::QueueNotFound("missing".into());
        let plan = w.step(0);
        assert!(plan.launch.is_none());
        assert_eq!((w.phase(), w.reason()), (Pending, "QueueNotFound"));
        assert_eq!(w.cond_is("Admitted"), ("False", "QueueNotFound"));
        assert_eq!(
            w.cond("Admitted").message,
            "queue missing does not exist; the execution starts once it does"
        );
        assert_eq!(w.warnings(), ["QueueNotFound"]);
        assert!(w.status().history.is_empty());
        assert_eq!(w.quiet(30), None, "not repeated");
        assert_eq!(w.quiet(300), None);
        assert_eq!(w.events.len(), 1);
        w.admission = Admission::Admitted;
        assert!(w.step(400).launch.is_some());
        assert_eq!(w.history(), [(Pending, Running, "Started")]);
        assert_eq!(w.cond_is("Admitted"), ("True", "Admitted"));
        vec![w]
    }
}
