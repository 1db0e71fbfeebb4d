//! `crew-bench`: the operator against a baseline that chains bare Jobs itself, on fresh local control planes.
//! One concern per module; the pure ones (`prom`, `apiserver_metrics`, `stats`, `timeline`, `workload`,
//! `report`) are unit-tested.

pub mod admission;
pub mod apiserver_metrics;
pub mod archive_scale;
pub mod cli;
pub mod create;
pub mod harness;
pub mod process;
pub mod procstat;
pub mod progress;
pub mod prom;
pub mod queue_idle;
pub mod report;
pub mod run_baseline;
pub mod run_operator;
pub mod sink_receiver;
pub mod slim;
pub mod solo;
pub mod stats;
pub mod timeline;
pub mod workload;
