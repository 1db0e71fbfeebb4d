//! `crew-bench --archive-scale N`: the archive at scale, without a cluster. N finished executions (10 namespaces,
//! 3 queues, 3 steps, labels, a failure in one of twenty, ends spread over 30 days, objects with a history) are
//! written to a PostgreSQL of their own through the operator's own write path, by as many writers as the operator
//! uses; then the reads `kubectl crew … --archived` makes are timed at that size: the first page of a list (all
//! namespaces, one, by phase, by failed step, by label), a page deep in the keyset, one object, and the statistics
//! over 30 days. Prints a Markdown report; never fails on speed.

use crew_api::{CrewExecution, CrewExecutionStatus, HistoryEntry, Phase, StepPhase, StepStatus};
use crew_core::archive::ArchiveRecord;
use crew_operator::archive::connect::{POOL_SIZE, pool_of};
use crew_operator::archive::read::{self, Cursor, ListFilter};
use crew_operator::archive::{migrations, write};
use deadpool_postgres::Pool;
use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::fmt::Write as _;
use std::time::Instant;

/// How many times each read is timed (the median is reported).
const REPEATS: usize = 7;

/// The `i`th synthetic finished execution, ending `now - (i * 30 days / n)`.
pub fn execution(i: usize, n: usize, now: Timestamp) -> CrewExecution {
    let span = 30 * 86_400_i64;
    let end = now - SignedDuration::from_secs(span * i as i64 / n.max(1) as i64);
    let duration = 5 + (i * 7919 % 600) as i64;
    let start = end - SignedDuration::from_secs(duration);
    let created = start - SignedDuration::from_secs((i % 30) as i64);
    let failed = i % 20 == 7;
    let failed_step = ["fetch", "train", "report"][i % 3];
    let app = ["ml", "etl", "web"][i % 3];
    let queue = ["gpu", "cpu", "batch"][i % 3];
    let mut cx: CrewExecution = serde_json::from_value(serde_json::json!({
        "apiVersion": "crew.dev/v1alpha1", "kind": "CrewExecution",
        "metadata": {"name": format!("run-{i}"), "namespace": format!("team-{}", i % 10),
            "uid": format!("00000000-0000-4000-8000-{i:012}"), "resourceVersion": format!("{}", 1000 + i),
            "labels": {"app": app, "team": format!("t{}", i % 10)}},
        "spec": {"image": "ghcr.io/example/worker:1.0", "queue": queue,
            "priority": (i % 5) as i32,
            "steps": [{"name": "fetch"}, {"name": "train"}, {"name": "report"}],
            "inputs": {"question": "what moves the tides", "depth": 3}}
    }))
    .unwrap_or_else(|_| CrewExecution::new("run", Default::default()));
    cx.metadata.creation_timestamp = Some(Time(created));
    let step_names = ["fetch", "train", "report"];
    let mut steps = Vec::new();
    let mut history = Vec::new();
    let mut at = start;
    for name in step_names {
        let fails_here = failed && name == failed_step;
        let phase = match (
            failed,
            fails_here,
            steps
                .iter()
                .any(|s: &StepStatus| s.phase == StepPhase::Failed),
        ) {
            (_, _, true) => StepPhase::Pending,
            (_, true, _) => StepPhase::Failed,
            _ => StepPhase::Succeeded,
        };
        if phase == StepPhase::Pending {
            steps.push(StepStatus {
                name: name.into(),
                ..Default::default()
            });
            continue;
        }
        let finish = at + SignedDuration::from_secs(duration / 3);
        history.push(entry(at, "StepStarted", name));
        history.push(entry(
            finish,
            if fails_here {
                "StepFailed"
            } else {
                "StepSucceeded"
            },
            name,
        ));
        steps.push(StepStatus {
            name: name.into(),
            phase,
            attempt: 1,
            job_name: Some(format!("run-{i}-{name}-1")),
            start_time: Some(Time(at)),
            completion_time: Some(Time(finish)),
            exit_code: Some(if fails_here { 3 } else { 0 }),
            message: fails_here.then(|| "exit code 3: out of memory".to_string()),
            ..Default::default()
        });
        at = finish;
    }
    cx.status = Some(CrewExecutionStatus {
        phase: Some(if failed {
            Phase::Failed
        } else {
            Phase::Succeeded
        }),
        reason: Some(
            if failed {
                "RetriesExhausted"
            } else {
                "Succeeded"
            }
            .into(),
        ),
        start_time: Some(Time(start)),
        completion_time: Some(Time(end)),
        duration_seconds: Some(duration),
        steps,
        history,
        ..Default::default()
    });
    cx
}

fn entry(time: Timestamp, reason: &str, step: &str) -> HistoryEntry {
    HistoryEntry {
        time: Time(time),
        from: Phase::Running,
        to: Phase::Running,
        reason: reason.into(),
        message: Some(format!("{step}: {reason}")),
        step: Some(step.into()),
    }
}

/// The median of `REPEATS` timings of `read`, in milliseconds.
async fn median_ms<F, Fut, T>(read: F) -> Result<f64, String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, tokio_postgres::Error>>,
{
    let mut times = Vec::with_capacity(REPEATS);
    for _ in 0..REPEATS {
        let started = Instant::now();
        read().await.map_err(|e| e.to_string())?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[REPEATS / 2])
}

