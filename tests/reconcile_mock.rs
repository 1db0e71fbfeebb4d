//! Reconcile against a mocked API server (the controller-rs pattern): the exact requests one reconcile makes.

use crew_api::{CrewExecution, CrewExecutionSpec, Phase};
use crew_operator::controller::context::Context;
use crew_operator::controller::{Operator, reconcile};
use crew_operator::error::Error;
use crew_operator::metrics::WriteKind;
use crew_operator::settings::Settings;
use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use kube::runtime::watcher::Event;
use serde_json::{Value, json};
use std::sync::Arc;
use tower_test::mock::{self, Handle};

type ApiHandle = Handle<Request<Body>, Response<Body>>;

fn execution() -> CrewExecution {
    let mut cx = CrewExecution::new(
        "x",
        CrewExecutionSpec {
            image: Some("worker:1".into()),
            history_limit: 20,
            ..Default::default()
        },
    );
    cx.metadata.namespace = Some("ns".into());
    cx.metadata.uid = Some("uid-x".into());
    cx.metadata.resource_version = Some("7".into());
    cx.metadata.generation = Some(1);
    cx
}

fn mocked() -> (Arc<Context>, ApiHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let (ctx, mut caches, _triggers) =
        Context::new(Client::new(service, "default"), Settings::default());
    let children = &ctx.indexes.children;
    for (job, pod) in [
        (Event::Init, Event::Init),
        (Event::InitDone, Event::InitDone),
    ] {
        children.apply_job_event(&job);
        children.apply_pod_event(&pod);
    }
    caches.executions.apply_watcher_event(&Event::InitDone);
    caches.queues.apply_watcher_event(&Event::InitDone);
    assert!(ctx.readiness().may_act());
    (ctx, handle)
}

async fn next(
    handle: &mut ApiHandle,
) -> (
    Method,
    String,
    Value,
    tower_test::mock::SendResponse<Response<Body>>,
) {
    let (request, send) = handle.next_request().await.expect("a request");
    let method = request.method().clone();
    let uri = request.uri().to_string();
    let bytes = request.into_body().collect_bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("json body")
    };
    (method, uri, body, send)
}

/// Asserts that the reconcile sends nothing more (within 50 ms).
async fn assert_no_request(api: &mut ApiHandle, why: &str) {
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(50), api.next_request())
            .await
            .is_err(),
        "{why}"
    );
}

fn respond(send: tower_test::mock::SendResponse<Response<Body>>, code: StatusCode, body: &Value) {
    let response = Response::builder()
        .status(code)
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap();
    send.send_response(response);
}

fn api_error(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": reason, "reason": reason, "code": code})
}

#[tokio::test]
async fn first_reconcile_creates_the_job_then_writes_status_once_then_records_the_event() {
    let (ctx, mut api) = mocked();
    let cx = execution();
    let task = tokio::spawn(reconcile(Arc::new(cx.clone()), ctx.clone()));

    let (method, uri, job, send) = next(&mut api).await;
    assert_eq!(
        (method, uri.as_str()),
        (Method::POST, "/apis/batch/v1/namespaces/ns/jobs?")
    );
    assert_eq!(job["metadata"]["name"], "x-main-1");
    assert_eq!(job["metadata"]["ownerReferences"][0]["uid"], "uid-x");
    assert_eq!(job["spec"]["backoffLimit"], 0);
    respond(send, StatusCode::CREATED, &job);

    let (method, uri, body, send) = next(&mut api).await;
    assert_eq!(method, Method::PATCH);
    assert_eq!(
        uri,
        "/apis/crew.dev/v1alpha1/namespaces/ns/crewexecutions/x/status?&force=true&fieldManager=crew-operator"
    );
    assert_eq!(
        body["metadata"]["resourceVersion"], "7",
        "status writes are resourceVersion-guarded"
    );
    assert!(body.get("spec").is_none(), "spec is never written");
    assert_eq!(body["status"]["phase"], "Running");
    assert_eq!(body["status"]["steps"][0]["jobName"], "x-main-1");
    assert_eq!(body["status"]["history"][0]["reason"], "Started");
    let mut stored = serde_json::to_value(&cx).unwrap();
    stored["status"] = body["status"].clone();
    // The write changed the object, so the server gave it a new resourceVersion.
    stored["metadata"]["resourceVersion"] = json!("8");
    respond(send, StatusCode::OK, &stored);

    let (method, uri, event, send) = next(&mut api).await;
    assert_eq!(
        (method, uri.as_str()),
        (Method::POST, "/apis/events.k8s.io/v1/namespaces/ns/events?")
    );
    assert_eq!(event["reason"], "Started");
    assert_eq!(event["type"], "Normal");
    assert_eq!(event["regarding"]["name"], "x");
    respond(send, StatusCode::CREATED, &event);

    task.await.unwrap().expect("reconcile succeeds");
    // The Event is created in the background: counted once its create returns.
    for _ in 0..100 {
        if ctx.metrics.writes(WriteKind::Event) == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        [WriteKind::JobCreate, WriteKind::Status, WriteKind::Event].map(|k| ctx.metrics.writes(k)),
        [1, 1, 1]
    );

    // The cache still shows resourceVersion 7 (it has not seen our write): the next reconcile does nothing.
    let idle = tokio::spawn(reconcile(Arc::new(cx), ctx.clone()));
    idle.await.unwrap().expect("waits for the cache");
    assert_no_request(&mut api, "no request on a stale view").await;
    assert_eq!(ctx.metrics.all_writes(), 3);
}

