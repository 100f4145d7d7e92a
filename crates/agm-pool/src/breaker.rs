//! The circuit breaker (L4), one per (endpoint, account).
//!
//! ```text
//!            failure_threshold consecutive failures
//!   Closed ───────────────────────────────────────────▶ Open { until }
//!     ▲                                                  │ reset_timeout passes
//!     │ a probe succeeds                                 ▼
//!     └──────────────────────────────────────────── HalfOpen { trials_in_flight }
//!                         a probe fails: Open again, the timeout doubled (capped)
//! ```
//!
//! Open rejects at once until `until`; then up to `half_open_max_attempts` probes may
//! be in flight at a time. A successful probe closes the circuit and resets
//! everything; a failed one re-opens it for twice as long as the last time
//! (30 s, 60 s, 120 s, … up to `max_reset_timeout`).
//!
//! What counts as a failure is the caller's call. From `agm_google::ErrorClass`:
//! `ServerError`, `Network` and `Decode` count; every other class (rate limits,
//! quota, capacity, 4xx, auth) says nothing about whether the endpoint works, and is
//! neither a failure nor a success here (release a probe with
//! [`Breakers::release_probe`]).
//!
//! Results that arrive while the circuit is Open (before `until`) come from requests
//! started before it opened; they are ignored. Once `until` has passed the circuit is
//! HalfOpen whether or not a probe was asked for, so any result then counts as a
//! probe's.
//!
//! Every change of state is returned as a [`Transition`], for the caller to log,
//! audit and count; nothing here logs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Which breaker: one per upstream endpoint and account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct BreakerKey {
    pub endpoint: String,
    pub account: String,
}

impl BreakerKey {
    pub fn new(endpoint: impl Into<String>, account: impl Into<String>) -> BreakerKey {
        BreakerKey {
            endpoint: endpoint.into(),
            account: account.into(),
        }
    }
}

/// `[circuit_breaker]` in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open the first time.
    pub reset_timeout: Duration,
    /// The cap on the doubled timeout.
    pub max_reset_timeout: Duration,
    /// Probes allowed in flight at a time while half-open.
    pub half_open_max_attempts: u32,
}

impl Default for BreakerConfig {
    fn default() -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 3,
            reset_timeout: Duration::from_secs(30),
            max_reset_timeout: Duration::from_secs(30 * 60),
            half_open_max_attempts: 1,
        }
    }
}

impl BreakerConfig {
    /// How long the circuit stays open after its `reopen_count`-th failed probe.
    pub fn open_for(&self, reopen_count: u32) -> Duration {
        let factor = 1u32.checked_shl(reopen_count.min(31)).unwrap_or(u32::MAX);
        self.reset_timeout
            .checked_mul(factor)
            .unwrap_or(self.max_reset_timeout)
            .min(self.max_reset_timeout.max(self.reset_timeout))
    }
}

/// The state of one circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed {
        consecutive_failures: u32,
    },
    /// Rejecting until `until`; `reopen_count` failed probes since it first opened.
    Open {
        until: Instant,
        reopen_count: u32,
    },
    /// Letting probes through, `trials_in_flight` of them now.
    HalfOpen {
        trials_in_flight: u32,
        reopen_count: u32,
    },
}

impl CircuitState {
    const CLOSED: CircuitState = CircuitState::Closed {
        consecutive_failures: 0,
    };

    /// `closed`, `open` or `half_open`.
    pub fn name(&self) -> &'static str {
        match self {
            CircuitState::Closed { .. } => "closed",
            CircuitState::Open { .. } => "open",
            CircuitState::HalfOpen { .. } => "half_open",
        }
    }

    /// The state as seen at `now`: an Open circuit whose time is up is HalfOpen.
    fn at(self, now: Instant) -> CircuitState {
        match self {
            CircuitState::Open {
                until,
                reopen_count,
            } if now >= until => CircuitState::HalfOpen {
                trials_in_flight: 0,
                reopen_count,
            },
            other => other,
        }
    }
}

