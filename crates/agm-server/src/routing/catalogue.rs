//! The living model catalogue in the server: what each account is offered (from its
//! stored quota snapshot at start, then from every fetch), kept current while agm
//! runs: by the background quota refresh, once for an account whose models are not
//! known yet (after its first successful call, on the side), and at once when Google
//! answers "model not found". The rules for names are `agm_translate::catalogue`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use agm_google::{GoogleClient, QuotaSnapshot};
use agm_store::{AccountState, Pool, Store};
use agm_translate::catalogue::{AccountModels, Catalogue, How, Resolution};

use crate::app::AppState;
use crate::http::error::{ApiError, ApiKind, ErrorKind};
use crate::routing::accounts::AccountPool;

/// Client names worth listing as aliases: the defaults of today's clients (Claude
/// Code, Codex, Gemini CLI, OpenCode) and the names people type.
pub const WELL_KNOWN_NAMES: &[&str] = &[
    "claude-opus-4-5-20251101",
    "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5-20251001",
    "gpt-5",
    "gpt-5.1-codex",
    "o3",
    "o4-mini",
    "gemini-3.1-pro-preview",
    "gemini-3-pro-preview",
    "gemini-3-flash-preview",
    "gemini-3.5-flash-lite",
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
];

/// The catalogue, swapped whole on every change (readers never wait on a fetch).
#[derive(Default)]
pub struct LiveCatalogue {
    current: RwLock<Arc<Catalogue>>,
    /// Accounts whose models are being fetched now (one fetch each at a time).
    fetching: Mutex<HashSet<String>>,
    /// Accounts learned on the side once already in this process (so an account Google
    /// answers with an empty list is not asked after every request).
    tried: Mutex<HashSet<String>>,
}

impl LiveCatalogue {
    pub fn get(&self) -> Arc<Catalogue> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn change(&self, f: impl FnOnce(&mut Catalogue)) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let mut next = (**current).clone();
        f(&mut next);
        *current = Arc::new(next);
    }

    /// Adds what was stored for the accounts not learned yet (a fetch that finished
    /// while the store was read is newer than the store).
    pub fn add_stored(&self, stored: &Catalogue) {
        self.change(|c| {
            for (id, models) in stored.accounts() {
                if !c.knows(id) {
                    c.set_account(id, models.clone());
                }
            }
        });
    }

    /// What `account_id` is offered, from a fresh snapshot.
    pub fn learn(&self, account_id: &str, snapshot: &QuotaSnapshot) {
        let models = account_models(snapshot);
        self.change(|c| c.set_account(account_id, models));
    }

    pub fn forget(&self, account_id: &str) {
        self.change(|c| c.remove_account(account_id));
    }

    /// Marks a fetch for `account_id` as running; `false` when one already is.
    fn start_fetch(&self, account_id: &str) -> bool {
        self.fetching
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(account_id.to_owned())
    }

    fn end_fetch(&self, account_id: &str) {
        self.fetching
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(account_id);
    }
}

/// An account's models as a snapshot reports them.
pub fn account_models(snapshot: &QuotaSnapshot) -> AccountModels {
    AccountModels {
        models: snapshot
            .models
            .iter()
            .map(|m| (m.model.clone(), m.display_name.clone()))
            .collect(),
        deprecated: snapshot.deprecated.clone(),
        windows: snapshot
            .models
            .iter()
            .filter_map(|m| Some((m.model.clone(), m.max_tokens?)))
            .collect(),
    }
}

/// The catalogue from the stored snapshots of the active OAuth accounts (at start,
/// and for `agm models` without a server).
pub async fn load(
    store: &Store,
    shared: &crate::state::Shared,
) -> Result<Catalogue, crate::state::StateError> {
    let mut catalogue = Catalogue::default();
    for account in store.list_account_infos().await? {
        if !matches!(account.state, AccountState::Active) || account.pool == Pool::GeminiApi {
            continue;
        }
        if let Some(snapshot) = crate::state::quota::load(shared, &account.id).await? {
            catalogue.set_account(&account.id, account_models(&snapshot));
        }
    }
    Ok(catalogue)
}

/// A client's model name, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub model: String,
    /// The retired model this one replaces (`x-agm-model-retired`).
    pub retired: Option<String>,
}

/// Resolves a client's model name against the pool's catalogue (or, on the official
/// API's path, the table alone: that API has its own names). A name the pool offers
/// nothing like gets a 404 that names the closest models it does offer.
pub fn resolve(state: &AppState, api: ApiKind, client_model: &str) -> Result<Resolved, ApiError> {
    let catalogue = if state.safe_mode.is_active() || !state.config.routing.enable_antigravity {
        Arc::new(Catalogue::default())
    } else {
        state.accounts.catalogue.get()
    };
    match agm_translate::catalogue::resolve(client_model, &state.models.get(), &catalogue) {
        Resolution::Upstream { model, how } => {
            let retired = match how {
                How::Replaced { retired } => {
                    tracing::info!(%retired, replacement = %model, "a retired model: forwarded to its replacement");
                    Some(retired)
                }
                How::Family => {
                    tracing::debug!(client = client_model, %model, "resolved by family");
                    None
                }
                _ => None,
            };
            Ok(Resolved { model, retired })
        }
        Resolution::Unavailable { closest } => Err(ApiError::new(
            api,
            ErrorKind::NotFound,
            format!(
                "no account in the pool is offered a model like {:?}; the closest it offers: {}. Name one of those, or map the name in [models.map]",
                agm_translate::edge::shown(client_model),
                if closest.is_empty() {
                    "none".to_owned()
                } else {
                    closest.join(", ")
                }
            ),
        )),
    }
}

