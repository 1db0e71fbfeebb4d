//! Many users (`--in-cluster`): each request brings its user's own bearer token (an `Authorization` header, set by an
//! authenticating proxy in front, or the cookie the page's sign-in sets), and everything is asked **as that user**:
//! the API server and the archive authorize each read and write with the user's rights, never the dashboard's. The
//! dashboard's own identity (its ServiceAccount) only creates TokenReviews, so it can tell a good token from a bad
//! one before acting as it.
//!
//! Those reviews are bounded and cached, as the operator's worker endpoint bounds its own: a token that cannot be
//! one (wrong length or characters) costs no review; each verdict, refusals included, is kept [`VERDICT_SECONDS`]
//! under the token's SHA-256, never the token; at most [`REVIEWS_PER_SECOND`] new reviews a second (a burst of
//! [`BURST`]) and [`IN_FLIGHT`] at once, a request waiting at most [`MAX_WAIT`] for one (else 503, unreviewed). A
//! flood of made-up tokens costs the API server a few reviews a second, whatever its size; a signed-in user's
//! verdict is kept, so the flood does not sign them out.

use super::failure::Failure;
use super::{Dashboard, guard};
use crate::archive::Archive;
use crate::cluster::Cluster;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::PostParams;
use kube::{Api, Client, Config};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

pub const IN_FLIGHT: usize = 4;
pub const MAX_WAIT: Duration = Duration::from_secs(2);
pub const VERDICT_SECONDS: u64 = 30;
pub const REVIEWS_PER_SECOND: f64 = 10.0;
pub const BURST: f64 = 20.0;
/// Verdicts and clients kept at most (beyond, the expired go first, then all).
const KEPT: usize = 10_000;

/// Who a token belongs to (`None`: nobody, the API server says).
pub type Verdict = Option<String>;

/// Asks whether a token is good: the API server's TokenReview, or a fake in tests.
pub trait Reviewer: Send + Sync {
    fn review<'a>(
        &'a self,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Verdict, String>> + Send + 'a>>;
}

/// TokenReviews as the dashboard's own identity.
pub struct KubeReviewer(pub Client);

impl Reviewer for KubeReviewer {
    fn review<'a>(
        &'a self,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Verdict, String>> + Send + 'a>> {
        Box::pin(async move {
            let review = TokenReview {
                spec: TokenReviewSpec {
                    token: Some(token.to_string()),
                    ..Default::default()
                },
                ..Default::default()
            };
            let answer = Api::<TokenReview>::all(self.0.clone())
                .create(&PostParams::default(), &review)
                .await
                .map_err(|e| e.to_string())?;
            let status = answer.status.unwrap_or_default();
            Ok(status
                .authenticated
                .unwrap_or(false)
                .then(|| status.user.and_then(|u| u.username).unwrap_or_default()))
        })
    }
}

/// What one user's requests are made with.
#[derive(Clone)]
pub struct Caller {
    pub user: String,
    pub cluster: Cluster,
    pub archive: Option<Arc<Archive>>,
}

pub struct Gate {
    reviewer: Box<dyn Reviewer>,
    slots: Semaphore,
    /// Reviews that may start now (a token bucket: [`BURST`], refilled at [`REVIEWS_PER_SECOND`]), and when it was
    /// last refilled.
    budget: Mutex<(f64, Instant)>,
    verdicts: Mutex<HashMap<[u8; 32], (Instant, Verdict)>>,
    callers: Mutex<HashMap<[u8; 32], (Instant, Caller)>>,
    /// The cluster (server, CA) users' requests go to; its credentials are replaced by each user's token.
    base: Config,
    page: u32,
    archive_server: Option<String>,
}

/// Whether `token` could be a bearer token at all (a JWT, or another opaque token): 16 to 8 KiB of token68
/// characters. Anything else is refused without a review.
pub fn plausible(token: &str) -> bool {
    (16..=8192).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b))
}

