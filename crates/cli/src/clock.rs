//! The clock every view is drawn at: the system's, or `KUBECTL_CREW_NOW` (RFC 3339) so that golden tests and
//! recorded examples print the same ages every time.

use jiff::Timestamp;

/// Environment variable that fixes the clock.
pub const NOW_VARIABLE: &str = "KUBECTL_CREW_NOW";

pub fn now() -> Timestamp {
    std::env::var(NOW_VARIABLE)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(Timestamp::now)
}
