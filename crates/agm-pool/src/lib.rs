//! agm's state machines. Each takes the current time as a parameter; only the edges
//! read the clock, so tests never sleep.
//!
//! - [`signatures`]: the bounded, TTL'd cache of thinking signatures that lets agm
//!   restore signatures clients drop and refuse ones from another model family.
//!
//! The reliability stack (no I/O, no async; every transition returns an event instead
//! of logging):
//!
//! - [`safe_mode`] (L0 feature flag, L1 safe mode): Antigravity or the official API.
//! - [`selection`] (L2): which account serves a request (scheduling strategies, tiers,
//!   quota protection, sticky sessions).
//! - [`cooldown`]: per account+model cooldowns from rate limits and quota exhaustion,
//!   and the per-model capacity backoff.
//! - [`breaker`] (L4): the circuit breaker per endpoint+account.
//! - [`backoff`]: jittered exponential backoff and the retry budget (`max_wait`).
//! - [`attempts`] (L5): the routing policy of one request as a pure plan: which account
//!   (or official-API key) next, when to wait, when to fail, and the side effects to
//!   perform, decided from each upstream outcome.

pub mod attempts;
pub mod backoff;
pub mod breaker;
pub mod cooldown;
pub mod safe_mode;
pub mod selection;
pub mod signatures;
pub mod warmup;
