//! SubjectAccessReviews: may this user `list` or `get` CrewExecutions in that namespace? Asked of the API server
//! for every read of the archive, as the user (never with the operator's own rights), bounded in flight like the
//! TokenReviews ([`super::review`]) and cached briefly by (token digest, namespace, verb), refusals too, so a
//! client repeating a request costs one review per [`CACHE_SECONDS`].

use super::review::{ReviewError, Reviewed};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How long a verdict is reused.
pub const CACHE_SECONDS: u64 = 10;
/// Reviews in flight at most; a request finding none free within [`MAX_WAIT`] is refused (503).
pub const MAX_IN_FLIGHT: usize = 4;
/// The longest a request waits for a review's place.
pub const MAX_WAIT: Duration = Duration::from_secs(2);
/// Verdicts cached at most (then expired ones go, then all).
const CACHE_ENTRIES: usize = 20_000;

/// (token digest, namespace or "" for all, verb).
type Key = ([u8; 32], String, &'static str);

/// Asks the API server whether users may read CrewExecutions (see the module documentation).
pub struct AccessReviewer {
    client: Client,
    in_flight: Arc<Semaphore>,
    verdicts: Mutex<HashMap<Key, (bool, Instant)>>,
    sent: AtomicU64,
}

impl AccessReviewer {
    /// A reviewer asking `client`'s API server.
    pub fn new(client: Client) -> AccessReviewer {
        AccessReviewer {
            client,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            verdicts: Mutex::default(),
            sent: AtomicU64::new(0),
        }
    }

    /// SubjectAccessReviews sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn verdicts(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (bool, Instant)>> {
        self.verdicts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `user` (whose token digests to `token`) may `verb` CrewExecutions in `namespace` (None: in every
    /// namespace).
    pub async fn allowed(
        &self,
        token: [u8; 32],
        user: &Reviewed,
        namespace: Option<&str>,
        verb: &'static str,
    ) -> Result<bool, ReviewError> {
        let key: Key = (token, namespace.unwrap_or_default().to_string(), verb);
        let fresh = |verdicts: &HashMap<Key, (bool, Instant)>| {
            verdicts
                .get(&key)
                .filter(|(_, at)| at.elapsed() < Duration::from_secs(CACHE_SECONDS))
                .map(|(allowed, _)| *allowed)
        };
        if let Some(allowed) = fresh(&self.verdicts()) {
            return Ok(allowed);
        }
        let _permit = tokio::time::timeout(MAX_WAIT, self.in_flight.clone().acquire_owned())
            .await
            .map_err(|_| ReviewError::Busy)?
            .map_err(|_| ReviewError::Busy)?;
        if let Some(allowed) = fresh(&self.verdicts()) {
            return Ok(allowed);
        }
        self.sent.fetch_add(1, Ordering::Relaxed);
        let allowed = self.ask(user, namespace, verb).await?;
        let mut verdicts = self.verdicts();
        if verdicts.len() >= CACHE_ENTRIES {
            verdicts.retain(|_, (_, at)| at.elapsed() < Duration::from_secs(CACHE_SECONDS));
            if verdicts.len() >= CACHE_ENTRIES {
                verdicts.clear();
            }
        }
        verdicts.insert(key, (allowed, Instant::now()));
        Ok(allowed)
    }

    async fn ask(
        &self,
        user: &Reviewed,
        namespace: Option<&str>,
        verb: &'static str,
    ) -> Result<bool, ReviewError> {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.username.clone()),
                groups: Some(user.groups.clone()),
                extra: Some(user.extra.clone()),
                resource_attributes: Some(ResourceAttributes {
                    group: Some(crew_api::GROUP.to_string()),
                    resource: Some("crewexecutions".into()),
                    verb: Some(verb.into()),
                    namespace: namespace.map(str::to_string),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| ReviewError::Unavailable(e.to_string()))?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    }
}
