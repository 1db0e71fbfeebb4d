//! The reports of running step attempts, held until a reconcile writes them, and when that reconcile should run.
//!
//! Coalescing: the first report after a write wakes the execution at once if the last progress write is at least
//! `--progress-interval` old, else when it will be; further reports meanwhile only update the book. A reconcile
//! reads the book (`report`, `due`) and says what it did (`reconciled`); a report that arrived while it ran wakes
//! the execution again. So however often workers post, an execution costs at most one status write per interval
//! for its reports, and a step's outcome write carries its last report.

use crew_core::lifecycle::report::{AttemptReports, ReportError, WorkerReport};
use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sustained reports per second one attempt may send.
pub const RATE_PER_SECOND: f64 = 20.0;
/// Reports one attempt may send in a burst.
pub const BURST: f64 = 40.0;

/// Why a report was not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Its content breaks a bound (HTTP 422).
    Invalid(ReportError),
    /// The attempt sends faster than [`RATE_PER_SECOND`] (HTTP 429).
    RateLimited,
}

/// When the execution should be reconciled for a report just taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Wake {
    /// Now.
    Now,
    /// After this long (the progress interval since the last write).
    After(Duration),
    /// A wake is already on its way.
    Pending,
}

struct Entry {
    reports: AttemptReports,
    /// Bumped by every report taken.
    version: u64,
    /// When a status write last carried this execution's reports.
    last_written: Option<Instant>,
    wake_pending: bool,
    tokens: f64,
    refilled: Instant,
}

/// What a reconcile reads from the book.
#[derive(Clone, Debug)]
pub struct Held {
    /// The current attempt's reports.
    pub reports: AttemptReports,
    /// The book's version of them (see [`ProgressBook::reconciled`]).
    pub version: u64,
    /// Whether a status write may carry them now (the interval since the last one has passed).
    pub due: bool,
}

/// Reports by execution UID.
pub struct ProgressBook {
    entries: Mutex<HashMap<String, Entry>>,
    interval: Duration,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ProgressBook {
    /// A book whose reports are written at most once per `interval` per execution.
    pub fn new(interval: Duration) -> ProgressBook {
        ProgressBook {
            entries: Mutex::new(HashMap::new()),
            interval,
        }
    }

    /// The write interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Takes `report` from the worker of `step` attempt `attempt` of execution `uid`.
    pub fn record(
        &self,
        uid: &str,
        step: &str,
        attempt: u32,
        report: WorkerReport,
        now: Timestamp,
        clock: Instant,
    ) -> Result<Wake, Refused> {
        let mut entries = locked(&self.entries);
        let entry = entries.entry(uid.to_string()).or_insert_with(|| Entry {
            reports: AttemptReports::new(step, attempt, now),
            version: 0,
            last_written: None,
            wake_pending: false,
            tokens: BURST,
            refilled: clock,
        });
        if entry.reports.step != step || entry.reports.attempt != attempt {
            // A new attempt starts from nothing; its rate and write clock carry on.
            entry.reports = AttemptReports::new(step, attempt, now);
        }
        let elapsed = clock
            .saturating_duration_since(entry.refilled)
            .as_secs_f64();
        entry.tokens = (entry.tokens + elapsed * RATE_PER_SECOND).min(BURST);
        entry.refilled = clock;
        if entry.tokens < 1.0 {
            return Err(Refused::RateLimited);
        }
        entry.tokens -= 1.0;
        entry.reports.apply(report, now).map_err(Refused::Invalid)?;
        entry.version += 1;
        if entry.wake_pending {
            return Ok(Wake::Pending);
        }
        entry.wake_pending = true;
        Ok(self.wake_for(entry, clock))
    }

    fn wake_for(&self, entry: &Entry, clock: Instant) -> Wake {
        match entry.last_written {
            Some(written) if clock.saturating_duration_since(written) < self.interval => {
                Wake::After(self.interval - clock.saturating_duration_since(written))
            }
            _ => Wake::Now,
        }
    }

    /// What execution `uid`'s current attempt reported, read once per reconcile under one lock.
    pub fn held(&self, uid: &str, clock: Instant) -> Option<Held> {
        locked(&self.entries).get(uid).map(|e| Held {
            reports: e.reports.clone(),
            version: e.version,
            due: e
                .last_written
                .is_none_or(|w| clock.saturating_duration_since(w) >= self.interval),
        })
    }

    /// A reconcile of `uid` that read the book at `version` is done; `carried`: its status write carried the
    /// reports. Returns when to wake the execution again, if a report came in meanwhile that is not written yet.
    pub fn reconciled(
        &self,
        uid: &str,
        version: u64,
        carried: bool,
        clock: Instant,
    ) -> Option<Wake> {
        let mut entries = locked(&self.entries);
        let entry = entries.get_mut(uid)?;
        if carried {
            entry.last_written = Some(clock);
        }
        entry.wake_pending = false;
        if entry.version > version {
            entry.wake_pending = true;
            return Some(self.wake_for(entry, clock));
        }
        None
    }

    /// Keeps only the executions whose UID `live` holds.
    pub fn retain(&self, live: &std::collections::HashSet<String>) {
        locked(&self.entries).retain(|uid, _| live.contains(uid));
    }

    /// Forgets `uid` (finished or deleted).
    pub fn forget(&self, uid: &str) {
        locked(&self.entries).remove(uid);
    }

    /// Executions with reports held.
    pub fn len(&self) -> usize {
        locked(&self.entries).len()
    }

    /// Whether no reports are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(percent: f64) -> WorkerReport {
        WorkerReport {
            percent: Some(percent),
            ..Default::default()
        }
    }

