//! The accounts a request can use (layer L2 of docs/ARCHITECTURE.md), with their
//! access tokens and projects kept warm (L3).
//!
//! Which account serves a request is `agm_pool::selection::Selector`'s decision
//! (`[routing] scheduling`, sticky sessions per conversation), over a view of each
//! active account built here: cooldowns per model, circuit breakers per endpoint,
//! quota left per model (quota protection), tier, requests in flight and recent
//! latency. One token refresh is in flight per account (concurrent requests wait for
//! it); the project is found with `loadCodeAssist` and cached, and every discovery
//! outcome is reported to safe mode.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agm_google::{
    DiscoveryError, DiscoveryPolicy, DiscoveryRequest, DiscoveryStats, GoogleClient, ProjectCache,
    ProjectDiscovery, UpstreamError,
};
use agm_pool::breaker::{BreakerConfig, BreakerKey, Breakers, CircuitState};
use agm_pool::cooldown::{CooldownConfig, Cooldowns};
use agm_pool::selection::{AccountView, Availability, Pick, SelectionConfig, Selector, Tier};
use agm_store::{Account, AccountState, Pool, Store, TokenUpdate};
use time::OffsetDateTime;
use tokio::sync::{Mutex, RwLock};

use crate::routing::safe_mode::SafeModeControl;

/// Refresh this long before the access token expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// How stale the in-memory account list may get before it is read again from the store
/// (accounts added or disabled from the CLI show up within this).
const RELOAD_EVERY: Duration = Duration::from_secs(2);
/// Cluster mode: how long a replica waits for another one's token refresh before it
/// refreshes itself, and how often it looks.
const REFRESH_WAIT: Duration = Duration::from_secs(20);
const REFRESH_POLL: Duration = Duration::from_millis(25);

/// An account ready for one upstream call. The account counts one request in flight
/// for as long as any clone of the lease lives (a stream keeps it until it ends).
#[derive(Debug, Clone)]
pub struct Lease {
    pub account_id: String,
    pub email: String,
    pub access_token: String,
    pub project: String,
    /// Whether to send `X-Goog-User-Project` (off for accounts it caused 403s for).
    pub project_header: bool,
    /// `antigravity` or `code-assist`: how calls on this account are sent.
    pub pool: Pool,
    in_flight: Arc<InFlight>,
}

impl Lease {
    /// How generation calls on this lease authenticate (no circuit breaker: see
    /// [`Lease::auth_gated`]).
    pub fn auth(&self) -> agm_google::CallAuth<'_> {
        agm_google::CallAuth {
            access_token: &self.access_token,
            project_header: self.project_header,
            gate: None,
            code_assist: None,
        }
    }

    /// The same lease, sending no `X-Goog-User-Project`.
    pub fn without_project_header(self) -> Lease {
        Lease {
            project_header: false,
            ..self
        }
    }

    /// Records how long a successful call took, for `performance-first`.
    pub fn record_latency(&self, took: Duration) {
        self.in_flight.slot.record_latency(took);
    }
}

/// One request in flight on an account; counted down when dropped.
#[derive(Debug)]
struct InFlight {
    slot: Arc<AccountSlot>,
}

