//! The archive: every finished execution (and every one deleted before it finished) stored in PostgreSQL with its
//! history, step attempts, labels and posted results, and counted in statistics rollups — so they outlive the
//! object. Optional (`--archive-url`).
//!
//! - The executions watch offers each execution that finished or is being deleted ([`Archiver::offer`]); a sweep
//!   every [`SWEEP_INTERVAL`] offers every cached one again (after downtime of the operator or the database).
//! - One task ([`Archiver::run`], on the leader) writes them, a few at a time ([`write`]: one transaction each,
//!   idempotent by uid and resource version). A failed write is retried with backoff; the reconciles of other
//!   executions never wait for the database.
//! - Until its row is committed, an execution keeps the operator's finalizer (the one the notifications use), so
//!   neither its TTL nor `kubectl delete` removes it first; a finished run then records `Archived=True` and its TTL
//!   may act. A failing write shows as `Archived=False` (with why), a Warning Event and
//!   `crew_archive_writes_total{result="error"}`.

pub mod connect;
pub mod migrations;
pub mod read;
pub mod serve;
pub mod write;

use crate::controller::context::Context;
use crate::controller::watches;
use crew_api::{ConditionType, CrewExecution};
use crew_core::archive::{ArchiveRecord, ResultLocation};
use crew_core::lifecycle::ArchiveFact;
use crew_core::lifecycle::conditions::is_true;
use deadpool_postgres::Pool;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, ResourceExt};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use write::StoredResult;

/// How often every cached execution is offered again.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// Longest wait between two attempts of one write.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// The longest one write (or the migration) may take: a database that hangs fails the write, visibly, instead of
/// holding the archiver (and every run's finalizer) for ever.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Archived executions deleted at most per sweep for `--archive-retention-days`.
pub const MAX_EXPIRED_PER_SWEEP: u64 = 100_000;
/// Writes in flight at once (the pool's size).
const PARALLEL_WRITES: usize = connect::POOL_SIZE;

