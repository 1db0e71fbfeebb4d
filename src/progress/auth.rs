//! Who reports: a worker pod, proven by a token of its ServiceAccount that the kubelet projected into it with
//! audience `crew-operator` and bound to the pod. The API server's TokenReview checks the token (signature,
//! expiry, audience, that the pod still exists) and names the pod; the pod's labels and its Job's owner name the
//! execution, step and attempt. A verdict is cached until the token expires (at most 10 minutes), so a worker
//! reporting ten times a second costs one TokenReview and two reads per token, not per report.

use crew_core::build::labels;
use crew_core::build::progress_token::AUDIENCE;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::{Api, Client, Resource, ResourceExt};
use std::collections::HashMap;
use std::sync::Mutex;

/// The longest a verdict is trusted without asking again.
pub const CACHE_SECONDS: i64 = 600;
/// Cached verdicts at most (expired ones are dropped first; then all).
const CACHE_ENTRIES: usize = 20_000;

/// The step attempt a worker pod runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Worker {
    pub namespace: String,
    pub pod: String,
    pub execution: String,
    pub execution_uid: String,
    pub step: String,
    pub attempt: u32,
}

/// Why a caller is refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No token, or one the API server does not accept for this audience (expired, forged, its pod gone): 401.
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid token, but not of a worker pod of an execution: 403.
    #[error("{0}")]
    Forbidden(String),
    /// The API server could not be asked: 503.
    #[error("cannot check the token now: {0}")]
    Unavailable(String),
}

struct Cached {
    worker: Worker,
    until: Timestamp,
}

/// Checks tokens and caches the verdicts.
pub struct Authenticator {
    client: Client,
    cache: Mutex<HashMap<String, Cached>>,
}

impl Authenticator {
    pub fn new(client: Client) -> Authenticator {
        Authenticator {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, token: &str, now: Timestamp) -> Option<Worker> {
        let cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .get(token)
            .filter(|c| now < c.until)
            .map(|c| c.worker.clone())
    }

    /// The worker `token` belongs to.
    pub async fn worker(&self, token: &str, now: Timestamp) -> Result<Worker, AuthError> {
        if let Some(worker) = self.cached(token, now) {
            return Ok(worker);
        }
        let (namespace, pod_name, pod_uid) = self.review(token).await?;
        let worker = self.attempt_of(&namespace, &pod_name, &pod_uid).await?;
        let until = expiry(token)
            .unwrap_or(now)
            .min(now + SignedDuration::from_secs(CACHE_SECONDS));
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= CACHE_ENTRIES {
            cache.retain(|_, c| now < c.until);
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(
            token.to_string(),
            Cached {
                worker: worker.clone(),
                until,
            },
        );
        Ok(worker)
    }

    /// (namespace, pod name, pod UID) of a pod-bound token for [`AUDIENCE`].
    async fn review(&self, token: &str) -> Result<(String, String, String), AuthError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: Some(vec![AUDIENCE.to_string()]),
            },
            ..Default::default()
        };
        let reviews: Api<TokenReview> = Api::all(self.client.clone());
        let answer = reviews
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        let status = answer.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            let why = status.error.unwrap_or_else(|| "not authenticated".into());
            return Err(AuthError::Unauthenticated(format!("token refused: {why}")));
        }
        if !status.audiences.iter().flatten().any(|a| a == AUDIENCE) {
            return Err(AuthError::Unauthenticated(format!(
                "the token is not for audience {AUDIENCE}"
            )));
        }
        let user = status.user.unwrap_or_default();
        let username = user.username.unwrap_or_default();
        let namespace = username
            .strip_prefix("system:serviceaccount:")
            .and_then(|rest| rest.split_once(':'))
            .map(|(ns, _)| ns.to_string())
            .ok_or_else(|| AuthError::Forbidden(format!("{username} is not a ServiceAccount")))?;
        let extra = user.extra.unwrap_or_default();
        let claim = |key: &str| extra.get(key).and_then(|v| v.first()).cloned();
        match (
            claim("authentication.kubernetes.io/pod-name"),
            claim("authentication.kubernetes.io/pod-uid"),
        ) {
            (Some(pod), Some(uid)) => Ok((namespace, pod, uid)),
            _ => Err(AuthError::Forbidden(
                "the token is not bound to a pod: use the projected token of the worker pod".into(),
            )),
        }
    }

    /// The step attempt pod `name` (with UID `uid`) of `namespace` runs: its labels, its Job, the Job's owner.
    async fn attempt_of(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
    ) -> Result<Worker, AuthError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let pod = pods
            .get_opt(name)
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?
            .filter(|p| p.uid().as_deref() == Some(uid))
            .ok_or_else(|| AuthError::Unauthenticated(format!("pod {namespace}/{name} is gone")))?;
        let not_worker = || {
            AuthError::Forbidden(format!(
                "pod {namespace}/{name} is not a step attempt's worker"
            ))
        };
        let label = |key: &str| pod.labels().get(key).cloned();
        let step = label(labels::STEP).ok_or_else(not_worker)?;
        let attempt: u32 = label(labels::ATTEMPT)
            .and_then(|a| a.parse().ok())
            .ok_or_else(not_worker)?;
        let job_ref = pod
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true) && o.kind == "Job")
            .cloned()
            .ok_or_else(not_worker)?;
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), namespace);
        let job = jobs
            .get_opt(&job_ref.name)
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?
            .filter(|j| j.uid().as_deref() == Some(job_ref.uid.as_str()))
            .ok_or_else(not_worker)?;
        let owner = job
            .owner_references()
            .iter()
            .find(|o| {
                o.controller == Some(true)
                    && o.kind == crew_api::CrewExecution::kind(&())
                    && o.api_version == crew_api::CrewExecution::api_version(&())
            })
            .cloned()
            .ok_or_else(not_worker)?;
        if job.labels().get(labels::STEP) != Some(&step)
            || job.labels().get(labels::ATTEMPT) != Some(&attempt.to_string())
        {
            return Err(not_worker());
        }
        Ok(Worker {
            namespace: namespace.to_string(),
            pod: name.to_string(),
            execution: owner.name,
            execution_uid: owner.uid,
            step,
            attempt,
        })
    }
}

/// The `exp` claim of a JWT (read, not verified: the TokenReview verified it; this only bounds the cache).
fn expiry(token: &str) -> Option<Timestamp> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Timestamp::from_second(claims.get("exp")?.as_i64()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn the_expiry_is_read_from_the_token() {
        let claims =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"exp": 1800000000}"#);
        let token = format!("eyJhbGciOiJSUzI1NiJ9.{claims}.signature");
        assert_eq!(expiry(&token), Timestamp::from_second(1_800_000_000).ok());
        assert_eq!(expiry("not-a-jwt"), None);
    }
}