impl InFlight {
    fn start(slot: &Arc<AccountSlot>) -> Arc<InFlight> {
        slot.in_flight.fetch_add(1, Ordering::Relaxed);
        Arc::new(InFlight {
            slot: Arc::clone(slot),
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.slot.in_flight.fetch_sub(1, Ordering::Relaxed);
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
    #[error("the {0} pool has no account")]
    EmptyPool(Pool),
    #[error("every account is cooling down for {model}; the soonest is free again in {}s", .retry_after.as_secs().max(1))]
    AllCoolingDown {
        model: String,
        retry_after: Duration,
    },
    #[error("the account store failed: {0}")]
    Store(#[from] agm_store::StoreError),
}

/// Why one account could not be leased. The words go to the client's error (by
/// account id, never e-mail) and to the operator's log.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("the account is not active")]
    NotActive,
    #[error("its stored tokens cannot be read (see the server log)")]
    Unreadable,
    #[error("the account was removed")]
    Removed,
    #[error("Google refused the refresh token ({0}); sign in again with `agm accounts add`")]
    TokenRefused(String),
    #[error("token refresh failed: {0}")]
    Refresh(UpstreamError),
    /// Discovery found the account needs its user (verification, a project to set
    /// up): the account is blocked with this reason.
    #[error("{0}")]
    NeedsUser(String),
    #[error("project discovery failed: {0}")]
    Discovery(String),
}

struct CachedToken {
    access_token: String,
    expires_at: OffsetDateTime,
}

#[derive(Debug)]
struct AccountSlot {
    id: String,
    email: String,
    pool: Pool,
    tier: Option<Tier>,
    token: Mutex<Option<CachedToken>>,
    /// The SHA-256 of the last access token Google refused: in cluster mode a token
    /// another replica stored is taken only if it is not this one.
    rejected: std::sync::Mutex<Option<[u8; 32]>>,
    /// Held while this account's project is being discovered: one discovery at a time.
    discovering: Mutex<()>,
    /// Set once `X-Goog-User-Project` caused a 403 for this account.
    omit_project_header: AtomicBool,
    in_flight: AtomicU32,
    /// Recent latency of successful calls, in microseconds (an exponentially weighted
    /// average); 0 until the first one.
    latency_us: AtomicU64,
    /// Fraction of each model's quota left, from the latest quota snapshot.
    quota: std::sync::RwLock<HashMap<String, f64>>,
}

impl AccountSlot {
    fn record_latency(&self, took: Duration) {
        let sample = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        let _ = self
            .latency_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 {
                    sample
                } else {
                    (old.saturating_mul(4).saturating_add(sample)) / 5
                })
            });
    }

    fn remaining(&self, model: &str) -> Option<f64> {
        self.quota
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(model)
            .copied()
    }
}

impl std::fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

struct Snapshot {
    loaded_at: Instant,
    /// Read the store again on the next use, whatever `loaded_at` says.
    stale: bool,
    /// Active accounts only, in store order.
    slots: Vec<Arc<AccountSlot>>,
}

/// How the pool is set up (from the config).
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub project_ttl: Duration,
    pub selection: SelectionConfig,
    pub breaker: BreakerConfig,
    pub discovery: DiscoveryPolicy,
    /// The Code Assist endpoints, for the breaker view of an account.
    pub endpoints: Vec<String>,
}

pub struct AccountPool {
    store: Store,
    shared: crate::state::Shared,
    google: GoogleClient,
    projects: std::sync::Mutex<ProjectCache>,
    discovery: ProjectDiscovery,
    /// Every project-discovery attempt, for `/readyz`, metrics and the validation gate.
    pub discovery_stats: DiscoveryStats,
    /// Per account+model cooldowns after Google's rate limits.
    pub cooldowns: Cooldowns,
    /// Circuit breakers, per Code Assist endpoint and account.
    pub breakers: Breakers,
    /// Which account serves the next request, and sticky sessions.
    pub selector: Selector,
    /// What each account is offered (the living model catalogue): a request goes only
    /// to an account entitled to its model.
    pub catalogue: Arc<crate::routing::catalogue::LiveCatalogue>,
    /// Fed with every project-discovery outcome.
    safe_mode: Arc<SafeModeControl>,
    endpoints: Vec<String>,
    snapshot: RwLock<Option<Snapshot>>,
    /// Cluster mode: sticky sessions and token refreshes shared through Redis.
    cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
}

impl AccountPool {
    pub fn new(
        store: Store,
        shared: crate::state::Shared,
        google: GoogleClient,
        settings: PoolSettings,
        safe_mode: Arc<SafeModeControl>,
    ) -> AccountPool {
        AccountPool {
            store,
            shared,
            google,
            projects: std::sync::Mutex::new(ProjectCache::new(settings.project_ttl)),
            discovery: ProjectDiscovery::new(settings.discovery),
            discovery_stats: DiscoveryStats::default(),
            cooldowns: Cooldowns::new(CooldownConfig::default()),
            breakers: Breakers::new(settings.breaker),
            selector: Selector::new(settings.selection),
            catalogue: Arc::default(),
            safe_mode,
            endpoints: settings
                .endpoints
                .iter()
                .map(|e| e.trim_end_matches('/').to_owned())
                .collect(),
            snapshot: RwLock::new(None),
            cluster: std::sync::OnceLock::new(),
        }
    }

