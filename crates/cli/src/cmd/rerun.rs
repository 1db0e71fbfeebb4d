//! What `rerun` creates from an execution: its spec (not cancelled, not suspended), its labels except the ones a
//! GitOps tool tracks its own objects by, and a name that is valid whatever the original's length.
//!
//! Annotations are not copied at all, so neither Argo CD's `argocd.argoproj.io/tracking-id` nor
//! `kubectl.kubernetes.io/last-applied-configuration` follow the rerun.

use crew_api::{CrewExecution, ResumeFrom};
use crew_core::lifecycle::names::{generate_name, label_value};
use kube::ResourceExt;
use kube::core::ObjectMeta;
use std::collections::BTreeMap;

/// Label on a rerun, naming the execution it was made from.
pub const RERUN_OF: &str = "crew.dev/rerun-of";

/// Labels a rerun does not copy: with them, the GitOps tool that made the original would take the rerun for one
/// of its own objects it no longer declares, and prune it. Argo CD's instance label under both its default key
/// (`app.kubernetes.io/instance`, also set by Helm charts: dropped all the same, as the CLI cannot see Argo CD's
/// configuration) and the commonly configured one.
pub const TRACKING_LABELS: [&str; 2] =
    ["app.kubernetes.io/instance", "argocd.argoproj.io/instance"];

/// Label prefixes a rerun does not copy: Flux's kustomize- and helm-controller track their objects by every label
/// under these (`kustomize.toolkit.fluxcd.io/name`, `.../namespace`, ...).
pub const TRACKING_LABEL_PREFIXES: [&str; 2] =
    ["kustomize.toolkit.fluxcd.io/", "helm.toolkit.fluxcd.io/"];

/// Whether label `key` is one a GitOps tool tracks its objects by.
pub fn is_tracking_label(key: &str) -> bool {
    TRACKING_LABELS.contains(&key) || TRACKING_LABEL_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// The labels of `cx` a rerun leaves out, sorted.
pub fn tracking_labels(cx: &CrewExecution) -> Vec<&str> {
    cx.labels()
        .keys()
        .map(String::as_str)
        .filter(|k| is_tracking_label(k))
        .collect()
}

/// How to rerun: under which name, and from which step (resuming from the original).
#[derive(Clone, Copy, Debug, Default)]
pub struct Rerun<'a> {
    /// The new execution's name (default: generated from the original's).
    pub name: Option<&'a str>,
    /// Start at this step, taking over the original's steps before it (`spec.resumeFrom`).
    pub from_step: Option<&'a str>,
}

