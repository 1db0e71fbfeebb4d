//! crew-operator: runs CrewExecutions (a crew of AI agents, or any multi-step batch work) as Kubernetes Jobs.
//!
//! This crate is the I/O shell: `controller` observes the cluster, asks the pure core (`crew_core::lifecycle`) what
//! to do and writes what its plan lists (objects from `crew_core::build`); `leader`, `metrics` and `http` serve the
//! process around it. The API types are in `crew_api`.

#![forbid(unsafe_code)]

pub mod archive;
pub mod auth;
pub mod client;
pub mod controller;
pub mod error;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod notify;
pub mod progress;
pub mod results;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
