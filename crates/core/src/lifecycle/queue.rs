//! Admission to a queue: who may take one of `maxRunning` slots, in a pure, total order.
//!
//! Order: higher `spec.priority` first, then first come first served by creation time, then by name. The state is
//! derived from the executions themselves (never kept in an in-memory semaphore), so a restart or a second replica
//! computes the same answer.
//!
//! [`admit`] and [`next_admitted`] state the rules over a list of every member; they are the specification the
//! operator's index, [`super::queue_book::QueueBook`], is property-tested against (it answers the same in
//! O(log N) instead of a pass over the queue).

use crate::lifecycle::Admission;
use crew_api::{CrewExecutionSpec, Phase};
use jiff::Timestamp;
use std::cmp::Ordering;

/// One execution as the queue sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The execution's identity across everything the queue counts: `namespace/name` (the operator-wide
    /// `--max-running` limit counts executions of every namespace, where names repeat).
    pub key: String,
    /// `spec.priority`.
    pub priority: i32,
    /// `metadata.creationTimestamp`.
    pub created: Timestamp,
    /// Holds a slot: phase `Running`.
    pub running: bool,
    /// Waits for a slot: not running, not finished, not suspended, not cancelled.
    pub waiting: bool,
}

impl Member {
    /// The queue's view of an execution with `spec` in `phase`.
    pub fn new(key: &str, spec: &CrewExecutionSpec, phase: Phase, created: Timestamp) -> Member {
        let running = phase == Phase::Running;
        Member {
            key: key.to_string(),
            priority: spec.priority,
            created,
            running,
            waiting: !running && !phase.is_terminal() && !spec.suspend && !spec.cancel,
        }
    }
}

/// A member's key: `namespace/name` (names repeat across namespaces, and the operator-wide limit counts them all).
pub fn member_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// Admission order between two waiting members.
pub fn admission_order(a: &Member, b: &Member) -> Ordering {
    b.priority
        .cmp(&a.priority)
        .then(a.created.cmp(&b.created))
        .then_with(|| a.key.cmp(&b.key))
}

/// The verdict for `who` (a [`Member::key`]) in a queue named `queue` holding `members`, with at most `max_running` running
/// (`None`: unlimited). A running member keeps its slot; a waiting one is admitted when its place in the admission
/// order is within the free slots.
pub fn admit(members: &[Member], who: &str, queue: &str, max_running: Option<u32>) -> Admission {
    let Some(max) = max_running else {
        return Admission::Admitted;
    };
    let Some(me) = members.iter().find(|m| m.key == who) else {
        return Admission::Admitted;
    };
    if me.running {
        return Admission::Admitted;
    }
    let running = members.iter().filter(|m| m.running).count() as u64;
    let free = u64::from(max).saturating_sub(running);
    let ahead = members
        .iter()
        .filter(|m| m.waiting && m.key != who && admission_order(m, me) == Ordering::Less)
        .count() as u64;
    if ahead < free {
        Admission::Admitted
    } else {
        Admission::Wait {
            queue: queue.to_string(),
            position: (ahead + 1).saturating_sub(free) as u32,
        }
    }
}

