//! The pure rules of leader election on a `coordination.k8s.io/v1` Lease (client-go's semantics): who may claim
//! the Lease, what record to write, and when a leader must stop. No client and no clock: every time is a parameter.
//!
//! Expiry is judged on the local monotonic clock, from the moment this replica saw the record last change, never by
//! comparing another node's `renewTime` with our wall clock, so clock skew between nodes cannot cause two leaders.
//! A leader stops (the process exits) once `renew_deadline` has passed since its last successful renewal; since
//! `renew_deadline < lease_duration`, it has stopped writing before any standby can consider the Lease expired.

use jiff::Timestamp;
use std::time::{Duration, Instant};

/// The parts of a Lease's spec that election reads and writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Who holds the Lease (None: released, anybody may claim it).
    pub holder: Option<String>,
    /// How long the holder's claim lasts without renewal, in seconds.
    pub duration_seconds: Option<i32>,
    /// When the current holder acquired the Lease.
    pub acquire_time: Option<Timestamp>,
    /// When the current holder last renewed it.
    pub renew_time: Option<Timestamp>,
    /// How many times the Lease changed hands.
    pub transitions: i32,
}

impl Record {
    /// The holder, treating an empty name as released.
    pub fn holder(&self) -> Option<&str> {
        self.holder.as_deref().filter(|h| !h.is_empty())
    }
}

/// What a replica should do on its next election round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// No Lease exists: create it, held by us.
    Create,
    /// We hold it: write a new renew time.
    Renew,
    /// It is released or expired: claim it (one more transition).
    TakeOver,
    /// Someone else holds a live claim: look again after `retry_in`.
    Wait {
        /// The current holder.
        holder: String,
        /// When to look again: the retry period, or sooner if the claim expires sooner.
        retry_in: Duration,
    },
}

/// Decides the next round for `me`. `unchanged_for` is how long (local monotonic time) the record has looked
/// exactly like this to us; `default_duration` applies when the Lease states no duration.
pub fn attempt(
    me: &str,
    record: Option<&Record>,
    unchanged_for: Duration,
    default_duration: Duration,
    retry: Duration,
) -> Attempt {
    let Some(record) = record else {
        return Attempt::Create;
    };
    let Some(holder) = record.holder() else {
        return Attempt::TakeOver;
    };
    if holder == me {
        return Attempt::Renew;
    }
    let duration = record
        .duration_seconds
        .filter(|s| *s > 0)
        .map(|s| Duration::from_secs(s.unsigned_abs().into()))
        .unwrap_or(default_duration);
    if unchanged_for >= duration {
        return Attempt::TakeOver;
    }
    Attempt::Wait {
        holder: holder.to_string(),
        retry_in: retry.min(duration - unchanged_for),
    }
}

/// The record `me` writes to create, renew or take over the Lease at `now`.
pub fn claim(me: &str, current: Option<&Record>, now: Timestamp, duration: Duration) -> Record {
    let duration_seconds = i32::try_from(duration.as_secs()).unwrap_or(i32::MAX).max(1);
    match current {
        Some(record) if record.holder() == Some(me) => Record {
            renew_time: Some(now),
            duration_seconds: Some(duration_seconds),
            ..record.clone()
        },
        _ => Record {
            holder: Some(me.to_string()),
            duration_seconds: Some(duration_seconds),
            acquire_time: Some(now),
            renew_time: Some(now),
            transitions: current.map_or(0, |r| r.transitions.saturating_add(1)),
        },
    }
}

/// The record a leader writes when it stops on purpose: no holder and a one-second duration, so a standby takes
/// over on its next round instead of waiting for the claim to expire.
pub fn released(current: &Record) -> Record {
    Record {
        holder: None,
        duration_seconds: Some(1),
        ..current.clone()
    }
}

/// Whether a leader whose last successful renewal began at `renewed_at` may still act at `now`.
pub fn still_leading(renewed_at: Instant, now: Instant, renew_deadline: Duration) -> bool {
    now.saturating_duration_since(renewed_at) < renew_deadline
}

/// Tracks since when the Lease record has looked the same to this replica (the local basis of expiry).
#[derive(Debug, Default)]
pub struct Observer {
    last: Option<(Option<Record>, Instant)>,
}

