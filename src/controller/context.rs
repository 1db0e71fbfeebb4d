//! Shared state of the controller: client, Event publisher, child index, counters, per-object bookkeeping.

use super::child_index::ChildIndex;
use super::events::EventQueue;
use crew_api::{CrewExecution, CrewQueue};
use crew_core::lifecycle::queue_book::QueueBook;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use kube::Client;
use kube::runtime::reflector::{ObjectRef, Store};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Kinds of API writes the operator makes, counted for tests, benchmarks and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WriteKind {
    /// Server-side apply of an execution's status.
    Status,
    /// Creation of a worker Job.
    JobCreate,
    /// Deletion of a running worker Job (cancel, timeout, stall).
    JobDelete,
    /// Deletion of a finished worker Job whose outcome status records (`spec.jobCleanup`).
    JobCleanup,
    /// Creation of the crew ConfigMap.
    ConfigMap,
    /// A Kubernetes Event (create or series patch).
    Event,
    /// Deletion of a finished execution (TTL).
    ExecutionDelete,
    /// Server-side apply of a queue's status.
    QueueStatus,
    /// Creation, renewal or release of the leader-election Lease (not per execution).
    Lease,
}

impl WriteKind {
    /// Every kind, for reporting.
    pub const ALL: [WriteKind; 9] = [
        WriteKind::Status,
        WriteKind::JobCreate,
        WriteKind::JobDelete,
        WriteKind::JobCleanup,
        WriteKind::ConfigMap,
        WriteKind::Event,
        WriteKind::ExecutionDelete,
        WriteKind::QueueStatus,
        WriteKind::Lease,
    ];

    /// Label for metrics and reports.
    pub fn label(self) -> &'static str {
        match self {
            WriteKind::Status => "status",
            WriteKind::JobCreate => "job_create",
            WriteKind::JobDelete => "job_delete",
            WriteKind::JobCleanup => "job_cleanup",
            WriteKind::ConfigMap => "configmap_create",
            WriteKind::Event => "event",
            WriteKind::ExecutionDelete => "execution_delete",
            WriteKind::QueueStatus => "queue_status",
            WriteKind::Lease => "lease",
        }
    }
}

/// Counters of API writes, by kind.
#[derive(Default)]
pub struct WriteCounts([AtomicU64; 9]);

