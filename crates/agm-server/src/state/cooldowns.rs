//! Cooldowns beyond the process: written to the store (wall-clock times) so that a
//! restart keeps every one still running and the CLI can show them, and cleared from
//! the CLI (`agm accounts clear-cooldowns`) through a request the server follows.

use std::time::{Duration, Instant};

use agm_pool::cooldown::{CooldownReason, Cooldowns};
use serde::{Deserialize, Serialize};

use super::{Shared, StateError, keys};

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

pub async fn load(shared: &Shared) -> Result<Vec<StoredCooldown>, StateError> {
    Ok(shared.get(&keys::COOLDOWNS).await?.unwrap_or_default())
}

pub async fn save(shared: &Shared, cooldowns: &[StoredCooldown]) -> Result<(), StateError> {
    shared.put(&keys::COOLDOWNS, &cooldowns.to_vec()).await
}

/// Puts the stored cooldowns that are still running back into `cooldowns` (at start).
pub async fn restore(shared: &Shared, cooldowns: &Cooldowns) -> Result<usize, StateError> {
    let now = Instant::now();
    let wall = time::OffsetDateTime::now_utc();
    let mut restored = 0;
    for c in load(shared).await? {
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

pub async fn load_clear(shared: &Shared) -> Result<ClearRequest, StateError> {
    Ok(shared.get(&keys::COOLDOWN_CLEAR).await?.unwrap_or_default())
}

/// Asks a running server (and the stored state) to clear cooldowns: of `account`
/// (an id), or all. Both steps are atomic: two clears at once make two generations,
/// and a cooldown the server stores meanwhile is not brought back.
pub async fn request_clear(shared: &Shared, account: Option<&str>) -> Result<(), StateError> {
    let account = account.map(str::to_owned);
    let request_account = account.clone();
    shared
        .update(
            &keys::COOLDOWN_CLEAR,
            move |previous: Option<ClearRequest>| {
                let request = ClearRequest {
                    generation: previous.unwrap_or_default().generation + 1,
                    account: request_account,
                };
                (Some(request), ())
            },
        )
        .await?;
    shared
        .update(
            &keys::COOLDOWNS,
            move |stored: Option<Vec<StoredCooldown>>| {
                let kept = stored
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|c| account.as_ref().is_some_and(|a| *a != c.account))
                    .collect();
                (Some(kept), ())
            },
        )
        .await
}