/// The keys of the waiting members that [`admit`] admits now: the first free-slot-many in admission order. A slot
/// that frees needs a reconcile of these only, not of every waiting member (each of which would compute its
/// admission over the whole queue: quadratic work for a long queue).
pub fn next_admitted(members: &[Member], max_running: u32) -> Vec<&str> {
    let running = members.iter().filter(|m| m.running).count();
    let free = (max_running as usize).saturating_sub(running);
    if free == 0 {
        return Vec::new();
    }
    let mut waiting: Vec<&Member> = members.iter().filter(|m| m.waiting).collect();
    if waiting.len() > free {
        waiting.select_nth_unstable_by(free - 1, |a, b| admission_order(a, b));
        waiting.truncate(free);
    }
    waiting.sort_by(|a, b| admission_order(a, b));
    waiting.into_iter().map(|m| m.key.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn member(name: &str, priority: i32, created: i64, running: bool) -> Member {
        Member {
            key: name.into(),
            priority,
            created: Timestamp::from_second(created).unwrap(),
            running,
            waiting: !running,
        }
    }

    fn admitted(members: &[Member], max: u32) -> Vec<String> {
        members
            .iter()
            .filter(|m| !m.running && admit(members, &m.key, "q", Some(max)) == Admission::Admitted)
            .map(|m| m.key.clone())
            .collect()
    }

    /// The operator-wide limit counts executions of every namespace: two that share a name are two members, so
    /// one running never admits the other (review finding 6).
    #[test]
    fn executions_sharing_a_name_in_two_namespaces_are_two_members() {
        let members = [
            member("team-a/nightly", 0, 0, true),
            member("team-b/nightly", 0, 5, false),
            member("team-b/other", 0, 1, false),
        ];
        assert_eq!(
            admit(&members, "team-b/nightly", "*", Some(1)),
            Admission::Wait {
                queue: "*".into(),
                position: 2
            }
        );
        assert_eq!(
            admit(&members, "team-b/other", "*", Some(1)),
            Admission::Wait {
                queue: "*".into(),
                position: 1
            }
        );
        assert_eq!(
            admit(&members, "team-a/nightly", "*", Some(1)),
            Admission::Admitted
        );
    }

    #[test]
    fn higher_priority_then_older_then_name() {
        let mut members = [
            member("c", 0, 1, false),
            member("b", 5, 3, false),
            member("a", 5, 2, false),
            member("d", 0, 1, false),
        ];
        members.sort_by(admission_order);
        let names: Vec<_> = members.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
    }

    #[test]
    fn admits_only_into_free_slots() {
        let members = vec![
            member("run", 0, 0, true),
            member("low", 0, 1, false),
            member("high", 9, 5, false),
            member("mid", 3, 2, false),
        ];
        assert_eq!(admitted(&members, 2), ["high"]);
        assert_eq!(admitted(&members, 3), ["high", "mid"]);
        assert_eq!(admitted(&members, 1), Vec::<String>::new());
        assert_eq!(
            admit(&members, "run", "q", Some(1)),
            Admission::Admitted,
            "a running member keeps its slot"
        );
        assert_eq!(
            admit(&members, "low", "q", Some(2)),
            Admission::Wait {
                queue: "q".into(),
                position: 2
            }
        );
        assert_eq!(
            admit(&members, "low", "q", None),
            Admission::Admitted,
            "no limit"
        );
    }

    #[test]
    fn paused_and_finished_members_take_no_slot_and_do_not_wait() {
        let spec = CrewExecutionSpec {
            suspend: true,
            ..Default::default()
        };
        let paused = Member::new("p", &spec, Phase::Paused, Timestamp::UNIX_EPOCH);
        assert!(!paused.running && !paused.waiting);
        let done = Member::new(
            "d",
            &CrewExecutionSpec::default(),
            Phase::Succeeded,
            Timestamp::UNIX_EPOCH,
        );
        assert!(!done.running && !done.waiting);
        let resumed = Member::new(
            "r",
            &CrewExecutionSpec::default(),
            Phase::Paused,
            Timestamp::UNIX_EPOCH,
        );
        assert!(resumed.waiting, "a resumed execution queues again");
    }

    #[test]
    fn next_admitted_picks_the_head_of_the_queue() {
        let members = [
            member("old", 0, 1, false),
            member("new", 0, 5, false),
            member("urgent", 9, 9, false),
            member("busy", 0, 0, true),
        ];
        assert_eq!(next_admitted(&members, 3), ["urgent", "old"]);
        assert_eq!(next_admitted(&members, 1), Vec::<&str>::new());
    }

    proptest! {
        #[test]
        fn never_more_running_than_the_limit_and_best_first(
            specs in proptest::collection::vec((-3i32..3, 0i64..20, any::<bool>()), 0..30),
            max in 1u32..6,
        ) {
            let members: Vec<Member> = specs.iter().enumerate().map(|(i, (p, c, r))| member(&format!("e{i:02}"), *p, *c, *r)).collect();
            let running = members.iter().filter(|m| m.running).count();
            let newly = admitted(&members, max);
            if running < max as usize {
                prop_assert!(running + newly.len() <= max as usize);
            } else {
                prop_assert!(newly.is_empty());
            }
            // Everyone admitted precedes everyone left waiting.
            let mut waiting: Vec<&Member> = members.iter().filter(|m| m.waiting).collect();
            waiting.sort_by(|a, b| admission_order(a, b));
            let first: std::collections::BTreeSet<&str> = waiting.iter().take(newly.len()).map(|m| m.key.as_str()).collect();
            let chosen: std::collections::BTreeSet<&str> = newly.iter().map(String::as_str).collect();
            prop_assert_eq!(first, chosen.clone());
            // Waking only `next_admitted` reaches exactly the members admit() admits.
            let woken: std::collections::BTreeSet<&str> = next_admitted(&members, max).into_iter().collect();
            prop_assert_eq!(woken, chosen);
        }
    }
}
