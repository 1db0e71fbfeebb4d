//! The core's readings of the Jobs and pods the operator watches (`crew_core::lifecycle::job_summary` and
//! `pod_report`), under the names the shell's child index and Job creation use.

pub use crew_core::lifecycle::job_summary::{JobRecord, controller_of, summarise_job};
pub use crew_core::lifecycle::pod_report::{PodReport, pod_report};
