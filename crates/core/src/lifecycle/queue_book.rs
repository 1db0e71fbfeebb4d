//! The queue book: every queue's members, kept up to date from the watch events, with the waiting ones in
//! admission order and the count of slots held.
//!
//! [`super::queue::admit`] answers from a list of every member; building that list meant a pass over every cached
//! execution per admission and per freed slot (O(executions) each, so O(N²) to work through a queue of N). The book
//! answers the same questions in O(log N + free slots): an admission looks up its member, counts the slots held and
//! walks the waiting set up to its own place. Its answers equal `admit` and `next_admitted` over the same members
//! (property-tested below), so the order stays total and restart-safe: the book is rebuilt from the executions
//! themselves on every (re)list, never carried across a restart.
//!
//! Besides the phase a member's status shows, two facts make a waiting member hold a slot: a running Job it owns
//! (its Running status write was lost after the Job create, review finding 8), and an admission not yet visible as
//! Running in the cache (a reservation, like the Job controller's "expectations"). A reservation never expires while
//! the reconcile that made it runs, however slow (its API calls may queue for minutes under a burst): that
//! reconcile either takes the slot ([`QueueBook::commit`]) or releases it ([`QueueBook::release`]). A committed
//! reservation expires [`RESERVATION_TTL_SECONDS`] after the commit if the cache never shows the member holding
//! the slot.

use super::Admission;
use super::queue::Member;
use super::queue_stats::MemberFacts;
use super::timefmt::seconds_between;
use crew_api::Phase;
use jiff::Timestamp;
use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};

/// How long a committed admission holds its slot while the cache has not shown its execution Running.
pub const RESERVATION_TTL_SECONDS: i64 = 60;

/// One admission line: a CrewQueue, or the executions that name none (bounded by the operator-wide limit).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LineId {
    /// The CrewQueue `name` in `namespace`.
    Queue {
        /// The queue's (and its members') namespace.
        namespace: String,
        /// The queue's name (`spec.queue` of its members).
        name: String,
    },
    /// Executions without `spec.queue`, across namespaces.
    OperatorWide,
}

impl LineId {
    /// The line of an execution in `namespace` with `spec.queue` = `queue`.
    pub fn of(namespace: &str, queue: Option<&str>) -> LineId {
        match queue {
            Some(name) => LineId::Queue {
                namespace: namespace.to_string(),
                name: name.to_string(),
            },
            None => LineId::OperatorWide,
        }
    }
}

/// One execution as the book keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The execution's namespace.
    pub namespace: String,
    /// The execution's name.
    pub name: String,
    /// The execution's UID (a reservation or a Job of an earlier execution of the same name does not count).
    pub uid: String,
    /// The line it queues in.
    pub line: LineId,
    /// Its admission facts; `member.key` identifies it in the book.
    pub member: Member,
    /// Its statistics facts (for the queue's status).
    pub facts: MemberFacts,
}

/// A waiting member's place in admission order (field order = [`super::queue::admission_order`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    priority: Reverse<i32>,
    created: Timestamp,
    key: String,
}

impl Rank {
    fn of(member: &Member) -> Rank {
        Rank {
            priority: Reverse(member.priority),
            created: member.created,
            key: member.key.clone(),
        }
    }
}

struct Slot {
    entry: Entry,
    /// Holds a running slot (Running, or waiting with a running Job or a reservation).
    holds: bool,
    /// In the waiting set.
    queued: bool,
}

#[derive(Default)]
struct Line {
    slots: HashMap<String, Slot>,
    queued: BTreeSet<Rank>,
    held: usize,
}

/// What a queue's status and metrics need of one line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineSummary {
    /// Statistics facts of every member.
    pub facts: Vec<MemberFacts>,
    /// Slots held.
    pub held: usize,
    /// Members waiting for a slot.
    pub waiting: usize,
}

