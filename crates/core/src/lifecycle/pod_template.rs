//! A step's pod template: the execution's `podTemplate` with the step's merged over it (the rules are in
//! [`crew_api::PodTemplate`]'s documentation).

use crew_api::PodTemplate;
use std::collections::BTreeMap;

/// `step` merged over `base`.
pub fn merge(base: Option<&PodTemplate>, step: Option<&PodTemplate>) -> PodTemplate {
    let Some(step) = step else {
        return base.cloned().unwrap_or_default();
    };
    let Some(base) = base else {
        return step.clone();
    };
    PodTemplate {
        labels: merge_maps(&base.labels, &step.labels),
        annotations: merge_maps(&base.annotations, &step.annotations),
        node_selector: merge_maps(&base.node_selector, &step.node_selector),
        tolerations: union_by(&base.tolerations, &step.tolerations, |a, b| a == b),
        affinity: either(&step.affinity, &base.affinity),
        image_pull_secrets: union_by(
            &base.image_pull_secrets,
            &step.image_pull_secrets,
            |a, b| a.name == b.name,
        ),
        priority_class_name: either(&step.priority_class_name, &base.priority_class_name),
        security_context: either(&step.security_context, &base.security_context),
        container_security_context: either(
            &step.container_security_context,
            &base.container_security_context,
        ),
        volumes: union_by(&base.volumes, &step.volumes, |a, b| a.name == b.name),
        volume_mounts: union_by(&base.volume_mounts, &step.volume_mounts, |a, b| {
            a.mount_path == b.mount_path
        }),
        runtime_class_name: either(&step.runtime_class_name, &base.runtime_class_name),
        scheduler_name: either(&step.scheduler_name, &base.scheduler_name),
    }
}

/// The step's value if it sets one, else the execution's.
fn either<T: Clone>(step: &Option<T>, base: &Option<T>) -> Option<T> {
    step.as_ref().or(base.as_ref()).cloned()
}

fn merge_maps(
    base: &Option<BTreeMap<String, String>>,
    step: &Option<BTreeMap<String, String>>,
) -> Option<BTreeMap<String, String>> {
    match (base, step) {
        (None, None) => None,
        _ => {
            let mut merged = base.clone().unwrap_or_default();
            merged.extend(step.clone().unwrap_or_default());
            Some(merged)
        }
    }
}

/// The base's items, each replaced by the step's item that `same` matches, then the step's other items.
fn union_by<T: Clone>(
    base: &Option<Vec<T>>,
    step: &Option<Vec<T>>,
    same: impl Fn(&T, &T) -> bool,
) -> Option<Vec<T>> {
    match (base, step) {
        (None, None) => None,
        _ => {
            let step = step.clone().unwrap_or_default();
            let mut merged: Vec<T> = base
                .iter()
                .flatten()
                .map(|item| {
                    step.iter()
                        .find(|own| same(item, own))
                        .unwrap_or(item)
                        .clone()
                })
                .collect();
            let added: Vec<T> = step
                .iter()
                .filter(|own| !merged.iter().any(|item| same(item, own)))
                .cloned()
                .collect();
            merged.extend(added);
            Some(merged)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        LocalObjectReference, PodSecurityContext, Toleration, Volume, VolumeMount,
    };

    fn map(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn volume(name: &str, path: &str) -> (Volume, VolumeMount) {
        (
            Volume {
                name: name.into(),
                ..Default::default()
            },
            VolumeMount {
                name: name.into(),
                mount_path: path.into(),
                ..Default::default()
            },
        )
    }

    #[test]
    fn the_step_wins_maps_merge_by_key_and_lists_by_identity() {
        let (cache, cache_mount) = volume("cache", "/cache");
        let (scratch, scratch_mount) = volume("scratch", "/scratch");
        let (cache_again, _) = volume("cache", "/ignored");
        let gpu = Toleration {
            key: Some("nvidia.com/gpu".into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        };
        let base = PodTemplate {
            labels: map(&[("team", "a"), ("tier", "batch")]),
            node_selector: map(&[("pool", "general")]),
            image_pull_secrets: Some(vec![LocalObjectReference {
                name: "registry".into(),
            }]),
            priority_class_name: Some("low".into()),
            security_context: Some(PodSecurityContext {
                run_as_user: Some(1000),
                ..Default::default()
            }),
            volumes: Some(vec![cache]),
            volume_mounts: Some(vec![cache_mount]),
            ..Default::default()
        };
        let step = PodTemplate {
            labels: map(&[("tier", "gpu")]),
            node_selector: map(&[("pool", "gpu")]),
            tolerations: Some(vec![gpu.clone()]),
            image_pull_secrets: Some(vec![LocalObjectReference {
                name: "registry".into(),
            }]),
            priority_class_name: Some("high".into()),
            volumes: Some(vec![cache_again.clone(), scratch.clone()]),
            volume_mounts: Some(vec![scratch_mount.clone()]),
            ..Default::default()
        };
        let merged = merge(Some(&base), Some(&step));
        assert_eq!(merged.labels, map(&[("team", "a"), ("tier", "gpu")]));
        assert_eq!(merged.node_selector, map(&[("pool", "gpu")]));
        assert_eq!(merged.tolerations, Some(vec![gpu]));
        assert_eq!(merged.image_pull_secrets.unwrap().len(), 1, "a union");
        assert_eq!(merged.priority_class_name.as_deref(), Some("high"));
        assert_eq!(merged.security_context, base.security_context, "inherited");
        assert_eq!(merged.volumes, Some(vec![cache_again, scratch]));
        assert_eq!(
            merged.volume_mounts.unwrap().len(),
            2,
            "/cache inherited, /scratch added"
        );
        assert_eq!(merge(Some(&base), None), base);
        assert_eq!(merge(None, Some(&step)), step);
        assert_eq!(merge(None, None), PodTemplate::default());
    }
}
