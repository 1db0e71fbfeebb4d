//! Validation of a spec and resolution of each step's effective worker container (inheritance from the
//! top-level fields).

use crew_api::CrewExecutionSpec;
use crew_api::execution::MAX_STEPS;
use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// Name of the implicit step of an execution without `spec.steps`.
pub const DEFAULT_STEP: &str = "main";
/// Largest serialised size of `spec.crew` plus `spec.inputs` (they travel in one ConfigMap, limit 1 MiB).
pub const MAX_PAYLOAD_BYTES: usize = 900 * 1024;

/// One step with every inherited field filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedStep {
    /// Position in the execution, from 0.
    pub index: usize,
    /// Step name.
    pub name: String,
    /// Worker image.
    pub image: String,
    /// Image pull policy of the worker container (unset: the cluster's rule).
    pub image_pull_policy: Option<String>,
    /// ServiceAccount the worker pod runs as (unset: `default`, without an API token).
    pub service_account_name: Option<String>,
    /// How many steps the run has (`CREW_STEP_COUNT`).
    pub step_count: usize,
    /// Entrypoint, if set anywhere.
    pub command: Option<Vec<String>>,
    /// Arguments, if set anywhere.
    pub args: Option<Vec<String>>,
    /// `spec.env` merged with the step's own env (step wins), in first-seen order.
    pub env: Vec<EnvVar>,
    /// Compute resources, if set anywhere.
    pub resources: Option<ResourceRequirements>,
    /// Pod annotations, top-level merged with the step's.
    pub pod_annotations: BTreeMap<String, String>,
    /// The Job's `activeDeadlineSeconds`.
    pub timeout_seconds: Option<i64>,
    /// `spec.podTemplate` with the step's merged over it.
    pub pod_template: crew_api::PodTemplate,
    /// How long the worker may go without reporting progress (the step's, else `spec.stallTimeoutSeconds`).
    pub stall_timeout_seconds: Option<i64>,
    /// What a stall does (the step's, else `spec.onStall`).
    pub on_stall: Option<crew_api::OnStall>,
}

/// Why a spec cannot run. The text becomes the `InvalidSpec` message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidSpec(pub String);

impl fmt::Display for InvalidSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Validates `spec` and returns its steps in order (one step `main` when none are declared).
pub fn resolve_steps(spec: &CrewExecutionSpec) -> Result<Vec<ResolvedStep>, InvalidSpec> {
    let mut problems = Vec::new();
    if spec.steps.len() > MAX_STEPS {
        problems.push(format!(
            "at most {MAX_STEPS} steps are allowed, found {}",
            spec.steps.len()
        ));
    }
    let payload = json_len(&spec.crew) + json_len(&spec.inputs);
    if payload > MAX_PAYLOAD_BYTES {
        problems.push(format!(
            "spec.crew and spec.inputs take {payload} bytes; at most {MAX_PAYLOAD_BYTES} fit"
        ));
    }
    problems.extend(live_field_problems(spec));
    if let Some(account) = &spec.service_account_name {
        problems.extend(service_account_name_problem("serviceAccountName", account));
    }
    let mut seen = HashSet::new();
    let steps: Vec<ResolvedStep> = if spec.steps.is_empty() {
        vec![resolve_one(spec, 0, DEFAULT_STEP, None, &mut problems)]
    } else {
        spec.steps
            .iter()
            .enumerate()
            .map(|(index, step)| {
                if !is_dns_label(&step.name) {
                    problems.push(format!(
                        "step name {:?} is not a DNS label (a-z, 0-9, '-', at most 63)",
                        step.name
                    ));
                }
                if !seen.insert(step.name.as_str()) {
                    problems.push(format!("step name {:?} is used more than once", step.name));
                }
                check_positive(
                    &mut problems,
                    &format!("step {:?} timeoutSeconds", step.name),
                    step.timeout_seconds,
                );
                if let Some(account) = &step.service_account_name {
                    let field = format!("step {:?} serviceAccountName", step.name);
                    problems.extend(service_account_name_problem(&field, account));
                }
                resolve_one(spec, index, &step.name, Some(step), &mut problems)
            })
            .collect()
    };
    problems.extend(result_reference_problems(&steps));
    let step_count = steps.len();
    let steps: Vec<ResolvedStep> = steps
        .into_iter()
        .map(|step| ResolvedStep { step_count, ..step })
        .collect();
    if problems.is_empty() {
        let worst = worst_case_object_bytes(spec, &steps);
        if worst > MAX_OBJECT_BYTES {
            problems.push(format!(
                "the execution could grow to {worst} bytes with its status (the spec, the steps frozen at \
                 start, and each step's result, message and history at their limits); at most \
                 {MAX_OBJECT_BYTES} fit under the API server's 1.5 MiB object limit: shrink the spec (fields \
                 the steps inherit count once per step) or use fewer steps"
            ));
        }
    }
    if problems.is_empty() {
        Ok(steps)
    } else {
        Err(InvalidSpec(problems.join("; ")))
    }
}

