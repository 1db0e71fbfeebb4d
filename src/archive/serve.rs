//! The archive's read API (`--archive-addr`), for `kubectl crew … --archived` and the dashboard: every request is
//! made as its caller. The bearer token (the user's own kubeconfig credentials) is checked by a TokenReview, and
//! every read by a SubjectAccessReview for `list` or `get` `crewexecutions` in the namespace asked about (every
//! namespace: a cluster-wide `list`). Nobody needs database credentials.
//!
//! It is hostile input like the worker endpoint: malformed requests and tokens are refused before any API call;
//! TokenReviews and SubjectAccessReviews are bounded in flight, cached briefly (refusals too) and limited per source
//! address (`crate::auth`); reads use a pool of their own, so they never take the archive writer's connections.
//!
//! | path | verb checked | answer |
//! | --- | --- | --- |
//! | `GET /v1/executions` | `list` (all namespaces) | a page of summaries, newest first (`?phase=&failedStep=&queue=&name=&labelSelector=k=v,…&since=30d&limit=&continue=`) |
//! | `GET /v1/namespaces/{ns}/executions` | `list` in `ns` | the same, in one namespace |
//! | `GET /v1/namespaces/{ns}/executions/{name}` | `get` in `ns` | the archived object (the newest run of that name) |
//! | `GET /v1/namespaces/{ns}/executions/{name}/results/{step}` | `get` in `ns` | the step's result, its type as posted, `X-Crew-Result-Sha256` |
//! | `GET /v1/stats`, `GET /v1/namespaces/{ns}/stats` | `list` | statistics from the rollups (`?since=30d`) |
//!
//! Answers: 400 a malformed query; 401 no or a refused token; 403 not allowed; 404 not archived; 429 too many new
//! tokens from one source; 503 the database, or the API server's reviews, cannot answer now (`Retry-After`).

use super::read::{self, Cursor, ListFilter};
use crate::auth::access::AccessReviewer;
use crate::auth::review::{ReviewError, TokenReviewer};
use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use deadpool_postgres::Pool;
use jiff::{SignedDuration, Timestamp};
use kube::Client;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Connections the read API uses at most (apart from the writer's).
pub const READ_POOL_SIZE: usize = 2;
/// Longest accepted bearer token.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Longest accepted query string.
const MAX_QUERY_BYTES: usize = 4 * 1024;
/// The longest one read may take (then 503): a database that hangs does not hold callers' connections for ever.
pub const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
/// Label terms one list may ask for (each is a lookup).
const MAX_LABEL_TERMS: usize = 20;
/// Page size when none is asked for.
const DEFAULT_PAGE: i64 = 100;

/// The read API's state.
pub struct ArchiveApi {
    pool: Pool,
    tokens: TokenReviewer,
    access: AccessReviewer,
}

impl ArchiveApi {
    /// The API reading through `pool`, checking callers with `client`'s API server.
    pub fn new(pool: Pool, client: Client) -> Arc<ArchiveApi> {
        Arc::new(ArchiveApi {
            pool,
            tokens: TokenReviewer::for_users(client.clone()),
            access: AccessReviewer::new(client),
        })
    }

    /// (TokenReviews, SubjectAccessReviews) sent so far.
    pub fn reviews_sent(&self) -> (u64, u64) {
        (self.tokens.sent(), self.access.sent())
    }
}

/// The router of the read API.
pub fn router(api: Arc<ArchiveApi>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/executions", get(list))
        .route("/v1/namespaces/{namespace}/executions", get(list))
        .route("/v1/namespaces/{namespace}/executions/{name}", get(object))
        .route(
            "/v1/namespaces/{namespace}/executions/{name}/results/{step}",
            get(result),
        )
        .route("/v1/stats", get(stats))
        .route("/v1/namespaces/{namespace}/stats", get(stats))
        .layer(axum::middleware::from_fn(bounded))
        .with_state(api)
}

/// Answers 503 when a request takes longer than [`READ_TIMEOUT`].
async fn bounded(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match tokio::time::timeout(READ_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the archive did not answer in time",
        ),
    }
}

/// Serves `api` on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, api: Arc<ArchiveApi>) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(api).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

