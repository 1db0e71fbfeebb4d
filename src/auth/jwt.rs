//! The claims of a JSON Web Token, read without verifying its signature. Only ever used to refuse a request early
//! or to bound a cache: a token is trusted only after the API server's TokenReview (`super::review`).

use base64::Engine;
use jiff::Timestamp;
use serde::Deserialize;

/// What a Kubernetes ServiceAccount token says about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claims {
    /// `aud`: the audiences it is for.
    pub audiences: Vec<String>,
    /// `exp`: when it expires.
    pub expires: Option<Timestamp>,
    /// `kubernetes.io.namespace`.
    pub namespace: Option<String>,
    /// `kubernetes.io.pod`: (name, UID) of the pod it is bound to.
    pub pod: Option<(String, String)>,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    aud: Audiences,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default, rename = "kubernetes.io")]
    kubernetes: Option<KubernetesClaims>,
}

#[derive(Default, Deserialize)]
#[serde(untagged)]
enum Audiences {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct KubernetesClaims {
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    pod: Option<ObjectClaim>,
}

#[derive(Deserialize)]
struct ObjectClaim {
    name: String,
    uid: String,
}

/// Longest token looked at (a projected ServiceAccount token is about 1 KiB).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The claims of `token`, if it is a JWT (three base64url parts, a JSON payload) of at most [`MAX_TOKEN_BYTES`].
pub fn claims(token: &str) -> Option<Claims> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let raw: Raw = serde_json::from_slice(&bytes).ok()?;
    let kubernetes = raw.kubernetes;
    Some(Claims {
        audiences: match raw.aud {
            Audiences::None => Vec::new(),
            Audiences::One(audience) => vec![audience],
            Audiences::Many(audiences) => audiences,
        },
        expires: raw.exp.and_then(|exp| Timestamp::from_second(exp).ok()),
        namespace: kubernetes.as_ref().and_then(|k| k.namespace.clone()),
        pod: kubernetes
            .and_then(|k| k.pod)
            .map(|pod| (pod.name, pod.uid)),
    })
}

/// Why a token is refused before anyone is asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Precheck {
    /// Not a JWT at all.
    #[error("not a ServiceAccount token (a JWT)")]
    NotAToken,
    /// For another audience.
    #[error("the token is not for audience {0}")]
    WrongAudience(&'static str),
    /// Expired (or without an expiry).
    #[error("the token has expired")]
    Expired,
    /// Not bound to a pod.
    #[error("the token is not bound to a pod: use the projected token of the worker pod")]
    NotPodBound,
}

/// The claims of a pod-bound token for `audience` that has not expired at `now`; else why not.
pub fn pod_bound(token: &str, audience: &'static str, now: Timestamp) -> Result<Claims, Precheck> {
    let claims = claims(token).ok_or(Precheck::NotAToken)?;
    if !claims.audiences.iter().any(|a| a == audience) {
        return Err(Precheck::WrongAudience(audience));
    }
    if claims.expires.is_none_or(|expires| expires <= now) {
        return Err(Precheck::Expired);
    }
    if claims.pod.is_none() || claims.namespace.is_none() {
        return Err(Precheck::NotPodBound);
    }
    Ok(claims)
}

/// A token carrying `payload` as its claims (tests).
#[cfg(test)]
pub fn token_with(payload: &serde_json::Value) -> String {
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    format!(
        "{}.{}.{}",
        encode(br#"{"alg":"RS256"}"#),
        encode(payload.to_string().as_bytes()),
        encode(b"signature")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn projected(exp: i64, audience: &str) -> serde_json::Value {
        serde_json::json!({
            "aud": [audience], "exp": exp, "iat": exp - 3600, "sub": "system:serviceaccount:ns:default",
            "kubernetes.io": {"namespace": "ns", "pod": {"name": "run-a-1-x", "uid": "p1"},
                              "serviceaccount": {"name": "default", "uid": "s1"}}
        })
    }

    #[test]
    fn a_projected_token_says_its_pod_audience_and_expiry() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let token = token_with(&projected(1_800_000_600, "crew-operator"));
        let claims = pod_bound(&token, "crew-operator", now).unwrap();
        assert_eq!(claims.pod, Some(("run-a-1-x".into(), "p1".into())));
        assert_eq!(claims.namespace.as_deref(), Some("ns"));
        assert_eq!(claims.expires, Timestamp::from_second(1_800_000_600).ok());
    }

    #[test]
    fn bad_tokens_are_refused_before_anyone_is_asked() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let check = |token: &str| pod_bound(token, "crew-operator", now).err();
        assert_eq!(check("garbage"), Some(Precheck::NotAToken));
        assert_eq!(check("a.b.c"), Some(Precheck::NotAToken));
        assert_eq!(
            check(&"x".repeat(MAX_TOKEN_BYTES + 1)),
            Some(Precheck::NotAToken)
        );
        assert_eq!(
            check(&token_with(&projected(
                1_800_000_600,
                "https://kubernetes.default.svc"
            ))),
            Some(Precheck::WrongAudience("crew-operator"))
        );
        assert_eq!(
            check(&token_with(&projected(1_799_999_999, "crew-operator"))),
            Some(Precheck::Expired)
        );
        let unbound = serde_json::json!({"aud": "crew-operator", "exp": 1_800_000_600});
        assert_eq!(check(&token_with(&unbound)), Some(Precheck::NotPodBound));
    }
}
