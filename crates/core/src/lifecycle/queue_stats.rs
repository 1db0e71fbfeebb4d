//! `CrewQueue.status` figures, computed from the queue's executions.

use crate::lifecycle::timefmt::seconds_between;
use crew_api::{CrewQueueStatus, Phase};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Finished executions the duration figures look at (the most recent ones).
pub const DURATION_WINDOW: usize = 100;

/// What the statistics need of one execution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberFacts {
    /// Current phase.
    pub phase: Phase,
    /// When it finished (terminal phases).
    pub completed: Option<Timestamp>,
    /// Run time in seconds (terminal phases).
    pub duration_seconds: Option<i64>,
    /// Since when it waits (Queued / Pending).
    pub waiting_since: Option<Timestamp>,
}

/// The status of a queue holding `members`, as of `now`.
pub fn queue_status(
    members: &[MemberFacts],
    generation: Option<i64>,
    now: Timestamp,
) -> CrewQueueStatus {
    let count = |phase: Phase| members.iter().filter(|m| m.phase == phase).count() as u32;
    let (succeeded, failed, cancelled) = (
        count(Phase::Succeeded),
        count(Phase::Failed),
        count(Phase::Cancelled),
    );
    let finished = succeeded + failed + cancelled;
    let mut recent: Vec<&MemberFacts> = members
        .iter()
        .filter(|m| m.phase.is_terminal() && m.duration_seconds.is_some())
        .collect();
    recent.sort_by_key(|m| std::cmp::Reverse(m.completed));
    recent.truncate(DURATION_WINDOW);
    let mut durations: Vec<u64> = recent
        .iter()
        .filter_map(|m| m.duration_seconds)
        .map(|d| d.max(0) as u64)
        .collect();
    durations.sort_unstable();
    let oldest = members
        .iter()
        .filter(|m| matches!(m.phase, Phase::Queued | Phase::Pending))
        .filter_map(|m| m.waiting_since)
        .min();
    CrewQueueStatus {
        pending: count(Phase::Pending),
        queued: count(Phase::Queued),
        running: count(Phase::Running),
        paused: count(Phase::Paused),
        succeeded,
        failed,
        cancelled,
        success_rate: (finished > 0).then(|| 100 * succeeded / finished),
        average_duration_seconds: (!durations.is_empty())
            .then(|| durations.iter().sum::<u64>() / durations.len() as u64),
        p95_duration_seconds: percentile(&durations, 95),
        oldest_queued_seconds: oldest.map(|t| seconds_between(t, now) as u64),
        update_time: Some(Time(now)),
        observed_generation: generation,
    }
}

/// Nearest-rank percentile of sorted `values`.
pub fn percentile(sorted: &[u64], pct: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (pct * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// Whether `new` differs from `old` in anything but the clock-driven fields (`updateTime`, `oldestQueuedSeconds`).
pub fn counts_changed(old: Option<&CrewQueueStatus>, new: &CrewQueueStatus) -> bool {
    let Some(old) = old else { return true };
    let strip = |s: &CrewQueueStatus| CrewQueueStatus {
        update_time: None,
        oldest_queued_seconds: s.oldest_queued_seconds.map(|_| 0),
        ..s.clone()
    };
    strip(old) != strip(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn done(phase: Phase, completed: i64, duration: i64) -> MemberFacts {
        MemberFacts {
            phase,
            completed: Some(at(completed)),
            duration_seconds: Some(duration),
            waiting_since: None,
        }
    }

    #[test]
    fn counts_rates_and_durations() {
        let mut members = vec![
            done(Phase::Succeeded, 10, 10),
            done(Phase::Succeeded, 11, 20),
            done(Phase::Failed, 12, 30),
            done(Phase::Cancelled, 13, 40),
            MemberFacts {
                phase: Phase::Running,
                completed: None,
                duration_seconds: None,
                waiting_since: None,
            },
            MemberFacts {
                phase: Phase::Queued,
                completed: None,
                duration_seconds: None,
                waiting_since: Some(at(50)),
            },
            MemberFacts {
                phase: Phase::Queued,
                completed: None,
                duration_seconds: None,
                waiting_since: Some(at(70)),
            },
        ];
        let s = queue_status(&members, Some(2), at(100));
        assert_eq!(
            (s.running, s.queued, s.succeeded, s.failed, s.cancelled),
            (1, 2, 2, 1, 1)
        );
        assert_eq!(s.success_rate, Some(50));
        assert_eq!(s.average_duration_seconds, Some(25));
        assert_eq!(s.p95_duration_seconds, Some(40));
        assert_eq!(s.oldest_queued_seconds, Some(50));
        members.clear();
        let empty = queue_status(&members, None, at(1));
        assert_eq!(
            (
                empty.success_rate,
                empty.average_duration_seconds,
                empty.p95_duration_seconds
            ),
            (None, None, None)
        );
    }

    #[test]
    fn durations_cover_the_last_hundred_finished() {
        let members: Vec<_> = (0..150)
            .map(|i| done(Phase::Succeeded, i, if i < 50 { 1000 } else { 1 }))
            .collect();
        let s = queue_status(&members, None, at(1000));
        assert_eq!(
            (s.average_duration_seconds, s.p95_duration_seconds),
            (Some(1), Some(1))
        );
    }

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(
            (
                percentile(&v, 95),
                percentile(&v, 50),
                percentile(&[7], 95),
                percentile(&[], 95)
            ),
            (Some(95), Some(50), Some(7), None)
        );
    }

    #[test]
    fn clock_fields_alone_do_not_count_as_a_change() {
        let a = queue_status(
            &[MemberFacts {
                phase: Phase::Queued,
                completed: None,
                duration_seconds: None,
                waiting_since: Some(at(1)),
            }],
            None,
            at(10),
        );
        let b = queue_status(
            &[MemberFacts {
                phase: Phase::Queued,
                completed: None,
                duration_seconds: None,
                waiting_since: Some(at(1)),
            }],
            None,
            at(20),
        );
        assert!(!counts_changed(Some(&a), &b));
        assert!(counts_changed(None, &b));
    }
}
