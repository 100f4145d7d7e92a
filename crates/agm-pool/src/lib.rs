//! agm's state machines. Each takes the current time as a parameter; only the edges
//! read the clock, so tests never sleep.
//!
//! - [`signatures`]: the bounded, TTL'd cache of thinking signatures that lets agm
//!   restore signatures clients drop and refuse ones from another model family.

pub mod signatures;
