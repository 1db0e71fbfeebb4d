//! Which executions and events a sink wants: its label selector over the execution's labels (Kubernetes'
//! semantics: every `matchLabels` pair and every `matchExpressions` requirement must hold; an empty selector
//! matches everything) and its list of types (empty: all).

use crew_api::sink::{CrewSinkSpec, SinkEventType};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

/// Whether `selector` matches `labels` (None matches everything).
pub fn matches(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector else {
        return true;
    };
    let pairs = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    let requirements = selector.match_expressions.iter().flatten().all(|req| {
        let value = labels.get(&req.key);
        let values = req.values.as_deref().unwrap_or_default();
        match req.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            // An operator the API server would not have accepted: matches nothing.
            _ => false,
        }
    });
    pairs && requirements
}

/// Whether a sink with `spec` wants events of `kind` about an execution labelled `labels`.
pub fn wants(spec: &CrewSinkSpec, kind: SinkEventType, labels: &BTreeMap<String, String>) -> bool {
    (spec.types.is_empty() || spec.types.contains(&kind)) && matches(spec.selector.as_ref(), labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_match_as_kubernetes_does() {
        let team_a = labels(&[("team", "a"), ("tier", "gold")]);
        assert!(matches(None, &team_a));
        assert!(matches(Some(&LabelSelector::default()), &team_a));
        let by_label = LabelSelector {
            match_labels: Some(labels(&[("team", "a")])),
            ..Default::default()
        };
        assert!(matches(Some(&by_label), &team_a));
        assert!(!matches(Some(&by_label), &labels(&[("team", "b")])));
        let requirement = |key: &str, operator: &str, values: &[&str]| LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: key.into(),
                operator: operator.into(),
                values: Some(values.iter().map(|v| v.to_string()).collect()),
            }]),
            ..Default::default()
        };
        assert!(matches(
            Some(&requirement("tier", "In", &["gold", "silver"])),
            &team_a
        ));
        assert!(!matches(
            Some(&requirement("tier", "NotIn", &["gold"])),
            &team_a
        ));
        assert!(matches(
            Some(&requirement("tier", "NotIn", &["gold"])),
            &labels(&[])
        ));
        assert!(matches(Some(&requirement("team", "Exists", &[])), &team_a));
        assert!(!matches(
            Some(&requirement("team", "DoesNotExist", &[])),
            &team_a
        ));
        assert!(!matches(Some(&requirement("team", "Bogus", &[])), &team_a));
    }
}
