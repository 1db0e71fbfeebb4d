//! Parsing of human durations such as `1s`, `250ms`, `1.5s`, `1m30s` or a bare `0`.

use std::time::Duration;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationParseError {
    /// Nothing but whitespace.
    #[error("empty duration")]
    Empty,
    /// A part that is not `<number><unit>`.
    #[error(
        "invalid duration {0:?}: expected e.g. 500ms, 2s, 1.5s, 1m30s or a bare number of seconds"
    )]
    Invalid(String),
    /// A unit other than `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`.
    #[error("invalid duration {input:?}: unknown unit {unit:?} (use ns, us, ms, s, m or h)")]
    UnknownUnit {
        /// The whole input.
        input: String,
        /// The offending unit.
        unit: String,
    },
    /// Too large to represent.
    #[error("duration {0:?} is too large")]
    TooLarge(String),
}

/// Parses `<number><unit>` parts, summed (`1m30s`). Numbers may have a fraction (`1.5s`); a lone number
/// without unit means seconds (`0`, `2`). Units: `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`. Negative values are
/// rejected (a `-` is not a digit).
pub fn parse_duration(input: &str) -> Result<Duration, DurationParseError> {
    let text = input.trim();
    if text.is_empty() {
        return Err(DurationParseError::Empty);
    }
    let invalid = || DurationParseError::Invalid(input.to_string());
    let too_large = || DurationParseError::TooLarge(input.to_string());

    // A bare number is seconds.
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = text.parse().map_err(|_| invalid())?;
        return Duration::try_from_secs_f64(secs).map_err(|_| too_large());
    }

    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(invalid());
        }
        let (num, after) = rest.split_at(num_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let value: f64 = num.parse().map_err(|_| invalid())?;
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(invalid()),
            other => {
                return Err(DurationParseError::UnknownUnit {
                    input: input.to_string(),
                    unit: other.to_string(),
                });
            }
        };
        let part = Duration::try_from_secs_f64(value * scale).map_err(|_| too_large())?;
        total = total.checked_add(part).ok_or_else(too_large)?;
        rest = next;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_common_forms() {
        let cases = [
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("2", Duration::from_secs(2)),
            ("1s", Duration::from_secs(1)),
            ("250ms", Duration::from_millis(250)),
            ("1.5s", Duration::from_millis(1500)),
            ("1m30s", Duration::from_secs(90)),
            ("2h", Duration::from_secs(7200)),
            ("100us", Duration::from_micros(100)),
            ("100µs", Duration::from_micros(100)),
            ("10ns", Duration::from_nanos(10)),
            (" 3s ", Duration::from_secs(3)),
            ("0.25", Duration::from_millis(250)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_duration(""), Err(DurationParseError::Empty));
        assert_eq!(parse_duration("  "), Err(DurationParseError::Empty));
        for bad in ["-1s", "abc", "s", "1.2.3s", "1s2", "..", "1 s", "1e400s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            parse_duration("-1s"),
            Err(DurationParseError::Invalid(_))
        ));
        assert!(matches!(
            parse_duration("5d"),
            Err(DurationParseError::UnknownUnit { unit, .. }) if unit == "d"
        ));
        assert!(matches!(
            parse_duration("99999999999999999999999h"),
            Err(DurationParseError::TooLarge(_))
        ));
    }
}