/// References to results (`$(steps.<name>.result...)` in `args` and `env`) that name no step before theirs.
fn result_reference_problems(steps: &[ResolvedStep]) -> Vec<String> {
    let mut problems = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        let texts = step
            .args
            .iter()
            .flatten()
            .map(String::as_str)
            .chain(step.env.iter().filter_map(|e| e.value.as_deref()));
        for text in texts {
            for (_, reference) in super::results::references(text) {
                if !steps[..index].iter().any(|s| s.name == reference.step) {
                    problems.push(format!(
                        "step {:?} refers to $(steps.{}.result), but {:?} is not a step before it",
                        step.name, reference.step, reference.step
                    ));
                }
            }
        }
    }
    problems
}

/// The API server (etcd) refuses objects over 1.5 MiB. Spec and status must fit in this much of it, leaving
/// room for metadata (labels, annotations, managed fields).
pub const MAX_OBJECT_BYTES: usize = 1_400_000;
/// The most one step can add to the status: its result, its message, names and times, and what its worker
/// reported (a progress message and warnings at their bounds, 4 bytes per character; metrics, whose names are
/// ASCII).
const STATUS_BYTES_PER_STEP: usize = super::steps::MAX_RESULT_BYTES
    + super::text::MAX_MESSAGE_BYTES
    + 512
    + 4 * super::report::MAX_MESSAGE_CHARS
    + super::report::MAX_METRICS * (super::report::MAX_METRIC_NAME_CHARS + 32)
    + super::report::MAX_WARNINGS * (4 * super::report::MAX_WARNING_CHARS + 8);
/// The most one history entry can take.
const STATUS_BYTES_PER_ENTRY: usize = super::text::MAX_MESSAGE_BYTES + 256;
/// The rest of the status: `result`, `message`, the conditions (each may repeat the message), progress.
const STATUS_FIXED_BYTES: usize =
    super::steps::MAX_RESULT_BYTES + 9 * (super::text::MAX_MESSAGE_BYTES + 256) + 2048;

/// The largest the execution can become: its spec, plus its status with the steps frozen at start and every
/// bounded field at its bound (so a status write can never be refused for size, whatever the run records).
pub fn worst_case_object_bytes(spec: &CrewExecutionSpec, steps: &[ResolvedStep]) -> usize {
    let spec_bytes = serde_json::to_vec(spec).map_or(0, |v| v.len());
    let frozen: Vec<crew_api::StepSpec> = steps.iter().map(ResolvedStep::to_spec).collect();
    let frozen_bytes = serde_json::to_vec(&frozen).map_or(0, |v| v.len());
    let history = super::history::effective_limit(spec.history_limit);
    spec_bytes
        + frozen_bytes
        + steps.len() * STATUS_BYTES_PER_STEP
        + history * STATUS_BYTES_PER_ENTRY
        + STATUS_FIXED_BYTES
}

fn resolve_one(
    spec: &CrewExecutionSpec,
    index: usize,
    name: &str,
    step: Option<&crew_api::StepSpec>,
    problems: &mut Vec<String>,
) -> ResolvedStep {
    let image = step
        .and_then(|s| s.image.clone())
        .or_else(|| spec.image.clone())
        .unwrap_or_default();
    if image.trim().is_empty() {
        problems.push(format!(
            "step {name:?} has no image (set spec.image or the step's image)"
        ));
    }
    let mut env: Vec<EnvVar> = spec.env.clone().unwrap_or_default();
    for var in step.and_then(|s| s.env.clone()).unwrap_or_default() {
        match env.iter_mut().find(|e| e.name == var.name) {
            Some(existing) => *existing = var,
            None => env.push(var),
        }
    }
    let mut pod_annotations = spec.pod_annotations.clone().unwrap_or_default();
    pod_annotations.extend(
        step.and_then(|s| s.pod_annotations.clone())
            .unwrap_or_default(),
    );
    ResolvedStep {
        index,
        name: name.to_string(),
        image,
        image_pull_policy: step
            .and_then(|s| s.image_pull_policy.clone())
            .or_else(|| spec.image_pull_policy.clone()),
        service_account_name: step
            .and_then(|s| s.service_account_name.clone())
            .or_else(|| spec.service_account_name.clone()),
        step_count: 0,
        command: step
            .and_then(|s| s.command.clone())
            .or_else(|| spec.command.clone()),
        args: step
            .and_then(|s| s.args.clone())
            .or_else(|| spec.args.clone()),
        env,
        resources: step
            .and_then(|s| s.resources.clone())
            .or_else(|| spec.resources.clone()),
        pod_annotations,
        timeout_seconds: step.and_then(|s| s.timeout_seconds),
        pod_template: super::pod_template::merge(
            spec.pod_template.as_ref(),
            step.and_then(|s| s.pod_template.as_ref()),
        ),
        stall_timeout_seconds: step
            .and_then(|s| s.stall_timeout_seconds)
            .or(spec.stall_timeout_seconds),
        on_stall: step.and_then(|s| s.on_stall).or(spec.on_stall),
    }
}