impl Gate {
    pub fn new(
        reviewer: Box<dyn Reviewer>,
        base: Config,
        page: u32,
        archive_server: Option<String>,
    ) -> Gate {
        Gate {
            reviewer,
            slots: Semaphore::new(IN_FLIGHT),
            budget: Mutex::new((BURST, Instant::now())),
            verdicts: Mutex::new(HashMap::new()),
            callers: Mutex::new(HashMap::new()),
            base,
            page,
            archive_server,
        }
    }

    pub fn has_archive(&self) -> bool {
        self.archive_server.is_some()
    }

    /// The user `token` belongs to, or 401 (or 503 when the reviews are busy).
    pub async fn admit(&self, token: &str) -> Result<String, Failure> {
        let refused = || {
            Failure::new(
                StatusCode::UNAUTHORIZED,
                "the API server does not accept this token",
            )
        };
        if !plausible(token) {
            return Err(refused());
        }
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(verdict) = self.kept(&key) {
            return verdict.ok_or_else(refused);
        }
        let _slot = tokio::time::timeout(MAX_WAIT, self.slots.acquire())
            .await
            .map_err(|_| {
                Failure::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many sign-ins at once; try again",
                )
            })?
            .map_err(|_| Failure::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down"))?;
        // Another request may have had the same token reviewed while this one waited.
        if let Some(verdict) = self.kept(&key) {
            return verdict.ok_or_else(refused);
        }
        if !self.spend() {
            return Err(Failure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many sign-ins at once; try again",
            ));
        }
        let verdict = self.reviewer.review(token).await.map_err(|e| {
            Failure::new(
                StatusCode::BAD_GATEWAY,
                format!("cannot review the token: {e}"),
            )
        })?;
        if let Ok(mut verdicts) = self.verdicts.lock() {
            keep(&mut verdicts, key, verdict.clone());
        }
        verdict.ok_or_else(refused)
    }

    /// Takes one review from the budget, if there is one.
    fn spend(&self) -> bool {
        let Ok(mut budget) = self.budget.lock() else {
            return false;
        };
        let now = Instant::now();
        let left =
            (budget.0 + now.duration_since(budget.1).as_secs_f64() * REVIEWS_PER_SECOND).min(BURST);
        let spent = left >= 1.0;
        *budget = (if spent { left - 1.0 } else { left }, now);
        spent
    }

    fn kept(&self, key: &[u8; 32]) -> Option<Verdict> {
        let verdicts = self.verdicts.lock().ok()?;
        let (at, verdict) = verdicts.get(key)?;
        (at.elapsed() < Duration::from_secs(VERDICT_SECONDS)).then(|| verdict.clone())
    }

    /// The client of `user`, who holds `token` (admitted): kept while the verdict is, so a page's requests share
    /// its connections.
    pub async fn caller(&self, user: String, token: &str) -> Result<Caller, Failure> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(caller) = self.callers.lock().ok().and_then(|callers| {
            callers
                .get(&key)
                .filter(|(at, _)| at.elapsed() < Duration::from_secs(VERDICT_SECONDS))
                .map(|(_, c)| c.clone())
        }) {
            return Ok(caller);
        }
        let mut config = self.base.clone();
        config.auth_info = kube::config::AuthInfo {
            token: Some(secrecy::SecretString::from(token.to_string())),
            ..Default::default()
        };
        let archive = match &self.archive_server {
            Some(server) => Some(Arc::new(Archive::with_config(config.clone(), server)?)),
            None => None,
        };
        let client = Client::try_from(config).map_err(|e| {
            Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot build a client: {e}"),
            )
        })?;
        let caller = Caller {
            user,
            cluster: Cluster {
                client,
                namespace: None,
                page: self.page,
            },
            archive,
        };
        if let Ok(mut callers) = self.callers.lock() {
            keep(&mut callers, key, caller.clone());
        }
        Ok(caller)
    }
}

impl Caller {
    /// The archive read API (asked as this user), or why there is none.
    pub fn archive(&self) -> Result<&Archive, Failure> {
        self.archive.as_deref().ok_or_else(|| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                "no archive: start the dashboard with --archive-server (the operator's archive read API)",
            )
        })
    }
}

