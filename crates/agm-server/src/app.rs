//! The axum application: shared state, routes, client-key auth, and serving with a
//! graceful shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agm_google::{GoogleClient, GoogleConfig};
use agm_pool::signatures::SignatureCache;
use agm_store::Store;
use agm_translate::models::ModelMap;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::http::error::{ApiError, ApiKind, ErrorKind};
use crate::routing::accounts::{AccountPool, PoolSettings};
use crate::routing::official::{DailyCap, KeyCursor, OfficialModels};
use crate::routing::safe_mode::SafeModeControl;

/// Everything a request handler needs; one per server, shared by reference.
pub struct AppState {
    pub config: Config,
    pub google: GoogleClient,
    pub store: Store,
    /// What the CLI and the server share (safe mode, cooldowns, quota snapshots, ...).
    pub shared: crate::state::Shared,
    pub accounts: Arc<AccountPool>,
    /// `[models.map]` in force (the console changes it while the server runs).
    pub models: crate::routing::model_map::LiveModelMap,
    /// Thinking signatures the upstream handed out, per conversation.
    pub signatures: SignatureCache,
    /// L0/L1: whether requests go to the official Gemini API.
    pub safe_mode: Arc<SafeModeControl>,
    /// The official API's model names, key rotation and daily cap.
    pub official_models: OfficialModels,
    pub official_key_cursor: KeyCursor,
    pub daily_cap: DailyCap,
    /// `[safe_mode] gemini_api_keys` in force (the console changes them while the
    /// server runs).
    pub gemini_keys: crate::routing::official::LiveKeys,
    /// SHA-256 of each configured client key (`server.api_keys`).
    config_key_hashes: Vec<[u8; 32]>,
    /// Whether the store holds live client keys, and when that was read: keys made
    /// with `agm keys` reach a running server within [`KEYS_RELOAD_EVERY`].
    store_has_keys: std::sync::Mutex<Option<(Instant, bool)>>,
    /// Store keys that verified recently: the hot path does no store I/O.
    verified_keys: VerifiedKeys,
    /// The counters of the client keys' limits (in Redis with `[cluster] redis_url`).
    pub key_limits: crate::http::key_policy::KeyLimits,
    /// Google refusing the client version agm reports.
    pub version_drift: crate::routing::drift::VersionDrift,
    /// The request log's queue to its writer.
    pub request_log: crate::http::request_log::RequestLog,
    /// Request bodies held at once (`server.max_inflight_body`).
    pub body_budget: crate::http::edge::BodyBudget,
    /// The web console's sign-in, sessions and templates.
    pub console: crate::console::Console,
    /// Summaries of the oldest turns (`[context] scaling = "aggressive"`).
    pub(crate) summaries: crate::http::scaling::Summaries,
    /// Cluster mode's Redis (`[cluster] redis_url`); `None` for one process on its own.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// `[context]` in force (the console changes it while the server runs).
    pub(crate) context: crate::http::scaling::LiveContext,
}

pub type SharedState = Arc<AppState>;

/// How long a thinking signature is remembered, and how many at most.
pub(crate) const SIGNATURE_TTL: Duration = Duration::from_secs(3 * 3600);
const SIGNATURE_CAPACITY: usize = 100_000;

/// How long the "does the store hold client keys" answer is reused, and how long a
/// store key that verified is taken as valid without asking the store again: a key
/// revoked with `agm keys revoke` is refused within this time.
const KEYS_RELOAD_EVERY: Duration = Duration::from_secs(2);
/// The most verified store keys remembered at once.
const VERIFIED_KEYS_CAPACITY: usize = 1024;

