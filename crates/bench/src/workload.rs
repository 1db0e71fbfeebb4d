//! What the benchmark creates: names, the CrewExecutions of the operator run and the bare Jobs of the baseline,
//! built with the operator's own Job builder so that both runs create the same pods.

use crew_api::CrewExecution;
use crew_core::build::BuildError;
use crew_core::build::worker_job::worker_job;
use crew_core::lifecycle::{Launch, names, resolve_steps};
use crew_testkit::POD_DURATION_ANNOTATION;
use k8s_openapi::api::batch::v1::Job;
use serde_json::json;

/// Prefix of every execution (and so every Job) name.
pub const PREFIX: &str = "bench-";
/// Worker image (never pulled: KWOK plays the kubelet).
pub const IMAGE: &str = "busybox:1.36";

/// Name of chain `i` (the execution, and the prefix of its Jobs).
pub fn execution_name(i: usize) -> String {
    format!("{PREFIX}{i:06}")
}

/// Namespace of chain `i`: round-robin over `namespaces`.
pub fn namespace_of(i: usize, namespaces: usize) -> String {
    namespace_name(i % namespaces.max(1))
}

/// Name of the `k`-th benchmark namespace.
pub fn namespace_name(k: usize) -> String {
    format!("bench-ns-{k:02}")
}

/// Name of step `k` (from 0).
pub fn step_name(k: usize) -> String {
    format!("s{}", k + 1)
}

/// Name of the first attempt's Job of step `k` of chain `i` (the operator's naming).
pub fn job_name(i: usize, k: usize) -> String {
    names::job_name(&execution_name(i), &step_name(k), 1)
}

/// Chain and step of a Job named by [`job_name`] (attempt 1).
pub fn parse_job_name(name: &str) -> Option<(usize, usize)> {
    let rest = name.strip_prefix(PREFIX)?;
    let mut parts = rest.split('-');
    let chain = parts.next()?.parse().ok()?;
    let step: usize = parts.next()?.strip_prefix('s')?.parse().ok()?;
    let attempt = parts.next()?;
    (attempt == "1" && parts.next().is_none() && step >= 1).then_some((chain, step - 1))
}

/// Chain of an execution named by [`execution_name`].
pub fn parse_execution_name(name: &str) -> Option<usize> {
    name.strip_prefix(PREFIX)?.parse().ok()
}

/// CrewExecution `i` with `steps` steps in `namespace`: one image, a trivial command, pods that finish at once, no
/// crew/inputs (so no ConfigMap), no retries; with `job_cleanup`, `jobCleanup: OnStepCompletion`.
pub fn execution(
    i: usize,
    namespace: &str,
    steps: usize,
    job_cleanup: bool,
) -> Result<CrewExecution, serde_json::Error> {
    let steps: Vec<_> = (0..steps).map(|k| json!({"name": step_name(k)})).collect();
    let mut spec = json!({
        "image": IMAGE,
        "command": ["sh", "-c", "true"],
        "podAnnotations": {POD_DURATION_ANNOTATION: "0"},
        "steps": steps,
    });
    if job_cleanup {
        spec["jobCleanup"] = json!("OnStepCompletion");
    }
    serde_json::from_value(json!({
        "apiVersion": "crew.dev/v1alpha1",
        "kind": "CrewExecution",
        "metadata": {"name": execution_name(i), "namespace": namespace},
        "spec": spec,
    }))
}

/// Why a baseline Job could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// The execution manifest did not decode.
    #[error("execution manifest: {0}")]
    Manifest(#[from] serde_json::Error),
    /// The step list is invalid.
    #[error("steps: {0}")]
    Steps(String),
    /// The step index is out of range.
    #[error("no step {0}")]
    NoStep(usize),
    /// The operator's builder refused.
    #[error("build: {0}")]
    Build(#[from] BuildError),
}

/// The bare Job of step `k` of chain `i` for the baseline: exactly what the operator would create for the same
/// execution (labels, `backoffLimit: 0`, `restartPolicy: Never`, the `worker` container and its environment,
/// the optional `/crew` ConfigMap volume), minus the owner reference (there is no execution).
pub fn baseline_job(
    i: usize,
    namespace: &str,
    steps: usize,
    k: usize,
) -> Result<Job, WorkloadError> {
    let mut cx = execution(i, namespace, steps, false)?;
    // The builder needs a stored execution's UID for the owner reference, which is removed below.
    cx.metadata.uid = Some("baseline-has-no-owner".to_string());
    let step = resolve_steps(&cx.spec)
        .map_err(|e| WorkloadError::Steps(e.0))?
        .into_iter()
        .nth(k)
        .ok_or(WorkloadError::NoStep(k))?;
    let launch = Launch {
        job_name: job_name(i, k),
        step,
        attempt: 1,
        results: Vec::new(),
    };
    let mut job = worker_job(&cx, &launch)?;
    job.metadata.owner_references = None;
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(execution_name(42), "bench-000042");
        assert_eq!(job_name(42, 2), "bench-000042-s3-1");
        assert_eq!(parse_job_name("bench-000042-s3-1"), Some((42, 2)));
        assert_eq!(parse_job_name("bench-000042-s3-2"), None);
        assert_eq!(parse_job_name("other-1-s1-1"), None);
        assert_eq!(parse_execution_name("bench-000042"), Some(42));
        assert_eq!(namespace_of(13, 10), "bench-ns-03");
    }

    #[test]
    fn baseline_job_is_the_operators_job_without_owner() {
        let job = baseline_job(7, "bench-ns-07", 3, 1).unwrap();
        assert_eq!(job.metadata.name.as_deref(), Some("bench-000007-s2-1"));
        assert!(job.metadata.owner_references.is_none());
        let labels = job.metadata.labels.clone().unwrap();
        assert_eq!(labels["crew.dev/execution"], "bench-000007");
        assert_eq!(labels["crew.dev/step"], "s2");
        assert_eq!(labels["crew.dev/attempt"], "1");
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.containers[0].name, "worker");
        assert_eq!(pod.containers[0].image.as_deref(), Some(IMAGE));
        assert!(baseline_job(7, "bench-ns-07", 3, 3).is_err());
    }

    #[test]
    fn execution_has_the_requested_steps_and_no_crew() {
        let cx = execution(1, "ns", 3, false).unwrap();
        assert_eq!(cx.spec.steps.len(), 3);
        assert!(cx.spec.crew.is_none() && cx.spec.inputs.is_none());
        assert_eq!(cx.spec.job_cleanup, None);
        let tidy = execution(1, "ns", 3, true).unwrap();
        assert_eq!(
            tidy.spec.job_cleanup,
            Some(crew_api::JobCleanup::OnStepCompletion)
        );
        assert_eq!(cx.metadata.namespace.as_deref(), Some("ns"));
    }
}
