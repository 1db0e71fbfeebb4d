//! `CrewQueue`: a concurrency limit shared by the executions that name it, and their statistics.
// Each `printcolumn(...)` repeats `type_ = "integer"`; that is not a mistake.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a CrewQueue.
#[derive(CustomResource, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "crew.dev",
    version = "v1alpha1",
    kind = "CrewQueue",
    namespaced,
    status = "CrewQueueStatus",
    derive = "PartialEq",
    shortname = "cq",
    category = "crew",
    doc = "CrewQueue admits the CrewExecutions of its namespace that name it in spec.queue, at most maxRunning at a time, highest priority first, then first come first served; its status carries queue statistics.",
    printcolumn(
        name = "Max",
        type_ = "integer",
        json_path = ".spec.maxRunning",
        description = "Most executions running at once"
    ),
    printcolumn(
        name = "Running",
        type_ = "integer",
        json_path = ".status.running",
        description = "Executions running"
    ),
    printcolumn(
        name = "Queued",
        type_ = "integer",
        json_path = ".status.queued",
        description = "Executions waiting for a slot"
    ),
    printcolumn(
        name = "Succeeded",
        type_ = "integer",
        json_path = ".status.succeeded",
        description = "Executions that succeeded"
    ),
    printcolumn(
        name = "Failed",
        type_ = "integer",
        json_path = ".status.failed",
        description = "Executions that failed"
    ),
    printcolumn(
        name = "Success%",
        type_ = "integer",
        json_path = ".status.successRate",
        description = "Percent of finished executions that succeeded"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CrewQueueSpec {
    /// Most executions of this queue that may be Running at once (at least 1, at most 1000000). The others wait in
    /// phase Queued.
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_running: u32,
}

/// Statistics of a CrewQueue, recomputed from its executions (written at most once per second).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrewQueueStatus {
    /// Executions not admitted yet for another reason than a full queue (phase Pending).
    #[serde(default)]
    pub pending: u32,
    /// Executions waiting for a slot (phase Queued).
    #[serde(default)]
    pub queued: u32,
    /// Executions holding a slot (phase Running).
    #[serde(default)]
    pub running: u32,
    /// Paused executions (they hold no slot).
    #[serde(default)]
    pub paused: u32,
    /// Executions that succeeded (among those still present).
    #[serde(default)]
    pub succeeded: u32,
    /// Executions that failed (among those still present).
    #[serde(default)]
    pub failed: u32,
    /// Executions that were cancelled (among those still present).
    #[serde(default)]
    pub cancelled: u32,
    /// Percent of finished executions that succeeded, rounded down; unset before the first finishes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<u32>,
    /// Mean duration in seconds of the last 100 finished executions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_duration_seconds: Option<u64>,
    /// 95th percentile duration in seconds of the last 100 finished executions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_duration_seconds: Option<u64>,
    /// How long the execution waiting longest has waited, in seconds (as of `updateTime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_queued_seconds: Option<u64>,
    /// When these figures were computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_time: Option<Time>,
    /// The `metadata.generation` these figures were computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