impl AppState {
    pub fn new(config: Config, store: Store) -> Result<AppState, reqwest::Error> {
        let google = GoogleClient::with_connections(
            google_config(&config),
            config.google.http2_connections,
        )?;
        let shared = crate::state::Shared::new(store.clone());
        let safe_mode = Arc::new(SafeModeControl::new(
            crate::routing::safe_mode::config_of(&config),
            store.clone(),
            shared.clone(),
        ));
        let accounts = Arc::new(AccountPool::new(
            store.clone(),
            shared.clone(),
            google.clone(),
            pool_settings(&config),
            Arc::clone(&safe_mode),
        ));
        let models =
            crate::routing::model_map::LiveModelMap::new(ModelMap::new(&config.models.map));
        let config_key_hashes = config.server.api_keys.iter().map(|k| sha256(k)).collect();
        Ok(AppState {
            google,
            accounts,
            models,
            signatures: SignatureCache::new(SIGNATURE_TTL, SIGNATURE_CAPACITY),
            safe_mode,
            official_models: OfficialModels::new(
                &config.safe_mode.claude_large_model,
                &config.safe_mode.claude_small_model,
            ),
            official_key_cursor: KeyCursor::default(),
            daily_cap: DailyCap::new(config.safe_mode.daily_request_cap),
            gemini_keys: crate::routing::official::LiveKeys::new(
                config.safe_mode.gemini_api_keys.clone(),
            ),
            config_key_hashes,
            store_has_keys: std::sync::Mutex::new(None),
            verified_keys: VerifiedKeys::new(KEYS_RELOAD_EVERY),
            key_limits: crate::http::key_policy::KeyLimits::from_config(&config.cluster),
            request_log: crate::http::request_log::RequestLog::default(),
            version_drift: crate::routing::drift::VersionDrift::default(),
            body_budget: crate::http::edge::BodyBudget::new(
                config.server.max_inflight_body.as_u64(),
            ),
            console: crate::console::Console::new(&config, shared.clone()),
            summaries: crate::http::scaling::Summaries::default(),
            cluster: None,
            context: crate::http::scaling::LiveContext::new(config.context.clone()),
            shared,
            store,
            config,
        })
    }

    /// Joins the cluster `[cluster] redis_url` names, if it names one: the hot state
    /// (cooldowns, breakers, sticky sessions, signatures, token refreshes, the jobs'
    /// leader) is then shared through Redis. Connecting happens once serving starts.
    pub fn with_cluster(mut self) -> Result<AppState, crate::cluster::ClusterError> {
        self.cluster = crate::cluster::Cluster::from_config(&self.config.cluster)?;
        if let Some(cluster) = &self.cluster {
            self.accounts.set_cluster(Arc::clone(cluster));
        }
        Ok(self)
    }

    /// Whether this process runs the jobs that must run once per cluster (warmup,
    /// quota refresh, request-log retention, the update check): always on its own, the
    /// leader's only in cluster mode.
    pub fn runs_cluster_jobs(&self) -> bool {
        self.cluster.as_ref().is_none_or(|c| c.is_leader())
    }

    /// Names the config file the server read: the console's Settings page writes its
    /// changes there.
    pub fn with_config_file(mut self, path: std::path::PathBuf) -> AppState {
        self.console.settings.set_file(path);
        self
    }

    /// Forwards upstream model ids Google reports as deprecated (from the stored quota
    /// snapshots) to their replacements.
    pub fn with_model_deprecations(
        self,
        deprecated: std::collections::BTreeMap<String, String>,
    ) -> AppState {
        self.models.set_deprecations(deprecated);
        self
    }

    /// Whether client keys are required: some are configured, the bind is not loopback,
    /// or keys were ever created with `agm keys` (revoked ones count: revoking the last
    /// key must not open the gateway; `agm keys purge` is the way back to keyless).
    async fn keys_required(&self) -> Result<bool, ApiError> {
        if !self.config_key_hashes.is_empty() || !self.config.server.bind.is_loopback() {
            return Ok(true);
        }
        let cached = *self
            .store_has_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, has_keys)) = cached.filter(|(at, _)| at.elapsed() < KEYS_RELOAD_EVERY) {
            return Ok(has_keys);
        }
        let keys = self.store.list_client_keys().await.map_err(|e| {
            ApiError::new(
                ApiKind::Agm,
                ErrorKind::Internal,
                format!("the key store failed: {e}"),
            )
        })?;
        let has_keys = !keys.is_empty();
        *self
            .store_has_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((Instant::now(), has_keys));
        Ok(has_keys)
    }

    /// How long a store key that verified is taken as valid without asking the store
    /// again (2 s unless changed here; tests lengthen or shorten it).
    pub fn with_client_key_ttl(mut self, ttl: Duration) -> AppState {
        self.verified_keys = VerifiedKeys::new(ttl);
        self
    }

    /// Counts the client keys' limits with `limits` (tests: Redis under a prefix of
    /// their own).
    pub fn with_key_limits(mut self, limits: crate::http::key_policy::KeyLimits) -> AppState {
        self.key_limits = limits;
        self
    }

    /// How many times a presented key was checked against the store (the cache of
    /// verified keys answers the rest).
    pub fn client_key_store_reads(&self) -> u64 {
        self.verified_keys.store_reads.load(Ordering::Relaxed)
    }

    /// Which key `presented` is: a configured one, a live store key (answered from
    /// memory for the TTL after the store said so), or none.
    async fn check_key(&self, presented: &str) -> Presented {
        let hash = sha256(presented);
        if self
            .config_key_hashes
            .iter()
            .any(|h| constant_time_eq(h, &hash))
        {
            return Presented::Config;
        }
        // The time is taken before the store is asked: a cached answer is never
        // younger than the read it came from, so a revocation is seen within the TTL.
        let asked_at = Instant::now();
        if let Some(key) = self.verified_keys.fresh(&hash, asked_at) {
            return Presented::Store(key);
        }
        self.verified_keys
            .store_reads
            .fetch_add(1, Ordering::Relaxed);
        match self.store.verify_client_key(presented).await {
            Ok(Some(key)) => {
                let key = Arc::new(key);
                self.verified_keys
                    .remember(hash, Arc::clone(&key), asked_at);
                Presented::Store(key)
            }
            _ => {
                self.verified_keys.forget(&hash);
                Presented::Invalid
            }
        }
    }
}