#[tokio::test]
async fn job_of_a_stranger_with_the_same_name_is_not_adopted() {
    let (ctx, mut api) = mocked();
    let task = tokio::spawn(reconcile(Arc::new(execution()), ctx.clone()));

    let (_, _, _, send) = next(&mut api).await;
    respond(send, StatusCode::CONFLICT, &api_error(409, "AlreadyExists"));
    let (method, uri, _, send) = next(&mut api).await;
    assert_eq!(
        (method, uri.as_str()),
        (Method::GET, "/apis/batch/v1/namespaces/ns/jobs/x-main-1")
    );
    let stranger = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x-main-1", "namespace": "ns",
        "ownerReferences": [{"apiVersion": "crew.dev/v1alpha1", "kind": "CrewExecution", "name": "x", "uid": "old-uid", "controller": true}]}});
    respond(send, StatusCode::OK, &stranger);

    let result = task.await.unwrap();
    assert!(
        matches!(result, Err(Error::JobNameTaken(ref name)) if name == "x-main-1"),
        "{result:?}"
    );
    assert_eq!(ctx.metrics.all_writes(), 0, "no status write, no event");
}

#[tokio::test]
async fn our_own_job_already_existing_counts_as_created() {
    let (ctx, mut api) = mocked();
    let task = tokio::spawn(reconcile(Arc::new(execution()), ctx.clone()));
    let (_, _, _, send) = next(&mut api).await;
    respond(send, StatusCode::CONFLICT, &api_error(409, "AlreadyExists"));
    let (_, _, _, send) = next(&mut api).await;
    let ours = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x-main-1", "namespace": "ns",
        "ownerReferences": [{"apiVersion": "crew.dev/v1alpha1", "kind": "CrewExecution", "name": "x", "uid": "uid-x", "controller": true}]}});
    respond(send, StatusCode::OK, &ours);
    let (method, uri, body, send) = next(&mut api).await;
    assert_eq!(method, Method::PATCH);
    assert!(uri.contains("/status"));
    assert_eq!(body["status"]["phase"], Phase::Running.as_str());
    respond(
        send,
        StatusCode::OK,
        &serde_json::to_value(execution()).unwrap(),
    );
    let (_, _, event, send) = next(&mut api).await;
    respond(send, StatusCode::CREATED, &event);
    task.await.unwrap().expect("reconcile succeeds");
    assert_eq!(ctx.metrics.writes(WriteKind::JobCreate), 0, "no second Job");
    assert_eq!(ctx.metrics.writes(WriteKind::Status), 1);
}

