//! One sink's deliveries, as data: per execution a lane of notifications not yet acknowledged, oldest first, so that
//! each execution's events reach the receiver in order while the lanes of different executions go on in parallel.
//! A lane's head is retried with exponential backoff and jitter; after the sink's retry limit it is dropped
//! (counted, never silently) and the lane goes on.
//!
//! The delivery position ([`Outbox::watermark`]) is the time before which every transition the operator has written
//! was delivered or dropped: the oldest notification still waiting, or the oldest status write still on its way
//! (its entries are not in the outbox yet), else now. It is what the sink's status records, so that after a restart
//! the operator delivers again from there (at least once; receivers drop duplicates by id) without writing per
//! delivery.

use super::events::Notification;
use crew_api::sink::{SinkEventType, SinkRetry};
use jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeMap, HashSet, VecDeque};

/// A lane: one execution's notifications for one sink.
#[derive(Debug, Default)]
struct Lane {
    queue: VecDeque<Notification>,
    /// Ids offered to this lane so far (queued, delivered or dropped): an updated status offers its whole history
    /// again, and only what is new joins the lane.
    seen: HashSet<String>,
    /// Failed attempts of the head.
    failures: u32,
    /// Not before this time (backoff).
    next_try: Option<Timestamp>,
    /// The head is being delivered.
    in_flight: bool,
    /// When the last progress notification joined (throttling).
    last_progress: Option<Timestamp>,
}

/// What became of a failed delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failed {
    /// Tried again at this time.
    RetryAt(Timestamp),
    /// The retry limit is spent: dropped (the lane goes on with its next notification).
    Dropped,
}

/// One sink's deliveries (see the module documentation).
#[derive(Debug, Default)]
pub struct Outbox {
    lanes: BTreeMap<String, Lane>,
    /// Notifications waiting, across lanes.
    pending: usize,
}

/// Notifications one sink may hold waiting; past it, new ones are dropped (counted) instead of queued, so a sink
/// whose receiver is down for long costs bounded memory.
pub const MAX_PENDING: usize = 50_000;

/// What an offer did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offered {
    /// Notifications that joined their lane.
    pub joined: usize,
    /// New notifications dropped because the outbox is full.
    pub dropped: usize,
}

/// Seconds before the `failures`-th retry under `retry`: `backoffSeconds` doubled per failure up to
/// `maxBackoffSeconds`, then up to a quarter less, by a jitter that `seed` (the lane's) spreads between lanes.
pub fn backoff_seconds(retry: &SinkRetry, failures: u32, seed: &str) -> i64 {
    let base = u64::from(retry.backoff_seconds.max(1))
        .checked_shl(failures.saturating_sub(1).min(30))
        .unwrap_or(u64::MAX)
        .min(u64::from(retry.max_backoff_seconds.max(1)));
    let jitter = crate::lifecycle::names::stable_hash(&format!("{seed}/{failures}"));
    let quarter = u64::from_str_radix(&jitter[..4], 16).unwrap_or(0) % 26;
    (base - base * quarter / 100).max(1) as i64
}

impl Outbox {
    /// Offers `uid`'s notifications (its whole history, or what is newer than the delivery position): those not
    /// offered before join its lane, in order; past [`MAX_PENDING`] they are dropped instead (and not offered
    /// again).
    pub fn offer(&mut self, uid: &str, notifications: Vec<Notification>) -> Offered {
        let lane = self.lanes.entry(uid.to_string()).or_default();
        let mut offered = Offered::default();
        for notification in notifications {
            if !lane.seen.insert(notification.id.clone()) {
                continue;
            }
            if self.pending >= MAX_PENDING {
                offered.dropped += 1;
                continue;
            }
            lane.queue.push_back(notification);
            self.pending += 1;
            offered.joined += 1;
        }
        if lane.queue.is_empty() && lane.seen.is_empty() {
            self.lanes.remove(uid);
        }
        offered
    }

