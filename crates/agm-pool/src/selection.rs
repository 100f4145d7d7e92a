//! Account selection (L2): which account serves the next request for a model.
//!
//! The caller builds one [`AccountView`] per account of the pool for the model at
//! hand (its availability from the store, cooldowns and breakers; its remaining quota
//! from the quota poller; its latency and in-flight count from telemetry) and asks
//! [`Selector::pick`]. Selection is O(n) over the candidates, plus a hash lookup for
//! the sticky session.
//!
//! Every strategy first drops the accounts that cannot serve: disabled, blocked,
//! cooling down, or under the quota-protection threshold for the model (a reserve kept
//! for the user's own use of the account). Then:
//!
//! - [`Scheduling::CacheFirst`]: a conversation sticks to its account (sticky session,
//!   `sticky_ttl` after its last use), which keeps Google's prompt cache warm. If that
//!   account is cooling down and free again within `sticky_wait`, the answer is
//!   [`Pick::WaitFor`]; otherwise the session moves to the account Balance would pick.
//! - [`Scheduling::Balance`]: among the best tier, the most remaining quota per request
//!   in flight (`remaining / (1 + in_flight)`; unknown quota counts as full).
//! - [`Scheduling::PerformanceFirst`]: among the best tier, the lowest recent latency;
//!   accounts with no latency yet go first, so they get measured.
//! - [`Scheduling::RoundRobin`]: a rotating cursor over the usable accounts, in the
//!   order given, whatever their tier.
//!
//! Tiers: Ultra > Pro > Free; an account whose tier is unknown ranks below Free.
//! Ties break on fewer requests in flight, then on the id, so a pick is deterministic.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An account's subscription tier, from the tier id Google reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    Free,
    Pro,
    Ultra,
}

impl Tier {
    /// `g1-ultra-tier` → Ultra, `g1-pro-tier` → Pro, `free-tier` / `legacy-tier` /
    /// `standard-tier` → Free; anything else is unknown.
    pub fn from_id(id: &str) -> Option<Tier> {
        let id = id.to_ascii_lowercase();
        if id.contains("ultra") {
            Some(Tier::Ultra)
        } else if id.split(['-', '_']).any(|w| w == "pro") {
            Some(Tier::Pro)
        } else if ["free", "legacy", "standard"]
            .iter()
            .any(|w| id.split(['-', '_']).any(|p| p == *w))
        {
            Some(Tier::Free)
        } else {
            None
        }
    }
}

/// Whether an account can serve, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    Available,
    /// Turned off, by the user or after an error (reason says which).
    Disabled {
        reason: String,
    },
    /// Needs the user (verification, re-login).
    Blocked {
        reason: String,
    },
    /// Rate-limited, quota gone, or its circuit is open, until `until`.
    CoolingDown {
        until: Instant,
    },
}

/// One candidate, as the caller sees it for the model being requested.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountView {
    pub id: String,
    pub tier: Option<Tier>,
    pub availability: Availability,
    /// Fraction of the model's quota left, 0.0–1.0, if known.
    pub remaining_fraction: Option<f64>,
    pub recent_latency: Option<Duration>,
    pub in_flight: u32,
}

impl AccountView {
    /// An available account with nothing else known.
    pub fn new(id: impl Into<String>) -> AccountView {
        AccountView {
            id: id.into(),
            tier: None,
            availability: Availability::Available,
            remaining_fraction: None,
            recent_latency: None,
            in_flight: 0,
        }
    }
}

/// `[routing] scheduling`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheduling {
    #[default]
    CacheFirst,
    Balance,
    PerformanceFirst,
    RoundRobin,
}