#[tokio::test]
async fn conflicting_status_write_publishes_no_event() {
    let (ctx, mut api) = mocked();
    let task = tokio::spawn(reconcile(Arc::new(execution()), ctx.clone()));
    let (_, _, job, send) = next(&mut api).await;
    respond(send, StatusCode::CREATED, &job);
    let (_, _, _, send) = next(&mut api).await;
    respond(send, StatusCode::CONFLICT, &api_error(409, "Conflict"));
    task.await.unwrap().expect("a stale view is not an error");
    assert_no_request(&mut api, "no event after a refused write").await;
    assert_eq!(
        (
            ctx.metrics.writes(WriteKind::Status),
            ctx.metrics.writes(WriteKind::Event)
        ),
        (0, 0)
    );
}

#[tokio::test]
async fn invalid_spec_fails_with_a_warning_and_no_job() {
    let (ctx, mut api) = mocked();
    let mut cx = execution();
    cx.spec.image = None;
    let task = tokio::spawn(reconcile(Arc::new(cx), ctx.clone()));
    let (method, uri, body, send) = next(&mut api).await;
    assert_eq!(method, Method::PATCH, "{uri}");
    assert_eq!(body["status"]["phase"], "Failed");
    assert_eq!(body["status"]["reason"], "InvalidSpec");
    let stalled = body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Stalled")
        .unwrap()
        .clone();
    assert_eq!(stalled["status"], "True");
    respond(
        send,
        StatusCode::OK,
        &serde_json::to_value(execution()).unwrap(),
    );
    let (_, _, event, send) = next(&mut api).await;
    assert_eq!(
        (event["type"].as_str(), event["reason"].as_str()),
        (Some("Warning"), Some("InvalidSpec"))
    );
    respond(send, StatusCode::CREATED, &event);
    task.await
        .unwrap()
        .expect("invalid input is not a reconcile error");
    assert_eq!(ctx.metrics.writes(WriteKind::JobCreate), 0);
}

/// A stop requested before the first list has come back ends the controller at once: nothing has run yet, and
/// waiting (kube-runtime's graceful shutdown waits for a cache it no longer fills) hung a SIGTERMed replica.
#[tokio::test]
async fn a_stop_before_the_caches_fill_ends_the_controller_at_once() {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let operator = Operator::new(Client::new(service, "default"), Settings::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(operator.run(async {
        let _ = stopped.await;
    }));
    // The watches' first lists reach the API server, which never answers.
    let mut listed = Vec::new();
    for _ in 0..5 {
        let (request, send) = handle.next_request().await.expect("a list request");
        listed.push(request.uri().path().to_string());
        std::mem::forget(send);
    }
    listed.sort();
    assert_eq!(
        listed,
        [
            "/api/v1/events",
            "/api/v1/pods",
            "/apis/batch/v1/jobs",
            "/apis/crew.dev/v1alpha1/crewexecutions",
            "/apis/crew.dev/v1alpha1/crewqueues",
        ]
    );
    stop.send(()).expect("the controller listens");
    tokio::time::timeout(std::time::Duration::from_secs(5), run)
        .await
        .expect("the controller stops without its caches")
        .expect("the controller task ends cleanly");
}

#[tokio::test]
async fn a_reconcile_waiting_on_the_api_server_holds_little_memory() {
    // Thousands of reconciles wait on the API server at once during a burst; each holds its suspended future.
    // The writes are boxed, so the future is small (it was 10.9 KiB with the writes inline).
    let (ctx, _handle) = mocked();
    let waiting = reconcile(Arc::new(execution()), ctx);
    let size = std::mem::size_of_val(&waiting);
    assert!(size <= 2048, "the reconcile future is {size} bytes");
}

/// A status write that changes nothing keeps the object's resourceVersion (server-side apply of identical content).
/// The next reconcile must not wait for the cache to show a newer version: none will come.
#[tokio::test]
async fn a_status_write_that_changed_nothing_does_not_hold_the_next_reconcile() {
    let (ctx, mut api) = mocked();
    let cx = execution();
    let task = tokio::spawn(reconcile(Arc::new(cx.clone()), ctx.clone()));
    let (_, _, job, send) = next(&mut api).await;
    respond(send, StatusCode::CREATED, &job);
    let (method, uri, body, send) = next(&mut api).await;
    assert_eq!(method, Method::PATCH, "{uri}");
    let mut stored = serde_json::to_value(&cx).unwrap();
    stored["status"] = body["status"].clone();
    // Unchanged resourceVersion: the server stored nothing new.
    respond(send, StatusCode::OK, &stored);
    let (_, _, event, send) = next(&mut api).await;
    respond(send, StatusCode::CREATED, &event);
    task.await.unwrap().expect("reconcile succeeds");

    // The cache still shows resourceVersion 7, and that is all there is: the next reconcile acts on it.
    let again = tokio::spawn(reconcile(Arc::new(cx), ctx.clone()));
    let request = tokio::time::timeout(std::time::Duration::from_secs(5), api.next_request()).await;
    assert!(
        request.is_ok(),
        "the next reconcile waited for a resourceVersion that never comes"
    );
    again.abort();
}

/// A running execution whose user asked to cancel it, with its step's Job active in the cache.
fn cancelled_while_running() -> (CrewExecution, k8s_openapi::api::batch::v1::Job) {
    let mut cx = execution();
    cx.spec.cancel = true;
    cx.status = serde_json::from_value(json!({
        "phase": "Running", "reason": "StepRunning", "startTime": "2026-01-01T00:00:00Z", "observedGeneration": 1,
        "steps": [{"name": "main", "phase": "Running", "attempt": 1, "jobName": "x-main-1",
            "startTime": "2026-01-01T00:00:00Z"}],
        "history": [{"from": "Pending", "to": "Running", "reason": "Started", "time": "2026-01-01T00:00:00Z"}]
    }))
    .unwrap();
    let job = serde_json::from_value(json!({
        "metadata": {"name": "x-main-1", "namespace": "ns", "uid": "job-1",
            "labels": {"crew.dev/execution": "x", "crew.dev/step": "main", "crew.dev/attempt": "1"},
            "ownerReferences": [{"apiVersion": "crew.dev/v1alpha1", "kind": "CrewExecution", "name": "x",
                "uid": "uid-x", "controller": true}]},
        "status": {"active": 1}
    }))
    .unwrap();
    (cx, job)
}

fn metadata_of(name: &str, resource_version: &str) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
        "metadata": {"name": name, "namespace": "ns", "uid": "uid-x", "resourceVersion": resource_version}})
}