    /// Shares sticky sessions and token refreshes with the cluster.
    pub fn set_cluster(&self, cluster: Arc<crate::cluster::Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    /// How many accounts are active right now (for `/readyz`).
    pub async fn active_count(&self) -> Result<usize, PoolError> {
        Ok(self.slots().await?.len())
    }

    /// The next usable account, token fresh and project known. Accounts that fail here
    /// (dead refresh token, no project) are skipped; their reason is kept for the error.
    pub async fn acquire(&self) -> Result<Lease, PoolError> {
        self.acquire_for(Pool::Antigravity, None, None, &[]).await
    }

    /// An account for one request of conversation `session` (if known) to `model`
    /// (skipping accounts cooling down for it, or under its quota threshold), skipping
    /// the accounts in `exclude` (those this request already tried). The choice is the
    /// selector's; an account whose token or project cannot be had is skipped.
    pub async fn acquire_for(
        &self,
        pool: Pool,
        model: Option<&str>,
        session: Option<&str>,
        exclude: &[String],
    ) -> Result<Lease, PoolError> {
        let slots: Vec<Arc<AccountSlot>> = self
            .slots()
            .await?
            .into_iter()
            .filter(|s| s.pool == pool)
            .collect();
        if slots.is_empty() {
            let all: Vec<Account> = self
                .store
                .list_accounts_lenient()
                .await?
                .0
                .into_iter()
                .filter(|a| a.pool == pool)
                .collect();
            if all.is_empty() {
                return Err(if pool == Pool::Antigravity {
                    PoolError::NoAccounts
                } else {
                    PoolError::EmptyPool(pool)
                });
            }
            let reasons: Vec<String> = all.iter().map(describe_unusable).collect();
            return Err(PoolError::NoneUsable(reasons.join("; ")));
        }
        // Cluster mode: the conversation's account as the cluster knows it wins over
        // this replica's (it may have moved on another replica).
        let shared_sticky = self.shared_sticky(session).await;
        let mut skipped: Vec<String> = Vec::new();
        let mut reasons = Vec::new();
        // Read once per pick, not once per account.
        let catalogue = self.catalogue.get();
        loop {
            let now = Instant::now();
            let views: Vec<AccountView> = slots
                .iter()
                .filter(|s| !exclude.contains(&s.id) && !skipped.contains(&s.id))
                .map(|slot| self.view(slot, model, &catalogue, now))
                .collect();
            if views.is_empty() {
                return Err(PoolError::NoneUsable(if reasons.is_empty() {
                    "every account was tried".to_owned()
                } else {
                    reasons.join("; ")
                }));
            }
            let (id, wait_until) = match self.selector.pick(session, &views, now) {
                Pick::Account(id) => (id, None),
                Pick::WaitFor { account, until } => (account, Some(until)),
                Pick::NoneAvailable {
                    soonest: Some(soonest),
                    ..
                } if reasons.is_empty() => {
                    return Err(PoolError::AllCoolingDown {
                        model: model.unwrap_or("this model").to_owned(),
                        retry_after: soonest.saturating_duration_since(now),
                    });
                }
                Pick::NoneAvailable {
                    reasons: mut why, ..
                } => {
                    reasons.append(&mut why);
                    return Err(PoolError::NoneUsable(reasons.join("; ")));
                }
            };
            let Some(slot) = slots.iter().find(|s| s.id == id) else {
                skipped.push(id);
                continue;
            };
            if let Some(until) = wait_until {
                // The conversation's account is free again within `sticky_wait`: keep
                // it (and Google's prompt cache) rather than move.
                tracing::debug!(account = %slot.email, "waiting for the conversation's account");
                tokio::time::sleep_until(until.into()).await;
            }
            match self.prepare(slot).await {
                Ok(lease) => {
                    if let Some((session, known)) = session.zip(shared_sticky) {
                        self.share_sticky(session, known).await;
                    }
                    return Ok(lease);
                }
                Err(reason) => {
                    tracing::warn!(account = %slot.email, %reason, "account skipped");
                    reasons.push(format!("account {}: {reason}", slot.id));
                    skipped.push(slot.id.clone());
                }
            }
        }
    }

    /// Cluster mode, cache-first: the account `session` sticks to in Redis (taken
    /// into this replica's selector); `None` outside cluster mode or without Redis,
    /// `Some(None)` when the cluster knows no binding.
    async fn shared_sticky(&self, session: Option<&str>) -> Option<Option<String>> {
        let session = session?;
        let cluster = self.cluster.get().filter(|c| c.is_up())?;
        if self.selector.config().scheduling != agm_pool::selection::Scheduling::CacheFirst {
            return None;
        }
        let ttl = self.selector.config().sticky_ttl;
        let known = cluster.sticky(session, ttl).await;
        if let Some(account) = &known {
            self.selector.bind_session(session, account, Instant::now());
        }
        Some(known)
    }

    /// After a pick: a binding the cluster does not know yet is written at once (the
    /// next turn may land on another replica). An unchanged one needs nothing: reading
    /// it renewed its TTL.
    async fn share_sticky(&self, session: &str, known: Option<String>) {
        let Some(cluster) = self.cluster.get() else {
            return;
        };
        let Some(account) = self.selector.sticky_account(session, Instant::now()) else {
            return;
        };
        if known.as_deref() != Some(account.as_str()) {
            let ttl = self.selector.config().sticky_ttl;
            cluster.set_sticky(session, &account, ttl).await;
        }
    }

    /// How `slot` looks to the selector for `model` at `now`.
    fn view(
        &self,
        slot: &AccountSlot,
        model: Option<&str>,
        catalogue: &agm_translate::catalogue::Catalogue,
        now: Instant,
    ) -> AccountView {
        let mut availability = Availability::Available;
        if self.safe_mode.account_tripped(&slot.email) {
            availability = Availability::Disabled {
                reason: "its project id keeps failing; safe mode routes it to the official API"
                    .to_owned(),
            };
        } else if let Some(until) = model.and_then(|m| self.cooldowns.until(&slot.id, m, now)) {
            availability = Availability::CoolingDown { until };
        } else if let Some(until) = self.all_circuits_open(&slot.id, now) {
            availability = Availability::CoolingDown { until };
        } else if let Some(model) = model
            && catalogue.entitled(&slot.id, model) == Some(false)
        {
            availability = Availability::Disabled {
                reason: format!("not offered {model} by Google"),
            };
        }
        let latency = slot.latency_us.load(Ordering::Relaxed);
        AccountView {
            id: slot.id.clone(),
            tier: slot.tier,
            availability,
            remaining_fraction: model.and_then(|m| slot.remaining(m)),
            recent_latency: (latency > 0).then(|| Duration::from_micros(latency)),
            in_flight: slot.in_flight.load(Ordering::Relaxed),
        }
    }

    /// When the first of the account's circuits half-opens, if every one is open.
    fn all_circuits_open(&self, account_id: &str, now: Instant) -> Option<Instant> {
        let mut soonest: Option<Instant> = None;
        for endpoint in &self.endpoints {
            match self
                .breakers
                .state(&BreakerKey::new(endpoint.as_str(), account_id), now)
            {
                CircuitState::Open { until, .. } => {
                    soonest = Some(soonest.map_or(until, |s| s.min(until)));
                }
                _ => return None,
            }
        }
        soonest
    }

    /// Sets an account's quota fractions per model (from a fresh quota snapshot).
    pub async fn set_quota(&self, account_id: &str, fractions: HashMap<String, f64>) {
        if let Some(slot) = self.find(account_id).await {
            *slot
                .quota
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = fractions;
        }
    }

    /// The ids and e-mails of the active accounts (for the background jobs).
    pub async fn active_accounts(&self) -> Result<Vec<(String, String)>, PoolError> {
        Ok(self
            .slots()
            .await?
            .iter()
            .map(|s| (s.id.clone(), s.email.clone()))
            .collect())
    }

    /// Reads the accounts from the store now rather than at the next reload (one was
    /// just added in the console); the slots of the accounts it knows are kept.
    pub async fn reload(&self) -> Result<(), PoolError> {
        if let Some(snapshot) = self.snapshot.write().await.as_mut() {
            snapshot.stale = true;
        }
        self.slots().await.map(|_| ())
    }

    /// A lease on one account by id (for the background quota refresh).
    pub async fn lease_for(&self, account_id: &str) -> Result<Lease, LeaseError> {
        let slot = self.find(account_id).await.ok_or(LeaseError::NotActive)?;
        self.prepare(&slot).await
    }

    /// Turns an account off with `reason` (kept, shown by `agm accounts list`), and
    /// records it in the audit log. Its conversations move to other accounts.
    pub async fn disable(&self, account_id: &str, reason: &str) {
        let email = self
            .find(account_id)
            .await
            .map_or_else(|| account_id.to_owned(), |s| s.email.clone());
        tracing::error!(account = %email, %reason, "account disabled");
        let state = AccountState::Disabled {
            reason: reason.to_owned(),
        };
        if let Err(e) = self.store.set_account_state(account_id, state).await {
            tracing::warn!(account = %email, error = %e, "could not disable the account");
        }
        self.selector.unbind_account(account_id);
        self.snapshot.write().await.take();
        crate::state::audit::append_audit(
            &self.store,
            agm_store::AuditKind::Account,
            &email,
            &format!("disabled: {reason}"),
        )
        .await;
    }

    /// An account whose sealed tokens cannot be opened (a damaged row, or one sealed with
    /// another key) is turned off, with the reason and an audit entry, so that the other
    /// accounts keep serving. Called with the snapshot lock held: touches no snapshot.
    async fn disable_unreadable(&self, bad: &agm_store::UnreadableAccount) {
        tracing::error!(account = %bad.email, error = %bad.error, "account disabled: its stored tokens cannot be read");
        let reason = "its stored tokens cannot be decrypted with this data dir's seal key (the key changed, or the row is damaged); sign in again with `agm accounts add`, then `agm accounts enable`";
        let state = AccountState::Disabled {
            reason: reason.to_owned(),
        };
        if let Err(e) = self.store.set_account_state(&bad.id, state).await {
            tracing::warn!(account = %bad.email, error = %e, "could not disable the account");
        }
        self.selector.unbind_account(&bad.id);
        crate::state::audit::append_audit(
            &self.store,
            agm_store::AuditKind::Account,
            &bad.email,
            &format!("disabled: {reason}"),
        )
        .await;
    }

    /// Forgets the cached access token (after an upstream 401) so the next lease refreshes.
    /// With the `refused` token named, only if it is still the cached one: a request
    /// that failed with the old token does not throw away the one just refreshed.
    pub async fn invalidate_token(&self, account_id: &str, refused: Option<&str>) {
        if let Some(slot) = self.find(account_id).await {
            let mut token = slot.token.lock().await;
            if refused.is_none_or(|r| token.as_ref().is_some_and(|t| t.access_token == r)) {
                reject(&slot, &mut token);
            }
        }
    }

    /// How the operator's log and the audit log name an account: its e-mail (the id if
    /// it is not active). Client errors name accounts by id only.
    pub async fn label(&self, account_id: &str) -> String {
        self.find(account_id)
            .await
            .map_or_else(|| account_id.to_owned(), |s| s.email.clone())
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
                .filter(|s| !s.stale && s.loaded_at.elapsed() < RELOAD_EVERY)
            {
                return Ok(s.slots.clone());
            }
        }
        let mut guard = self.snapshot.write().await;
        if let Some(s) = guard
            .as_ref()
            .filter(|s| !s.stale && s.loaded_at.elapsed() < RELOAD_EVERY)
        {
            return Ok(s.slots.clone());
        }
        let (accounts, unreadable) = self.store.list_accounts_lenient().await?;
        for bad in unreadable {
            if matches!(bad.state, AccountState::Active) {
                self.disable_unreadable(&bad).await;
            }
        }
        let old: HashMap<String, Arc<AccountSlot>> = guard
            .take()
            .map(|s| {
                s.slots
                    .into_iter()
                    .map(|slot| (slot.id.clone(), slot))
                    .collect()
            })
            .unwrap_or_default();
        let mut slots: Vec<Arc<AccountSlot>> = Vec::new();
        for a in accounts {
            // API keys (the official pool) have no OAuth token: not served from here.
            if !matches!(a.state, AccountState::Active) || a.pool == Pool::GeminiApi {
                continue;
            }
            if let Some(slot) = old.get(&a.id) {
                slots.push(Arc::clone(slot));
                continue;
            }
            if let Some(project) = &a.project_id {
                self.project_cache().put(&a.id, project, Instant::now());
            }
            let quota = match crate::state::quota::load(&self.shared, &a.id).await {
                Ok(Some(snapshot)) => crate::state::quota::fractions(&snapshot),
                _ => HashMap::new(),
            };
            slots.push(Arc::new(AccountSlot {
                token: Mutex::new(a.access_token.as_ref().zip(a.access_expires_at).map(
                    |(token, expires_at)| CachedToken {
                        access_token: token.expose().to_owned(),
                        expires_at,
                    },
                )),
                rejected: std::sync::Mutex::new(None),
                discovering: Mutex::new(()),
                omit_project_header: AtomicBool::new(false),
                in_flight: AtomicU32::new(0),
                latency_us: AtomicU64::new(0),
                quota: std::sync::RwLock::new(quota),
                tier: a.tier.as_deref().and_then(Tier::from_id),
                pool: a.pool,
                id: a.id,
                email: a.email,
            }));
        }
        *guard = Some(Snapshot {
            loaded_at: Instant::now(),
            stale: false,
            slots: slots.clone(),
        });
        Ok(slots)
    }

