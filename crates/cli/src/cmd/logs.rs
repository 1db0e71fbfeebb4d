//! `logs`: a step attempt's worker log, read through the API server.
//!
//! The pod is found through the attempt's Job, by UID: the Job must belong to this execution (an earlier
//! execution of the same name may leave a Job of the same name awaiting garbage collection), and the pod to that
//! Job. Labels alone would show a predecessor's pod while the current attempt has none yet.

use crate::args::LogsArgs;
use crate::cluster::{Cluster, list_all};
use crate::error::{self, CliError, Exit, Request};
use crate::output::{note, print};
use crew_core::build::labels;
use crew_core::build::worker_job::WORKER_CONTAINER;
use crew_core::lifecycle::names::{job_name, label_value};
use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, LogParams};
use kube::{Api, ResourceExt};

/// Labels the Job controller puts on its pods with the Job's UID (the second one before Kubernetes 1.27).
const CONTROLLER_UID_LABELS: [&str; 2] = ["batch.kubernetes.io/controller-uid", "controller-uid"];

pub async fn run(cluster: &Cluster, args: &LogsArgs) -> Result<Exit, CliError> {
    let cx = cluster.execution(&args.name).await?;
    let ns = cluster.one_namespace()?;
    let status = cx.status.clone().unwrap_or_default();
    let step = match &args.step {
        Some(step) => status
            .steps
            .iter()
            .find(|s| &s.name == step)
            .ok_or_else(|| {
                let known: Vec<&str> = status.steps.iter().map(|s| s.name.as_str()).collect();
                CliError::Usage(format!(
                    "execution \"{}\" has no step \"{step}\" (steps: {})",
                    args.name,
                    known.join(", ")
                ))
            })?,
        None => status
            .progress
            .as_ref()
            .and_then(|p| p.current_step.as_ref())
            .and_then(|current| status.steps.iter().find(|s| &s.name == current))
            .or_else(|| status.steps.iter().rev().find(|s| s.attempt > 0))
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "execution \"{}\" has not started a step yet",
                    args.name
                ))
            })?,
    };
    let attempt = args.attempt.unwrap_or(step.attempt);
    if attempt == 0 || attempt > step.attempt {
        return Err(CliError::Usage(format!(
            "step \"{}\" has no attempt {attempt} (latest: {})",
            step.name, step.attempt
        )));
    }
    // The attempt's Job: the name status records for the latest attempt, the derived one for an earlier attempt.
    let job_name = match &step.job_name {
        Some(recorded) if attempt == step.attempt => recorded.clone(),
        _ => job_name(&args.name, &step.name, attempt),
    };
    let no_pod = || {
        let kept = step
            .result
            .as_deref()
            .map(|r| format!("\nIts result (the termination message) is kept in status:\n{r}"))
            .unwrap_or_default();
        CliError::Usage(format!(
            "no pod left for step \"{}\" attempt {attempt} of \"{}\": it was removed with its Job, or never created{kept}",
            step.name, args.name
        ))
    };
    let job = cluster
        .api_in::<Job>(ns)
        .get_opt(&job_name)
        .await
        .map_err(|e| error::api(&Request::new("get", "jobs", Some(ns)).named(&job_name), e))?
        .ok_or_else(no_pod)?;
    let execution_uid = cx.uid().unwrap_or_default();
    if !owned_by(&job.metadata, &execution_uid) {
        return Err(CliError::Usage(format!(
            "Job {job_name} belongs to an earlier execution named \"{}\" (it awaits garbage collection): \
             step \"{}\" attempt {attempt} of this one has no Job yet",
            args.name, step.name
        )));
    }
    let job_uid = job.uid().unwrap_or_default();
    let pods: Api<Pod> = cluster.api_in(ns);
    let selector = format!(
        "{}={},{}={},{}={attempt}",
        labels::EXECUTION,
        label_value(&args.name),
        labels::STEP,
        step.name,
        labels::ATTEMPT
    );
    let listed = list_all(
        &pods,
        ListParams::default().labels(&selector),
        Request::new("list", "pods", Some(ns)),
    )
    .await?;
    let mut found = pods_of_job(listed, &job_uid);
    found.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let Some(pod) = found.pop() else {
        return Err(no_pod());
    };
    let pod_name = pod.name_any();
    let params = LogParams {
        container: Some(WORKER_CONTAINER.into()),
        follow: args.follow,
        ..Default::default()
    };
    let explain = |e: kube::Error| -> CliError {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| "no node yet".into());
        match error::status_code(&e) {
            Some(code) if code != 403 => CliError::Usage(format!(
                "the API server could not fetch the log of pod {pod_name} (node {node}): {}\n\
                 (the pod may not have started, or its node has no kubelet that serves logs)",
                match &e {
                    kube::Error::Api(s) => s.message.clone(),
                    other => other.to_string(),
                }
            )),
            _ => error::api(
                &Request::new("get", "pods/log", Some(ns)).named(&pod_name),
                e,
            ),
        }
    };
    if args.follow {
        let stream = pods.log_stream(&pod_name, &params).await.map_err(explain)?;
        let mut lines = stream.lines();
        while let Some(line) = lines.try_next().await? {
            print(&format!("{line}\n"))?;
        }
    } else {
        let text = pods.logs(&pod_name, &params).await.map_err(explain)?;
        print(&text)?;
        if found.len() > 1 {
            note(&format!(
                "({} older pods of this attempt not shown)\n",
                found.len()
            ));
        }
    }
    Ok(Exit::Ok)
}

