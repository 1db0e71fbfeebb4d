//! The archive on the real control plane with a real PostgreSQL: a finished run is stored before its TTL deletes it
//! (`Archived=True`, its finalizer gone); a run deleted while it runs is stored with its last state; with the
//! database down runs go on, the failure shows (condition, Warning Event), nothing is deleted, and the archive
//! catches up once the database is back; an operator killed while it archives loses and duplicates nothing.

mod support;

use crew_api::CrewExecution;
use crew_operator::archive::connect::ArchiveConnection;
use crew_testkit::postgres::Postgres;
use deadpool_postgres::Pool;
use kube::ResourceExt;
use std::sync::OnceLock;
use std::time::Duration;
use support::conditions::{has_condition, has_condition_reason, has_event, is_phase};
use support::wait::{wait_until, when_object};
use support::{Operator, TestNs};

const LIMIT: Duration = Duration::from_secs(60);
const RETAIN: &str = "crew.dev/retain";

static SERVER: OnceLock<Postgres> = OnceLock::new();

fn server() -> &'static Postgres {
    SERVER.get_or_init(|| {
        Postgres::start(&crew_testkit::scratch_dir("crew-e2e-archive", None))
            .expect("PostgreSQL starts (Debian package postgresql; `make tools`)")
    })
}

/// A database of its own on `server` for one test: how the operator connects, and a pool to check what it wrote.
fn database(server: &Postgres, name: &str) -> (ArchiveConnection, Pool) {
    server
        .psql("postgres", &format!("DROP DATABASE IF EXISTS {name}"))
        .unwrap();
    server
        .psql("postgres", &format!("CREATE DATABASE {name}"))
        .unwrap();
    let connection = server.archive_connection(name);
    let pool = crew_operator::archive::connect::pool(&connection).unwrap();
    (connection, pool)
}

fn with_archive(t: &TestNs, connection: &ArchiveConnection) -> Operator {
    let connection = connection.clone();
    t.start_operator_changed(move |settings| settings.archive = Some(connection))
}

/// `sql`'s single number (0 while the table does not exist yet).
async fn number(pool: &Pool, sql: &str) -> i64 {
    let Ok(client) = pool.get().await else {
        return -1;
    };
    match client.query_one(sql, &[]).await {
        Ok(row) => row.get(0),
        Err(_) => 0,
    }
}

fn retained(cx: &CrewExecution) -> bool {
    cx.finalizers().iter().any(|f| f == RETAIN)
}

/// A run with a TTL is stored first: `Archived=True` while it still exists, its finalizer gone, then the TTL
/// deletes it; the row holds its typed columns, each step attempt, its labels and the object with its payload.
#[tokio::test]
async fn a_finished_run_is_stored_before_its_ttl_deletes_it() {
    let (connection, pool) = database(server(), "finished");
    let t = TestNs::new("archive-ttl", Duration::from_millis(300)).await;
    let op = with_archive(&t, &connection);
    t.create(
        "metadata: {name: kept, labels: {team: ml}}
spec:
  image: busybox
  inputs: {question: why}
  ttlSecondsAfterFinished: 3
  steps: [{name: fetch}, {name: train}]
",
    )
    .await;
    let cx = t
        .wait_for("kept", LIMIT, has_condition("Archived", "True"))
        .await;
    assert_eq!(support::phase_of(&cx), "Succeeded");
    t.wait_for(
        "kept",
        Duration::from_secs(10),
        when_object("its finalizer gone", |cx: &CrewExecution| !retained(cx)),
    )
    .await;
    t.wait_deleted("kept", Duration::from_secs(15)).await;
    let client = pool.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT phase, attempts, duration_seconds IS NOT NULL, object -> 'spec' -> 'inputs' ->> 'question',
                    (SELECT count(*) FROM step_attempts s WHERE s.uid = e.uid),
                    (SELECT value FROM execution_labels l WHERE l.uid = e.uid AND key = 'team')
             FROM executions e WHERE namespace = $1 AND name = 'kept'",
            &[&t.ns],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "Succeeded");
    assert_eq!(row.get::<_, i32>(1), 2);
    assert!(row.get::<_, bool>(2));
    assert_eq!(
        row.get::<_, Option<String>>(3).as_deref(),
        Some("why"),
        "the payload is archived"
    );
    assert_eq!(row.get::<_, i64>(4), 2);
    assert_eq!(row.get::<_, Option<String>>(5).as_deref(), Some("ml"));
    op.stop().await;
}