    async fn prepare(&self, slot: &Arc<AccountSlot>) -> Result<Lease, LeaseError> {
        let in_flight = InFlight::start(slot);
        let mut access_token = self.access_token(slot).await?;
        let project = match self.project(slot, &access_token).await {
            Ok(project) => project,
            // Discovery refused the token (it was dropped): once more with a fresh one.
            Err(_) if slot.token.lock().await.is_none() => {
                access_token = self.access_token(slot).await?;
                self.project(slot, &access_token).await?
            }
            Err(reason) => return Err(reason),
        };
        Ok(Lease {
            account_id: slot.id.clone(),
            email: slot.email.clone(),
            access_token,
            project,
            project_header: !slot.omit_project_header.load(Ordering::Relaxed),
            pool: slot.pool,
            in_flight,
        })
    }

    /// A valid access token, refreshed first when it is close to expiry. The slot's
    /// mutex makes this single-flight: concurrent callers wait for one refresh.
    async fn access_token(&self, slot: &AccountSlot) -> Result<String, LeaseError> {
        let mut token = slot.token.lock().await;
        let now = OffsetDateTime::now_utc();
        if let Some(t) = token
            .as_ref()
            .filter(|t| t.expires_at - REFRESH_MARGIN > now)
        {
            return Ok(t.access_token.clone());
        }
        let Some(cluster) = self.cluster.get() else {
            let account = self.read_account(slot).await?;
            return self.refresh(slot, &mut token, &account, now).await;
        };
        // Cluster mode: one refresh per account in the cluster. The replica holding
        // the lock refreshes and stores the token (sealed, in the shared store); the
        // others wait for the lock to go and take the stored token.
        let lock = format!("lock:refresh:{}", slot.id);
        let deadline = Instant::now() + REFRESH_WAIT;
        let mut locked = false;
        let account = loop {
            let account = match self.read_account(slot).await {
                Ok(account) => account,
                Err(e) => {
                    if locked {
                        cluster.unlock(&lock).await;
                    }
                    return Err(e);
                }
            };
            if let Some(fresh) = stored_token(slot, &account, now) {
                let access_token = fresh.access_token.clone();
                *token = Some(fresh);
                if locked {
                    cluster.unlock(&lock).await;
                }
                return Ok(access_token);
            }
            if locked || Instant::now() >= deadline {
                break account;
            }
            match cluster
                .try_lock(&lock, crate::cluster::REFRESH_LOCK_TTL)
                .await
            {
                // Read the store once more: the last holder may have just finished.
                Some(true) => locked = true,
                Some(false) => {
                    while Instant::now() < deadline && cluster.is_locked(&lock).await == Some(true)
                    {
                        tokio::time::sleep(REFRESH_POLL).await;
                    }
                }
                // Redis does not answer: this replica refreshes on its own.
                None => break account,
            }
        };
        let result = self.refresh(slot, &mut token, &account, now).await;
        if locked {
            cluster.unlock(&lock).await;
        }
        result
    }

