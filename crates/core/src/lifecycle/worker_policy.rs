//! What an execution's workers may use, as a namespace's owner and the operator's admin decide: no confused
//! deputy. Whoever may create a CrewExecution gets pods run on their behalf; the pods must not get more than that
//! person could be given on purpose.
//!
//! - **ServiceAccounts**: a worker may run as a named ServiceAccount only if its owner annotated it
//!   `crew.dev/worker: "true"` (or the operator lists it, `--worker-service-account`).
//! - **Secrets**: a worker may reference a Secret (an `env` `secretKeyRef`, a `secret` volume, a projected
//!   `secret` source, a Secret a volume driver is given) only if the ServiceAccount it runs as (`default` when none
//!   is named) lists it in the annotation `crew.dev/worker-secrets` (comma-separated names). The operator so never
//!   needs to read Secrets.
//! - **Volumes** (`worker_volumes`): node-level types are refused, a ServiceAccount token needs a named
//!   ServiceAccount, and claims and CSI drivers need the ServiceAccount's `crew.dev/worker-volume-claims` and
//!   `crew.dev/worker-csi-drivers`.
//! - **Pod annotations and labels** that drive injectors or weaken security (Vault agent, service-mesh sidecars,
//!   kube2iam roles, the old seccomp/AppArmor annotations) are refused unless the operator allows them
//!   (`--allow-pod-annotation`).

use super::ResolvedStep;
use super::worker_volumes::{
    WORKER_CSI_DRIVERS_ANNOTATION, WORKER_VOLUME_CLAIMS_ANNOTATION, csi_drivers, listed,
    listed_problem, volume_claims, volume_problems, volume_secrets,
};
use std::collections::{BTreeMap, BTreeSet};

/// The annotation a namespace's owner sets on a ServiceAccount that workers may run as.
pub const WORKER_ANNOTATION: &str = "crew.dev/worker";
/// The annotation listing the Secrets that workers running as the ServiceAccount may reference.
pub const WORKER_SECRETS_ANNOTATION: &str = "crew.dev/worker-secrets";
/// The ServiceAccount a pod runs as when none is named.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// Pod annotation and label keys refused by default (`*` ends a prefix).
pub const DEFAULT_DENIED_POD_KEYS: [&str; 10] = [
    "vault.hashicorp.com/*",
    "sidecar.istio.io/*",
    "traffic.sidecar.istio.io/*",
    "proxy.istio.io/*",
    "linkerd.io/inject",
    "config.linkerd.io/*",
    "iam.amazonaws.com/*",
    "seccomp.security.alpha.kubernetes.io/*",
    "container.seccomp.security.alpha.kubernetes.io/*",
    "container.apparmor.security.beta.kubernetes.io/*",
];

/// The operator's rules for worker pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerPolicy {
    /// Pod annotation and label keys refused (`*` ends a prefix).
    pub denied_pod_keys: Vec<String>,
    /// Keys allowed although a denied pattern matches them (`*` ends a prefix).
    pub allowed_pod_keys: Vec<String>,
    /// ServiceAccounts workers may run as without the `crew.dev/worker` annotation.
    pub service_accounts: Vec<String>,
}

impl Default for WorkerPolicy {
    fn default() -> Self {
        WorkerPolicy {
            denied_pod_keys: DEFAULT_DENIED_POD_KEYS.map(String::from).to_vec(),
            allowed_pod_keys: Vec::new(),
            service_accounts: Vec::new(),
        }
    }
}

fn matches(pattern: &str, key: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => key == pattern,
    }
}

impl WorkerPolicy {
    fn denies(&self, key: &str) -> bool {
        self.denied_pod_keys.iter().any(|p| matches(p, key))
            && !self.allowed_pod_keys.iter().any(|p| matches(p, key))
    }

    /// Why `steps`' pods may not carry their annotations and labels (empty: they may).
    pub fn pod_key_problems(&self, steps: &[ResolvedStep]) -> Vec<String> {
        let mut refused = BTreeSet::new();
        for step in steps {
            let template = &step.pod_template;
            let keys = step
                .pod_annotations
                .keys()
                .chain(template.annotations.iter().flat_map(BTreeMap::keys))
                .chain(template.labels.iter().flat_map(BTreeMap::keys));
            refused.extend(keys.filter(|key| self.denies(key)).cloned());
        }
        refused
            .into_iter()
            .map(|key| {
                format!(
                    "pod annotation or label {key:?} is not allowed for workers (it drives an injector or \
                     weakens pod security; the operator's --allow-pod-annotation can permit it)"
                )
            })
            .collect()
    }

