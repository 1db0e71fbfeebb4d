//! crew-operator: runs CrewExecutions (a crew of AI agents, or any multi-step batch work) as Kubernetes Jobs.
//!
//! `lifecycle` is the pure core (no client, no clock); `build` turns its decisions into Kubernetes objects;
//! `controller` is the thin I/O shell around both.

pub mod api;
pub mod build;
pub mod client;
pub mod controller;
pub mod devcluster;
pub mod error;
pub mod http;
pub mod leader;
pub mod lifecycle;
pub mod metrics;
pub mod shutdown;
pub mod telemetry;
