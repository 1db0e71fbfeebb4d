//! Reading the archive: a page of executions (keyset pagination, never OFFSET or `count(*)`), one execution, one
//! result, and statistics from the rollups (never a GROUP BY over the archived rows).

use crew_core::archive::histogram::{merge, quantile};
use deadpool_postgres::GenericClient;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use crew_api::archive::{Figures, Page, Stats, StepFailures, Summary};
use tokio_postgres::types::ToSql;

/// Most rows one page holds.
pub const MAX_PAGE: i64 = 500;

/// Which executions a list wants.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFilter {
    /// Only these namespaces (empty: all).
    pub namespaces: Vec<String>,
    /// Only this phase.
    pub phase: Option<String>,
    /// Only runs that failed in this step.
    pub failed_step: Option<String>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this name.
    pub name: Option<String>,
    /// Only runs carrying each of these labels (key, value).
    pub labels: Vec<(String, String)>,
    /// Only runs finished at or after this time.
    pub since: Option<Timestamp>,
}

/// Where the next page starts: after this (finished, uid).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The last row's end.
    pub finished: Timestamp,
    /// The last row's uid.
    pub uid: String,
}

impl Cursor {
    /// As an opaque token (`<microseconds>.<uid>`).
    pub fn token(&self) -> String {
        format!("{}.{}", self.finished.as_microsecond(), self.uid)
    }

    /// From [`Cursor::token`].
    pub fn parse(token: &str) -> Option<Cursor> {
        let (micros, uid) = token.split_once('.')?;
        Some(Cursor {
            finished: Timestamp::from_microsecond(micros.parse().ok()?).ok()?,
            uid: uid.to_string(),
        })
    }
}

const SUMMARY_COLUMNS: &str = "uid, namespace, name, phase, reason, failed_step, queue, priority, created_at, \
    started_at, finished_at, duration_seconds, queue_wait_seconds, attempts, deleted_before_finishing, message, \
    steps_total, steps_succeeded";

/// One page of the executions `filter` wants, newest first, after `after`.
pub async fn list(
    client: &impl GenericClient,
    filter: &ListFilter,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Page, tokio_postgres::Error> {
    let limit = limit.clamp(1, MAX_PAGE);
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut clauses: Vec<String> = Vec::new();
    let mut param = |value: Box<dyn ToSql + Sync + Send>| {
        params.push(value);
        format!("${}", params.len())
    };
    if !filter.namespaces.is_empty() {
        clauses.push(format!(
            "namespace = ANY({})",
            param(Box::new(filter.namespaces.clone()))
        ));
    }
    for (column, value) in [
        ("phase", &filter.phase),
        ("failed_step", &filter.failed_step),
        ("queue", &filter.queue),
        ("name", &filter.name),
    ] {
        if let Some(value) = value {
            clauses.push(format!("{column} = {}", param(Box::new(value.clone()))));
        }
    }
    for (key, value) in &filter.labels {
        let (k, v) = (param(Box::new(key.clone())), param(Box::new(value.clone())));
        clauses.push(format!(
            "EXISTS (SELECT 1 FROM execution_labels l WHERE l.uid = e.uid AND l.key = {k} AND l.value = {v})"
        ));
    }
    if let Some(since) = filter.since {
        clauses.push(format!("finished_at >= {}", param(Box::new(since))));
    }
    if let Some(after) = after {
        let (f, u) = (
            param(Box::new(after.finished)),
            param(Box::new(after.uid.clone())),
        );
        clauses.push(format!("(finished_at, uid) < ({f}, {u})"));
    }
    let limit_param = param(Box::new(limit + 1));
    let condition = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM executions e {condition} ORDER BY finished_at DESC, uid DESC LIMIT {limit_param}"
    );
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let rows = client.query(&sql, &refs).await?;
    let mut items: Vec<Summary> = rows.iter().map(summary).collect();
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next = more.then(|| items.last()).flatten().map(|last| {
        Cursor {
            finished: last.finished,
            uid: last.uid.clone(),
        }
        .token()
    });
    Ok(Page { items, next })
}

fn summary(row: &tokio_postgres::Row) -> Summary {
    Summary {
        uid: row.get(0),
        namespace: row.get(1),
        name: row.get(2),
        phase: row.get(3),
        reason: row.get(4),
        failed_step: row.get(5),
        queue: row.get(6),
        priority: row.get(7),
        created: row.get(8),
        started: row.get(9),
        finished: row.get(10),
        duration_seconds: row.get(11),
        queue_wait_seconds: row.get(12),
        attempts: row.get(13),
        deleted_before_finishing: row.get(14),
        message: row.get(15),
        steps_total: row.get(16),
        steps_succeeded: row.get(17),
    }
}

