//! Why the Job controller could not create a Job's pod: its latest `FailedCreate` Event (a quota, an admission
//! policy, a missing ServiceAccount). Read only for a Job that has had no pod for a while, once per attempt.

use super::context::Context;
use crate::error::{Error, kube as kube_err};
use crew_core::lifecycle::StartBlock;
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::ListParams;

/// The latest `FailedCreate` Event about the Job `job` in `ns`, as a start block (None: none recorded).
pub async fn pod_refusal(ctx: &Context, ns: &str, job: &str) -> Result<Option<StartBlock>, Error> {
    let events: Api<Event> = Api::namespaced(ctx.client.clone(), ns);
    let selector = format!("involvedObject.kind=Job,involvedObject.name={job},reason=FailedCreate");
    let listed = events
        .list(&ListParams::default().fields(&selector))
        .await
        .map_err(kube_err("read the Job controller's Events"))?;
    Ok(listed
        .items
        .into_iter()
        .max_by_key(|event| {
            event
                .last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or(event.event_time.as_ref().map(|t| t.0))
        })
        .map(|event| StartBlock {
            reason: "FailedCreate".to_string(),
            message: event.message.unwrap_or_default(),
        }))
}