/// Writes `n` executions and times the reads; returns the report.
pub async fn run(n: usize) -> Result<String, String> {
    let dir = crew_testkit::scratch_dir("crew-bench-archive", None);
    let server = crew_testkit::postgres::Postgres::start(&dir).map_err(|e| e.to_string())?;
    let connection = server.archive_connection(crew_testkit::postgres::DATABASE);
    let pool = pool_of(&connection, POOL_SIZE).map_err(|e| e.to_string())?;
    {
        let mut client = pool.get().await.map_err(|e| e.to_string())?;
        migrations::migrate(&mut client)
            .await
            .map_err(|e| e.to_string())?;
    }
    let now = Timestamp::now();
    eprintln!("  archive: writing {n} executions with {POOL_SIZE} writers");
    let started = Instant::now();
    let failures = write_all(&pool, n, now).await;
    let write_seconds = started.elapsed().as_secs_f64();
    let client = pool.get().await.map_err(|e| e.to_string())?;
    let rows: i64 = client
        .query_one("SELECT count(*) FROM executions", &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    client
        .batch_execute("ANALYZE")
        .await
        .map_err(|e| e.to_string())?;
    let size: i64 = client
        .query_one("SELECT pg_database_size(current_database())", &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Archive at {n} executions (PostgreSQL {})\n",
        server_version(&client).await
    );
    let _ = writeln!(
        out,
        "Written: {rows} rows in {write_seconds:.1} s = **{:.0} executions/s** ({POOL_SIZE} writers, one transaction each; {failures} failed). Database size: **{:.0} MiB** ({:.1} KiB per execution).\n",
        rows as f64 / write_seconds,
        size as f64 / 1_048_576.0,
        size as f64 / 1024.0 / rows.max(1) as f64
    );
    let _ = writeln!(
        out,
        "| read ({REPEATS} runs, median) | ms |\n| --- | ---: |"
    );
    let all = ListFilter::default();
    let one_ns = ListFilter {
        namespaces: vec!["team-3".into()],
        ..Default::default()
    };
    let failed = ListFilter {
        phase: Some("Failed".into()),
        ..Default::default()
    };
    let by_step = ListFilter {
        namespaces: vec!["team-7".into()],
        failed_step: Some("train".into()),
        ..Default::default()
    };
    let by_label = ListFilter {
        labels: vec![("app".into(), "etl".into())],
        ..Default::default()
    };
    for (what, filter) in [
        ("list first page, all namespaces (100 rows)", &all),
        ("list first page, one namespace", &one_ns),
        ("list first page, phase=Failed", &failed),
        ("list first page, one namespace, failed step", &by_step),
        ("list first page, label app=etl", &by_label),
    ] {
        let ms = median_ms(|| read::list(&client, filter, None, 100)).await?;
        let _ = writeln!(out, "| {what} | {ms:.1} |");
    }
    // A page deep in the list: the keyset makes it cost what the first does.
    let deep = read::list(&client, &all, None, 1)
        .await
        .map_err(|e| e.to_string())?;
    let middle = Cursor {
        finished: deep.items.first().map_or(now, |s| s.finished)
            - SignedDuration::from_hours(24 * 15),
        uid: "ffffffff".into(),
    };
    let ms = median_ms(|| read::list(&client, &all, Some(&middle), 100)).await?;
    let _ = writeln!(out, "| list page 15 days deep (keyset) | {ms:.1} |");
    let middle_run = format!("run-{}", n / 2 / 10 * 10 + 4);
    let ms = median_ms(|| read::object(&client, "team-4", &middle_run)).await?;
    let _ = writeln!(out, "| one archived object | {ms:.1} |");
    let month = now - SignedDuration::from_hours(24 * 30);
    let ms = median_ms(|| read::stats(&client, &[], month, now)).await?;
    let _ = writeln!(out, "| stats --since 30d, all namespaces | {ms:.1} |");
    let team = ["team-2".to_string()];
    let ms = median_ms(|| read::stats(&client, &team, month, now)).await?;
    let _ = writeln!(out, "| stats --since 30d, one namespace | {ms:.1} |");
    drop(client);
    drop(pool);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(out)
}

async fn server_version(client: &deadpool_postgres::Client) -> String {
    client
        .query_one("SHOW server_version", &[])
        .await
        .map(|row| row.get::<_, String>(0))
        .unwrap_or_default()
}

/// Writes the `n` executions, `POOL_SIZE` at a time; returns how many writes failed.
async fn write_all(pool: &Pool, n: usize, now: Timestamp) -> usize {
    let progress_every = (n / 10).max(1);
    futures::stream::iter(0..n)
        .map(|i| async move {
            let record = ArchiveRecord::of(&execution(i, n, now));
            let outcome = match pool.get().await {
                Ok(mut client) => write::write(&mut client, &record, &[])
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if i % progress_every == 0 {
                eprintln!("  archive: {i} written");
            }
            outcome.is_err()
        })
        .buffer_unordered(POOL_SIZE)
        .filter(|failed| futures::future::ready(*failed))
        .count()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_runs_read_as_their_columns() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let ok = ArchiveRecord::of(&execution(0, 100, now));
        assert_eq!(
            (ok.phase, ok.steps.len(), ok.failed_step.as_deref()),
            (Phase::Succeeded, 3, None)
        );
        let failed = ArchiveRecord::of(&execution(7, 100, now));
        assert_eq!(failed.phase, Phase::Failed);
        assert_eq!(failed.failed_step.as_deref(), Some("train"));
        assert_eq!(
            failed.steps.len(),
            2,
            "the step after the failure never ran"
        );
        assert_eq!(failed.namespace, "team-7");
        let oldest = ArchiveRecord::of(&execution(99, 100, now));
        assert!(oldest.finished.unwrap() < now - SignedDuration::from_hours(24 * 29));
    }
}