    /// Offers a progress notification of `uid`: it joins unless one joined less than `interval` ago (at `now`).
    pub fn offer_progress(
        &mut self,
        uid: &str,
        notification: Notification,
        interval: SignedDuration,
        now: Timestamp,
    ) -> bool {
        let full = self.pending >= MAX_PENDING;
        let lane = self.lanes.entry(uid.to_string()).or_default();
        if full
            || lane.last_progress.is_some_and(|last| now < last + interval)
            || lane.seen.contains(&notification.id)
        {
            return false;
        }
        lane.last_progress = Some(now);
        lane.seen.insert(notification.id.clone());
        lane.queue.push_back(notification);
        self.pending += 1;
        true
    }

    /// The heads of the lanes that may be delivered at `now` (not in flight, backoff over), at most `limit`;
    /// they are in flight until [`Outbox::delivered`] or [`Outbox::failed`].
    pub fn due(&mut self, now: Timestamp, limit: usize) -> Vec<(String, Notification)> {
        let mut out = Vec::new();
        for (uid, lane) in &mut self.lanes {
            if out.len() >= limit {
                break;
            }
            if lane.in_flight || lane.next_try.is_some_and(|at| now < at) {
                continue;
            }
            if let Some(head) = lane.queue.front() {
                lane.in_flight = true;
                out.push((uid.clone(), head.clone()));
            }
        }
        out
    }

    /// The earliest time a lane's head may be tried again (None: none waits on a backoff).
    pub fn next_retry(&self) -> Option<Timestamp> {
        self.lanes
            .values()
            .filter(|lane| !lane.in_flight && !lane.queue.is_empty())
            .filter_map(|lane| lane.next_try)
            .min()
    }

    /// The head of `uid`'s lane (`id`) was acknowledged.
    pub fn delivered(&mut self, uid: &str, id: &str) {
        if let Some(lane) = self.lanes.get_mut(uid) {
            if lane.queue.front().is_some_and(|n| n.id == id) {
                lane.queue.pop_front();
                self.pending -= 1;
            }
            lane.in_flight = false;
            lane.failures = 0;
            lane.next_try = None;
        }
    }

    /// The head of `uid`'s lane (`id`) failed at `now`: retried later, or dropped once `retry.limit` retries are
    /// spent.
    pub fn failed(&mut self, uid: &str, id: &str, retry: &SinkRetry, now: Timestamp) -> Failed {
        let Some(lane) = self.lanes.get_mut(uid) else {
            return Failed::Dropped;
        };
        lane.in_flight = false;
        if lane.queue.front().is_none_or(|n| n.id != id) {
            return Failed::Dropped;
        }
        lane.failures += 1;
        if lane.failures > retry.limit {
            lane.queue.pop_front();
            self.pending -= 1;
            lane.failures = 0;
            lane.next_try = None;
            return Failed::Dropped;
        }
        let at = now + SignedDuration::from_secs(backoff_seconds(retry, lane.failures, uid));
        lane.next_try = Some(at);
        Failed::RetryAt(at)
    }

    /// Forgets `uid` (its execution is gone).
    pub fn forget(&mut self, uid: &str) {
        if let Some(lane) = self.lanes.remove(uid) {
            self.pending -= lane.queue.len();
        }
    }

    /// Keeps only the lanes of `live` executions (after a relist) and of those with notifications waiting.
    pub fn retain(&mut self, live: &HashSet<String>) {
        self.lanes
            .retain(|uid, lane| live.contains(uid) || !lane.queue.is_empty());
    }

    /// Whether nothing of `uid` waits (its transitions reached the receiver or were dropped).
    pub fn is_clear(&self, uid: &str) -> bool {
        self.lanes.get(uid).is_none_or(|lane| {
            lane.queue
                .iter()
                .all(|n| n.kind == SinkEventType::ExecutionProgress)
        })
    }

    /// Notifications waiting.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// The delivery position at `now` (see the module documentation); `writing`: the oldest transition time of the
    /// status writes on their way (not in the outbox yet). Progress notifications are not part of it (throttled,
    /// best effort).
    pub fn watermark(&self, writing: Option<Timestamp>, now: Timestamp) -> Timestamp {
        self.lanes
            .values()
            .flat_map(|lane| lane.queue.iter())
            .filter(|n| n.kind != SinkEventType::ExecutionProgress)
            .map(|n| n.time)
            .chain(writing)
            .chain(std::iter::once(now))
            .min()
            .unwrap_or(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::events::NotificationData;
    use proptest::prelude::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).unwrap()
    }

