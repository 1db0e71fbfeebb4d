//! Who reports: a worker pod, proven by a token of its ServiceAccount that the kubelet projected into it with
//! audience `crew-operator` and bound to the pod.
//!
//! Cheap checks come first and cost no API call: the token's own claims must be for this audience, unexpired and
//! bound to a pod, and that pod must be a live worker pod the operator's pod watch knows (its UID included). Only
//! then does the API server's TokenReview verify the token (signature, expiry, that the pod still exists), bounded
//! and cached (`crate::auth::review`). The attempt is read from the operator's own indexes (the pod's Job, the
//! Job's controller, their step and attempt labels), never from a GET. So a flood of made-up tokens costs no
//! TokenReview at all, and a worker reporting ten times a second costs one review per token.

use crate::auth::jwt::{Precheck, pod_bound};
use crate::auth::review::{ReviewError, TokenReviewer};
use crate::controller::child_index::ChildIndex;
use crew_core::build::progress_token::AUDIENCE;
use jiff::Timestamp;
use kube::Client;
use std::net::IpAddr;

/// The step attempt a worker pod runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Worker {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The Job that made the pod.
    pub job: String,
    /// The execution's name.
    pub execution: String,
    /// The execution's UID.
    pub execution_uid: String,
    /// The step.
    pub step: String,
    /// The attempt.
    pub attempt: u32,
}

/// Why a caller is refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No token, or one that is not for this audience, expired, forged or of a pod that is gone: 401.
    #[error("{0}")]
    Unauthenticated(String),
    /// A token, but not of a worker pod of an execution this operator watches: 403.
    #[error("{0}")]
    Forbidden(String),
    /// Too many new tokens from this source: 429.
    #[error("{0}")]
    RateLimited(String),
    /// The token cannot be checked now (the API server, reviews in flight, the caches still listing): 503.
    #[error("cannot check the token now: {0}")]
    Unavailable(String),
}

impl From<Precheck> for AuthError {
    fn from(why: Precheck) -> Self {
        AuthError::Unauthenticated(why.to_string())
    }
}

impl From<ReviewError> for AuthError {
    fn from(error: ReviewError) -> Self {
        match error {
            ReviewError::Refused(_) => AuthError::Unauthenticated(error.to_string()),
            ReviewError::RateLimited => AuthError::RateLimited(error.to_string()),
            ReviewError::Busy | ReviewError::Unavailable(_) => {
                AuthError::Unavailable(error.to_string())
            }
        }
    }
}

/// Checks workers' tokens (see the module documentation).
pub struct Authenticator {
    reviewer: TokenReviewer,
}

const POD_NAME: &str = "authentication.kubernetes.io/pod-name";
const POD_UID: &str = "authentication.kubernetes.io/pod-uid";

impl Authenticator {
    /// An authenticator asking `client`'s API server.
    pub fn new(client: Client) -> Authenticator {
        Authenticator {
            reviewer: TokenReviewer::new(client, AUDIENCE),
        }
    }

    /// TokenReviews sent so far.
    pub fn reviews_sent(&self) -> u64 {
        self.reviewer.sent()
    }

    /// The worker `token`, sent from `source`, belongs to, as `children` (the Job and pod indexes) know it.
    pub async fn worker(
        &self,
        token: &str,
        source: IpAddr,
        children: &ChildIndex,
        now: Timestamp,
    ) -> Result<Worker, AuthError> {
        let claims = pod_bound(token, AUDIENCE, now)?;
        let (Some(namespace), Some((pod, pod_uid))) = (claims.namespace, claims.pod) else {
            return Err(Precheck::NotPodBound.into());
        };
        if !children.synced() {
            return Err(AuthError::Unavailable(
                "the operator is still listing its pods".into(),
            ));
        }
        let Some(attempt) = children.worker_of(&namespace, &pod, &pod_uid) else {
            return Err(AuthError::Forbidden(format!(
                "pod {namespace}/{pod} is not a running step attempt's worker this operator watches"
            )));
        };
        let reviewed = self
            .reviewer
            .review(token, claims.expires, source, now)
            .await?;
        let bound_to = (reviewed.claim(POD_NAME), reviewed.claim(POD_UID));
        let service_account = reviewed
            .username
            .strip_prefix("system:serviceaccount:")
            .and_then(|rest| rest.split_once(':'))
            .map(|(ns, _)| ns);
        if bound_to != (Some(pod.as_str()), Some(pod_uid.as_str()))
            || service_account != Some(&namespace)
        {
            return Err(AuthError::Unauthenticated(
                "the token's verified pod is not the one it claims".into(),
            ));
        }
        Ok(Worker {
            namespace,
            pod,
            job: attempt.job,
            execution: attempt.execution,
            execution_uid: attempt.execution_uid,
            step: attempt.step,
            attempt: attempt.attempt,
        })
    }
}