/// Deleted while its step runs: the finalizer holds it until its last state is stored, then it goes.
#[tokio::test]
async fn a_run_deleted_while_it_runs_is_stored_with_its_last_state() {
    let (connection, pool) = database(server(), "deleted");
    let t = TestNs::new("archive-deleted", Duration::from_secs(300)).await;
    let op = with_archive(&t, &connection);
    t.create("metadata: {name: cut}\nspec: {image: busybox}\n")
        .await;
    t.wait_for("cut", LIMIT, is_phase("Running")).await;
    t.executions()
        .delete("cut", &Default::default())
        .await
        .expect("delete");
    t.wait_deleted("cut", LIMIT).await;
    let client = pool.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT phase, deleted_before_finishing FROM executions WHERE namespace = $1 AND name = 'cut'",
            &[&t.ns],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0).as_str(), row.get::<_, bool>(1)),
        ("Running", true)
    );
    let deleted = number(
        &pool,
        "SELECT sum(deleted)::bigint FROM rollups WHERE granularity = 'day'",
    )
    .await;
    assert_eq!(deleted, 1);
    op.stop().await;
}

/// The database is down (killed): the run still runs and finishes; `Archived=False` with why and a Warning Event;
/// its TTL does not delete it; once the database is back the archive catches up and the TTL acts.
#[tokio::test]
async fn with_the_database_down_runs_go_on_and_the_archive_catches_up() {
    let mut own =
        Postgres::start(&crew_testkit::scratch_dir("crew-e2e-archive", Some("down"))).unwrap();
    let (connection, pool) = database(&own, "down");
    let t = TestNs::new("archive-down", Duration::from_millis(300)).await;
    let op = with_archive(&t, &connection);
    // The schema is migrated while the database is up.
    wait_until(LIMIT, "the schema migrated", || async {
        number(&pool, "SELECT count(*) FROM crew_schema_migrations").await > 0
    })
    .await;
    own.kill();
    t.create("metadata: {name: patient}\nspec: {image: busybox, ttlSecondsAfterFinished: 0}\n")
        .await;
    t.wait_for("patient", LIMIT, is_phase("Succeeded")).await;
    let cx = t
        .wait_for(
            "patient",
            LIMIT,
            has_condition_reason("Archived", "ArchiveFailed"),
        )
        .await;
    let condition = cx
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Archived")
        .unwrap();
    assert_eq!(condition.status, "False");
    assert!(
        condition.message.contains("unreachable"),
        "{}",
        condition.message
    );
    t.wait_events("patient", LIMIT, has_event("Warning", "ArchiveFailed"))
        .await;
    assert!(retained(&cx), "kept until it is stored");
    let failed_writes = op
        .ctx
        .metrics
        .archive_writes
        .get_or_create(&vec![("result".to_string(), "error".to_string())])
        .get();
    assert!(
        failed_writes > 0,
        "counted in crew_archive_writes_total{{result=\"error\"}}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = t
        .executions()
        .get("patient")
        .await
        .expect("not deleted while unarchived");
    assert!(
        still.metadata.deletion_timestamp.is_none(),
        "the TTL waits for the archive"
    );
    own.restart().unwrap();
    t.wait_deleted("patient", Duration::from_secs(90)).await;
    let stored = number(
        &pool,
        "SELECT count(*) FROM executions WHERE name = 'patient'",
    )
    .await;
    assert_eq!(stored, 1);
    op.stop().await;
}

/// The database stops answering without closing a connection (every PostgreSQL process SIGSTOPped): the write
/// times out instead of holding the archiver for ever, the run shows `ArchiveFailed` and is kept; once the database
/// answers again it is stored and its TTL acts.
#[tokio::test]
async fn a_database_that_stops_answering_fails_the_write_visibly_and_is_caught_up() {
    let own = Postgres::start(&crew_testkit::scratch_dir(
        "crew-e2e-archive",
        Some("frozen"),
    ))
    .unwrap();
    let (connection, pool) = database(&own, "frozen");
    let t = TestNs::new("archive-frozen", Duration::from_millis(300)).await;
    let op = with_archive(&t, &connection);
    wait_until(LIMIT, "the schema migrated", || async {
        number(&pool, "SELECT count(*) FROM crew_schema_migrations").await > 0
    })
    .await;
    own.freeze();
    t.create("metadata: {name: stuck}\nspec: {image: busybox, ttlSecondsAfterFinished: 0}\n")
        .await;
    t.wait_for("stuck", LIMIT, is_phase("Succeeded")).await;
    let limit = crew_operator::archive::WRITE_TIMEOUT + Duration::from_secs(30);
    let cx = t
        .wait_for(
            "stuck",
            limit,
            has_condition_reason("Archived", "ArchiveFailed"),
        )
        .await;
    assert!(retained(&cx), "kept while the database hangs");
    own.thaw();
    t.wait_deleted("stuck", Duration::from_secs(120)).await;
    assert_eq!(
        number(
            &pool,
            "SELECT count(*) FROM executions WHERE name = 'stuck'"
        )
        .await,
        1
    );
    op.stop().await;
}

/// The operator binary is SIGKILLed twice while it archives a burst (after 3 and after 15 runs are stored), and
/// started again each time: every run is stored exactly once and counted once, and every run is deleted by its TTL
/// only once stored.
#[tokio::test]
async fn an_operator_killed_while_it_archives_loses_and_duplicates_nothing() {
    const RUNS: i64 = 30;
    let (connection, pool) = database(server(), "killed");
    let t = TestNs::new("archive-kill", Duration::from_millis(200)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let password = dir.path().join("password");
    std::fs::write(&password, connection.password.clone().unwrap_or_default())
        .expect("password file");
    let log = dir.path().join("operator.log");
    let password = password.to_string_lossy().into_owned();
    let flags = [
        "--archive-url",
        connection.url.as_str(),
        "--archive-password-file",
        password.as_str(),
    ];
    let mut operator = support::operator_process_with(&t, &log, &flags);
    for i in 0..RUNS {
        t.create(&format!(
            "metadata: {{name: run-{i}}}\nspec: {{image: busybox, ttlSecondsAfterFinished: 0}}\n"
        ))
        .await;
    }
    let mut stored_at_kills = Vec::new();
    for threshold in [3, 15] {
        wait_until(LIMIT, "runs stored", || async {
            number(&pool, "SELECT count(*) FROM executions").await >= threshold
        })
        .await;
        operator.kill().await.expect("SIGKILL the operator");
        stored_at_kills.push(number(&pool, "SELECT count(*) FROM executions").await);
        operator = support::operator_process_with(&t, &log, &flags);
    }
    wait_until(
        Duration::from_secs(120),
        "every run stored and deleted",
        || async {
            number(&pool, "SELECT count(*) FROM executions").await == RUNS
                && t.executions()
                    .list(&Default::default())
                    .await
                    .is_ok_and(|l| l.items.is_empty())
        },
    )
    .await;
    let counted = number(
        &pool,
        "SELECT sum(total)::bigint FROM rollups WHERE granularity = 'hour'",
    )
    .await;
    let steps = number(&pool, "SELECT count(*) FROM step_attempts").await;
    let unfinished = number(
        &pool,
        "SELECT count(*) FROM executions WHERE phase <> 'Succeeded'",
    )
    .await;
    eprintln!(
        "SIGKILLed with {stored_at_kills:?} of {RUNS} stored; after the restarts {RUNS} stored, counted {counted}"
    );
    assert_eq!(counted, RUNS, "each counted once in the rollups");
    assert_eq!(steps, RUNS, "one step attempt each, none twice");
    assert_eq!(
        unfinished, 0,
        "each stored as it finished, not as it was deleted"
    );
    operator.kill().await.expect("stop the operator");
}

async fn get_as(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    support::http_exchange(
        addr,
        &format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n{auth}\r\n"),
    )
    .await
}

/// The read API answers each caller with the caller's own rights: a ServiceAccount allowed to read its namespace's
/// executions reads them (list, object), and nothing of another namespace nor of all; no token or a made-up one is
/// refused; a flood of made-up tokens from one source costs a bounded number of TokenReviews.
#[tokio::test]
async fn the_read_api_answers_with_the_callers_own_rights() {
    let (connection, _pool) = database(server(), "readapi");
    let t = TestNs::new("archive-read", Duration::from_millis(200)).await;
    let op = with_archive(&t, &connection);
    t.create("metadata: {name: done, labels: {team: ml}}\nspec: {image: busybox}\n")
        .await;
    t.wait_for("done", LIMIT, has_condition("Archived", "True"))
        .await;
    let read_pool = crew_operator::archive::connect::pool_of(&connection, 2).unwrap();
    let api = crew_operator::archive::serve::ArchiveApi::new(read_pool, t.client.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = tokio::spawn(crew_operator::archive::serve::serve(listener, api.clone()));
    // The reader may list and get executions in this namespace, nothing else.
    let rules = "[{apiGroups: [crew.dev], resources: [crewexecutions], verbs: [get, list]}]";
    support::grant_in_namespace(&t, "reader", "read-runs", rules).await;
    let reader = support::account_token(&t.client, &t.ns, "reader").await;
    let ns = &t.ns;
    // RBAC reaches the authorizer's cache within a moment.
    let mine = format!("/v1/namespaces/{ns}/executions?labelSelector=team%3Dml");
    wait_until(Duration::from_secs(20), "the reader may list", || async {
        get_as(addr, &mine, Some(&reader)).await.0 == 200
    })
    .await;
    let (code, body) = get_as(addr, &mine, Some(&reader)).await;
    assert_eq!(code, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["items"][0]["name"], "done");
    assert_eq!(page["items"][0]["phase"], "Succeeded");
    let (code, body) = get_as(
        addr,
        &format!("/v1/namespaces/{ns}/executions/done"),
        Some(&reader),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let object: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(object["status"]["phase"], "Succeeded");
    let (code, _) = get_as(
        addr,
        &format!("/v1/namespaces/{ns}/executions/done/results/main"),
        Some(&reader),
    )
    .await;
    assert_eq!(code, 404, "it posted no result");
    let (code, _) = get_as(
        addr,
        &format!("/v1/namespaces/{ns}/stats?since=1d"),
        Some(&reader),
    )
    .await;
    assert_eq!(code, 200);
    for forbidden in [
        "/v1/namespaces/kube-system/executions",
        "/v1/executions",
        "/v1/stats",
    ] {
        let (code, body) = get_as(addr, forbidden, Some(&reader)).await;
        assert_eq!(code, 403, "{forbidden}: {body}");
    }
    let admin = &support::plane().token;
    let (code, body) = get_as(addr, "/v1/executions?limit=5", Some(admin)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(get_as(addr, &mine, None).await.0, 401);
    assert_eq!(get_as(addr, &mine, Some("made-up")).await.0, 401);
    assert_eq!(
        get_as(
            addr,
            &format!("/v1/namespaces/{ns}/executions?limit=x"),
            Some(&reader)
        )
        .await
        .0,
        400
    );
    // A flood of made-up tokens from one source.
    let (reviews_before, _) = api.reviews_sent();
    let answers = futures::future::join_all((0..300).map(|i| async move {
        get_as(addr, "/v1/executions", Some(&format!("fake-{i}")))
            .await
            .0
    }))
    .await;
    let (reviews_after, _) = api.reviews_sent();
    let limited = answers.iter().filter(|c| **c == 429).count();
    eprintln!(
        "flood of 300 made-up tokens: {limited} answered 429, {} TokenReviews",
        reviews_after - reviews_before
    );
    assert!(
        answers.iter().all(|c| [401, 429, 503].contains(c)),
        "{answers:?}"
    );
    assert!(
        reviews_after - reviews_before <= 40,
        "the source limit bounds the reviews"
    );
    // The operator's own work goes on meanwhile.
    t.create("metadata: {name: after}\nspec: {image: busybox}\n")
        .await;
    t.wait_for("after", LIMIT, has_condition("Archived", "True"))
        .await;
    served.abort();
    op.stop().await;
}

/// `kubectl-crew args…` with the test plane's kubeconfig (the admin's token) and `--archive-server`.
async fn crew_archived(
    server: std::net::SocketAddr,
    ns: &str,
    args: &[&str],
) -> (i32, String, String) {
    let output =
        tokio::process::Command::new(support::workspace_bin("kubectl-crew", "KUBECTL_CREW_BIN"))
            .arg("--kubeconfig")
            .arg(&support::plane().kubeconfig)
            .args(["-n", ns, "--archive-server", &format!("http://{server}")])
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .await
            .expect("run kubectl-crew");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A result a worker posted (256 KiB, through the progress endpoint) is archived whole with its run; after the run
/// is deleted, `kubectl crew` reads the run, its history, its result and the statistics from the archive.
#[tokio::test]
async fn a_posted_result_outlives_its_run_and_kubectl_crew_reads_the_archive() {
    let (connection, _pool) = database(server(), "results");
    let t = TestNs::new("archive-result", Duration::from_millis(200)).await;
    let progress = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let progress_addr = progress.local_addr().unwrap();
    let op = t.start_operator_changed({
        let connection = connection.clone();
        move |settings| {
            settings.archive = Some(connection);
            settings.progress.progress_url = Some(format!("http://{progress_addr}/v1/progress"));
        }
    });
    let endpoint = crew_operator::progress::endpoint::Endpoint::new(op.ctx.clone());
    tokio::spawn(crew_operator::progress::endpoint::serve(progress, endpoint));
    t.create(
        "metadata: {name: report}
spec:
  image: busybox
  steps: [{name: write, podAnnotations: {sim.crew.dev/hang: 'true'}}, {name: check}]
",
    )
    .await;
    let (pod, token) = support::running_worker(&t, "report", 0, "write").await;
    let body = "tide tables\n".repeat(256 * 1024 / 12);
    let (code, answer) =
        support::post_as_worker(progress_addr, &token, "/v1/result", "text/plain", &body).await;
    assert_eq!(code, 201, "{answer}");
    support::let_finish(&t, &pod).await;
    t.wait_for("report", LIMIT, has_condition("Archived", "True"))
        .await;
    t.executions()
        .delete("report", &Default::default())
        .await
        .expect("delete");
    t.wait_deleted("report", LIMIT).await;

    let read_pool = crew_operator::archive::connect::pool_of(&connection, 2).unwrap();
    let api = crew_operator::archive::serve::ArchiveApi::new(read_pool, t.client.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = tokio::spawn(crew_operator::archive::serve::serve(listener, api));
    let ns = t.ns.clone();
    let (code, out, err) = crew_archived(addr, &ns, &["result", "report", "--archived"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out, body,
        "the result, byte for byte, after its run is gone"
    );
    let (code, out, err) = crew_archived(addr, &ns, &["list", "--archived"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("report") && l.contains("Succeeded")),
        "{out}"
    );
    let (code, out, err) = crew_archived(addr, &ns, &["list", "--archived", "-o", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let items: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(items[0]["stepsSucceeded"], 2);
    let (code, out, err) = crew_archived(addr, &ns, &["describe", "report", "--archived"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Succeeded") && out.contains("write"), "{out}");
    let (code, out, err) = crew_archived(addr, &ns, &["history", "report", "--archived"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("StepSucceeded"), "{out}");
    let (code, out, err) =
        crew_archived(addr, &ns, &["stats", "--archived", "--since", "1d"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("all") && l.contains("100.0%")),
        "{out}"
    );
    let (code, _, err) = crew_archived(addr, &ns, &["describe", "nothing", "--archived"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("not in the archive"), "{err}");
    served.abort();
    op.stop().await;
}
