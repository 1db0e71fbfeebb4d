//! TokenReviews, bounded and cached, so that a flood of tokens costs the API server almost nothing:
//! - at most [`MAX_IN_FLIGHT`] reviews are sent at once; up to [`MAX_WAITING`] more wait for a place, each at
//!   most [`MAX_WAIT`] (a burst of workers starting together); past that a request is refused at once
//!   ([`ReviewError::Busy`], answered 503 with `Retry-After`), so a flood cannot queue in the operator;
//! - a source address may start at most [`SOURCE_RATE`] reviews a second (burst [`SOURCE_BURST`]); past it, 429;
//! - verdicts are cached by the token's SHA-256: an accepted token until it expires (at most [`ACCEPT_SECONDS`]),
//!   a refused one for [`REFUSE_SECONDS`] (as k8s.io/apiserver's delegating authenticator caches failures).
//!
//! An API server that cannot be asked (an error, not a verdict) is not cached.

use super::limiter::SourceLimiter;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use kube::api::PostParams;
use kube::{Api, Client};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Semaphore;

/// The longest an accepted token's verdict is trusted without asking again.
pub const ACCEPT_SECONDS: i64 = 600;
/// How long a refused token stays refused without asking again.
pub const REFUSE_SECONDS: i64 = 30;
/// TokenReviews in flight at most.
pub const MAX_IN_FLIGHT: usize = 4;
/// Requests waiting for a review's place at most.
pub const MAX_WAITING: usize = 256;
/// The longest a request waits for a review's place.
pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// Reviews a second one source address may cause, sustained.
pub const SOURCE_RATE: f64 = 5.0;
/// Reviews one source address may cause in a burst.
pub const SOURCE_BURST: f64 = 20.0;
/// Verdicts cached at most, of each kind (expired ones are dropped first; then all of that kind).
const CACHE_ENTRIES: usize = 20_000;

/// Who the API server says a token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reviewed {
    /// The user (`system:serviceaccount:<ns>:<name>` for a ServiceAccount).
    pub username: String,
    /// The user's groups.
    pub groups: Vec<String>,
    /// Extra claims (`authentication.kubernetes.io/pod-name`, `.../pod-uid` for a pod-bound token).
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

impl Reviewed {
    /// The first value of extra claim `key`.
    pub fn claim(&self, key: &str) -> Option<&str> {
        self.extra.get(key)?.first().map(String::as_str)
    }
}

/// Why a token is not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    /// The API server refused it for this audience (expired, forged, its pod gone): 401.
    #[error("token refused: {0}")]
    Refused(String),
    /// Too many reviews in flight: 503, retry.
    #[error("too many tokens being checked right now: retry")]
    Busy,
    /// The source sends too many new tokens: 429.
    #[error("too many new tokens from this source: slow down")]
    RateLimited,
    /// The API server could not be asked: 503, retry.
    #[error("cannot check the token now: {0}")]
    Unavailable(String),
}

type Digested = [u8; 32];

struct Cached<T> {
    verdict: T,
    until: Timestamp,
}

#[derive(Default)]
struct Verdicts {
    accepted: HashMap<Digested, Cached<Reviewed>>,
    refused: HashMap<Digested, Cached<String>>,
}

fn insert<T>(
    map: &mut HashMap<Digested, Cached<T>>,
    key: Digested,
    value: Cached<T>,
    now: Timestamp,
) {
    if map.len() >= CACHE_ENTRIES {
        map.retain(|_, c| now < c.until);
        if map.len() >= CACHE_ENTRIES {
            map.clear();
        }
    }
    map.insert(key, value);
}

/// Reviews tokens for one audience, or for the API server's own (see the module documentation).
pub struct TokenReviewer {
    client: Client,
    audience: Option<&'static str>,
    in_flight: Arc<Semaphore>,
    waiting: std::sync::atomic::AtomicUsize,
    sources: SourceLimiter,
    verdicts: Mutex<Verdicts>,
    sent: AtomicU64,
}

impl TokenReviewer {
    /// A reviewer asking `client`'s API server about tokens for `audience`.
    pub fn new(client: Client, audience: &'static str) -> TokenReviewer {
        Self::with_audience(client, Some(audience))
    }

    /// A reviewer asking about the tokens users send the API server itself (kubeconfig tokens: the API server's
    /// own audiences).
    pub fn for_users(client: Client) -> TokenReviewer {
        Self::with_audience(client, None)
    }

    fn with_audience(client: Client, audience: Option<&'static str>) -> TokenReviewer {
        TokenReviewer {
            client,
            audience,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            sources: SourceLimiter::new(SOURCE_RATE, SOURCE_BURST),
            verdicts: Mutex::new(Verdicts::default()),
            sent: AtomicU64::new(0),
        }
    }