impl WriteCounts {
    /// Counts one write of `kind`.
    pub fn add(&self, kind: WriteKind) {
        self.0[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Writes of `kind` so far.
    pub fn get(&self, kind: WriteKind) -> u64 {
        self.0[kind as usize].load(Ordering::Relaxed)
    }

    /// All writes so far.
    pub fn total(&self) -> u64 {
        WriteKind::ALL.iter().map(|k| self.get(*k)).sum()
    }
}

/// Everything a reconcile needs besides the execution itself.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Publishes the Events about executions (in the background).
    pub events: EventQueue,
    /// Jobs and worker outcomes, from the watches.
    pub children: ChildIndex,
    /// The Job controller's latest `FailedCreate` Event about each Job (why it has no pod).
    pub refusals: super::refusals::PodRefusals,
    /// API writes made.
    pub writes: WriteCounts,
    /// Per execution UID: the resourceVersion the last status write was computed from. While the cache still shows
    /// that version, it has not seen our own write and the reconcile waits (no side effects on a stale view).
    pub stale_versions: Mutex<HashMap<String, String>>,
    /// Per execution UID: consecutive reconcile failures (for exponential error backoff).
    pub failures: Mutex<HashMap<String, u32>>,
    /// The controller's cache of executions (set when the controller starts).
    pub executions: OnceLock<Store<CrewExecution>>,
    /// Cache of CrewQueues (set when the controller starts).
    pub queues: OnceLock<Store<CrewQueue>>,
    /// Operator-wide limit on running executions without `spec.queue` (None: unlimited).
    pub max_running: Option<u32>,
    /// Start timeout of workers whose execution sets no `spec.startTimeoutSeconds`.
    pub start_timeout_seconds: i64,
    /// What workers may use (ServiceAccounts, Secrets, pod annotations).
    pub worker_policy: crew_core::lifecycle::worker_policy::WorkerPolicy,
    /// Reconcile requests for executions whose queue has a free slot.
    pub wake: UnboundedSender<ObjectRef<CrewExecution>>,
    /// Every queue's members, in admission order, with the slots they hold (and admissions not yet visible).
    pub book: Mutex<QueueBook>,
    /// Prometheus metrics.
    pub metrics: crate::metrics::Metrics,
    /// Set once the executions cache has listed.
    pub executions_listed: std::sync::atomic::AtomicBool,
    /// Set once the queues cache has listed.
    pub queues_listed: std::sync::atomic::AtomicBool,
    /// The receiving end of `wake`, taken by the controller when it starts.
    pub wake_requests: Mutex<Option<UnboundedReceiver<ObjectRef<CrewExecution>>>>,
    /// Whether this replica may act: false while a standby under leader election (true without it).
    pub leading: std::sync::atomic::AtomicBool,
    /// Under leader election, the instant the last renewal's deadline passes: no write is sent after it, even if
    /// the elector has not yet noticed the loss (a starved runtime). None without leader election.
    leading_until: Mutex<Option<std::time::Instant>>,
    /// Workers' progress reports not written yet, and when to write them (`crate::progress`).
    pub progress: crate::progress::book::ProgressBook,
    /// The URL workers post progress to (`CREW_PROGRESS_URL` in every worker; None: workers are not told).
    pub progress_url: Option<String>,
    /// Since when this replica acts (start-up, or the last time it became the leader): stall clocks start here.
    acting_since: Mutex<jiff::Timestamp>,
}

impl Context {
    /// A context around `client` with an empty index.
    pub fn new(client: Client, events: EventQueue, max_running: Option<u32>) -> Self {
        let (wake, wake_requests) = unbounded();
        Context {
            executions: OnceLock::new(),
            queues: OnceLock::new(),
            max_running,
            start_timeout_seconds: crew_core::lifecycle::steps::DEFAULT_START_TIMEOUT_SECONDS,
            worker_policy: Default::default(),
            wake,
            wake_requests: Mutex::new(Some(wake_requests)),
            metrics: crate::metrics::Metrics::default(),
            book: Mutex::new(QueueBook::default()),
            executions_listed: std::sync::atomic::AtomicBool::new(false),
            queues_listed: std::sync::atomic::AtomicBool::new(false),
            leading: std::sync::atomic::AtomicBool::new(true),
            leading_until: Mutex::new(None),
            progress: crate::progress::book::ProgressBook::new(DEFAULT_PROGRESS_INTERVAL),
            progress_url: None,
            acting_since: Mutex::new(jiff::Timestamp::now()),
            client,
            events,
            children: ChildIndex::default(),
            refusals: Default::default(),
            writes: WriteCounts::default(),
            stale_versions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Every cache has listed: Jobs and pods, executions, queues.
    pub fn caches_synced(&self) -> bool {
        self.children.synced()
            && self.executions_listed.load(Ordering::Relaxed)
            && self.queues_listed.load(Ordering::Relaxed)
    }

    /// Whether this replica leads (always, without leader election): it holds the Lease and its last renewal's
    /// deadline has not passed. Checked at the start of a reconcile and again just before each write.
    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::Relaxed)
            && self
                .leading_until
                .lock()
                .is_ok_and(|until| until.is_none_or(|until| crate::leader::elector::now() < until))
    }

    /// Records the instant until which this replica may write (the renew deadline of its last Lease renewal).
    pub fn lead_until(&self, until: std::time::Instant) {
        if let Ok(mut deadline) = self.leading_until.lock() {
            *deadline = Some(until);
        }
    }

    /// May act: leading, with every cache listed.
    pub fn is_ready(&self) -> bool {
        self.is_leading() && self.caches_synced()
    }

    /// Marks this replica as leading (may act) or standing by, in readiness and in the `crew_leader` gauge.
    pub fn set_leading(&self, leading: bool) {
        let was = self.leading.swap(leading, Ordering::Relaxed);
        if leading && !was {
            *self
                .acting_since
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = jiff::Timestamp::now();
        }
        self.metrics.leader.set(i64::from(leading));
    }

    /// Asks for a reconcile of every cached execution (when this replica has just become the leader: a standby's
    /// reconciles did nothing and wait for this).
    pub fn wake_all(&self) {
        if let Some(executions) = self.executions.get() {
            for cx in executions.state() {
                let _ = self.wake.unbounded_send(ObjectRef::from_obj(cx.as_ref()));
            }
        }
    }

