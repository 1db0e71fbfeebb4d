//! `CrewExecution`: one run of a crew (or any multi-step batch work) as a custom resource.
// Each `printcolumn(...)` repeats `type_ = "string"`; that is not a mistake.
#![allow(clippy::duplicated_attributes)]

use super::pod_template::PodTemplate;
use super::schema::{free_form_object, string_map};
use super::status::CrewExecutionStatus;
use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default for `spec.historyLimit`.
pub const DEFAULT_HISTORY_LIMIT: u32 = 20;
/// Largest accepted `spec.historyLimit`.
pub const MAX_HISTORY_LIMIT: u32 = 100;
/// Largest number of steps one execution may declare.
pub const MAX_STEPS: usize = 64;
/// Default for `spec.retry.backoffSeconds`.
pub const DEFAULT_BACKOFF_SECONDS: u32 = 10;
/// Default for `spec.retry.maxBackoffSeconds`.
pub const DEFAULT_MAX_BACKOFF_SECONDS: u32 = 300;

/// Desired state of a CrewExecution: the worker container, the ordered steps, and how the run is controlled.
///
/// The operator never writes `spec`; every default below is applied by the API server (schema defaults) or in code.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "crew.dev",
    version = "v1alpha1",
    kind = "CrewExecution",
    namespaced,
    status = "CrewExecutionStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "cx",
    selectable = ".spec.queue",
    selectable = ".status.phase",
    shortname = "crewexec",
    category = "crew",
    doc = "CrewExecution runs a crew of AI agents (or any batch work) through an ordered list of steps, one worker Job per step attempt, and reports phase, progress, timings and history in its status.",
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Lifecycle phase"
    ),
    printcolumn(
        name = "Progress",
        type_ = "string",
        json_path = ".status.progress.display",
        description = "Completed steps out of all steps"
    ),
    printcolumn(
        name = "Step",
        type_ = "string",
        json_path = ".status.progress.currentStep",
        description = "The step running now"
    ),
    printcolumn(
        name = "Attempt",
        type_ = "integer",
        json_path = ".status.attempt",
        description = "Attempt number of the current step"
    ),
    printcolumn(
        name = "Duration",
        type_ = "string",
        json_path = ".status.duration",
        description = "Time from first start to completion"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(oldSelf.cancel) || !oldSelf.cancel || (has(self.cancel) && self.cancel)")
    .message("spec.cancel cannot be cleared: cancelling is irreversible")
    .field_path(".cancel"))]
pub struct CrewExecutionSpec {
    /// Container image of the worker. Every step uses it unless the step names its own image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub image: Option<String>,

    /// Image pull policy of the worker container (Always, IfNotPresent or Never). Defaults to the cluster's rule.
    /// Steps inherit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Always", "IfNotPresent", "Never"]))]
    pub image_pull_policy: Option<String>,

    /// Entrypoint of the worker container (replaces the image's ENTRYPOINT). Steps inherit it unless they set their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub command: Option<Vec<String>>,

    /// Arguments to the entrypoint (replace the image's CMD). Steps inherit them unless they set their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub args: Option<Vec<String>>,

    /// Environment variables of the worker container. A step's own `env` is merged over these (same name: the step wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub env: Option<Vec<EnvVar>>,

    /// Compute resources (requests and limits) of the worker container. Steps inherit them unless they set their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// ServiceAccount (in the execution's namespace) the worker pods run as. Its namespace's owner must open it to
    /// workers (annotation `crew.dev/worker: "true"`), or the operator's admin list it; otherwise the run fails with
    /// reason `InvalidSpec`. Unset: the pods run as `default`, without an API token. A DNS subdomain (lower-case
    /// letters, digits, '-' and '.'), like every ServiceAccount name. Steps inherit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub service_account_name: Option<String>,

    /// Annotations added to every worker pod (a step's own `podAnnotations` are merged over these).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "string_map")]
    pub pod_annotations: Option<BTreeMap<String, String>>,

    /// Scheduling, security and extra volumes of every worker pod (see `PodTemplate`). A step's own
    /// `podTemplate` is merged over this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplate>,