impl Observer {
    /// Notes the record seen at `now`; returns how long it has been unchanged.
    pub fn observe(&mut self, record: Option<&Record>, now: Instant) -> Duration {
        match &self.last {
            Some((seen, since)) if seen.as_ref() == record => now.saturating_duration_since(*since),
            _ => {
                self.last = Some((record.cloned(), now));
                Duration::ZERO
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(10);
    const R: Duration = Duration::from_secs(2);

    fn held_by(holder: &str) -> Record {
        Record {
            holder: Some(holder.into()),
            duration_seconds: Some(10),
            acquire_time: Some(Timestamp::UNIX_EPOCH),
            renew_time: Some(Timestamp::UNIX_EPOCH),
            transitions: 3,
        }
    }

    #[test]
    fn the_rounds_follow_client_go() {
        let other = held_by("b");
        let cases: Vec<(&str, Option<Record>, u64, Attempt)> = vec![
            ("no lease", None, 0, Attempt::Create),
            ("ours", Some(held_by("a")), 0, Attempt::Renew),
            (
                "ours, even if stale",
                Some(held_by("a")),
                60,
                Attempt::Renew,
            ),
            ("released", Some(released(&other)), 0, Attempt::TakeOver),
            (
                "empty holder",
                Some(Record {
                    holder: Some(String::new()),
                    ..other.clone()
                }),
                0,
                Attempt::TakeOver,
            ),
            (
                "live",
                Some(other.clone()),
                0,
                Attempt::Wait {
                    holder: "b".into(),
                    retry_in: R,
                },
            ),
            (
                "about to expire",
                Some(other.clone()),
                9,
                Attempt::Wait {
                    holder: "b".into(),
                    retry_in: Duration::from_secs(1),
                },
            ),
            ("expired", Some(other.clone()), 10, Attempt::TakeOver),
            (
                "no stated duration: ours applies",
                Some(Record {
                    duration_seconds: None,
                    ..other.clone()
                }),
                10,
                Attempt::TakeOver,
            ),
            (
                "long stated duration wins",
                Some(Record {
                    duration_seconds: Some(30),
                    ..other
                }),
                20,
                Attempt::Wait {
                    holder: "b".into(),
                    retry_in: R,
                },
            ),
        ];
        for (story, record, secs, want) in cases {
            let got = attempt("a", record.as_ref(), Duration::from_secs(secs), D, R);
            assert_eq!(got, want, "{story}");
        }
    }

    #[test]
    fn claims_keep_or_start_a_tenure() {
        let now = Timestamp::from_second(100).unwrap();
        let created = claim("a", None, now, D);
        assert_eq!(created.holder(), Some("a"));
        assert_eq!(created.transitions, 0);
        assert_eq!(created.acquire_time, Some(now));
        assert_eq!(created.duration_seconds, Some(10));

        let later = Timestamp::from_second(102).unwrap();
        let renewed = claim("a", Some(&created), later, D);
        assert_eq!(
            renewed.acquire_time,
            Some(now),
            "a renewal keeps the tenure"
        );
        assert_eq!(renewed.renew_time, Some(later));
        assert_eq!(renewed.transitions, 0);

        let taken = claim("b", Some(&renewed), later, D);
        assert_eq!(taken.holder(), Some("b"));
        assert_eq!(taken.acquire_time, Some(later));
        assert_eq!(taken.transitions, 1, "a change of hands is a transition");

        let after_release = claim("a", Some(&released(&taken)), later, D);
        assert_eq!(after_release.transitions, 2);
        assert_eq!(released(&taken).holder(), None);
        assert_eq!(released(&taken).transitions, 1);
    }

    #[test]
    fn a_leader_stops_at_the_renew_deadline() {
        let t0 = Instant::now();
        let deadline = Duration::from_secs(7);
        assert!(still_leading(t0, t0, deadline));
        assert!(still_leading(
            t0,
            t0 + Duration::from_millis(6999),
            deadline
        ));
        assert!(!still_leading(t0, t0 + deadline, deadline));
    }

    #[test]
    fn expiry_is_measured_from_the_last_change_seen_locally() {
        let t0 = Instant::now();
        let mut observer = Observer::default();
        let first = held_by("b");
        assert_eq!(observer.observe(Some(&first), t0), Duration::ZERO);
        let five = t0 + Duration::from_secs(5);
        assert_eq!(observer.observe(Some(&first), five), Duration::from_secs(5));
        let renewed = Record {
            renew_time: Some(Timestamp::from_second(5).unwrap()),
            ..first
        };
        assert_eq!(
            observer.observe(Some(&renewed), five),
            Duration::ZERO,
            "a renewal restarts the clock"
        );
        let eleven = t0 + Duration::from_secs(11);
        assert_eq!(
            observer.observe(Some(&renewed), eleven),
            Duration::from_secs(6)
        );
        assert_eq!(observer.observe(None, eleven), Duration::ZERO);
    }

    /// The single-writer argument: with `renew_deadline < lease_duration`, a leader that cannot renew stops before
    /// any standby (which saw the last renewal no earlier than it was made) may take over.
    #[test]
    fn a_stopped_leader_never_overlaps_a_new_one() {
        let renew_deadline = Duration::from_secs(7);
        let t0 = Instant::now();
        for seen_after_ms in [0u64, 1, 500, 2_000] {
            let seen = t0 + Duration::from_millis(seen_after_ms);
            for step_ms in (0..20_000u64).step_by(250) {
                let now = t0 + Duration::from_millis(step_ms);
                let standby_may_take = now >= seen
                    && matches!(
                        attempt(
                            "b",
                            Some(&held_by("a")),
                            now.saturating_duration_since(seen),
                            D,
                            R
                        ),
                        Attempt::TakeOver
                    );
                assert!(
                    !(standby_may_take && still_leading(t0, now, renew_deadline)),
                    "overlap at {step_ms} ms"
                );
            }
        }
    }
}