/// The caller of a request: the user the middleware admitted (`--in-cluster`), else the one who started the
/// dashboard (their kubeconfig's credentials).
impl FromRequestParts<Dashboard> for Caller {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, d: &Dashboard) -> Result<Caller, Failure> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        if d.gate.is_some() {
            // Never the dashboard's own rights for a user's request.
            return Err(Failure::new(StatusCode::UNAUTHORIZED, SIGN_IN));
        }
        Ok(Caller {
            user: String::new(),
            cluster: d.cluster.clone(),
            archive: d.archive.clone(),
        })
    }
}

const SIGN_IN: &str = "sign in: a bearer token the API server accepts";
/// The cookie the page's sign-in sets (the user's token; `HttpOnly`, `SameSite=Strict`).
pub const COOKIE: &str = "crew_token";

/// The token a request brings: `Authorization: Bearer …` (an authenticating proxy), else the sign-in cookie.
fn token_of(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    bearer.or_else(|| {
        guard::cookies(headers)
            .find(|(k, _)| *k == COOKIE)
            .map(|(_, v)| v.to_string())
    })
}

/// The middleware of `--in-cluster`: the page itself and the sign-in are open; every other request is admitted by
/// its token and carries its user's [`Caller`]; a write also needs the CSRF header and this server's origin.
pub async fn check(State(d): State<Dashboard>, mut request: Request, next: Next) -> Response {
    let Some(gate) = d.gate.clone() else {
        return next.run(request).await;
    };
    let headers = request.headers();
    let mut response = if let Some(refusal) = guard::foreign(headers) {
        refusal.into_response()
    } else if let Some(refusal) = guard::unsafe_write(&request, &d.csrf) {
        refusal.into_response()
    } else {
        let path = request.uri().path();
        let open = matches!(
            path,
            "/" | "/assets/app.js" | "/assets/app.css" | "/api/login" | "/api/logout"
        );
        match (open, token_of(headers)) {
            (true, _) => next.run(request).await,
            (false, None) => Failure::new(StatusCode::UNAUTHORIZED, SIGN_IN).into_response(),
            (false, Some(token)) => match admitted(&gate, &token).await {
                Ok(caller) => {
                    request.extensions_mut().insert(caller);
                    next.run(request).await
                }
                Err(refusal) => refusal.into_response(),
            },
        }
    };
    guard::secure(&mut response);
    response
}

async fn admitted(gate: &Gate, token: &str) -> Result<Caller, Failure> {
    let user = gate.admit(token).await?;
    gate.caller(user, token).await
}

#[derive(serde::Deserialize)]
pub struct SignIn {
    token: String,
}

