//! Quota snapshots as the store keeps them (one per account, written by
//! `agm accounts quota`), and what the server reads back from them.

use std::collections::{BTreeMap, HashMap};

use agm_google::QuotaSnapshot;
use agm_store::{Store, StoreError};

/// The settings key an account's latest quota snapshot is stored under.
pub fn setting_key(account_id: &str) -> String {
    format!("quota:{account_id}")
}

/// Stores an account's snapshot.
pub async fn save(
    store: &Store,
    account_id: &str,
    snapshot: &QuotaSnapshot,
) -> Result<(), StoreError> {
    let value = serde_json::to_value(snapshot).unwrap_or_default();
    store.set_setting(&setting_key(account_id), &value).await
}

/// An account's latest stored snapshot, if `agm accounts quota` has fetched one.
pub async fn load(store: &Store, account_id: &str) -> Result<Option<QuotaSnapshot>, StoreError> {
    let value = store.get_setting(&setting_key(account_id)).await?;
    Ok(value.and_then(|v| serde_json::from_value(v).ok()))
}

/// The fraction of quota left per model id in a snapshot. A model Google reports with
/// quota information but no fraction is exhausted (Google leaves a 0 out).
pub fn fractions(snapshot: &QuotaSnapshot) -> HashMap<String, f64> {
    snapshot
        .models
        .iter()
        .filter(|m| m.remaining_fraction.is_some() || m.reset_time.is_some())
        .map(|m| (m.model.clone(), m.remaining_fraction.unwrap_or(0.0)))
        .collect()
}

/// Every deprecated upstream id any stored snapshot reports, with its replacement: the
/// model map forwards them.
pub async fn deprecations(store: &Store) -> Result<BTreeMap<String, String>, StoreError> {
    let mut out = BTreeMap::new();
    for account in store.list_account_infos().await? {
        if let Some(snapshot) = load(store, &account.id).await? {
            out.extend(snapshot.deprecated);
        }
    }
    Ok(out)
}