/// A refusal or failure, as JSON `{"error": …}`.
fn refuse(code: StatusCode, message: &str) -> Response {
    let mut response = (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "error": message }).to_string(),
    )
        .into_response();
    if matches!(
        code,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if code == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// The caller may `verb` CrewExecutions in `namespace`: the cheap checks, then the reviews.
async fn authorize(
    api: &ArchiveApi,
    headers: &HeaderMap,
    source: SocketAddr,
    namespace: Option<&str>,
    verb: &'static str,
) -> Result<(), Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| {
            !t.is_empty() && t.len() <= MAX_TOKEN_BYTES && t.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or_else(|| {
            refuse(
                StatusCode::UNAUTHORIZED,
                "a bearer token is required (your kubeconfig's)",
            )
        })?;
    if let Some(namespace) = namespace
        && !is_dns_label(namespace)
    {
        return Err(refuse(StatusCode::BAD_REQUEST, "not a namespace name"));
    }
    let reviewed = api
        .tokens
        .review(token, None, source.ip(), Timestamp::now())
        .await
        .map_err(review_refusal)?;
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    match api.access.allowed(digest, &reviewed, namespace, verb).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(refuse(
            StatusCode::FORBIDDEN,
            &format!(
                "{} may not {verb} crewexecutions.crew.dev {}",
                reviewed.username,
                namespace.map_or("in all namespaces".to_string(), |ns| format!(
                    "in namespace {ns}"
                ))
            ),
        )),
        Err(error) => Err(review_refusal(error)),
    }
}

fn review_refusal(error: ReviewError) -> Response {
    let code = match error {
        ReviewError::Refused(_) => StatusCode::UNAUTHORIZED,
        ReviewError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ReviewError::Busy | ReviewError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    refuse(code, &error.to_string())
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

fn json(value: &impl serde::Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(error) => unavailable(error),
    }
}

fn unavailable(error: impl std::fmt::Display) -> Response {
    tracing::warn!(%error, "archive read failed");
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "the archive cannot answer now",
    )
}

/// `30d`, `12h`, `90m`, `45s`, or an RFC 3339 time: the start of a span ending now.
pub fn parse_since(text: &str, now: Timestamp) -> Option<Timestamp> {
    if let Ok(time) = text.parse::<Timestamp>() {
        return Some(time);
    }
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return None,
    };
    now.checked_sub(SignedDuration::from_secs(number.checked_mul(seconds)?))
        .ok()
}

/// The filter, cursor and page size a list's query asks for (Err: why it is a bad request).
fn list_query(
    namespace: Option<String>,
    query: &HashMap<String, String>,
) -> Result<(ListFilter, Option<Cursor>, i64), String> {
    let bad = |what: &str| what.to_string();
    if query.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() > MAX_QUERY_BYTES {
        return Err(bad("the query is too long"));
    }
    let mut filter = ListFilter {
        namespaces: namespace.into_iter().collect(),
        phase: query.get("phase").cloned(),
        failed_step: query.get("failedStep").cloned(),
        queue: query.get("queue").cloned(),
        name: query.get("name").cloned(),
        ..Default::default()
    };
    if let Some(selector) = query.get("labelSelector").filter(|s| !s.is_empty()) {
        if selector.split(',').count() > MAX_LABEL_TERMS {
            return Err(format!("labelSelector: at most {MAX_LABEL_TERMS} terms"));
        }
        for term in selector.split(',') {
            let (key, value) = term
                .split_once("==")
                .or_else(|| term.split_once('='))
                .ok_or_else(|| bad("labelSelector: only key=value terms, comma-separated"))?;
            filter
                .labels
                .push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    if let Some(since) = query.get("since") {
        filter.since = Some(
            parse_since(since, Timestamp::now())
                .ok_or_else(|| bad("since: 30d, 12h, 90m or an RFC 3339 time"))?,
        );
    }
    let after = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            Some(Cursor::parse(token).ok_or_else(|| bad("continue: not a token this API gave"))?)
        }
        None => None,
    };
    let limit = match query.get("limit") {
        Some(limit) => limit.parse().map_err(|_| bad("limit: a number"))?,
        None => DEFAULT_PAGE,
    };
    Ok((filter, after, limit))
}

type Caller = ConnectInfo<SocketAddr>;
type Namespace = Option<Path<String>>;

/// A connection of the read pool, once the caller may `verb` CrewExecutions in `namespace`.
async fn reader(
    api: &ArchiveApi,
    headers: &HeaderMap,
    source: SocketAddr,
    namespace: Option<&str>,
    verb: &'static str,
) -> Result<deadpool_postgres::Client, Response> {
    authorize(api, headers, source, namespace, verb).await?;
    api.pool.get().await.map_err(unavailable)
}

/// `GET /v1/executions` and `GET /v1/namespaces/{ns}/executions`.
async fn list(
    State(api): State<Arc<ArchiveApi>>,
    ConnectInfo(source): Caller,
    headers: HeaderMap,
    namespace: Namespace,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let namespace = namespace.map(|Path(ns)| ns);
    // A malformed query costs no review.
    let (filter, after, limit) = match list_query(namespace.clone(), &query) {
        Ok(parsed) => parsed,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, &why),
    };
    let client = match reader(&api, &headers, source, namespace.as_deref(), "list").await {
        Ok(client) => client,
        Err(refused) => return refused,
    };
    match read::list(&client, &filter, after.as_ref(), limit).await {
        Ok(page) => json(&page),
        Err(error) => unavailable(error),
    }
}

