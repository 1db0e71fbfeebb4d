//! The tracker and the per-pod tasks against a mocked API server: the exact requests for each kind of pod.

use super::plan::Defaults;
use super::pod::SimPod;
use super::runner::{Shared, Stats, TaskOutcome};
use super::tracker::Tracker;
use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use kube::runtime::watcher::Event;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::Semaphore;
use tower_test::mock::{self, Handle, SendResponse};

type ApiHandle = Handle<Request<Body>, Response<Body>>;

fn setup(duration: Duration) -> (Tracker, Arc<Shared>, ApiHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let shared = Arc::new(Shared {
        client: Client::new(service, "default"),
        start_permits: Semaphore::new(2),
        end_permits: Semaphore::new(2),
        start_delay: Duration::ZERO,
        stats: Stats::default(),
    });
    let defaults = Defaults {
        duration,
        exit_code: 0,
    };
    (Tracker::new(Arc::clone(&shared), defaults), shared, handle)
}

/// Pod `p` (UID `uid`) in `ns` with one container, the given phase, labels, annotations and extra metadata.
fn pod(uid: &str, phase: Option<&str>, annotations: Value, extra: Value) -> SimPod {
    let mut metadata = json!({
        "name": "p", "namespace": "ns", "uid": uid, "resourceVersion": "1",
        "labels": {"crew.dev/execution": "x", "crew.dev/attempt": "1"},
        "annotations": annotations,
    });
    if let (Some(m), Some(extra)) = (metadata.as_object_mut(), extra.as_object()) {
        m.extend(extra.clone());
    }
    let mut v = json!({
        "metadata": metadata,
        "spec": {"containers": [{"name": "worker", "image": "img:1"}]},
    });
    if let Some(phase) = phase {
        v["status"] = json!({"phase": phase, "startTime": jiff::Timestamp::now().to_string()});
    }
    serde_json::from_value(v).unwrap()
}

async fn next(handle: &mut ApiHandle) -> (Method, String, Value, SendResponse<Response<Body>>) {
    let (request, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .expect("a request within 5s")
        .expect("a request");
    let method = request.method().clone();
    let uri = request.uri().to_string();
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if method == Method::PATCH {
        assert_eq!(content_type, "application/merge-patch+json");
    }
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (method, uri, body, send)
}

fn respond(send: SendResponse<Response<Body>>, code: StatusCode) {
    let body = if code.is_success() {
        json!({"metadata": {"name": "p", "namespace": "ns"}})
    } else {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "x",
               "reason": "x", "code": code.as_u16()})
    };
    let response = Response::builder()
        .status(code)
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    send.send_response(response);
}

async fn no_request(handle: &mut ApiHandle) {
    let next = tokio::time::timeout(Duration::from_millis(100), handle.next_request()).await;
    assert!(next.is_err(), "unexpected request");
}

/// Waits for the next task to end, feeds it to the tracker and returns its outcome (skipping aborted ones).
async fn task_end(tracker: &mut Tracker) -> TaskOutcome {
    loop {
        let done = tokio::time::timeout(Duration::from_secs(5), tracker.tasks.join_next_with_id())
            .await
            .expect("a task ends within 5s")
            .expect("a task");
        let outcome = done.as_ref().ok().map(|(_, o)| *o);
        tracker.task_done(done);
        if let Some(outcome) = outcome {
            return outcome;
        }
    }
}

const STATUS_URI: &str = "/api/v1/namespaces/ns/pods/p/status?";

