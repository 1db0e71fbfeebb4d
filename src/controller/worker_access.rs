//! The worker policy's read of the cluster: the ServiceAccount a worker will run as, read (metadata only) when a
//! plan asks for it before a launch (`crew_core::lifecycle::Read::ServiceAccount`); the core decides on what it
//! finds. The operator never reads Secrets.

use super::context::Context;
use crate::error::{Error, kube as kube_err};
use crew_core::lifecycle::worker_policy::ServiceAccountFact;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;

/// What the API server has of ServiceAccount `name` in `namespace`.
pub async fn read_service_account(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<ServiceAccountFact, Error> {
    let found = match Api::<ServiceAccount>::namespaced(ctx.client.clone(), namespace)
        .get_metadata_opt(name)
        .await
    {
        Ok(found) => found,
        // An answer that names the request's fault (a name that is no valid name, no right to read it): no
        // retry of the reconcile cures it, the retry policy might (the operator's RBAC fixed meanwhile).
        Err(kube::Error::Api(status)) if matches!(status.code, 400 | 403 | 422) => {
            return Ok(ServiceAccountFact::Unreadable {
                name: name.to_string(),
                message: status.message,
                permanent: status.code != 403,
            });
        }
        // A name the request cannot even be built with (empty, a space, a character no URL takes): no retry of
        // any kind cures it.
        Err(kube::Error::BuildRequest(error)) => {
            return Ok(ServiceAccountFact::Unreadable {
                name: name.to_string(),
                message: format!("it is not a name the API server can be asked about ({error})"),
                permanent: true,
            });
        }
        Err(error) => return Err(kube_err("read the worker's ServiceAccount")(error)),
    };
    Ok(match found {
        Some(found) => ServiceAccountFact::Found {
            name: name.to_string(),
            annotations: found.metadata.annotations.unwrap_or_default(),
        },
        None => ServiceAccountFact::Missing {
            name: name.to_string(),
            namespace: namespace.to_string(),
        },
    })
}