/// `POST /api/login {"token": …}`: a token the API server accepts becomes the sign-in cookie.
pub async fn login(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    axum::Json(sign_in): axum::Json<SignIn>,
) -> Result<Response, Failure> {
    let gate = d.gate.as_ref().ok_or_else(|| {
        Failure::new(StatusCode::NOT_FOUND, "this dashboard uses your kubeconfig")
    })?;
    let token = sign_in.token.trim();
    let user = gate.admit(token).await?;
    // Behind TLS (the proxy says so), the cookie never travels in clear.
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    let mut response = axum::Json(serde_json::json!({ "user": user })).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// `POST /api/logout`: forgets the sign-in cookie.
pub async fn logout() -> Response {
    let mut response = axum::Json(serde_json::json!({})).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("crew_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

/// Keeps `value` under `key`, making room when full (expired entries first, then everything).
fn keep<V>(map: &mut HashMap<[u8; 32], (Instant, V)>, key: [u8; 32], value: V) {
    if map.len() >= KEPT {
        map.retain(|_, (at, _)| at.elapsed() < Duration::from_secs(VERDICT_SECONDS));
        if map.len() >= KEPT {
            map.clear();
        }
    }
    map.insert(key, (Instant::now(), value));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Accepts `good-token-0123456789`, slowly, counting reviews and the most at once.
    struct Counting {
        reviews: Arc<AtomicU32>,
        now: AtomicU32,
        most: Arc<AtomicU32>,
    }

    impl Reviewer for Counting {
        fn review<'a>(
            &'a self,
            token: &'a str,
        ) -> Pin<Box<dyn Future<Output = Result<Verdict, String>> + Send + 'a>> {
            Box::pin(async move {
                self.reviews.fetch_add(1, Ordering::SeqCst);
                let at_once = self.now.fetch_add(1, Ordering::SeqCst) + 1;
                self.most.fetch_max(at_once, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.now.fetch_sub(1, Ordering::SeqCst);
                Ok((token == "good-token-0123456789").then(|| "alice".to_string()))
            })
        }
    }

    fn gate_counting() -> (Arc<Gate>, Arc<AtomicU32>, Arc<AtomicU32>) {
        let (reviews, most) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let counting = Counting {
            reviews: reviews.clone(),
            now: AtomicU32::new(0),
            most: most.clone(),
        };
        let config = Config::new("http://127.0.0.1:9".parse().unwrap());
        let gate = Gate::new(Box::new(counting), config, 500, None);
        (Arc::new(gate), reviews, most)
    }

    fn gate() -> (Arc<Gate>, Arc<AtomicU32>) {
        let (gate, reviews, _) = gate_counting();
        (gate, reviews)
    }

    #[tokio::test]
    async fn a_good_token_is_reviewed_once_and_names_its_user() {
        let (gate, reviews) = gate();
        for _ in 0..5 {
            assert_eq!(gate.admit("good-token-0123456789").await.unwrap(), "alice");
        }
        assert_eq!(reviews.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn made_up_tokens_cost_no_review_and_a_refusal_is_kept() {
        let (gate, reviews) = gate();
        for garbage in [
            "",
            "short",
            "has spaces in it, which no token has",
            &"x".repeat(9000),
        ] {
            let refused = gate.admit(garbage).await.unwrap_err();
            assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(
            reviews.load(Ordering::SeqCst),
            0,
            "implausible tokens are not reviewed"
        );
        for _ in 0..10 {
            assert!(gate.admit("plausible-but-wrong-token").await.is_err());
        }
        assert_eq!(reviews.load(Ordering::SeqCst), 1, "a refusal is kept");
    }

    #[tokio::test]
    async fn reviews_in_flight_are_bounded() {
        let (gate, reviews, most) = gate_counting();
        let flood: Vec<_> = (0..40)
            .map(|i| {
                let gate = gate.clone();
                tokio::spawn(async move { gate.admit(&format!("made-up-token-number-{i}")).await })
            })
            .collect();
        let mut statuses = Vec::new();
        for request in flood {
            statuses.push(request.await.unwrap().unwrap_err().status);
        }
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::SERVICE_UNAVAILABLE)
        );
        let reviewed = reviews.load(Ordering::SeqCst);
        assert!(
            reviewed <= BURST as u32 + 2,
            "{reviewed} reviews for 40 made-up tokens: the budget holds"
        );
        assert!(
            most.load(Ordering::SeqCst) <= IN_FLIGHT as u32,
            "never more than {IN_FLIGHT} at once"
        );
        let unreviewed = statuses
            .iter()
            .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
            .count();
        assert!(
            unreviewed >= 40 - BURST as usize - 2,
            "the rest refused unreviewed ({unreviewed})"
        );
        // A good token reviewed before the flood stays admitted through it.
        let (fresh, _) = super::tests::gate();
        fresh.admit("good-token-0123456789").await.unwrap();
        for i in 0..100 {
            let _ = fresh.admit(&format!("made-up-token-number-{i}")).await;
        }
        assert_eq!(fresh.admit("good-token-0123456789").await.unwrap(), "alice");
    }

    #[tokio::test]
    async fn a_caller_acts_with_the_users_token_only() {
        let (gate, _) = gate();
        let caller = gate
            .caller("alice".into(), "good-token-0123456789")
            .await
            .unwrap();
        assert_eq!(caller.user, "alice");
        assert!(caller.archive.is_none());
        let again = gate
            .caller("alice".into(), "good-token-0123456789")
            .await
            .unwrap();
        assert_eq!(again.user, "alice");
    }
}
