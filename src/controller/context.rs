//! What every reconcile shares, built in order before the controller starts: the client, the settings, the caches
//! and indexes the watches fill, per-execution bookkeeping, leadership, the progress book, metrics, the Event queue
//! and the senders of the reconcile triggers that come from outside the watches.

use super::child_index::ChildIndex;
use super::events::EventQueue;
use super::refusals::PodRefusals;
use crate::metrics::{Metrics, WriteKind};
use crate::progress::book::ProgressBook;
use crate::settings::Settings;
use crew_api::{CrewExecution, CrewQueue};
use crew_core::lifecycle::queue_book::QueueBook;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use kube::Client;
use kube::runtime::reflector::{ObjectRef, Store};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Everything a reconcile needs besides the execution itself.
pub struct Context {
    /// API client.
    pub client: Client,
    /// The operator's settings, by group.
    pub settings: Arc<Settings>,
    /// The caches of executions and queues (filled by the watches).
    pub caches: Caches,
    /// What the watches of Jobs, pods and Job Events index, and the queue book.
    pub indexes: Indexes,
    /// Per execution: the version of our last status write, the failure streak.
    pub objects: ObjectStates,
    /// Whether, and since when, this replica may act.
    pub leadership: Leadership,
    /// Workers' progress reports not written yet, and when to write them (`crate::progress`).
    pub progress: ProgressBook,
    /// Prometheus metrics, among them the one count of API writes.
    pub metrics: Arc<Metrics>,
    /// Publishes the Events about executions (in the background).
    pub events: EventQueue,
    /// Reconcile requests from outside the watches (freed queue slots, due progress reports, deliveries done).
    pub triggers: Triggers,
    /// Deliveries to the CrewSinks.
    pub notify: crate::notify::Notifier,
    /// The archive, when the operator has one (`--archive-url`).
    pub archive: Option<Arc<crate::archive::Archiver>>,
}

/// The caches the controller reads, created before the [`Context`]; their writers belong to the watches.
pub struct Caches {
    /// CrewExecutions (slimmed: no managed fields, no payload once started).
    pub executions: Store<CrewExecution>,
    /// CrewQueues.
    pub queues: Store<CrewQueue>,
}

/// Indexes the watches keep besides the caches.
#[derive(Default)]
pub struct Indexes {
    /// Jobs and worker outcomes, from the Jobs and pods watches.
    pub children: ChildIndex,
    /// The Job controller's latest `FailedCreate` Event about each Job (why it has no pod).
    pub refusals: PodRefusals,
    /// Every queue's members, in admission order, with the slots they hold (and admissions not yet visible).
    book: Mutex<QueueBook>,
}

impl Indexes {
    /// The queue book. A lock poisoned by a panic elsewhere is taken anyway: refusing it would hold every queue's
    /// admissions forever.
    pub fn book(&self) -> MutexGuard<'_, QueueBook> {
        self.book
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether this replica may act: the one place readiness is derived from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// The Jobs and pods watches have listed.
    pub jobs_and_pods: bool,
    /// The executions cache has listed.
    pub executions: bool,
    /// The queues cache has listed.
    pub queues: bool,

    /// This replica leads (always, without leader election).
    pub leading: bool,
}

impl Readiness {
    /// Every cache has listed.
    pub fn synced(&self) -> bool {
        self.jobs_and_pods && self.executions && self.queues
    }

    /// May act: leading, with every cache listed.
    pub fn may_act(&self) -> bool {
        self.synced() && self.leading
    }
}

impl std::fmt::Display for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.synced() {
            write!(
                f,
                "not ready: caches listed: jobs+pods={} executions={} queues={}",
                self.jobs_and_pods, self.executions, self.queues
            )
        } else if self.leading {
            write!(f, "ok")
        } else {
            write!(f, "ok: standby, caches warm, not holding the leader Lease")
        }
    }
}

/// What the operator keeps per execution UID between reconciles.
#[derive(Default)]
pub struct ObjectStates(Mutex<HashMap<String, ObjectState>>);

/// One execution's bookkeeping.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectState {
    /// The resourceVersions our last writes of one reconcile were computed from: the cached object's, and the one
    /// its own finalizer change made, which its status write was then guarded by. While the cache still shows one of
    /// them, it has not seen our last write and the reconcile waits (no side effects on a stale view): the echo of
    /// the finalizer change alone must not let a reconcile decide on a status it has not seen.
    pub stale_versions: Vec<String>,
    /// Consecutive reconcile failures (for exponential error backoff).
    pub failures: u32,
    /// The category of the last failure the execution was told about (a Warning Event): one per category and
    /// streak, so a failing execution is told why without an Event per retry.
    pub reported: Option<crate::error::ErrorCategory>,
}