    /// TokenReviews sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn verdicts(&self) -> std::sync::MutexGuard<'_, Verdicts> {
        self.verdicts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cached(&self, key: &Digested, now: Timestamp) -> Option<Result<Reviewed, ReviewError>> {
        let verdicts = self.verdicts();
        if let Some(accepted) = verdicts.accepted.get(key).filter(|c| now < c.until) {
            return Some(Ok(accepted.verdict.clone()));
        }
        verdicts
            .refused
            .get(key)
            .filter(|c| now < c.until)
            .map(|refused| Err(ReviewError::Refused(refused.verdict.clone())))
    }

    /// Who `token` (sent from `source`, expiring at `expires` by its own claims) belongs to.
    pub async fn review(
        &self,
        token: &str,
        expires: Option<Timestamp>,
        source: IpAddr,
        now: Timestamp,
    ) -> Result<Reviewed, ReviewError> {
        let key: Digested = Sha256::digest(token.as_bytes()).into();
        if let Some(verdict) = self.cached(&key, now) {
            return verdict;
        }
        if !self.sources.allow(source, std::time::Instant::now()) {
            return Err(ReviewError::RateLimited);
        }
        let _permit = self.place().await?;
        // Another request may have had the same token reviewed while this one waited.
        if let Some(verdict) = self.cached(&key, now) {
            return verdict;
        }
        self.sent.fetch_add(1, Ordering::Relaxed);
        match self.ask(token).await? {
            Ok(reviewed) => {
                let until = expires
                    .unwrap_or(now)
                    .min(now + SignedDuration::from_secs(ACCEPT_SECONDS));
                let cached = Cached {
                    verdict: reviewed.clone(),
                    until,
                };
                insert(&mut self.verdicts().accepted, key, cached, now);
                Ok(reviewed)
            }
            Err(why) => {
                let until = now + SignedDuration::from_secs(REFUSE_SECONDS);
                let cached = Cached {
                    verdict: why.clone(),
                    until,
                };
                insert(&mut self.verdicts().refused, key, cached, now);
                Err(ReviewError::Refused(why))
            }
        }
    }