async fn object(
    State(api): State<Arc<ArchiveApi>>,
    ConnectInfo(source): Caller,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let client = match reader(&api, &headers, source, Some(&namespace), "get").await {
        Ok(client) => client,
        Err(refused) => return refused,
    };
    match read::object(&client, &namespace, &name).await {
        Ok(Some(object)) => json(&object),
        Ok(None) => refuse(
            StatusCode::NOT_FOUND,
            &format!("{namespace}/{name} is not archived"),
        ),
        Err(error) => unavailable(error),
    }
}

async fn result(
    State(api): State<Arc<ArchiveApi>>,
    ConnectInfo(source): Caller,
    headers: HeaderMap,
    Path((namespace, name, step)): Path<(String, String, String)>,
) -> Response {
    let client = match reader(&api, &headers, source, Some(&namespace), "get").await {
        Ok(client) => client,
        Err(refused) => return refused,
    };
    match read::result(&client, &namespace, &name, &step).await {
        Ok(Some((content_type, sha256, body))) => {
            let mut response = body.into_response();
            let headers = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(&content_type) {
                headers.insert(header::CONTENT_TYPE, value);
            }
            if let Ok(value) = HeaderValue::from_str(&sha256) {
                headers.insert("x-crew-result-sha256", value);
            }
            response
        }
        Ok(None) => refuse(
            StatusCode::NOT_FOUND,
            &format!("no archived result of step {step} of {namespace}/{name}"),
        ),
        Err(error) => unavailable(error),
    }
}

/// `GET /v1/stats` and `GET /v1/namespaces/{ns}/stats`.
async fn stats(
    State(api): State<Arc<ArchiveApi>>,
    ConnectInfo(source): Caller,
    headers: HeaderMap,
    namespace: Namespace,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let namespace = namespace.map(|Path(ns)| ns);
    let now = Timestamp::now();
    let since = match query.get("since").map(|s| parse_since(s, now)) {
        None => now - SignedDuration::from_hours(24 * 30),
        Some(Some(since)) => since,
        Some(None) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "since: 30d, 12h, 90m or an RFC 3339 time",
            );
        }
    };
    let client = match reader(&api, &headers, source, namespace.as_deref(), "list").await {
        Ok(client) => client,
        Err(refused) => return refused,
    };
    let namespaces: Vec<String> = namespace.into_iter().collect();
    match read::stats(&client, &namespaces, since, now).await {
        Ok(stats) => json(&stats),
        Err(error) => unavailable(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_reads_spans_and_times() {
        let now: Timestamp = "2026-12-07T12:00:00Z".parse().unwrap();
        assert_eq!(
            parse_since("30d", now),
            Some("2026-11-07T12:00:00Z".parse().unwrap())
        );
        assert_eq!(
            parse_since("12h", now),
            Some("2026-12-07T00:00:00Z".parse().unwrap())
        );
        assert_eq!(
            parse_since("2026-01-01T00:00:00Z", now),
            Some("2026-01-01T00:00:00Z".parse().unwrap())
        );
        assert_eq!(parse_since("30", now), None);
        assert_eq!(parse_since("d", now), None);
        assert_eq!(parse_since("99999999999999999d", now), None);
    }

    #[test]
    fn a_list_query_is_checked_before_any_read() {
        let query = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let (filter, after, limit) = list_query(
            Some("team-a".into()),
            &query(&[
                ("phase", "Failed"),
                ("labelSelector", "app=ml,tier==gpu"),
                ("limit", "5"),
            ]),
        )
        .unwrap();
        assert_eq!(filter.namespaces, ["team-a"]);
        assert_eq!(
            filter.labels,
            [("app".into(), "ml".into()), ("tier".into(), "gpu".into())]
        );
        assert_eq!((after, limit), (None, 5));
        for bad in [
            query(&[("labelSelector", "app in (a,b)")]),
            query(&[("continue", "garbage")]),
            query(&[("limit", "many")]),
            query(&[("since", "yesterday")]),
            query(&[("name", &"x".repeat(MAX_QUERY_BYTES))]),
            query(&[("labelSelector", &vec!["a=b"; MAX_LABEL_TERMS + 1].join(","))]),
        ] {
            assert!(list_query(None, &bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn namespaces_are_checked_as_names() {
        assert!(is_dns_label("team-a"));
        assert!(!is_dns_label("Team"));
        assert!(!is_dns_label("a/b"));
        assert!(!is_dns_label(""));
    }
}
