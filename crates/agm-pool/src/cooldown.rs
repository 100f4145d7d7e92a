//! Cooldowns per (account, model), and the per-model capacity backoff
//! (docs/PROTOCOL.md §3).
//!
//! The caller classifies Google's error and hands over a [`Limit`]; from
//! `agm_google::ErrorClass` the mapping is one-to-one:
//!
//! | `ErrorClass` | [`Limit`] |
//! | --- | --- |
//! | `RateLimited { delay }` | `RateLimited { delay }` |
//! | `QuotaExhausted { delay }` | `QuotaExhausted { delay }` |
//! | `CapacityExhausted { delay }` | `CapacityExhausted { delay }` |
//! | anything else | not a limit: no cooldown |
//!
//! What [`Cooldowns::report`] decides:
//!
//! - a short rate limit (delay ≤ `short_limit`): wait once on the same account (it
//!   keeps the prompt cache), and if it happens again before a success, cool down;
//! - a longer rate limit: cool the account+model down until the delay ends;
//! - quota exhausted: cool down until the reset, but never more than `max_cooldown`
//!   from one hint; a hint beyond that (or none) is flagged `needs_quota_recheck`, for
//!   the quota poller to confirm;
//! - capacity exhausted: not the account's fault. No cooldown on the account; the model
//!   backs off globally, 1 s → 2 s → … → 60 s, reset by a success.
//!
//! Reports that race (several requests on the same account hit the limit at once)
//! are deduplicated: a report while a cooldown is active only extends it when its end
//! is later.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::backoff::{Backoff, Jitter};
use crate::breaker::millis;

/// The kinds of upstream failure that limit an account or a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    RateLimited { delay: Option<Duration> },
    QuotaExhausted { delay: Option<Duration> },
    CapacityExhausted { delay: Option<Duration> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CooldownConfig {
    /// Rate limits this short are waited out once on the same account.
    pub short_limit: Duration,
    /// A rate limit with no delay cools down this long.
    pub default_rate_limit: Duration,
    /// A quota exhaustion with no delay cools down this long (and asks for a
    /// re-check).
    pub default_quota_cooldown: Duration,
    /// The longest cooldown one hint can set.
    pub max_cooldown: Duration,
    /// How long a granted short wait is remembered: a second short limit within it
    /// (and no success between) cools down instead of waiting again.
    pub wait_memory: Duration,
    /// The per-model backoff on capacity errors (no jitter is applied here).
    pub capacity_backoff: Backoff,
}

impl Default for CooldownConfig {
    fn default() -> CooldownConfig {
        CooldownConfig {
            short_limit: Duration::from_secs(5),
            default_rate_limit: Duration::from_secs(60),
            default_quota_cooldown: Duration::from_secs(60 * 60),
            max_cooldown: Duration::from_secs(6 * 60 * 60),
            wait_memory: Duration::from_secs(60),
            capacity_backoff: Backoff {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(60),
                jitter: Jitter::None,
            },
        }
    }
}

/// Why an account+model is cooling down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CooldownReason {
    RateLimited,
    QuotaExhausted {
        /// The hint was missing or absurd: confirm with the quota call.
        needs_quota_recheck: bool,
    },
    /// Set by hand or by the quota poller.
    Manual,
}

/// What the caller does after a [`Limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Wait this long and retry on the same account.
    WaitThenRetrySame(Duration),
    /// The account+model cools down until `until`: switch account.
    Switch {
        until: Instant,
        reason: CooldownReason,
    },
    /// Google is out of capacity for the model: retry (any account) after `until`.
    BackOff { until: Instant },
}

/// One active cooldown, as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cooldown {
    pub account: String,
    pub model: String,
    #[serde(skip)]
    pub until: Instant,
    /// Milliseconds left, at the time of listing.
    pub remaining_ms: u64,
    pub reason: CooldownReason,
}

#[derive(Debug, Clone, Copy)]
struct Active {
    until: Instant,
    reason: CooldownReason,
}