/// The index. Not thread-safe on its own: the shell keeps it behind one lock, so that an admission's verdict and
/// its reservation are one step.
#[derive(Default)]
pub struct QueueBook {
    lines: HashMap<LineId, Line>,
    line_of: HashMap<String, LineId>,
    /// UIDs of the executions that own a running Job.
    running_jobs: HashSet<String>,
    /// Execution UID → member key.
    key_of_uid: HashMap<String, String>,
    /// Member key → (UID, when its reconcile committed it; None while that reconcile runs).
    reserved: HashMap<String, (String, Option<Timestamp>)>,
    phases: HashMap<Phase, i64>,
    dirty: BTreeSet<LineId>,
    relist: Option<Vec<Entry>>,
}

impl QueueBook {
    /// Adds or updates a member (an execution seen by the watch). A member that no longer waits has spent its
    /// reservation.
    pub fn apply(&mut self, entry: Entry) {
        let key = entry.member.key.clone();
        if !entry.member.waiting {
            self.reserved.remove(&key);
        }
        if let Some(slot) = self
            .line_of
            .get(&key)
            .and_then(|line| self.lines.get(line))
            .and_then(|line| line.slots.get(&key))
            && slot.entry == entry
        {
            return;
        }
        self.take_out(&key);
        self.put(entry);
    }

    /// Removes a member (its execution was deleted), with its reservation.
    pub fn remove(&mut self, key: &str) {
        self.reserved.remove(key);
        self.take_out(key);
    }

    /// A relist starts: members arrive through [`QueueBook::relisted`] and replace the book at
    /// [`QueueBook::finish_relist`] (members deleted while the watch was down disappear then).
    pub fn begin_relist(&mut self) {
        self.relist = Some(Vec::new());
    }

    /// One member of a relist (applied at once when no relist is in progress).
    pub fn relisted(&mut self, entry: Entry) {
        match self.relist.as_mut() {
            Some(buffer) => buffer.push(entry),
            None => self.apply(entry),
        }
    }

    /// The relist is complete: the book holds exactly its members. Every line, old and new, is dirty.
    pub fn finish_relist(&mut self) {
        let Some(entries) = self.relist.take() else {
            return;
        };
        self.dirty.extend(self.lines.keys().cloned());
        self.lines.clear();
        self.line_of.clear();
        self.key_of_uid.clear();
        self.phases.clear();
        for entry in entries {
            self.apply(entry);
        }
        let line_of = &self.line_of;
        self.reserved.retain(|key, _| line_of.contains_key(key));
    }

    /// Whether the execution `owner_uid` owns a running Job (a Job watch event changed it).
    pub fn set_running_job(&mut self, owner_uid: &str, running: bool) {
        let changed = if running {
            self.running_jobs.insert(owner_uid.to_string())
        } else {
            self.running_jobs.remove(owner_uid)
        };
        if changed {
            self.refresh_uid(owner_uid);
        }
    }

    /// Replaces the set of executions (UIDs) that own a running Job (after the Jobs watch relisted).
    pub fn replace_running_jobs(&mut self, owner_uids: HashSet<String>) {
        let touched: Vec<String> = self
            .running_jobs
            .symmetric_difference(&owner_uids)
            .cloned()
            .collect();
        self.running_jobs = owner_uids;
        for uid in touched {
            self.refresh_uid(&uid);
        }
    }

    /// The verdict for the member `key` in `line` (reported as `label`) with at most `limit` holding slots
    /// (`None`: unlimited). An admitted waiting member is reserved its slot until the book sees it Running, it
    /// stops waiting, [`QueueBook::release`] or the reservation expires. A key the book does not hold is admitted
    /// (as [`super::queue::admit`] does).
    pub fn admit(
        &mut self,
        line: &LineId,
        key: &str,
        label: &str,
        limit: Option<u32>,
        now: Timestamp,
    ) -> Admission {
        let Some(limit) = limit else {
            return Admission::Admitted;
        };
        self.expire(now);
        let Some(queue) = self.lines.get(line) else {
            return Admission::Admitted;
        };
        let Some(slot) = queue.slots.get(key) else {
            return Admission::Admitted;
        };
        if slot.holds {
            return Admission::Admitted;
        }
        let free = (limit as usize).saturating_sub(queue.held);
        let rank = Rank::of(&slot.entry.member);
        if queue.queued.range(..rank.clone()).take(free).count() < free {
            if slot.entry.member.waiting {
                let uid = slot.entry.uid.clone();
                self.reserved.insert(key.to_string(), (uid, None));
                self.refresh(key);
            }
            return Admission::Admitted;
        }
        let ahead = queue.queued.range(..rank).count();
        Admission::Wait {
            queue: label.to_string(),
            position: (ahead + 1).saturating_sub(free) as u32,
        }
    }