/// What a presented client key turned out to be.
enum Presented {
    /// One of `server.api_keys`: no id, no limits.
    Config,
    /// A live key from the store, with its limits.
    Store(Arc<agm_store::ClientKey>),
    Invalid,
}

/// Verified keys by the SHA-256 of their secret: when the store said so, and the key.
type VerifiedMap = HashMap<[u8; 32], (Instant, Arc<agm_store::ClientKey>)>;

/// Store keys that verified, by the SHA-256 of the secret, with when the store said so.
/// Only valid keys are kept (a new key works at once; a flood of wrong keys cannot fill
/// the map), at most [`VERIFIED_KEYS_CAPACITY`]. Looking a hash up is not constant-time,
/// but what it could reveal is a prefix of the SHA-256 of a secret, which does not help
/// to find the secret; the store's own lookup narrows by the plain prefix anyway.
struct VerifiedKeys {
    ttl: Duration,
    entries: std::sync::Mutex<VerifiedMap>,
    store_reads: AtomicU64,
}

impl VerifiedKeys {
    fn new(ttl: Duration) -> VerifiedKeys {
        VerifiedKeys {
            ttl,
            entries: std::sync::Mutex::new(HashMap::new()),
            store_reads: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VerifiedMap> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The key, if the store said it is valid less than the TTL before `now`.
    fn fresh(&self, hash: &[u8; 32], now: Instant) -> Option<Arc<agm_store::ClientKey>> {
        self.lock()
            .get(hash)
            .filter(|(at, _)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(_, key)| Arc::clone(key))
    }

    /// The store said this key is valid, in a read that started at `at`.
    fn remember(&self, hash: [u8; 32], key: Arc<agm_store::ClientKey>, at: Instant) {
        let mut entries = self.lock();
        if entries.len() >= VERIFIED_KEYS_CAPACITY && !entries.contains_key(&hash) {
            entries.retain(|_, (seen, _)| at.saturating_duration_since(*seen) < self.ttl);
            if entries.len() >= VERIFIED_KEYS_CAPACITY {
                entries.clear();
            }
        }
        entries.insert(hash, (at, key));
    }

    /// The store no longer knows this key (revoked, or never valid).
    fn forget(&self, hash: &[u8; 32]) {
        self.lock().remove(hash);
    }
}

/// The account pool's settings from the config.
pub fn pool_settings(config: &Config) -> PoolSettings {
    use agm_pool::selection::SelectionConfig;
    PoolSettings {
        project_ttl: config.project_id.cache_ttl,
        selection: SelectionConfig {
            scheduling: config.routing.scheduling,
            quota_threshold: config.routing.quota_threshold,
            sticky_ttl: config.routing.sticky_ttl,
            sticky_wait: config.routing.sticky_wait,
        },
        breaker: agm_pool::breaker::BreakerConfig {
            failure_threshold: config.circuit_breaker.failure_threshold,
            reset_timeout: config.circuit_breaker.reset_timeout,
            half_open_max_attempts: config.circuit_breaker.half_open_max_attempts,
            ..agm_pool::breaker::BreakerConfig::default()
        },
        discovery: agm_google::DiscoveryPolicy {
            poll_interval: config.project_id.poll_interval,
            ..agm_google::DiscoveryPolicy::default()
        },
        endpoints: config.google.code_assist_endpoints.clone(),
    }
}

/// The Google client settings from the config.
pub fn google_config(config: &Config) -> GoogleConfig {
    let g = &config.google;
    GoogleConfig {
        code_assist_endpoints: g.code_assist_endpoints.clone(),
        oauth_auth_url: g.oauth_auth_url.clone(),
        oauth_token_url: g.oauth_token_url.clone(),
        userinfo_url: g.userinfo_url.clone(),
        gemini_api_base: g.gemini_api_base.clone(),
        oauth_client_id: g.oauth_client_id.clone(),
        oauth_client_secret: g.oauth_client_secret.clone(),
        user_agent: GoogleConfig::antigravity_user_agent(&g.antigravity_version),
        setup_user_agent: g.setup_user_agent.clone(),
        connect_timeout: g.connect_timeout,
        setup_timeout: config.project_id.timeout,
    }
}

/// SHA-256 of a secret (client keys, console tokens and passwords are compared by it).
pub(crate) fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Equal bytes, in time that depends on the length only.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// All routes. Client API routes sit behind the client-key check.
pub fn router(state: SharedState) -> Router {
    let max_body = usize::try_from(state.config.server.max_body.as_u64()).unwrap_or(usize::MAX);
    let client_api = Router::new()
        .route("/v1/messages", post(crate::http::anthropic::messages))
        .route(
            "/v1/messages/count_tokens",
            post(crate::http::anthropic::count_tokens),
        )
        .route(
            "/v1/chat/completions",
            post(crate::http::openai::chat_completions),
        )
        .route("/v1/responses", post(crate::http::openai::responses))
        .route("/v1/models", get(crate::http::models::list))
        .route(
            "/v1/models/{*rest}",
            get(crate::http::models::get_one).post(crate::http::gemini::model_action),
        )
        .route("/v1beta/models", get(crate::http::models::gemini_list))
        .route(
            "/v1beta/models/{*rest}",
            get(crate::http::models::gemini_get).post(crate::http::gemini::model_action),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::http::edge::read_body,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_client_key,
        ))
        .layer(DefaultBodyLimit::max(max_body));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(crate::ops::telemetry::render))
        .merge(client_api)
        .merge(crate::console::router(state.clone()))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            safe_mode_header,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::ops::telemetry::track,
        ))
        .with_state(state)
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

