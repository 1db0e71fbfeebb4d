//! The pure core: every lifecycle decision as a function over plain data.
//!
//! Nothing here talks to the API server, reads the clock or the environment: the shell (`controller`) observes the
//! cluster into an [`Observed`] snapshot, passes `now`, and executes the [`Plan`] that [`decide`] returns.

pub mod backoff;
pub mod cleanup;
pub mod conditions;
pub mod decide;
pub mod draft;
pub mod history;
pub mod job_summary;
pub mod membership;
pub mod names;
pub mod observed;
pub mod plan;
pub mod pod_report;
pub mod pod_template;
pub mod progress;
pub mod queue;
pub mod queue_book;
pub mod queue_stats;
pub mod report;
pub mod resolve;
pub mod results;
pub mod steps;
pub mod text;
pub mod timefmt;
pub mod transitions;
pub mod worker_policy;
pub mod worker_volumes;

pub use decide::decide;
pub use observed::{
    Admission, ArchiveFact, JobController, JobRejection, JobState, Observed, ObservedJob,
    ResumeSource, StartBlock, WorkerOutcome,
};
pub use plan::{EventNote, FinalizerChange, Launch, Plan, Read};
pub use resolve::{InvalidSpec, ResolvedStep, resolve_frozen, resolve_steps};
