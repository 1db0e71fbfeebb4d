//! Notifications: every transition of an execution delivered to the `CrewSink`s of its namespace that want it, as
//! CloudEvents over HTTP, at least once and in order per execution, across restarts, without a write per delivery.
//!
//! - The executions watch offers each execution's transitions ([`Notifier::observe`]) to every matching sink's
//!   outbox (`crew_core::notify::outbox`): one lane per execution, delivered in order, lanes in parallel.
//! - Each sink has its own task ([`sink::run`]): a hanging or failing receiver slows only its own sink, never a run
//!   or another sink; failures retry with backoff and jitter, and after the retry limit are dropped visibly.
//! - The delivery position (`status.deliveredUpTo`) is written with the sink's counts at most every
//!   [`checkpoint::INTERVAL`], and only when something changed; after a restart the operator delivers again from
//!   it (receivers drop the duplicates by id). Status writes still on their way hold the position back
//!   ([`Notifier::writing`]), so nothing written is skipped.
//! - While a matching sink has something of an execution to deliver, the execution keeps the finalizer
//!   [`RETAIN_FINALIZER`] (added when it starts, removed once everything of its end is delivered): deleting it
//!   (TTL, `kubectl delete`) waits for its last events.
//! - Credentials come only from Secrets labelled `crew.dev/sink-credentials: "true"` ([`credentials`]).

pub mod checkpoint;
pub mod credentials;
pub mod deliver;
pub mod sink;

use crate::metrics::Metrics;
use crew_api::sink::{CrewSink, SinkEventType};
use crew_api::{CrewExecution, Phase};
use crew_core::notify::events::{progress, transitions};
use crew_core::notify::outbox::Outbox;
use crew_core::notify::selector::wants;
use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// The finalizer that keeps an execution until the operator is done with it (its events delivered).
pub const RETAIN_FINALIZER: &str = "crew.dev/retain";

/// (namespace, name) of a sink.
pub type SinkKey = (String, String);