impl ResolvedStep {
    /// This step as a spec step with every inherited field written out: resolving it again, on its own, gives it
    /// back (see [`resolve_frozen`]).
    pub fn to_spec(&self) -> crew_api::StepSpec {
        crew_api::StepSpec {
            name: self.name.clone(),
            image: Some(self.image.clone()),
            image_pull_policy: self.image_pull_policy.clone(),
            service_account_name: self.service_account_name.clone(),
            command: self.command.clone(),
            args: self.args.clone(),
            env: Some(self.env.clone()).filter(|env| !env.is_empty()),
            resources: self.resources.clone(),
            pod_annotations: Some(self.pod_annotations.clone()).filter(|a| !a.is_empty()),
            timeout_seconds: self.timeout_seconds,
            pod_template: Some(self.pod_template.clone())
                .filter(|template| *template != crew_api::PodTemplate::default()),
            stall_timeout_seconds: self.stall_timeout_seconds,
            on_stall: self.on_stall,
        }
    }
}

/// Problems of the fields that stay live for a running execution (`timeoutSeconds`, `ttlSecondsAfterFinished`,
/// `retry`): an invalid value there fails the run wherever it stands.
pub fn live_field_problems(spec: &CrewExecutionSpec) -> Vec<String> {
    let mut problems = Vec::new();
    check_positive(&mut problems, "spec.timeoutSeconds", spec.timeout_seconds);
    if spec.ttl_seconds_after_finished.is_some_and(|t| t < 0) {
        problems.push("spec.ttlSecondsAfterFinished must not be negative".into());
    }
    if let Some(retry) = &spec.retry
        && retry.max_backoff_seconds < retry.backoff_seconds
    {
        problems
            .push("spec.retry.maxBackoffSeconds must not be smaller than backoffSeconds".into());
    }
    problems
}

/// The steps a run froze at its start (`status.resolvedSteps`), resolved on their own: nothing is inherited from
/// the spec as it is now.
pub fn resolve_frozen(frozen: &[crew_api::StepSpec]) -> Result<Vec<ResolvedStep>, InvalidSpec> {
    resolve_steps(&CrewExecutionSpec {
        steps: frozen.to_vec(),
        ..Default::default()
    })
}

fn check_positive(problems: &mut Vec<String>, what: &str, value: Option<i64>) {
    if value.is_some_and(|v| v < 1) {
        problems.push(format!("{what} must be at least 1"));
    }
}

fn json_len(value: &Option<serde_json::Value>) -> usize {
    value
        .as_ref()
        .and_then(|v| serde_json::to_vec(v).ok())
        .map_or(0, |v| v.len())
}

/// Why `name` cannot name a ServiceAccount (None: it can). The API server cannot even be asked about such a name
/// (an empty name, a space, an upper-case letter), so it fails the run as an invalid spec instead of a launch that
/// can never read it.
fn service_account_name_problem(field: &str, name: &str) -> Option<String> {
    (!is_dns_subdomain(name)).then(|| {
        format!(
            "{field} {name:?} is not a ServiceAccount name (a DNS subdomain: a-z, 0-9, '-' and '.', at most 253)"
        )
    })
}

/// RFC 1123 subdomain: dot-separated labels of lower-case alphanumerics and '-', each starting and ending
/// alphanumeric, 1 to 253 characters in all (the names of ServiceAccounts and most other objects).
pub fn is_dns_subdomain(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
                && bytes[0] != b'-'
                && bytes[bytes.len() - 1] != b'-'
        })
}