    fn note(id: &str, second: i64) -> Notification {
        Notification {
            id: id.into(),
            kind: SinkEventType::ExecutionStateChanged,
            time: at(second),
            data: NotificationData::default(),
        }
    }

    fn retry(limit: u32) -> SinkRetry {
        SinkRetry {
            limit,
            backoff_seconds: 1,
            max_backoff_seconds: 8,
        }
    }

    #[test]
    fn a_lane_delivers_in_order_and_lanes_go_on_in_parallel() {
        let mut outbox = Outbox::default();
        assert_eq!(
            outbox.offer("a", vec![note("a1", 1), note("a2", 2)]).joined,
            2
        );
        assert_eq!(outbox.offer("b", vec![note("b1", 3)]).joined, 1);
        assert_eq!(
            outbox
                .offer("a", vec![note("a1", 1), note("a2", 2), note("a3", 4)])
                .joined,
            1,
            "only the new one"
        );
        let due: Vec<_> = outbox
            .due(at(10), 10)
            .into_iter()
            .map(|(_, n)| n.id)
            .collect();
        assert_eq!(due, ["a1", "b1"], "one head per lane");
        assert!(outbox.due(at(10), 10).is_empty(), "heads in flight");
        outbox.delivered("a", "a1");
        let due: Vec<_> = outbox
            .due(at(10), 10)
            .into_iter()
            .map(|(_, n)| n.id)
            .collect();
        assert_eq!(due, ["a2"]);
    }

    #[test]
    fn a_failing_head_backs_off_then_is_dropped_visibly_and_the_lane_goes_on() {
        let mut outbox = Outbox::default();
        outbox.offer("a", vec![note("a1", 1), note("a2", 2)]);
        let policy = retry(2);
        let mut now = at(0);
        let mut retries = Vec::new();
        loop {
            let due = outbox.due(now, 10);
            let (uid, head) = due.first().cloned().expect("a head");
            if head.id == "a2" {
                break;
            }
            match outbox.failed(&uid, &head.id, &policy, now) {
                Failed::RetryAt(when) => {
                    assert!(outbox.due(now, 10).is_empty(), "waits for its backoff");
                    retries.push(when.as_second() - now.as_second());
                    now = when;
                }
                Failed::Dropped => {}
            }
        }
        assert_eq!(retries.len(), 2, "the retry limit");
        assert!(retries[1] >= retries[0]);
        assert_eq!(outbox.pending(), 1);
    }

    #[test]
    fn a_full_outbox_drops_what_it_cannot_hold_and_says_so() {
        let mut outbox = Outbox::default();
        let many: Vec<_> = (0..MAX_PENDING + 3)
            .map(|i| note(&format!("n{i}"), 0))
            .collect();
        let offered = outbox.offer("a", many.clone());
        assert_eq!(
            offered,
            Offered {
                joined: MAX_PENDING,
                dropped: 3
            }
        );
        assert_eq!(outbox.pending(), MAX_PENDING);
        assert_eq!(
            outbox.offer("a", many).dropped,
            0,
            "a dropped one is not offered again"
        );
        outbox.due(at(0), 1);
        outbox.delivered("a", "n0");
        assert_eq!(
            outbox.offer("b", vec![note("b1", 0)]).joined,
            1,
            "room again"
        );
    }

    #[test]
    fn backoff_doubles_to_its_cap_with_at_most_a_quarter_of_jitter() {
        let policy = SinkRetry {
            limit: 10,
            backoff_seconds: 2,
            max_backoff_seconds: 60,
        };
        for (failures, full) in [(1, 2), (2, 4), (3, 8), (5, 32), (6, 60), (20, 60)] {
            for seed in ["a", "b", "c"] {
                let wait = backoff_seconds(&policy, failures, seed);
                assert!(
                    wait <= full && wait >= full * 3 / 4,
                    "{failures}: {wait} of {full}"
                );
            }
        }
    }

