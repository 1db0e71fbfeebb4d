//! The commands: each reads through [`crate::cluster::Cluster`], draws with [`crate::view`], and says how the
//! process exits.

pub mod archived;
pub mod bulk;
pub mod describe;
pub mod list;
pub mod logs;
pub mod rerun;
pub mod result;
pub mod stats;
pub mod watch;