/// Whether a request may go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allow {
    /// The circuit is closed.
    Yes,
    /// The circuit is half-open and this request is a probe: report its outcome with
    /// `record_success`, `record_failure` or `release_probe`.
    Probe,
    /// Rejected. `retry_at` is when the circuit half-opens; `None` while the allowed
    /// probes are still in flight (their outcome decides).
    No { retry_at: Option<Instant> },
}

/// A change of state, for logs, the audit log and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub key: BreakerKey,
    pub from: CircuitState,
    pub to: CircuitState,
    pub at: Instant,
    /// On closing: how long since the circuit first opened.
    pub recovered_after: Option<Duration>,
}

/// A circuit that is not closed, as `snapshot` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakerView {
    pub endpoint: String,
    pub account: String,
    /// `open` or `half_open`.
    pub state: &'static str,
    /// Failed probes since it first opened.
    pub reopen_count: u32,
    /// Probes in flight (half-open only).
    pub trials_in_flight: u32,
    /// Milliseconds until it half-opens (open only).
    pub retry_in_ms: Option<u64>,
    /// Milliseconds since it first opened.
    pub open_for_ms: u64,
    #[serde(skip)]
    pub circuit: CircuitState,
}

#[derive(Debug, Clone, Copy)]
struct Breaker {
    state: CircuitState,
    /// When this episode began (the first Closed → Open), for `recovered_after`.
    opened_at: Option<Instant>,
}

/// Every breaker, keyed by (endpoint, account). Keys appear on first use; a closed
/// breaker with no failures holds no memory.
#[derive(Debug)]
pub struct Breakers {
    config: BreakerConfig,
    inner: Mutex<HashMap<BreakerKey, Breaker>>,
}