/// Ready when the store answers and something can serve: an active account on the
/// Antigravity path, or an API key while requests go to the official API. Safe mode
/// is shown either way.
async fn readyz(State(state): State<SharedState>) -> Response {
    let safe_mode = state.safe_mode.status();
    let keys = state.gemini_keys.get().len();
    let not_ready = |reason: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "not_ready", "reason": reason, "safe_mode": safe_mode})),
        )
            .into_response()
    };
    let active = match state.accounts.active_count().await {
        Ok(n) => n,
        Err(e) => {
            // The detail can name accounts and files: the log has it, /readyz (which
            // anyone who reaches the port can read) does not.
            tracing::error!(error = %e, "readiness: cannot read the accounts");
            return not_ready("the account store cannot be read; see the server log".into());
        }
    };
    if safe_mode.active {
        if keys == 0 {
            return not_ready(
                "safe mode is on and no Gemini API key is configured: add one with GEMINI_API_KEY or [safe_mode] gemini_api_keys, or run `agm safe-mode disable`".into(),
            );
        }
    } else if active == 0 && keys == 0 {
        return not_ready("no active Google account: add one with `agm accounts add`".into());
    }
    axum::Json(json!({
        "status": "ready",
        "active_accounts": active,
        "gemini_api_keys": keys,
        "upstream": if safe_mode.active || active == 0 { "gemini-api" } else { "antigravity" },
        "safe_mode": safe_mode,
        // Google refusing agm's client version: every Antigravity call fails until
        // the version in the config is raised.
        "client_version_refused": state.version_drift.current(),
        // Cluster mode: whether Redis answers ("degraded": serving on this replica's
        // own state), this replica's id, and whether it runs the background jobs.
        "cluster": state.cluster.as_ref().map(|c| c.status()),
    }))
    .into_response()
}

