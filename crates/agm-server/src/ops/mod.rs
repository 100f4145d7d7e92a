//! Operator tools and background work: `agm doctor`, the discovery gate, jobs, update
//! checks and telemetry.

pub mod discovery_gate;
pub mod doctor;
pub mod jobs;
pub(crate) mod telemetry;
pub mod updates;
pub mod warmup;
