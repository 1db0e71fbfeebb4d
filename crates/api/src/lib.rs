//! The `crew.dev/v1alpha1` API: the custom resources the operator serves.
//!
//! Plain data only: serde + schemars types whose doc comments become the CRD schema descriptions
//! (`kubectl explain`). Defaults live here (serde defaults mirrored in the schema), never in a write to `spec`.

#![forbid(unsafe_code)]

pub mod archive;
pub mod crds;
pub mod execution;
pub mod phase;
pub mod pod_template;
pub mod queue;
pub mod schema;
pub mod sink;
pub mod status;
pub mod vocabulary;

pub use execution::{
    CrewExecution, CrewExecutionSpec, JobCleanup, OnStall, ResumeFrom, RetryPolicy, StepSpec,
};
pub use phase::{Phase, StepPhase};
pub use pod_template::PodTemplate;
pub use queue::{CrewQueue, CrewQueueSpec, CrewQueueStatus};
pub use sink::{CrewSink, CrewSinkSpec, CrewSinkStatus};
pub use status::{
    CrewExecutionStatus, HistoryEntry, Progress, ResultRef, StepProgress, StepStatus,
};
pub use vocabulary::{ConditionType, EventType, Reason};

/// API group of every resource of the operator.
pub const GROUP: &str = "crew.dev";
/// Field manager used for every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "crew-operator";
