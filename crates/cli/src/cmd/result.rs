//! `result`: a step's full result. A result the worker posted is read from its ConfigMap (owned by the execution,
//! checked against the SHA-256 its status records); otherwise it is the termination message the status keeps.

use crate::args::{ResultArgs, ResultFormat};
use crate::cluster::Cluster;
use crate::error::{self, CliError, Exit, Request};
use crate::output::print;
use crew_api::{ResultRef, StepStatus};
use crew_core::lifecycle::results::{RESULT_KEY, sha256_hex};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;

pub async fn run(cluster: &Cluster, args: &ResultArgs) -> Result<Exit, CliError> {
    let cx = cluster.execution(&args.name).await?;
    let ns = cluster.one_namespace()?;
    let status = cx.status.clone().unwrap_or_default();
    let has_result = |s: &&StepStatus| s.result.is_some() || s.result_ref.is_some();
    let step = match &args.step {
        Some(name) => status
            .steps
            .iter()
            .find(|s| &s.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = status.steps.iter().map(|s| s.name.as_str()).collect();
                CliError::Usage(format!(
                    "execution \"{}\" has no step \"{name}\" (steps: {})",
                    args.name,
                    known.join(", ")
                ))
            })?,
        None => status.steps.iter().rev().find(has_result).ok_or_else(|| {
            CliError::Usage(format!("execution \"{}\" has no result yet", args.name))
        })?,
    };
    if !has_result(&step) {
        return Err(CliError::Usage(format!(
            "step \"{}\" of \"{}\" has no result (yet)",
            step.name, args.name
        )));
    }
    let (text, content_type, source) = match &step.result_ref {
        Some(reference) => (
            posted(cluster, ns, &cx, reference).await?,
            reference.content_type.clone(),
            "posted",
        ),
        None => (
            step.result.clone().unwrap_or_default(),
            "text/plain".to_string(),
            "terminationMessage",
        ),
    };
    match args.output {
        ResultFormat::Raw => {
            print(&text)?;
            if !text.ends_with('\n') && crate::output::stdout_is_terminal() {
                print("\n")?;
            }
        }
        ResultFormat::Json => {
            // JSON as JSON: a result posted as JSON, or a termination message that parses as JSON.
            let parsed = (content_type == "application/json" || source == "terminationMessage")
                .then(|| serde_json::from_str(&text).ok())
                .flatten();
            let value = parsed.unwrap_or_else(|| serde_json::Value::String(text.clone()));
            let document = serde_json::json!({
                "execution": args.name,
                "step": step.name,
                "attempt": step.attempt,
                "source": source,
                "contentType": content_type,
                "size": text.len(),
                "sha256": sha256_hex(text.as_bytes()),
                "result": value,
            });
            print(&format!(
                "{}\n",
                serde_json::to_string_pretty(&document).unwrap_or_default()
            ))?;
        }
    }
    Ok(Exit::Ok)
}

/// The result a worker posted, read from the ConfigMap `reference` names: owned by `cx` and matching the SHA-256
/// the status records, else refused (it was changed or replaced).
pub(crate) async fn posted(
    cluster: &Cluster,
    ns: &str,
    cx: &crew_api::CrewExecution,
    reference: &ResultRef,
) -> Result<String, CliError> {
    let request = Request::new("get", "configmaps", Some(ns)).named(&reference.config_map);
    let config_map = cluster
        .api_in::<ConfigMap>(ns)
        .get(&reference.config_map)
        .await
        .map_err(|e| error::api(&request, e))?;
    let uid = cx.uid().unwrap_or_default();
    let owned = config_map.owner_references().iter().any(|o| o.uid == uid);
    let text = config_map
        .data
        .as_ref()
        .and_then(|d| d.get(RESULT_KEY))
        .cloned()
        .unwrap_or_default();
    if !owned || sha256_hex(text.as_bytes()) != reference.sha256 {
        return Err(CliError::Usage(format!(
            "ConfigMap {} does not hold the result the status records (sha256 {}): it was changed or replaced",
            reference.config_map, reference.sha256
        )));
    }
    Ok(text)
}
