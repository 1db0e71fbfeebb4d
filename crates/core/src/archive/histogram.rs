//! Run durations as a fixed histogram: the statistics rollups keep one per (namespace, queue, hour or day), so
//! p50 and p95 over any span are read from a few dozen counters, never from the archived rows.

/// Upper bounds of the buckets, in seconds (the last bucket holds everything longer). A percentile read from them
/// is the bound of the bucket it falls in: at most one bucket (≤ 1.5×) above the exact value.
pub const BOUNDS: [i64; 31] = [
    1, 2, 3, 5, 7, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 420, 600, 900, 1200, 1800, 2700,
    3600, 5400, 7200, 10800, 14400, 21600, 28800, 43200, 86400,
];

/// Number of buckets: one per bound, and one for longer runs.
pub const BUCKETS: usize = BOUNDS.len() + 1;

/// The bucket (0-based) of a run of `seconds` (negative counts as 0).
pub fn bucket_of(seconds: i64) -> usize {
    BOUNDS
        .iter()
        .position(|bound| seconds.max(0) <= *bound)
        .unwrap_or(BOUNDS.len())
}

/// The `q`-quantile (0 < q ≤ 1) of the runs counted in `counts` (indexed like [`bucket_of`]), as the upper bound
/// of its bucket in seconds; `None` when nothing was counted. The open last bucket reads as twice the last bound.
pub fn quantile(counts: &[i64], q: f64) -> Option<i64> {
    let total: i64 = counts.iter().map(|c| (*c).max(0)).sum();
    if total == 0 {
        return None;
    }
    // The rank of the quantile among `total` ordered runs (1-based, at least 1).
    let rank = ((q * total as f64).ceil() as i64).clamp(1, total);
    let mut seen = 0;
    for (bucket, count) in counts.iter().enumerate() {
        seen += (*count).max(0);
        if seen >= rank {
            return Some(upper_bound(bucket));
        }
    }
    Some(upper_bound(BUCKETS - 1))
}

fn upper_bound(bucket: usize) -> i64 {
    BOUNDS
        .get(bucket)
        .copied()
        .unwrap_or(BOUNDS[BOUNDS.len() - 1] * 2)
}

/// Adds `more` into `into` bucket by bucket (rollups of several hours or queues read as one).
pub fn merge(into: &mut Vec<i64>, more: &[i64]) {
    if into.len() < more.len() {
        into.resize(more.len(), 0);
    }
    for (sum, count) in into.iter_mut().zip(more) {
        *sum += count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_their_bound_and_below() {
        assert_eq!(bucket_of(-5), 0);
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(2), 1);
        assert_eq!(bucket_of(4), 3);
        assert_eq!(bucket_of(86_400), BOUNDS.len() - 1);
        assert_eq!(bucket_of(86_401), BUCKETS - 1);
        assert!(BOUNDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn quantiles_are_the_bounds_of_the_buckets_they_fall_in() {
        let mut counts = vec![0; BUCKETS];
        assert_eq!(quantile(&counts, 0.5), None);
        // 90 runs of 4 s, 10 of 100 s.
        counts[bucket_of(4)] = 90;
        counts[bucket_of(100)] = 10;
        assert_eq!(quantile(&counts, 0.5), Some(5));
        assert_eq!(quantile(&counts, 0.9), Some(5));
        assert_eq!(quantile(&counts, 0.95), Some(120));
        assert_eq!(quantile(&counts, 1.0), Some(120));
        counts[BUCKETS - 1] = 1_000;
        assert_eq!(quantile(&counts, 0.95), Some(172_800));
    }

    #[test]
    fn a_quantile_is_never_below_the_exact_value_nor_above_one_bucket_more() {
        let durations: Vec<i64> = (0..1000).map(|i| (i * 37) % 5000).collect();
        let mut counts = vec![0; BUCKETS];
        for d in &durations {
            counts[bucket_of(*d)] += 1;
        }
        let mut sorted = durations.clone();
        sorted.sort_unstable();
        for q in [0.5, 0.95] {
            let exact = sorted[((q * 1000.0) as usize).saturating_sub(1)];
            let read = quantile(&counts, q).unwrap();
            assert!(read >= exact, "q={q}: {read} < {exact}");
            assert!(
                read <= BOUNDS[bucket_of(exact).min(BOUNDS.len() - 1)],
                "q={q}"
            );
        }
    }

    #[test]
    fn merging_adds_bucket_by_bucket() {
        let mut sum = vec![1, 2];
        merge(&mut sum, &[1, 1, 5]);
        assert_eq!(sum, [2, 3, 5]);
    }
}