/// Every response says whether safe mode is on: `x-agm-safe-mode: on|off`.
async fn safe_mode_header(
    State(state): State<SharedState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        "x-agm-safe-mode",
        axum::http::HeaderValue::from_static(if state.safe_mode.is_active() {
            "on"
        } else {
            "off"
        }),
    );
    response
}

pub(crate) async fn not_found(request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let api = api_of_path(&path);
    ApiError::new(
        api,
        ErrorKind::NotFound,
        format!(
            "no route for {} {path}; agm serves POST /v1/messages, /v1/messages/count_tokens, /v1/chat/completions, /v1/responses, /v1beta/models/<model>:generateContent, :streamGenerateContent and :countTokens (also under /v1/models/), GET /v1/models, /v1beta/models, /healthz, /readyz, /metrics, and the web console at /ui/",
            request.method()
        ),
    )
    .into_response()
}

/// Which client API a path belongs to, for the shape of its errors.
pub fn api_of_path(path: &str) -> ApiKind {
    let gemini_method = [":generateContent", ":streamGenerateContent", ":countTokens"]
        .iter()
        .any(|m| path.ends_with(m));
    if path.starts_with("/v1beta") || gemini_method {
        ApiKind::Google
    } else if path.starts_with("/v1/messages") {
        ApiKind::Anthropic
    } else if path.starts_with("/v1/chat")
        || path.starts_with("/v1/responses")
        || path.starts_with("/v1/models")
    {
        ApiKind::OpenAi
    } else {
        ApiKind::Agm
    }
}

/// The key a client presented: `x-api-key`, `Authorization: Bearer`, `x-goog-api-key`
/// or `?key=`.
fn presented_key<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    header("x-api-key")
        .or_else(|| {
            header("authorization").and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
        })
        .or_else(|| header("x-goog-api-key"))
        .or_else(|| query?.split('&').find_map(|pair| pair.strip_prefix("key=")))
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

async fn require_client_key(
    State(state): State<SharedState>,
    request: Request,
    next: Next,
) -> Response {
    let api = api_of_path(request.uri().path());
    match state.keys_required().await {
        Ok(false) => {
            return match crate::http::edge::check_keyless(api, request.method(), request.headers())
            {
                Ok(()) => next.run(request).await,
                Err(e) => {
                    tracing::info!(route = %request.uri().path(), reason = %e.message, "refused a keyless request");
                    e.into_response()
                }
            };
        }
        Ok(true) => {}
        Err(e) => return ApiError { api, ..e }.into_response(),
    }
    let Some(key) = presented_key(request.headers(), request.uri().query()) else {
        return ApiError::new(
            api,
            ErrorKind::Authentication,
            "this gateway needs a client API key: send it as x-api-key or Authorization: Bearer (create one with `agm keys create`)",
        )
        .into_response();
    };
    match state.check_key(key).await {
        Presented::Config => next.run(request).await,
        Presented::Store(key) => {
            crate::http::request_log::note_key(Arc::clone(&key));
            let counted = request.method() == axum::http::Method::POST;
            match crate::http::key_policy::admit(&state.key_limits, api, &key, counted).await {
                Ok(()) => next.run(request).await,
                Err(e) => {
                    let limited = e.kind == ErrorKind::RateLimited;
                    let mut response = e.into_response();
                    if limited {
                        response
                            .extensions_mut()
                            .insert(crate::http::key_policy::REFUSED_BY_KEY);
                    }
                    response
                }
            }
        }
        Presented::Invalid => ApiError::new(
            api,
            ErrorKind::Authentication,
            "invalid client API key: check the key, or create one with `agm keys create`",
        )
        .into_response(),
    }
}

fn bind_message(addr: SocketAddr, error: &std::io::Error) -> String {
    if error.kind() == std::io::ErrorKind::AddrInUse {
        format!(
            "port {} is already in use on {} (is another agm, or `agm demo`, running?): stop it, or pick another port with --port",
            addr.port(),
            addr.ip()
        )
    } else {
        format!("cannot listen on {addr}: {error}")
    }
}

