//! `CrewSink`: where the transitions of a namespace's executions are delivered, as CloudEvents over HTTP.
// Each `printcolumn(...)` repeats `type_ = "integer"`; that is not a mistake.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Desired state of a CrewSink.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "crew.dev",
    version = "v1alpha1",
    kind = "CrewSink",
    namespaced,
    status = "CrewSinkStatus",
    derive = "PartialEq",
    shortname = "cxsink",
    category = "crew",
    doc = "CrewSink delivers the transitions of the CrewExecutions of its namespace to an HTTP receiver as CloudEvents 1.0: at least once, in order per execution, with stable ids (receivers drop duplicates by id).",
    printcolumn(
        name = "URL",
        type_ = "string",
        json_path = ".spec.url",
        description = "Receiver"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "False while deliveries fail"
    ),
    printcolumn(
        name = "Delivered",
        type_ = "integer",
        json_path = ".status.delivered",
        description = "Events the receiver acknowledged"
    ),
    printcolumn(
        name = "Failed",
        type_ = "integer",
        json_path = ".status.failed",
        description = "Events dropped after their last retry"
    ),
    printcolumn(
        name = "Pending",
        type_ = "integer",
        json_path = ".status.pending",
        description = "Events waiting for delivery"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CrewSinkSpec {
    /// The receiver: an `http://` or `https://` URL. Every event is POSTed to it.
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')").message("url must be an http:// or https:// URL"))]
    #[schemars(length(min = 8, max = 2048))]
    pub url: String,
    /// The event types to send (default: all of them): `dev.crew.execution.state_changed` (every phase change),
    /// `dev.crew.execution.completed` (once, at the terminal phase), `dev.crew.step.state_changed` (a step
    /// started again, succeeded, failed or is retried) and `dev.crew.execution.progress` (a worker's report, at most
    /// one per execution per `progressIntervalSeconds`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub types: Vec<SinkEventType>,
    /// Only executions whose labels this selector matches (default: every execution of the namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// The CloudEvents HTTP content mode: `binary` (attributes in `ce-` headers, the data as the body; the
    /// default) or `structured` (one `application/cloudevents+json` document).
    #[serde(default)]
    pub mode: ContentMode,
    /// How failed deliveries are retried.
    #[serde(default)]
    pub retry: SinkRetry,
    /// Stop delivering (events wait, and are delivered once it is cleared; executions are not held for a
    /// suspended sink).
    #[serde(default)]
    pub suspend: bool,
    /// Seconds a receiver may take to answer one delivery (default 10).
    #[serde(default = "default_timeout_seconds")]
    #[schemars(range(min = 1, max = 60))]
    pub timeout_seconds: u32,
    /// At most one progress event per execution this often, in seconds (default 10).
    #[serde(default = "default_progress_interval_seconds")]
    #[schemars(range(min = 1, max = 3600))]
    pub progress_interval_seconds: u32,
    /// Credentials sent to the receiver: `Authorization: Bearer <token>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<SinkAuth>,
    /// Sign every body with HMAC-SHA256: header `X-Crew-Signature: sha256=<hex digest of the body>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing: Option<SinkSigning>,
}

fn default_timeout_seconds() -> u32 {
    10
}

fn default_progress_interval_seconds() -> u32 {
    10
}

/// A CloudEvents type the operator sends.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum SinkEventType {
    /// Every phase change of an execution.
    #[serde(rename = "dev.crew.execution.state_changed")]
    ExecutionStateChanged,
    /// An execution reached its terminal phase (once).
    #[serde(rename = "dev.crew.execution.completed")]
    ExecutionCompleted,
    /// A step started again, succeeded, failed or is retried.
    #[serde(rename = "dev.crew.step.state_changed")]
    StepStateChanged,
    /// A worker reported progress (throttled).
    #[serde(rename = "dev.crew.execution.progress")]
    ExecutionProgress,
}

impl SinkEventType {
    /// Every type.
    pub const ALL: [SinkEventType; 4] = [
        SinkEventType::ExecutionStateChanged,
        SinkEventType::ExecutionCompleted,
        SinkEventType::StepStateChanged,
        SinkEventType::ExecutionProgress,
    ];

    /// The CloudEvents `type` attribute.
    pub const fn as_str(self) -> &'static str {
        match self {
            SinkEventType::ExecutionStateChanged => "dev.crew.execution.state_changed",
            SinkEventType::ExecutionCompleted => "dev.crew.execution.completed",
            SinkEventType::StepStateChanged => "dev.crew.step.state_changed",
            SinkEventType::ExecutionProgress => "dev.crew.execution.progress",
        }
    }
}

/// The CloudEvents HTTP content mode.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum ContentMode {
    /// Attributes in `ce-` headers, the data as the body (`application/json`).
    #[default]
    Binary,
    /// One `application/cloudevents+json` document with the attributes and the data.
    Structured,
}

/// How failed deliveries are retried: with exponential backoff and jitter, then dropped visibly (the sink's
/// `failed` count, `lastError`, a Warning Event and a metric).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SinkRetry {
    /// Retries after the first attempt (default 10; 0: one attempt only).
    #[serde(default = "default_retry_limit")]
    #[schemars(range(max = 100))]
    pub limit: u32,
    /// First wait, in seconds (default 1); each retry waits twice as long, up to `maxBackoffSeconds`.
    #[serde(default = "default_backoff_seconds")]
    #[schemars(range(min = 1, max = 3600))]
    pub backoff_seconds: u32,
    /// Longest wait between two retries, in seconds (default 300).
    #[serde(default = "default_max_backoff_seconds")]
    #[schemars(range(min = 1, max = 86_400))]
    pub max_backoff_seconds: u32,
}

fn default_retry_limit() -> u32 {
    10
}

fn default_backoff_seconds() -> u32 {
    1
}

fn default_max_backoff_seconds() -> u32 {
    300
}

impl Default for SinkRetry {
    fn default() -> Self {
        SinkRetry {
            limit: default_retry_limit(),
            backoff_seconds: default_backoff_seconds(),
            max_backoff_seconds: default_max_backoff_seconds(),
        }
    }
}

/// A key of a Secret of the sink's namespace. The operator reads it only when the Secret is labelled
/// `crew.dev/sink-credentials: "true"`: whoever may edit Secrets there opted it in, so creating a CrewSink never
/// sends a Secret its creator could not read to a URL they control.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key in its data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Credentials sent to the receiver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SinkAuth {
    /// The bearer token (`Authorization: Bearer <token>`).
    pub bearer_token_secret_ref: SecretKeyRef,
}

/// How bodies are signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SinkSigning {
    /// The HMAC-SHA256 key.
    pub secret_ref: SecretKeyRef,
}

/// The label that opts a Secret in to being read for CrewSinks.
pub const SINK_CREDENTIALS_LABEL: &str = "crew.dev/sink-credentials";

/// What the operator has delivered to this sink.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrewSinkStatus {
    /// Events the receiver acknowledged (2xx).
    #[serde(default)]
    pub delivered: u64,
    /// Events dropped after their last retry.
    #[serde(default)]
    pub failed: u64,
    /// Events waiting for delivery (when last written).
    #[serde(default)]
    pub pending: u64,
    /// When the receiver last acknowledged an event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery_time: Option<Time>,
    /// The last delivery failure, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Every transition recorded before this time has been delivered or dropped (the delivery position: after a
    /// restart the operator delivers again from here; receivers drop the duplicates by id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_up_to: Option<Time>,
    /// `Ready` (False while deliveries fail, or a credential is missing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation the status was written for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
