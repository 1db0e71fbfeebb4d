//! The archive's database layer against a real PostgreSQL (Debian's, started for this test binary as the
//! `postgres` user in a temporary directory): migrations, the idempotent write guarded by resource version, the
//! rollups it maintains, keyset pages, filters, statistics and results. No control plane.

use crew_api::{CrewExecution, CrewExecutionStatus, Phase, StepPhase, StepStatus};
use crew_core::archive::ArchiveRecord;
use crew_operator::archive::connect::{ArchiveConnection, pool};
use crew_operator::archive::migrations::{MIGRATIONS, MigrationError, migrate};
use crew_operator::archive::read::{self, Cursor, ListFilter};
use crew_operator::archive::write::{StoredResult, Written, write};
use crew_testkit::postgres::Postgres;
use deadpool_postgres::Pool;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::sync::OnceLock;

static SERVER: OnceLock<Postgres> = OnceLock::new();

fn server() -> &'static Postgres {
    SERVER.get_or_init(|| {
        let dir = crew_testkit::scratch_dir("crew-archive-db", None);
        Postgres::start(&dir).expect("PostgreSQL starts (Debian package postgresql; `make tools`)")
    })
}

/// A pool on a database of its own (each test its own, so they run in parallel).
async fn fresh_database(name: &str) -> Pool {
    let server = server();
    server
        .psql("postgres", &format!("DROP DATABASE IF EXISTS {name}"))
        .unwrap();
    server
        .psql("postgres", &format!("CREATE DATABASE {name}"))
        .unwrap();
    let pool = pool(&server.archive_connection(name)).unwrap();
    let mut client = pool.get().await.unwrap();
    migrate(&mut client).await.unwrap();
    pool
}

fn at(second: i64) -> Time {
    Time(Timestamp::from_second(1_800_000_000 + second).unwrap())
}

/// A finished execution: `phase`, ran `duration` seconds, finished at `end` (seconds after a fixed instant).
fn execution(
    name: &str,
    uid: &str,
    rv: u64,
    phase: Phase,
    end: i64,
    duration: i64,
) -> CrewExecution {
    let mut cx: CrewExecution = serde_json::from_value(serde_json::json!({
        "apiVersion": "crew.dev/v1alpha1", "kind": "CrewExecution",
        "metadata": {"name": name, "namespace": "team-a", "uid": uid, "resourceVersion": rv.to_string(),
            "labels": {"app": "ml", "tier": if end % 2 == 0 { "even" } else { "odd" }}},
        "spec": {"image": "busybox", "queue": "gpu", "steps": [{"name": "fetch"}, {"name": "train"}]}
    }))
    .unwrap();
    cx.metadata.creation_timestamp = Some(at(end - duration - 3));
    cx.status = Some(CrewExecutionStatus {
        phase: Some(phase),
        reason: Some(
            if phase == Phase::Failed {
                "RetriesExhausted"
            } else {
                phase.as_str()
            }
            .into(),
        ),
        start_time: Some(at(end - duration)),
        completion_time: Some(at(end)),
        duration_seconds: Some(duration),
        steps: vec![
            StepStatus {
                name: "fetch".into(),
                phase: StepPhase::Succeeded,
                attempt: 1,
                job_name: Some(format!("{name}-fetch-1")),
                exit_code: Some(0),
                ..Default::default()
            },
            StepStatus {
                name: "train".into(),
                phase: if phase == Phase::Failed {
                    StepPhase::Failed
                } else {
                    StepPhase::Succeeded
                },
                attempt: 1,
                exit_code: Some(if phase == Phase::Failed { 3 } else { 0 }),
                ..Default::default()
            },
        ],
        ..Default::default()
    });
    cx
}

