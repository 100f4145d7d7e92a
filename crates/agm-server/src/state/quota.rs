//! Quota snapshots as the store keeps them (one per account, written by
//! `agm accounts quota`), and what the server reads back from them.

use std::collections::{BTreeMap, HashMap};

use agm_google::QuotaSnapshot;
use agm_store::Store;

use super::{Shared, StateError, keys};

/// Stores an account's snapshot.
pub async fn save(
    shared: &Shared,
    account_id: &str,
    snapshot: &QuotaSnapshot,
) -> Result<(), StateError> {
    shared.put(&keys::quota(account_id), snapshot).await
}

/// An account's latest stored snapshot, if `agm accounts quota` has fetched one.
pub async fn load(shared: &Shared, account_id: &str) -> Result<Option<QuotaSnapshot>, StateError> {
    shared.get(&keys::quota(account_id)).await
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
pub async fn deprecations(
    store: &Store,
    shared: &Shared,
) -> Result<BTreeMap<String, String>, StateError> {
    let mut out = BTreeMap::new();
    for account in store.list_account_infos().await? {
        if let Some(snapshot) = load(shared, &account.id).await? {
            out.extend(snapshot.deprecated);
        }
    }
    Ok(out)
}