/// RFC 1123 label: lower-case alphanumerics and '-', starting and ending alphanumeric, 1 to 63 characters.
pub fn is_dns_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;
    use crew_api::{RetryPolicy, StepSpec};

    fn env(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    fn step(name: &str) -> StepSpec {
        StepSpec {
            name: name.into(),
            ..Default::default()
        }
    }

    fn base() -> CrewExecutionSpec {
        CrewExecutionSpec {
            image: Some("worker:1".into()),
            history_limit: 20,
            ..Default::default()
        }
    }

    #[test]
    fn a_result_reference_must_name_a_step_before_it() {
        let mut spec = base();
        spec.steps = vec![
            step("plan"),
            StepSpec {
                args: Some(vec!["--plan=$(steps.plan.result.topic)".into()]),
                env: Some(vec![env("LATER", "$(steps.report.result)")]),
                ..step("write")
            },
            step("report"),
        ];
        let problem = resolve_steps(&spec).unwrap_err().0;
        assert!(
            problem.contains(
                "refers to $(steps.report.result), but \"report\" is not a step before it"
            ),
            "{problem}"
        );
        assert!(!problem.contains("steps.plan"), "{problem}");
        spec.steps[1].env = None;
        assert!(resolve_steps(&spec).is_ok());
    }

    #[test]
    fn no_steps_means_one_main_step() {
        let steps = resolve_steps(&base()).unwrap();
        assert_eq!(steps.len(), 1);
        assert_eq!(
            (steps[0].name.as_str(), steps[0].image.as_str()),
            ("main", "worker:1")
        );
    }

    #[test]
    fn steps_inherit_what_they_do_not_set() {
        let mut spec = base();
        spec.command = Some(vec!["python".into()]);
        spec.args = Some(vec!["run.py".into()]);
        spec.env = Some(vec![env("A", "top"), env("B", "top")]);
        spec.pod_annotations = Some([("x".to_string(), "1".to_string())].into());
        spec.steps = vec![
            step("plan"),
            StepSpec {
                image: Some("other:2".into()),
                args: Some(vec!["write.py".into()]),
                env: Some(vec![env("B", "step"), env("C", "step")]),
                pod_annotations: Some([("x".to_string(), "2".to_string())].into()),
                timeout_seconds: Some(30),
                ..step("write")
            },
        ];
        let steps = resolve_steps(&spec).unwrap();
        assert_eq!(steps[0].image, "worker:1");
        assert_eq!(steps[0].args, Some(vec!["run.py".to_string()]));
        assert_eq!(steps[1].image, "other:2");
        assert_eq!(steps[1].command, Some(vec!["python".to_string()]));
        assert_eq!(steps[1].args, Some(vec!["write.py".to_string()]));
        let merged: Vec<_> = steps[1]
            .env
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_deref().unwrap()))
            .collect();
        assert_eq!(merged, [("A", "top"), ("B", "step"), ("C", "step")]);
        assert_eq!(steps[1].pod_annotations["x"], "2");
        assert_eq!((steps[1].index, steps[1].timeout_seconds), (1, Some(30)));
    }

    #[test]
    fn steps_inherit_the_pod_identity_and_know_their_count() {
        let mut spec = base();
        spec.service_account_name = Some("runner".into());
        spec.image_pull_policy = Some("Always".into());
        spec.steps = vec![
            step("plan"),
            StepSpec {
                service_account_name: Some("writer".into()),
                image_pull_policy: Some("Never".into()),
                ..step("write")
            },
            step("check"),
        ];
        let steps = resolve_steps(&spec).unwrap();
        let identity: Vec<_> = steps
            .iter()
            .map(|s| {
                (
                    s.service_account_name.as_deref(),
                    s.image_pull_policy.as_deref(),
                    s.step_count,
                )
            })
            .collect();
        assert_eq!(
            identity,
            [
                (Some("runner"), Some("Always"), 3),
                (Some("writer"), Some("Never"), 3),
                (Some("runner"), Some("Always"), 3)
            ]
        );
        let frozen: Vec<StepSpec> = steps.iter().map(ResolvedStep::to_spec).collect();
        assert_eq!(
            resolve_frozen(&frozen).unwrap(),
            steps,
            "frozen and resolved again"
        );
        spec.steps[2].service_account_name = Some("Bad Name".into());
        let err = resolve_steps(&spec).expect_err("invalid step account");
        assert!(err.0.contains("step \"check\" serviceAccountName"), "{err}");
    }

    #[test]
    fn invalid_specs_are_explained() {
        let cases: Vec<(&str, CrewExecutionSpec, &str)> = vec![
            (
                "no image",
                CrewExecutionSpec {
                    image: None,
                    ..base()
                },
                "has no image",
            ),
            (
                "duplicate",
                CrewExecutionSpec {
                    steps: vec![step("a"), step("a")],
                    ..base()
                },
                "used more than once",
            ),
            (
                "bad name",
                CrewExecutionSpec {
                    steps: vec![step("Bad_Name")],
                    ..base()
                },
                "not a DNS label",
            ),
            (
                "timeout",
                CrewExecutionSpec {
                    timeout_seconds: Some(0),
                    ..base()
                },
                "spec.timeoutSeconds",
            ),
            (
                "ttl",
                CrewExecutionSpec {
                    ttl_seconds_after_finished: Some(-1),
                    ..base()
                },
                "ttlSecondsAfterFinished",
            ),
            (
                "backoff",
                CrewExecutionSpec {
                    retry: Some(RetryPolicy {
                        limit: 1,
                        backoff_seconds: 10,
                        max_backoff_seconds: 5,
                    }),
                    ..base()
                },
                "maxBackoffSeconds",
            ),
            (
                "too many",
                CrewExecutionSpec {
                    steps: (0..65).map(|i| step(&format!("s{i}"))).collect(),
                    ..base()
                },
                "at most 64",
            ),
            (
                "empty service account",
                CrewExecutionSpec {
                    service_account_name: Some(String::new()),
                    ..base()
                },
                "serviceAccountName \"\"",
            ),
            (
                "service account with a space",
                CrewExecutionSpec {
                    service_account_name: Some("runner ".into()),
                    ..base()
                },
                "not a ServiceAccount name",
            ),
            (
                "payload",
                CrewExecutionSpec {
                    inputs: Some(serde_json::json!({ "blob": "x".repeat(MAX_PAYLOAD_BYTES) })),
                    ..base()
                },
                "bytes",
            ),
        ];
        for (label, spec, needle) in cases {
            let err = resolve_steps(&spec).expect_err(label);
            assert!(err.0.contains(needle), "{label}: {err}");
        }
    }

    #[test]
    fn dns_labels() {
        for ok in ["a", "a-b", "0", "abc123", &"a".repeat(63)] {
            assert!(is_dns_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }

    #[test]
    fn dns_subdomains() {
        for ok in ["a", "runner", "crew-worker", "a.b-c.d", &"a".repeat(253)] {
            assert!(is_dns_subdomain(ok), "{ok}");
        }
        let too_long = "a".repeat(254);
        for bad in [
            "", "runner ", " runner", "Runner", "a_b", "-a", "a-", "a..b", ".a", "a.", "ré",
            &too_long,
        ] {
            assert!(!is_dns_subdomain(bad), "{bad}");
        }
    }

    /// Review finding 14: a spec the API server accepts could grow past etcd's object limit through its status (the
    /// frozen steps repeat what they inherit, and each step's result and message add up), and every status write
    /// was then refused: the run never ended. Such a spec is now invalid before it starts.
    #[test]
    fn a_spec_whose_status_could_outgrow_the_object_limit_is_invalid() {
        let big_args = |bytes: usize| Some(vec!["a".repeat(bytes)]);
        let steps = |n: usize| -> Vec<StepSpec> {
            (0..n)
                .map(|i| StepSpec {
                    name: format!("s{i}"),
                    ..Default::default()
                })
                .collect()
        };
        // The review's case: 880 KiB of crew, 450 KiB of args on the last step, 40 steps.
        let mut spec = CrewExecutionSpec {
            crew: Some(serde_json::json!({"blob": "c".repeat(880 * 1024)})),
            steps: steps(40),
            ..base()
        };
        spec.steps[39].args = big_args(450 * 1024);
        let err = resolve_steps(&spec).expect_err("too big");
        assert!(err.0.contains("could grow to"), "{err}");
        // Inherited fields are written out once per step: 64 steps inheriting 20 KiB of args would freeze 1.3 MB.
        let spec = CrewExecutionSpec {
            args: big_args(20 * 1024),
            steps: steps(64),
            ..base()
        };
        assert!(resolve_steps(&spec).is_err());
        // Ordinary large runs fit: 64 steps; 800 KiB of inputs with a few steps.
        assert!(
            resolve_steps(&CrewExecutionSpec {
                steps: steps(64),
                ..base()
            })
            .is_ok()
        );
        let spec = CrewExecutionSpec {
            inputs: Some(serde_json::json!({"blob": "i".repeat(800 * 1024)})),
            steps: steps(3),
            ..base()
        };
        assert!(resolve_steps(&spec).is_ok());
    }
}