    async fn read_account(&self, slot: &AccountSlot) -> Result<Account, LeaseError> {
        self.store
            .get_account(&slot.id)
            .await
            .map_err(|e| {
                // The detail (e-mail, key file) is for the operator's log only.
                tracing::error!(account = %slot.email, error = %e, "cannot read the account");
                LeaseError::Unreadable
            })?
            .ok_or(LeaseError::Removed)
    }

    /// Refreshes the access token with Google, stores it and caches it in `token`.
    async fn refresh(
        &self,
        slot: &AccountSlot,
        token: &mut Option<CachedToken>,
        account: &Account,
        now: OffsetDateTime,
    ) -> Result<String, LeaseError> {
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
                metrics::counter!("agm_token_refresh_total").increment(1);
                *token = Some(CachedToken {
                    access_token: grant.access_token.clone(),
                    expires_at,
                });
                Ok(grant.access_token)
            }
            Err(UpstreamError::InvalidGrant { description }) => {
                let error = LeaseError::TokenRefused(description);
                // Audited, and its conversations move to other accounts.
                self.disable(&slot.id, &error.to_string()).await;
                Err(error)
            }
            Err(e) => Err(LeaseError::Refresh(e)),
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
    async fn project(&self, slot: &AccountSlot, access_token: &str) -> Result<String, LeaseError> {
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
                self.safe_mode.record_project_success(&slot.email).await;
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
                self.safe_mode
                    .record_project_failure(&slot.email, &e.to_string())
                    .await;
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
                self.selector.unbind_account(&slot.id);
                self.snapshot.write().await.take();
                crate::state::audit::append_audit(
                    &self.store,
                    agm_store::AuditKind::Account,
                    &slot.email,
                    &format!("blocked: {reason}"),
                )
                .await;
                Err(LeaseError::NeedsUser(reason))
            }
            Err(e) => {
                // A 401 (the token expired early, or was revoked) says nothing about
                // the project: the token is refreshed on the next lease, and safe mode
                // does not count it (issue 12: five such 401s turned it on falsely).
                let counts = e.class().is_none_or(|class| {
                    agm_pool::attempts::failure(class).counts_against_project()
                });
                if counts {
                    self.safe_mode
                        .record_project_failure(&slot.email, &e.to_string())
                        .await;
                } else {
                    reject(slot, &mut *slot.token.lock().await);
                    tracing::info!(account = %slot.email, error = %e, "project discovery refused the access token; it is refreshed on the next try");
                }
                Err(LeaseError::Discovery(e.to_string()))
            }
        }
    }
}

