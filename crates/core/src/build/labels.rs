//! Labels and annotations the operator puts on what it creates.

use crate::lifecycle::names::label_value;
use std::collections::BTreeMap;

/// Label naming the execution (its name, shortened with a hash past 63 characters).
pub const EXECUTION: &str = "crew.dev/execution";
/// Label naming the step.
pub const STEP: &str = "crew.dev/step";
/// Label carrying the attempt number.
pub const ATTEMPT: &str = "crew.dev/attempt";
/// Standard `app.kubernetes.io/managed-by` label.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY`].
pub const MANAGER: &str = "crew-operator";

/// Labels of everything owned by `execution`.
pub fn owned_by(execution: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (EXECUTION.to_string(), label_value(execution)),
        (MANAGED_BY.to_string(), MANAGER.to_string()),
    ])
}

/// Labels of a step attempt's Job and pods.
pub fn step_attempt(execution: &str, step: &str, attempt: u32) -> BTreeMap<String, String> {
    let mut labels = owned_by(execution);
    labels.insert(STEP.to_string(), step.to_string());
    labels.insert(ATTEMPT.to_string(), attempt.to_string());
    labels
}
