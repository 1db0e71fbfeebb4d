//! When each chain was created, each of its Jobs first seen and seen complete, and the chain seen done — as
//! offsets from the start of a run, recorded on local receipt of watch events — and the latencies derived from
//! them.

use super::stats::{Summary, summarize};
use std::time::Duration;

/// Timestamps of one run (N chains of `steps` steps each).
#[derive(Clone, Debug)]
pub struct Timeline {
    steps: usize,
    created: Vec<Option<Duration>>,
    job_seen: Vec<Option<Duration>>,
    job_done: Vec<Option<Duration>>,
    chain_done: Vec<Option<Duration>>,
    done: usize,
    failed: usize,
}

/// The latencies of a run, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Latencies {
    /// Just before the create call (execution, or the baseline's first Job) → its first Job seen.
    pub create_to_first_job: Summary,
    /// A step's Job seen complete → the next step's Job seen.
    pub step_hop: Summary,
    /// The last step's Job seen complete → the execution seen Succeeded (operator only).
    pub last_step_to_done: Option<Summary>,
}

fn ms(from: Option<Duration>, to: Option<Duration>) -> Option<f64> {
    let nanos = to?.as_nanos() as i128 - from?.as_nanos() as i128;
    Some(nanos as f64 / 1e6)
}

impl Timeline {
    /// An empty timeline for `chains` chains of `steps` steps.
    pub fn new(chains: usize, steps: usize) -> Self {
        let steps = steps.max(1);
        Timeline {
            steps,
            created: vec![None; chains],
            job_seen: vec![None; chains * steps],
            job_done: vec![None; chains * steps],
            chain_done: vec![None; chains],
            done: 0,
            failed: 0,
        }
    }

    /// Number of chains.
    pub fn chains(&self) -> usize {
        self.created.len()
    }

    /// Steps per chain.
    pub fn steps(&self) -> usize {
        self.steps
    }

    fn slot(&self, chain: usize, step: usize) -> Option<usize> {
        (chain < self.chains() && step < self.steps).then_some(chain * self.steps + step)
    }

    fn first(cell: Option<&mut Option<Duration>>, at: Duration) -> bool {
        match cell {
            Some(c @ None) => {
                *c = Some(at);
                true
            }
            _ => false,
        }
    }

    /// Chain `chain` is about to be created (the first time counts).
    pub fn created(&mut self, chain: usize, at: Duration) -> bool {
        Self::first(self.created.get_mut(chain), at)
    }

    /// A Job of `(chain, step)` was seen; true the first time.
    pub fn job_seen(&mut self, chain: usize, step: usize, at: Duration) -> bool {
        let slot = self.slot(chain, step);
        Self::first(slot.and_then(|s| self.job_seen.get_mut(s)), at)
    }

    /// The Job of `(chain, step)` was seen complete; true the first time.
    pub fn job_done(&mut self, chain: usize, step: usize, at: Duration) -> bool {
        let slot = self.slot(chain, step);
        Self::first(slot.and_then(|s| self.job_done.get_mut(s)), at)
    }

    /// Chain `chain` was seen done; true the first time.
    pub fn chain_done(&mut self, chain: usize, at: Duration) -> bool {
        let first = Self::first(self.chain_done.get_mut(chain), at);
        if first {
            self.done += 1;
        }
        first
    }

    /// Chain `chain` failed (counted once per call; the caller reports each chain once).
    pub fn chain_failed(&mut self) {
        self.failed += 1;
    }

    /// Chains done.
    pub fn done(&self) -> usize {
        self.done
    }

    /// Chains failed.
    pub fn failed(&self) -> usize {
        self.failed
    }

    /// Chains created (create call started).
    pub fn created_count(&self) -> usize {
        self.created.iter().flatten().count()
    }

    /// Chains whose first Job was seen.
    pub fn first_jobs_seen(&self) -> usize {
        (0..self.chains())
            .filter(|c| self.job_seen[c * self.steps].is_some())
            .count()
    }