/// Whether the object of `meta` is owned by the object with UID `owner` (never, for an empty UID).
fn owned_by(meta: &ObjectMeta, owner: &str) -> bool {
    !owner.is_empty()
        && meta
            .owner_references
            .iter()
            .flatten()
            .any(|reference| reference.uid == owner)
}

/// The pods of the Job with UID `job`: owned by it, or labelled with its UID by the Job controller.
fn pods_of_job(pods: Vec<Pod>, job: &str) -> Vec<Pod> {
    pods.into_iter()
        .filter(|pod| {
            owned_by(&pod.metadata, job)
                || CONTROLLER_UID_LABELS
                    .iter()
                    .any(|label| pod.labels().get(*label).map(String::as_str) == Some(job))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn pod(name: &str, owner: Option<&str>, label: Option<(&str, &str)>) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.owner_references = owner.map(|uid| {
            vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "Job".into(),
                name: "nightly-a-1".into(),
                uid: uid.into(),
                controller: Some(true),
                ..Default::default()
            }]
        });
        pod.metadata.labels =
            label.map(|(k, v)| [(k.to_string(), v.to_string())].into_iter().collect());
        pod
    }

    #[test]
    fn only_the_current_jobs_pods_are_read() {
        let pods = vec![
            pod("predecessor", Some("job-old"), None),
            pod("current", Some("job-new"), None),
            pod(
                "labelled",
                None,
                Some(("batch.kubernetes.io/controller-uid", "job-new")),
            ),
            pod("legacy", None, Some(("controller-uid", "job-new"))),
            pod("labelled-old", None, Some(("controller-uid", "job-old"))),
            pod("orphan", None, None),
        ];
        let names: Vec<String> = pods_of_job(pods, "job-new")
            .iter()
            .map(|p| p.name_any())
            .collect();
        assert_eq!(names, ["current", "labelled", "legacy"]);
    }

    #[test]
    fn a_job_of_an_earlier_execution_is_not_this_ones() {
        let job = pod("nightly-a-1", Some("execution-new"), None).metadata;
        assert!(owned_by(&job, "execution-new"));
        assert!(!owned_by(&job, "execution-old"));
        assert!(!owned_by(&job, ""));
        assert!(!owned_by(&ObjectMeta::default(), "execution-new"));
    }
}
