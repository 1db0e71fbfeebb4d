//! Pure builders: turn the core's decisions into Kubernetes objects and patch bodies. No client, no clock.

pub mod config_map;
pub mod labels;
pub mod pod_template;
pub mod progress_token;
pub mod status_patch;
pub mod worker_job;

use crew_api::CrewExecution;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube_core::Resource;

/// Why an object could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The execution has no UID or namespace yet (it was never stored by the API server).
    #[error("the execution has no {0}")]
    MissingMetadata(&'static str),
    /// `spec.crew` / `spec.inputs` could not be serialised.
    #[error("cannot serialise {0}: {1}")]
    Serialise(&'static str, serde_json::Error),
}

/// The controller owner reference pointing at `execution` (garbage collection deletes the child with it).
pub fn owner_reference(execution: &CrewExecution) -> Result<OwnerReference, BuildError> {
    let mut owner = execution
        .controller_owner_ref(&())
        .ok_or(BuildError::MissingMetadata("uid"))?;
    owner.block_owner_deletion = Some(true);
    Ok(owner)
}

/// Namespace of `execution`.
pub fn namespace(execution: &CrewExecution) -> Result<String, BuildError> {
    execution
        .metadata
        .namespace
        .clone()
        .ok_or(BuildError::MissingMetadata("namespace"))
}
