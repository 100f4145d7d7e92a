//! Cooldowns beyond the process: written to the store (wall-clock times) so that a
//! restart keeps every one still running and the CLI can show them, and cleared from
//! the CLI (`agm accounts clear-cooldowns`) through a request the server follows.

use std::time::{Duration, Instant};

use agm_pool::cooldown::{CooldownReason, Cooldowns};
use agm_store::{Store, StoreError};
use serde::{Deserialize, Serialize};

/// The settings key of the stored cooldowns.
pub const SETTING_KEY: &str = "cooldowns";
/// The settings key of the CLI's clear requests.
pub const CLEAR_KEY: &str = "cooldowns:clear";

/// One stored cooldown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCooldown {
    /// The account id.
    pub account: String,
    pub model: String,
    #[serde(with = "time::serde::rfc3339")]
    pub until: time::OffsetDateTime,
    pub reason: CooldownReason,
}

/// A request from the CLI to clear cooldowns: of one account, or all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearRequest {
    pub generation: u64,
    pub account: Option<String>,
}

/// The running cooldowns, as stored.
pub fn snapshot(cooldowns: &Cooldowns) -> Vec<StoredCooldown> {
    let now = Instant::now();
    let wall = time::OffsetDateTime::now_utc();
    cooldowns
        .list(now)
        .into_iter()
        .map(|c| StoredCooldown {
            until: wall
                + time::Duration::try_from(c.until.saturating_duration_since(now))
                    .unwrap_or(time::Duration::ZERO),
            account: c.account,
            model: c.model,
            reason: c.reason,
        })
        .collect()
}

pub async fn load(store: &Store) -> Result<Vec<StoredCooldown>, StoreError> {
    let value = store.get_setting(SETTING_KEY).await?;
    Ok(value
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

pub async fn save(store: &Store, cooldowns: &[StoredCooldown]) -> Result<(), StoreError> {
    let value = serde_json::to_value(cooldowns).unwrap_or_default();
    store.set_setting(SETTING_KEY, &value).await
}

/// Puts the stored cooldowns that are still running back into `cooldowns` (at start).
pub async fn restore(store: &Store, cooldowns: &Cooldowns) -> Result<usize, StoreError> {
    let now = Instant::now();
    let wall = time::OffsetDateTime::now_utc();
    let mut restored = 0;
    for c in load(store).await? {
        let left = c.until - wall;
        if left <= time::Duration::ZERO {
            continue;
        }
        let left = Duration::try_from(left).unwrap_or(Duration::ZERO);
        cooldowns.set(&c.account, &c.model, now + left, c.reason);
        restored += 1;
    }
    Ok(restored)
}

pub async fn load_clear(store: &Store) -> Result<ClearRequest, StoreError> {
    let value = store.get_setting(CLEAR_KEY).await?;
    Ok(value
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

/// Asks a running server (and the stored state) to clear cooldowns: of `account`
/// (an id), or all.
pub async fn request_clear(store: &Store, account: Option<&str>) -> Result<(), StoreError> {
    let previous = load_clear(store).await?;
    let request = ClearRequest {
        generation: previous.generation + 1,
        account: account.map(str::to_owned),
    };
    store
        .set_setting(
            CLEAR_KEY,
            &serde_json::to_value(&request).unwrap_or_default(),
        )
        .await?;
    let kept: Vec<StoredCooldown> = load(store)
        .await?
        .into_iter()
        .filter(|c| account.is_some_and(|a| a != c.account))
        .collect();
    save(store, &kept).await
}
