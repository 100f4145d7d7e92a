//! Safe mode (L0 and L1): when the Antigravity path keeps failing to get a project
//! id, requests go to the official Gemini API instead.
//!
//! - L0, the feature flag: with `enable_antigravity = false` every request goes to the
//!   official API, whatever the state.
//! - L1: after `auto_activate_threshold` consecutive project-id failures (over all
//!   accounts; 0 turns this off) safe mode turns on by itself; while on, the Antigravity path is retried
//!   once every `retry_interval` ([`Route::ProbeAntigravity`]), and a success there
//!   turns it off. Turned on by hand, it stays on until turned off by hand.
//! - Each account's consecutive project-id failures are counted too, so the caller can
//!   route one bad account to the official API while the others keep working.
//!
//! Transitions are returned as [`SafeModeEvent`]s for the caller to log and audit.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SafeModeConfig {
    /// `[routing] enable_antigravity` (`ENABLE_ANTIGRAVITY_AUTH`).
    pub enable_antigravity: bool,
    pub auto_activate_threshold: u32,
    pub retry_interval: Duration,
}

impl Default for SafeModeConfig {
    fn default() -> SafeModeConfig {
        SafeModeConfig {
            enable_antigravity: true,
            auto_activate_threshold: 5,
            retry_interval: Duration::from_secs(60 * 60),
        }
    }
}

/// Why safe mode is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SafeModeReason {
    /// Turned on by itself after `failures` project-id failures in a row.
    Auto { failures: u32, last_error: String },
    /// Turned on by hand (`agm safe-mode enable`).
    Manual { note: Option<String> },
}

impl std::fmt::Display for SafeModeReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SafeModeReason::Auto {
                failures,
                last_error,
            } => write!(
                f,
                "{failures} project-id failures in a row (last: {last_error})"
            ),
            SafeModeReason::Manual { note: None } => f.write_str("turned on by hand"),
            SafeModeReason::Manual { note: Some(note) } => {
                write!(f, "turned on by hand: {note}")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SafeModeState {
    Off {
        consecutive_failures: u32,
    },
    /// `next_retry` is `None` when turned on by hand (no automatic retry).
    On {
        reason: SafeModeReason,
        since: Instant,
        next_retry: Option<Instant>,
    },
}

/// Where one request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Antigravity,
    OfficialApi,
    /// Safe mode is on and its retry is due: this request tries Antigravity; report
    /// the project-id outcome as usual.
    ProbeAntigravity,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SafeModeEvent {
    Activated {
        reason: SafeModeReason,
        at: Instant,
    },
    Deactivated {
        at: Instant,
        was_on_for: Duration,
    },
    /// One account reached the threshold on its own.
    AccountTripped {
        account: String,
        failures: u32,
        at: Instant,
    },
}

/// `agm safe-mode status --json` (CONTRACT.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SafeModeStatus {
    pub active: bool,
    pub reason: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub since: Option<time::OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_retry: Option<time::OffsetDateTime>,
}

/// The state as it is stored (wall-clock times, in Unix milliseconds), so that the CLI
/// can read and change it without a server, a running server can follow the CLI, and a
/// restart keeps it. `revision` grows with every write; a reader adopts a record whose
/// revision is newer than the one it last saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafeModeRecord {
    pub revision: u64,
    /// `None` when off.
    pub reason: Option<SafeModeReason>,
    pub since_ms: Option<i64>,
    pub next_retry_ms: Option<i64>,
    /// Consecutive project-id failures over all accounts (while off).
    pub consecutive_failures: u32,
    /// Each account's consecutive project-id failures.
    pub accounts: std::collections::BTreeMap<String, u32>,
    /// Grows with every `agm safe-mode reset-all`: a running server that sees it grow
    /// also resets its circuit breakers and cooldowns.
    #[serde(default)]
    pub reset_generation: u64,
}

#[derive(Debug, Clone)]
pub struct SafeMode {
    config: SafeModeConfig,
    state: SafeModeState,
    accounts: HashMap<String, u32>,
}

impl SafeMode {
    pub fn new(config: SafeModeConfig) -> SafeMode {
        SafeMode {
            config,
            state: SafeModeState::Off {
                consecutive_failures: 0,
            },
            accounts: HashMap::new(),
        }
    }

