//! Pure rendering: objects and a clock in, text out. No client and no terminal here, so every view is tested
//! with golden output at a fixed clock.

pub mod archive_stats;
pub mod bar;
pub mod bulk;
pub mod describe;
#[cfg(test)]
mod golden_tests;
pub mod history;
pub mod list;
pub mod stats;
pub mod style;
pub mod summary;
pub mod table;
pub mod time;
pub mod waiting;
pub mod watch;
