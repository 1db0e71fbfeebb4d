//! Shapes a worker pod by its step's pod template, over the Pod Security Standard `restricted` defaults.

use crew_api::PodTemplate;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, PodSecurityContext, PodSpec, SeccompProfile, SecurityContext,
};
use std::collections::BTreeMap;

/// The user the worker runs as when the template names none (the distroless `nonroot` user): images built to run
/// as root (busybox, python, ...) then start under `runAsNonRoot` instead of failing with
/// `CreateContainerConfigError`, and images naming a non-numeric user need no numeric one.
pub const DEFAULT_USER: i64 = 65532;

/// The pod-level security context: the template's, with `runAsNonRoot: true`, user and group
/// [`DEFAULT_USER`] and the `RuntimeDefault` seccomp profile where it leaves them unset.
pub fn pod_security_context(template: &PodTemplate) -> PodSecurityContext {
    let mut context = template.security_context.clone().unwrap_or_default();
    let non_root = *context.run_as_non_root.get_or_insert(true);
    if non_root && context.run_as_user.is_none() {
        context.run_as_user = Some(DEFAULT_USER);
        context.run_as_group.get_or_insert(DEFAULT_USER);
    }
    context.seccomp_profile.get_or_insert_with(runtime_default);
    context
}

/// The worker container's security context: the template's, with `allowPrivilegeEscalation: false` and every
/// capability dropped where it leaves them unset.
pub fn container_security_context(template: &PodTemplate) -> SecurityContext {
    let mut context = template
        .container_security_context
        .clone()
        .unwrap_or_default();
    context.allow_privilege_escalation.get_or_insert(false);
    context.capabilities.get_or_insert_with(|| Capabilities {
        drop: Some(vec!["ALL".to_string()]),
        add: None,
    });
    context
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_string(),
        localhost_profile: None,
    }
}

/// Applies `template` to the worker pod: scheduling, pull secrets, security, extra volumes and mounts (after the
/// operator's own, which the API schema keeps them from replacing).
pub fn apply(template: &PodTemplate, pod: &mut PodSpec, worker: &mut Container) {
    pod.node_selector = template.node_selector.clone().filter(|m| !m.is_empty());
    pod.tolerations = template.tolerations.clone().filter(|t| !t.is_empty());
    pod.affinity = template.affinity.clone();
    pod.image_pull_secrets = template
        .image_pull_secrets
        .clone()
        .filter(|s| !s.is_empty());
    pod.priority_class_name = template.priority_class_name.clone();
    pod.runtime_class_name = template.runtime_class_name.clone();
    pod.scheduler_name = template.scheduler_name.clone();
    pod.security_context = Some(pod_security_context(template));
    worker.security_context = Some(container_security_context(template));
    pod.volumes
        .get_or_insert_with(Vec::new)
        .extend(template.volumes.iter().flatten().cloned());
    worker
        .volume_mounts
        .get_or_insert_with(Vec::new)
        .extend(template.volume_mounts.iter().flatten().cloned());
}

/// The pod's labels: the template's, then the operator's (which win).
pub fn labels(
    template: &PodTemplate,
    operator: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut labels = template.labels.clone().unwrap_or_default();
    labels.extend(operator.clone());
    labels
}

/// The pod's annotations: the template's, then the step's `podAnnotations` (which win).
pub fn annotations(
    template: &PodTemplate,
    pod_annotations: &BTreeMap<String, String>,
) -> Option<BTreeMap<String, String>> {
    let mut annotations = template.annotations.clone().unwrap_or_default();
    annotations.extend(pod_annotations.clone());
    Some(annotations).filter(|a| !a.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restricted_unless_the_template_says_otherwise() {
        let pod = pod_security_context(&PodTemplate::default());
        assert_eq!(pod.run_as_non_root, Some(true));
        assert_eq!(
            (pod.run_as_user, pod.run_as_group),
            (Some(DEFAULT_USER), Some(DEFAULT_USER))
        );
        assert_eq!(pod.seccomp_profile.unwrap().type_, "RuntimeDefault");
        let container = container_security_context(&PodTemplate::default());
        assert_eq!(container.allow_privilege_escalation, Some(false));
        assert_eq!(
            container.capabilities.unwrap().drop,
            Some(vec!["ALL".to_string()])
        );
        let loosened = PodTemplate {
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(false),
                run_as_user: Some(0),
                ..Default::default()
            }),
            container_security_context: Some(SecurityContext {
                capabilities: Some(Capabilities {
                    add: Some(vec!["NET_ADMIN".into()]),
                    drop: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let pod = pod_security_context(&loosened);
        assert_eq!(
            (pod.run_as_non_root, pod.run_as_user),
            (Some(false), Some(0)),
            "the template wins"
        );
        assert!(
            pod.seccomp_profile.is_some(),
            "fields it leaves unset keep the default"
        );
        let container = container_security_context(&loosened);
        assert_eq!(
            container.capabilities.unwrap().add,
            Some(vec!["NET_ADMIN".to_string()])
        );
        assert_eq!(container.allow_privilege_escalation, Some(false));
    }

    #[test]
    fn operator_labels_win_and_pod_annotations_win() {
        let template = PodTemplate {
            labels: Some(
                [("crew.dev/step", "forged"), ("team", "a")]
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .into(),
            ),
            annotations: Some([("note".to_string(), "template".to_string())].into()),
            ..Default::default()
        };
        let operator = [("crew.dev/step".to_string(), "plan".to_string())].into();
        let labels = labels(&template, &operator);
        assert_eq!(labels["crew.dev/step"], "plan");
        assert_eq!(labels["team"], "a");
        let annotations = annotations(
            &template,
            &[("note".to_string(), "step".to_string())].into(),
        )
        .unwrap();
        assert_eq!(annotations["note"], "step");
    }
}