    /// Counts one API write (for tests, benchmarks and `/metrics`).
    /// Since when this replica acts (start-up or leadership): no stall is counted from before.
    pub fn acting_since(&self) -> jiff::Timestamp {
        *self
            .acting_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn count_write(&self, kind: WriteKind) {
        self.writes.add(kind);
        self.metrics.write(kind.label());
    }

    /// Whether the cached object is the one our last status write was computed from (the cache lags our write).
    pub fn cache_lags_own_write(&self, uid: &str, resource_version: Option<&str>) -> bool {
        let Ok(mut versions) = self.stale_versions.lock() else {
            return false;
        };
        match (versions.get(uid), resource_version) {
            (Some(before), Some(now)) if before == now => true,
            (Some(_), _) => {
                versions.remove(uid);
                false
            }
            _ => false,
        }
    }

    /// Remembers that a status write was computed from `resource_version`.
    pub fn wrote_status_from(&self, uid: &str, resource_version: Option<&str>) {
        if let (Ok(mut versions), Some(rv)) = (self.stale_versions.lock(), resource_version) {
            versions.insert(uid.to_string(), rv.to_string());
        }
    }

    /// Records a failure of `uid` and returns how many in a row.
    pub fn record_failure(&self, uid: &str) -> u32 {
        let Ok(mut failures) = self.failures.lock() else {
            return 1;
        };
        let count = failures.entry(uid.to_string()).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    /// Clears the failure streak of `uid`.
    pub fn record_success(&self, uid: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(uid);
        }
    }

    /// Forgets everything about an execution that is gone (called when the watch reports it deleted, so nothing
    /// kept per execution outlives it: review finding 18).
    pub fn forget(&self, uid: &str) {
        self.record_success(uid);
        self.progress.forget(uid);
        if let Ok(mut versions) = self.stale_versions.lock() {
            versions.remove(uid);
        }
    }
}

/// Seconds to wait after the `failures`-th consecutive failure: 1, 2, 4, ... capped at 300.
/// Default of `--progress-interval`: reports cost at most one status write per execution this often.
pub const DEFAULT_PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

pub fn error_backoff_seconds(failures: u32) -> u64 {
    1u64.checked_shl(failures.saturating_sub(1).min(16))
        .unwrap_or(u64::MAX)
        .min(300)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_backoff_doubles_to_a_cap() {
        let got: Vec<u64> = [1, 2, 3, 9, 10, 50]
            .iter()
            .map(|f| error_backoff_seconds(*f))
            .collect();
        assert_eq!(got, [1, 2, 4, 256, 300, 300]);
    }

    /// Review finding 19: a reconcile that began while leading must not write once the last renewal's deadline has
    /// passed, even before the elector notices the loss.
    #[tokio::test(start_paused = true)]
    async fn leadership_lapses_at_the_renew_deadline() {
        let (ctx, _api) = super::super::mocked_context();
        assert!(
            ctx.is_leading(),
            "without leader election a replica always leads"
        );
        ctx.lead_until(crate::leader::elector::now() + std::time::Duration::from_secs(7));
        tokio::time::advance(std::time::Duration::from_millis(6_999)).await;
        assert!(ctx.is_leading());
        tokio::time::advance(std::time::Duration::from_millis(1)).await;
        assert!(!ctx.is_leading(), "the deadline has passed");
        ctx.lead_until(crate::leader::elector::now() + std::time::Duration::from_secs(7));
        assert!(ctx.is_leading(), "a renewal extends it");
    }

    /// Review finding 18: failure streaks and stale versions of deleted executions were kept forever (their
    /// admissions leave with them from the queue book: `queues::tests`).
    #[tokio::test]
    async fn forgetting_an_execution_drops_everything_kept_for_it() {
        let (ctx, _api) = super::super::mocked_context();
        for uid in ["gone", "kept"] {
            ctx.record_failure(uid);
            ctx.wrote_status_from(uid, Some("5"));
        }
        ctx.forget("gone");
        assert_eq!(
            ctx.failures.lock().unwrap().keys().collect::<Vec<_>>(),
            ["kept"]
        );
        assert_eq!(
            ctx.stale_versions
                .lock()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["kept"]
        );
    }
}