/// The archived object of the newest execution named `name` in `namespace`.
pub async fn object(
    client: &impl GenericClient,
    namespace: &str,
    name: &str,
) -> Result<Option<serde_json::Value>, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT object FROM executions WHERE namespace = $1 AND name = $2 ORDER BY finished_at DESC LIMIT 1",
            &[&namespace, &name],
        )
        .await?
        .map(|row| row.get(0)))
}

/// An archived result: (content type, SHA-256, body).
pub type ArchivedResult = (String, String, Vec<u8>);

/// Step `step`'s result of the newest execution named `name` in `namespace`.
pub async fn result(
    client: &impl GenericClient,
    namespace: &str,
    name: &str,
    step: &str,
) -> Result<Option<ArchivedResult>, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT r.content_type, r.sha256, r.body FROM step_results r
             JOIN (SELECT uid FROM executions WHERE namespace = $1 AND name = $2 ORDER BY finished_at DESC LIMIT 1) e
               ON e.uid = r.uid
             WHERE r.step = $3",
            &[&namespace, &name, &step],
        )
        .await?
        .map(|row| (row.get(0), row.get(1), row.get(2))))
}

/// Counts and the duration histogram of one group of rollup rows, made into [`Figures`].
#[derive(Default)]
struct Tally {
    figures: Figures,
    histogram: Vec<i64>,
    duration_sum: i64,
}

impl Tally {
    fn add(&mut self, row: &tokio_postgres::Row) {
        let f = &mut self.figures;
        f.total += row.get::<_, i64>("total");
        f.succeeded += row.get::<_, i64>("succeeded");
        f.failed += row.get::<_, i64>("failed");
        f.cancelled += row.get::<_, i64>("cancelled");
        f.deleted += row.get::<_, i64>("deleted");
        self.duration_sum += row.get::<_, i64>("duration_sum");
        merge(&mut self.histogram, &row.get::<_, Vec<i64>>("durations"));
    }

    fn finish(self) -> Figures {
        let timed: i64 = self.histogram.iter().sum();
        Figures {
            p50_seconds: quantile(&self.histogram, 0.5),
            p95_seconds: quantile(&self.histogram, 0.95),
            mean_seconds: (timed > 0).then(|| self.duration_sum as f64 / timed as f64),
            ..self.figures
        }
    }
}

/// Statistics of `namespaces` (empty: all) since `since`.
pub async fn stats(
    client: &impl GenericClient,
    namespaces: &[String],
    since: Timestamp,
    now: Timestamp,
) -> Result<Stats, tokio_postgres::Error> {
    let hourly = now.duration_since(since).as_secs() < 2 * 86_400;
    let (granularity, seconds) = if hourly {
        ("hour", 3_600)
    } else {
        ("day", 86_400)
    };
    let from = super::write::floor(since, seconds);
    let rows = client
        .query(
            "SELECT bucket, queue, total, succeeded, failed, cancelled, deleted, duration_sum, durations
             FROM rollups WHERE granularity = $1 AND bucket >= $2
               AND (cardinality($3::text[]) = 0 OR namespace = ANY($3))
             ORDER BY bucket",
            &[&granularity, &from, &namespaces],
        )
        .await?;
    let mut overall = Tally::default();
    let mut by_queue: std::collections::BTreeMap<String, Tally> = Default::default();
    let mut by_period: std::collections::BTreeMap<Timestamp, Tally> = Default::default();
    for row in &rows {
        overall.add(row);
        by_queue.entry(row.get("queue")).or_default().add(row);
        by_period.entry(row.get("bucket")).or_default().add(row);
    }
    let failures = client
        .query(
            "SELECT step, reason, sum(count)::bigint FROM failure_rollups
             WHERE day >= $1 AND (cardinality($2::text[]) = 0 OR namespace = ANY($2))
             GROUP BY step, reason HAVING sum(count) > 0 ORDER BY 3 DESC, 1, 2 LIMIT 50",
            &[&super::write::floor(since, 86_400), &namespaces],
        )
        .await?;
    Ok(Stats {
        overall: overall.finish(),
        by_queue: by_queue.into_iter().map(|(q, f)| (q, f.finish())).collect(),
        by_period: by_period
            .into_iter()
            .map(|(t, f)| (t, f.finish()))
            .collect(),
        failed_steps: failures
            .iter()
            .map(|row| StepFailures {
                step: row.get(0),
                reason: row.get(1),
                count: row.get(2),
            })
            .collect(),
    })
}