    pub fn config(&self) -> &SafeModeConfig {
        &self.config
    }

    pub fn state(&self) -> &SafeModeState {
        &self.state
    }

    pub fn is_on(&self) -> bool {
        matches!(self.state, SafeModeState::On { .. })
    }

    /// Where the next request goes. A due retry is handed to one request only: the
    /// next one comes `retry_interval` later.
    pub fn route(&mut self, now: Instant) -> Route {
        if !self.config.enable_antigravity {
            return Route::OfficialApi;
        }
        match &mut self.state {
            SafeModeState::Off { .. } => Route::Antigravity,
            SafeModeState::On {
                next_retry: Some(at),
                ..
            } if now >= *at => {
                *at = now + self.config.retry_interval;
                Route::ProbeAntigravity
            }
            SafeModeState::On { .. } => Route::OfficialApi,
        }
    }

    /// Whether `account` has failed to get a project id `auto_activate_threshold`
    /// times in a row (route it to the official API).
    pub fn account_tripped(&self, account: &str) -> bool {
        self.threshold()
            .is_some_and(|t| self.account_failures(account) >= t)
    }

    pub fn account_failures(&self, account: &str) -> u32 {
        self.accounts.get(account).copied().unwrap_or(0)
    }

    /// `None` when `auto_activate_threshold` is 0: failures are counted, but neither
    /// safe mode nor an account is tripped by them.
    fn threshold(&self) -> Option<u32> {
        (self.config.auto_activate_threshold > 0).then_some(self.config.auto_activate_threshold)
    }

    /// `account` failed to get a project id.
    pub fn record_project_failure(
        &mut self,
        account: &str,
        error: &str,
        now: Instant,
    ) -> Vec<SafeModeEvent> {
        let mut events = Vec::new();
        let threshold = self.threshold();
        let count = self.accounts.entry(account.to_owned()).or_insert(0);
        *count = count.saturating_add(1);
        if Some(*count) == threshold {
            events.push(SafeModeEvent::AccountTripped {
                account: account.to_owned(),
                failures: *count,
                at: now,
            });
        }
        if let SafeModeState::Off {
            consecutive_failures,
        } = &mut self.state
        {
            *consecutive_failures = consecutive_failures.saturating_add(1);
            if threshold.is_some_and(|t| *consecutive_failures >= t) {
                let reason = SafeModeReason::Auto {
                    failures: *consecutive_failures,
                    last_error: error.to_owned(),
                };
                self.state = SafeModeState::On {
                    reason: reason.clone(),
                    since: now,
                    next_retry: Some(now + self.config.retry_interval),
                };
                events.push(SafeModeEvent::Activated { reason, at: now });
            }
        }
        events
    }

    /// `account` got its project id: resets the counts, and turns an automatic safe
    /// mode off.
    pub fn record_project_success(&mut self, account: &str, now: Instant) -> Option<SafeModeEvent> {
        self.accounts.remove(account);
        match &self.state {
            SafeModeState::Off { .. } => {
                self.state = SafeModeState::Off {
                    consecutive_failures: 0,
                };
                None
            }
            SafeModeState::On {
                reason: SafeModeReason::Manual { .. },
                ..
            } => None,
            SafeModeState::On { since, .. } => {
                let was_on_for = now.saturating_duration_since(*since);
                self.state = SafeModeState::Off {
                    consecutive_failures: 0,
                };
                Some(SafeModeEvent::Deactivated {
                    at: now,
                    was_on_for,
                })
            }
        }
    }

    /// `agm safe-mode enable`: on until turned off by hand.
    pub fn enable(&mut self, note: Option<String>, now: Instant) -> Option<SafeModeEvent> {
        let since = match &self.state {
            SafeModeState::On {
                reason: SafeModeReason::Manual { .. },
                ..
            } => return None,
            SafeModeState::On { since, .. } => *since,
            SafeModeState::Off { .. } => now,
        };
        let reason = SafeModeReason::Manual { note };
        self.state = SafeModeState::On {
            reason: reason.clone(),
            since,
            next_retry: None,
        };
        Some(SafeModeEvent::Activated { reason, at: now })
    }

