//! The accounts a request can use, with their access tokens and projects kept warm.
//!
//! This is the walking skeleton's pool: round-robin over active accounts, one token
//! refresh in flight per account (concurrent requests wait for it), the project found
//! with `loadCodeAssist` and cached. Cooldowns, stickiness and the circuit breaker come
//! with the reliability stack.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agm_google::{
    DiscoveryError, DiscoveryRequest, DiscoveryStats, GoogleClient, ProjectCache, ProjectDiscovery,
    UpstreamError,
};
use agm_pool::cooldown::{CooldownConfig, Cooldowns};
use agm_store::{Account, AccountState, Store, TokenUpdate};
use time::OffsetDateTime;
use tokio::sync::{Mutex, RwLock};

/// Refresh this long before the access token expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// How stale the in-memory account list may get before it is read again from the store
/// (accounts added or disabled from the CLI show up within this).
const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// An account ready for one upstream call.
#[derive(Debug, Clone)]
pub struct Lease {
    pub account_id: String,
    pub email: String,
    pub access_token: String,
    pub project: String,
    /// Whether to send `X-Goog-User-Project` (off for accounts it caused 403s for).
    pub project_header: bool,
}

impl Lease {
    /// How generation calls on this lease authenticate.
    pub fn auth(&self) -> agm_google::CallAuth<'_> {
        agm_google::CallAuth {
            access_token: &self.access_token,
            project_header: self.project_header,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error(
        "no Google account is set up: add one with `agm accounts add` (or try agm without one: `agm demo`)"
    )]
    NoAccounts,
    #[error("no account can serve requests: {0}")]
    NoneUsable(String),
    #[error("every account is cooling down for {model}; the soonest is free again in {}s", .retry_after.as_secs().max(1))]
    AllCoolingDown {
        model: String,
        retry_after: Duration,
    },
    #[error("the account store failed: {0}")]
    Store(#[from] agm_store::StoreError),
}

struct CachedToken {
    access_token: String,
    expires_at: OffsetDateTime,
}

struct AccountSlot {
    id: String,
    email: String,
    token: Mutex<Option<CachedToken>>,
    /// Held while this account's project is being discovered: one discovery at a time.
    discovering: Mutex<()>,
    /// Set once `X-Goog-User-Project` caused a 403 for this account.
    omit_project_header: std::sync::atomic::AtomicBool,
}

struct Snapshot {
    loaded_at: Instant,
    /// Active accounts only, in store order.
    slots: Vec<Arc<AccountSlot>>,
}

pub struct AccountPool {
    store: Store,
    google: GoogleClient,
    projects: std::sync::Mutex<ProjectCache>,
    discovery: ProjectDiscovery,
    /// Every project-discovery attempt, for `/readyz`, metrics and the validation gate.
    pub discovery_stats: DiscoveryStats,
    /// Per account+model cooldowns after Google's rate limits.
    pub cooldowns: Cooldowns,
    snapshot: RwLock<Option<Snapshot>>,
    next: AtomicUsize,
}

impl AccountPool {
    pub fn new(store: Store, google: GoogleClient, project_ttl: Duration) -> AccountPool {
        AccountPool {
            store,
            google,
            projects: std::sync::Mutex::new(ProjectCache::new(project_ttl)),
            discovery: ProjectDiscovery::default(),
            discovery_stats: DiscoveryStats::default(),
            cooldowns: Cooldowns::new(CooldownConfig::default()),
            snapshot: RwLock::new(None),
            next: AtomicUsize::new(0),
        }
    }

    /// How many accounts are active right now (for `/readyz`).
    pub async fn active_count(&self) -> Result<usize, PoolError> {
        Ok(self.slots().await?.len())
    }

    /// The next usable account, token fresh and project known. Accounts that fail here
    /// (dead refresh token, no project) are skipped; their reason is kept for the error.
    pub async fn acquire(&self) -> Result<Lease, PoolError> {
        self.acquire_for(None, &[]).await
    }