    /// The crew definition (agents, tasks, process, ...). Opaque to the operator: it is handed to every worker as
    /// the file `/crew/crew.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub crew: Option<serde_json::Value>,

    /// Inputs of this run. Opaque to the operator: handed to every worker as the file `/crew/inputs.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub inputs: Option<serde_json::Value>,

    /// Ordered steps; each runs after the previous one succeeded, as one Job per attempt. Empty means a single step
    /// named `main` that uses the top-level container fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(
        merge_strategy = ListMerge::Map(vec!["name".into()]),
        validation = Rule::new("self.all(s, self.exists_one(t, t.name == s.name))").message("step names must be unique")
    )]
    pub steps: Vec<StepSpec>,

    /// Scheduling priority: higher runs first when executions wait for the same queue. Defaults to 0; between
    /// -1000000000 and 1000000000.
    #[serde(default)]
    #[schemars(range(min = -1_000_000_000, max = 1_000_000_000))]
    pub priority: i32,

    /// Name of the CrewQueue (same namespace) whose concurrency limit admits this execution. Unset: the
    /// operator-wide limit applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub queue: Option<String>,

    /// How failed step attempts are retried. Unset: a failed attempt fails the execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,

    /// Upper bound on the whole run, counted from its first start (paused time counts). On expiry the running Job is
    /// deleted and the execution fails with reason `TimedOut`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2_147_483_647))]
    pub timeout_seconds: Option<i64>,

    /// How long a step attempt's worker may take to start (from its Job's creation until its container runs):
    /// a pod that cannot be scheduled, pulled or created fails the attempt after this with reason `StartTimeout`
    /// (subject to `retry`), releasing its queue slot. Unset: the operator's `--start-timeout-seconds` (default
    /// 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2_147_483_647))]
    pub start_timeout_seconds: Option<i64>,

    /// How long a running step's worker may go without reporting progress (`POST /v1/progress`, a heartbeat
    /// counts) before it is considered stalled: condition `ProgressStalled`, a Warning Event, and `onStall`.
    /// Counted from the attempt's start, the last report, or the operator gaining leadership, whichever is latest.
    /// Unset: no stall detection. Steps may set their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2_147_483_647))]
    pub stall_timeout_seconds: Option<i64>,
    /// What a stall does: `Warn` (the condition and Event only; the default), `Fail` (the run fails with reason
    /// `ProgressStalled`) or `Retry` (the attempt's Job is deleted and the attempt fails with reason
    /// `ProgressStalled`, so `retry` decides whether another starts). Steps may set their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_stall: Option<OnStall>,
    /// Pause (true) or resume (false). While suspended no new step starts; a running step is allowed to finish, then
    /// the execution is `Paused`.
    #[serde(default)]
    pub suspend: bool,

    /// Cancel the execution (irreversible): running Jobs are deleted and the phase becomes `Cancelled`.
    #[serde(default)]
    pub cancel: bool,

    /// Start at a step of another execution of this namespace, taking over the outcomes and results of the steps
    /// before it (`kubectl crew retry`, `kubectl crew rerun --from-step`). Read once, when the run starts: the
    /// other execution is never modified, and deleting it later changes nothing here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_from: Option<ResumeFrom>,

    /// Delete the execution (and so its Jobs and ConfigMap) this many seconds after it finished. Unset: keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2_147_483_647))]
    pub ttl_seconds_after_finished: Option<i64>,

    /// When the operator deletes a step attempt's finished Job, and with it its pod: `Keep` (the default: they go
    /// with the execution), `OnStepCompletion` (every attempt's Job, once status records its outcome) or
    /// `OnStepSuccess` (only succeeded attempts' Jobs; failed ones stay for their logs). Finished pods count
    /// against the cluster's terminated-pod limit and weigh on every pod watch; a large or long run frees them as
    /// it goes. Once deleted, a step's logs are gone; its outcome, exit code and result stay in `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_cleanup: Option<JobCleanup>,

    /// How many entries `status.history` keeps (the oldest are dropped first). Defaults to 20, at most 100.
    #[serde(default = "default_history_limit")]
    #[schemars(range(min = 1, max = 100))]
    pub history_limit: u32,
}

fn default_history_limit() -> u32 {
    DEFAULT_HISTORY_LIMIT
}