    /// Jobs seen, Jobs seen complete.
    pub fn jobs_seen_and_done(&self) -> (usize, usize) {
        (
            self.job_seen.iter().flatten().count(),
            self.job_done.iter().flatten().count(),
        )
    }

    /// First create → last chain done (zero when nothing is done).
    pub fn wall(&self) -> Duration {
        let start = self.created.iter().flatten().min();
        let end = self.chain_done.iter().flatten().max();
        match (start, end) {
            (Some(s), Some(e)) => e.saturating_sub(*s),
            _ => Duration::ZERO,
        }
    }

    /// Done chains per second of [`Timeline::wall`].
    pub fn throughput(&self) -> f64 {
        let wall = self.wall().as_secs_f64();
        if wall > 0.0 {
            self.done as f64 / wall
        } else {
            0.0
        }
    }

    /// The latencies; `last_hop` adds "last Job complete → chain done" (meaningless for the baseline, where the
    /// two are the same event).
    pub fn latencies(&self, last_hop: bool) -> Latencies {
        let s = self.steps;
        let first: Vec<f64> = (0..self.chains())
            .filter_map(|c| ms(self.created[c], self.job_seen[c * s]))
            .collect();
        let hops: Vec<f64> = (0..self.chains())
            .flat_map(|c| (0..s - 1).map(move |k| (c, k)))
            .filter_map(|(c, k)| ms(self.job_done[c * s + k], self.job_seen[c * s + k + 1]))
            .collect();
        let last = last_hop.then(|| {
            let v: Vec<f64> = (0..self.chains())
                .filter_map(|c| ms(self.job_done[c * s + s - 1], self.chain_done[c]))
                .collect();
            summarize(&v)
        });
        Latencies {
            create_to_first_job: summarize(&first),
            step_hop: summarize(&hops),
            last_step_to_done: last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn records_first_times_and_derives_latencies() {
        let mut t = Timeline::new(2, 2);
        assert!(t.created(0, at(0)));
        assert!(!t.created(0, at(5)));
        assert!(t.created(1, at(10)));
        assert!(t.job_seen(0, 0, at(20)));
        assert!(!t.job_seen(0, 0, at(25)));
        assert!(t.job_seen(1, 0, at(40)));
        assert!(t.job_done(0, 0, at(100)));
        assert!(t.job_seen(0, 1, at(130)));
        assert!(t.job_done(0, 1, at(200)));
        assert!(t.chain_done(0, at(250)));
        assert!(!t.chain_done(0, at(260)));
        assert!(!t.job_seen(5, 0, at(1)), "out of range is ignored");
        assert!(!t.job_seen(0, 2, at(1)), "out of range is ignored");
        assert_eq!(t.done(), 1);
        assert_eq!(t.first_jobs_seen(), 2);
        assert_eq!(t.jobs_seen_and_done(), (3, 2));
        assert_eq!(t.wall(), at(250));
        assert!((t.throughput() - 4.0).abs() < 1e-9);
        let l = t.latencies(true);
        assert_eq!(l.create_to_first_job.count, 2);
        assert_eq!(l.create_to_first_job.p50, Some(20.0));
        assert_eq!(l.create_to_first_job.max, Some(30.0));
        assert_eq!(l.step_hop.count, 1);
        assert_eq!(l.step_hop.p99, Some(30.0));
        assert_eq!(l.last_step_to_done.map(|s| s.p50), Some(Some(50.0)));
        assert_eq!(t.latencies(false).last_step_to_done, None);
    }

    #[test]
    fn nothing_done_means_zero_wall_and_throughput() {
        let t = Timeline::new(3, 1);
        assert_eq!(t.wall(), Duration::ZERO);
        assert_eq!(t.throughput(), 0.0);
        assert_eq!(t.latencies(true).step_hop.count, 0);
    }
}