impl Scheduling {
    /// The config spelling: `cache-first`, `balance`, `performance-first`,
    /// `round-robin`.
    pub fn from_name(name: &str) -> Option<Scheduling> {
        match name {
            "cache-first" => Some(Scheduling::CacheFirst),
            "balance" => Some(Scheduling::Balance),
            "performance-first" => Some(Scheduling::PerformanceFirst),
            "round-robin" => Some(Scheduling::RoundRobin),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scheduling::CacheFirst => "cache-first",
            Scheduling::Balance => "balance",
            Scheduling::PerformanceFirst => "performance-first",
            Scheduling::RoundRobin => "round-robin",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelectionConfig {
    pub scheduling: Scheduling,
    /// Accounts with less than this fraction of a model's quota left are kept out.
    pub quota_threshold: f64,
    /// A sticky session is forgotten this long after its last use.
    pub sticky_ttl: Duration,
    /// Wait for a sticky account whose cooldown ends within this, rather than move.
    pub sticky_wait: Duration,
}

impl Default for SelectionConfig {
    fn default() -> SelectionConfig {
        SelectionConfig {
            scheduling: Scheduling::CacheFirst,
            quota_threshold: 0.10,
            sticky_ttl: Duration::from_secs(60 * 60),
            sticky_wait: Duration::from_secs(5),
        }
    }
}

/// The answer of [`Selector::pick`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    Account(String),
    /// Wait until `until`, then use `account` (the conversation's sticky account, to
    /// keep the prompt cache).
    WaitFor {
        account: String,
        until: Instant,
    },
    /// No account can serve. `soonest` is when the first cooldown ends (for a
    /// `retry-after`); `reasons` says why each account was left out.
    NoneAvailable {
        soonest: Option<Instant>,
        reasons: Vec<String>,
    },
}

/// A sticky session as it is saved across a restart.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedSession {
    pub session: String,
    /// The account's store id.
    pub account: String,
    /// When the conversation last used it, Unix milliseconds.
    pub last_used_ms: i64,
}

#[derive(Debug, Clone)]
struct Sticky {
    account: String,
    last_used: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    /// The settings; the console can change them while the gateway runs.
    config: SelectionConfig,
    sticky: HashMap<String, Sticky>,
    cursor: usize,
    /// When each account was last picked (a sequence number), so that equal accounts
    /// take turns.
    picked: HashMap<String, u64>,
    sequence: u64,
}

#[derive(Debug)]
pub struct Selector {
    inner: Mutex<Inner>,
}

impl Selector {
    pub fn new(config: SelectionConfig) -> Selector {
        Selector {
            inner: Mutex::new(Inner {
                config,
                ..Inner::default()
            }),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> SelectionConfig {
        self.lock().config
    }

    /// Replaces the settings (a change in the console); the next pick follows them.
    pub fn set_config(&self, config: SelectionConfig) {
        self.lock().config = config;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every mutation is one insert, remove or assignment: still consistent.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Why `account` cannot serve at `now`, or `None` if it can.
    #[cfg(test)]
    fn unusable(&self, account: &AccountView, now: Instant) -> Option<String> {
        Self::unusable_with(&self.config(), account, now)
    }

    /// Why `account` cannot serve at `now` under `config`, or `None` if it can.
    fn unusable_with(
        config: &SelectionConfig,
        account: &AccountView,
        now: Instant,
    ) -> Option<String> {
        match &account.availability {
            Availability::Available => {}
            Availability::CoolingDown { until } if *until <= now => {}
            Availability::CoolingDown { until } => {
                let secs = until.saturating_duration_since(now).as_secs_f64().ceil();
                return Some(format!("{}: cooling down for {secs}s", account.id));
            }
            Availability::Disabled { reason } => {
                return Some(format!("{}: disabled ({reason})", account.id));
            }
            Availability::Blocked { reason } => {
                return Some(format!("{}: blocked ({reason})", account.id));
            }
        }
        match account.remaining_fraction {
            Some(left) if left < config.quota_threshold => Some(format!(
                "{}: {:.0}% of the quota left, under the {:.0}% protection threshold",
                account.id,
                left * 100.0,
                config.quota_threshold * 100.0
            )),
            _ => None,
        }
    }

    /// Picks an account for one request of conversation `session` (if known).
    pub fn pick(&self, session: Option<&str>, candidates: &[AccountView], now: Instant) -> Pick {
        let mut inner = self.lock();
        let config = inner.config;
        let sticky_session = session.filter(|_| config.scheduling == Scheduling::CacheFirst);

        if let Some(session) = sticky_session
            && let Some(pick) = Self::sticky(&config, &mut inner, session, candidates, now)
        {
            return pick;
        }

        let mut usable: Vec<&AccountView> = Vec::with_capacity(candidates.len());
        let mut reasons = Vec::new();
        for c in candidates {
            match Self::unusable_with(&config, c, now) {
                None => usable.push(c),
                Some(reason) => reasons.push(reason),
            }
        }
        if usable.is_empty() {
            let soonest = candidates
                .iter()
                .filter_map(|c| match c.availability {
                    Availability::CoolingDown { until } if until > now => Some(until),
                    _ => None,
                })
                .min();
            if candidates.is_empty() {
                reasons.push("no account in the pool serves this model".to_owned());
            }
            return Pick::NoneAvailable { soonest, reasons };
        }

        let chosen = match config.scheduling {
            Scheduling::RoundRobin => {
                let chosen = usable[inner.cursor % usable.len()];
                inner.cursor = inner.cursor.wrapping_add(1);
                chosen
            }
            Scheduling::CacheFirst | Scheduling::Balance => {
                best(&usable, balance_order, &inner.picked)
            }
            Scheduling::PerformanceFirst => best(&usable, latency_order, &inner.picked),
        };
        inner.sequence += 1;
        let sequence = inner.sequence;
        inner.picked.insert(chosen.id.clone(), sequence);

        if let Some(session) = sticky_session {
            inner.sticky.insert(
                session.to_owned(),
                Sticky {
                    account: chosen.id.clone(),
                    last_used: now,
                },
            );
        }
        Pick::Account(chosen.id.clone())
    }

    /// The sticky account's answer, or `None` to choose afresh.
    fn sticky(
        config: &SelectionConfig,
        inner: &mut Inner,
        session: &str,
        candidates: &[AccountView],
        now: Instant,
    ) -> Option<Pick> {
        let sticky = inner.sticky.get_mut(session)?;
        if now.saturating_duration_since(sticky.last_used) >= config.sticky_ttl {
            return None;
        }
        let account = candidates.iter().find(|c| c.id == sticky.account)?;
        match Self::unusable_with(config, account, now) {
            None => {
                sticky.last_used = now;
                Some(Pick::Account(account.id.clone()))
            }
            Some(_) => match account.availability {
                Availability::CoolingDown { until }
                    if until.saturating_duration_since(now) <= config.sticky_wait
                        && account
                            .remaining_fraction
                            .is_none_or(|left| left >= config.quota_threshold) =>
                {
                    sticky.last_used = now;
                    Some(Pick::WaitFor {
                        account: account.id.clone(),
                        until,
                    })
                }
                _ => None,
            },
        }
    }

    /// The account `session` sticks to, if any (and not expired).
    pub fn sticky_account(&self, session: &str, now: Instant) -> Option<String> {
        let inner = self.lock();
        let ttl = inner.config.sticky_ttl;
        inner
            .sticky
            .get(session)
            .filter(|s| now.saturating_duration_since(s.last_used) < ttl)
            .map(|s| s.account.clone())
    }

    /// Binds `session` to `account` as of `now`, whatever it was bound to (cluster mode:
    /// the binding another replica made wins over this one's).
    pub fn bind_session(&self, session: &str, account: &str, now: Instant) {
        self.lock().sticky.insert(
            session.to_owned(),
            Sticky {
                account: account.to_owned(),
                last_used: now,
            },
        );
    }

    /// How many conversations stick to an account now (not expired).
    pub fn live_sessions(&self, now: Instant) -> usize {
        let inner = self.lock();
        let ttl = inner.config.sticky_ttl;
        inner
            .sticky
            .values()
            .filter(|s| now.saturating_duration_since(s.last_used) < ttl)
            .count()
    }

    /// Forgets one conversation's account.
    pub fn forget_session(&self, session: &str) {
        self.lock().sticky.remove(session);
    }

    /// Unbinds every conversation from `account` (removed or disabled); returns how
    /// many.
    pub fn unbind_account(&self, account: &str) -> usize {
        let mut inner = self.lock();
        let before = inner.sticky.len();
        inner.sticky.retain(|_, s| s.account != account);
        before - inner.sticky.len()
    }

    /// The live sticky sessions, newest first, at most `limit`, with wall-clock times
    /// (`wall_now_ms` is the wall clock at `now`), so that a restart keeps them.
    pub fn export_sessions(
        &self,
        now: Instant,
        wall_now_ms: i64,
        limit: usize,
    ) -> Vec<SavedSession> {
        let ttl = self.config().sticky_ttl;
        let inner = self.lock();
        let mut live: Vec<(&String, &Sticky)> = inner
            .sticky
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.last_used) < ttl)
            .collect();
        live.sort_by_key(|(_, s)| std::cmp::Reverse(s.last_used));
        live.truncate(limit);
        live.into_iter()
            .map(|(session, s)| SavedSession {
                session: session.clone(),
                account: s.account.clone(),
                last_used_ms: wall_now_ms.saturating_sub(
                    i64::try_from(now.saturating_duration_since(s.last_used).as_millis())
                        .unwrap_or(i64::MAX),
                ),
            })
            .collect()
    }

    /// Takes saved sticky sessions back (at start), each as old as it was; those past
    /// `sticky_ttl` are left out, and a session already bound keeps its binding.
    /// Returns how many were taken.
    pub fn import_sessions(&self, saved: &[SavedSession], now: Instant, wall_now_ms: i64) -> usize {
        let ttl = self.config().sticky_ttl;
        let mut inner = self.lock();
        let mut taken = 0;
        for s in saved {
            let age = Duration::from_millis(
                u64::try_from(wall_now_ms.saturating_sub(s.last_used_ms)).unwrap_or(0),
            );
            let Some(last_used) = now.checked_sub(age).filter(|_| age < ttl) else {
                continue;
            };
            if inner.sticky.contains_key(&s.session) {
                continue;
            }
            inner.sticky.insert(
                s.session.clone(),
                Sticky {
                    account: s.account.clone(),
                    last_used,
                },
            );
            taken += 1;
        }
        taken
    }

    /// Drops expired sticky sessions (run now and then); returns how many remain.
    pub fn prune_sessions(&self, now: Instant) -> usize {
        let mut inner = self.lock();
        let ttl = inner.config.sticky_ttl;
        inner
            .sticky
            .retain(|_, s| now.saturating_duration_since(s.last_used) < ttl);
        inner.sticky.len()
    }
}

/// The best candidate by `order` (the greatest), with ties on fewer in flight, then on
/// the one picked least recently (equal accounts take turns), then on the smaller id.
fn best<'a>(
    usable: &[&'a AccountView],
    order: fn(&AccountView, &AccountView) -> Ordering,
    picked: &HashMap<String, u64>,
) -> &'a AccountView {
    let last = |a: &AccountView| picked.get(&a.id).copied().unwrap_or(0);
    let mut best = usable[0];
    for c in &usable[1..] {
        let ord = order(c, best)
            .then_with(|| best.in_flight.cmp(&c.in_flight))
            .then_with(|| last(best).cmp(&last(c)))
            .then_with(|| best.id.cmp(&c.id));
        if ord == Ordering::Greater {
            best = c;
        }
    }
    best
}

fn tier_rank(a: &AccountView) -> u8 {
    match a.tier {
        None => 0,
        Some(Tier::Free) => 1,
        Some(Tier::Pro) => 2,
        Some(Tier::Ultra) => 3,
    }
}

fn balance_score(a: &AccountView) -> f64 {
    let left = a.remaining_fraction.unwrap_or(1.0);
    let left = if left.is_finite() { left } else { 0.0 };
    left / (1.0 + f64::from(a.in_flight))
}

/// Greater is better.
fn balance_order(a: &AccountView, b: &AccountView) -> Ordering {
    tier_rank(a)
        .cmp(&tier_rank(b))
        .then_with(|| balance_score(a).total_cmp(&balance_score(b)))
}

/// Greater is better: higher tier, then lower latency (unknown first).
fn latency_order(a: &AccountView, b: &AccountView) -> Ordering {
    tier_rank(a)
        .cmp(&tier_rank(b))
        .then_with(|| match (a.recent_latency, b.recent_latency) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => y.cmp(&x),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn selector(scheduling: Scheduling) -> Selector {
        Selector::new(SelectionConfig {
            scheduling,
            ..SelectionConfig::default()
        })
    }

    fn account(id: &str, tier: Option<Tier>, left: Option<f64>) -> AccountView {
        AccountView {
            tier,
            remaining_fraction: left,
            ..AccountView::new(id)
        }
    }

    fn picked(p: Pick) -> String {
        match p {
            Pick::Account(id) => id,
            other => panic!("expected an account, got {other:?}"),
        }
    }

    #[test]
    fn a_binding_from_the_cluster_wins_over_this_replicas() {
        let s = selector(Scheduling::CacheFirst);
        let now = Instant::now();
        let views = [account("a", None, None), account("b", None, None)];
        let first = picked(s.pick(Some("conv"), &views, now));
        let other = if first == "a" { "b" } else { "a" };
        s.bind_session("conv", other, now);
        assert_eq!(picked(s.pick(Some("conv"), &views, now)), other);
        assert_eq!(s.sticky_account("conv", now).as_deref(), Some(other));
    }

    #[test]
    fn equal_accounts_take_turns() {
        let s = selector(Scheduling::Balance);
        let t0 = Instant::now();
        let pool = [account("a", None, None), account("b", None, None)];
        let picks: Vec<String> = (0..4).map(|_| picked(s.pick(None, &pool, t0))).collect();
        assert_eq!(picks, ["a", "b", "a", "b"]);
        // A better account still wins every time.
        let better = [account("a", None, Some(0.2)), account("b", None, Some(0.9))];
        let picks: Vec<String> = (0..3).map(|_| picked(s.pick(None, &better, t0))).collect();
        assert_eq!(picks, ["b", "b", "b"]);
    }

    #[test]
    fn tiers_from_ids() {
        assert_eq!(Tier::from_id("g1-ultra-tier"), Some(Tier::Ultra));
        assert_eq!(Tier::from_id("g1-pro-tier"), Some(Tier::Pro));
        assert_eq!(Tier::from_id("free-tier"), Some(Tier::Free));
        assert_eq!(Tier::from_id("legacy-tier"), Some(Tier::Free));
        assert_eq!(Tier::from_id("standard-tier"), Some(Tier::Free));
        assert_eq!(Tier::from_id("enterprise-thing"), None);
        assert_eq!(Tier::from_id("g1-prototype-tier"), None);
        assert!(Tier::Ultra > Tier::Pro && Tier::Pro > Tier::Free);
    }

    #[test]
    fn scheduling_names_round_trip() {
        for s in [
            Scheduling::CacheFirst,
            Scheduling::Balance,
            Scheduling::PerformanceFirst,
            Scheduling::RoundRobin,
        ] {
            assert_eq!(Scheduling::from_name(s.name()), Some(s));
        }
        assert_eq!(Scheduling::from_name("fastest"), None);
    }

    #[test]
    fn skips_unusable_and_says_why() {
        let s = selector(Scheduling::Balance);
        let now = Instant::now();
        let accounts = vec![
            AccountView {
                availability: Availability::Disabled {
                    reason: "invalid_grant".into(),
                },
                ..AccountView::new("a")
            },
            AccountView {
                availability: Availability::Blocked {
                    reason: "verify at https://accounts.google.com/x".into(),
                },
                ..AccountView::new("b")
            },
            AccountView {
                availability: Availability::CoolingDown {
                    until: now + secs(40),
                },
                ..AccountView::new("c")
            },
            AccountView {
                availability: Availability::CoolingDown {
                    until: now + secs(20),
                },
                ..AccountView::new("d")
            },
            account("e", Some(Tier::Ultra), Some(0.05)),
        ];
        let Pick::NoneAvailable { soonest, reasons } = s.pick(None, &accounts, now) else {
            panic!("nothing is usable");
        };
        assert_eq!(soonest, Some(now + secs(20)));
        assert_eq!(reasons.len(), 5);
        assert_eq!(reasons[0], "a: disabled (invalid_grant)");
        assert_eq!(reasons[2], "c: cooling down for 40s");
        assert!(
            reasons[4].contains("5% of the quota left"),
            "{}",
            reasons[4]
        );

        // A cooldown that has ended no longer counts.
        assert_eq!(picked(s.pick(None, &accounts, now + secs(20))), "d");
        let Pick::NoneAvailable { reasons, .. } = s.pick(None, &[], now) else {
            panic!("empty pool");
        };
        assert_eq!(reasons, vec!["no account in the pool serves this model"]);
    }

    #[test]
    fn balance_prefers_tier_then_quota_per_request() {
        let s = selector(Scheduling::Balance);
        let now = Instant::now();
        let mut accounts = vec![
            account("free", Some(Tier::Free), Some(1.0)),
            account("pro1", Some(Tier::Pro), Some(0.5)),
            account("pro2", Some(Tier::Pro), Some(0.8)),
            account("unknown", None, Some(1.0)),
        ];
        assert_eq!(picked(s.pick(None, &accounts, now)), "pro2");
        accounts[2].in_flight = 1; // 0.8 / 2 < 0.5
        assert_eq!(picked(s.pick(None, &accounts, now)), "pro1");
        accounts[1].remaining_fraction = Some(0.09);
        accounts[2].remaining_fraction = Some(0.02);
        assert_eq!(picked(s.pick(None, &accounts, now)), "free");
    }

    #[test]
    fn performance_first_prefers_low_latency_and_measures_new_accounts() {
        let s = selector(Scheduling::PerformanceFirst);
        let now = Instant::now();
        let mut accounts = vec![
            AccountView {
                recent_latency: Some(Duration::from_millis(900)),
                ..AccountView::new("slow")
            },
            AccountView {
                recent_latency: Some(Duration::from_millis(300)),
                ..AccountView::new("fast")
            },
        ];
        assert_eq!(picked(s.pick(None, &accounts, now)), "fast");
        accounts.push(AccountView::new("new"));
        assert_eq!(picked(s.pick(None, &accounts, now)), "new");
    }

    #[test]
    fn round_robin_rotates_over_usable_accounts() {
        let s = selector(Scheduling::RoundRobin);
        let now = Instant::now();
        let mut accounts: Vec<_> = ["a", "b", "c"].into_iter().map(AccountView::new).collect();
        let seq: Vec<String> = (0..4)
            .map(|_| picked(s.pick(Some("session"), &accounts, now)))
            .collect();
        assert_eq!(seq, vec!["a", "b", "c", "a"]);
        accounts[1].availability = Availability::Disabled {
            reason: "by hand".into(),
        };
        let seq: Vec<String> = (0..4)
            .map(|_| picked(s.pick(None, &accounts, now)))
            .collect();
        assert_eq!(seq, vec!["a", "c", "a", "c"]);
        assert_eq!(s.sticky_account("session", now), None, "no stickiness");
    }

    #[test]
    fn cache_first_sticks_and_waits_briefly() {
        let s = selector(Scheduling::CacheFirst);
        let t0 = Instant::now();
        let mut accounts = vec![
            account("a", Some(Tier::Pro), Some(0.9)),
            account("b", Some(Tier::Pro), Some(0.5)),
        ];
        assert_eq!(picked(s.pick(Some("conv"), &accounts, t0)), "a");
        // "a" now has less quota than "b", but the conversation stays.
        accounts[0].remaining_fraction = Some(0.3);
        assert_eq!(picked(s.pick(Some("conv"), &accounts, t0)), "a");
        assert_eq!(picked(s.pick(Some("other"), &accounts, t0)), "b");

        // A short limit on "a": wait for it.
        accounts[0].availability = Availability::CoolingDown {
            until: t0 + secs(3),
        };
        assert_eq!(
            s.pick(Some("conv"), &accounts, t0),
            Pick::WaitFor {
                account: "a".into(),
                until: t0 + secs(3)
            }
        );
        // A long one: move, and stay moved.
        accounts[0].availability = Availability::CoolingDown {
            until: t0 + secs(60),
        };
        assert_eq!(picked(s.pick(Some("conv"), &accounts, t0)), "b");
        accounts[0].availability = Availability::Available;
        assert_eq!(picked(s.pick(Some("conv"), &accounts, t0)), "b");
        assert_eq!(s.sticky_account("conv", t0).as_deref(), Some("b"));
    }

    #[test]
    fn saved_sessions_come_back_bound_to_their_account_with_their_age() {
        // sticky_ttl is 1 h by default.
        let s = selector(Scheduling::CacheFirst);
        let t0 = Instant::now();
        let accounts = vec![
            account("a", None, Some(0.9)),
            account("b", None, Some(0.95)),
        ];
        assert_eq!(picked(s.pick(Some("old"), &accounts, t0)), "b");
        let t1 = t0 + secs(1800);
        assert_eq!(picked(s.pick(Some("new"), &[accounts[0].clone()], t1)), "a");
        let saved = s.export_sessions(t1, 10_000_000, 10);
        assert_eq!(saved.len(), 2);
        assert_eq!(saved[0].session, "new", "newest first");
        assert_eq!(s.export_sessions(t1, 10_000_000, 1).len(), 1);

        // A new process 20 minutes of wall clock later: "old" is 50 min old, "new" 20.
        let fresh = selector(Scheduling::CacheFirst);
        let start = Instant::now();
        assert_eq!(
            fresh.import_sessions(&saved, start, 10_000_000 + 1_200_000),
            2
        );
        assert_eq!(fresh.sticky_account("old", start).as_deref(), Some("b"));
        // b is the conversation's account even though a is as good now.
        assert_eq!(picked(fresh.pick(Some("new"), &accounts, start)), "a");
        assert_eq!(picked(fresh.pick(Some("old"), &accounts, start)), "b");
        // Past the TTL when agm comes back: not taken.
        let late = selector(Scheduling::CacheFirst);
        assert_eq!(
            late.import_sessions(&saved, start, 10_000_000 + 3_000_000),
            1
        );
        assert_eq!(late.sticky_account("old", start), None);
    }

    #[test]
    fn sticky_sessions_expire_and_can_be_dropped() {
        let s = selector(Scheduling::CacheFirst);
        let t0 = Instant::now();
        let mut accounts = vec![account("a", None, Some(0.9)), account("b", None, Some(0.5))];
        assert_eq!(picked(s.pick(Some("conv"), &accounts, t0)), "a");
        assert_eq!(s.live_sessions(t0), 1);
        accounts[1].remaining_fraction = Some(1.0);
        let later = t0 + secs(3600);
        assert_eq!(s.live_sessions(later), 0, "expired");
        assert_eq!(s.sticky_account("conv", later), None);
        assert_eq!(picked(s.pick(Some("conv"), &accounts, later)), "b");
        assert_eq!(s.prune_sessions(later), 1);
        assert_eq!(s.prune_sessions(later + secs(3600)), 0);

        assert_eq!(picked(s.pick(Some("x"), &accounts, t0)), "b");
        assert_eq!(s.unbind_account("b"), 1);
        assert_eq!(s.sticky_account("x", t0), None);
        s.pick(Some("y"), &accounts, t0);
        s.forget_session("y");
        assert_eq!(s.sticky_account("y", t0), None);
    }

    #[test]
    fn sticky_account_gone_or_disabled_moves() {
        let s = selector(Scheduling::CacheFirst);
        let t0 = Instant::now();
        let mut accounts = vec![account("a", None, Some(0.9)), account("b", None, Some(0.5))];
        assert_eq!(picked(s.pick(Some("conv"), &accounts, t0)), "a");
        accounts[0].availability = Availability::Disabled {
            reason: "banned".into(),
        };
        assert_eq!(picked(s.pick(Some("conv"), &accounts, t0)), "b");
        accounts.remove(1);
        accounts[0].availability = Availability::Available;
        assert_eq!(picked(s.pick(Some("conv"), &accounts, t0)), "a");
    }

    #[test]
    fn ten_thousand_picks_over_a_hundred_accounts() {
        let now = Instant::now();
        let accounts: Vec<AccountView> = (0..100u32)
            .map(|i| AccountView {
                tier: Tier::from_id(["g1-ultra-tier", "g1-pro-tier", "free-tier"][i as usize % 3]),
                remaining_fraction: Some(f64::from(i % 10) / 10.0),
                recent_latency: Some(Duration::from_millis(u64::from(i * 7 % 100))),
                in_flight: i % 4,
                ..AccountView::new(format!("acct{i}"))
            })
            .collect();
        for scheduling in [
            Scheduling::CacheFirst,
            Scheduling::Balance,
            Scheduling::PerformanceFirst,
            Scheduling::RoundRobin,
        ] {
            let s = selector(scheduling);
            for i in 0..10_000u32 {
                let session = format!("s{}", i % 50);
                assert!(matches!(
                    s.pick(Some(&session), &accounts, now),
                    Pick::Account(_)
                ));
            }
        }
    }

    proptest! {
        #[test]
        fn picks_only_usable_accounts(
            specs in proptest::collection::vec(
                (0usize..4, proptest::option::of(0.0f64..1.0), 0u32..5, 0u8..6, 0u64..30), 0..12),
            strategy in 0usize..4,
            session in proptest::option::of("[a-c]"),
        ) {
            let now = Instant::now();
            let accounts: Vec<AccountView> = specs
                .iter()
                .enumerate()
                .map(|(i, (tier, left, in_flight, avail, cool))| AccountView {
                    tier: [None, Some(Tier::Free), Some(Tier::Pro), Some(Tier::Ultra)][*tier],
                    availability: match avail {
                        0 => Availability::Disabled { reason: "x".into() },
                        1 => Availability::Blocked { reason: "y".into() },
                        2 | 3 => Availability::CoolingDown { until: now + secs(*cool) },
                        _ => Availability::Available,
                    },
                    remaining_fraction: *left,
                    in_flight: *in_flight,
                    ..AccountView::new(format!("a{i}"))
                })
                .collect();
            let scheduling = [
                Scheduling::CacheFirst,
                Scheduling::Balance,
                Scheduling::PerformanceFirst,
                Scheduling::RoundRobin,
            ][strategy];
            let s = selector(scheduling);
            for step in 0..3u64 {
                let at = now + secs(step * 2);
                match s.pick(session.as_deref(), &accounts, at) {
                    Pick::Account(id) => {
                        let a = accounts.iter().find(|a| a.id == id).expect("a candidate");
                        prop_assert!(s.unusable(a, at).is_none());
                    }
                    Pick::WaitFor { account, until } => {
                        prop_assert_eq!(scheduling, Scheduling::CacheFirst);
                        prop_assert!(until > at && until <= at + secs(5));
                        prop_assert!(accounts.iter().any(|a| a.id == account));
                    }
                    Pick::NoneAvailable { soonest, reasons } => {
                        prop_assert!(accounts.iter().all(|a| s.unusable(a, at).is_some()));
                        prop_assert!(!reasons.is_empty());
                        if let Some(t) = soonest {
                            prop_assert!(t > at);
                        }
                    }
                }
            }
        }
    }
}