async fn count(pool: &Pool, sql: &str) -> i64 {
    pool.get()
        .await
        .unwrap()
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn migrations_apply_once_and_a_newer_schema_is_refused() {
    let pool = fresh_database("migrations").await;
    let mut client = pool.get().await.unwrap();
    assert_eq!(migrate(&mut client).await.unwrap(), 0, "already applied");
    let versions = count(&pool, "SELECT count(*) FROM crew_schema_migrations").await;
    assert_eq!(versions, MIGRATIONS.len() as i64);
    client
        .execute(
            "INSERT INTO crew_schema_migrations (version, name) VALUES (999, 'future')",
            &[],
        )
        .await
        .unwrap();
    match migrate(&mut client).await {
        Err(MigrationError::Newer { found: 999, .. }) => {}
        other => panic!("a newer schema must be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn a_write_is_idempotent_and_only_a_newer_snapshot_replaces_it() {
    let pool = fresh_database("idempotent").await;
    let mut client = pool.get().await.unwrap();
    let failed = ArchiveRecord::of(&execution("run", "u1", 10, Phase::Failed, 100, 40));
    assert_eq!(
        write(&mut client, &failed, &[]).await.unwrap(),
        Written::Inserted
    );
    assert_eq!(
        write(&mut client, &failed, &[]).await.unwrap(),
        Written::AlreadyArchived
    );
    let older = ArchiveRecord::of(&execution("run", "u1", 9, Phase::Succeeded, 100, 40));
    assert_eq!(
        write(&mut client, &older, &[]).await.unwrap(),
        Written::AlreadyArchived
    );
    let row = client
        .query_one("SELECT phase FROM executions WHERE uid = 'u1'", &[])
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, String>(0),
        "Failed",
        "an older snapshot never overwrites a newer one"
    );
    let day = "SELECT total, succeeded, failed FROM rollups WHERE granularity = 'day'";
    let row = client.query_one(day, &[]).await.unwrap();
    assert_eq!(
        (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2)
        ),
        (1, 0, 1)
    );
    // A newer snapshot (say the run was archived, then its status changed) moves its share of the rollups.
    let newer = ArchiveRecord::of(&execution("run", "u1", 11, Phase::Succeeded, 100, 40));
    assert_eq!(
        write(&mut client, &newer, &[]).await.unwrap(),
        Written::Replaced
    );
    let row = client.query_one(day, &[]).await.unwrap();
    assert_eq!(
        (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2)
        ),
        (1, 1, 0)
    );
    assert_eq!(
        count(
            &pool,
            "SELECT coalesce(sum(count), 0)::bigint FROM failure_rollups"
        )
        .await,
        0
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM executions").await, 1);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM step_attempts").await,
        2,
        "replaced, not added"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM execution_labels").await,
        2
    );
}