impl ObjectStates {
    fn locked(&self) -> MutexGuard<'_, HashMap<String, ObjectState>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the cached object is the one our last status write was computed from (the cache lags our write).
    pub fn cache_lags_own_write(&self, uid: &str, resource_version: Option<&str>) -> bool {
        let mut states = self.locked();
        let Some(state) = states.get_mut(uid) else {
            return false;
        };
        match resource_version {
            Some(now) if state.stale_versions.iter().any(|before| before == now) => true,
            _ => {
                state.stale_versions.clear();
                false
            }
        }
    }

    /// Remembers that a write was computed from `resource_version` (added to those of the same reconcile; a
    /// reconcile that runs clears them first, see [`ObjectStates::cache_lags_own_write`]).
    pub fn wrote_status_from(&self, uid: &str, resource_version: Option<&str>) {
        if let Some(rv) = resource_version {
            let mut states = self.locked();
            let versions = &mut states.entry(uid.to_string()).or_default().stale_versions;
            if !versions.iter().any(|v| v == rv) {
                versions.push(rv.to_string());
            }
        }
    }

    /// Records a failure of `uid` in `category`: how many in a row, and whether the execution should be told
    /// (the first failure of this category in the streak).
    pub fn record_failure(&self, uid: &str, category: crate::error::ErrorCategory) -> (u32, bool) {
        let mut states = self.locked();
        let state = states.entry(uid.to_string()).or_default();
        state.failures = state.failures.saturating_add(1);
        let tell = state.reported != Some(category);
        state.reported = Some(category);
        (state.failures, tell)
    }

    /// Clears the failure streak of `uid`.
    pub fn record_success(&self, uid: &str) {
        if let Some(state) = self.locked().get_mut(uid) {
            state.failures = 0;
            state.reported = None;
        }
    }

    /// Forgets everything kept for an execution that is gone (nothing kept per execution outlives it).
    pub fn forget(&self, uid: &str) {
        self.locked().remove(uid);
    }

    /// Keeps only the executions whose UID `live` holds.
    pub fn retain(&self, live: &std::collections::HashSet<String>) {
        self.locked().retain(|uid, _| live.contains(uid));
    }

    /// What is kept for `uid` (tests).
    pub fn of(&self, uid: &str) -> Option<ObjectState> {
        self.locked().get(uid).cloned()
    }
}

/// Whether, and since when, this replica may act.
pub struct Leadership {
    /// False while a standby under leader election (true without it).
    leading: AtomicBool,
    /// Under leader election, the instant the last renewal's deadline passes: no write is sent after it, even if
    /// the elector has not yet noticed the loss (a starved runtime). None without leader election.
    until: Mutex<Option<std::time::Instant>>,
    /// Since when this replica acts (start-up, or the last time it became the leader): stall clocks start here.
    since: Mutex<jiff::Timestamp>,
    /// Told each time this replica becomes the leader (every cached execution is then reconciled).
    gained: UnboundedSender<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Leadership {
    fn new(gained: UnboundedSender<()>) -> Leadership {
        Leadership {
            leading: AtomicBool::new(true),
            until: Mutex::new(None),
            since: Mutex::new(jiff::Timestamp::now()),
            gained,
        }
    }

    /// Whether this replica leads (always, without leader election): it holds the Lease and its last renewal's
    /// deadline has not passed. Checked at the start of a reconcile and again just before each write.
    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::Relaxed)
            && lock(&self.until).is_none_or(|until| crate::leader::elector::now() < until)
    }

    /// Records the instant until which this replica may write (the renew deadline of its last Lease renewal).
    pub fn lead_until(&self, until: std::time::Instant) {
        *lock(&self.until) = Some(until);
    }

    /// Marks this replica as leading (may act) or standing by; on becoming the leader every cached execution is
    /// reconciled (a standby's reconciles did nothing and wait for this).
    fn set(&self, leading: bool) {
        let was = self.leading.swap(leading, Ordering::Relaxed);
        if leading && !was {
            *lock(&self.since) = jiff::Timestamp::now();
            let _ = self.gained.unbounded_send(());
        }
    }

    /// Since when this replica acts (start-up or leadership): no stall is counted from before.
    pub fn since(&self) -> jiff::Timestamp {
        *lock(&self.since)
    }
}

