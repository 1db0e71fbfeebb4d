//! Writing one execution: its row, labels, step attempts and results, and its share of the statistics rollups, in
//! one transaction. Idempotent: a snapshot that is not newer (by resource version) than the stored one changes
//! nothing, so writing the same execution again — after a crash, by another replica — neither duplicates it nor
//! counts it twice; a newer snapshot replaces the row and moves its share of the rollups.

use crew_api::Phase;
use crew_core::archive::ArchiveRecord;
use crew_core::archive::histogram::{BUCKETS, bucket_of};
use deadpool_postgres::GenericClient;
use jiff::Timestamp;
use tokio_postgres::types::ToSql;

/// A posted result as archived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResult {
    /// Step name.
    pub step: String,
    /// `application/json` or `text/plain`.
    pub content_type: String,
    /// SHA-256 of `body`, lower-case hex.
    pub sha256: String,
    /// The result.
    pub body: Vec<u8>,
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// The execution was not archived before.
    Inserted,
    /// An older snapshot of it was replaced.
    Replaced,
    /// The archive already holds this snapshot or a newer one: nothing changed.
    AlreadyArchived,
}

/// What the rollups count of one archived row.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Share {
    namespace: String,
    queue: String,
    finished: Timestamp,
    phase: String,
    deleted: bool,
    duration: Option<i64>,
    failed_step: Option<String>,
    reason: Option<String>,
}

/// `sql` with `params`, as a statement prepared once per connection (one round trip instead of two).
async fn exec(
    tx: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, tokio_postgres::Error> {
    let statement = tx.prepare_cached(sql).await?;
    tx.execute(&statement, params).await
}

/// Writes `record` with `results` (see the module documentation).
pub async fn write(
    client: &mut deadpool_postgres::Client,
    record: &ArchiveRecord,
    results: &[StoredResult],
) -> Result<Written, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    // Writers of one uid take turns (two replicas, a retry racing a sweep); other uids do not wait.
    exec(
        &tx,
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 7265720))",
        &[&record.uid],
    )
    .await?;
    let read_old = tx
        .prepare_cached(
            "SELECT resource_version, namespace, queue, finished_at, phase, deleted_before_finishing,
                    duration_seconds, failed_step, reason
             FROM executions WHERE uid = $1",
        )
        .await?;
    let old = tx.query_opt(&read_old, &[&record.uid]).await?;
    if let Some(old) = &old
        && old.get::<_, i64>(0) >= record.resource_version
    {
        tx.commit().await?;
        return Ok(Written::AlreadyArchived);
    }
    if let Some(old) = &old {
        let share = Share {
            namespace: old.get(1),
            queue: old.get(2),
            finished: old.get(3),
            phase: old.get(4),
            deleted: old.get(5),
            duration: old.get(6),
            failed_step: old.get(7),
            reason: old.get(8),
        };
        roll_up(&tx, &share, -1).await?;
    }
    upsert_row(&tx, record).await?;
    // Independent statements of one transaction, pipelined on its connection.
    let share = share_of(record);
    futures::try_join!(
        replace_children(&tx, record, results, old.is_some()),
        roll_up(&tx, &share, 1)
    )?;
    tx.commit().await?;
    Ok(if old.is_some() {
        Written::Replaced
    } else {
        Written::Inserted
    })
}

fn share_of(record: &ArchiveRecord) -> Share {
    Share {
        namespace: record.namespace.clone(),
        queue: record.queue.clone().unwrap_or_default(),
        finished: finished_of(record),
        phase: record.phase.as_str().to_string(),
        deleted: record.deleted_before_finishing,
        duration: record.duration_seconds,
        failed_step: record.failed_step.clone(),
        reason: record.reason.clone(),
    }
}

