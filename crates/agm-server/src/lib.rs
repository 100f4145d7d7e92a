//! The agm server. Its folders tell the story of a request (docs/ARCHITECTURE.md has
//! the map):
//!
//! - [`http`]: the edge — the listener, the axum handlers per client API, body limits,
//!   the conversation adapters and the client-facing errors;
//! - [`routing`]: what happens to a request once it is understood — the executor of
//!   the routing plan, the accounts, breakers, the official API, safe mode, the model
//!   catalogue and the effects (audit, metrics, disabling) of each outcome;
//! - [`state`]: what the CLI and the server share through the store, as typed,
//!   transactional operations;
//! - [`ops`]: what operators run beside requests — `agm doctor`, the discovery gate,
//!   background jobs, update checks, telemetry;
//! - [`cluster`]: cluster mode's Redis half — the hot state several replicas share,
//!   the event channel they follow, the leader lease, degraded mode;
//! - [`app`] wires them into one [`app::AppState`]; [`config`] reads agm.toml;
//!   [`console`] is the web console.

pub mod app;
pub mod cluster;
pub mod config;
pub mod console;
pub mod http;
pub mod ops;
pub mod routing;
pub mod state;
