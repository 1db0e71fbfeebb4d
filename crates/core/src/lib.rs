//! The pure core of crew-operator.
//!
//! [`lifecycle`] decides, as a function over plain data, what one reconcile of a CrewExecution does; [`build`] turns
//! those decisions into the Kubernetes objects and patches the shell writes. This crate has no Kubernetes client and
//! no async runtime among its dependencies, and reads neither the clock nor the environment: the operator
//! (`crew-operator`, the thin I/O shell) observes the cluster, passes `now`, and executes the returned plan.

#![forbid(unsafe_code)]

pub mod archive;
pub mod build;
pub mod lifecycle;
pub mod notify;
