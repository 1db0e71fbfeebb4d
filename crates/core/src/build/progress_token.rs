//! What a worker needs to report its progress: the endpoint's URL and a token of its pod's ServiceAccount,
//! projected with the audience the operator checks, bound to the pod (so it names the pod and dies with it).
//! The token grants nothing in the API: the worker needs no RBAC.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    EnvVar, ProjectedVolumeSource, ServiceAccountTokenProjection, Volume, VolumeMount,
    VolumeProjection,
};

/// Audience of the projected token; the operator's TokenReview asks for exactly this one.
pub const AUDIENCE: &str = "crew-operator";
/// Volume holding the token (a reserved volume name).
pub const VOLUME: &str = "crew-progress";
/// Where the token directory is mounted (a reserved mount path).
pub const MOUNT: &str = "/var/run/secrets/crew.dev";
/// File name of the token in [`MOUNT`].
pub const FILE: &str = "progress-token";
/// Lifetime of the projected token; the kubelet renews it at 80%.
pub const EXPIRATION_SECONDS: i64 = 3600;

/// Adds the token volume, its mount, `CREW_PROGRESS_URL` and `CREW_PROGRESS_TOKEN_FILE` to the worker of `job`.
pub fn add_progress_reporting(job: &mut Job, url: &str) {
    let Some(pod) = job.spec.as_mut().and_then(|s| s.template.spec.as_mut()) else {
        return;
    };
    pod.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: VOLUME.to_string(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(vec![VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    audience: Some(AUDIENCE.to_string()),
                    expiration_seconds: Some(EXPIRATION_SECONDS),
                    path: FILE.to_string(),
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    });
    let Some(worker) = pod
        .containers
        .iter_mut()
        .find(|c| c.name == super::worker_job::WORKER_CONTAINER)
    else {
        return;
    };
    worker
        .volume_mounts
        .get_or_insert_with(Vec::new)
        .push(VolumeMount {
            name: VOLUME.to_string(),
            mount_path: MOUNT.to_string(),
            read_only: Some(true),
            ..Default::default()
        });
    let env = worker.env.get_or_insert_with(Vec::new);
    for (name, value) in [
        ("CREW_PROGRESS_URL", url.to_string()),
        ("CREW_PROGRESS_TOKEN_FILE", format!("{MOUNT}/{FILE}")),
    ] {
        env.push(EnvVar {
            name: name.to_string(),
            value: Some(value),
            ..Default::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::{Launch, resolve_steps};
    use crew_api::{CrewExecution, CrewExecutionSpec};

    #[test]
    fn the_worker_gets_a_bound_token_and_the_url() {
        let mut cx = CrewExecution::new(
            "report",
            CrewExecutionSpec {
                image: Some("worker:1".into()),
                ..Default::default()
            },
        );
        cx.metadata.namespace = Some("team-a".into());
        cx.metadata.uid = Some("uid-1".into());
        let step = resolve_steps(&cx.spec).unwrap().remove(0);
        let launch = Launch {
            job_name: "report-main-1".into(),
            step,
            attempt: 1,
            results: Vec::new(),
        };
        let mut job = super::super::worker_job::worker_job(&cx, &launch).unwrap();
        add_progress_reporting(&mut job, "http://crew:8081/v1/progress");
        let pod = job.spec.unwrap().template.spec.unwrap();
        let volume = pod
            .volumes
            .unwrap()
            .into_iter()
            .find(|v| v.name == VOLUME)
            .unwrap();
        let token = volume.projected.unwrap().sources.unwrap()[0]
            .service_account_token
            .clone()
            .unwrap();
        assert_eq!(token.audience.as_deref(), Some(AUDIENCE));
        let worker = &pod.containers[0];
        let env: Vec<(String, String)> = worker
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect();
        assert!(env.contains(&(
            "CREW_PROGRESS_URL".into(),
            "http://crew:8081/v1/progress".into()
        )));
        assert!(env.contains(&(
            "CREW_PROGRESS_TOKEN_FILE".into(),
            "/var/run/secrets/crew.dev/progress-token".into()
        )));
        assert!(
            worker
                .volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path == MOUNT)
        );
        assert_eq!(
            pod.automount_service_account_token,
            Some(false),
            "still no API token"
        );
    }
}