    /// The reconcile that reserved `key`'s slot took it (launched, or wrote Running) at `now`: the reservation now
    /// holds until the cache shows the member holding the slot, or [`RESERVATION_TTL_SECONDS`] pass.
    pub fn commit(&mut self, key: &str, now: Timestamp) {
        if let Some((_, committed)) = self.reserved.get_mut(key) {
            committed.get_or_insert(now);
        }
    }

    /// Drops the reservation of `key` (its reconcile did not launch).
    pub fn release(&mut self, key: &str) {
        if self.reserved.remove(key).is_some() {
            self.refresh(key);
        }
    }

    /// The waiting members that [`QueueBook::admit`] admits now in `line` with `limit` slots, in admission order,
    /// as (namespace, name): a freed slot needs a reconcile of these only.
    pub fn next_admitted(
        &mut self,
        line: &LineId,
        limit: u32,
        now: Timestamp,
    ) -> Vec<(String, String)> {
        self.expire(now);
        let Some(queue) = self.lines.get(line) else {
            return Vec::new();
        };
        let free = (limit as usize).saturating_sub(queue.held);
        queue
            .queued
            .iter()
            .take(free)
            .filter_map(|rank| queue.slots.get(&rank.key))
            .map(|slot| (slot.entry.namespace.clone(), slot.entry.name.clone()))
            .collect()
    }

    /// The members of `line` that are Pending or Queued, as (namespace, name) (to reconcile when their queue
    /// appears or grows).
    pub fn pending_or_queued(&self, line: &LineId) -> Vec<(String, String)> {
        self.lines.get(line).map_or_else(Vec::new, |queue| {
            queue
                .slots
                .values()
                .filter(|slot| matches!(slot.entry.facts.phase, Phase::Pending | Phase::Queued))
                .map(|slot| (slot.entry.namespace.clone(), slot.entry.name.clone()))
                .collect()
        })
    }

    /// The place of the member `key` among those waiting for a slot in `line`: 1-based, in admission order.
    /// `None` when it does not wait (it holds a slot, is finished, suspended or cancelled) or the book does not
    /// hold it.
    pub fn place(&self, line: &LineId, key: &str) -> Option<usize> {
        let queue = self.lines.get(line)?;
        let slot = queue.slots.get(key).filter(|slot| slot.queued)?;
        Some(queue.queued.range(..Rank::of(&slot.entry.member)).count() + 1)
    }

    /// The members of `line` holding a slot (Running, or waiting with a running Job or a reservation), as
    /// (namespace, name), in no particular order.
    pub fn holders(&self, line: &LineId) -> Vec<(String, String)> {
        self.lines.get(line).map_or_else(Vec::new, |queue| {
            queue
                .slots
                .values()
                .filter(|slot| slot.holds)
                .map(|slot| (slot.entry.namespace.clone(), slot.entry.name.clone()))
                .collect()
        })
    }

    /// What `line`'s status and metrics need (an empty summary for a line without members).
    pub fn summary(&self, line: &LineId) -> LineSummary {
        self.lines
            .get(line)
            .map_or_else(LineSummary::default, |queue| LineSummary {
                facts: queue
                    .slots
                    .values()
                    .map(|s| s.entry.facts.clone())
                    .collect(),
                held: queue.held,
                waiting: queue.queued.len(),
            })
    }

    /// Number of members in each phase, across lines.
    pub fn phase_counts(&self) -> &HashMap<Phase, i64> {
        &self.phases
    }

    /// Marks `line` as changed (its queue object changed).
    pub fn mark_dirty(&mut self, line: LineId) {
        self.dirty.insert(line);
    }

