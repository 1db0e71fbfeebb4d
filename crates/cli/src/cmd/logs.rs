//! `logs`: a step attempt's worker log, read through the API server.

use crate::args::LogsArgs;
use crate::cluster::{Cluster, list_all};
use crate::error::{self, CliError, Exit, Request};
use crate::output::{note, print};
use crew_core::build::labels;
use crew_core::build::worker_job::WORKER_CONTAINER;
use crew_core::lifecycle::names::label_value;
use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::{Api, ResourceExt};

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
    let pods: Api<Pod> = cluster.api_in(ns);
    let selector = format!(
        "{}={},{}={},{}={attempt}",
        labels::EXECUTION,
        label_value(&args.name),
        labels::STEP,
        step.name,
        labels::ATTEMPT
    );
    let mut found = list_all(
        &pods,
        ListParams::default().labels(&selector),
        Request::new("list", "pods", Some(ns)),
    )
    .await?;
    found.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let Some(pod) = found.pop() else {
        let kept = step
            .result
            .as_deref()
            .map(|r| format!("\nIts result (the termination message) is kept in status:\n{r}"))
            .unwrap_or_default();
        return Err(CliError::Usage(format!(
            "no pod left for step \"{}\" attempt {attempt} of \"{}\": it was removed with its Job, or never created{kept}",
            step.name, args.name
        )));
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