#[derive(Debug, Clone, Copy)]
struct ModelBackoff {
    /// Capacity errors in a row (each after the previous backoff ended).
    level: u32,
    until: Instant,
}

type AccountModel = (String, String);

#[derive(Debug, Default)]
struct Inner {
    cooldowns: HashMap<AccountModel, Active>,
    /// When a short wait was granted, per account+model.
    waited: HashMap<AccountModel, Instant>,
    models: HashMap<String, ModelBackoff>,
}

#[derive(Debug)]
pub struct Cooldowns {
    config: CooldownConfig,
    inner: Mutex<Inner>,
}

impl Cooldowns {
    pub fn new(config: CooldownConfig) -> Cooldowns {
        Cooldowns {
            config,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn config(&self) -> &CooldownConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every mutation is one insert or remove: a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `account` hit `limit` on `model` at `now`: what to do.
    pub fn report(&self, account: &str, model: &str, limit: Limit, now: Instant) -> Decision {
        let key = (account.to_owned(), model.to_owned());
        let mut inner = self.lock();
        let (until, reason) = match limit {
            Limit::CapacityExhausted { delay } => {
                return Decision::BackOff {
                    until: self.capacity(&mut inner, model, delay, now),
                };
            }
            Limit::RateLimited { delay } => {
                let active = inner.cooldowns.get(&key).is_some_and(|a| a.until > now);
                let recently_waited = inner
                    .waited
                    .get(&key)
                    .is_some_and(|at| now.saturating_duration_since(*at) < self.config.wait_memory);
                match delay {
                    Some(d) if d <= self.config.short_limit && !active && !recently_waited => {
                        inner.waited.insert(key, now);
                        return Decision::WaitThenRetrySame(d);
                    }
                    _ => {}
                }
                let d = delay
                    .unwrap_or(self.config.default_rate_limit)
                    .min(self.config.max_cooldown);
                (now + d, CooldownReason::RateLimited)
            }
            Limit::QuotaExhausted { delay } => {
                let needs_quota_recheck = delay.is_none_or(|d| d > self.config.max_cooldown);
                let d = delay
                    .unwrap_or(self.config.default_quota_cooldown)
                    .min(self.config.max_cooldown);
                (
                    now + d,
                    CooldownReason::QuotaExhausted {
                        needs_quota_recheck,
                    },
                )
            }
        };
        inner.waited.remove(&key);
        let entry = inner
            .cooldowns
            .entry(key)
            .or_insert(Active { until, reason });
        if entry.until <= now || until > entry.until {
            *entry = Active { until, reason };
        }
        Decision::Switch {
            until: entry.until,
            reason: entry.reason,
        }
    }

    fn capacity(
        &self,
        inner: &mut Inner,
        model: &str,
        hint: Option<Duration>,
        now: Instant,
    ) -> Instant {
        let backoff = &self.config.capacity_backoff;
        let state = inner
            .models
            .entry(model.to_owned())
            .or_insert(ModelBackoff {
                level: 0,
                until: now,
            });
        if state.until > now {
            // Another request already reported it: one backoff, not one per request.
            return state.until;
        }
        let exponential = backoff.delay(state.level, 0.0);
        let d = hint.map_or(exponential, |h| h.min(backoff.cap).max(exponential));
        state.level = state.level.saturating_add(1);
        state.until = now + d;
        state.until
    }

    /// A request on `account` + `model` succeeded: forget the short wait and reset the
    /// model's capacity backoff.
    pub fn record_success(&self, account: &str, model: &str) {
        let mut inner = self.lock();
        inner.waited.remove(&(account.to_owned(), model.to_owned()));
        inner.models.remove(model);
    }

    /// Cools `account` + `model` down by hand (or from the quota poller) until `until`.
    pub fn set(&self, account: &str, model: &str, until: Instant, reason: CooldownReason) {
        self.lock().cooldowns.insert(
            (account.to_owned(), model.to_owned()),
            Active { until, reason },
        );
    }

    /// Whether `account` may serve `model` now (ignores the model's capacity backoff;
    /// see [`Cooldowns::model_backoff`]).
    pub fn available(&self, account: &str, model: &str, now: Instant) -> bool {
        self.until(account, model, now).is_none()
    }

    /// When `account`'s cooldown on `model` ends, if one is active.
    pub fn until(&self, account: &str, model: &str, now: Instant) -> Option<Instant> {
        self.lock()
            .cooldowns
            .get(&(account.to_owned(), model.to_owned()))
            .map(|a| a.until)
            .filter(|until| *until > now)
    }

    /// When the model's capacity backoff ends, if one is active.
    pub fn model_backoff(&self, model: &str, now: Instant) -> Option<Instant> {
        self.lock()
            .models
            .get(model)
            .map(|m| m.until)
            .filter(|until| *until > now)
    }

    /// The earliest instant at which one of `accounts` can serve `model` (`now` if one
    /// can already), no earlier than the model's capacity backoff; `None` for no
    /// accounts. For the `retry-after` of a 429 when every account is limited.
    pub fn soonest_reset<'a>(
        &self,
        model: &str,
        accounts: impl IntoIterator<Item = &'a str>,
        now: Instant,
    ) -> Option<Instant> {
        let inner = self.lock();
        let soonest = accounts
            .into_iter()
            .map(|account| {
                inner
                    .cooldowns
                    .get(&(account.to_owned(), model.to_owned()))
                    .map_or(now, |a| a.until.max(now))
            })
            .min()?;
        let backoff = inner.models.get(model).map_or(now, |m| m.until);
        Some(soonest.max(backoff))
    }

    /// Every active cooldown, sorted by account then model. Expired ones are dropped.
    pub fn list(&self, now: Instant) -> Vec<Cooldown> {
        let mut inner = self.lock();
        inner.cooldowns.retain(|_, a| a.until > now);
        let wait_memory = self.config.wait_memory;
        inner
            .waited
            .retain(|_, at| now.saturating_duration_since(*at) < wait_memory);
        let mut out: Vec<Cooldown> = inner
            .cooldowns
            .iter()
            .map(|((account, model), a)| Cooldown {
                account: account.clone(),
                model: model.clone(),
                until: a.until,
                remaining_ms: millis(a.until.saturating_duration_since(now)),
                reason: a.reason,
            })
            .collect();
        out.sort_by(|a, b| (&a.account, &a.model).cmp(&(&b.account, &b.model)));
        out
    }

    /// Clears one cooldown; `true` if there was one.
    pub fn clear(&self, account: &str, model: &str) -> bool {
        let key = (account.to_owned(), model.to_owned());
        let mut inner = self.lock();
        inner.waited.remove(&key);
        inner.cooldowns.remove(&key).is_some()
    }

    /// Clears every cooldown of `account` (after a re-login, say); returns how many.
    pub fn clear_account(&self, account: &str) -> usize {
        let mut inner = self.lock();
        inner.waited.retain(|(a, _), _| a != account);
        let before = inner.cooldowns.len();
        inner.cooldowns.retain(|(a, _), _| a != account);
        before - inner.cooldowns.len()
    }

    /// Clears every cooldown and capacity backoff.
    pub fn clear_all(&self) {
        let mut inner = self.lock();
        inner.cooldowns.clear();
        inner.waited.clear();
        inner.models.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "alice@example.com";
    const B: &str = "bob@example.com";
    const M: &str = "gemini-3-flash";

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn rate(s: u64) -> Limit {
        Limit::RateLimited {
            delay: Some(secs(s)),
        }
    }

    #[test]
    fn short_rate_limit_waits_once_then_cools_down() {
        let c = Cooldowns::new(CooldownConfig::default());
        let t0 = Instant::now();
        assert_eq!(
            c.report(A, M, rate(2), t0),
            Decision::WaitThenRetrySame(secs(2))
        );
        assert!(c.available(A, M, t0), "a wait is not a cooldown");
        let t1 = t0 + secs(2);
        assert_eq!(
            c.report(A, M, rate(3), t1),
            Decision::Switch {
                until: t1 + secs(3),
                reason: CooldownReason::RateLimited
            }
        );
        assert!(!c.available(A, M, t1));
        assert!(c.available(A, M, t1 + secs(3)));
        // After a success the next short limit is waited out again.
        c.record_success(A, M);
        let t2 = t1 + secs(4);
        assert_eq!(
            c.report(A, M, rate(1), t2),
            Decision::WaitThenRetrySame(secs(1))
        );
    }

    #[test]
    fn the_wait_is_forgotten_after_wait_memory() {
        let c = Cooldowns::new(CooldownConfig::default());
        let t0 = Instant::now();
        c.report(A, M, rate(2), t0);
        let later = t0 + secs(61);
        assert_eq!(
            c.report(A, M, rate(2), later),
            Decision::WaitThenRetrySame(secs(2))
        );
    }

    #[test]
    fn longer_rate_limit_cools_down_until_the_delay() {
        let c = Cooldowns::new(CooldownConfig::default());
        let t0 = Instant::now();
        let d = c.report(A, M, rate(30), t0);
        assert_eq!(
            d,
            Decision::Switch {
                until: t0 + secs(30),
                reason: CooldownReason::RateLimited
            }
        );
        assert_eq!(c.until(A, M, t0), Some(t0 + secs(30)));
        assert!(c.available(A, "claude-sonnet-4-5", t0), "per model");
        assert!(c.available(B, M, t0), "per account");
        // No delay at all: the default.
        let d = c.report(B, M, Limit::RateLimited { delay: None }, t0);
        assert!(matches!(d, Decision::Switch { until, .. } if until == t0 + secs(60)));
    }

    #[test]
    fn quota_cools_down_until_reset_but_never_past_the_cap() {
        let c = Cooldowns::new(CooldownConfig::default());
        let t0 = Instant::now();
        let reset = secs(76 * 60);
        assert_eq!(
            c.report(A, M, Limit::QuotaExhausted { delay: Some(reset) }, t0),
            Decision::Switch {
                until: t0 + reset,
                reason: CooldownReason::QuotaExhausted {
                    needs_quota_recheck: false
                }
            }
        );
        // A hint of three days: six hours, and ask the quota call.
        let absurd = secs(3 * 24 * 3600);
        assert_eq!(
            c.report(
                B,
                M,
                Limit::QuotaExhausted {
                    delay: Some(absurd)
                },
                t0
            ),
            Decision::Switch {
                until: t0 + secs(6 * 3600),
                reason: CooldownReason::QuotaExhausted {
                    needs_quota_recheck: true
                }
            }
        );
        let list = c.list(t0);
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].account, B);
        let json = serde_json::to_value(&list).expect("serializes");
        assert_eq!(json[1]["reason"]["kind"], "quota_exhausted");
        assert_eq!(json[1]["reason"]["needs_quota_recheck"], true);
        assert_eq!(json[1]["remaining_ms"], 6 * 3600 * 1000);
    }

