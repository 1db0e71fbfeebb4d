//! The dashboard's router without a cluster: what it refuses before any API call (a session, a write when
//! read-only, a bad query), and what the page gets.

use super::{Dashboard, guard, router};
use crate::cluster::Cluster;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tower::ServiceExt;

const ADDRESS: &str = "127.0.0.1:8765";

/// A dashboard whose API server is nowhere (a test that reaches it fails with 502, not silently).
fn dashboard(allow_actions: bool) -> (axum::Router, guard::Session) {
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let session = guard::Session::new(ADDRESS.parse().unwrap()).unwrap();
    let d = Dashboard {
        cluster: Cluster {
            client,
            namespace: Some("team-a".into()),
            page: 500,
        },
        archive: None,
        allow_actions,
        namespace: "team-a".into(),
        server: "http://127.0.0.1:9".into(),
        watches: Arc::new(Semaphore::new(2)),
        csrf: session.csrf().to_string(),
        shutdown: tokio::sync::watch::channel(false).1,
        queues: Arc::new(super::recent::Recent::new(std::time::Duration::from_secs(
            2,
        ))),
        stats: Arc::new(super::recent::Recent::new(std::time::Duration::from_secs(
            10,
        ))),
        gate: None,
    };
    (router(d, Some(session.clone())), session)
}

fn token_of(session: &guard::Session) -> String {
    session.link().split("token=").nth(1).unwrap().to_string()
}

fn cookie(session: &guard::Session) -> String {
    session.cookie_header()
}

async fn send(app: &axum::Router, request: Request<Body>) -> (StatusCode, http::HeaderMap, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn get(path: &str, session: Option<&guard::Session>) -> Request<Body> {
    let mut builder = Request::get(path).header(header::HOST, ADDRESS);
    if let Some(s) = session {
        builder = builder.header(header::COOKIE, cookie(s));
    }
    builder.body(Body::empty()).unwrap()
}

/// A write from the page: the session's cookie and CSRF token.
fn post(path: &str, session: &guard::Session) -> Request<Body> {
    Request::post(path)
        .header(header::HOST, ADDRESS)
        .header(header::COOKIE, cookie(session))
        .header(guard::CSRF_HEADER, session.csrf())
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn the_link_sets_the_cookie_and_the_page_carries_the_csrf_token() {
    let (app, session) = dashboard(false);
    let (status, headers, _) =
        send(&app, get(&format!("/?token={}", token_of(&session)), None)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/");
    let set = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(set.starts_with(&cookie(&session)), "{set}");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let (status, headers, page) = send(&app, get("/", Some(&session))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(session.csrf()),
        "the page holds this session's CSRF token"
    );
    assert!(!page.contains("{{csrf}}"));
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
    let (status, headers, _) = send(&app, get("/assets/app.js", Some(&session))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
}

#[tokio::test]
async fn nothing_is_served_without_the_session() {
    let (app, _) = dashboard(true);
    for path in [
        "/",
        "/assets/app.js",
        "/api/context",
        "/api/runs?namespace=team-a",
    ] {
        let (status, _, body) = send(&app, get(path, None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
    }
}

#[tokio::test]
async fn a_write_is_refused_when_read_only_even_with_the_session_and_csrf_token() {
    let (app, session) = dashboard(false);
    let (status, _, body) = send(&app, post("/api/runs/team-a/nightly/cancel", &session)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("--allow-actions"), "{body}");
}

#[tokio::test]
async fn an_unknown_action_is_refused_before_any_request() {
    let (app, session) = dashboard(true);
    let (status, _, body) = send(&app, post("/api/runs/team-a/nightly/delete", &session)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("cancel, suspend, resume or rerun"), "{body}");
}

#[tokio::test]
async fn bad_queries_are_refused_before_any_request() {
    let (app, session) = dashboard(false);
    for (path, expected) in [
        ("/api/watch?namespace=team-a", "resourceVersion"),
        (
            "/api/watch?namespace=team-a&resourceVersion=12;drop",
            "resourceVersion",
        ),
        (
            "/api/watch?resourceVersion=1&name=a,status.phase%3DRunning",
            "not a valid Kubernetes name",
        ),
        (
            "/api/runs?namespace=..%2Fsecrets",
            "not a valid Kubernetes name",
        ),
        ("/api/runs?queue=a,b", "not a valid Kubernetes name"),
        ("/api/runs/a%2Fb/c", "not a valid Kubernetes name"),
        (
            "/api/runs/team-a/x/results/..",
            "not a valid Kubernetes name",
        ),
        ("/api/stats?since=1%C3%A9", "since"),
        ("/api/stats?since=forever", "since"),
        ("/api/runs?source=elsewhere", "unknown source"),
        ("/api/runs?source=archived", "--archive-server"),
    ] {
        let (status, _, body) = send(&app, get(path, Some(&session))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(body.contains(expected), "{path}: {body}");
    }
}

#[tokio::test]
async fn the_context_says_what_this_server_allows() {
    let (app, session) = dashboard(false);
    let (status, _, body) = send(&app, get("/api/context", Some(&session))).await;
    assert_eq!(status, StatusCode::OK);
    let context: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(context["namespace"], "team-a");
    assert_eq!(context["actions"], false);
    assert_eq!(context["archive"], false);
}

#[tokio::test]
async fn an_unreachable_api_server_is_a_bad_gateway_with_a_message() {
    let (app, session) = dashboard(false);
    let (status, _, body) = send(&app, get("/api/runs?namespace=team-a", Some(&session))).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let failure: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(failure["message"].as_str().is_some_and(|m| !m.is_empty()));
}