    /// `agm safe-mode disable`: off, failure count reset.
    pub fn disable(&mut self, now: Instant) -> Option<SafeModeEvent> {
        let event = match &self.state {
            SafeModeState::On { since, .. } => Some(SafeModeEvent::Deactivated {
                at: now,
                was_on_for: now.saturating_duration_since(*since),
            }),
            SafeModeState::Off { .. } => None,
        };
        self.state = SafeModeState::Off {
            consecutive_failures: 0,
        };
        event
    }

    /// `agm safe-mode reset-all`: off, and every account's count forgotten.
    pub fn reset_all(&mut self, now: Instant) -> Option<SafeModeEvent> {
        self.accounts.clear();
        self.disable(now)
    }

    /// The state to store; `wall_now` is the wall-clock time of `now`.
    pub fn to_record(&self, revision: u64, now: Instant, wall_now: SystemTime) -> SafeModeRecord {
        let wall_ms = |at: Instant| -> Option<i64> {
            let t = if at >= now {
                wall_now.checked_add(at - now)?
            } else {
                wall_now.checked_sub(now - at)?
            };
            let ms = t.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_millis();
            i64::try_from(ms).ok()
        };
        let accounts = self.accounts.iter().map(|(k, v)| (k.clone(), *v)).collect();
        match &self.state {
            SafeModeState::Off {
                consecutive_failures,
            } => SafeModeRecord {
                revision,
                reason: None,
                since_ms: None,
                next_retry_ms: None,
                consecutive_failures: *consecutive_failures,
                accounts,
                reset_generation: 0,
            },
            SafeModeState::On {
                reason,
                since,
                next_retry,
            } => SafeModeRecord {
                revision,
                reason: Some(reason.clone()),
                since_ms: wall_ms(*since),
                next_retry_ms: next_retry.and_then(wall_ms),
                consecutive_failures: 0,
                accounts,
                reset_generation: 0,
            },
        }
    }

    /// Takes over a stored state (`wall_now` is the wall-clock time of `now`). Times
    /// before this process started are clamped to `now`; that only shortens a wait.
    pub fn adopt(&mut self, record: &SafeModeRecord, now: Instant, wall_now: SystemTime) {
        let instant = |ms: i64| -> Instant {
            let Ok(ms) = u64::try_from(ms) else {
                return now;
            };
            let at = SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
            match at.duration_since(wall_now) {
                Ok(ahead) => now + ahead,
                Err(behind) => now.checked_sub(behind.duration()).unwrap_or(now),
            }
        };
        self.accounts = record
            .accounts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        self.state = match &record.reason {
            None => SafeModeState::Off {
                consecutive_failures: record.consecutive_failures,
            },
            Some(reason) => SafeModeState::On {
                reason: reason.clone(),
                since: record.since_ms.map_or(now, instant),
                next_retry: match reason {
                    SafeModeReason::Manual { .. } => None,
                    SafeModeReason::Auto { .. } => Some(
                        record
                            .next_retry_ms
                            .map_or(now + self.config.retry_interval, instant),
                    ),
                },
            },
        };
    }