/// Drops the cached access token, remembering it as refused.
fn reject(slot: &AccountSlot, token: &mut Option<CachedToken>) {
    if let Some(t) = token.take() {
        *slot
            .rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(crate::app::sha256(&t.access_token));
    }
}

/// The access token stored with `account`, if it is good for a while yet and not the
/// one Google refused here: another replica refreshed it.
fn stored_token(slot: &AccountSlot, account: &Account, now: OffsetDateTime) -> Option<CachedToken> {
    let (access_token, expires_at) = account
        .access_token
        .as_ref()
        .zip(account.access_expires_at)?;
    let refused = *slot
        .rejected
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    (expires_at - REFRESH_MARGIN > now
        && refused != Some(crate::app::sha256(access_token.expose())))
    .then(|| CachedToken {
        access_token: access_token.expose().to_owned(),
        expires_at,
    })
}

/// Why an account cannot serve, for the client: by id, never by e-mail (other key
/// holders of a shared gateway must not learn whose accounts these are).
fn describe_unusable(account: &Account) -> String {
    let id = &account.id;
    match &account.state {
        AccountState::Active => format!("account {id}: active"),
        AccountState::Disabled { reason } => format!("account {id} is disabled: {reason}"),
        AccountState::Blocked { reason, url } => match url {
            Some(url) => format!("account {id} is blocked: {reason} (open {url})"),
            None => format!("account {id} is blocked: {reason}"),
        },
    }
}