/// Why the server refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to listen on {bind} without client API keys: anyone on the network could use your accounts. Add `api_keys` under [server] (or `agm keys create`), or bind 127.0.0.1"
    )]
    OpenBind { bind: std::net::IpAddr },
    #[error("{}", bind_message(*.addr, .error))]
    Bind {
        addr: SocketAddr,
        /// Not a `source`: the message already says it, once.
        error: std::io::Error,
    },
    #[error("the server stopped: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Store(#[from] agm_store::StoreError),
}

/// Binds the configured address (checking the non-loopback rule) without serving yet,
/// so that callers can print the real address when the port was 0.
pub async fn bind(state: &AppState) -> Result<TcpListener, ServeError> {
    let bind = state.config.server.bind;
    if !bind.is_loopback() {
        let store_keys = state.store.list_client_keys().await?;
        if state.config_key_hashes.is_empty() && store_keys.iter().all(|k| k.revoked_at.is_some()) {
            return Err(ServeError::OpenBind { bind });
        }
    }
    let addr = SocketAddr::new(bind, state.config.server.port);
    TcpListener::bind(addr)
        .await
        .map_err(|error| ServeError::Bind { addr, error })
}

/// How long open streams get to finish after a shutdown signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `shutdown` resolves, then stops accepting, lets open requests finish
/// for up to [`DRAIN_TIMEOUT`], and returns.
pub async fn serve(
    listener: TcpListener,
    state: SharedState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    // Every series is exported from the first scrape, before the first request.
    let _ = crate::ops::telemetry::prometheus();
    // Read the stored safe-mode state before the first request; then follow it.
    if let Err(e) = state.safe_mode.sync().await {
        tracing::warn!(error = %e, "could not read the safe-mode state");
    }
    // What each account is offered, as last fetched; kept current while serving.
    match crate::routing::catalogue::load(&state.store, &state.shared).await {
        Ok(catalogue) => state.accounts.catalogue.add_stored(&catalogue),
        Err(e) => tracing::warn!(error = %e, "could not read the stored model lists"),
    }
    // Cooldowns still running when the last process stopped are kept.
    match crate::state::cooldowns::restore(&state.shared, &state.accounts.cooldowns).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(cooldowns = n, "restored the running cooldowns"),
        Err(e) => tracing::warn!(error = %e, "could not read the stored cooldowns"),
    }
    // Ongoing conversations keep their account and their thinking signatures.
    match crate::state::sessions::restore(&state).await {
        Ok(c) if c.sessions + c.signatures > 0 => tracing::info!(
            sessions = c.sessions,
            signatures = c.signatures,
            "restored the conversations of the last run"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not read the saved conversations"),
    }
    // The paid pool's requests today, so a restart does not reset the daily cap.
    if let Err(e) = state.daily_cap.sync(&state.shared).await {
        tracing::warn!(error = %e, "could not read the daily request count of the paid pool");
    }
    let mut jobs = crate::ops::jobs::start(&state);
    if let Some(cluster) = &state.cluster {
        jobs.spawn(crate::cluster::sync::follow(
            state.clone(),
            Arc::clone(cluster),
        ));
        jobs.spawn(crate::cluster::sync::lead(Arc::clone(cluster)));
    }
    let limits = connection_limits(&state.config);
    let app = router(state.clone());
    let stop = tokio_util::sync::CancellationToken::new();
    let accepting = tokio::spawn(crate::http::listener::run(
        listener,
        app,
        limits,
        stop.clone(),
        DRAIN_TIMEOUT,
    ));
    shutdown.await;
    tracing::info!("shutting down: draining open requests");
    stop.cancel();
    // The listener bounds the drain itself (and closes what is left); this bound only
    // guards against a connection task that never ends.
    let drained =
        match tokio::time::timeout(DRAIN_TIMEOUT + Duration::from_secs(5), accepting).await {
            Ok(Ok(result)) => result.map_err(ServeError::Io),
            Ok(Err(join)) => Err(ServeError::Io(std::io::Error::other(join))),
            Err(_) => {
                tracing::warn!("connections still open after the drain; leaving them");
                Ok(())
            }
        };
    drop(jobs);
    if let Some(cluster) = &state.cluster {
        // Another replica takes the jobs over at once rather than in LEADER_TTL.
        cluster.resign().await;
    }
    state.request_log.flush(&state.store).await;
    if let Err(e) = state.daily_cap.sync(&state.shared).await {
        tracing::warn!(error = %e, "could not save the daily request count of the paid pool");
    }
    crate::state::audit::drain(Duration::from_secs(5)).await;
    if let Err(e) = crate::state::sessions::save(&state).await {
        tracing::warn!(error = %e, "could not save the conversations for the next start");
    }
    drained
}

