//! Token buckets per source address: one client cannot take every TokenReview the operator is willing to send.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Sources remembered at most; past it, buckets that are full again are forgotten first, then all.
const MAX_SOURCES: usize = 10_000;

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// Per-source token buckets: `rate` a second, up to `burst`.
pub struct SourceLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl SourceLimiter {
    /// Buckets of `burst` tokens refilled at `rate` a second.
    pub fn new(rate: f64, burst: f64) -> SourceLimiter {
        SourceLimiter {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token of `source`'s bucket at `clock`; false when it is empty.
    pub fn allow(&self, source: IpAddr, clock: Instant) -> bool {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_SOURCES && !buckets.contains_key(&source) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| {
                b.tokens + clock.saturating_duration_since(b.refilled).as_secs_f64() * rate < burst
            });
            if buckets.len() >= MAX_SOURCES {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(source).or_insert(Bucket {
            tokens: self.burst,
            refilled: clock,
        });
        let elapsed = clock
            .saturating_duration_since(bucket.refilled)
            .as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.refilled = clock;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_source_gets_its_burst_then_its_rate_and_others_are_unaffected() {
        let limiter = SourceLimiter::new(2.0, 3.0);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let start = Instant::now();
        let taken = (0..5).filter(|_| limiter.allow(a, start)).count();
        assert_eq!(taken, 3, "the burst");
        assert!(limiter.allow(b, start), "another source has its own bucket");
        assert!(!limiter.allow(a, start + Duration::from_millis(400)));
        assert!(
            limiter.allow(a, start + Duration::from_millis(600)),
            "2 a second"
        );
    }
}