    /// Whether a worker may run as `name` (annotated for workers, or listed by the operator).
    pub fn service_account_problem(
        &self,
        name: &str,
        annotations: &BTreeMap<String, String>,
    ) -> Option<String> {
        let permitted = annotations.get(WORKER_ANNOTATION).map(String::as_str) == Some("true")
            || self.service_accounts.iter().any(|s| s == name);
        (!permitted).then(|| {
            format!(
                "ServiceAccount {name:?} may not run workers: its namespace's owner must annotate it \
                 {WORKER_ANNOTATION}=true (or the operator list it with --worker-service-account)"
            )
        })
    }
}

/// What a read of a worker's ServiceAccount found (the shell's answer to
/// [`Read::ServiceAccount`](crate::lifecycle::Read::ServiceAccount)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceAccountFact {
    /// It exists, with these annotations.
    Found {
        /// Its name.
        name: String,
        /// Its annotations.
        annotations: BTreeMap<String, String>,
    },
    /// It does not exist (it may be created later: a GitOps sync in another order).
    Missing {
        /// Its name.
        name: String,
        /// The namespace it was looked for in.
        namespace: String,
    },
    /// The API server refused the read for a reason in the request: an invalid name (`permanent`), or the
    /// operator may not read it (403; fixing the operator's RBAC may cure it).
    Unreadable {
        /// Its name.
        name: String,
        /// The API server's message.
        message: String,
        /// No retry can cure it.
        permanent: bool,
    },
}

impl ServiceAccountFact {
    /// The ServiceAccount the fact is about.
    pub fn name(&self) -> &str {
        match self {
            ServiceAccountFact::Found { name, .. }
            | ServiceAccountFact::Missing { name, .. }
            | ServiceAccountFact::Unreadable { name, .. } => name,
        }
    }
}

/// Why a worker may not run as its launch asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRefusal {
    /// What to tell the user.
    pub message: String,
    /// No retry can cure it (else the retry policy applies: the ServiceAccount may be created or opened later).
    pub permanent: bool,
}

/// The ServiceAccount whose annotations decide whether `step` may run: the one it names, or `default` when it
/// names none but references Secrets, claims or CSI drivers. None: nothing to check (no read).
pub fn account_to_check(step: &ResolvedStep) -> Option<String> {
    let opted_in = || {
        !referenced_secrets(step).is_empty()
            || !volume_claims(step).is_empty()
            || !csi_drivers(step).is_empty()
    };
    match &step.service_account_name {
        Some(name) => Some(name.clone()),
        None if opted_in() => Some(DEFAULT_SERVICE_ACCOUNT.to_string()),
        None => None,
    }
}

/// Why `steps`' volumes may not be mounted whatever a ServiceAccount says (empty: they may): checked where the spec
/// is resolved, before anything runs, and again at each launch.
pub fn volume_problems_of(steps: &[ResolvedStep]) -> Vec<String> {
    let mut problems: Vec<String> = Vec::new();
    for problem in steps.iter().flat_map(volume_problems) {
        if !problems.contains(&problem) {
            problems.push(problem);
        }
    }
    problems
}

impl WorkerPolicy {
    /// Why `step` may not run as it asks (None: it may), given what the read of its ServiceAccount
    /// ([`account_to_check`]) found.
    pub fn access_refusal(
        &self,
        fact: &ServiceAccountFact,
        step: &ResolvedStep,
    ) -> Option<AccessRefusal> {
        let refuse = |message: String, permanent: bool| Some(AccessRefusal { message, permanent });
        let annotations = match fact {
            ServiceAccountFact::Unreadable {
                name,
                message,
                permanent,
            } => {
                return refuse(
                    format!(
                        "ServiceAccount {name:?} cannot be read to check it is open to workers: {message}"
                    ),
                    *permanent,
                );
            }
            ServiceAccountFact::Missing { name, namespace } => {
                return refuse(
                    format!("ServiceAccount {name:?} does not exist in namespace {namespace}"),
                    false,
                );
            }
            ServiceAccountFact::Found { annotations, .. } => annotations,
        };
        let account = fact.name();
        if step.service_account_name.is_some()
            && let Some(problem) = self.service_account_problem(account, annotations)
        {
            return refuse(problem, true);
        }
        let problems: Vec<String> = [
            secrets_problem(&referenced_secrets(step), account, annotations),
            listed_problem(
                "PersistentVolumeClaim(s)",
                &volume_claims(step),
                account,
                annotations,
                WORKER_VOLUME_CLAIMS_ANNOTATION,
            ),
            listed_problem(
                "CSI driver(s)",
                &csi_drivers(step),
                account,
                annotations,
                WORKER_CSI_DRIVERS_ANNOTATION,
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!problems.is_empty()).then(|| AccessRefusal {
            message: problems.join("; "),
            permanent: true,
        })
    }
}

/// The Secrets `step`'s pod references: `env` `secretKeyRef`s and every Secret its volumes name
/// ([`volume_secrets`]: `secret` volumes, projected `secret` sources, the Secrets volume drivers are given).
pub fn referenced_secrets(step: &ResolvedStep) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = step
        .env
        .iter()
        .filter_map(|var| var.value_from.as_ref()?.secret_key_ref.as_ref())
        .map(|reference| reference.name.clone())
        .collect();
    names.extend(volume_secrets(step));
    names
}

