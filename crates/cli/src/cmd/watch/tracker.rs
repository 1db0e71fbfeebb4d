//! The watched executions as the watch events leave them: what changed, and which disappeared before they
//! finished, from a `Delete` or from a relist that no longer holds them.
//!
//! After a long disconnect (a 410 Gone), the watcher lists again: `Init`, an `InitApply` per execution that
//! exists, `InitDone`. An execution deleted meanwhile gets no `Delete`; it is simply not in the list. Without
//! noticing that, a watch of it would wait until `--timeout`, or for ever.

use crate::view::summary::Summary;
use crew_api::CrewExecution;
use jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::watcher::Event;
use std::collections::{BTreeMap, BTreeSet};

/// Watched executions by `namespace/name`.
pub type Key = String;

/// The key of `cx`.
pub fn key_of(cx: &CrewExecution) -> Key {
    format!("{}/{}", cx.namespace().unwrap_or_default(), cx.name_any())
}

/// What an event changed, for the display.
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    /// Show `now`; `before` is what was shown of it, if anything (boxed: a summary is large).
    Changed {
        now: Box<Summary>,
        before: Option<Box<Summary>>,
    },
    /// A watched execution disappeared before it finished.
    Deleted(Key),
}

/// The state of a watch.
#[derive(Debug)]
pub struct Tracker {
    /// Only these names (empty: every execution the watch sees).
    names: BTreeSet<String>,
    /// The latest summary of each watched execution. One that finished and then disappeared stays, with its
    /// outcome.
    pub current: BTreeMap<Key, Summary>,
    /// The executions listed since `Init`, while a relist is under way.
    relisted: Option<BTreeSet<Key>>,
    /// Watched executions that disappeared before they finished.
    pub deleted: usize,
}

impl Tracker {
    /// A watch of `names` (or of everything it sees, when empty), starting from the executions in `current`.
    pub fn new(names: BTreeSet<String>, current: BTreeMap<Key, Summary>) -> Tracker {
        Tracker {
            names,
            current,
            relisted: None,
            deleted: 0,
        }
    }

    /// Whether every watched execution has finished (or disappeared).
    pub fn all_done(&self) -> bool {
        self.current.values().all(Summary::is_terminal)
    }

    /// Takes in one event, seen at `at`.
    pub fn on_event(&mut self, event: Event<CrewExecution>, at: Timestamp) -> Vec<Update> {
        match event {
            Event::Init => {
                self.relisted = Some(BTreeSet::new());
                Vec::new()
            }
            Event::InitApply(cx) | Event::Apply(cx) => {
                if !self.watches(&cx) {
                    return Vec::new();
                }
                let key = key_of(&cx);
                if let Some(seen) = &mut self.relisted {
                    seen.insert(key.clone());
                }
                let now = Summary::of(&cx, at);
                let before = self.current.insert(key, now.clone()).map(Box::new);
                vec![Update::Changed {
                    now: Box::new(now),
                    before,
                }]
            }
            Event::Delete(cx) => {
                if !self.watches(&cx) {
                    return Vec::new();
                }
                self.gone(key_of(&cx)).into_iter().collect()
            }
            Event::InitDone => {
                let seen = self.relisted.take().unwrap_or_default();
                let missing: Vec<Key> = self
                    .current
                    .keys()
                    .filter(|key| !seen.contains(*key))
                    .cloned()
                    .collect();
                missing
                    .into_iter()
                    .filter_map(|key| self.gone(key))
                    .collect()
            }
        }
    }

    fn watches(&self, cx: &CrewExecution) -> bool {
        self.names.is_empty() || self.names.contains(&cx.name_any())
    }

    /// `key` no longer exists: one that had not finished counts as deleted; one that had keeps its outcome.
    fn gone(&mut self, key: Key) -> Option<Update> {
        if self.current.get(&key)?.is_terminal() {
            return None;
        }
        self.current.remove(&key);
        self.deleted += 1;
        Some(Update::Deleted(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::watch::tally;
    use crew_api::{CrewExecutionSpec, CrewExecutionStatus, Phase};

    fn at() -> Timestamp {
        "2026-11-29T12:00:00Z".parse().unwrap()
    }

    fn execution(name: &str, phase: Phase) -> CrewExecution {
        let mut cx = CrewExecution::new(name, CrewExecutionSpec::default());
        cx.metadata.namespace = Some("ns".into());
        cx.status = Some(CrewExecutionStatus {
            phase: Some(phase),
            ..Default::default()
        });
        cx
    }

    fn watching(names: &[&str], running: &[&str]) -> Tracker {
        let current = running
            .iter()
            .map(|n| {
                let cx = execution(n, Phase::Running);
                (key_of(&cx), Summary::of(&cx, at()))
            })
            .collect();
        Tracker::new(names.iter().map(|n| n.to_string()).collect(), current)
    }

    #[test]
    fn a_watched_execution_missing_from_a_relist_was_deleted() {
        let mut tracker = watching(&["a"], &["a"]);
        let mut updates = Vec::new();
        for event in [
            Event::Init,
            Event::InitApply(execution("other", Phase::Running)),
            Event::InitDone,
        ] {
            updates.extend(tracker.on_event(event, at()));
        }
        assert_eq!(updates, [Update::Deleted("ns/a".into())]);
        assert_eq!(tracker.deleted, 1);
        assert!(tracker.all_done());
        let finished: Vec<Summary> = tracker.current.values().cloned().collect();
        assert_eq!(tally(&finished, tracker.deleted), "0 succeeded, 1 deleted");
    }

    #[test]
    fn a_relist_that_holds_the_execution_changes_nothing_but_its_summary() {
        let mut tracker = watching(&[], &["a", "b"]);
        tracker.on_event(Event::Init, at());
        tracker.on_event(Event::InitApply(execution("a", Phase::Running)), at());
        let updates = tracker.on_event(Event::InitApply(execution("b", Phase::Succeeded)), at());
        assert!(matches!(
            &updates[..],
            [Update::Changed {
                before: Some(_),
                ..
            }]
        ));
        // A new one matching the selector joins the watch.
        tracker.on_event(Event::InitApply(execution("c", Phase::Running)), at());
        assert_eq!(tracker.on_event(Event::InitDone, at()), []);
        assert_eq!(tracker.deleted, 0);
        assert_eq!(tracker.current.len(), 3);
        assert!(!tracker.all_done());
        // Outside a relist, an Apply of another key is not taken for a relisted one.
        tracker.on_event(Event::Apply(execution("a", Phase::Failed)), at());
        tracker.on_event(Event::Apply(execution("c", Phase::Succeeded)), at());
        assert!(tracker.all_done());
    }

    #[test]
    fn a_delete_counts_only_what_had_not_finished() {
        let mut tracker = watching(&["a", "b"], &["a", "b"]);
        tracker.on_event(Event::Apply(execution("a", Phase::Failed)), at());
        // Finished, then deleted: its outcome stands.
        assert_eq!(
            tracker.on_event(Event::Delete(execution("a", Phase::Failed)), at()),
            []
        );
        assert_eq!(
            tracker.on_event(Event::Delete(execution("b", Phase::Running)), at()),
            [Update::Deleted("ns/b".into())]
        );
        // Unwatched names are ignored.
        assert_eq!(
            tracker.on_event(Event::Delete(execution("z", Phase::Running)), at()),
            []
        );
        let finished: Vec<Summary> = tracker.current.values().cloned().collect();
        assert_eq!(
            tally(&finished, tracker.deleted),
            "0 succeeded, 1 failed, 1 deleted"
        );
        assert!(tracker.all_done());
    }
}
