//! The archive's pure half: what is stored of a finished (or deleted) execution ([`record`]), and the duration
//! histogram its statistics rollups keep ([`histogram`]). The operator writes them to PostgreSQL.

pub mod histogram;
pub mod record;

pub use record::{ArchiveRecord, ResultLocation, StepRecord};
