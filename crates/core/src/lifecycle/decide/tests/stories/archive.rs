//! Stories of a run and the archive: kept (finalizer, TTL) until it is stored, its `Archived` condition written once
//! per change, a failing archive visible without a write per retry.

use crate::lifecycle::ArchiveFact;
use crate::lifecycle::FinalizerChange;
use crate::lifecycle::decide::tests::prelude::*;

stories!(
    the_ttl_waits_until_the_run_is_stored,
    a_failing_archive_shows_once_per_failure,
    without_an_archive_nothing_changes,
);

mod story {
    use super::*;
    use Phase::*;

    /// With `ttlSecondsAfterFinished: 0` and an archive: the run keeps the finalizer and is not deleted until it is
    /// stored; then one status write (`Archived=True`) and the finalizer's removal, and the next reconcile deletes.
    pub fn the_ttl_waits_until_the_run_is_stored() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            ttl_seconds_after_finished: Some(0),
            ..spec(&[])
        });
        w.archive = ArchiveFact::Pending;
        w.retain = true;
        assert_eq!(w.step(0).finalizer, Some(FinalizerChange::Add));
        w.succeed(&job("main", 1), 10, "done");
        w.step(10);
        assert_eq!(w.phase(), Succeeded);
        let plan = w.step(11);
        assert!(!plan.delete_execution, "not stored yet");
        assert_eq!(w.quiet(60), None, "nothing to do but wait for the archive");
        // The archiver committed the row.
        w.archive = ArchiveFact::Committed;
        w.retain = false;
        let writes = w.status_writes;
        let plan = w.step(61);
        assert_eq!(w.status_writes, writes + 1);
        assert_eq!(w.cond_is("Archived"), ("True", "Archived"));
        assert_eq!(plan.finalizer, Some(FinalizerChange::Remove));
        assert!(plan.events.is_empty(), "no Event for the expected course");
        assert_eq!(w.finalizer_writes, 2);
        assert!(w.step(62).delete_execution);
        vec![w]
    }

    /// The archive fails: `Archived=False` with why and one Warning Event; the same failure again writes nothing; a
    /// different one is written; once stored, `Archived=True` (its transition time is new).
    pub fn a_failing_archive_shows_once_per_failure() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            ttl_seconds_after_finished: Some(5),
            ..spec(&[])
        });
        w.archive = ArchiveFact::Pending;
        w.retain = true;
        w.step(0);
        w.fail(&job("main", 1), 10, 1, "boom");
        w.step(10);
        assert_eq!(w.phase(), Failed);
        w.archive = ArchiveFact::Failing("the database is unreachable".into());
        let warnings = w.warnings().len();
        w.step(11);
        assert_eq!(w.cond_is("Archived"), ("False", "ArchiveFailed"));
        assert_eq!(w.cond("Archived").message, "the database is unreachable");
        assert_eq!(w.warnings().len(), warnings + 1);
        assert_eq!(w.warnings().last(), Some(&"ArchiveFailed"));
        assert_eq!(
            w.quiet(100),
            None,
            "the same failure: no write, no Event, no deletion"
        );
        w.archive = ArchiveFact::Failing("the database refused the write (SQLSTATE 53100)".into());
        w.step(101);
        assert_eq!(
            w.cond("Archived").message,
            "the database refused the write (SQLSTATE 53100)"
        );
        assert_eq!(w.warnings().len(), warnings + 2);
        w.archive = ArchiveFact::Committed;
        w.retain = false;
        let plan = w.step(200);
        assert_eq!(w.cond_is("Archived"), ("True", "Archived"));
        assert_eq!(w.cond("Archived").last_transition_time, time(200));
        assert!(plan.delete_execution, "its TTL passed long ago");
        vec![w]
    }

    /// Without an archive, no `Archived` condition and the TTL acts as before.
    pub fn without_an_archive_nothing_changes() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            ttl_seconds_after_finished: Some(0),
            ..spec(&[])
        });
        w.step(0);
        w.succeed(&job("main", 1), 10, "done");
        w.step(10);
        assert!(w.status().conditions.iter().all(|c| c.type_ != "Archived"));
        assert!(w.step(11).delete_execution);
        vec![w]
    }
}
