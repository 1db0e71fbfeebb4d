//! The `batch/v1` Job of one step attempt.

use super::config_map::{CREW_FILE, INPUTS_FILE};
use super::{BuildError, labels, namespace, owner_reference, pod_template};
use crate::lifecycle::Launch;
use crate::lifecycle::names::config_map_name;
use crate::lifecycle::results::{EarlierResult, Kept, RESULT_KEY};
use crew_api::CrewExecution;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMapProjection, Container, DownwardAPIProjection, DownwardAPIVolumeFile, EnvVar,
    KeyToPath, ObjectFieldSelector, PodSpec, PodTemplateSpec, ProjectedVolumeSource, Volume,
    VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

/// Name of the worker container (the one whose termination message is read).
pub const WORKER_CONTAINER: &str = "worker";
/// Where `crew.json` and `inputs.json` are mounted.
pub const CREW_MOUNT: &str = "/crew";
const CREW_VOLUME: &str = "crew";
/// Where earlier steps' results are, under [`CREW_MOUNT`]: one file per step.
pub const RESULTS_DIR: &str = "results";
/// Pod annotation prefix carrying an earlier step's termination-message result (`result.crew.dev/<step>`).
pub const INLINE_RESULT_PREFIX: &str = "result.crew.dev/";

/// The Job running `launch`'s step attempt. `backoffLimit` is 0: the
/// operator owns retries so that every attempt is its own visible Job. Everything about the worker (container,
/// ServiceAccount, pull policy, step count) comes from the launched step, which a started run reads from
/// `status.resolvedSteps`; the execution gives only its name, namespace and UID.
pub fn worker_job(execution: &CrewExecution, launch: &Launch) -> Result<Job, BuildError> {
    let name = execution.metadata.name.clone().unwrap_or_default();
    let ns = namespace(execution)?;
    let step = &launch.step;
    let labels = labels::step_attempt(&name, &step.name, launch.attempt);
    let mut env: Vec<EnvVar> = step
        .env
        .iter()
        .filter(|e| !e.name.starts_with("CREW_"))
        .cloned()
        .collect();
    env.extend(
        [
            ("CREW_EXECUTION", name.clone()),
            ("CREW_NAMESPACE", ns.clone()),
            ("CREW_STEP", step.name.clone()),
            ("CREW_STEP_INDEX", step.index.to_string()),
            ("CREW_STEP_COUNT", step.step_count.to_string()),
            ("CREW_ATTEMPT", launch.attempt.to_string()),
            ("CREW_CREW_FILE", format!("{CREW_MOUNT}/{CREW_FILE}")),
            ("CREW_INPUTS_FILE", format!("{CREW_MOUNT}/{INPUTS_FILE}")),
            ("CREW_RESULTS_DIR", format!("{CREW_MOUNT}/{RESULTS_DIR}")),
        ]
        .into_iter()
        .map(|(k, v)| EnvVar {
            name: k.to_string(),
            value: Some(v),
            ..Default::default()
        }),
    );
    let mut container = Container {
        name: WORKER_CONTAINER.to_string(),
        image: Some(step.image.clone()),
        image_pull_policy: step.image_pull_policy.clone(),
        command: step.command.clone(),
        args: step.args.clone(),
        env: Some(env),
        resources: step.resources.clone(),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        volume_mounts: Some(vec![VolumeMount {
            name: CREW_VOLUME.to_string(),
            mount_path: CREW_MOUNT.to_string(),
            read_only: Some(true),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let mut pod = PodSpec {
        restart_policy: Some("Never".to_string()),
        service_account_name: step.service_account_name.clone(),
        // No API credentials in the worker unless its step names a ServiceAccount to run as.
        automount_service_account_token: step.service_account_name.is_none().then_some(false),
        containers: Vec::new(),
        volumes: Some(vec![Volume {
            name: CREW_VOLUME.to_string(),
            projected: Some(crew_files(
                &config_map_name(&name, execution.metadata.uid.as_deref().unwrap_or_default()),
                &launch.results,
            )),
            ..Default::default()
        }]),
        ..Default::default()
    };
    pod_template::apply(&step.pod_template, &mut pod, &mut container);
    pod.containers = vec![container];
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(launch.job_name.clone()),
            namespace: Some(ns),
            labels: Some(labels.clone()),
            owner_references: Some(vec![owner_reference(execution)?]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            completions: Some(1),
            parallelism: Some(1),
            active_deadline_seconds: step.timeout_seconds,
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_template::labels(&step.pod_template, &labels)),
                    annotations: with_inline_results(
                        pod_template::annotations(&step.pod_template, &step.pod_annotations),
                        &launch.results,
                    ),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The files under `/crew`: `crew.json` and `inputs.json` from the execution's ConfigMap (optional: executions
/// without crew or inputs create none, one write less, and see no files), and `results/<step>` for each earlier
/// step's result: from its result ConfigMap when its worker posted one, else from the pod's own annotation
/// [`INLINE_RESULT_PREFIX`]`<step>` (its termination message).
fn crew_files(crew_config_map: &str, results: &[EarlierResult]) -> ProjectedVolumeSource {
    let mut sources = vec![VolumeProjection {
        config_map: Some(ConfigMapProjection {
            name: crew_config_map.to_string(),
            optional: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }];
    let mut inline = Vec::new();
    for result in results {
        let path = format!("{RESULTS_DIR}/{}", result.step);
        match &result.kept {
            Kept::ConfigMap(name) => sources.push(VolumeProjection {
                config_map: Some(ConfigMapProjection {
                    name: name.clone(),
                    items: Some(vec![KeyToPath {
                        key: RESULT_KEY.to_string(),
                        path,
                        ..Default::default()
                    }]),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
            Kept::Inline(_) => inline.push(DownwardAPIVolumeFile {
                path,
                field_ref: Some(ObjectFieldSelector {
                    field_path: format!(
                        "metadata.annotations['{INLINE_RESULT_PREFIX}{}']",
                        result.step
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }
    if !inline.is_empty() {
        sources.push(VolumeProjection {
            downward_api: Some(DownwardAPIProjection {
                items: Some(inline),
            }),
            ..Default::default()
        });
    }
    ProjectedVolumeSource {
        sources: Some(sources),
        ..Default::default()
    }
}

/// The pod's annotations with the earlier termination-message results (for the downward API files).
fn with_inline_results(
    annotations: Option<BTreeMap<String, String>>,
    results: &[EarlierResult],
) -> Option<BTreeMap<String, String>> {
    let mut annotations = annotations.unwrap_or_default();
    for result in results {
        if let Kept::Inline(text) = &result.kept {
            annotations.insert(
                format!("{INLINE_RESULT_PREFIX}{}", result.step),
                text.clone(),
            );
        }
    }
    (!annotations.is_empty()).then_some(annotations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::resolve_steps;
    use crew_api::{CrewExecutionSpec, StepSpec};

    fn execution(spec: CrewExecutionSpec) -> CrewExecution {
        let mut cx = CrewExecution::new("report", spec);
        cx.metadata.namespace = Some("team-a".into());
        cx.metadata.uid = Some("uid-1".into());
        cx
    }

    fn launch_of(cx: &CrewExecution, index: usize, attempt: u32) -> Launch {
        let step = resolve_steps(&cx.spec).unwrap().remove(index);
        let job_name = crate::lifecycle::names::job_name("report", &step.name, attempt);
        Launch {
            step,
            attempt,
            job_name,
            results: Vec::new(),
        }
    }

    fn env_of(job: &Job) -> Vec<(String, String)> {
        let c = &job
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        c.env
            .clone()
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.value.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn job_carries_identity_ownership_and_contract() {
        let cx = execution(CrewExecutionSpec {
            image: Some("worker:1".into()),
            steps: vec![
                StepSpec {
                    name: "plan".into(),
                    ..Default::default()
                },
                StepSpec {
                    name: "write".into(),
                    timeout_seconds: Some(30),
                    ..Default::default()
                },
            ],
            ..Default::default()
        });
        let job = worker_job(&cx, &launch_of(&cx, 1, 2)).unwrap();
        assert_eq!(job.metadata.name.as_deref(), Some("report-write-2"));
        let labels = job.metadata.labels.clone().unwrap();
        assert_eq!(labels["crew.dev/execution"], "report");
        assert_eq!(labels["crew.dev/step"], "write");
        assert_eq!(labels["crew.dev/attempt"], "2");
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.uid.as_str(), owner.controller, owner.kind.as_str()),
            ("uid-1", Some(true), "CrewExecution")
        );
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(
            (spec.backoff_limit, spec.active_deadline_seconds),
            (Some(0), Some(30))
        );
        assert_eq!(
            spec.template
                .metadata
                .as_ref()
                .unwrap()
                .labels
                .as_ref()
                .unwrap(),
            &labels
        );
        let env = env_of(&job);
        for (k, v) in [
            ("CREW_EXECUTION", "report"),
            ("CREW_NAMESPACE", "team-a"),
            ("CREW_STEP", "write"),
            ("CREW_STEP_INDEX", "1"),
            ("CREW_ATTEMPT", "2"),
        ] {
            assert!(env.contains(&(k.to_string(), v.to_string())), "{k}");
        }
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let volume = pod.volumes.as_ref().unwrap()[0]
            .projected
            .as_ref()
            .unwrap()
            .sources
            .as_ref()
            .unwrap()[0]
            .config_map
            .clone()
            .unwrap();
        let own = crate::lifecycle::names::config_map_name("report", "uid-1");
        assert_eq!(
            (volume.name.as_str(), volume.optional),
            (own.as_str(), Some(true))
        );
    }

    #[test]
    fn earlier_results_are_files_under_crew_results() {
        let cx = execution(CrewExecutionSpec {
            image: Some("w".into()),
            ..Default::default()
        });
        let mut launch = launch_of(&cx, 0, 1);
        launch.results = vec![
            EarlierResult {
                step: "research".into(),
                kept: Kept::ConfigMap("report-result-1".into()),
            },
            EarlierResult {
                step: "outline".into(),
                kept: Kept::Inline("three parts".into()),
            },
        ];
        let job = worker_job(&cx, &launch).unwrap();
        let template = job.spec.unwrap().template;
        let pod = template.spec.unwrap();
        let sources = pod.volumes.unwrap()[0]
            .projected
            .clone()
            .unwrap()
            .sources
            .unwrap();
        let posted = sources[1].config_map.clone().unwrap();
        assert_eq!(posted.name, "report-result-1");
        assert_eq!(
            posted.items.unwrap()[0],
            KeyToPath {
                key: "result".into(),
                path: "results/research".into(),
                ..Default::default()
            }
        );
        let inline = &sources[2].downward_api.clone().unwrap().items.unwrap()[0];
        assert_eq!(inline.path, "results/outline");
        assert_eq!(
            inline.field_ref.as_ref().unwrap().field_path,
            "metadata.annotations['result.crew.dev/outline']"
        );
        assert_eq!(
            template.metadata.unwrap().annotations.unwrap()["result.crew.dev/outline"],
            "three parts"
        );
        let env = pod.containers[0].env.clone().unwrap();
        assert!(
            env.iter().any(
                |e| e.name == "CREW_RESULTS_DIR" && e.value.as_deref() == Some("/crew/results")
            )
        );
    }

    #[test]
    fn user_cannot_shadow_the_crew_variables() {
        let cx = execution(CrewExecutionSpec {
            image: Some("w".into()),
            env: Some(vec![EnvVar {
                name: "CREW_STEP".into(),
                value: Some("evil".into()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let env = env_of(&worker_job(&cx, &launch_of(&cx, 0, 1)).unwrap());
        let steps: Vec<_> = env.iter().filter(|(k, _)| k == "CREW_STEP").collect();
        assert_eq!(steps, [&("CREW_STEP".to_string(), "main".to_string())]);
    }

    /// Review finding 14: the ServiceAccount, the pull policy and `CREW_STEP_COUNT` were read from the live spec,
    /// so a mid-run edit changed later attempts unreported. They come from the resolved (frozen) step now.
    #[test]
    fn the_pod_identity_comes_from_the_resolved_step_not_the_live_spec() {
        let mut cx = execution(CrewExecutionSpec {
            image: Some("w".into()),
            image_pull_policy: Some("Always".into()),
            service_account_name: Some("runner".into()),
            steps: vec![
                StepSpec {
                    name: "a".into(),
                    ..Default::default()
                },
                StepSpec {
                    name: "b".into(),
                    service_account_name: Some("builder".into()),
                    image_pull_policy: Some("Never".into()),
                    ..Default::default()
                },
            ],
            ..Default::default()
        });
        let first = launch_of(&cx, 0, 1);
        let second = launch_of(&cx, 1, 1);
        cx.spec.service_account_name = Some("edited".into());
        cx.spec.image_pull_policy = Some("IfNotPresent".into());
        cx.spec.steps.push(StepSpec {
            name: "c".into(),
            ..Default::default()
        });
        for (launch, account, policy) in [(first, "runner", "Always"), (second, "builder", "Never")]
        {
            let job = worker_job(&cx, &launch).unwrap();
            let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
            assert_eq!(pod.service_account_name.as_deref(), Some(account));
            assert_eq!(pod.automount_service_account_token, None);
            assert_eq!(pod.containers[0].image_pull_policy.as_deref(), Some(policy));
            assert!(env_of(&job).contains(&("CREW_STEP_COUNT".to_string(), "2".to_string())));
        }
        cx.spec.service_account_name = None;
        let plain = execution(CrewExecutionSpec {
            image: Some("w".into()),
            ..Default::default()
        });
        let job = worker_job(&cx, &launch_of(&plain, 0, 1)).unwrap();
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(
            (
                pod.service_account_name.as_deref(),
                pod.automount_service_account_token
            ),
            (None, Some(false)),
            "no ServiceAccount named: no API token"
        );
    }

    #[test]
    fn unstored_execution_is_an_error_not_a_panic() {
        let mut cx = execution(CrewExecutionSpec {
            image: Some("w".into()),
            ..Default::default()
        });
        cx.metadata.uid = None;
        assert!(worker_job(&cx, &launch_of(&cx, 0, 1)).is_err());
    }
}
