//! Smart warmup: which accounts get one minimal request now, so that an idle account's
//! quota window starts when the previous one has reset — and its next reset comes on
//! time, not hours after the user starts working.
//!
//! Pure: the caller passes each account's state, what was warmed before, and the wall
//! clock. The rules:
//! - only a model group whose quota is full (nothing used since the last reset: the
//!   window has not started) is warmed;
//! - at most one warmup per account, group and window: after a warmup the group is left
//!   alone until the window that warmup started has ended;
//! - never an account that is cooling down, disabled, blocked or under quota protection,
//!   and nothing inside the quiet hours;
//! - the caller stops a round at the first failed warmup.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime, Time};

/// `[warmup]` as the planner needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct WarmupConfig {
    /// Model groups warmed, each matched as a prefix of the upstream model id
    /// (`claude`, `gemini-3-pro`, `gemini-3-flash`, …).
    pub groups: Vec<String>,
    /// How long a quota window lasts when Google does not say when it resets.
    pub window: Duration,
    /// No warmup between these two times of day (UTC); `None`: any time.
    pub quiet_hours: Option<(Time, Time)>,
}

/// One account as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct WarmupAccount {
    /// The store id.
    pub id: String,
    /// Cooling down, disabled, blocked or under quota protection: never warmed.
    pub usable: bool,
    /// Each model the account is offered, with its quota.
    pub models: Vec<ModelQuota>,
}

/// One model's quota, from the account's latest snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelQuota {
    pub model: String,
    /// 0.0–1.0; `None`: Google reported none.
    pub remaining: Option<f64>,
    /// When Google says the quota resets, if it does.
    pub reset_time: Option<OffsetDateTime>,
}

/// What was warmed before: per account and group, until when its window runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WarmupHistory {
    /// `account id` → `group` → the warmup.
    pub warmed: HashMap<String, HashMap<String, Warmed>>,
}

/// One warmup that was sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warmed {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub model: String,
    /// When the window it started ends: no other warmup for the group before this.
    #[serde(with = "time::serde::rfc3339")]
    pub window_ends: OffsetDateTime,
}

/// One warmup to send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub account: String,
    pub group: String,
    /// The model to send the minimal request to (the group's first offered model).
    pub model: String,
}

/// A quota counts as full (untouched since its reset) from this fraction up.
const FULL: f64 = 0.999;

/// Whether `now` falls in the quiet hours (which may wrap past midnight).
pub fn in_quiet_hours(config: &WarmupConfig, now: OffsetDateTime) -> bool {
    let Some((start, end)) = config.quiet_hours else {
        return false;
    };
    let t = now.to_offset(time::UtcOffset::UTC).time();
    if start <= end {
        start <= t && t < end
    } else {
        t >= start || t < end
    }
}

/// The warmups due at `now`, in account order, one per account and group at most.
pub fn plan(
    config: &WarmupConfig,
    accounts: &[WarmupAccount],
    history: &WarmupHistory,
    now: OffsetDateTime,
) -> Vec<Due> {
    if in_quiet_hours(config, now) {
        return Vec::new();
    }
    let mut due = Vec::new();
    for account in accounts.iter().filter(|a| a.usable) {
        for group in &config.groups {
            let Some(quota) = account
                .models
                .iter()
                .find(|m| m.model.starts_with(group.as_str()))
            else {
                continue;
            };
            let full = quota.remaining.is_some_and(|r| r >= FULL);
            let window_running = history
                .warmed
                .get(&account.id)
                .and_then(|g| g.get(group))
                .is_some_and(|w| now < w.window_ends);
            if full && !window_running {
                due.push(Due {
                    account: account.id.clone(),
                    group: group.clone(),
                    model: quota.model.clone(),
                });
            }
        }
    }
    due
}