/// Senders of the reconcile triggers that do not come from a watch (each is one `reconcile_on` stream of the
/// controller, see [`super::Operator::run`]).
#[derive(Clone)]
pub struct Triggers {
    /// Waiting executions admission lets in now: a slot freed.
    slots_freed: UnboundedSender<ObjectRef<CrewExecution>>,
    /// Executions whose worker reports are due to be written.
    reports_due: UnboundedSender<ObjectRef<CrewExecution>>,
    /// Executions a sink has delivered everything of (their finalizer may go).
    retention: UnboundedSender<ObjectRef<CrewExecution>>,
}

/// The receiving ends of [`Triggers`] and of [`Leadership`]'s gains, taken by the controller when it starts.
pub struct TriggerStreams {
    /// See [`Triggers::slot_freed`].
    pub slots_freed: UnboundedReceiver<ObjectRef<CrewExecution>>,
    /// See [`Triggers::report_due`].
    pub reports_due: UnboundedReceiver<ObjectRef<CrewExecution>>,
    /// See [`Triggers::retention_may_end`].
    pub retention: UnboundedReceiver<ObjectRef<CrewExecution>>,
    /// One item each time this replica becomes the leader.
    pub leadership_gained: UnboundedReceiver<()>,
}

impl Triggers {
    /// Reconcile `execution`: a slot it may take is free.
    pub fn slot_freed(&self, execution: ObjectRef<CrewExecution>) {
        let _ = self.slots_freed.unbounded_send(execution);
    }

    /// Reconcile `execution`: its worker's reports are due.
    pub fn report_due(&self, execution: ObjectRef<CrewExecution>) {
        let _ = self.reports_due.unbounded_send(execution);
    }

    /// Reconcile `execution`: a sink delivered everything it had of it (its finalizer may go).
    pub fn retention_may_end(&self, execution: ObjectRef<CrewExecution>) {
        let _ = self.retention.unbounded_send(execution);
    }
}

/// The archiver of `connection` (none without one, or when its URL does not parse: `main` refuses such a URL first).
fn archiver(
    connection: &Option<crate::archive::connect::ArchiveConnection>,
    retention_days: Option<u32>,
) -> Option<Arc<crate::archive::Archiver>> {
    let pool = crate::archive::connect::pool(connection.as_ref()?)
        .inspect_err(|error| tracing::error!(%error, "the archive is off"))
        .ok()?;
    Some(Arc::new(crate::archive::Archiver::new(
        pool,
        retention_days,
    )))
}

/// The writers of the caches a [`Context`] reads, for the watches that fill them.
pub struct CacheWriters {
    /// Writes [`Caches::executions`].
    pub executions: kube::runtime::reflector::store::Writer<CrewExecution>,
    /// Writes [`Caches::queues`].
    pub queues: kube::runtime::reflector::store::Writer<CrewQueue>,
}

impl Context {
    /// A context for `client` and `settings` (within a Tokio runtime: it starts the Event lanes), with empty caches
    /// and indexes; the writers of the caches and the trigger streams go to the controller.
    pub fn new(client: Client, settings: Settings) -> (Arc<Context>, CacheWriters, TriggerStreams) {
        let metrics = Arc::new(Metrics::default());
        let instance = settings
            .connection
            .instance
            .clone()
            .or_else(super::host_name)
            .unwrap_or_else(|| super::REPORTER.to_string());
        let events = super::events::EventQueue::start(
            super::events::EventPublisher::new(client.clone(), super::REPORTER, &instance),
            super::events::count_published(metrics.clone()),
        );
        let (executions, execution_writer) = kube::runtime::reflector::store();
        let (queues, queue_writer) = kube::runtime::reflector::store();
        let (slots_freed, slots_freed_rx) = unbounded();
        let (reports_due, reports_due_rx) = unbounded();
        let (retention, retention_rx) = unbounded();
        let (gained, gained_rx) = unbounded();
        let notify = crate::notify::Notifier::default();
        let (settings_archive, settings_retention) =
            (settings.archive.clone(), settings.archive_retention_days);
        if !settings.notify.sink_credentials {
            notify.credentials.turn_off();
        }
        let ctx = Context {
            client,
            progress: ProgressBook::new(settings.progress.interval()),
            settings: Arc::new(settings),
            caches: Caches { executions, queues },
            indexes: Indexes::default(),
            objects: ObjectStates::default(),
            leadership: Leadership::new(gained),
            metrics,
            events,
            triggers: Triggers {
                slots_freed,
                reports_due,
                retention,
            },
            notify,
            archive: archiver(&settings_archive, settings_retention),
        };
        (
            Arc::new(ctx),
            CacheWriters {
                executions: execution_writer,
                queues: queue_writer,
            },
            TriggerStreams {
                slots_freed: slots_freed_rx,
                reports_due: reports_due_rx,
                retention: retention_rx,
                leadership_gained: gained_rx,
            },
        )
    }

