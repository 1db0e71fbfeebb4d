//! Retry backoff arithmetic.

use crew_api::RetryPolicy;

/// Seconds to wait before the attempt after failed attempt number `failed_attempt` (from 1):
/// `min(backoffSeconds * 2^(failed_attempt-1), maxBackoffSeconds)`, without overflow.
pub fn retry_delay_seconds(policy: &RetryPolicy, failed_attempt: u32) -> u64 {
    let base = u64::from(policy.backoff_seconds);
    let cap = u64::from(policy.max_backoff_seconds);
    let exponent = failed_attempt.saturating_sub(1).min(63);
    let factor = 1u64.checked_shl(exponent).unwrap_or(u64::MAX);
    base.saturating_mul(factor).min(cap)
}

/// Whether a step whose attempt number `failed_attempt` failed may run again.
pub fn may_retry(policy: &RetryPolicy, failed_attempt: u32) -> bool {
    failed_attempt <= policy.limit
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(limit: u32, backoff: u32, max: u32) -> RetryPolicy {
        RetryPolicy {
            limit,
            backoff_seconds: backoff,
            max_backoff_seconds: max,
        }
    }

    #[test]
    fn doubles_from_the_base_and_stops_at_the_cap() {
        let p = policy(10, 10, 300);
        let delays: Vec<u64> = (1..=7).map(|a| retry_delay_seconds(&p, a)).collect();
        assert_eq!(delays, vec![10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn zero_base_means_immediate_retry() {
        assert_eq!(retry_delay_seconds(&policy(3, 0, 300), 3), 0);
    }

    #[test]
    fn retry_allowed_while_attempt_within_limit() {
        let p = policy(2, 1, 1);
        assert!(may_retry(&p, 1));
        assert!(may_retry(&p, 2));
        assert!(!may_retry(&p, 3));
        assert!(!may_retry(&policy(0, 1, 1), 1));
    }

    proptest! {
        #[test]
        fn never_exceeds_cap_and_never_shrinks(base in 0u32..100_000, cap in 0u32..100_000, attempt in 1u32..200) {
            let p = policy(1000, base, cap);
            let d = retry_delay_seconds(&p, attempt);
            prop_assert!(d <= u64::from(cap));
            prop_assert!(d >= retry_delay_seconds(&p, attempt.saturating_sub(1).max(1)));
            if attempt == 1 { prop_assert_eq!(d, u64::from(base.min(cap))); }
        }
    }
}