/// A new execution with `cx`'s spec (not cancelled, not suspended) and labels (without the tracking ones), named
/// as `how` says or generated from `cx`'s name, labelled [`RERUN_OF`], resuming from `cx` at `how.from_step`.
pub fn rerun_of(cx: &CrewExecution, how: &Rerun<'_>) -> CrewExecution {
    let name = how.name;
    let original = cx.name_any();
    let mut labels: BTreeMap<String, String> = cx
        .labels()
        .iter()
        .filter(|(k, _)| !is_tracking_label(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(RERUN_OF.into(), label_value(&original));
    let mut spec = cx.spec.clone();
    spec.cancel = false;
    spec.suspend = false;
    spec.resume_from = how.from_step.map(|step| ResumeFrom {
        execution: original.clone(),
        step: step.to_string(),
    });
    let mut rerun = CrewExecution::new("", spec);
    rerun.metadata = ObjectMeta {
        name: name.map(str::to_string),
        generate_name: name.is_none().then(|| generate_name(&original)),
        namespace: cx.namespace(),
        labels: Some(labels),
        ..Default::default()
    };
    rerun
}

#[cfg(test)]
mod tests {
    use super::*;
    use crew_api::CrewExecutionSpec;

    fn execution(
        name: &str,
        labels: &[(&str, &str)],
        annotations: &[(&str, &str)],
    ) -> CrewExecution {
        let mut cx = CrewExecution::new(
            name,
            CrewExecutionSpec {
                cancel: true,
                suspend: true,
                ..Default::default()
            },
        );
        cx.metadata.namespace = Some("team-a".into());
        cx.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        cx.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        cx
    }

    #[test]
    fn a_rerun_leaves_gitops_tracking_behind() {
        let cx = execution(
            "nightly",
            &[
                ("team", "a"),
                ("app.kubernetes.io/instance", "crews"),
                ("argocd.argoproj.io/instance", "crews"),
                ("kustomize.toolkit.fluxcd.io/name", "crews"),
                ("kustomize.toolkit.fluxcd.io/namespace", "flux-system"),
                ("helm.toolkit.fluxcd.io/name", "crews"),
                ("helm.toolkit.fluxcd.io/namespace", "flux-system"),
                ("app.kubernetes.io/name", "report"),
            ],
            &[
                (
                    "argocd.argoproj.io/tracking-id",
                    "crews:crew.dev/CrewExecution:team-a/nightly",
                ),
                ("kubectl.kubernetes.io/last-applied-configuration", "{}"),
            ],
        );
        assert_eq!(
            tracking_labels(&cx),
            [
                "app.kubernetes.io/instance",
                "argocd.argoproj.io/instance",
                "helm.toolkit.fluxcd.io/name",
                "helm.toolkit.fluxcd.io/namespace",
                "kustomize.toolkit.fluxcd.io/name",
                "kustomize.toolkit.fluxcd.io/namespace",
            ]
        );
        let rerun = rerun_of(&cx, &Rerun::default());
        let labels: Vec<(&str, &str)> = rerun
            .labels()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("app.kubernetes.io/name", "report"),
                ("crew.dev/rerun-of", "nightly"),
                ("team", "a")
            ]
        );
        assert!(rerun.annotations().is_empty());
        assert_eq!(rerun.metadata.generate_name.as_deref(), Some("nightly-"));
        assert_eq!(rerun.metadata.name, None);
        assert_eq!(rerun.namespace().as_deref(), Some("team-a"));
        assert!(!rerun.spec.cancel && !rerun.spec.suspend);
        assert_eq!(rerun.spec.resume_from, None);
        let named = rerun_of(
            &cx,
            &Rerun {
                name: Some("again"),
                from_step: Some("write"),
            },
        );
        assert_eq!(named.metadata.name.as_deref(), Some("again"));
        assert_eq!(named.metadata.generate_name, None);
        assert_eq!(
            named.spec.resume_from,
            Some(ResumeFrom {
                execution: "nightly".into(),
                step: "write".into()
            }),
            "a rerun from a step resumes from the original"
        );
    }

    /// A DNS-1123 subdomain: what an execution's name must be.
    fn valid_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|part| {
                !part.is_empty()
                    && part.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && part.ends_with(|c: char| c.is_ascii_alphanumeric())
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
    }

    #[test]
    fn reruns_of_long_names_get_valid_names() {
        // Short names keep today's form.
        assert_eq!(generate_name("nightly"), "nightly-");
        assert_eq!(
            generate_name(&"a".repeat(57)),
            format!("{}-", "a".repeat(57))
        );
        let sixty = format!("{}-{}", "report".repeat(8), "x".repeat(11));
        let dotted = format!("{}.{}", "a".repeat(60), "b-".repeat(40) + "c");
        for original in [
            "a".repeat(58),
            sixty.clone(),
            "x".repeat(253),
            format!("{}-{}", "a".repeat(47), "b".repeat(60)),
            dotted,
        ] {
            assert!(valid_name(&original), "{original}");
            let base = generate_name(&original);
            assert!(base.ends_with('-'), "{base}");
            assert!(
                base.len() <= crew_core::lifecycle::names::MAX_GENERATE_NAME,
                "{base}"
            );
            // What the API server makes of it: the base and 5 random alphanumerics.
            let generated = format!("{base}x7k2p");
            assert!(valid_name(&generated), "{generated}");
            assert!(generated.len() <= 63, "{generated}");
        }
        // Two long names with the same first 58 characters give two bases.
        let one = format!("{}-one", "a".repeat(60));
        let two = format!("{}-two", "a".repeat(60));
        assert_ne!(generate_name(&one), generate_name(&two));
        assert_eq!(generate_name(&sixty), generate_name(&sixty));
    }
}