/// One step of an execution. Fields left unset are inherited from the top-level `spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepSpec {
    /// Name of the step: a DNS label (lower-case letters, digits and '-', at most 63 characters), unique within the
    /// execution.
    #[schemars(length(min = 1, max = 63), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,

    /// Container image of this step (default: `spec.image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub image: Option<String>,

    /// Image pull policy of this step's worker container (default: `spec.imagePullPolicy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Always", "IfNotPresent", "Never"]))]
    pub image_pull_policy: Option<String>,

    /// ServiceAccount this step's pods run as (default: `spec.serviceAccountName`), under the same rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub service_account_name: Option<String>,

    /// Entrypoint of this step (default: `spec.command`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub command: Option<Vec<String>>,

    /// Arguments of this step (default: `spec.args`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub args: Option<Vec<String>>,

    /// Extra environment variables of this step, merged over `spec.env` (same name: the step wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub env: Option<Vec<EnvVar>>,

    /// Compute resources of this step (default: `spec.resources`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Extra annotations of this step's pods, merged over `spec.podAnnotations`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "string_map")]
    pub pod_annotations: Option<BTreeMap<String, String>>,

    /// Scheduling, security and extra volumes of this step's pods, merged over `spec.podTemplate` (see
    /// `PodTemplate` for how; `kubectl explain crewexecution.spec.podTemplate` describes every field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = crate::schema::without_nested_descriptions)]
    pub pod_template: Option<PodTemplate>,

    /// Deadline of one attempt of this step, enforced by the Job controller (`activeDeadlineSeconds`). A timed-out
    /// attempt is a failed attempt and may be retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2_147_483_647))]
    pub timeout_seconds: Option<i64>,
    /// Stall timeout of this step (default: `spec.stallTimeoutSeconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2_147_483_647))]
    pub stall_timeout_seconds: Option<i64>,
    /// What a stall of this step does (default: `spec.onStall`, else `Warn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_stall: Option<OnStall>,
}

/// What a stalled step (no progress report for `stallTimeoutSeconds`) does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OnStall {
    /// Condition `ProgressStalled` and a Warning Event; the step keeps running.
    #[default]
    Warn,
    /// The run fails with reason `ProgressStalled` (its Job is deleted).
    Fail,
    /// The attempt's Job is deleted and the attempt fails with reason `ProgressStalled`; the retry policy decides.
    Retry,
}

/// When a step attempt's finished Job (and its pod) is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum JobCleanup {
    /// Kept until the execution is deleted.
    #[default]
    Keep,
    /// Deleted once status records the attempt's outcome.
    OnStepCompletion,
    /// Deleted once status records the attempt's success; failed attempts' Jobs are kept.
    OnStepSuccess,
}

/// Retry policy of failed step attempts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// How many times a failed step attempt is retried (0: never). Every attempt is a new Job.
    #[serde(default)]
    #[schemars(range(min = 0, max = 100))]
    pub limit: u32,

    /// Delay before the first retry; doubles with every further attempt. Defaults to 10.
    #[serde(default = "default_backoff_seconds")]
    #[schemars(range(min = 0, max = 86400))]
    pub backoff_seconds: u32,

    /// Upper bound of the delay between attempts. Defaults to 300.
    #[serde(default = "default_max_backoff_seconds")]
    #[schemars(range(min = 0, max = 86400))]
    pub max_backoff_seconds: u32,
}

fn default_backoff_seconds() -> u32 {
    DEFAULT_BACKOFF_SECONDS
}

fn default_max_backoff_seconds() -> u32 {
    DEFAULT_MAX_BACKOFF_SECONDS
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            limit: 0,
            backoff_seconds: DEFAULT_BACKOFF_SECONDS,
            max_backoff_seconds: DEFAULT_MAX_BACKOFF_SECONDS,
        }
    }
}

/// Where a run resumes from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResumeFrom {
    /// The execution (same namespace) whose earlier steps are taken over; every step before `step` must have
    /// succeeded there, under the same name and in the same order.
    #[schemars(length(min = 1, max = 253))]
    pub execution: String,
    /// The first step this run executes.
    #[schemars(length(min = 1, max = 63))]
    pub step: String,
}