/// Review finding 15: a Job delete is not guarded by the execution's resourceVersion as the status write is. A plan
/// that stops Jobs is carried out only if the API server still has the version it was made from: here the user
/// has cleared `cancel` since (resourceVersion 9), so nothing is deleted and nothing written.
#[tokio::test]
async fn jobs_are_not_deleted_on_a_stale_view() {
    let (ctx, mut api) = mocked();
    let (cx, job) = cancelled_while_running();
    ctx.indexes.children.apply_job_event(&Event::Apply(job));
    let task = tokio::spawn(reconcile(Arc::new(cx), ctx.clone()));
    let (method, uri, _, send) = next(&mut api).await;
    assert_eq!(
        (method, uri.as_str()),
        (
            Method::GET,
            "/apis/crew.dev/v1alpha1/namespaces/ns/crewexecutions/x"
        )
    );
    respond(send, StatusCode::OK, &metadata_of("x", "9"));
    task.await.unwrap().expect("a stale view is not an error");
    assert_no_request(&mut api, "no DELETE and no status write on a stale view").await;
    assert_eq!(ctx.metrics.all_writes(), 0);
}

/// The same plan on a current view: the Job is deleted, then the status written.
#[tokio::test]
async fn jobs_are_deleted_when_the_view_is_current() {
    let (ctx, mut api) = mocked();
    let (cx, job) = cancelled_while_running();
    ctx.indexes.children.apply_job_event(&Event::Apply(job));
    let task = tokio::spawn(reconcile(Arc::new(cx.clone()), ctx.clone()));
    let (method, _, _, send) = next(&mut api).await;
    assert_eq!(method, Method::GET);
    respond(send, StatusCode::OK, &metadata_of("x", "7"));
    let (method, uri, _, send) = next(&mut api).await;
    assert_eq!(
        (method, uri.as_str()),
        (
            Method::DELETE,
            "/apis/batch/v1/namespaces/ns/jobs/x-main-1?"
        )
    );
    respond(
        send,
        StatusCode::OK,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
    );
    let (method, _, body, send) = next(&mut api).await;
    assert_eq!(method, Method::PATCH);
    assert_eq!(body["status"]["phase"], "Cancelled");
    let mut stored = serde_json::to_value(&cx).unwrap();
    stored["status"] = body["status"].clone();
    stored["metadata"]["resourceVersion"] = json!("8");
    respond(send, StatusCode::OK, &stored);
    let (_, _, event, send) = next(&mut api).await;
    respond(send, StatusCode::CREATED, &event);
    task.await.unwrap().expect("reconcile succeeds");
    assert_eq!(ctx.metrics.writes(WriteKind::JobDelete), 1);
}