/// Why an account's model list could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Lease(#[from] crate::routing::accounts::LeaseError),
    #[error("the quota fetch failed: {0}")]
    Quota(#[from] agm_google::UpstreamError),
}

/// What a fetch of an account's models needs, owned (so it can run on the side).
#[derive(Clone)]
pub struct Refresher {
    google: GoogleClient,
    shared: crate::state::Shared,
    accounts: Arc<AccountPool>,
}

impl Refresher {
    pub fn new(state: &AppState) -> Refresher {
        Refresher {
            google: state.google.clone(),
            shared: state.shared.clone(),
            accounts: Arc::clone(&state.accounts),
        }
    }

    /// Asks Google what `account_id` is offered now (`fetchAvailableModels`, with its
    /// quota), stores the snapshot, and updates the catalogue and the account's quota.
    /// At most one fetch per account at a time: a second caller returns at once.
    pub async fn refresh(&self, account_id: &str) -> Result<(), FetchError> {
        let catalogue = &self.accounts.catalogue;
        if !catalogue.start_fetch(account_id) {
            return Ok(());
        }
        let result = self.fetch(account_id).await;
        catalogue.end_fetch(account_id);
        result
    }

    async fn fetch(&self, account_id: &str) -> Result<(), FetchError> {
        let lease = self.accounts.lease_for(account_id).await?;
        let snapshot = self
            .google
            .quota_snapshot(
                &lease.access_token,
                &lease.project,
                time::OffsetDateTime::now_utc(),
            )
            .await?;
        drop(lease);
        self.accounts
            .set_quota(account_id, crate::state::quota::fractions(&snapshot))
            .await;
        self.accounts.catalogue.learn(account_id, &snapshot);
        if let Err(e) = crate::state::quota::save(&self.shared, account_id, &snapshot).await {
            tracing::debug!(account = account_id, error = %e, "could not store the quota snapshot");
        }
        Ok(())
    }

    /// [`Self::refresh`] on the side, for an account whose models are not known yet.
    pub fn learn_in_background(&self, account_id: &str) {
        let catalogue = &self.accounts.catalogue;
        if catalogue.get().knows(account_id)
            || !catalogue
                .tried
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(account_id.to_owned())
        {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = self.clone();
        let account_id = account_id.to_owned();
        handle.spawn(async move {
            if let Err(reason) = this.refresh(&account_id).await {
                tracing::debug!(account = %account_id, %reason, "could not learn the account's models");
            }
        });
    }
}

/// After Google answered "model not found" on `account_id`: its models are fetched
/// again at once, and the client's name resolved again. `Some` when it now resolves
/// to another model (the caller retries once with it).
pub async fn after_not_found(
    state: &AppState,
    api: ApiKind,
    client_model: &str,
    tried: &str,
    account_id: Option<&str>,
) -> Option<Resolved> {
    // Google withdrew the model for one account: every account said to offer it is
    // asked again (a model is retired for all at once), the one that answered first.
    let mut accounts: BTreeSet<String> = state
        .accounts
        .catalogue
        .get()
        .offered()
        .remove(tried)
        .map(|offer| offer.accounts)
        .unwrap_or_default();
    accounts.extend(account_id.map(str::to_owned));
    if accounts.is_empty() {
        return None;
    }
    let refresher = Refresher::new(state);
    let results =
        futures_util::future::join_all(accounts.iter().map(|a| refresher.refresh(a))).await;
    for (account, result) in accounts.iter().zip(results) {
        if let Err(reason) = result {
            tracing::debug!(%account, %reason, "could not refresh the account's models");
        }
    }
    let again = resolve(state, api, client_model).ok()?;
    (again.model != tried).then(|| {
        tracing::info!(client = client_model, from = tried, to = %again.model, "Google no longer serves the model; using what the pool offers now");
        again
    })
}

/// The names to list to clients: every offered model, and the well-known client names
/// and table entries that resolve to one (with what they resolve to). Before the first
/// catalogue fetch: the table's names.
pub fn listing(state: &AppState) -> Vec<Listed> {
    listing_of(&state.models.get(), &state.accounts.catalogue.get())
}

/// [`listing`] for a model map and a catalogue (`agm models` reads them without a
/// server).
pub fn listing_of(models: &agm_translate::models::ModelMap, catalogue: &Catalogue) -> Vec<Listed> {
    if catalogue.is_empty() {
        return models
            .listed()
            .into_iter()
            .map(|id| Listed {
                id: id.to_owned(),
                display_name: None,
                accounts: Vec::new(),
                resolves_to: None,
            })
            .collect();
    }
    let mut out: BTreeMap<String, Listed> = catalogue
        .offered()
        .into_values()
        .map(|offer| {
            (
                offer.id.clone(),
                Listed {
                    id: offer.id,
                    display_name: offer.display_name,
                    accounts: offer.accounts.into_iter().collect(),
                    resolves_to: None,
                },
            )
        })
        .collect();
    let names: BTreeSet<&str> = WELL_KNOWN_NAMES
        .iter()
        .copied()
        .chain(models.exact_names())
        .collect();
    for name in names {
        if out.contains_key(name) {
            continue;
        }
        if let Resolution::Upstream { model, .. } =
            agm_translate::catalogue::resolve(name, models, catalogue)
            && catalogue.offers(&model)
        {
            out.insert(
                name.to_owned(),
                Listed {
                    id: name.to_owned(),
                    display_name: None,
                    accounts: Vec::new(),
                    resolves_to: Some(model),
                },
            );
        }
    }
    out.into_values().collect()
}

/// One listed name.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    pub id: String,
    pub display_name: Option<String>,
    /// The accounts (store ids) offered it; empty for an alias.
    pub accounts: Vec<String>,
    /// For an alias: the model it resolves to now.
    pub resolves_to: Option<String>,
}