/// Why one write failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// No connection to the database.
    #[error("the database is unreachable: {0}")]
    Unreachable(String),
    /// The database did not finish the write in time (it hangs, or the network to it does).
    #[error("the database did not answer within {} s", WRITE_TIMEOUT.as_secs())]
    TimedOut,
    /// The database refused a statement.
    #[error("the database refused the write: {0}")]
    Database(#[from] tokio_postgres::Error),
    /// The schema could not be brought up to date.
    #[error("the archive's schema could not be migrated: {0}")]
    Migration(#[from] migrations::MigrationError),
    /// A result ConfigMap could not be read.
    #[error("a result could not be read: {0}")]
    Kube(#[from] kube::Error),
}

impl ArchiveError {
    /// Why, in words that stay the same across retries of the same failure (the `Archived` condition's message:
    /// a new message is a status write).
    pub fn summary(&self) -> String {
        match self {
            ArchiveError::Unreachable(_) => "the database is unreachable; retrying".into(),
            ArchiveError::TimedOut => format!(
                "the database did not answer within {} s; retrying",
                WRITE_TIMEOUT.as_secs()
            ),
            ArchiveError::Database(e) => match e.code() {
                Some(code) => format!(
                    "the database refused the write (SQLSTATE {}); retrying",
                    code.code()
                ),
                None => "the connection to the database failed; retrying".into(),
            },
            ArchiveError::Migration(migrations::MigrationError::Newer { found, known }) => format!(
                "the archive's schema is at version {found}, newer than this operator's {known}; upgrade the operator"
            ),
            ArchiveError::Migration(_) => {
                "the archive's schema could not be migrated; retrying".into()
            }
            ArchiveError::Kube(_) => "a result ConfigMap could not be read; retrying".into(),
        }
    }
}

/// Where one execution stands with the archive.
enum Standing {
    /// To be written at `due` (after `failures` failed attempts, the last one saying `error`).
    Waiting {
        due: Instant,
        failures: u32,
        error: Option<String>,
    },
    /// Being written.
    Writing {
        failures: u32,
        error: Option<String>,
    },
    /// Committed.
    Stored,
}

struct Entry {
    /// The newest snapshot offered (none once stored).
    object: Option<Arc<CrewExecution>>,
    standing: Standing,
}

/// The archive side of the operator (see the module documentation).
pub struct Archiver {
    pool: Pool,
    /// Archived executions older than this many days are deleted (`--archive-retention-days`).
    retention_days: Option<u32>,
    entries: Mutex<HashMap<String, Entry>>,
    wake: tokio::sync::Notify,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether `cx` is to be archived now: it finished, or it is being deleted.
fn due(cx: &CrewExecution) -> bool {
    cx.metadata.deletion_timestamp.is_some()
        || cx
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .is_some_and(crew_api::Phase::is_terminal)
}

/// Whether `cx`'s status records that it is stored.
fn recorded(cx: &CrewExecution) -> bool {
    cx.status
        .as_ref()
        .is_some_and(|s| is_true(&s.conditions, ConditionType::Archived))
}

impl Archiver {
    /// An archiver writing through `pool`, keeping archived executions `retention_days` (None: for ever).
    pub fn new(pool: Pool, retention_days: Option<u32>) -> Archiver {
        Archiver {
            pool,
            retention_days,
            entries: Mutex::default(),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// The pool (the read API uses it too).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// An execution as the watch (or the sweep) shows it: queued for writing if it finished or is being deleted and
    /// is not stored yet. A newer snapshot replaces the queued one.
    pub fn offer(&self, cx: &CrewExecution) {
        if !due(cx) || recorded(cx) {
            return;
        }
        let uid = cx.uid().unwrap_or_default();
        let mut entries = lock(&self.entries);
        match entries.get_mut(&uid) {
            Some(Entry {
                standing: Standing::Stored,
                ..
            }) => return,
            Some(entry) => {
                if entry
                    .object
                    .as_ref()
                    .is_some_and(|o| o.resource_version() == cx.resource_version())
                {
                    return;
                }
                entry.object = Some(Arc::new(cx.clone()));
            }
            None => {
                entries.insert(
                    uid,
                    Entry {
                        object: Some(Arc::new(cx.clone())),
                        standing: Standing::Waiting {
                            due: Instant::now(),
                            failures: 0,
                            error: None,
                        },
                    },
                );
            }
        }
        drop(entries);
        self.wake.notify_one();
    }

    /// Whether `cx` is stored (its status says so, or this replica committed it).
    pub fn stored(&self, cx: &CrewExecution) -> bool {
        recorded(cx)
            || matches!(
                lock(&self.entries).get(&cx.uid().unwrap_or_default()),
                Some(Entry {
                    standing: Standing::Stored,
                    ..
                })
            )
    }

    /// What the archive holds of `cx`, for its reconcile.
    pub fn fact(&self, cx: &CrewExecution) -> ArchiveFact {
        if recorded(cx) {
            return ArchiveFact::Committed;
        }
        match lock(&self.entries).get(&cx.uid().unwrap_or_default()) {
            Some(Entry {
                standing: Standing::Stored,
                ..
            }) => ArchiveFact::Committed,
            Some(Entry {
                standing:
                    Standing::Waiting {
                        error: Some(error), ..
                    }
                    | Standing::Writing {
                        error: Some(error), ..
                    },
                ..
            }) => ArchiveFact::Failing(error.clone()),
            _ => ArchiveFact::Pending,
        }
    }

    /// Executions waiting to be written (the `crew_archive_backlog` gauge).
    pub fn backlog(&self) -> usize {
        lock(&self.entries)
            .values()
            .filter(|e| !matches!(e.standing, Standing::Stored))
            .count()
    }

    /// An execution is gone: nothing more is kept of it.
    pub fn forget(&self, uid: &str) {
        lock(&self.entries).remove(uid);
    }

    /// After a relist: forgets the executions no longer cached.
    pub fn retain(&self, live: &HashSet<String>) {
        lock(&self.entries).retain(|uid, _| live.contains(uid));
    }

    /// Takes up to `max` writes that are due, marking them as being written; returns them and when the next
    /// waiting one is due.
    fn take_due(&self, max: usize) -> (Vec<Arc<CrewExecution>>, Option<Instant>) {
        let now = Instant::now();
        let mut taken = Vec::new();
        let mut next: Option<Instant> = None;
        for entry in lock(&self.entries).values_mut() {
            if let Standing::Waiting {
                due,
                failures,
                error,
            } = &entry.standing
            {
                if *due <= now && taken.len() < max {
                    entry.standing = Standing::Writing {
                        failures: *failures,
                        error: error.clone(),
                    };
                    taken.extend(entry.object.clone());
                } else {
                    next = Some(next.map_or(*due, |n| n.min(*due)));
                }
            }
        }
        (taken, next)
    }

    /// Records how writing `cx` went; returns whether its reconcile should run (stored, or a new failure to show).
    fn finished(&self, cx: &CrewExecution, outcome: &Result<write::Written, ArchiveError>) -> bool {
        let uid = cx.uid().unwrap_or_default();
        let mut entries = lock(&self.entries);
        let Some(entry) = entries.get_mut(&uid) else {
            return false;
        };
        let (failures, previous) = match &entry.standing {
            Standing::Writing { failures, error }
            | Standing::Waiting {
                failures, error, ..
            } => (*failures, error.clone()),
            Standing::Stored => return false,
        };
        // A newer snapshot offered while this one was written is written too (the guard keeps the newest).
        let newer = entry
            .object
            .as_ref()
            .is_some_and(|o| o.resource_version() != cx.resource_version());
        match outcome {
            Ok(_) if newer => {
                entry.standing = Standing::Waiting {
                    due: Instant::now(),
                    failures: 0,
                    error: None,
                };
                self.wake.notify_one();
                false
            }
            Ok(_) => {
                entry.standing = Standing::Stored;
                entry.object = None;
                true
            }
            Err(error) => {
                let summary = error.summary();
                let failures = failures + 1;
                entry.standing = Standing::Waiting {
                    due: Instant::now() + backoff(failures),
                    failures,
                    error: Some(summary.clone()),
                };
                previous.as_deref() != Some(summary.as_str())
            }
        }
    }

    /// Writes what is offered, for as long as the operator runs (only while this replica leads); migrates the
    /// schema first, retrying until the database answers.
    pub async fn run(self: Arc<Self>, ctx: Arc<Context>) {
        let mut migrated = false;
        let mut last_sweep = Instant::now();
        loop {
            if !ctx.is_leading() {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            if !migrated {
                let migration = tokio::time::timeout(WRITE_TIMEOUT, self.migrate())
                    .await
                    .unwrap_or(Err(ArchiveError::TimedOut));
                match migration {
                    Ok(applied) => {
                        tracing::info!(applied, "archive schema up to date");
                        migrated = true;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "archive schema migration failed; retrying in 5 s");
                        ctx.metrics.archive_write("error");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        continue;
                    }
                }
            }
            if last_sweep.elapsed() >= SWEEP_INTERVAL {
                last_sweep = Instant::now();
                for cx in ctx.caches.executions.state() {
                    self.offer(&cx);
                }
                self.expire().await;
            }
            let (batch, next) = self.take_due(PARALLEL_WRITES * 4);
            ctx.metrics.archive_backlog.set(self.backlog() as i64);
            if batch.is_empty() {
                let until_next = next.map_or(SWEEP_INTERVAL, |n| {
                    n.saturating_duration_since(Instant::now())
                });
                let wait = until_next.min(SWEEP_INTERVAL.saturating_sub(last_sweep.elapsed()));
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(wait.max(Duration::from_millis(10))) => {}
                }
                continue;
            }
            futures::stream::iter(batch)
                .map(|cx| {
                    let (this, ctx) = (self.clone(), ctx.clone());
                    async move {
                        let outcome = tokio::time::timeout(WRITE_TIMEOUT, this.archive(&ctx, &cx))
                            .await
                            .unwrap_or(Err(ArchiveError::TimedOut));
                        this.report(&ctx, &cx, &outcome);
                    }
                })
                .buffer_unordered(PARALLEL_WRITES)
                .collect::<Vec<()>>()
                .await;
        }
    }

    /// Deletes what is past `--archive-retention-days`, a batch at a time, at most [`MAX_EXPIRED_PER_SWEEP`] rows per
    /// sweep (the rest the next minute).
    async fn expire(&self) {
        let Some(days) = self.retention_days else {
            return;
        };
        let before =
            jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * i64::from(days));
        let Ok(client) = self.pool.get().await else {
            return;
        };
        let mut deleted = 0;
        while deleted < MAX_EXPIRED_PER_SWEEP {
            match write::expire(&client, before).await {
                Ok(count) => {
                    deleted += count;
                    if count < write::EXPIRE_BATCH as u64 {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "deleting expired archived executions failed; again in a minute");
                    break;
                }
            }
        }
        if deleted > 0 {
            tracing::info!(
                deleted,
                days,
                "archived executions past their retention deleted"
            );
        }
    }

    async fn migrate(&self) -> Result<usize, ArchiveError> {
        let mut client = self
            .pool
            .get()
            .await
            .map_err(|e| ArchiveError::Unreachable(e.to_string()))?;
        Ok(migrations::migrate(&mut client).await?)
    }

    /// Writes one execution with its results. A cached copy whose payload (`spec.crew`, `spec.inputs`) the cache
    /// dropped is read afresh, since the archive keeps the whole object; any other is archived as cached (without
    /// `managedFields` and kubectl's last-applied annotation, a copy of the spec). Measured (API server audit log,
    /// 1 000 × 1): reading every run afresh was one `GET crewexecutions` per archived run.
    async fn archive(
        &self,
        ctx: &Context,
        cx: &CrewExecution,
    ) -> Result<write::Written, ArchiveError> {
        let fresh = match cx.annotations().contains_key(watches::PAYLOAD_DROPPED) {
            true => {
                let api: Api<CrewExecution> =
                    Api::namespaced(ctx.client.clone(), &cx.namespace().unwrap_or_default());
                api.get_opt(&cx.name_any())
                    .await?
                    .filter(|fresh| fresh.uid() == cx.uid())
            }
            false => None,
        };
        let record = ArchiveRecord::of(fresh.as_ref().unwrap_or(cx));
        let results = read_results(ctx, &record).await?;
        let mut client = self
            .pool
            .get()
            .await
            .map_err(|e| ArchiveError::Unreachable(e.to_string()))?;
        Ok(write::write(&mut client, &record, &results).await?)
    }

    fn report(
        &self,
        ctx: &Context,
        cx: &CrewExecution,
        outcome: &Result<write::Written, ArchiveError>,
    ) {
        match outcome {
            Ok(written) => {
                tracing::debug!(execution = %cx.name_any(), ?written, "archived");
                ctx.metrics.archive_write("ok");
            }
            Err(error) => {
                tracing::warn!(execution = %cx.name_any(), %error, "archive write failed; retrying with backoff");
                ctx.metrics.archive_write("error");
            }
        }
        if self.finished(cx, outcome) {
            ctx.triggers.retention_may_end(crate::notify::execution_ref(
                &cx.namespace().unwrap_or_default(),
                &cx.name_any(),
            ));
        }
    }
}

/// The wait after `failures` failed attempts: 1 s doubling to [`MAX_BACKOFF`], with up to 25 % jitter.
fn backoff(failures: u32) -> Duration {
    let base = Duration::from_secs(1u64 << failures.saturating_sub(1).min(16)).min(MAX_BACKOFF);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base + base.mul_f64(f64::from(nanos % 1000) / 4000.0)
}

/// The posted results `record` names, read from their ConfigMaps (a missing one, or one whose content no longer
/// matches the status's SHA-256, is left out: the archive keeps only what the run recorded).
async fn read_results(
    ctx: &Context,
    record: &ArchiveRecord,
) -> Result<Vec<StoredResult>, ArchiveError> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &record.namespace);
    let mut results = Vec::new();
    for ResultLocation {
        step,
        config_map,
        sha256,
        content_type,
    } in &record.results
    {
        let Some(map) = api.get_opt(config_map).await? else {
            tracing::warn!(execution = %record.name, %step, %config_map, "result ConfigMap gone; archived without it");
            continue;
        };
        let body = map
            .data
            .and_then(|mut data| data.remove(crew_core::lifecycle::results::RESULT_KEY))
            .unwrap_or_default()
            .into_bytes();
        if crew_core::lifecycle::results::sha256_hex(&body) != *sha256 {
            tracing::warn!(execution = %record.name, %step, "result differs from its recorded digest; archived without it");
            continue;
        }
        results.push(StoredResult {
            step: step.clone(),
            content_type: content_type.clone(),
            sha256: sha256.clone(),
            body,
        });
    }
    Ok(results)
}