#[tokio::test]
async fn concurrent_writes_of_one_execution_store_and_count_it_once() {
    let pool = fresh_database("concurrent").await;
    let record = ArchiveRecord::of(&execution("run", "u1", 10, Phase::Succeeded, 100, 40));
    let writers = (0..8).map(|_| {
        let (pool, record) = (pool.clone(), record.clone());
        tokio::spawn(async move {
            let mut client = pool.get().await.unwrap();
            write(&mut client, &record, &[]).await.unwrap()
        })
    });
    let outcomes: Vec<Written> = futures::future::join_all(writers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        outcomes.iter().filter(|w| **w == Written::Inserted).count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM executions").await, 1);
    assert_eq!(
        count(
            &pool,
            "SELECT sum(total)::bigint FROM rollups WHERE granularity = 'hour'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn pages_follow_the_keyset_and_filters_use_the_typed_columns() {
    let pool = fresh_database("pages").await;
    let mut client = pool.get().await.unwrap();
    for i in 0..25 {
        let phase = if i % 5 == 0 {
            Phase::Failed
        } else {
            Phase::Succeeded
        };
        // Pairs finish in the same second: the uid breaks the tie.
        let record = ArchiveRecord::of(&execution(
            &format!("run-{i}"),
            &format!("u{i:02}"),
            1,
            phase,
            i / 2,
            10,
        ));
        write(&mut client, &record, &[]).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<Cursor> = None;
    let mut pages = 0;
    loop {
        let page = read::list(&client, &ListFilter::default(), after.as_ref(), 10)
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.items.iter().map(|s| (s.finished, s.uid.clone())));
        match page.next {
            Some(token) => after = Some(Cursor::parse(&token).unwrap()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 25, "every row once");
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first, by (finished, uid)");
    let failed = ListFilter {
        phase: Some("Failed".into()),
        failed_step: Some("train".into()),
        ..Default::default()
    };
    let page = read::list(&client, &failed, None, 100).await.unwrap();
    assert_eq!(page.items.len(), 5);
    assert!(
        page.items
            .iter()
            .all(|s| s.failed_step.as_deref() == Some("train"))
    );
    let odd = ListFilter {
        labels: vec![("tier".into(), "odd".into())],
        namespaces: vec!["team-a".into()],
        since: Some(at(6).0),
        ..Default::default()
    };
    let page = read::list(&client, &odd, None, 100).await.unwrap();
    // Ends 7, 9, 11 (odd, at or after 6): two runs each.
    assert_eq!(page.items.len(), 6, "{:?}", page.items);
    let elsewhere = ListFilter {
        namespaces: vec!["team-b".into()],
        ..Default::default()
    };
    assert!(
        read::list(&client, &elsewhere, None, 100)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn statistics_come_from_the_rollups() {
    let pool = fresh_database("stats").await;
    let mut client = pool.get().await.unwrap();
    // 19 runs of 4 s succeed, one of 100 s fails in `train`.
    for i in 0..20 {
        let (phase, duration) = if i == 0 {
            (Phase::Failed, 100)
        } else {
            (Phase::Succeeded, 4)
        };
        let record = ArchiveRecord::of(&execution(
            &format!("r{i}"),
            &format!("u{i}"),
            1,
            phase,
            1000 + i,
            duration,
        ));
        write(&mut client, &record, &[]).await.unwrap();
    }
    let now = at(2000).0;
    let stats = read::stats(&client, &[], at(-30 * 86_400).0, now)
        .await
        .unwrap();
    let overall = &stats.overall;
    assert_eq!(
        (overall.total, overall.succeeded, overall.failed),
        (20, 19, 1)
    );
    assert_eq!(
        overall.p50_seconds,
        Some(5),
        "4 s runs fall in the (3, 5] bucket"
    );
    assert_eq!(overall.p95_seconds, Some(5));
    assert_eq!(stats.by_queue.len(), 1);
    assert_eq!(stats.by_queue[0].0, "gpu");
    assert_eq!(stats.failed_steps.len(), 1);
    assert_eq!(
        (
            stats.failed_steps[0].step.as_str(),
            stats.failed_steps[0].reason.as_str(),
            stats.failed_steps[0].count
        ),
        ("train", "RetriesExhausted", 1)
    );
    let other = read::stats(&client, &["team-b".to_string()], at(-30 * 86_400).0, now)
        .await
        .unwrap();
    assert_eq!(other.overall.total, 0);
    // A short span reads the hourly rollups.
    let hourly = read::stats(&client, &[], at(0).0, at(3600).0)
        .await
        .unwrap();
    assert_eq!(hourly.overall.total, 20);
}

#[tokio::test]
async fn results_and_the_object_are_archived_whole() {
    let pool = fresh_database("results").await;
    let mut client = pool.get().await.unwrap();
    let record = ArchiveRecord::of(&execution("run", "u1", 1, Phase::Succeeded, 100, 10));
    let body = vec![b'x'; 1024 * 1024];
    let result = StoredResult {
        step: "train".into(),
        content_type: "text/plain".into(),
        sha256: crew_core::lifecycle::results::sha256_hex(&body),
        body: body.clone(),
    };
    write(&mut client, &record, &[result]).await.unwrap();
    let (kind, sha, stored) = read::result(&client, "team-a", "run", "train")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((kind.as_str(), stored.len()), ("text/plain", body.len()));
    assert_eq!(sha, crew_core::lifecycle::results::sha256_hex(&stored));
    assert!(
        read::result(&client, "team-a", "run", "fetch")
            .await
            .unwrap()
            .is_none()
    );
    let object = read::object(&client, "team-a", "run")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(object["spec"]["queue"], "gpu");
    assert_eq!(object["status"]["phase"], "Succeeded");
}

#[tokio::test]
async fn retention_deletes_old_runs_with_their_rows_and_keeps_the_rollups() {
    let pool = fresh_database("retention").await;
    let mut client = pool.get().await.unwrap();
    for i in 0..1500 {
        // Ends one second apart, from the fixed instant on.
        let record = ArchiveRecord::of(&execution(
            &format!("r{i}"),
            &format!("u{i}"),
            1,
            Phase::Succeeded,
            i,
            4,
        ));
        write(&mut client, &record, &[]).await.unwrap();
    }
    let before = at(1200).0;
    assert_eq!(
        crew_operator::archive::write::expire(&client, before)
            .await
            .unwrap(),
        1000,
        "one batch"
    );
    assert_eq!(
        crew_operator::archive::write::expire(&client, before)
            .await
            .unwrap(),
        200
    );
    assert_eq!(
        crew_operator::archive::write::expire(&client, before)
            .await
            .unwrap(),
        0
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM executions").await, 300);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM step_attempts").await,
        600,
        "attempts went with their runs"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM execution_labels").await,
        600
    );
    assert_eq!(
        count(
            &pool,
            "SELECT sum(total)::bigint FROM rollups WHERE granularity = 'day'"
        )
        .await,
        1500,
        "the statistics keep every run"
    );
}

/// `sslmode=require` connects over TLS, verified against `--archive-ca-file`; a server whose certificate another CA
/// signed is refused (no write reaches it).
#[tokio::test]
async fn tls_is_verified_against_the_given_ca() {
    let tls = Postgres::start_tls(&crew_testkit::scratch_dir("crew-archive-db", Some("tls")))
        .expect("TLS server");
    let other = Postgres::start_tls(&crew_testkit::scratch_dir("crew-archive-db", Some("other")))
        .expect("other CA");
    let (url, password) = tls.url_and_password();
    let connect = |ca: &std::path::Path| {
        pool(&ArchiveConnection {
            url: format!("{url}?sslmode=require"),
            password: Some(password.to_string()),
            ca_file: Some(ca.to_path_buf()),
        })
        .unwrap()
    };
    let trusted = connect(tls.ca_file().unwrap());
    let mut client = trusted
        .get()
        .await
        .expect("a TLS connection verified against its CA");
    migrate(&mut client).await.unwrap();
    let encrypted: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(encrypted, "the session is encrypted");
    let untrusted = connect(other.ca_file().unwrap());
    assert!(
        untrusted.get().await.is_err(),
        "a certificate of another CA is refused"
    );
}
