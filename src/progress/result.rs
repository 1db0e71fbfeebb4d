//! `POST /v1/result`: a worker posts its step attempt's full result (up to 1 MiB), with the same token and the same
//! checks as a progress report (only its own running attempt). Posting again replaces it; the last result posted
//! before the attempt ends is the step's result. Each post is two writes (the step's result ConfigMap, then its
//! description on the attempt's Job), so posts are bounded: one a second per attempt, and a few in flight at once.
//!
//! | answer | when |
//! | --- | --- |
//! | 201 | kept: `{"size": <bytes>, "sha256": "<hex>", "configMap": "<name>"}` |
//! | 400 | not UTF-8, or `Content-Type: application/json` and the body is not JSON |
//! | 401, 403, 409, 503 | as for `POST /v1/progress` (no or a bad token; not this attempt's pod; the attempt finished; retry) |
//! | 413 | the body is over 1 MiB |
//! | 415 | a `Content-Type` other than `application/json` or `text/plain` |
//! | 429 | the attempt posted less than a second ago (`Retry-After`) |
//! | 503 | also: too many results are being written at once, or the write failed (`Retry-After`) |

use super::endpoint::{Endpoint, answer, running_worker};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use crew_core::lifecycle::results::{ContentType, MAX_POSTED_BYTES, ResultRefused, check};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The path workers post results to.
pub const PATH: &str = "/v1/result";
/// Results written at once (each up to 1 MiB); more wait for none: they are told to retry.
const IN_FLIGHT: usize = 4;
/// The shortest time between two posts of one attempt.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Attempts remembered for [`MIN_INTERVAL`] (older ones are forgotten first).
const REMEMBERED: usize = 10_000;

/// Bounds on result posts.
pub struct PostLimits {
    writing: tokio::sync::Semaphore,
    /// (execution UID, step, attempt) → when it last posted.
    last: Mutex<HashMap<(String, String, u32), Instant>>,
}

impl Default for PostLimits {
    fn default() -> Self {
        PostLimits {
            writing: tokio::sync::Semaphore::new(IN_FLIGHT),
            last: Mutex::default(),
        }
    }
}

impl PostLimits {
    /// Whether the attempt may post now (and, if so, marks it as having posted).
    fn may_post(&self, key: (String, String, u32), now: Instant) -> bool {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < MIN_INTERVAL)
        {
            return false;
        }
        if last.len() >= REMEMBERED {
            last.retain(|_, at| now.duration_since(*at) < MIN_INTERVAL);
        }
        last.insert(key, now);
        true
    }
}

/// Handles one post (see the module documentation).
/// The token is checked before the body is read: a caller without one never makes the operator take 1 MiB.
pub async fn post(
    State(endpoint): State<Arc<Endpoint>>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let now = jiff::Timestamp::now();
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let (worker, reference) = match running_worker(&endpoint, source, &headers, now).await {
        Ok(running) => running,
        Err(refused) => return refused,
    };
    let (text, kind) = match checked_body(&headers, body).await {
        Ok(checked) => checked,
        Err(refused) => return refused,
    };
    let key = (
        worker.execution_uid.clone(),
        worker.step.clone(),
        worker.attempt,
    );
    if !endpoint.results.may_post(key, Instant::now()) {
        return answer(
            StatusCode::TOO_MANY_REQUESTS,
            "a result was posted for this attempt less than a second ago: post the final one once",
        );
    }
    let Ok(_permit) = endpoint.results.writing.try_acquire() else {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many results are being written at once: retry",
        );
    };
    let ctx = &endpoint.ctx;
    let Some(execution) = ctx.caches.executions.get(&reference) else {
        return answer(StatusCode::CONFLICT, "the execution is gone");
    };
    let attempt = (worker.step.as_str(), worker.attempt);
    match crate::results::store(ctx, &execution, &worker.job, attempt, &text, kind).await {
        Ok(posted) => (
            StatusCode::CREATED,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({
                "size": posted.size,
                "sha256": posted.sha256,
                "configMap": posted.config_map,
            })
            .to_string(),
        )
            .into_response(),
        Err(error) => {
            tracing::warn!(execution = %worker.execution, step = %worker.step, %error, "result not stored");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("the result could not be stored: {error}; retry"),
            )
        }
    }
}

/// The body, read (at most 1 MiB: a larger declared length is refused before reading) and checked against its
/// content type; or the answer that refuses it.
async fn checked_body(
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<(String, ContentType), Response> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared.filter(|n| *n > MAX_POSTED_BYTES as u64) {
        return Err(answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            &ResultRefused::TooLarge(usize::try_from(length).unwrap_or(usize::MAX)).to_string(),
        ));
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_POSTED_BYTES).await else {
        return Err(answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the result is over {MAX_POSTED_BYTES} bytes (1 MiB), or did not arrive whole"
            ),
        ));
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    match check(&body, content_type) {
        // `check` accepted it as UTF-8.
        Ok(kind) => Ok((String::from_utf8_lossy(&body).into_owned(), kind)),
        Err(refused) => {
            let code = match refused {
                ResultRefused::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                ResultRefused::UnsupportedType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ResultRefused::NotText | ResultRefused::NotJson(_) => StatusCode::BAD_REQUEST,
            };
            Err(answer(code, &refused.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_posts_at_most_once_a_second() {
        let limits = PostLimits::default();
        let key = || ("uid".to_string(), "step".to_string(), 1);
        let t0 = Instant::now();
        assert!(limits.may_post(key(), t0));
        assert!(!limits.may_post(key(), t0 + Duration::from_millis(500)));
        assert!(limits.may_post(("uid".into(), "step".into(), 2), t0));
        assert!(limits.may_post(key(), t0 + MIN_INTERVAL));
    }
}