    #[test]
    fn the_position_is_the_oldest_waiting_transition_or_write() {
        let mut outbox = Outbox::default();
        assert_eq!(outbox.watermark(None, at(100)), at(100));
        assert_eq!(outbox.watermark(Some(at(40)), at(100)), at(40));
        outbox.offer("a", vec![note("a1", 10), note("a2", 20)]);
        assert_eq!(outbox.watermark(Some(at(40)), at(100)), at(10));
        outbox.due(at(100), 10);
        outbox.delivered("a", "a1");
        assert_eq!(outbox.watermark(None, at(100)), at(20));
        assert!(!outbox.is_clear("a"));
        outbox.due(at(100), 10);
        outbox.delivered("a", "a2");
        assert!(outbox.is_clear("a"));
        assert_eq!(outbox.watermark(None, at(100)), at(100));
    }

    #[test]
    fn progress_is_throttled_per_execution_and_outside_the_position() {
        let mut outbox = Outbox::default();
        let progress = |id: &str, second: i64, outbox: &mut Outbox| {
            let n = Notification {
                kind: SinkEventType::ExecutionProgress,
                ..note(id, second)
            };
            outbox.offer_progress("a", n, SignedDuration::from_secs(10), at(second))
        };
        assert!(progress("p1", 0, &mut outbox));
        assert!(!progress("p2", 5, &mut outbox));
        assert!(progress("p3", 10, &mut outbox));
        assert_eq!(outbox.pending(), 2);
        assert_eq!(outbox.watermark(None, at(50)), at(50));
        assert!(outbox.is_clear("a"), "progress holds nothing back");
    }

    proptest! {
        /// Whatever succeeds or fails when, every lane delivers its notifications in order, each at most once
        /// delivered, and every notification ends delivered or dropped.
        #[test]
        fn every_notification_ends_in_order(
            lanes in proptest::collection::vec(1usize..6, 1..5),
            outcomes in proptest::collection::vec(any::<bool>(), 0..200),
        ) {
            let mut outbox = Outbox::default();
            for (l, count) in lanes.iter().enumerate() {
                let notes = (0..*count).map(|i| note(&format!("{l}-{i}"), i as i64)).collect();
                outbox.offer(&format!("lane{l}"), notes);
            }
            let policy = retry(1);
            let mut now = at(0);
            let mut delivered: Vec<String> = Vec::new();
            let mut dropped: Vec<String> = Vec::new();
            let mut outcomes = outcomes.into_iter().chain(std::iter::repeat(true));
            for _ in 0..10_000 {
                if outbox.pending() == 0 {
                    break;
                }
                let due = outbox.due(now, 3);
                for (uid, head) in due {
                    if outcomes.next().unwrap_or(true) {
                        outbox.delivered(&uid, &head.id);
                        delivered.push(head.id);
                    } else if outbox.failed(&uid, &head.id, &policy, now) == Failed::Dropped {
                        dropped.push(head.id);
                    }
                }
                now += SignedDuration::from_secs(1);
            }
            prop_assert_eq!(outbox.pending(), 0);
            let total: usize = lanes.iter().sum();
            prop_assert_eq!(delivered.len() + dropped.len(), total);
            for (l, count) in lanes.iter().enumerate() {
                let order: Vec<usize> = delivered
                    .iter()
                    .chain(dropped.iter())
                    .filter_map(|id| id.strip_prefix(&format!("{l}-")).and_then(|i| i.parse().ok()))
                    .collect();
                let mut sorted_delivered: Vec<usize> = delivered
                    .iter()
                    .filter_map(|id| id.strip_prefix(&format!("{l}-")).and_then(|i| i.parse().ok()))
                    .collect();
                let in_order = sorted_delivered.windows(2).all(|w| w[0] < w[1]);
                prop_assert!(in_order, "lane {} delivered out of order: {:?}", l, sorted_delivered);
                sorted_delivered.sort();
                prop_assert_eq!(order.len(), *count);
            }
        }
    }
}