    #[test]
    fn reports_wake_once_per_interval() {
        let book = ProgressBook::new(Duration::from_secs(2));
        let t0 = Instant::now();
        let now = Timestamp::now();
        assert_eq!(
            book.record("u", "s", 1, report(10.0), now, t0),
            Ok(Wake::Now)
        );
        assert_eq!(
            book.record("u", "s", 1, report(20.0), now, t0),
            Ok(Wake::Pending)
        );
        let held = book.held("u", t0).unwrap();
        assert_eq!((held.reports.percent, held.version), (20, 2));
        assert!(held.due);
        assert_eq!(book.reconciled("u", held.version, true, t0), None);
        assert!(!book.held("u", t0 + Duration::from_secs(1)).unwrap().due);
        // The next report after a write waits for the rest of the interval.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(
            book.record("u", "s", 1, report(30.0), now, t1),
            Ok(Wake::After(Duration::from_millis(1500)))
        );
        // A report that arrives while the reconcile runs wakes the execution again.
        let seen = book.held("u", t1).unwrap().version;
        book.record("u", "s", 1, report(40.0), now, t1).unwrap();
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(
            book.reconciled("u", seen, true, t2),
            Some(Wake::After(Duration::from_secs(2)))
        );
    }

    #[test]
    fn a_new_attempt_starts_from_nothing() {
        let book = ProgressBook::new(Duration::from_secs(2));
        let t0 = Instant::now();
        let now = Timestamp::now();
        book.record("u", "s", 1, report(80.0), now, t0).unwrap();
        book.record("u", "s", 2, report(5.0), now, t0).unwrap();
        let reports = book.held("u", t0).unwrap().reports;
        assert_eq!((reports.attempt, reports.percent), (2, 5));
    }

    #[test]
    fn an_attempt_that_sends_too_fast_is_limited() {
        let book = ProgressBook::new(Duration::from_secs(2));
        let t0 = Instant::now();
        let now = Timestamp::now();
        let taken = (0..100)
            .filter(|_| {
                book.record("u", "s", 1, WorkerReport::default(), now, t0)
                    .is_ok()
            })
            .count();
        assert_eq!(taken, BURST as usize);
        assert_eq!(
            book.record("u", "s", 1, WorkerReport::default(), now, t0),
            Err(Refused::RateLimited)
        );
        let later = t0 + Duration::from_millis(100);
        assert!(
            book.record("u", "s", 1, WorkerReport::default(), now, later)
                .is_ok(),
            "refilled"
        );
    }
}
