//! The worker policy's checks that need the cluster: the ServiceAccount a worker runs as, and the Secrets it lists
//! for workers (`crew_core::lifecycle::worker_policy`). One metadata read of the ServiceAccount per launch, and only
//! when the execution names one or references a Secret; the operator never reads Secrets.

use super::context::Context;
use crate::error::{Error, kube as kube_err};
use crew_api::CrewExecution;
use crew_core::lifecycle::worker_policy::{
    DEFAULT_SERVICE_ACCOUNT, referenced_secrets, secrets_problem,
};
use crew_core::lifecycle::{JobRejection, Launch};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;

/// Why `launch`'s worker may not run as it asks (a refusal of its Job before the create is sent), if it may not.
pub async fn refusal(
    execution: &CrewExecution,
    launch: &Launch,
    ctx: &Context,
    ns: &str,
) -> Result<Option<JobRejection>, Error> {
    let named = execution.spec.service_account_name.as_deref();
    let secrets = referenced_secrets(&launch.step);
    if named.is_none() && secrets.is_empty() {
        return Ok(None);
    }
    let account = named.unwrap_or(DEFAULT_SERVICE_ACCOUNT);
    let refuse = |message: String, permanent: bool| {
        Some(JobRejection {
            job_name: launch.job_name.clone(),
            permanent,
            message,
            policy: true,
        })
    };
    let found = match Api::<ServiceAccount>::namespaced(ctx.client.clone(), ns)
        .get_metadata_opt(account)
        .await
    {
        Ok(found) => found,
        // An answer that names the request's fault (a name that is no valid name, no right to read it): no
        // retry of the reconcile cures it, the retry policy might (the operator's RBAC fixed meanwhile).
        Err(kube::Error::Api(status)) if matches!(status.code, 400 | 403 | 422) => {
            return Ok(refuse(
                format!(
                    "ServiceAccount {account:?} cannot be read to check it is open to workers: {}",
                    status.message
                ),
                status.code != 403,
            ));
        }
        Err(error) => return Err(kube_err("read the worker's ServiceAccount")(error)),
    };
    let Some(found) = found else {
        // It may be created later (a GitOps sync in another order): a refusal the retry policy may cure.
        return Ok(refuse(
            format!("ServiceAccount {account:?} does not exist in namespace {ns}"),
            false,
        ));
    };
    let annotations = found.metadata.annotations.unwrap_or_default();
    if named.is_some()
        && let Some(problem) = ctx
            .settings
            .workers
            .policy
            .service_account_problem(account, &annotations)
    {
        return Ok(refuse(problem, true));
    }
    Ok(secrets_problem(&secrets, account, &annotations).and_then(|problem| refuse(problem, true)))
}