    /// Marks every line with members as changed.
    pub fn mark_all_dirty(&mut self) {
        self.dirty.extend(self.lines.keys().cloned());
    }

    /// The lines whose members changed since the last call.
    pub fn take_dirty(&mut self) -> Vec<LineId> {
        std::mem::take(&mut self.dirty).into_iter().collect()
    }

    /// Drops reservations older than [`RESERVATION_TTL_SECONDS`].
    fn expire(&mut self, now: Timestamp) {
        let expired: Vec<String> = self
            .reserved
            .iter()
            .filter(|(_, (_, committed))| {
                committed.is_some_and(|at| seconds_between(at, now) >= RESERVATION_TTL_SECONDS)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in expired {
            self.release(&key);
        }
    }

    /// Whether a waiting `entry` holds a slot through a running Job or a reservation.
    fn holds_anyway(&self, entry: &Entry) -> bool {
        self.running_jobs.contains(&entry.uid)
            || self
                .reserved
                .get(&entry.member.key)
                .is_some_and(|(uid, _)| *uid == entry.uid)
    }

    /// Re-computes whether the member `key` holds a slot or waits (its running Jobs or reservation changed).
    fn refresh(&mut self, key: &str) {
        if let Some(entry) = self.take_out(key) {
            self.put(entry);
        }
    }

    fn refresh_uid(&mut self, uid: &str) {
        if let Some(key) = self.key_of_uid.get(uid).cloned() {
            self.refresh(&key);
        }
    }

    fn put(&mut self, entry: Entry) {
        let member = &entry.member;
        let holds = member.running || (member.waiting && self.holds_anyway(&entry));
        let queued = member.waiting && !holds;
        *self.phases.entry(entry.facts.phase).or_default() += 1;
        let key = member.key.clone();
        let uid = entry.uid.clone();
        let line_id = entry.line.clone();
        let line = self.lines.entry(line_id.clone()).or_default();
        if queued {
            line.queued.insert(Rank::of(member));
        }
        if holds {
            line.held += 1;
        }
        line.slots.insert(
            key.clone(),
            Slot {
                entry,
                holds,
                queued,
            },
        );
        self.key_of_uid.insert(uid, key.clone());
        self.line_of.insert(key, line_id.clone());
        self.dirty.insert(line_id);
    }

    fn take_out(&mut self, key: &str) -> Option<Entry> {
        let line_id = self.line_of.remove(key)?;
        let line = self.lines.get_mut(&line_id)?;
        let slot = line.slots.remove(key)?;
        self.key_of_uid.remove(&slot.entry.uid);
        if slot.queued {
            line.queued.remove(&Rank::of(&slot.entry.member));
        }
        if slot.holds {
            line.held -= 1;
        }
        if line.slots.is_empty() {
            self.lines.remove(&line_id);
        }
        if let Some(count) = self.phases.get_mut(&slot.entry.facts.phase) {
            *count -= 1;
            if *count == 0 {
                self.phases.remove(&slot.entry.facts.phase);
            }
        }
        self.dirty.insert(line_id);
        Some(slot.entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::queue::{admit, next_admitted};
    use proptest::prelude::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    fn entry(name: &str, line: &LineId, priority: i32, created: i64, phase: Phase) -> Entry {
        let running = phase == Phase::Running;
        let waiting = !running && !phase.is_terminal() && phase != Phase::Paused;
        Entry {
            namespace: "ns".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            line: line.clone(),
            member: Member {
                key: format!("ns/{name}"),
                priority,
                created: at(created),
                running,
                waiting,
            },
            facts: MemberFacts {
                phase,
                completed: None,
                duration_seconds: None,
                waiting_since: None,
            },
        }
    }

    fn queue(name: &str) -> LineId {
        LineId::of("ns", Some(name))
    }

    #[test]
    fn admits_the_head_reserves_its_slot_and_makes_the_next_wait() {
        let q = queue("q");
        let mut book = QueueBook::default();
        book.apply(entry("old", &q, 0, 1, Phase::Queued));
        book.apply(entry("new", &q, 0, 2, Phase::Queued));
        assert_eq!(
            book.admit(&q, "ns/new", "q", Some(1), at(10)),
            Admission::Wait {
                queue: "q".into(),
                position: 1
            }
        );
        assert_eq!(
            book.admit(&q, "ns/old", "q", Some(1), at(10)),
            Admission::Admitted
        );
        assert_eq!(
            book.admit(&q, "ns/old", "q", Some(1), at(11)),
            Admission::Admitted,
            "an admitted member keeps its slot"
        );
        assert_eq!(
            book.next_admitted(&q, 1, at(11)),
            Vec::<(String, String)>::new(),
            "the reservation holds the only slot"
        );
        assert!(matches!(
            book.admit(&q, "ns/new", "q", Some(1), at(11)),
            Admission::Wait { .. }
        ));
        // Its reconcile took the slot; the reservation expires when the member never showed up Running.
        book.commit("ns/old", at(10));
        assert_eq!(
            book.next_admitted(&q, 1, at(10 + RESERVATION_TTL_SECONDS)),
            [("ns".to_string(), "old".to_string())]
        );
    }

    /// Review finding 11: a reservation expired 60 s after the admission whatever its reconcile was doing, so a
    /// slow launch (API calls queued under a burst) plus a higher-priority arrival exceeded `maxRunning`.
    #[test]
    fn a_reservation_outlives_a_slow_reconcile() {
        let q = queue("q");
        let mut book = QueueBook::default();
        book.apply(entry("slow", &q, 0, 1, Phase::Queued));
        assert_eq!(
            book.admit(&q, "ns/slow", "q", Some(1), at(0)),
            Admission::Admitted
        );
        book.apply(entry("urgent", &q, 10, 2, Phase::Queued));
        let later = at(RESERVATION_TTL_SECONDS + 1);
        assert!(
            matches!(
                book.admit(&q, "ns/urgent", "q", Some(1), later),
                Admission::Wait { .. }
            ),
            "the slow reconcile still holds its reservation"
        );
        book.commit("ns/slow", later);
        assert!(matches!(
            book.admit(
                &q,
                "ns/urgent",
                "q",
                Some(1),
                at(2 * RESERVATION_TTL_SECONDS)
            ),
            Admission::Wait { .. }
        ));
        assert_eq!(
            book.admit(
                &q,
                "ns/urgent",
                "q",
                Some(1),
                at(2 * RESERVATION_TTL_SECONDS + 1)
            ),
            Admission::Admitted,
            "committed and never seen Running: expired"
        );
    }

    #[test]
    fn a_running_job_holds_a_slot_only_for_its_owner() {
        let q = queue("q");
        let mut book = QueueBook::default();
        book.apply(entry("a", &q, 0, 1, Phase::Queued));
        book.apply(entry("b", &q, 0, 2, Phase::Queued));
        book.set_running_job("uid-of-an-earlier-b", true);
        assert_eq!(book.summary(&q).held, 0);
        book.set_running_job("uid-b", true);
        assert_eq!(book.summary(&q).held, 1);
        assert_eq!(
            book.admit(&q, "ns/a", "q", Some(1), at(0)),
            Admission::Wait {
                queue: "q".into(),
                position: 1
            },
            "b's Job runs although its status says Queued"
        );
        book.set_running_job("uid-b", false);
        assert_eq!(
            book.admit(&q, "ns/a", "q", Some(1), at(0)),
            Admission::Admitted
        );
    }

    #[test]
    fn places_and_holders_count_running_jobs_and_reservations() {
        let q = queue("q");
        let mut book = QueueBook::default();
        book.apply(entry("running", &q, 0, 1, Phase::Running));
        book.apply(entry("lost-write", &q, 0, 2, Phase::Queued));
        book.apply(entry("first", &q, 5, 9, Phase::Queued));
        book.apply(entry("second", &q, 0, 3, Phase::Pending));
        book.apply(entry("done", &q, 0, 0, Phase::Succeeded));
        book.set_running_job("uid-lost-write", true);
        let mut holders = book.holders(&q);
        holders.sort();
        assert_eq!(
            holders,
            [
                ("ns".to_string(), "lost-write".to_string()),
                ("ns".to_string(), "running".to_string())
            ]
        );
        assert_eq!(book.place(&q, "ns/first"), Some(1), "higher priority first");
        assert_eq!(book.place(&q, "ns/second"), Some(2));
        for holds_or_done in ["ns/running", "ns/lost-write", "ns/done", "ns/unknown"] {
            assert_eq!(book.place(&q, holds_or_done), None, "{holds_or_done}");
        }
        assert_eq!(
            book.admit(&q, "ns/first", "q", Some(3), at(0)),
            Admission::Admitted
        );
        assert_eq!(book.place(&q, "ns/first"), None, "reserved");
        assert_eq!(book.place(&q, "ns/second"), Some(1));
        assert_eq!(book.holders(&q).len(), 3);
    }

    #[test]
    fn a_relist_drops_members_deleted_meanwhile_and_their_reservations() {
        let q = queue("q");
        let mut book = QueueBook::default();
        book.apply(entry("gone", &q, 0, 1, Phase::Queued));
        book.apply(entry("kept", &q, 0, 2, Phase::Queued));
        assert_eq!(
            book.admit(&q, "ns/gone", "q", Some(1), at(0)),
            Admission::Admitted
        );
        book.take_dirty();
        book.begin_relist();
        book.relisted(entry("kept", &q, 0, 2, Phase::Queued));
        assert_eq!(book.summary(&q).facts.len(), 2, "unchanged until done");
        book.finish_relist();
        assert_eq!(book.summary(&q).facts.len(), 1);
        assert!(book.reserved.is_empty());
        assert_eq!(book.take_dirty(), std::slice::from_ref(&q));
        assert_eq!(
            book.admit(&q, "ns/kept", "q", Some(1), at(1)),
            Admission::Admitted
        );
    }

    #[test]
    fn moving_to_another_queue_and_deleting_keep_counts_right() {
        let (a, b) = (queue("a"), queue("b"));
        let mut book = QueueBook::default();
        book.apply(entry("x", &a, 0, 1, Phase::Running));
        book.apply(entry("x", &b, 0, 1, Phase::Running));
        assert_eq!(book.summary(&a), LineSummary::default());
        assert_eq!(book.summary(&b).held, 1);
        assert_eq!(book.phase_counts().get(&Phase::Running), Some(&1));
        book.remove("ns/x");
        assert_eq!(book.summary(&b), LineSummary::default());
        assert!(book.phase_counts().is_empty());
        assert!(book.lines.is_empty() && book.line_of.is_empty() && book.key_of_uid.is_empty());
    }

    #[test]
    fn an_unchanged_member_does_not_dirty_its_line() {
        let q = queue("q");
        let mut book = QueueBook::default();
        book.apply(entry("x", &q, 0, 1, Phase::Queued));
        assert_eq!(book.take_dirty(), std::slice::from_ref(&q));
        book.apply(entry("x", &q, 0, 1, Phase::Queued));
        assert!(book.take_dirty().is_empty());
    }

    #[derive(Clone, Debug)]
    enum Op {
        Apply {
            name: u8,
            line: u8,
            priority: i32,
            created: i64,
            phase: u8,
        },
        Remove(u8),
        RunningJob(u8, bool),
        Admit(u8, u8),
        Release(u8),
        Commit(u8),
        Tick(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..12, 0u8..2, -2i32..2, 0i64..5, 0u8..7).prop_map(|(name, line, priority, created, phase)| Op::Apply { name, line, priority, created, phase }),
            1 => (0u8..12).prop_map(Op::Remove),
            1 => (0u8..12, any::<bool>()).prop_map(|(n, on)| Op::RunningJob(n, on)),
            3 => (0u8..12, 1u8..4).prop_map(|(n, limit)| Op::Admit(n, limit)),
            1 => (0u8..12).prop_map(Op::Release),
            1 => (0u8..12).prop_map(Op::Commit),
            1 => (0i64..40).prop_map(Op::Tick),
        ]
    }

    /// The model: a list of entries plus overrides, judged by the pure `admit` / `next_admitted` over members
    /// built the way the shell built them before the book (one pass over everything per question).
    #[derive(Default)]
    struct Model {
        entries: HashMap<String, Entry>,
        running_jobs: HashMap<String, bool>,
        reserved: HashMap<String, Option<Timestamp>>,
    }

    impl Model {
        fn members(&mut self, line: &LineId, now: Timestamp) -> Vec<Member> {
            let mut out = Vec::new();
            let mut spent = Vec::new();
            for entry in self.entries.values().filter(|e| &e.line == line) {
                let mut member = entry.member.clone();
                let key = &member.key;
                let reserved = match self.reserved.get(key) {
                    Some(committed)
                        if member.waiting
                            && committed.is_none_or(|t| {
                                seconds_between(t, now) < RESERVATION_TTL_SECONDS
                            }) =>
                    {
                        true
                    }
                    Some(_) => {
                        spent.push(key.clone());
                        false
                    }
                    None => false,
                };
                if member.waiting && (reserved || self.running_jobs.get(key) == Some(&true)) {
                    member.running = true;
                    member.waiting = false;
                }
                out.push(member);
            }
            for key in spent {
                self.reserved.remove(&key);
            }
            out
        }
    }

    proptest! {
        /// The book answers exactly what the pure functions answer over every member.
        #[test]
        fn the_book_agrees_with_admit_over_every_member(ops in proptest::collection::vec(op(), 1..80)) {
            let lines = [queue("a"), queue("b")];
            let mut book = QueueBook::default();
            let mut model = Model::default();
            let mut now = at(1_000);
            for op in ops {
                match op {
                    Op::Apply { name, line, priority, created, phase } => {
                        let e = entry(&format!("e{name}"), &lines[line as usize], priority, created, Phase::ALL[phase as usize]);
                        if !e.member.waiting { model.reserved.remove(&e.member.key); }
                        model.entries.insert(e.member.key.clone(), e.clone());
                        book.apply(e);
                    }
                    Op::Remove(name) => {
                        let key = format!("ns/e{name}");
                        model.entries.remove(&key);
                        model.reserved.remove(&key);
                        book.remove(&key);
                    }
                    Op::RunningJob(name, on) => {
                        let key = format!("ns/e{name}");
                        model.running_jobs.insert(key.clone(), on);
                        book.set_running_job(&format!("uid-e{name}"), on);
                    }
                    Op::Admit(name, limit) => {
                        let key = format!("ns/e{name}");
                        let Some(line) = model.entries.get(&key).map(|e| e.line.clone()) else { continue };
                        let members = model.members(&line, now);
                        let expected = admit(&members, &key, "q", Some(u32::from(limit)));
                        let heads: Vec<String> = next_admitted(&members, u32::from(limit)).into_iter().map(|k| k.trim_start_matches("ns/").to_string()).collect();
                        let got_heads: Vec<String> = book.next_admitted(&line, u32::from(limit), now).into_iter().map(|(_, n)| n).collect();
                        prop_assert_eq!(got_heads, heads);
                        prop_assert_eq!(book.admit(&line, &key, "q", Some(u32::from(limit)), now), expected.clone());
                        let me = members.iter().find(|m| m.key == key);
                        if expected == Admission::Admitted && me.is_some_and(|m| m.waiting) {
                            model.reserved.insert(key, None);
                        }
                    }
                    Op::Release(name) => {
                        let key = format!("ns/e{name}");
                        model.reserved.remove(&key);
                        book.release(&key);
                    }
                    Op::Commit(name) => {
                        let key = format!("ns/e{name}");
                        if let Some(committed) = model.reserved.get_mut(&key) {
                            committed.get_or_insert(now);
                        }
                        book.commit(&key, now);
                    }
                    Op::Tick(seconds) => now += jiff::SignedDuration::from_secs(seconds),
                }
            }
            for line in &lines {
                let members = model.members(line, now);
                book.expire(now);
                let summary = book.summary(line);
                prop_assert_eq!(summary.held, members.iter().filter(|m| m.running).count());
                prop_assert_eq!(summary.waiting, members.iter().filter(|m| m.waiting).count());
            }
        }
    }
}
