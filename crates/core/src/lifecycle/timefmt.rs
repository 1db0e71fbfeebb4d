//! Time arithmetic and formatting on whole seconds (Kubernetes timestamps carry no sub-second part).

use jiff::{SignedDuration, Timestamp};

/// `ts` with its sub-second part dropped, so that it survives a round trip through the API unchanged.
pub fn whole_seconds(ts: Timestamp) -> Timestamp {
    Timestamp::from_second(ts.as_second()).unwrap_or(ts)
}

/// Whole seconds from `from` to `to` (0 if `to` is earlier).
pub fn seconds_between(from: Timestamp, to: Timestamp) -> i64 {
    (to.as_second() - from.as_second()).max(0)
}

/// `ts` plus `seconds` (saturating at the largest timestamp).
pub fn add_seconds(ts: Timestamp, seconds: i64) -> Timestamp {
    ts.checked_add(SignedDuration::from_secs(seconds))
        .unwrap_or(Timestamp::MAX)
}

/// Compact human form of a duration: `45s`, `1m5s`, `2h3m4s`, `1d2h`.
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m, sec) = (s / 86_400, (s / 3600) % 24, (s / 60) % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m{sec}s"),
        (0, _, _) => format!("{h}h{m}m{sec}s"),
        _ => format!("{d}d{h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        let cases = [
            (0, "0s"),
            (45, "45s"),
            (65, "1m5s"),
            (3600, "1h0m0s"),
            (7384, "2h3m4s"),
            (93_600, "1d2h"),
            (-3, "0s"),
        ];
        for (secs, text) in cases {
            assert_eq!(human_duration(secs), text, "{secs}");
        }
    }

    #[test]
    fn whole_seconds_drops_fraction() {
        let ts: Timestamp = "2026-01-02T03:04:05.678Z".parse().unwrap();
        assert_eq!(whole_seconds(ts).to_string(), "2026-01-02T03:04:05Z");
        assert_eq!(seconds_between(ts, add_seconds(ts, 90)), 90);
        assert_eq!(seconds_between(add_seconds(ts, 90), ts), 0);
    }
}