/// Records a warmup sent at `now` for `due`: its window runs until Google's reset time
/// for the model, if it said one later than now, else for `config.window`.
pub fn record(
    config: &WarmupConfig,
    history: &mut WarmupHistory,
    due: &Due,
    reset_time: Option<OffsetDateTime>,
    now: OffsetDateTime,
) {
    let window_ends = reset_time
        .filter(|r| *r > now)
        .unwrap_or(now + config.window);
    history
        .warmed
        .entry(due.account.clone())
        .or_default()
        .insert(
            due.group.clone(),
            Warmed {
                at: now,
                model: due.model.clone(),
                window_ends,
            },
        );
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::{datetime, time};

    fn config() -> WarmupConfig {
        WarmupConfig {
            groups: vec!["claude".into(), "gemini-3-flash".into()],
            window: Duration::hours(5),
            quiet_hours: None,
        }
    }

    fn account(id: &str, remaining: f64) -> WarmupAccount {
        WarmupAccount {
            id: id.into(),
            usable: true,
            models: vec![
                ModelQuota {
                    model: "claude-sonnet-4-5".into(),
                    remaining: Some(remaining),
                    reset_time: None,
                },
                ModelQuota {
                    model: "gemini-3-flash".into(),
                    remaining: Some(0.4),
                    reset_time: None,
                },
            ],
        }
    }

    const NOW: OffsetDateTime = datetime!(2026-12-06 09:00 UTC);

    #[test]
    fn only_full_quotas_of_usable_accounts_are_warmed() {
        let mut busy = account("busy", 0.7);
        busy.models[1].remaining = Some(1.0);
        let mut cooling = account("cooling", 1.0);
        cooling.usable = false;
        let due = plan(
            &config(),
            &[account("idle", 1.0), busy, cooling],
            &WarmupHistory::default(),
            NOW,
        );
        let got: Vec<(&str, &str)> = due
            .iter()
            .map(|d| (d.account.as_str(), d.model.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![("idle", "claude-sonnet-4-5"), ("busy", "gemini-3-flash")]
        );
    }

    #[test]
    fn one_warmup_per_window_then_again_after_it_ends() {
        let config = config();
        let mut history = WarmupHistory::default();
        let accounts = [account("a", 1.0)];
        let due = plan(&config, &accounts, &history, NOW);
        assert_eq!(due.len(), 1);
        // Google said the window resets at 14:00.
        record(
            &config,
            &mut history,
            &due[0],
            Some(datetime!(2026-12-06 14:00 UTC)),
            NOW,
        );
        // The snapshot still shows it full (not refreshed yet): not again.
        assert!(plan(&config, &accounts, &history, NOW + Duration::minutes(10)).is_empty());
        assert!(
            plan(
                &config,
                &accounts,
                &history,
                datetime!(2026-12-06 13:59 UTC)
            )
            .is_empty()
        );
        // After the reset, idle again: one more.
        assert_eq!(
            plan(
                &config,
                &accounts,
                &history,
                datetime!(2026-12-06 14:00 UTC)
            )
            .len(),
            1
        );
        // No reset time from Google: the configured window.
        let mut history = WarmupHistory::default();
        record(&config, &mut history, &due[0], None, NOW);
        assert!(
            plan(
                &config,
                &accounts,
                &history,
                NOW + Duration::hours(5) - Duration::SECOND
            )
            .is_empty()
        );
        assert_eq!(
            plan(&config, &accounts, &history, NOW + Duration::hours(5)).len(),
            1
        );
    }

    #[test]
    fn quiet_hours_wrap_past_midnight() {
        let config = WarmupConfig {
            quiet_hours: Some((time!(22:00), time!(07:00))),
            ..config()
        };
        let accounts = [account("a", 1.0)];
        let history = WarmupHistory::default();
        assert!(
            plan(
                &config,
                &accounts,
                &history,
                datetime!(2026-12-06 23:30 UTC)
            )
            .is_empty()
        );
        assert!(
            plan(
                &config,
                &accounts,
                &history,
                datetime!(2026-12-06 06:59 UTC)
            )
            .is_empty()
        );
        assert_eq!(
            plan(
                &config,
                &accounts,
                &history,
                datetime!(2026-12-06 07:00 UTC)
            )
            .len(),
            1
        );
        let day = WarmupConfig {
            quiet_hours: Some((time!(12:00), time!(13:00))),
            ..config
        };
        assert!(plan(&day, &accounts, &history, datetime!(2026-12-06 12:30 UTC)).is_empty());
        assert_eq!(
            plan(&day, &accounts, &history, datetime!(2026-12-06 13:00 UTC)).len(),
            1
        );
    }

    proptest! {
        /// Run every minute for a day with any quota readings: never two warmups of one
        /// account and group inside one window, never an unusable account.
        #[test]
        fn never_more_than_one_warmup_per_window(
            readings in proptest::collection::vec((0.0f64..=1.0, any::<bool>(), any::<bool>()), 1..200),
            window_min in 30i64..600,
        ) {
            let config = WarmupConfig { window: Duration::minutes(window_min), ..config() };
            let mut history = WarmupHistory::default();
            let mut sent: Vec<OffsetDateTime> = Vec::new();
            for (i, (fraction, full, usable)) in readings.into_iter().enumerate() {
                let now = NOW + Duration::minutes(i as i64 * 7);
                let mut a = account("a", if full { 1.0 } else { fraction });
                a.usable = usable;
                for due in plan(&config, &[a.clone()], &history, now) {
                    prop_assert!(usable);
                    if due.group == "claude" {
                        if let Some(last) = sent.last() {
                            prop_assert!(now - *last >= config.window);
                        }
                        sent.push(now);
                    }
                    record(&config, &mut history, &due, None, now);
                }
            }
        }
    }
}
