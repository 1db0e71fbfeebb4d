//! `CrewExecution.status`: what the operator observed and decided, written with server-side apply.

use super::phase::{Phase, StepPhase};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Observed state of a CrewExecution. Derived from the Jobs the execution owns; history and terminal phases are
/// kept as written.
///
/// A new execution reads `observedGeneration: 0` (a schema default) until the operator's first write, so that
/// kstatus-based waits (`helm install --wait`, Flux, `kubectl wait --for=jsonpath`) see it as in progress, not as
/// current.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("default" = {"observedGeneration": 0}))]
pub struct CrewExecutionStatus {
    /// Lifecycle phase: Pending, Queued, Running, Paused, Succeeded, Failed or Cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// Machine-readable reason of the current phase (for example `Started`, `RetryBackoff`, `RetriesExhausted`,
    /// `TimedOut`, `InvalidSpec`, `Cancelled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,

    /// Human-readable explanation of the current phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// Step progress, also shown by `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,

    /// One entry per step, in spec order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepStatus>,

    /// The steps this run executes (the fields of `spec.steps`), each with every field it inherits from the spec
    /// filled in, fixed when the first step started (as Tekton keeps `pipelineSpec` and Argo `storedTemplates`). Editing `spec.steps` or
    /// the fields steps inherit (`image`, `imagePullPolicy`, `serviceAccountName`, `command`, `args`, `env`, `resources`,
    /// `podAnnotations`, `podTemplate`, `stallTimeoutSeconds`, `onStall`) after that
    /// does not change this run: the edit is reported by the condition `StepsChanged` and a Warning Event, and
    /// applies to executions created from the new spec. `cancel`, `suspend`, `timeoutSeconds`, `retry` and
    /// `ttlSecondsAfterFinished` stay live.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        transform = crate::schema::without_validations,
        transform = crate::schema::without_nested_descriptions
    )]
    pub resolved_steps: Vec<super::StepSpec>,

    /// Attempt number (from 1) of the current (or last) step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,

    /// When the execution first started running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    /// When the execution reached a terminal phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,

    /// Seconds from `startTime` to `completionTime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,

    /// `durationSeconds` in human form (for example `1m5s`), shown by `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,

    /// When the next attempt of a failed step starts (set while the reason is `RetryBackoff`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_retry_time: Option<Time>,

    /// Result of the last finished step (its worker's termination message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,

    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Audit trail of every phase transition and step outcome, newest last, at most `spec.historyLimit` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,

    /// Standard conditions: `Ready`, `Reconciling`, `Stalled` (kstatus), `Succeeded` (for `kubectl wait`), and
    /// `Paused`, `Admitted` where they apply; `StepsChanged` while the spec's steps differ from `resolvedSteps`;
    /// `StartBlocked` while the worker cannot start; `ProgressStalled` while the running worker has not reported
    /// for `stallTimeoutSeconds`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// How far an execution has come.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// `100 * (completedSteps + the running step's reported fraction) / totalSteps`, rounded down; 100 once
    /// Succeeded.
    pub percent: u32,
    /// Steps that succeeded.
    pub completed_steps: u32,
    /// Steps in the execution.
    pub total_steps: u32,
    /// Name of the step running now (or waiting for its retry); unset when none is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step: Option<String>,
    /// Human-readable progress note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Short form for `kubectl get`, like `2/3 (66%)`, or `1/3 (45%)` while the running step reports 35%.
    pub display: String,
}

/// Observed state of one step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepStatus {
    /// Step name, as in `spec.steps[].name` (`main` when the spec has no steps).
    pub name: String,
    /// Pending, Running, Retrying, Succeeded, Failed or Cancelled.
    pub phase: StepPhase,
    /// Attempt number (from 1) of the latest attempt; 0 before the first.
    #[serde(default)]
    pub attempt: u32,
    /// Name of the latest attempt's Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// When the latest attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the latest attempt finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Seconds the latest attempt ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,
    /// Exit code of the latest attempt's worker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Human-readable outcome of the latest attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The attempt's result: the first 1 KiB of what its worker posted (`POST /v1/result`; the whole of it is in
    /// `resultRef`), or else its termination message (at most 4 KiB). Cut results end with a marker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Where the full result the attempt's worker posted is kept (unset: the worker posted none, and `result` is
    /// its termination message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_ref: Option<ResultRef>,
    /// What the latest attempt's worker reported about its own progress (`POST /v1/progress`, see the README,
    /// "Reporting progress"); unset until it reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<StepProgress>,
    /// Custom figures the latest attempt's worker reported (for example `records_processed`), at most 32, the
    /// latest value of each.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub metrics: BTreeMap<String, f64>,
    /// Warnings the latest attempt's worker reported, the last 10, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub warnings: Vec<String>,
}

/// A worker's report of how far its step attempt has come.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepProgress {
    /// Percent of the step done, 0 to 100, never decreasing within an attempt.
    #[schemars(range(min = 0, max = 100))]
    pub percent: u32,
    /// What the worker is doing (at most 256 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub message: Option<String>,
    /// When the worker last reported (a heartbeat included), as of the last status write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_time: Option<Time>,
}

/// One phase transition or step outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// When it happened.
    pub time: Time,
    /// Phase before.
    pub from: Phase,
    /// Phase after (equal to `from` for a step outcome that did not change the phase).
    pub to: Phase,
    /// Machine-readable reason, also the reason of the matching Kubernetes Event.
    pub reason: String,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The step concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

/// Where a posted step result is kept, and how to check it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResultRef {
    /// The ConfigMap (in the execution's namespace, owned by the execution) whose key `result` holds it.
    pub config_map: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, as 64 lower-case hex digits.
    pub sha256: String,
    /// `application/json` or `text/plain`, as posted.
    pub content_type: String,
}