    /// Like [`acquire`](Self::acquire), for `model` (skipping accounts cooling down for
    /// it) and skipping the accounts in `exclude` (those this request already tried).
    pub async fn acquire_for(
        &self,
        model: Option<&str>,
        exclude: &[String],
    ) -> Result<Lease, PoolError> {
        let slots = self.slots().await?;
        if slots.is_empty() {
            let all = self.store.list_accounts().await?;
            if all.is_empty() {
                return Err(PoolError::NoAccounts);
            }
            let reasons: Vec<String> = all.iter().map(describe_unusable).collect();
            return Err(PoolError::NoneUsable(reasons.join("; ")));
        }
        let now = Instant::now();
        if let Some(model) = model {
            let cooling: Vec<&str> = slots
                .iter()
                .filter(|s| !exclude.contains(&s.id))
                .map(|s| s.id.as_str())
                .collect();
            if !cooling.is_empty()
                && cooling
                    .iter()
                    .all(|id| !self.cooldowns.available(id, model, now))
            {
                let soonest = self
                    .cooldowns
                    .soonest_reset(model, cooling, now)
                    .unwrap_or(now);
                return Err(PoolError::AllCoolingDown {
                    model: model.to_owned(),
                    retry_after: soonest.saturating_duration_since(now),
                });
            }
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut reasons = Vec::new();
        for i in 0..slots.len() {
            let slot = &slots[(start + i) % slots.len()];
            if exclude.contains(&slot.id)
                || model.is_some_and(|m| !self.cooldowns.available(&slot.id, m, now))
            {
                continue;
            }
            match self.prepare(slot).await {
                Ok(lease) => return Ok(lease),
                Err(reason) => {
                    tracing::warn!(account = %slot.email, %reason, "account skipped");
                    reasons.push(format!("{}: {reason}", slot.email));
                }
            }
        }
        Err(PoolError::NoneUsable(reasons.join("; ")))
    }

    /// Forgets the cached access token (after an upstream 401) so the next lease refreshes.
    pub async fn invalidate_token(&self, account_id: &str) {
        if let Some(slot) = self.find(account_id).await {
            *slot.token.lock().await = None;
        }
    }

    async fn find(&self, account_id: &str) -> Option<Arc<AccountSlot>> {
        let guard = self.snapshot.read().await;
        guard
            .as_ref()?
            .slots
            .iter()
            .find(|s| s.id == account_id)
            .cloned()
    }

    async fn slots(&self) -> Result<Vec<Arc<AccountSlot>>, PoolError> {
        {
            let guard = self.snapshot.read().await;
            if let Some(s) = guard
                .as_ref()
                .filter(|s| s.loaded_at.elapsed() < RELOAD_EVERY)
            {
                return Ok(s.slots.clone());
            }
        }
        let mut guard = self.snapshot.write().await;
        if let Some(s) = guard
            .as_ref()
            .filter(|s| s.loaded_at.elapsed() < RELOAD_EVERY)
        {
            return Ok(s.slots.clone());
        }
        let accounts = self.store.list_accounts().await?;
        let old: HashMap<String, Arc<AccountSlot>> = guard
            .take()
            .map(|s| {
                s.slots
                    .into_iter()
                    .map(|slot| (slot.id.clone(), slot))
                    .collect()
            })
            .unwrap_or_default();
        let slots: Vec<Arc<AccountSlot>> = accounts
            .into_iter()
            .filter(|a| matches!(a.state, AccountState::Active))
            .map(|a| match old.get(&a.id) {
                Some(slot) => Arc::clone(slot),
                None => {
                    if let Some(project) = &a.project_id {
                        self.project_cache().put(&a.id, project, Instant::now());
                    }
                    Arc::new(AccountSlot {
                        token: Mutex::new(a.access_token.as_ref().zip(a.access_expires_at).map(
                            |(token, expires_at)| CachedToken {
                                access_token: token.expose().to_owned(),
                                expires_at,
                            },
                        )),
                        discovering: Mutex::new(()),
                        omit_project_header: std::sync::atomic::AtomicBool::new(false),
                        id: a.id,
                        email: a.email,
                    })
                }
            })
            .collect();
        *guard = Some(Snapshot {
            loaded_at: Instant::now(),
            slots: slots.clone(),
        });
        Ok(slots)
    }

    async fn prepare(&self, slot: &AccountSlot) -> Result<Lease, String> {
        let access_token = self.access_token(slot).await?;
        let project = self.project(slot, &access_token).await?;
        Ok(Lease {
            account_id: slot.id.clone(),
            email: slot.email.clone(),
            access_token,
            project,
            project_header: !slot.omit_project_header.load(Ordering::Relaxed),
        })
    }

    /// A valid access token, refreshed first when it is close to expiry. The slot's
    /// mutex makes this single-flight: concurrent callers wait for one refresh.
    async fn access_token(&self, slot: &AccountSlot) -> Result<String, String> {
        let mut token = slot.token.lock().await;
        let now = OffsetDateTime::now_utc();
        if let Some(t) = token
            .as_ref()
            .filter(|t| t.expires_at - REFRESH_MARGIN > now)
        {
            return Ok(t.access_token.clone());
        }
        let account = self
            .store
            .get_account(&slot.id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "the account was removed".to_owned())?;
        match self.google.refresh(account.refresh_token.expose()).await {
            Ok(grant) => {
                let expires_at = now + grant.expires_in;
                let update = TokenUpdate {
                    access_token: grant.access_token.clone().into(),
                    access_expires_at: expires_at,
                    refresh_token: grant.refresh_token.map(Into::into),
                };
                if let Err(e) = self.store.update_tokens(&slot.id, update).await {
                    tracing::warn!(account = %slot.email, error = %e, "could not save the refreshed token");
                }
                // A new token may change what loadCodeAssist answers.
                self.invalidate_project(&slot.id);
                *token = Some(CachedToken {
                    access_token: grant.access_token.clone(),
                    expires_at,
                });
                Ok(grant.access_token)
            }
            Err(UpstreamError::InvalidGrant { description }) => {
                let reason = format!(
                    "Google refused the refresh token ({description}); sign in again with `agm accounts add`"
                );
                if let Err(e) = self
                    .store
                    .set_account_state(
                        &slot.id,
                        AccountState::Disabled {
                            reason: reason.clone(),
                        },
                    )
                    .await
                {
                    tracing::warn!(account = %slot.email, error = %e, "could not disable the account");
                }
                self.snapshot.write().await.take();
                Err(reason)
            }
            Err(e) => Err(format!("token refresh failed: {e}")),
        }
    }

    fn project_cache(&self) -> std::sync::MutexGuard<'_, ProjectCache> {
        self.projects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stops sending `X-Goog-User-Project` for this account (it caused a 403).
    pub async fn omit_project_header(&self, account_id: &str) {
        if let Some(slot) = self.find(account_id).await {
            slot.omit_project_header.store(true, Ordering::Relaxed);
            tracing::warn!(account = %slot.email, "X-Goog-User-Project caused a 403; sending requests for this account without it");
        }
    }

    /// Forgets an account's project (after a 403 about it), so the next lease runs
    /// discovery again.
    pub fn invalidate_project(&self, account_id: &str) {
        self.project_cache().invalidate(account_id);
    }

    /// The account's project: cached (TTL from `[project_id] cache_ttl`), else found by
    /// discovery (loadCodeAssist, onboarding when needed), one discovery per account at
    /// a time. An account that needs its user (verification, a project to configure) is
    /// blocked with the reason and the link.
    async fn project(&self, slot: &AccountSlot, access_token: &str) -> Result<String, String> {
        if let Some(id) = self.project_cache().get(&slot.id, Instant::now()) {
            return Ok(id);
        }
        let _one_at_a_time = slot.discovering.lock().await;
        if let Some(id) = self.project_cache().get(&slot.id, Instant::now()) {
            return Ok(id);
        }
        let request = DiscoveryRequest {
            account: &slot.email,
            access_token,
            duet_project: None,
        };
        match self
            .discovery
            .discover(
                &self.google,
                request,
                &self.discovery_stats,
                tokio::time::sleep,
            )
            .await
        {
            Ok(found) => {
                if let Err(e) = self
                    .store
                    .set_project(&slot.id, Some(&found.project_id), found.tier_id.as_deref())
                    .await
                {
                    tracing::warn!(account = %slot.email, error = %e, "could not save the project id");
                }
                self.project_cache()
                    .put(&slot.id, &found.project_id, Instant::now());
                Ok(found.project_id)
            }
            Err(e) if e.needs_the_user() => {
                let url = match &e {
                    DiscoveryError::ValidationRequired { url, .. } => url.clone(),
                    _ => None,
                };
                let reason = e.to_string();
                if let Err(err) = self
                    .store
                    .set_account_state(
                        &slot.id,
                        AccountState::Blocked {
                            reason: reason.clone(),
                            url,
                        },
                    )
                    .await
                {
                    tracing::warn!(account = %slot.email, error = %err, "could not block the account");
                }
                self.snapshot.write().await.take();
                Err(reason)
            }
            Err(e) => Err(format!("project discovery failed: {e}")),
        }
    }
}

fn describe_unusable(account: &Account) -> String {
    match &account.state {
        AccountState::Active => format!("{}: active", account.email),
        AccountState::Disabled { reason } => format!("{} is disabled: {reason}", account.email),
        AccountState::Blocked { reason, url } => match url {
            Some(url) => format!("{} is blocked: {reason} (open {url})", account.email),
            None => format!("{} is blocked: {reason}", account.email),
        },
    }
}