    #[test]
    fn concurrent_reports_are_deduplicated() {
        let c = Cooldowns::new(CooldownConfig::default());
        let t0 = Instant::now();
        c.report(A, M, rate(30), t0);
        // A second 429 from a request in flight: not extended by an earlier end…
        let d = c.report(A, M, rate(20), t0 + secs(1));
        assert!(matches!(d, Decision::Switch { until, .. } if until == t0 + secs(30)));
        // …nor turned into a wait by a short one…
        let d = c.report(A, M, rate(1), t0 + secs(1));
        assert!(matches!(d, Decision::Switch { until, .. } if until == t0 + secs(30)));
        // …but extended by a later one.
        let d = c.report(
            A,
            M,
            Limit::QuotaExhausted {
                delay: Some(secs(600)),
            },
            t0 + secs(2),
        );
        assert!(matches!(d, Decision::Switch { until, .. } if until == t0 + secs(602)));
        assert_eq!(c.list(t0 + secs(2)).len(), 1);
    }

    #[test]
    fn capacity_backs_off_the_model_not_the_account() {
        let c = Cooldowns::new(CooldownConfig::default());
        let mut t = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..8 {
            let Decision::BackOff { until } =
                c.report(A, M, Limit::CapacityExhausted { delay: None }, t)
            else {
                panic!("capacity is a backoff");
            };
            // Concurrent reports share the backoff.
            assert_eq!(
                c.report(B, M, Limit::CapacityExhausted { delay: None }, t),
                Decision::BackOff { until }
            );
            waits.push((until - t).as_secs());
            assert!(c.available(A, M, t));
            assert_eq!(c.model_backoff(M, t), Some(until));
            t = until;
        }
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        c.record_success(A, M);
        assert_eq!(c.model_backoff(M, t), None);
        let d = c.report(
            A,
            M,
            Limit::CapacityExhausted {
                delay: Some(secs(10)),
            },
            t,
        );
        assert_eq!(
            d,
            Decision::BackOff {
                until: t + secs(10)
            },
            "a longer hint wins"
        );
        assert!(c.list(t).is_empty());
    }

