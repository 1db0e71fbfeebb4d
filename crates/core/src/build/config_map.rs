//! The ConfigMap that hands `spec.crew` and `spec.inputs` to every worker as files.

use super::{BuildError, labels, namespace, owner_reference};
use crate::lifecycle::names::config_map_name;
use crew_api::CrewExecution;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

/// File name of the crew definition inside the mount.
pub const CREW_FILE: &str = "crew.json";
/// File name of the inputs inside the mount.
pub const INPUTS_FILE: &str = "inputs.json";

/// The ConfigMap with `crew.json` and `inputs.json` (`{}` for an unset field), owned by the execution.
pub fn crew_config_map(execution: &CrewExecution) -> Result<ConfigMap, BuildError> {
    let name = execution.metadata.name.clone().unwrap_or_default();
    let empty = serde_json::Value::Object(Default::default());
    let crew = execution.spec.crew.as_ref().unwrap_or(&empty);
    let inputs = execution.spec.inputs.as_ref().unwrap_or(&empty);
    let data = BTreeMap::from([
        (
            CREW_FILE.to_string(),
            serde_json::to_string(crew).map_err(|e| BuildError::Serialise("spec.crew", e))?,
        ),
        (
            INPUTS_FILE.to_string(),
            serde_json::to_string(inputs).map_err(|e| BuildError::Serialise("spec.inputs", e))?,
        ),
    ]);
    Ok(ConfigMap {
        metadata: ObjectMeta {
            name: Some(config_map_name(
                &name,
                execution.metadata.uid.as_deref().unwrap_or_default(),
            )),
            namespace: Some(namespace(execution)?),
            labels: Some(labels::owned_by(&name)),
            owner_references: Some(vec![owner_reference(execution)?]),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    })
}
