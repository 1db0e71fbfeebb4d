//! Ages and durations as the CLI prints them. Exact durations and timestamps are the operator's own formats
//! (`crew_core::lifecycle::timefmt`), so `describe` shows what `.status.duration` holds; only ages are the CLI's,
//! rounded the way kubectl rounds them ([`short`]).

use crew_core::lifecycle::timefmt::whole_seconds;
use jiff::Timestamp;

/// The compact exact duration the operator writes in `.status.duration` (`45s`, `1m5s`, `2h3m4s`, `1d2h`).
pub use crew_core::lifecycle::timefmt::human_duration as exact;
pub use crew_core::lifecycle::timefmt::seconds_between;

/// kubectl's short human duration (`45s`, `5m3s`, `45m`, `3h20m`, `30h`, `3d4h`, `20d`, `3y`), for ages. Not
/// [`exact`]: an age drops precision as it grows (`45m`, not `45m12s`), as `kubectl get` columns do.
pub fn short(seconds: i64) -> String {
    let s = seconds.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86_400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        match s % 60 {
            0 => format!("{m}m"),
            rest => format!("{m}m{rest}s"),
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        match m % 60 {
            0 => format!("{h}h"),
            rest => format!("{h}h{rest}m"),
        }
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        match h % 24 {
            0 => format!("{d}d"),
            rest => format!("{d}d{rest}h"),
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y", d / 365)
    }
}

/// `ts` as RFC 3339 in UTC, to the second (as the API server stores it).
pub fn stamp(ts: Timestamp) -> String {
    whole_seconds(ts).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_durations_match_kubectl() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (303, "5m3s"),
            (300, "5m"),
            (2700, "45m"),
            (12_000, "3h20m"),
            (108_000, "30h"),
            (273_600, "3d4h"),
            (1_728_000, "20d"),
            (100_000_000, "3y"),
        ];
        for (seconds, text) in cases {
            assert_eq!(short(seconds), text, "{seconds}");
        }
    }

    #[test]
    fn stamps_and_exact_durations_are_the_operators() {
        let ts: Timestamp = "2026-11-29T11:58:00.750Z".parse().unwrap();
        assert_eq!(stamp(ts), "2026-11-29T11:58:00Z");
        assert_eq!((exact(2700), short(2700)), ("45m0s".into(), "45m".into()));
    }
}