    #[test]
    fn soonest_reset_over_accounts() {
        let c = Cooldowns::new(CooldownConfig::default());
        let t0 = Instant::now();
        assert_eq!(c.soonest_reset(M, [], t0), None);
        c.report(A, M, rate(30), t0);
        c.report(B, M, rate(20), t0);
        assert_eq!(c.soonest_reset(M, [A, B], t0), Some(t0 + secs(20)));
        assert_eq!(c.soonest_reset(M, [A, B, "carol"], t0), Some(t0));
        c.report(
            A,
            M,
            Limit::CapacityExhausted {
                delay: Some(secs(25)),
            },
            t0,
        );
        assert_eq!(c.soonest_reset(M, [A, B], t0), Some(t0 + secs(25)));
    }

    #[test]
    fn clearing() {
        let c = Cooldowns::new(CooldownConfig::default());
        let t0 = Instant::now();
        c.report(A, M, rate(30), t0);
        c.report(A, "other", rate(30), t0);
        c.report(B, M, rate(30), t0);
        assert!(c.clear(A, M));
        assert!(!c.clear(A, M));
        assert!(c.available(A, M, t0));
        assert_eq!(c.clear_account(A), 1);
        c.set(A, M, t0 + secs(5), CooldownReason::Manual);
        assert_eq!(c.list(t0).len(), 2);
        c.clear_all();
        assert!(c.list(t0).is_empty());
        assert!(c.list(t0 + secs(31)).is_empty(), "expired ones drop out");
    }

