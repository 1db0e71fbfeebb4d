//! Keeping a step result a worker posted: its body into the step's result ConfigMap (owned by the execution), then
//! its description onto the attempt's Job, where the Jobs watch shows it to every reconcile (and to the next
//! leader); and sharing it with a run that resumes from its execution. `crew_core::lifecycle::results` says where
//! results live and why.

use crate::controller::context::Context;
use crate::error::Error;
use crate::metrics::WriteKind;
use crew_api::CrewExecution;
use crew_core::build::labels;
use crew_core::lifecycle::results::{
    ContentType, PostedResult, RESULT_KEY, RESULT_LABEL, result_config_map_name,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use std::collections::BTreeMap;

/// The step's result ConfigMap holding `posted`'s `body`.
fn config_map(
    execution: &CrewExecution,
    step: &str,
    posted: &PostedResult,
    body: &str,
) -> Result<ConfigMap, Error> {
    let name = execution.name_any();
    let mut object_labels = labels::owned_by(&name);
    object_labels.insert(RESULT_LABEL.to_string(), "true".to_string());
    object_labels.insert(labels::STEP.to_string(), step.to_string());
    Ok(ConfigMap {
        metadata: ObjectMeta {
            name: Some(posted.config_map.clone()),
            namespace: execution.namespace(),
            labels: Some(object_labels),
            annotations: Some(posted.annotations()),
            owner_references: Some(vec![crew_core::build::owner_reference(execution)?]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(RESULT_KEY.to_string(), body.to_string())])),
        ..Default::default()
    })
}

/// Keeps `body`, posted by the worker of Job `job` (`step`'s attempt `attempt` of `execution`): one server-side
/// apply of the step's result ConfigMap (created, or replacing an earlier post), then one merge patch of the Job's
/// annotations. Two writes per post; a step whose worker posts nothing costs none.
pub async fn store(
    ctx: &Context,
    execution: &CrewExecution,
    job: &str,
    (step, attempt): (&str, u32),
    body: &str,
    kind: ContentType,
) -> Result<PostedResult, Error> {
    let namespace = execution.namespace().unwrap_or_default();
    let name = result_config_map_name(
        &execution.name_any(),
        &execution.uid().unwrap_or_default(),
        step,
    );
    let posted = PostedResult::of(body, kind, step, attempt, name.clone());
    let object = config_map(execution, step, &posted, body)?;
    crate::controller::act::still_leading(ctx, "result ConfigMap apply")?;
    Api::<ConfigMap>::namespaced(ctx.client.clone(), &namespace)
        .patch(
            &name,
            &PatchParams::apply(crew_api::FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(|source| Error::Kube {
            action: "apply a result ConfigMap",
            source,
        })?;
    ctx.count_write(WriteKind::Result);
    let annotations = serde_json::json!({"metadata": {"annotations": posted.annotations()}});
    Api::<Job>::namespaced(ctx.client.clone(), &namespace)
        .patch(job, &PatchParams::default(), &Patch::Merge(&annotations))
        .await
        .map_err(|source| Error::Kube {
            action: "annotate a Job with its result",
            source,
        })?;
    ctx.count_write(WriteKind::Result);
    Ok(posted)
}

/// Makes `execution` a second owner of `config_map` (a result of the execution it resumes from): a strategic merge
/// of the owner references by UID, so adding it again changes nothing and the first owner stays. Deleting the
/// first execution later then leaves the result to this one.
pub async fn adopt(
    ctx: &Context,
    execution: &CrewExecution,
    config_map: &str,
) -> Result<(), Error> {
    let mut owner = crew_core::build::owner_reference(execution)?;
    owner.controller = Some(false);
    let patch = serde_json::json!({"metadata": {"ownerReferences": [owner]}});
    Api::<ConfigMap>::namespaced(
        ctx.client.clone(),
        &execution.namespace().unwrap_or_default(),
    )
    .patch(
        config_map,
        &PatchParams::default(),
        &Patch::Strategic(&patch),
    )
    .await
    .map_err(|source| Error::Kube {
        action: "own a resumed-from result ConfigMap",
        source,
    })?;
    ctx.count_write(WriteKind::Result);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_map_is_owned_labelled_and_described() {
        let mut cx = CrewExecution::new("report", Default::default());
        cx.metadata.namespace = Some("team".into());
        cx.metadata.uid = Some("uid-1".into());
        let posted = PostedResult::of("{}", ContentType::Json, "research", 1, "cm".into());
        let object = config_map(&cx, "research", &posted, "{}").unwrap();
        assert_eq!(object.metadata.name.as_deref(), Some("cm"));
        assert_eq!(object.metadata.namespace.as_deref(), Some("team"));
        let labels = object.metadata.labels.unwrap();
        assert_eq!(labels[RESULT_LABEL], "true");
        assert_eq!(labels[labels::STEP], "research");
        assert_eq!(labels[labels::EXECUTION], "report");
        assert_eq!(object.metadata.owner_references.unwrap()[0].uid, "uid-1");
        assert_eq!(object.data.unwrap()[RESULT_KEY], "{}");
        assert_eq!(object.metadata.annotations, Some(posted.annotations()));
    }
}
