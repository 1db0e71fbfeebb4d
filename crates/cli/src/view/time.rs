//! Ages and durations as kubectl prints them.

use jiff::Timestamp;

pub use crew_core::lifecycle::timefmt::seconds_between;

/// kubectl's short human duration (`45s`, `5m3s`, `45m`, `3h20m`, `30h`, `3d4h`, `20d`, `3y`), for ages.
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

/// The compact exact duration the operator writes in `.status.duration` (`45s`, `1m5s`, `2h3m4s`, `1d2h`).
pub fn exact(seconds: i64) -> String {
    crew_core::lifecycle::timefmt::human_duration(seconds)
}

/// `ts` as RFC 3339 in UTC, to the second.
pub fn stamp(ts: Timestamp) -> String {
    Timestamp::from_second(ts.as_second())
        .unwrap_or(ts)
        .to_string()
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
}