    fn limit() -> impl Strategy<Value = Limit> {
        let delay = proptest::option::of((0u64..400_000).prop_map(Duration::from_secs));
        prop_oneof![
            delay.clone().prop_map(|delay| Limit::RateLimited { delay }),
            delay
                .clone()
                .prop_map(|delay| Limit::QuotaExhausted { delay }),
            delay.prop_map(|delay| Limit::CapacityExhausted { delay }),
        ]
    }

    proptest! {
        #[test]
        fn cooldowns_are_bounded_and_never_shortened(
            ops in proptest::collection::vec((limit(), 0u64..100_000), 0..60),
        ) {
            let config = CooldownConfig::default();
            let c = Cooldowns::new(config);
            let mut now = Instant::now();
            for (limit, advance_ms) in ops {
                let before = c.until(A, M, now);
                let d = c.report(A, M, limit, now);
                match d {
                    Decision::WaitThenRetrySame(w) => {
                        prop_assert!(w <= config.short_limit);
                        prop_assert!(before.is_none());
                    }
                    Decision::Switch { until, .. } => {
                        prop_assert!(until >= now);
                        prop_assert!(until <= now + config.max_cooldown);
                        if let Some(b) = before {
                            prop_assert!(until >= b);
                        }
                        prop_assert_eq!(c.until(A, M, now), Some(until).filter(|u| *u > now));
                    }
                    Decision::BackOff { until } => {
                        prop_assert!(until <= now + secs(60));
                        prop_assert_eq!(c.until(A, M, now), before);
                    }
                }
                now += Duration::from_millis(advance_ms);
            }
        }
    }
}