    /// Where readiness stands: which caches have listed, and whether this replica leads.
    pub fn readiness(&self) -> Readiness {
        Readiness {
            jobs_and_pods: self.indexes.children.synced(),
            executions: ready_now(&self.caches.executions),
            queues: ready_now(&self.caches.queues),
            leading: self.leadership.is_leading(),
        }
    }

    /// Whether this replica leads (see [`Leadership::is_leading`]).
    pub fn is_leading(&self) -> bool {
        self.leadership.is_leading()
    }

    /// Marks this replica as leading or standing by, in readiness and in the `crew_leader` gauge. A replica that
    /// becomes the leader delivers to the sinks from the positions their status records.
    pub fn set_leading(&self, leading: bool) {
        let was = self.leadership.is_leading();
        self.leadership.set(leading);
        self.metrics.leader.set(i64::from(leading));
        if leading && !was {
            self.notify
                .restart_from_positions(&self.caches.executions.state());
        }
    }

    /// Whether `cx` must be kept (its finalizer stays): a sink still needs it, or the archive has not stored it.
    pub fn retains(&self, cx: &CrewExecution) -> bool {
        let unarchived = self
            .archive
            .as_ref()
            .is_some_and(|archive| !archive.stored(cx));
        // Both are asked: a sink's `retains` also offers the execution its transitions.
        self.notify.retains(cx) | unarchived
    }

    /// What the archive holds of `cx` ([`ArchiveFact::Off`](crew_core::lifecycle::ArchiveFact::Off) without one).
    pub fn archive_fact(&self, cx: &CrewExecution) -> crew_core::lifecycle::ArchiveFact {
        self.archive
            .as_ref()
            .map_or(crew_core::lifecycle::ArchiveFact::Off, |archive| {
                archive.fact(cx)
            })
    }

    /// Counts one API write (`crew_api_writes_total{kind}`).
    pub fn count_write(&self, kind: WriteKind) {
        self.metrics.write(kind);
    }

    /// Forgets everything about an execution that is gone (when the watch reports it deleted, so nothing kept per
    /// execution outlives it).
    pub fn forget(&self, uid: &str) {
        self.objects.forget(uid);
        self.progress.forget(uid);
        self.notify.forget(uid);
        if let Some(archive) = &self.archive {
            archive.forget(uid);
        }
    }

    /// Forgets everything about executions the cache no longer holds (after a relist: those deleted while the watch
    /// was down got no Delete event).
    pub fn forget_all_but_cached(&self) {
        let live: std::collections::HashSet<String> = self
            .caches
            .executions
            .state()
            .iter()
            .filter_map(|cx| cx.metadata.uid.clone())
            .collect();
        self.objects.retain(&live);
        self.progress.retain(&live);
        self.notify.retain(&live);
        if let Some(archive) = &self.archive {
            archive.retain(&live);
        }
    }
}

/// Whether `store` has had its initial list (without waiting for it).
pub fn ready_now<K>(store: &Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    futures::FutureExt::now_or_never(store.wait_until_ready()).is_some_and(|ready| ready.is_ok())
}

