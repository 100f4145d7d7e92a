//! Operator tools and background work: `agm doctor`, the discovery gate, jobs, update
//! checks, telemetry, and checking an account with Google before it is saved (the CLI
//! and the console share it).

pub mod account_files;
pub mod discovery_gate;
pub mod doctor;
pub mod jobs;
pub(crate) mod telemetry;
pub mod updates;
pub mod verify;
pub mod warmup;