/// Review finding 15, the TTL: the execution is deleted only in the version the plan was made from (a TTL raised
/// since makes the API server refuse the delete, and nothing else happens).
#[tokio::test]
async fn the_ttl_delete_is_guarded_by_the_resource_version() {
    let (ctx, mut api) = mocked();
    let mut cx = execution();
    cx.spec.ttl_seconds_after_finished = Some(0);
    cx.status = serde_json::from_value(json!({
        "phase": "Succeeded", "reason": "Succeeded", "observedGeneration": 1,
        "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:01Z",
        "history": [{"from": "Pending", "to": "Running", "reason": "Started", "time": "2026-01-01T00:00:00Z"},
            {"from": "Running", "to": "Succeeded", "reason": "Succeeded", "time": "2026-01-01T00:00:01Z"}]
    }))
    .unwrap();
    let task = tokio::spawn(reconcile(Arc::new(cx), ctx.clone()));
    let (method, uri, body, send) = next(&mut api).await;
    assert_eq!(
        (method, uri.as_str()),
        (
            Method::DELETE,
            "/apis/crew.dev/v1alpha1/namespaces/ns/crewexecutions/x?"
        )
    );
    assert_eq!(
        body["preconditions"],
        json!({"resourceVersion": "7", "uid": "uid-x"})
    );
    respond(send, StatusCode::CONFLICT, &api_error(409, "Conflict"));
    task.await
        .unwrap()
        .expect("a refused delete is a stale view, not an error");
    assert_no_request(&mut api, "no further request").await;
    assert_eq!(ctx.metrics.all_writes(), 0);
}

/// Review finding 2: a ServiceAccount name the API cannot even be asked about (a trailing space) failed every
/// launch before any write: no phase, no Event, retried forever at the head of its queue. Now the run fails with
/// `InvalidSpec`, visibly, and no Job is created.
#[tokio::test]
async fn a_service_account_name_that_cannot_be_read_fails_the_run() {
    let (ctx, mut api) = mocked();
    let mut cx = execution();
    cx.spec.service_account_name = Some("runner ".into());
    let task = tokio::spawn(reconcile(Arc::new(cx.clone()), ctx.clone()));
    let (method, uri, body, send) = next(&mut api).await;
    assert_eq!(method, Method::PATCH, "no Job create: {uri}");
    assert_eq!(body["status"]["phase"], "Failed");
    assert_eq!(body["status"]["reason"], "InvalidSpec");
    respond(send, StatusCode::OK, &serde_json::to_value(cx).unwrap());
    // `Started` first when the refusal comes at the launch, not when the spec is resolved: either way it ends
    // with the Warning.
    let mut events = Vec::new();
    while events
        .last()
        .is_none_or(|(_, reason)| reason != "InvalidSpec")
    {
        let (_, uri, event, send) =
            tokio::time::timeout(std::time::Duration::from_secs(5), next(&mut api))
                .await
                .unwrap_or_else(|_| panic!("no InvalidSpec Event after {events:?}"));
        assert!(uri.contains("/events"), "{uri}");
        let field = |key: &str| event[key].as_str().unwrap_or_default().to_string();
        events.push((field("type"), field("reason")));
        respond(send, StatusCode::CREATED, &event);
    }
    assert_eq!(
        events.last().map(|(kind, _)| kind.as_str()),
        Some("Warning")
    );
    task.await
        .unwrap()
        .expect("a failed run, not a reconcile error");
    assert_eq!(ctx.metrics.writes(WriteKind::JobCreate), 0);
}