/// When the row counts as finished: its end, else its deletion, else its creation (a record without any of them is
/// counted at the epoch). Never the clock: the row and its rollup share must land in the same hour, and a write of
/// the same snapshot again must not move them.
fn finished_of(record: &ArchiveRecord) -> Timestamp {
    record
        .finished
        .or(record.created)
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

async fn upsert_row(
    tx: &impl GenericClient,
    record: &ArchiveRecord,
) -> Result<(), tokio_postgres::Error> {
    let queue = record.queue.clone().unwrap_or_default();
    let finished = finished_of(record);
    let phase = record.phase.as_str();
    let params: [&(dyn ToSql + Sync); 21] = [
        &record.uid,
        &record.namespace,
        &record.name,
        &record.resource_version,
        &phase,
        &record.reason,
        &record.message,
        &record.failed_step,
        &queue,
        &record.priority,
        &record.created,
        &record.started,
        &finished,
        &record.duration_seconds,
        &record.queue_wait_seconds,
        &record.attempts,
        &record.deleted_before_finishing,
        &record.object,
        &Timestamp::now(),
        &record.steps_total,
        &record.steps_succeeded,
    ];
    exec(
            tx,
        "INSERT INTO executions (uid, namespace, name, resource_version, phase, reason, message, failed_step, queue,
             priority, created_at, started_at, finished_at, duration_seconds, queue_wait_seconds, attempts,
             deleted_before_finishing, object, archived_at, steps_total, steps_succeeded)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
         ON CONFLICT (uid) DO UPDATE SET namespace = EXCLUDED.namespace, name = EXCLUDED.name,
             resource_version = EXCLUDED.resource_version, phase = EXCLUDED.phase, reason = EXCLUDED.reason,
             message = EXCLUDED.message, failed_step = EXCLUDED.failed_step, queue = EXCLUDED.queue,
             priority = EXCLUDED.priority, created_at = EXCLUDED.created_at, started_at = EXCLUDED.started_at,
             finished_at = EXCLUDED.finished_at, duration_seconds = EXCLUDED.duration_seconds,
             queue_wait_seconds = EXCLUDED.queue_wait_seconds, attempts = EXCLUDED.attempts,
             deleted_before_finishing = EXCLUDED.deleted_before_finishing, object = EXCLUDED.object,
             archived_at = EXCLUDED.archived_at, steps_total = EXCLUDED.steps_total,
             steps_succeeded = EXCLUDED.steps_succeeded",
        &params,
    )
    .await?;
    Ok(())
}