/// The connection limits from `[server]`, with `max_connections` lowered to what the
/// file-descriptor limit allows (raised to its hard limit first).
fn connection_limits(config: &Config) -> crate::http::listener::Limits {
    /// Descriptors kept for the store, Google connections, logs and the like.
    const RESERVED_FDS: u64 = 256;
    let wanted = config.server.max_connections;
    let max_connections = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            let room = usize::try_from(limit.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX);
            if room < wanted {
                tracing::warn!(
                    fd_limit = limit,
                    "server.max_connections = {wanted} needs more file descriptors than the process may open; using {room} (raise `ulimit -n`, or LimitNOFILE in a systemd unit)"
                );
            }
            wanted.min(room.max(1))
        }
        Err(e) => {
            tracing::debug!(error = %e, "cannot read or raise the file-descriptor limit");
            wanted
        }
    };
    crate::http::listener::Limits {
        header_timeout: config.server.header_timeout,
        idle_timeout: config.server.idle_timeout,
        max_connections,
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn keys_from_every_place() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_key(&h, Some("a=1&key=k1")), Some("k1"));
        h.insert("x-goog-api-key", HeaderValue::from_static("k2"));
        assert_eq!(presented_key(&h, Some("key=k1")), Some("k2"));
        h.insert("authorization", HeaderValue::from_static("Bearer k3"));
        assert_eq!(presented_key(&h, None), Some("k3"));
        h.insert("x-api-key", HeaderValue::from_static("k4"));
        assert_eq!(presented_key(&h, None), Some("k4"));
        assert_eq!(presented_key(&HeaderMap::new(), None), None);
    }

    fn key() -> Arc<agm_store::ClientKey> {
        Arc::new(agm_store::ClientKey {
            id: "0a1b2c3d".into(),
            name: "laptop".into(),
            prefix: "agm-abcdef".into(),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            last_used_at: None,
            revoked_at: None,
            policy: agm_store::KeyPolicy::default(),
        })
    }

    #[test]
    fn a_verified_key_is_trusted_for_the_ttl_only() {
        let keys = VerifiedKeys::new(KEYS_RELOAD_EVERY);
        let (a, b) = (sha256("agm-a"), sha256("agm-b"));
        let t0 = Instant::now();
        assert!(keys.fresh(&a, t0).is_none(), "unknown keys go to the store");
        keys.remember(a, key(), t0);
        assert!(keys.fresh(&a, t0).is_some());
        assert!(
            keys.fresh(&a, t0 + KEYS_RELOAD_EVERY - Duration::from_millis(1))
                .is_some()
        );
        assert!(
            keys.fresh(&a, t0 + KEYS_RELOAD_EVERY).is_none(),
            "after the TTL the store is asked again, so a revoked key is refused"
        );
        assert!(keys.fresh(&b, t0).is_none());
        keys.forget(&a);
        assert!(keys.fresh(&a, t0).is_none());
    }

    #[test]
    fn the_verified_keys_stay_bounded() {
        let keys = VerifiedKeys::new(KEYS_RELOAD_EVERY);
        let t0 = Instant::now();
        for i in 0..VERIFIED_KEYS_CAPACITY {
            keys.remember(sha256(&format!("agm-{i}")), key(), t0);
        }
        // Full of live entries: making room drops them all, the new one stays.
        keys.remember(sha256("agm-new"), key(), t0);
        assert_eq!(keys.lock().len(), 1);
        assert!(keys.fresh(&sha256("agm-new"), t0).is_some());
        // Expired entries are dropped first.
        for i in 0..VERIFIED_KEYS_CAPACITY - 1 {
            keys.remember(sha256(&format!("agm-{i}")), key(), t0);
        }
        let later = t0 + KEYS_RELOAD_EVERY * 2;
        keys.remember(sha256("agm-fresh"), key(), later);
        keys.remember(sha256("agm-fresh-2"), key(), later);
        assert_eq!(keys.lock().len(), 2);
    }
}
