//! Sink credentials, from opted-in Secrets only.
//!
//! A CrewSink names Secrets for its bearer token and its signing key. Whoever may create a CrewSink must not be able
//! to send a Secret they cannot read to a URL they control (a confused deputy), so the operator uses a Secret only
//! when it is labelled `crew.dev/sink-credentials: "true"`: whoever may edit Secrets in that namespace opted it in.
//! The operator watches only such Secrets (a label selector), and keeps only their data; a sink that names a Secret
//! without the label is refused its deliveries, visibly (`lastError`, `Ready` False).

use crate::notify::deliver::Credentials;
use crew_api::sink::{CrewSink, SINK_CREDENTIALS_LABEL, SecretKeyRef};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::runtime::watcher::Event;
use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

/// The label selector of the watched Secrets.
pub fn selector() -> String {
    format!("{SINK_CREDENTIALS_LABEL}=true")
}

type Data = BTreeMap<String, Vec<u8>>;

#[derive(Default)]
struct Index {
    by_secret: HashMap<(String, String), Data>,
    relist: Option<HashMap<(String, String), Data>>,
    /// The operator reads no Secret.
    off: bool,
}

/// The data of the opted-in Secrets, by (namespace, name).
#[derive(Default)]
pub struct CredentialIndex(RwLock<Index>);

fn entry(secret: &Secret) -> Option<((String, String), Data)> {
    if secret
        .labels()
        .get(SINK_CREDENTIALS_LABEL)
        .map(String::as_str)
        != Some("true")
    {
        return None;
    }
    let data = secret
        .data
        .iter()
        .flatten()
        .map(|(key, value)| (key.clone(), value.0.clone()))
        .collect();
    Some(((secret.namespace()?, secret.name_any()), data))
}

impl CredentialIndex {
    /// The operator reads no Secret: every sink naming one is refused its deliveries.
    pub fn turn_off(&self) {
        if let Ok(mut index) = self.0.write() {
            index.off = true;
        }
    }

    /// Applies one event of the Secrets watch.
    pub fn apply(&self, event: &Event<Secret>) {
        let Ok(mut index) = self.0.write() else {
            return;
        };
        match event {
            Event::Init => index.relist = Some(HashMap::new()),
            Event::InitApply(secret) => {
                if let (Some((key, data)), Some(relist)) = (entry(secret), index.relist.as_mut()) {
                    relist.insert(key, data);
                }
            }
            Event::InitDone => {
                if let Some(relist) = index.relist.take() {
                    index.by_secret = relist;
                }
            }
            Event::Apply(secret) => match entry(secret) {
                Some((key, data)) => {
                    index.by_secret.insert(key, data);
                }
                // The label was taken off: the Secret is no longer opted in.
                None => {
                    if let Some(namespace) = secret.namespace() {
                        index.by_secret.remove(&(namespace, secret.name_any()));
                    }
                }
            },
            Event::Delete(secret) => {
                if let Some(namespace) = secret.namespace() {
                    index.by_secret.remove(&(namespace, secret.name_any()));
                }
            }
        }
    }

    fn value(&self, namespace: &str, reference: &SecretKeyRef) -> Result<Vec<u8>, String> {
        let index = self
            .0
            .read()
            .map_err(|_| "the credential index is unavailable".to_string())?;
        if index.off {
            return Err(format!(
                "the operator reads no Secrets (start it with --sink-credentials, or the chart with \
                 sinks.credentials=true), so Secret {namespace}/{} cannot be used",
                reference.name
            ));
        }
        let data = index
            .by_secret
            .get(&(namespace.to_string(), reference.name.clone()))
            .ok_or_else(|| {
                format!(
                    "Secret {namespace}/{} is missing or not opted in: label it {SINK_CREDENTIALS_LABEL}=true",
                    reference.name
                )
            })?;
        data.get(&reference.key).cloned().ok_or_else(|| {
            format!(
                "Secret {namespace}/{} has no key {:?}",
                reference.name, reference.key
            )
        })
    }

    /// The credentials `sink` names, or why they cannot be had.
    pub fn for_sink(&self, sink: &CrewSink) -> Result<Credentials, String> {
        let namespace = sink.namespace().unwrap_or_default();
        let bearer_token = match &sink.spec.auth {
            Some(auth) => {
                let raw = self.value(&namespace, &auth.bearer_token_secret_ref)?;
                Some(
                    String::from_utf8(raw)
                        .map_err(|_| "the bearer token is not UTF-8".to_string())?
                        .trim()
                        .to_string(),
                )
            }
            None => None,
        };
        let signing_key = match &sink.spec.signing {
            Some(signing) => Some(self.value(&namespace, &signing.secret_ref)?),
            None => None,
        };
        Ok(Credentials {
            bearer_token,
            signing_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(name: &str, opted_in: bool) -> Secret {
        let mut secret = Secret::default();
        secret.metadata.name = Some(name.into());
        secret.metadata.namespace = Some("team".into());
        if opted_in {
            secret.metadata.labels =
                Some([(SINK_CREDENTIALS_LABEL.to_string(), "true".to_string())].into());
        }
        secret.data = Some([("token".to_string(), ByteString(b"s3cret\n".to_vec()))].into());
        secret
    }

    fn sink(secret: &str) -> CrewSink {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "crew.dev/v1alpha1", "kind": "CrewSink",
            "metadata": {"name": "hook", "namespace": "team"},
            "spec": {"url": "http://example.test/", "auth": {"bearerTokenSecretRef": {"name": secret, "key": "token"}}}
        }))
        .unwrap()
    }

    /// A Secret nobody opted in is never used, whatever a sink names.
    #[test]
    fn only_opted_in_secrets_are_used() {
        let index = CredentialIndex::default();
        index.apply(&Event::Apply(secret("plain", false)));
        index.apply(&Event::Apply(secret("opted", true)));
        let refused = index.for_sink(&sink("plain")).unwrap_err();
        assert!(refused.contains("not opted in"), "{refused}");
        assert_eq!(
            index
                .for_sink(&sink("opted"))
                .unwrap()
                .bearer_token
                .as_deref(),
            Some("s3cret")
        );
        // The label taken off: no longer used.
        index.apply(&Event::Apply(secret("opted", false)));
        assert!(index.for_sink(&sink("opted")).is_err());
    }

    /// An operator told to read no Secrets uses none, and says how to turn it on.
    #[test]
    fn an_index_turned_off_uses_no_secret_and_says_why() {
        let index = CredentialIndex::default();
        index.turn_off();
        index.apply(&Event::Apply(secret("opted", true)));
        let refused = index.for_sink(&sink("opted")).unwrap_err();
        assert!(refused.contains("--sink-credentials"), "{refused}");
    }
}
