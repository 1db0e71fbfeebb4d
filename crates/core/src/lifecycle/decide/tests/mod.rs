//! Tests of [`decide`](super::decide) through a small simulated world.
//!
//! [`world::World`] holds what the shell would see (spec, last written status, the Jobs of the execution, the queue
//! verdict) and applies every plan the way the shell does: ConfigMap, Job creation, Job deletion, status write,
//! events. Its `step` also checks, after every reconcile of every story, that `decide` is at a fixed point (running
//! it again on the world it produced, at the same time, asks for no write) and the per-reconcile invariants
//! (transition graph, history chain and cap, monotone attempts, terminal phases stay, one Job per step attempt, at
//! most one live Job).
//!
//! Modules: `world` (the harness and its per-reconcile checks), `stories` (named scripted lives, one test each,
//! one file per concern: `cargo test -p crew-core decide::tests::stories::retry` runs one), `invariants`
//! (whole-life checks over every story), `writes` (write counts, time truncation) and `properties` (random event
//! sequences).

mod invariants;
mod properties;
mod stories;
mod world;
mod writes;

/// What the stories, checks and properties share: the harness, its helpers and the types they script.
mod prelude {
    pub use super::world::{
        NAME, World, at, earlier_controller, foreign_job, job, retry, spec, step_spec, time,
    };
    pub use crate::lifecycle::JobController;
    pub use crate::lifecycle::conditions::find;
    pub use crate::lifecycle::report::AttemptReports;
    pub use crate::lifecycle::steps::DEFAULT_START_TIMEOUT_SECONDS;
    pub use crate::lifecycle::worker_policy::WorkerPolicy;
    pub use crate::lifecycle::{
        Admission, JobState, Observed, ObservedJob, Read, StartBlock, WorkerOutcome, decide,
    };
    pub use crew_api::{
        ConditionType, CrewExecutionSpec, JobCleanup, OnStall, Phase, RetryPolicy, StepPhase,
        StepSpec,
    };
    pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
}