/// One sink's delivery state.
pub struct SinkState {
    /// The sink as last seen.
    pub sink: Arc<CrewSink>,
    /// What waits for delivery.
    pub outbox: Outbox,
    /// The delivery position it started from (its status, or its creation).
    pub start: Timestamp,
    /// Delivered, failed (totals including those its status counted before).
    pub delivered: u64,
    /// See `delivered`.
    pub failed: u64,
    /// When the receiver last acknowledged.
    pub last_delivery: Option<Timestamp>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Whether the last delivery failed.
    pub failing: bool,
    /// Something changed since the last status write.
    pub dirty: bool,
    /// Wakes the sink's task.
    pub wake: Arc<tokio::sync::Notify>,
    /// Its task.
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for SinkState {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The notifications side of the operator (see the module documentation).
#[derive(Default)]
pub struct Notifier {
    sinks: Mutex<HashMap<SinkKey, SinkState>>,
    /// Status writes on their way: execution UID → the time of the oldest transition they record.
    writing: Mutex<HashMap<String, Timestamp>>,
    /// The credentials of opted-in Secrets.
    pub credentials: credentials::CredentialIndex,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn key_of(sink: &CrewSink) -> SinkKey {
    (sink.namespace().unwrap_or_default(), sink.name_any())
}

impl Notifier {
    /// The sinks' states, locked.
    pub fn sinks(&self) -> MutexGuard<'_, HashMap<SinkKey, SinkState>> {
        lock(&self.sinks)
    }

    /// Whether any sink exists in `namespace`.
    pub fn has_sinks_in(&self, namespace: &str) -> bool {
        self.sinks().keys().any(|(ns, _)| ns == namespace)
    }

    /// A status write of execution `uid` recording transitions from `time` on is on its way: the delivery position
    /// stays before it until the watch shows the write (or it is known not to have happened).
    pub fn writing(&self, uid: &str, time: Timestamp) {
        lock(&self.writing)
            .entry(uid.to_string())
            .and_modify(|t| *t = (*t).min(time))
            .or_insert(time);
    }

    /// The status write of `uid` did not happen (refused as stale).
    pub fn not_written(&self, uid: &str) {
        lock(&self.writing).remove(uid);
    }

    /// The oldest transition of the status writes on their way (writes older than a few minutes are given up:
    /// a write the watch never shows did not happen).
    fn oldest_writing(&self, now: Timestamp) -> Option<Timestamp> {
        let mut writing = lock(&self.writing);
        writing.retain(|_, t| now.duration_since(*t) < SignedDuration::from_mins(10));
        writing.values().min().copied()
    }

    /// The delivery position of `key` at `now`.
    pub fn watermark(&self, state: &SinkState, now: Timestamp) -> Timestamp {
        state
            .outbox
            .watermark(self.oldest_writing(now), now)
            .max(state.start)
    }

    /// A sink appeared or changed: its state is kept (or made, starting from its status's position); a new sink,
    /// or one whose spec changed, is offered what every cached execution of its namespace has not delivered. Returns whether it is new, and
    /// whether its spec changed (what it holds executions for may have).
    pub fn sink_seen(
        &self,
        sink: Arc<CrewSink>,
        executions: &[Arc<CrewExecution>],
    ) -> (bool, bool) {
        let key = key_of(&sink);
        let mut sinks = self.sinks();
        let new = !sinks.contains_key(&key);
        let changed = sinks
            .get(&key)
            .is_some_and(|state| state.sink.metadata.generation != sink.metadata.generation);
        let state = sinks.entry(key.clone()).or_insert_with(|| {
            let status = sink.status.clone().unwrap_or_default();
            let created = sink.metadata.creation_timestamp.as_ref().map(|t| t.0);
            SinkState {
                start: status
                    .delivered_up_to
                    .map(|t| t.0)
                    .or(created)
                    .unwrap_or_else(Timestamp::now),
                delivered: status.delivered,
                failed: status.failed,
                last_delivery: status.last_delivery_time.map(|t| t.0),
                last_error: status.last_error,
                failing: false,
                dirty: false,
                outbox: Outbox::default(),
                wake: Arc::new(tokio::sync::Notify::new()),
                task: None,
                sink: sink.clone(),
            }
        });
        state.sink = sink;
        // Its own status write (every few seconds while it delivers) changes nothing it wants: only a new sink or
        // a new spec (types, selector) looks through the namespace's executions again.
        if new || changed {
            for cx in executions
                .iter()
                .filter(|cx| cx.namespace().as_deref() == Some(key.0.as_str()))
            {
                offer(state, cx, Timestamp::now());
            }
        }
        state.wake.notify_one();
        (new, changed)
    }

    /// This replica became the leader: every sink starts again from the position its status records (what the
    /// previous leader delivered), and the cached executions offer what is newer. (A standby offers nothing.)
    pub fn restart_from_positions(&self, executions: &[Arc<CrewExecution>]) {
        let now = Timestamp::now();
        for ((namespace, _), state) in self.sinks().iter_mut() {
            state.outbox = Outbox::default();
            if let Some(position) = state
                .sink
                .status
                .as_ref()
                .and_then(|s| s.delivered_up_to.as_ref())
            {
                state.start = position.0;
            }
            for cx in executions
                .iter()
                .filter(|cx| cx.namespace().as_deref() == Some(namespace))
            {
                offer(state, cx, now);
            }
            state.wake.notify_one();
        }
    }

    /// Gives sink `key` its running task.
    pub fn attach(&self, key: &SinkKey, task: tokio::task::JoinHandle<()>) {
        match self.sinks().get_mut(key) {
            Some(state) => state.task = Some(task),
            None => task.abort(),
        }
    }

    /// A sink is gone: its task stops, what waited for it is dropped (nothing is held for it any longer).
    pub fn sink_gone(&self, sink: &CrewSink) {
        self.sinks().remove(&key_of(sink));
    }

    /// An execution as the watch shows it: offered to every sink of its namespace that wants it; a status write
    /// it shows no longer holds the delivery position back.
    pub fn observe(&self, cx: &CrewExecution) {
        let uid = cx.uid().unwrap_or_default();
        let newest = cx
            .status
            .as_ref()
            .and_then(|s| s.history.last())
            .map(|e| e.time.0);
        {
            let mut writing = lock(&self.writing);
            if let (Some(pending), Some(newest)) = (writing.get(&uid), newest)
                && newest >= *pending
            {
                writing.remove(&uid);
            }
        }
        let namespace = cx.namespace().unwrap_or_default();
        let now = Timestamp::now();
        for ((ns, _), state) in self.sinks().iter_mut() {
            if *ns == namespace && offer(state, cx, now) {
                state.wake.notify_one();
            }
        }
    }

    /// An execution is gone: the lanes that hold nothing more of it are forgotten.
    pub fn forget(&self, uid: &str) {
        for state in self.sinks().values_mut() {
            if state.outbox.is_clear(uid) {
                state.outbox.forget(uid);
            }
        }
        lock(&self.writing).remove(uid);
    }

    /// After a relist: forgets the lanes of executions no longer cached that hold nothing more.
    pub fn retain(&self, live: &HashSet<String>) {
        for state in self.sinks().values_mut() {
            state.outbox.retain(live);
        }
    }

    /// Whether `cx` must be kept (its finalizer stays): a sink of its namespace that matches it will be told more
    /// of it (it has not ended), or has not delivered everything yet.
    pub fn retains(&self, cx: &CrewExecution) -> bool {
        // A reconcile may read an object from the cache before the watch offered its transitions: offer them now
        // (an offer is idempotent), so an end not yet offered is never taken for an end delivered.
        self.observe(cx);
        let namespace = cx.namespace().unwrap_or_default();
        let uid = cx.uid().unwrap_or_default();
        let ended = cx.metadata.deletion_timestamp.is_some()
            || cx
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .is_some_and(Phase::is_terminal);
        let labels = cx.labels();
        self.sinks().iter().any(|((ns, _), state)| {
            *ns == namespace
                && !state.sink.spec.suspend
                && crew_core::notify::selector::matches(state.sink.spec.selector.as_ref(), labels)
                && (!ended || !state.outbox.is_clear(&uid))
        })
    }

    /// The executions whose finalizer may go now that `key`'s lane of them cleared (a reconcile releases it).
    pub fn released(&self, key: &SinkKey, uid: &str) -> bool {
        self.sinks()
            .get(key)
            .is_some_and(|state| state.outbox.is_clear(uid))
    }
}

/// Offers `cx`'s transitions since the sink's starting position (and its latest progress, throttled) to `state`;
/// returns whether anything joined.
fn offer(state: &mut SinkState, cx: &CrewExecution, now: Timestamp) -> bool {
    let spec = &state.sink.spec;
    let labels = cx.labels();
    if !crew_core::notify::selector::matches(spec.selector.as_ref(), labels) {
        return false;
    }
    let uid = cx.uid().unwrap_or_default();
    let wanted: Vec<_> = transitions(cx, Some(state.start))
        .into_iter()
        .filter(|n| wants(spec, n.kind, labels))
        .collect();
    let offered = state.outbox.offer(&uid, wanted);
    if offered.joined > 0 || offered.dropped > 0 {
        tracing::debug!(sink = %state.sink.name_any(), execution = %cx.name_any(), joined = offered.joined,
            dropped = offered.dropped, "offered");
    }
    if offered.dropped > 0 {
        state.failed += offered.dropped as u64;
        state.last_error = Some(format!(
            "{} events of {} dropped: {} events already wait (the receiver is down or slow)",
            offered.dropped,
            cx.name_any(),
            crew_core::notify::outbox::MAX_PENDING
        ));
        state.failing = true;
    }
    let mut joined = offered.joined > 0;
    if wants(spec, SinkEventType::ExecutionProgress, labels)
        && let Some(report) = progress(cx).filter(|p| p.time >= state.start)
    {
        let interval = SignedDuration::from_secs(i64::from(spec.progress_interval_seconds.max(1)));
        joined |= state.outbox.offer_progress(&uid, report, interval, now);
    }
    if joined {
        state.dirty = true;
    }
    joined
}

/// The reference of an execution, for a reconcile trigger.
pub fn execution_ref(namespace: &str, name: &str) -> ObjectRef<CrewExecution> {
    ObjectRef::new(name).within(namespace)
}

/// Counts deliveries in `metrics`.
pub fn count(metrics: &Metrics, key: &SinkKey, kind: SinkEventType, result: &str) {
    metrics.notification(&key.0, &key.1, kind.as_str(), result);
}