/// Why the Secrets in `referenced` may not be read by workers running as `service_account` with `annotations`
/// (None: all are listed in its `crew.dev/worker-secrets`).
pub fn secrets_problem(
    referenced: &BTreeSet<String>,
    service_account: &str,
    annotations: &BTreeMap<String, String>,
) -> Option<String> {
    let listed = listed(annotations, WORKER_SECRETS_ANNOTATION);
    let refused: Vec<&str> = referenced
        .iter()
        .map(String::as_str)
        .filter(|name| !listed.contains(name))
        .collect();
    (!refused.is_empty()).then(|| {
        format!(
            "Secret(s) {refused:?} may not be read by workers running as ServiceAccount {service_account:?}: its \
             namespace's owner must list them in its annotation {WORKER_SECRETS_ANNOTATION}"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::resolve_steps;
    use crew_api::CrewExecutionSpec;

    fn steps(spec: serde_json::Value) -> Vec<ResolvedStep> {
        let spec: CrewExecutionSpec = serde_json::from_value(spec).unwrap();
        resolve_steps(&spec).unwrap()
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn injector_annotations_and_labels_are_refused_unless_allowed() {
        let policy = WorkerPolicy::default();
        let risky = steps(serde_json::json!({"image": "w",
            "podAnnotations": {"vault.hashicorp.com/agent-inject": "true", "team": "a"},
            "podTemplate": {"labels": {"sidecar.istio.io/inject": "false"}},
            "steps": [{"name": "one", "podTemplate": {"annotations": {"iam.amazonaws.com/role": "admin"}}}]}));
        let problems = policy.pod_key_problems(&risky);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("iam.amazonaws.com/role"));
        let allowing = WorkerPolicy {
            allowed_pod_keys: vec![
                "vault.hashicorp.com/*".into(),
                "sidecar.istio.io/inject".into(),
            ],
            ..WorkerPolicy::default()
        };
        assert_eq!(allowing.pod_key_problems(&risky).len(), 1);
        let plain = steps(
            serde_json::json!({"image": "w", "podAnnotations": {"sim.crew.dev/duration": "1s"}}),
        );
        assert!(policy.pod_key_problems(&plain).is_empty());
    }

    #[test]
    fn a_service_account_runs_workers_only_when_its_owner_says_so() {
        let policy = WorkerPolicy::default();
        assert!(
            policy
                .service_account_problem("powerful", &map(&[]))
                .unwrap()
                .contains("crew.dev/worker=true")
        );
        assert!(
            policy
                .service_account_problem("runner", &map(&[("crew.dev/worker", "true")]))
                .is_none()
        );
        let listing = WorkerPolicy {
            service_accounts: vec!["runner".into()],
            ..WorkerPolicy::default()
        };
        assert!(
            listing
                .service_account_problem("runner", &map(&[]))
                .is_none()
        );
    }

    #[test]
    fn secrets_are_read_only_when_listed_on_the_service_account() {
        let step = &steps(serde_json::json!({"image": "w",
            "env": [{"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                    {"name": "PLAIN", "value": "x"}],
            "podTemplate": {"volumes": [
                {"name": "tls", "secret": {"secretName": "tls"}},
                {"name": "both", "projected": {"sources": [{"secret": {"name": "api-key"}}, {"configMap": {"name": "c"}}]}},
                {"name": "scratch", "emptyDir": {}}]}}))[0];
        let referenced = referenced_secrets(step);
        assert_eq!(
            referenced.iter().map(String::as_str).collect::<Vec<_>>(),
            ["api-key", "db", "tls"]
        );
        let problem = secrets_problem(&referenced, "default", &map(&[])).unwrap();
        assert!(problem.contains("crew.dev/worker-secrets"), "{problem}");
        let partly = map(&[("crew.dev/worker-secrets", "db, tls")]);
        assert!(
            secrets_problem(&referenced, "default", &partly)
                .unwrap()
                .contains("api-key")
        );
        let all = map(&[("crew.dev/worker-secrets", "db,tls,api-key")]);
        assert!(secrets_problem(&referenced, "default", &all).is_none());
    }
}