    /// The status at `now`; `wall_now` is the wall-clock time of the same moment, to
    /// turn instants into RFC 3339 times.
    pub fn status(&self, now: Instant, wall_now: SystemTime) -> SafeModeStatus {
        let wall = |at: Instant| -> Option<time::OffsetDateTime> {
            let t = if at >= now {
                wall_now.checked_add(at - now)?
            } else {
                wall_now.checked_sub(now - at)?
            };
            Some(time::OffsetDateTime::from(t))
        };
        match &self.state {
            SafeModeState::Off { .. } => SafeModeStatus {
                active: !self.config.enable_antigravity,
                reason: (!self.config.enable_antigravity)
                    .then(|| "Antigravity is turned off (enable_antigravity = false)".to_owned()),
                since: None,
                next_retry: None,
            },
            SafeModeState::On {
                reason,
                since,
                next_retry,
            } => SafeModeStatus {
                active: true,
                reason: Some(reason.to_string()),
                since: wall(*since),
                next_retry: next_retry.and_then(wall),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn fail_n(s: &mut SafeMode, account: &str, n: u32, now: Instant) -> Vec<SafeModeEvent> {
        (0..n)
            .flat_map(|_| s.record_project_failure(account, "SUBSCRIPTION_REQUIRED", now))
            .collect()
    }

    #[test]
    fn turns_on_after_the_threshold_and_retries_hourly() {
        let mut s = SafeMode::new(SafeModeConfig::default());
        let t0 = Instant::now();
        assert!(fail_n(&mut s, "a", 2, t0).is_empty());
        assert!(fail_n(&mut s, "b", 2, t0).is_empty());
        assert_eq!(s.route(t0), Route::Antigravity);
        let events = fail_n(&mut s, "c", 1, t0);
        assert!(matches!(
            &events[..],
            [SafeModeEvent::Activated {
                reason: SafeModeReason::Auto { failures: 5, .. },
                ..
            }]
        ));
        assert!(!s.account_tripped("a"), "per account it is only 2");
        assert_eq!(s.route(t0 + secs(10)), Route::OfficialApi);
        let hour = t0 + secs(3600);
        assert_eq!(s.route(hour), Route::ProbeAntigravity);
        assert_eq!(s.route(hour), Route::OfficialApi, "one probe per interval");
        // The probe fails: still on, next retry an hour later.
        assert!(fail_n(&mut s, "a", 1, hour).is_empty());
        assert_eq!(s.route(hour + secs(3599)), Route::OfficialApi);
        assert_eq!(s.route(hour + secs(3600)), Route::ProbeAntigravity);
        let back = s.record_project_success("a", hour + secs(3601));
        assert_eq!(
            back,
            Some(SafeModeEvent::Deactivated {
                at: hour + secs(3601),
                was_on_for: secs(7201)
            })
        );
        assert_eq!(s.route(hour + secs(3601)), Route::Antigravity);
    }

    #[test]
    fn a_success_resets_the_count() {
        let mut s = SafeMode::new(SafeModeConfig::default());
        let t0 = Instant::now();
        fail_n(&mut s, "a", 4, t0);
        assert_eq!(s.record_project_success("b", t0), None);
        assert!(
            fail_n(&mut s, "a", 1, t0)
                .iter()
                .all(|e| !matches!(e, SafeModeEvent::Activated { .. }))
        );
        assert!(!s.is_on());
    }

    #[test]
    fn a_threshold_of_zero_turns_the_automatic_part_off() {
        let mut s = SafeMode::new(SafeModeConfig {
            auto_activate_threshold: 0,
            ..SafeModeConfig::default()
        });
        let t0 = Instant::now();
        assert!(fail_n(&mut s, "a", 50, t0).is_empty(), "no event at all");
        assert!(!s.is_on());
        assert!(!s.account_tripped("a"));
        assert_eq!(s.route(t0), Route::Antigravity);
        assert!(
            matches!(
                s.state(),
                SafeModeState::Off {
                    consecutive_failures: 50
                }
            ),
            "still counted, for the metric"
        );
    }

    #[test]
    fn accounts_are_counted_separately() {
        let mut s = SafeMode::new(SafeModeConfig {
            auto_activate_threshold: 3,
            ..SafeModeConfig::default()
        });
        let t0 = Instant::now();
        let events = fail_n(&mut s, "a", 3, t0);
        assert!(events.contains(&SafeModeEvent::AccountTripped {
            account: "a".into(),
            failures: 3,
            at: t0
        }));
        assert!(s.account_tripped("a"));
        assert!(!s.account_tripped("b"));
        s.record_project_success("a", t0);
        assert!(!s.account_tripped("a"));
    }

    #[test]
    fn manual_on_stays_on_until_turned_off() {
        let mut s = SafeMode::new(SafeModeConfig::default());
        let t0 = Instant::now();
        assert!(s.enable(Some("maintenance".into()), t0).is_some());
        assert_eq!(s.enable(None, t0), None, "already on by hand");
        assert_eq!(s.route(t0 + secs(86_400)), Route::OfficialApi, "no retry");
        assert_eq!(s.record_project_success("a", t0), None);
        assert!(s.is_on());
        assert!(matches!(
            s.disable(t0 + secs(5)),
            Some(SafeModeEvent::Deactivated { was_on_for, .. }) if was_on_for == secs(5)
        ));
        assert_eq!(s.route(t0), Route::Antigravity);
        assert_eq!(s.disable(t0), None);

        fail_n(&mut s, "a", 5, t0);
        assert!(s.account_tripped("a"));
        assert!(s.reset_all(t0).is_some());
        assert!(!s.account_tripped("a"));
        assert!(!s.is_on());
    }

    #[test]
    fn feature_flag_routes_everything_to_the_official_api() {
        let mut s = SafeMode::new(SafeModeConfig {
            enable_antigravity: false,
            ..SafeModeConfig::default()
        });
        let t0 = Instant::now();
        assert_eq!(s.route(t0), Route::OfficialApi);
        let status = s.status(t0, SystemTime::UNIX_EPOCH);
        assert!(status.active);
        assert!(
            status
                .reason
                .is_some_and(|r| r.contains("enable_antigravity"))
        );
    }

    #[test]
    fn a_record_round_trips_through_json() {
        let config = SafeModeConfig::default();
        let t0 = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + secs(1_760_000_000);
        let mut s = SafeMode::new(config);
        fail_n(&mut s, "a", 5, t0);
        let record = s.to_record(7, t0 + secs(10), wall);
        assert_eq!(record.revision, 7);
        assert_eq!(record.since_ms, Some(1_759_999_990_000));
        assert_eq!(record.next_retry_ms, Some(1_760_003_590_000));
        let json = serde_json::to_string(&record).expect("json");
        let back: SafeModeRecord = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, record);

        // Another process, whose clock reads `wall` at its own `t1`.
        let t1 = Instant::now() + secs(1000);
        let mut other = SafeMode::new(config);
        other.adopt(&back, t1, wall);
        assert!(other.is_on());
        assert!(other.account_tripped("a"));
        assert_eq!(other.route(t1 + secs(3589)), Route::OfficialApi);
        assert_eq!(other.route(t1 + secs(3590)), Route::ProbeAntigravity);
        assert_eq!(
            other.status(t1, wall).reason,
            s.status(t0, wall).reason,
            "the reason survives"
        );

        // Manual: no retry; off: the counts come back.
        other.enable(Some("maintenance".into()), t1);
        let manual = other.to_record(8, t1, wall);
        let mut third = SafeMode::new(config);
        third.adopt(&manual, t1, wall);
        assert_eq!(third.route(t1 + secs(86_400)), Route::OfficialApi);
        third.disable(t1);
        fail_n(&mut third, "b", 2, t1);
        let off = third.to_record(9, t1, wall);
        let mut fourth = SafeMode::new(config);
        fourth.adopt(&off, t1, wall);
        assert_eq!(fourth.account_failures("b"), 2);
        assert_eq!(
            fourth.state(),
            &SafeModeState::Off {
                consecutive_failures: 2
            }
        );
    }

    #[test]
    fn status_json_matches_the_contract() {
        let mut s = SafeMode::new(SafeModeConfig::default());
        let t0 = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + secs(1_760_000_000);
        let off = serde_json::to_value(s.status(t0, wall)).expect("json");
        assert_eq!(
            off,
            serde_json::json!({"active": false, "reason": null, "since": null, "next_retry": null})
        );
        fail_n(&mut s, "a", 5, t0);
        let on = serde_json::to_value(s.status(t0 + secs(60), wall)).expect("json");
        assert_eq!(on["active"], true);
        assert_eq!(
            on["reason"],
            "5 project-id failures in a row (last: SUBSCRIPTION_REQUIRED)"
        );
        assert_eq!(on["since"], "2025-10-09T08:52:20Z");
        assert_eq!(on["next_retry"], "2025-10-09T09:52:20Z");

        // Turned on by hand: no automatic retry, the original `since` kept.
        s.enable(None, t0 + secs(120));
        let manual = serde_json::to_value(s.status(t0 + secs(60), wall)).expect("json");
        assert_eq!(manual["reason"], "turned on by hand");
        assert_eq!(manual["since"], "2025-10-09T08:52:20Z");
        assert_eq!(manual["next_retry"], serde_json::Value::Null);
    }
}