/// Seconds to wait after the `failures`-th consecutive failure: 1, 2, 4, ... capped at 300.
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
        let leadership = &ctx.leadership;
        leadership.lead_until(crate::leader::elector::now() + std::time::Duration::from_secs(7));
        tokio::time::advance(std::time::Duration::from_millis(6_999)).await;
        assert!(leadership.is_leading());
        tokio::time::advance(std::time::Duration::from_millis(1)).await;
        assert!(!leadership.is_leading(), "the deadline has passed");
        leadership.lead_until(crate::leader::elector::now() + std::time::Duration::from_secs(7));
        assert!(leadership.is_leading(), "a renewal extends it");
    }

    /// Review finding 18: failure streaks and stale versions of deleted executions were kept forever (their
    /// admissions leave with them from the queue book: `queues::tests`).
    #[tokio::test]
    async fn forgetting_an_execution_drops_everything_kept_for_it() {
        let (ctx, _api) = super::super::mocked_context();
        for uid in ["gone", "kept"] {
            ctx.objects
                .record_failure(uid, crate::error::ErrorCategory::ApiError);
            ctx.objects.wrote_status_from(uid, Some("5"));
        }
        ctx.forget("gone");
        assert_eq!(ctx.objects.of("gone"), None);
        assert_eq!(
            ctx.objects.of("kept"),
            Some(ObjectState {
                stale_versions: vec!["5".into()],
                failures: 1,
                reported: Some(crate::error::ErrorCategory::ApiError),
            })
        );
    }

    /// A reconcile that changed the finalizer (from version 5 to 6) and then wrote the status (6 to 7): the echo of
    /// its finalizer change alone (6) is still stale, as is the version it decided on (5); only 7 is not.
    #[tokio::test]
    async fn the_cache_lags_until_it_shows_the_last_write_of_a_reconcile() {
        let (ctx, _api) = super::super::mocked_context();
        ctx.objects.wrote_status_from("u", Some("5"));
        ctx.objects.wrote_status_from("u", Some("5"));
        ctx.objects.wrote_status_from("u", Some("6"));
        assert!(ctx.objects.cache_lags_own_write("u", Some("5")));
        assert!(ctx.objects.cache_lags_own_write("u", Some("6")));
        assert!(!ctx.objects.cache_lags_own_write("u", Some("7")));
        assert!(
            !ctx.objects.cache_lags_own_write("u", Some("6")),
            "once past, the versions are forgotten"
        );
        assert!(!ctx.objects.cache_lags_own_write("other", Some("5")));
    }

    #[tokio::test]
    async fn a_failure_streak_is_told_once_per_category() {
        use crate::error::ErrorCategory::{ApiError, BuildError};
        let (ctx, _api) = super::super::mocked_context();
        let told: Vec<_> = [ApiError, ApiError, ApiError, BuildError, BuildError]
            .into_iter()
            .map(|category| ctx.objects.record_failure("u", category))
            .collect();
        assert_eq!(
            told,
            [(1, true), (2, false), (3, false), (4, true), (5, false)]
        );
        ctx.objects.record_success("u");
        assert_eq!(ctx.objects.record_failure("u", BuildError), (1, true));
    }

    #[tokio::test]
    async fn a_cache_that_shows_our_write_ends_the_wait() {
        let (ctx, _api) = super::super::mocked_context();
        ctx.objects.wrote_status_from("u", Some("5"));
        assert!(ctx.objects.cache_lags_own_write("u", Some("5")));
        assert!(!ctx.objects.cache_lags_own_write("u", Some("6")));
        assert!(
            !ctx.objects.cache_lags_own_write("u", Some("5")),
            "the wait ended with the newer version"
        );
        assert!(!ctx.objects.cache_lags_own_write("other", Some("5")));
    }

    /// A context whose client talks to nobody, with the writers of its caches and its trigger streams.
    fn unconnected() -> (Arc<Context>, CacheWriters, TriggerStreams) {
        Context::new(
            kube::Client::new(
                tower_test::mock::pair::<
                    http::Request<kube::client::Body>,
                    http::Response<kube::client::Body>,
                >()
                .0,
                "default",
            ),
            Settings::default(),
        )
    }

    #[tokio::test]
    async fn becoming_the_leader_asks_for_every_execution_once() {
        let (ctx, cache_writers, mut streams) = unconnected();
        drop(cache_writers);
        ctx.set_leading(true);
        assert!(
            streams.leadership_gained.try_recv().is_err(),
            "already leading: no gain"
        );
        ctx.set_leading(false);
        ctx.set_leading(true);
        assert_eq!(streams.leadership_gained.try_recv().ok(), Some(()));
        assert!(!ctx.readiness().synced(), "nothing has listed");
    }

    /// Review finding 13: executions deleted while the watch was down got no Delete event, so what was kept for
    /// them stayed for good; the relist now drops it.
    #[tokio::test]
    async fn a_relist_forgets_the_executions_it_no_longer_shows() {
        let (ctx, mut caches, _triggers) = unconnected();
        let execution = |uid: &str| {
            let mut cx = CrewExecution::new(uid, Default::default());
            cx.metadata.namespace = Some("ns".into());
            cx.metadata.uid = Some(uid.into());
            cx
        };
        for uid in ["kept", "gone"] {
            ctx.objects
                .record_failure(uid, crate::error::ErrorCategory::ApiError);
        }
        use kube::runtime::watcher::Event;
        caches.executions.apply_watcher_event(&Event::Init);
        caches
            .executions
            .apply_watcher_event(&Event::InitApply(execution("kept")));
        caches.executions.apply_watcher_event(&Event::InitDone);
        ctx.forget_all_but_cached();
        assert!(ctx.objects.of("kept").is_some());
        assert_eq!(ctx.objects.of("gone"), None);
    }
}
