//! The bounded audit trail in `status.history`.

use crew_api::HistoryEntry;
use crew_api::execution::{DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT};

/// The effective cap for a `spec.historyLimit` value (0 means the default; at most 100).
pub fn effective_limit(history_limit: u32) -> usize {
    let limit = if history_limit == 0 {
        DEFAULT_HISTORY_LIMIT
    } else {
        history_limit
    };
    limit.min(MAX_HISTORY_LIMIT) as usize
}

/// The identity of a history entry, stable across reconciles and restarts: everything it records. Its Event is
/// named after it ([`crate::lifecycle::names::event_name`]).
pub fn entry_key(entry: &HistoryEntry) -> String {
    format!(
        "{}|{}|{}|{}|{}|{}",
        entry.time.0.as_second(),
        entry.from,
        entry.to,
        entry.reason,
        entry.step.as_deref().unwrap_or_default(),
        entry.message.as_deref().unwrap_or_default()
    )
}

/// Appends `entries` (newest last) and drops the oldest entries beyond `limit`.
pub fn append(history: &mut Vec<HistoryEntry>, entries: &[HistoryEntry], limit: usize) {
    history.extend_from_slice(entries);
    if history.len() > limit {
        history.drain(..history.len() - limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crew_api::Phase;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use proptest::prelude::*;

    fn entry(n: i64) -> HistoryEntry {
        HistoryEntry {
            time: Time(jiff::Timestamp::from_second(n).unwrap()),
            from: Phase::Running,
            to: Phase::Running,
            reason: format!("R{n}"),
            message: None,
            step: None,
        }
    }

    #[test]
    fn keeps_newest_entries_in_order() {
        let mut h: Vec<_> = (0..5).map(entry).collect();
        append(&mut h, &[entry(5), entry(6)], 4);
        let reasons: Vec<_> = h.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons, ["R3", "R4", "R5", "R6"]);
    }

    #[test]
    fn limits() {
        assert_eq!(effective_limit(0), 20);
        assert_eq!(effective_limit(7), 7);
        assert_eq!(effective_limit(1000), 100);
    }

    proptest! {
        #[test]
        fn never_exceeds_the_cap_and_keeps_the_newest(start in 0usize..150, added in 0usize..150, limit in 1usize..=100) {
            let mut h: Vec<_> = (0..start as i64).map(entry).collect();
            let new: Vec<_> = (start as i64..(start + added) as i64).map(entry).collect();
            append(&mut h, &new, limit);
            prop_assert_eq!(h.len(), (start + added).min(limit));
            if let Some(last) = new.last() { prop_assert_eq!(h.last(), Some(last)); }
        }
    }
}