    /// A place among the reviews in flight: at once, or after waiting at most [`MAX_WAIT`] among at most
    /// [`MAX_WAITING`] others.
    async fn place(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ReviewError> {
        if let Ok(permit) = self.in_flight.clone().try_acquire_owned() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= MAX_WAITING {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(ReviewError::Busy);
        }
        let waited = tokio::time::timeout(MAX_WAIT, self.in_flight.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        match waited {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ReviewError::Busy),
        }
    }

    /// The API server's verdict on `token` (Err: it could not be asked; Ok(Err): it refused the token).
    async fn ask(&self, token: &str) -> Result<Result<Reviewed, String>, ReviewError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: self.audience.map(|audience| vec![audience.to_string()]),
            },
            ..Default::default()
        };
        let reviews: Api<TokenReview> = Api::all(self.client.clone());
        let answer = reviews
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| ReviewError::Unavailable(e.to_string()))?;
        let status = answer.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            return Ok(Err(status
                .error
                .unwrap_or_else(|| "not authenticated".into())));
        }
        if let Some(audience) = self.audience
            && !status.audiences.iter().flatten().any(|a| a == audience)
        {
            return Ok(Err(format!("the token is not for audience {audience}")));
        }
        let UserInfo {
            username,
            groups,
            extra,
            ..
        } = status.user.unwrap_or_default();
        Ok(Ok(Reviewed {
            username: username.unwrap_or_default(),
            groups: groups.unwrap_or_default(),
            extra: extra.unwrap_or_default(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response};
    use kube::client::Body;
    use tower_test::mock;

    type Handle = mock::Handle<Request<Body>, Response<Body>>;

    fn reviewer() -> (Arc<TokenReviewer>, Handle) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        (
            Arc::new(TokenReviewer::new(
                Client::new(service, "default"),
                "crew-operator",
            )),
            handle,
        )
    }

    fn source() -> IpAddr {
        "10.0.0.1".parse().unwrap()
    }

    /// Answers the next TokenReview: refused, or accepted for the audience.
    async fn answer(handle: &mut Handle, accept: bool) {
        let (request, send) = handle.next_request().await.expect("a TokenReview");
        assert!(request.uri().path().ends_with("/tokenreviews"));
        let status = if accept {
            serde_json::json!({"authenticated": true, "audiences": ["crew-operator"],
                "user": {"username": "system:serviceaccount:ns:default"}})
        } else {
            serde_json::json!({"authenticated": false, "error": "invalid bearer token"})
        };
        let body = serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {}, "status": status});
        send.send_response(
            Response::builder()
                .status(201)
                .body(Body::from(body.to_string().into_bytes()))
                .unwrap(),
        );
    }

    /// Review finding 1: a refused token was reviewed again on every request.
    #[tokio::test]
    async fn a_refused_token_is_reviewed_once() {
        let (reviewer, mut handle) = reviewer();
        let now = Timestamp::now();
        let first = {
            let reviewer = reviewer.clone();
            tokio::spawn(async move { reviewer.review("garbage", None, source(), now).await })
        };
        answer(&mut handle, false).await;
        assert!(matches!(first.await.unwrap(), Err(ReviewError::Refused(_))));
        let again = reviewer.review("garbage", None, source(), now).await;
        assert!(matches!(again, Err(ReviewError::Refused(_))));
        assert_eq!(reviewer.sent(), 1);
        let later = now + SignedDuration::from_secs(REFUSE_SECONDS);
        let retried = {
            let reviewer = reviewer.clone();
            tokio::spawn(async move { reviewer.review("garbage", None, source(), later).await })
        };
        answer(&mut handle, false).await;
        assert!(retried.await.unwrap().is_err());
        assert_eq!(reviewer.sent(), 2, "asked again once the refusal expired");
    }

    #[tokio::test]
    async fn an_accepted_token_is_trusted_until_it_expires() {
        let (reviewer, mut handle) = reviewer();
        let now = Timestamp::now();
        let expires = now + SignedDuration::from_secs(60);
        let first = {
            let reviewer = reviewer.clone();
            tokio::spawn(async move { reviewer.review("good", Some(expires), source(), now).await })
        };
        answer(&mut handle, true).await;
        assert!(first.await.unwrap().is_ok());
        assert!(
            reviewer
                .review("good", Some(expires), source(), now)
                .await
                .is_ok()
        );
        assert_eq!(reviewer.sent(), 1);
        let after = tokio::spawn({
            let reviewer = reviewer.clone();
            async move {
                reviewer
                    .review("good", Some(expires), source(), expires)
                    .await
            }
        });
        answer(&mut handle, false).await;
        assert!(after.await.unwrap().is_err(), "asked again once expired");
    }

    /// Review finding 1: every request with a new token had a TokenReview in flight.
    #[tokio::test(start_paused = true)]
    async fn token_reviews_in_flight_are_bounded() {
        let (reviewer, mut handle) = reviewer();
        let now = Timestamp::now();
        let mut calls = Vec::new();
        let total = MAX_IN_FLIGHT + MAX_WAITING + 100;
        for i in 0..total {
            let reviewer = reviewer.clone();
            let source: IpAddr = format!("10.{}.{}.{}", i / 62500, (i / 250) % 250, i % 250)
                .parse()
                .unwrap();
            calls.push(tokio::spawn(async move {
                reviewer.review(&format!("t{i}"), None, source, now).await
            }));
        }
        // Nothing is answered: the reviews in flight hold their places, a bounded number waits.
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        let refused_at_once = calls.iter().filter(|c| c.is_finished()).count();
        assert_eq!(
            refused_at_once, 100,
            "past the waiting bound: refused at once"
        );
        assert_eq!(reviewer.sent(), MAX_IN_FLIGHT as u64);
        // The waiting ones give up after MAX_WAIT.
        tokio::time::sleep(MAX_WAIT).await;
        for _ in 0..MAX_IN_FLIGHT {
            answer(&mut handle, false).await;
        }
        let mut outcomes = Vec::new();
        for call in calls {
            outcomes.push(call.await.unwrap());
        }
        let refused_busy = outcomes
            .iter()
            .filter(|o| **o == Err(ReviewError::Busy))
            .count();
        assert_eq!(refused_busy, total - MAX_IN_FLIGHT);
        assert_eq!(
            reviewer.sent(),
            MAX_IN_FLIGHT as u64,
            "never more than the bound"
        );
    }

    #[tokio::test]
    async fn one_source_cannot_take_every_review() {
        let (reviewer, mut handle) = reviewer();
        let now = Timestamp::now();
        let answering = tokio::spawn(async move {
            while let Some((_, send)) = handle.next_request().await {
                let body = serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                    "spec": {}, "status": {"authenticated": false}});
                send.send_response(
                    Response::builder()
                        .status(201)
                        .body(Body::from(body.to_string().into_bytes()))
                        .unwrap(),
                );
            }
        });
        let mut limited = 0;
        for i in 0..100 {
            if reviewer.review(&format!("t{i}"), None, source(), now).await
                == Err(ReviewError::RateLimited)
            {
                limited += 1;
            }
        }
        assert_eq!(reviewer.sent(), SOURCE_BURST as u64);
        assert_eq!(limited, 100 - SOURCE_BURST as usize);
        assert!(
            reviewer
                .review("another", None, "10.9.9.9".parse().unwrap(), now)
                .await
                .is_err()
        );
        assert_eq!(
            reviewer.sent(),
            SOURCE_BURST as u64 + 1,
            "another source is not limited"
        );
        answering.abort();
    }
}