/// Labels, step attempts and results: replaced as a whole, one statement each (arrays, not a row per statement).
async fn replace_children(
    tx: &impl GenericClient,
    record: &ArchiveRecord,
    results: &[StoredResult],
    replacing: bool,
) -> Result<(), tokio_postgres::Error> {
    let uid = &record.uid;
    if replacing {
        exec(
            tx,
            "WITH labels AS (DELETE FROM execution_labels WHERE uid = $1),
                  attempts AS (DELETE FROM step_attempts WHERE uid = $1)
             DELETE FROM step_results WHERE uid = $1",
            &[uid],
        )
        .await?;
    }
    if !record.labels.is_empty() {
        let (keys, values): (Vec<&str>, Vec<&str>) = record
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .unzip();
        exec(
            tx,
            "INSERT INTO execution_labels (uid, key, value) SELECT $1, * FROM unnest($2::text[], $3::text[])",
            &[uid, &keys, &values],
        )
        .await?;
    }
    if !record.steps.is_empty() {
        let steps = &record.steps;
        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        let attempts: Vec<i32> = steps.iter().map(|s| s.attempt).collect();
        let phases: Vec<String> = steps.iter().map(|s| s.phase.to_string()).collect();
        let exit_codes: Vec<Option<i32>> = steps.iter().map(|s| s.exit_code).collect();
        let reasons: Vec<Option<&str>> = steps.iter().map(|s| s.reason.as_deref()).collect();
        let messages: Vec<Option<&str>> = steps.iter().map(|s| s.message.as_deref()).collect();
        let started: Vec<Option<Timestamp>> = steps.iter().map(|s| s.started).collect();
        let finished: Vec<Option<Timestamp>> = steps.iter().map(|s| s.finished).collect();
        let jobs: Vec<Option<&str>> = steps.iter().map(|s| s.job_name.as_deref()).collect();
        exec(
            tx,
            "INSERT INTO step_attempts (uid, step, attempt, phase, exit_code, reason, message, started_at,
                 finished_at, job_name)
             SELECT $1, * FROM unnest($2::text[], $3::int[], $4::text[], $5::int[], $6::text[], $7::text[],
                 $8::timestamptz[], $9::timestamptz[], $10::text[])
             ON CONFLICT DO NOTHING",
            &[uid, &names, &attempts, &phases, &exit_codes, &reasons, &messages, &started, &finished, &jobs],
        )
        .await?;
    }
    for result in results {
        exec(
            tx,
            "INSERT INTO step_results (uid, step, content_type, sha256, size, body) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                uid,
                &result.step,
                &result.content_type,
                &result.sha256,
                &(result.body.len() as i64),
                &result.body,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Adds (`sign` 1) or removes (-1) `share` in the hourly and daily rollups and, for a failed run, the failures.
async fn roll_up(
    tx: &impl GenericClient,
    share: &Share,
    sign: i64,
) -> Result<(), tokio_postgres::Error> {
    let counted = |phase: Phase| i64::from(!share.deleted && share.phase == phase.as_str()) * sign;
    let mut durations = vec![0i64; BUCKETS];
    if let Some(duration) = share.duration.filter(|_| !share.deleted) {
        durations[bucket_of(duration)] = sign;
    }
    let duration_sum = share.duration.filter(|_| !share.deleted).unwrap_or(0) * sign;
    for (granularity, seconds) in [("hour", 3_600), ("day", 86_400)] {
        let bucket = floor(share.finished, seconds);
        exec(
            tx,
            "INSERT INTO rollups (granularity, bucket, namespace, queue, total, succeeded, failed, cancelled,
                 deleted, duration_sum, durations)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (granularity, bucket, namespace, queue) DO UPDATE SET
                 total = rollups.total + EXCLUDED.total,
                 succeeded = rollups.succeeded + EXCLUDED.succeeded,
                 failed = rollups.failed + EXCLUDED.failed,
                 cancelled = rollups.cancelled + EXCLUDED.cancelled,
                 deleted = rollups.deleted + EXCLUDED.deleted,
                 duration_sum = rollups.duration_sum + EXCLUDED.duration_sum,
                 durations = (SELECT array_agg(coalesce(a, 0) + coalesce(b, 0) ORDER BY i)
                              FROM unnest(rollups.durations, EXCLUDED.durations) WITH ORDINALITY AS t(a, b, i))",
            &[
                &granularity,
                &bucket,
                &share.namespace,
                &share.queue,
                &sign,
                &counted(Phase::Succeeded),
                &counted(Phase::Failed),
                &counted(Phase::Cancelled),
                &(i64::from(share.deleted) * sign),
                &duration_sum,
                &durations,
            ],
        )
        .await?;
    }
    if let (false, Some(step)) = (share.deleted, &share.failed_step)
        && share.phase == Phase::Failed.as_str()
    {
        exec(
            tx,
            "INSERT INTO failure_rollups (day, namespace, queue, step, reason, count) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (day, namespace, queue, step, reason) DO UPDATE SET
                 count = failure_rollups.count + EXCLUDED.count",
            &[
                &floor(share.finished, 86_400),
                &share.namespace,
                &share.queue,
                step,
                &share.reason.clone().unwrap_or_default(),
                &sign,
            ],
        )
        .await?;
    }
    Ok(())
}

/// `time` rounded down to a multiple of `seconds` since the epoch (UTC hours and days).
pub fn floor(time: Timestamp, seconds: i64) -> Timestamp {
    let second = time.as_second();
    Timestamp::from_second(second - second.rem_euclid(seconds)).unwrap_or(time)
}

/// Rows deleted at most by one [`expire`] call.
pub const EXPIRE_BATCH: i64 = 1000;

/// Deletes up to [`EXPIRE_BATCH`] archived executions (with their labels, attempts and results) that finished
/// before `before`, oldest first; returns how many. The rollups stay: statistics over longer spans remain.
pub async fn expire(
    client: &impl GenericClient,
    before: Timestamp,
) -> Result<u64, tokio_postgres::Error> {
    exec(
        client,
        "DELETE FROM executions WHERE uid IN
             (SELECT uid FROM executions WHERE finished_at < $1 ORDER BY finished_at LIMIT $2)",
        &[&before, &EXPIRE_BATCH],
    )
    .await
}
