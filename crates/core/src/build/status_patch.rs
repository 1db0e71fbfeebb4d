//! The server-side apply body of a status write.

use crew_api::{CrewExecution, CrewExecutionStatus};
use kube_core::Resource;
use serde_json::{Value, json};

/// Apply body for the status subresource. With `resource_version`, the write only succeeds if the object is
/// unchanged since it was read (a write computed from a stale view fails with 409 Conflict instead of regressing
/// status).
pub fn status_apply_body(status: &CrewExecutionStatus, resource_version: Option<&str>) -> Value {
    let mut metadata = json!({});
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    json!({
        "apiVersion": CrewExecution::api_version(&()),
        "kind": CrewExecution::kind(&()),
        "metadata": metadata,
        "status": status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crew_api::Phase;

    #[test]
    fn body_carries_type_status_and_precondition() {
        let status = CrewExecutionStatus {
            phase: Some(Phase::Running),
            ..Default::default()
        };
        let body = status_apply_body(&status, Some("42"));
        assert_eq!(body["apiVersion"], "crew.dev/v1alpha1");
        assert_eq!(body["kind"], "CrewExecution");
        assert_eq!(body["metadata"]["resourceVersion"], "42");
        assert_eq!(body["status"]["phase"], "Running");
        assert!(body.get("spec").is_none(), "never write spec");
        assert!(
            status_apply_body(&status, None)["metadata"]
                .get("resourceVersion")
                .is_none()
        );
    }
}