impl Breakers {
    pub fn new(config: BreakerConfig) -> Breakers {
        Breakers {
            config,
            inner: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<BreakerKey, Breaker>> {
        // Every mutation is a single insert/remove/assignment: a poisoned map is
        // still consistent.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks to send one request through `key`. A `Probe` takes a half-open slot.
    pub fn allow(&self, key: &BreakerKey, now: Instant) -> Allow {
        let mut map = self.lock();
        let Some(breaker) = map.get_mut(key) else {
            return Allow::Yes;
        };
        match breaker.state.at(now) {
            CircuitState::Closed { .. } => Allow::Yes,
            CircuitState::Open { until, .. } => Allow::No {
                retry_at: Some(until),
            },
            CircuitState::HalfOpen {
                trials_in_flight,
                reopen_count,
            } => {
                if trials_in_flight < self.config.half_open_max_attempts.max(1) {
                    breaker.state = CircuitState::HalfOpen {
                        trials_in_flight: trials_in_flight + 1,
                        reopen_count,
                    };
                    Allow::Probe
                } else {
                    breaker.state = CircuitState::HalfOpen {
                        trials_in_flight,
                        reopen_count,
                    };
                    Allow::No { retry_at: None }
                }
            }
        }
    }

    /// A request through `key` succeeded. From HalfOpen this closes the circuit.
    pub fn record_success(&self, key: &BreakerKey, now: Instant) -> Option<Transition> {
        let mut map = self.lock();
        let breaker = map.get_mut(key)?;
        match breaker.state.at(now) {
            CircuitState::Closed { .. } => {
                map.remove(key);
                None
            }
            // A request started before the circuit opened: says nothing now.
            CircuitState::Open { .. } => None,
            from @ CircuitState::HalfOpen { .. } => {
                let recovered_after = breaker
                    .opened_at
                    .map(|at| now.saturating_duration_since(at));
                map.remove(key);
                Some(Transition {
                    key: key.clone(),
                    from,
                    to: CircuitState::CLOSED,
                    at: now,
                    recovered_after,
                })
            }
        }
    }

    /// A request through `key` failed in a way that counts (see the module docs).
    pub fn record_failure(&self, key: &BreakerKey, now: Instant) -> Option<Transition> {
        let mut map = self.lock();
        let breaker = map.entry(key.clone()).or_insert(Breaker {
            state: CircuitState::CLOSED,
            opened_at: None,
        });
        let from = breaker.state.at(now);
        let to = match from {
            CircuitState::Closed {
                consecutive_failures,
            } => {
                let failures = consecutive_failures.saturating_add(1);
                if failures < self.config.failure_threshold.max(1) {
                    breaker.state = CircuitState::Closed {
                        consecutive_failures: failures,
                    };
                    return None;
                }
                breaker.opened_at = Some(now);
                CircuitState::Open {
                    until: now + self.config.open_for(0),
                    reopen_count: 0,
                }
            }
            CircuitState::Open { .. } => return None,
            CircuitState::HalfOpen { reopen_count, .. } => {
                let reopen_count = reopen_count.saturating_add(1);
                CircuitState::Open {
                    until: now + self.config.open_for(reopen_count),
                    reopen_count,
                }
            }
        };
        breaker.state = to;
        Some(Transition {
            key: key.clone(),
            from,
            to,
            at: now,
            recovered_after: None,
        })
    }

    /// A probe ended with an outcome that says nothing about the endpoint (a 429, a
    /// 400, the client went away): frees its slot.
    pub fn release_probe(&self, key: &BreakerKey) {
        let mut map = self.lock();
        if let Some(Breaker {
            state: CircuitState::HalfOpen {
                trials_in_flight, ..
            },
            ..
        }) = map.get_mut(key)
        {
            *trials_in_flight = trials_in_flight.saturating_sub(1);
        }
    }

    /// Takes another replica's transition of `key` (cluster mode): an open circuit is
    /// open here too until the same end, a closed one closes. Returns nothing: the
    /// replica that saw it logged and audited it.
    pub fn adopt(&self, key: &BreakerKey, to: CircuitState, now: Instant) {
        let mut map = self.lock();
        match to {
            CircuitState::Closed { .. } => {
                map.remove(key);
            }
            CircuitState::Open { until, .. } => {
                let breaker = map.entry(key.clone()).or_insert(Breaker {
                    state: CircuitState::CLOSED,
                    opened_at: None,
                });
                let later = match breaker.state {
                    CircuitState::Open { until: mine, .. } => until > mine,
                    _ => true,
                };
                if later {
                    breaker.opened_at.get_or_insert(now);
                    breaker.state = to;
                }
            }
            CircuitState::HalfOpen { .. } => {}
        }
    }

    /// Manual reset: closes `key`'s circuit. Returns the transition if it was not
    /// closed.
    pub fn reset(&self, key: &BreakerKey, now: Instant) -> Option<Transition> {
        let breaker = self.lock().remove(key)?;
        match breaker.state {
            CircuitState::Closed { .. } => None,
            from => Some(Transition {
                key: key.clone(),
                from,
                to: CircuitState::CLOSED,
                at: now,
                recovered_after: breaker
                    .opened_at
                    .map(|at| now.saturating_duration_since(at)),
            }),
        }
    }

    /// Manual reset of every circuit; returns the transitions of those not closed.
    pub fn reset_all(&self, now: Instant) -> Vec<Transition> {
        let drained: Vec<_> = self.lock().drain().collect();
        let mut out: Vec<Transition> = drained
            .into_iter()
            .filter(|(_, b)| !matches!(b.state, CircuitState::Closed { .. }))
            .map(|(key, b)| Transition {
                key,
                from: b.state,
                to: CircuitState::CLOSED,
                at: now,
                recovered_after: b.opened_at.map(|at| now.saturating_duration_since(at)),
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// `key`'s state as seen at `now` (an Open circuit whose time is up shows as
    /// HalfOpen with no trials).
    pub fn state(&self, key: &BreakerKey, now: Instant) -> CircuitState {
        self.lock()
            .get(key)
            .map_or(CircuitState::CLOSED, |b| b.state.at(now))
    }

    /// Every circuit that is not closed, sorted by endpoint then account.
    pub fn snapshot(&self, now: Instant) -> Vec<BreakerView> {
        let map = self.lock();
        let mut out: Vec<BreakerView> = map
            .iter()
            .filter_map(|(key, b)| {
                let circuit = b.state.at(now);
                let (reopen_count, trials_in_flight, retry_in) = match circuit {
                    CircuitState::Closed { .. } => return None,
                    CircuitState::Open {
                        until,
                        reopen_count,
                    } => (reopen_count, 0, Some(until.saturating_duration_since(now))),
                    CircuitState::HalfOpen {
                        trials_in_flight,
                        reopen_count,
                    } => (reopen_count, trials_in_flight, None),
                };
                Some(BreakerView {
                    endpoint: key.endpoint.clone(),
                    account: key.account.clone(),
                    state: circuit.name(),
                    reopen_count,
                    trials_in_flight,
                    retry_in_ms: retry_in.map(millis),
                    open_for_ms: b
                        .opened_at
                        .map_or(0, |at| millis(now.saturating_duration_since(at))),
                    circuit,
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.endpoint, &a.account).cmp(&(&b.endpoint, &b.account)));
        out
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> BreakerKey {
        BreakerKey::new("https://cloudcode-pa.googleapis.com", "alice@example.com")
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn open(b: &Breakers, t: Instant) -> Option<Transition> {
        let k = key();
        b.record_failure(&k, t);
        b.record_failure(&k, t);
        b.record_failure(&k, t)
    }

    #[test]
    fn an_adopted_transition_opens_and_closes_here_too() {
        let b = Breakers::new(BreakerConfig::default());
        let t0 = Instant::now();
        let k = key();
        let open_until = t0 + secs(30);
        let opened = CircuitState::Open {
            until: open_until,
            reopen_count: 0,
        };
        b.adopt(&k, opened, t0);
        assert_eq!(
            b.allow(&k, t0 + secs(1)),
            Allow::No {
                retry_at: Some(open_until)
            }
        );
        // An earlier end from a slower replica does not shorten it.
        b.adopt(
            &k,
            CircuitState::Open {
                until: t0 + secs(5),
                reopen_count: 0,
            },
            t0,
        );
        assert_eq!(b.state(&k, t0 + secs(10)), opened);
        b.adopt(&k, CircuitState::CLOSED, t0 + secs(11));
        assert_eq!(b.allow(&k, t0 + secs(11)), Allow::Yes);
    }

    #[test]
    fn opens_after_threshold_consecutive_failures() {
        let b = Breakers::new(BreakerConfig::default());
        let t0 = Instant::now();
        let k = key();
        assert_eq!(b.record_failure(&k, t0), None);
        assert_eq!(b.record_failure(&k, t0), None);
        assert_eq!(
            b.state(&k, t0),
            CircuitState::Closed {
                consecutive_failures: 2
            }
        );
        assert_eq!(b.allow(&k, t0), Allow::Yes);
        let t = b.record_failure(&k, t0).expect("opens");
        assert_eq!(
            t.from,
            CircuitState::Closed {
                consecutive_failures: 2
            }
        );
        assert_eq!(
            t.to,
            CircuitState::Open {
                until: t0 + secs(30),
                reopen_count: 0
            }
        );
        assert_eq!(
            b.allow(&k, t0 + secs(29)),
            Allow::No {
                retry_at: Some(t0 + secs(30))
            }
        );
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = Breakers::new(BreakerConfig::default());
        let t0 = Instant::now();
        let k = key();
        b.record_failure(&k, t0);
        b.record_failure(&k, t0);
        assert_eq!(b.record_success(&k, t0), None);
        b.record_failure(&k, t0);
        b.record_failure(&k, t0);
        assert_eq!(b.allow(&k, t0), Allow::Yes);
        assert!(b.snapshot(t0).is_empty());
    }

    #[test]
    fn half_open_allows_one_probe_and_a_success_closes() {
        let b = Breakers::new(BreakerConfig::default());
        let t0 = Instant::now();
        let k = key();
        open(&b, t0);
        let t1 = t0 + secs(30);
        assert_eq!(
            b.state(&k, t1),
            CircuitState::HalfOpen {
                trials_in_flight: 0,
                reopen_count: 0
            }
        );
        assert_eq!(b.allow(&k, t1), Allow::Probe);
        assert_eq!(b.allow(&k, t1), Allow::No { retry_at: None });
        let t2 = t1 + secs(2);
        let closed = b.record_success(&k, t2).expect("closes");
        assert_eq!(
            closed.to,
            CircuitState::Closed {
                consecutive_failures: 0
            }
        );
        assert_eq!(closed.recovered_after, Some(secs(32)));
        assert_eq!(b.allow(&k, t2), Allow::Yes);
    }

    #[test]
    fn failed_probes_double_the_timeout_up_to_the_cap() {
        let config = BreakerConfig {
            max_reset_timeout: secs(100),
            ..BreakerConfig::default()
        };
        let b = Breakers::new(config);
        let k = key();
        let mut t = Instant::now();
        open(&b, t);
        let mut waits = Vec::new();
        for _ in 0..4 {
            let Allow::No { retry_at: Some(at) } = b.allow(&k, t) else {
                panic!("open circuit must reject");
            };
            waits.push(at - t);
            t = at;
            assert_eq!(b.allow(&k, t), Allow::Probe);
            let tr = b.record_failure(&k, t).expect("re-opens");
            assert_eq!(tr.from.name(), "half_open");
            assert_eq!(tr.to.name(), "open");
        }
        assert_eq!(waits, vec![secs(30), secs(60), secs(100), secs(100)]);
        // A success after all that closes and resets the doubling.
        t += secs(100);
        assert_eq!(b.allow(&k, t), Allow::Probe);
        assert!(b.record_success(&k, t).is_some());
        open(&b, t);
        assert_eq!(
            b.allow(&k, t),
            Allow::No {
                retry_at: Some(t + secs(30))
            }
        );
    }

    #[test]
    fn default_doubling_sequence() {
        let c = BreakerConfig::default();
        let seq: Vec<u64> = (0..9).map(|n| c.open_for(n).as_secs()).collect();
        assert_eq!(seq, vec![30, 60, 120, 240, 480, 960, 1800, 1800, 1800]);
        assert_eq!(c.open_for(u32::MAX), secs(1800));
    }

    #[test]
    fn released_probes_free_their_slot() {
        let b = Breakers::new(BreakerConfig::default());
        let t0 = Instant::now();
        let k = key();
        open(&b, t0);
        let t1 = t0 + secs(30);
        assert_eq!(b.allow(&k, t1), Allow::Probe);
        b.release_probe(&k);
        assert_eq!(b.allow(&k, t1), Allow::Probe);
    }

    #[test]
    fn stale_results_while_open_are_ignored() {
        let b = Breakers::new(BreakerConfig::default());
        let t0 = Instant::now();
        let k = key();
        open(&b, t0);
        assert_eq!(b.record_success(&k, t0 + secs(1)), None);
        assert_eq!(b.record_failure(&k, t0 + secs(1)), None);
        assert_eq!(b.state(&k, t0 + secs(1)).name(), "open");
    }

    #[test]
    fn keys_are_independent_and_snapshot_lists_non_closed() {
        let b = Breakers::new(BreakerConfig::default());
        let t0 = Instant::now();
        open(&b, t0);
        let other = BreakerKey::new("https://cloudcode-pa.googleapis.com", "bob@example.com");
        b.record_failure(&other, t0);
        assert_eq!(b.allow(&other, t0), Allow::Yes);
        let snap = b.snapshot(t0 + secs(10));
        assert_eq!(snap.len(), 1);
        assert_eq!(snap[0].account, "alice@example.com");
        assert_eq!(snap[0].state, "open");
        assert_eq!(snap[0].retry_in_ms, Some(20_000));
        assert_eq!(snap[0].open_for_ms, 10_000);
        let json = serde_json::to_value(&snap).expect("serializes");
        assert_eq!(json[0]["state"], "open");
        assert_eq!(json[0]["endpoint"], "https://cloudcode-pa.googleapis.com");
        assert!(json[0].get("circuit").is_none());
    }

    #[test]
    fn manual_reset() {
        let b = Breakers::new(BreakerConfig::default());
        let t0 = Instant::now();
        let k = key();
        open(&b, t0);
        let tr = b.reset(&k, t0 + secs(5)).expect("was open");
        assert_eq!(tr.to.name(), "closed");
        assert_eq!(tr.recovered_after, Some(secs(5)));
        assert_eq!(b.allow(&k, t0 + secs(5)), Allow::Yes);
        assert_eq!(b.reset(&k, t0), None);

        open(&b, t0);
        let other = BreakerKey::new("e2", "a");
        for _ in 0..3 {
            b.record_failure(&other, t0);
        }
        let all = b.reset_all(t0);
        assert_eq!(all.len(), 2);
        assert!(b.snapshot(t0).is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Allow,
        Success,
        Failure,
        Release,
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Allow),
            2 => Just(Op::Success),
            3 => Just(Op::Failure),
            1 => Just(Op::Release),
            2 => (0u64..200_000).prop_map(Op::Advance),
        ]
    }

    proptest! {
        #[test]
        fn breaker_stays_legal(
            ops in proptest::collection::vec(op(), 0..200),
            threshold in 1u32..5,
            max_attempts in 1u32..3,
        ) {
            let config = BreakerConfig {
                failure_threshold: threshold,
                half_open_max_attempts: max_attempts,
                ..BreakerConfig::default()
            };
            let b = Breakers::new(config);
            let k = key();
            let t0 = Instant::now();
            let mut now = t0;
            for op in ops {
                let before = b.state(&k, now);
                match op {
                    Op::Allow => {
                        let allowed = b.allow(&k, now);
                        match before {
                            CircuitState::Open { until, .. } => {
                                prop_assert!(now < until);
                                prop_assert_eq!(allowed, Allow::No { retry_at: Some(until) });
                            }
                            CircuitState::Closed { .. } => prop_assert_eq!(allowed, Allow::Yes),
                            CircuitState::HalfOpen { trials_in_flight, .. } => {
                                if trials_in_flight < max_attempts {
                                    prop_assert_eq!(allowed, Allow::Probe);
                                } else {
                                    prop_assert_eq!(allowed, Allow::No { retry_at: None });
                                }
                            }
                        }
                    }
                    Op::Success => {
                        let tr = b.record_success(&k, now);
                        if let CircuitState::HalfOpen { .. } = before {
                            prop_assert_eq!(b.state(&k, now), CircuitState::Closed { consecutive_failures: 0 });
                            let tr = tr.expect("a transition");
                            prop_assert!(tr.recovered_after.is_some());
                        } else {
                            prop_assert!(tr.is_none());
                        }
                    }
                    Op::Failure => {
                        let tr = b.record_failure(&k, now);
                        if let Some(tr) = tr {
                            prop_assert_eq!(tr.from, before);
                            prop_assert_eq!(tr.to, b.state(&k, now));
                            prop_assert_eq!(tr.to.name(), "open");
                        }
                    }
                    Op::Release => b.release_probe(&k),
                    Op::Advance(ms) => now += Duration::from_millis(ms),
                }
                match b.state(&k, now) {
                    CircuitState::Closed { consecutive_failures } => {
                        prop_assert!(consecutive_failures < threshold);
                    }
                    CircuitState::Open { until, reopen_count } => {
                        prop_assert!(until > now);
                        prop_assert!(until <= now + config.open_for(reopen_count));
                        prop_assert!(until - now <= config.max_reset_timeout);
                    }
                    CircuitState::HalfOpen { trials_in_flight, .. } => {
                        prop_assert!(trials_in_flight <= max_attempts);
                    }
                }
            }
        }
    }
}