#[tokio::test]
async fn pending_pod_runs_then_succeeds_with_its_message() {
    let (mut tracker, shared, mut api) = setup(Duration::ZERO);
    let ann = json!({"sim.crew.dev/message": "the result"});
    tracker.handle(Event::Apply(pod(
        "u1",
        Some("Pending"),
        ann.clone(),
        json!({}),
    )));

    let (method, uri, body, send) = next(&mut api).await;
    assert_eq!((method, uri.as_str()), (Method::PATCH, STATUS_URI));
    assert_eq!(body["status"]["phase"], "Running");
    assert_eq!(body["status"]["containerStatuses"][0]["name"], "worker");
    assert_eq!(body["status"]["containerStatuses"][0]["image"], "img:1");
    respond(send, StatusCode::OK);

    let (method, uri, body, send) = next(&mut api).await;
    assert_eq!((method, uri.as_str()), (Method::PATCH, STATUS_URI));
    assert_eq!(body["status"]["phase"], "Succeeded");
    let terminated = &body["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(terminated["exitCode"], 0);
    assert_eq!(terminated["message"], "the result");
    respond(send, StatusCode::OK);
    assert_eq!(task_end(&mut tracker).await, TaskOutcome::Finished);

    // Stale events of the pod start nothing; its end is counted and forgets it.
    assert_eq!(tracker.tracked(), 1);
    tracker.handle(Event::Apply(pod(
        "u1",
        Some("Running"),
        ann.clone(),
        json!({}),
    )));
    assert!(tracker.tasks.is_empty());
    tracker.handle(Event::Apply(pod("u1", Some("Succeeded"), ann, json!({}))));
    assert_eq!(tracker.tracked(), 0);
    assert_eq!(shared.stats.snapshot(), [1, 1, 0, 0, 0, 0, 0]);
    no_request(&mut api).await;
}

#[tokio::test]
async fn failing_attempt_is_retried_after_a_server_error() {
    let (mut tracker, shared, mut api) = setup(Duration::ZERO);
    let ann = json!({"sim.crew.dev/fail-attempts": "1", "sim.crew.dev/duration": "10ms"});
    tracker.handle(Event::Apply(pod("u1", None, ann, json!({}))));

    let (_, _, body, send) = next(&mut api).await;
    assert_eq!(body["status"]["phase"], "Running");
    respond(send, StatusCode::SERVICE_UNAVAILABLE);
    let (_, _, body, send) = next(&mut api).await;
    assert_eq!(
        body["status"]["phase"], "Running",
        "the same patch, retried"
    );
    respond(send, StatusCode::OK);

    let (_, _, body, send) = next(&mut api).await;
    assert_eq!(body["status"]["phase"], "Failed");
    let terminated = &body["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(terminated["exitCode"], 1);
    assert_eq!(terminated["reason"], "Error");
    respond(send, StatusCode::OK);
    assert_eq!(task_end(&mut tracker).await, TaskOutcome::Finished);
    tracker.handle(Event::Apply(pod(
        "u1",
        Some("Failed"),
        json!({}),
        json!({}),
    )));
    assert_eq!(shared.stats.failed.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn pod_being_deleted_is_force_deleted_and_its_timer_cancelled() {
    let (mut tracker, shared, mut api) = setup(Duration::from_secs(3600));
    tracker.handle(Event::Apply(pod("u1", None, json!({}), json!({}))));
    let (_, _, _, send) = next(&mut api).await;
    respond(send, StatusCode::OK);

    let deleting =
        json!({"deletionTimestamp": "2026-01-02T03:04:05Z", "deletionGracePeriodSeconds": 30});
    tracker.handle(Event::Apply(pod(
        "u1",
        Some("Running"),
        json!({}),
        deleting.clone(),
    )));
    let (method, uri, body, send) = next(&mut api).await;
    assert_eq!(method, Method::DELETE);
    assert_eq!(uri, "/api/v1/namespaces/ns/pods/p?");
    assert_eq!(body["gracePeriodSeconds"], 0);
    assert_eq!(body["preconditions"]["uid"], "u1");
    // A second event while the delete runs starts nothing.
    tracker.handle(Event::Apply(pod(
        "u1",
        Some("Running"),
        json!({}),
        deleting,
    )));
    respond(send, StatusCode::OK);
    assert_eq!(task_end(&mut tracker).await, TaskOutcome::Deleted);
    assert_eq!(tracker.tracked(), 0);
    assert_eq!(shared.stats.force_deleted.load(Ordering::Relaxed), 1);
    // The hour-long timer was cancelled: no terminal patch ever comes.
    assert!(tracker.tasks.is_empty());
    no_request(&mut api).await;
}

#[tokio::test]
async fn hanging_pod_runs_forever_until_deleted() {
    let (mut tracker, shared, mut api) = setup(Duration::ZERO);
    let ann = json!({"sim.crew.dev/hang": "true"});
    tracker.handle(Event::Apply(pod(
        "u1",
        Some("Pending"),
        ann.clone(),
        json!({}),
    )));
    let (_, _, body, send) = next(&mut api).await;
    assert_eq!(body["status"]["phase"], "Running");
    respond(send, StatusCode::OK);
    assert_eq!(task_end(&mut tracker).await, TaskOutcome::Hanging);
    no_request(&mut api).await;
    assert_eq!(tracker.tracked(), 1);

    tracker.handle(Event::Delete(pod("u1", Some("Running"), ann, json!({}))));
    assert_eq!(tracker.tracked(), 0);
    assert_eq!(shared.stats.snapshot(), [1, 0, 0, 1, 1, 0, 0]);
}

#[tokio::test]
async fn running_pod_is_adopted_and_finished_pods_ignored() {
    let (mut tracker, _, mut api) = setup(Duration::ZERO);
    tracker.handle(Event::Init);
    tracker.handle(Event::InitApply(pod(
        "u1",
        Some("Running"),
        json!({}),
        json!({}),
    )));
    let mut done = pod("u2", Some("Succeeded"), json!({}), json!({}));
    done.metadata.name = Some("q".into());
    tracker.handle(Event::InitApply(done));
    tracker.handle(Event::InitDone);
    assert_eq!(tracker.tracked(), 1);

    // Straight to the end: no second Running patch.
    let (_, uri, body, send) = next(&mut api).await;
    assert_eq!(uri, STATUS_URI);
    assert_eq!(body["status"]["phase"], "Succeeded");
    respond(send, StatusCode::OK);
    assert_eq!(task_end(&mut tracker).await, TaskOutcome::Finished);
    no_request(&mut api).await;
}

#[tokio::test]
async fn vanished_replaced_and_relisted_pods() {
    let (mut tracker, _, mut api) = setup(Duration::from_secs(3600));
    // 404: the pod is gone; forget it.
    tracker.handle(Event::Apply(pod("u1", None, json!({}), json!({}))));
    let (_, _, _, send) = next(&mut api).await;
    respond(send, StatusCode::NOT_FOUND);
    assert_eq!(task_end(&mut tracker).await, TaskOutcome::Gone);
    assert_eq!(tracker.tracked(), 0);

    // A new pod under the same name replaces the old one's task.
    tracker.handle(Event::Apply(pod("u2", None, json!({}), json!({}))));
    let (_, _, _, send) = next(&mut api).await;
    respond(send, StatusCode::OK);
    tracker.handle(Event::Apply(pod("u3", None, json!({}), json!({}))));
    let (_, _, body, send) = next(&mut api).await;
    assert_eq!(body["status"]["phase"], "Running");
    respond(send, StatusCode::OK);
    assert_eq!(tracker.tracked(), 1);
    // A Delete of the old UID does not touch the new pod.
    tracker.handle(Event::Delete(pod("u2", None, json!({}), json!({}))));
    assert_eq!(tracker.tracked(), 1);

    // A relist without the pod forgets it (and cancels its timer).
    tracker.handle(Event::Init);
    tracker.handle(Event::InitDone);
    assert_eq!(tracker.tracked(), 0);
    no_request(&mut api).await;
}
