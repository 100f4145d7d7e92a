//! Routing: the executor of agm-pool's attempt plan over accounts and the official
//! API, and everything it consults or changes on the way.

pub mod accounts;
pub(crate) mod breaker;
pub mod catalogue;
pub mod drift;
pub(crate) mod effects;
pub mod error;
pub(crate) mod executor;
pub mod model_map;
pub(crate) mod official;
pub mod safe_mode;
