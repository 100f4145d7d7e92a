//! [`Sim`]: the shared state behind every route, and [`RunningSim`]: a sim served on loopback.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::capture::{CapturedRequest, SimMethod};
use crate::config::{ClientGate, SimAccount, SimConfig, SimModel, client_key};
use crate::fault::{Fault, FaultAction};

/// The `remainingFraction` an account reports for a model nobody set.
const DEFAULT_REMAINING_FRACTION: f64 = 0.8;

/// Operation polls until an onboarding is done, unless a test sets another number.
const DEFAULT_ONBOARDING_POLLS: u32 = 1;

/// The simulated Google. Cheap to clone: clones share one state.
///
/// Build one with [`Sim::new`] or [`Sim::demo`], add accounts and API keys, then
/// serve it with [`Sim::start`] (loopback TCP) or mount [`Sim::router`] in-process.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Inner>,
}

struct Inner {
    config: SimConfig,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    accounts: Vec<AccountEntry>,
    api_keys: HashSet<String>,
    access_tokens: HashMap<String, IssuedToken>,
    auth_codes: HashMap<String, AuthCode>,
    operations: HashMap<String, Operation>,
    faults: Vec<Fault>,
    /// The state of the random source behind `Fault::sometimes` (xorshift64*).
    random: u64,
    /// Streamed answers the client stopped reading before their end.
    abandoned_streams: usize,
    requests: VecDeque<CapturedRequest>,
    /// Requests per method since the last `clear_requests`, kept even when the
    /// capture list is bounded.
    counts: HashMap<SimMethod, usize>,
    /// Most captured requests kept (oldest dropped first); `None`: all.
    capture_limit: Option<usize>,
    models: Vec<SimModel>,
    gemini_api_models: Vec<SimModel>,
    /// Cloud Code models withdrawn, in the order they were retired.
    retired: Vec<Retirement>,
    /// Client versions refused on Code Assist generation.
    client_gates: Vec<ClientGate>,
    /// Polls of an onboarding operation until it is done (0: `onboardUser` answers
    /// done at once).
    onboarding_polls: u32,
}

struct AccountEntry {
    account: SimAccount,
    revoked: bool,
    quota: HashMap<String, f64>,
    /// Set when the account must be verified by its user at this URL.
    validation_url: Option<String>,
}

struct IssuedToken {
    email: String,
    expires_at: Instant,
}

/// An authorization code handed out by the consent screen, waiting for its exchange.
#[derive(Clone, Debug)]
pub(crate) struct AuthCode {
    pub email: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub client_id: String,
    pub scope: String,
    pub offline: bool,
}

struct Operation {
    email: String,
    project: String,
    polls: u32,
}

/// A Cloud Code model Google withdrew.
#[derive(Clone, Debug)]
pub(crate) struct Retirement {
    pub id: String,
    pub display_name: String,
    /// Listed as `newModelId` under `deprecatedModelIds`.
    pub replacement: Option<String>,
    /// Generation for it answers Google's "… is no longer available. Please switch
    /// to …" text (HTTP 200) instead of the 404.
    pub notice: bool,
}

/// What a Cloud Code request for a model id finds, for one account.
pub(crate) enum ModelLookup {
    /// Served to this account.
    Live(SimModel),
    /// Retired with a notice: answer this text.
    Notice(String),
    /// Unknown, retired without a notice, or not for this account: Google's 404.
    NotFound,
}

/// The retirements the sim starts with (what Google listed in early 2026).
fn default_retirements() -> Vec<Retirement> {
    [
        (
            "gemini-3-pro-preview",
            "Gemini 3 Pro Preview",
            "gemini-3-pro-high",
        ),
        (
            "gemini-3-flash-preview",
            "Gemini 3 Flash Preview",
            "gemini-3-flash",
        ),
        (
            "claude-sonnet-4-5-20250929",
            "Claude Sonnet 4.5",
            "claude-sonnet-4-5",
        ),
    ]
    .into_iter()
    .map(|(id, display_name, replacement)| Retirement {
        id: id.to_owned(),
        display_name: display_name.to_owned(),
        replacement: Some(replacement.to_owned()),
        notice: false,
    })
    .collect()
}

/// How a refresh-token grant went.
pub(crate) enum RefreshOutcome {
    Granted { email: String },
    Revoked { email: String },
    Unknown,
}

/// How an operation poll went.
pub(crate) enum OperationPoll {
    Pending,
    Done { project: String },
    NotFound,
}

impl Sim {
    /// An empty sim (no accounts, no API keys) with the given wire behaviour.
    pub fn new(config: SimConfig) -> Sim {
        let state = State {
            models: SimModel::code_assist_defaults(),
            gemini_api_models: SimModel::gemini_api_defaults(),
            retired: default_retirements(),
            client_gates: config.client_gates.clone(),
            onboarding_polls: DEFAULT_ONBOARDING_POLLS,
            random: config.seed,
            ..State::default()
        };
        Sim {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(state),
            }),
        }
    }

    /// [`SimConfig::default`] plus the demo accounts `alice@demo.agm` (refresh token
    /// `demo-refresh-alice`, project `demo-project-alice`, `g1-pro-tier`) and
    /// `bob@demo.agm` (`demo-refresh-bob`, `demo-project-bob`, `free-tier`), and the
    /// Gemini API key `demo-gemini-key`.
    pub fn demo() -> Sim {
        Sim::demo_with(SimConfig::default())
    }

    /// Like [`Sim::demo`], with the given wire behaviour.
    pub fn demo_with(config: SimConfig) -> Sim {
        let sim = Sim::new(config);
        sim.add_account(SimAccount::new(
            "alice@demo.agm",
            "demo-refresh-alice",
            Some("demo-project-alice"),
            "g1-pro-tier",
        ));
        sim.add_account(SimAccount::new(
            "bob@demo.agm",
            "demo-refresh-bob",
            Some("demo-project-bob"),
            "free-tier",
        ));
        sim.add_api_key("demo-gemini-key");
        sim
    }

    /// Every route of the sim, for in-process use (e.g. `tower::ServiceExt::oneshot`).
    pub fn router(&self) -> axum::Router {
        crate::http::router(self.clone())
    }

    /// Serves the sim on `127.0.0.1` at a free port.
    pub async fn start(self) -> std::io::Result<RunningSim> {
        self.start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
    }

    /// Serves the sim on `addr` (port 0: a free one).
    pub async fn start_on(self, addr: SocketAddr) -> std::io::Result<RunningSim> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let router = self.router();
        tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    // A dropped sender means shutdown too.
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "agm-sim server stopped with an error");
            }
        });
        tracing::debug!(%addr, "agm-sim listening");
        Ok(RunningSim {
            sim: self,
            addr,
            shutdown: Some(shutdown),
        })
    }

    /// The wire behaviour it was built with.
    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    /// Adds an account, or replaces the one with the same e-mail.
    pub fn add_account(&self, account: SimAccount) {
        let mut state = self.state();
        if let Some(entry) = state
            .accounts
            .iter_mut()
            .find(|e| e.account.email == account.email)
        {
            entry.account = account;
            entry.revoked = false;
        } else {
            state.accounts.push(AccountEntry {
                account,
                revoked: false,
                quota: HashMap::new(),
                validation_url: None,
            });
        }
    }

    /// The account with this e-mail, as it is now (onboarding changes its project).
    pub fn account(&self, email: &str) -> Option<SimAccount> {
        self.state()
            .accounts
            .iter()
            .find(|e| e.account.email == email)
            .map(|e| e.account.clone())
    }

    /// All accounts, in the order they were added.
    pub fn accounts(&self) -> Vec<SimAccount> {
        self.state()
            .accounts
            .iter()
            .map(|e| e.account.clone())
            .collect()
    }

    /// Revokes the account's refresh token: refreshing it now fails with
    /// `invalid_grant`, and its access tokens stop working.
    pub fn revoke_refresh_token(&self, email: &str) {
        let mut state = self.state();
        if let Some(entry) = state.accounts.iter_mut().find(|e| e.account.email == email) {
            entry.revoked = true;
        }
        state.access_tokens.retain(|_, token| token.email != email);
    }

    /// Sets (or, with `None`, removes) the account's Cloud Code project.
    pub fn set_project(&self, email: &str, project: Option<&str>) {
        if let Some(entry) = self
            .state()
            .accounts
            .iter_mut()
            .find(|e| e.account.email == email)
        {
            entry.account.project = project.map(str::to_owned);
        }
    }

    /// Makes the account need verification by its user at `validation_url` (`None`:
    /// verified again). `loadCodeAssist` then answers 200 with no project and no
    /// current tier, listing an ineligible tier with reason `VALIDATION_REQUIRED` and
    /// the URL, and `onboardUser` answers 403 `VALIDATION_REQUIRED`, as Google does.
    pub fn require_validation(&self, email: &str, validation_url: Option<&str>) {
        if let Some(entry) = self
            .state()
            .accounts
            .iter_mut()
            .find(|e| e.account.email == email)
        {
            entry.validation_url = validation_url.map(str::to_owned);
        }
    }

    /// How many `GET` polls an onboarding operation takes until it answers `done`
    /// (default 1; 0: `onboardUser` answers `done` with the project at once).
    pub fn set_onboarding_polls(&self, polls: u32) {
        self.state().onboarding_polls = polls;
    }

    /// Adds a valid key for the official Gemini API paths.
    pub fn add_api_key(&self, key: &str) {
        self.state().api_keys.insert(key.to_owned());
    }

    /// Replaces the Cloud Code model catalog (`fetchAvailableModels`, and the models
    /// generation accepts).
    pub fn set_models(&self, models: Vec<SimModel>) {
        self.state().models = models;
    }

    /// Replaces the official Gemini API model catalog (`models.list`, and the models
    /// its generation accepts).
    pub fn set_gemini_api_models(&self, models: Vec<SimModel>) {
        self.state().gemini_api_models = models;
    }

    /// Adds a model to the Cloud Code catalog while the sim runs (replacing one with
    /// the same id, and undoing its retirement): `fetchAvailableModels` lists it to
    /// the accounts it is [for](SimModel::only_for), and generation accepts it from them.
    pub fn add_model(&self, model: SimModel) {
        let mut state = self.state();
        state.retired.retain(|r| r.id != model.id);
        upsert(&mut state.models, model);
    }

    /// Adds a model to the official Gemini API catalog (`models.list`, generation),
    /// replacing one with the same id.
    pub fn add_gemini_api_model(&self, model: SimModel) {
        upsert(&mut self.state().gemini_api_models, model);
    }

    /// Retires a model while the sim runs. Cloud Code: `fetchAvailableModels` stops
    /// listing it under `models` and, with a replacement, lists it under
    /// `deprecatedModelIds` as `{"<id>": {"newModelId": "<replacement>"}}`;
    /// generation and `countTokens` for it answer Google's 404 `NOT_FOUND`
    /// ("Requested entity was not found."). Official API: it leaves `models.list`
    /// and its calls answer that API's 404.
    pub fn retire_model(&self, id: &str, replacement: Option<&str>) {
        self.retire(id, replacement, false);
    }

    /// Like [`Sim::retire_model`], but Cloud Code generation for it answers what
    /// Antigravity users saw when Gemini 3 Pro was withdrawn: HTTP 200 with the text
    /// `<name> is no longer available. Please switch to <replacement name> in the
    /// latest version of Antigravity.` as the model's reply.
    pub fn retire_model_with_notice(&self, id: &str, replacement: &str) {
        self.retire(id, Some(replacement), true);
    }

    fn retire(&self, id: &str, replacement: Option<&str>, notice: bool) {
        let mut state = self.state();
        let display_name = state
            .models
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.display_name.clone())
            .or_else(|| {
                state
                    .retired
                    .iter()
                    .find(|r| r.id == id)
                    .map(|r| r.display_name.clone())
            })
            .unwrap_or_else(|| id.to_owned());
        state.models.retain(|m| m.id != id);
        state.gemini_api_models.retain(|m| m.id != id);
        state.retired.retain(|r| r.id != id);
        state.retired.push(Retirement {
            id: id.to_owned(),
            display_name,
            replacement: replacement.map(str::to_owned),
            notice,
        });
    }

    /// Removes a model from both catalogs and from the retired list: it is simply
    /// gone (404 `NOT_FOUND`, listed nowhere).
    pub fn remove_model(&self, id: &str) {
        let mut state = self.state();
        state.models.retain(|m| m.id != id);
        state.gemini_api_models.retain(|m| m.id != id);
        state.retired.retain(|r| r.id != id);
    }

    /// The Cloud Code catalog as it is now (every account's models, restricted ones included).
    pub fn models(&self) -> Vec<SimModel> {
        self.state().models.clone()
    }

    /// The official Gemini API catalog as it is now.
    pub fn gemini_api_models(&self) -> Vec<SimModel> {
        self.state().gemini_api_models.clone()
    }

    /// The retired Cloud Code models and their replacements, oldest first.
    pub fn retired_models(&self) -> Vec<(String, Option<String>)> {
        self.state()
            .retired
            .iter()
            .map(|r| (r.id.clone(), r.replacement.clone()))
            .collect()
    }

    /// Refuses Code Assist generation from `client` (`antigravity` or `gemini-cli`,
    /// as its `User-Agent` names it) older than `min_version`, the way Google does
    /// (see [`ClientGate::new`]). Replaces an earlier gate for the same client.
    /// Requests whose `User-Agent` reports no version of that client pass.
    pub fn require_client_version(&self, client: &str, min_version: &str) {
        self.gate_client_version(ClientGate::new(client, min_version));
    }

    /// Adds a client gate with its own message or form, replacing an earlier gate
    /// for the same client.
    pub fn gate_client_version(&self, gate: ClientGate) {
        let mut state = self.state();
        let key = client_key(&gate.client);
        state.client_gates.retain(|g| client_key(&g.client) != key);
        state.client_gates.push(gate);
    }

    /// Accepts every client version again.
    pub fn clear_client_versions(&self) {
        self.state().client_gates.clear();
    }

    /// The client gates in force.
    pub fn client_gates(&self) -> Vec<ClientGate> {
        self.state().client_gates.clone()
    }

    /// Sets the `remainingFraction` (0.0–1.0) the account reports for a model
    /// (default 0.8); the quota summary reports the smallest of them.
    pub fn set_quota(&self, email: &str, model: &str, remaining_fraction: f64) {
        if let Some(entry) = self
            .state()
            .accounts
            .iter_mut()
            .find(|e| e.account.email == email)
        {
            entry.quota.insert(model.to_owned(), remaining_fraction);
        }
    }

    /// Queues a scripted fault (see the crate docs for when each action applies).
    pub fn script(&self, fault: Fault) {
        self.state().faults.push(fault);
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// The faults still queued, with their remaining `times`.
    pub fn pending_faults(&self) -> Vec<Fault> {
        self.state()
            .faults
            .iter()
            .filter(|f| f.times > 0)
            .cloned()
            .collect()
    }

    /// Everything received, in arrival order (rejected requests included); with a
    /// [capture limit](Sim::set_capture_limit), only the most recent ones.
    pub fn requests(&self) -> Vec<CapturedRequest> {
        self.state().requests.iter().cloned().collect()
    }

    /// How many requests to `method` were received (counted even past the capture limit).
    pub fn count(&self, method: SimMethod) -> usize {
        self.state().counts.get(&method).copied().unwrap_or(0)
    }

    /// How many streamed answers the client dropped before their end: a gateway that
    /// cancels its upstream call when its own client goes away shows up here.
    pub fn abandoned_streams(&self) -> usize {
        self.state().abandoned_streams
    }

    pub(crate) fn record_abandoned_stream(&self) {
        self.state().abandoned_streams += 1;
    }

    /// Forgets every captured request and resets the counts.
    pub fn clear_requests(&self) {
        let mut state = self.state();
        state.requests.clear();
        state.counts.clear();
    }

    /// Keeps only the `limit` most recent captured requests (`None`: all, the
    /// default). Long benchmark runs set one so memory stays flat.
    pub fn set_capture_limit(&self, limit: Option<usize>) {
        let mut state = self.state();
        state.capture_limit = limit;
        if let Some(limit) = limit {
            while state.requests.len() > limit {
                state.requests.pop_front();
            }
        }
    }

    /// Mints a valid access token for a known account, as if `/token` had been called.
    pub fn issue_access_token(&self, email: &str) -> Option<String> {
        let known = self
            .state()
            .accounts
            .iter()
            .any(|e| e.account.email == email && !e.revoked);
        known.then(|| self.mint_access_token(email))
    }

    /// Makes every access token issued so far invalid (answers 401 from now on).
    pub fn expire_access_tokens(&self) {
        self.state().access_tokens.clear();
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    // ---- used by the handlers ----

    pub(crate) fn capture(&self, request: CapturedRequest) {
        let mut state = self.state();
        *state.counts.entry(request.method).or_insert(0) += 1;
        if state.capture_limit == Some(0) {
            return;
        }
        if state
            .capture_limit
            .is_some_and(|limit| state.requests.len() >= limit)
        {
            state.requests.pop_front();
        }
        state.requests.push_back(request);
    }

    /// Takes the first queued fault matching the request (early or answer-shaping
    /// actions, as asked), using up one of its `times`.
    pub(crate) fn take_fault(
        &self,
        method: SimMethod,
        account: Option<&str>,
        model: Option<&str>,
        early: bool,
    ) -> Option<FaultAction> {
        let mut state = self.state();
        let state = &mut *state;
        let mut position = None;
        for (i, fault) in state.faults.iter().enumerate() {
            if fault.acts_early() == early
                && fault.matches(method, account, model)
                && (method.is_generation() || !matches!(fault.action, FaultAction::Reply(_)))
            {
                if fault.probability < 1.0 && next_random(&mut state.random) >= fault.probability {
                    continue;
                }
                position = Some(i);
                break;
            }
        }
        let position = position?;
        let fault = state.faults.get_mut(position)?;
        if fault.times != usize::MAX {
            fault.times -= 1;
        }
        let action = fault.action.clone();
        if fault.times == 0 {
            state.faults.remove(position);
        }
        Some(action)
    }

    pub(crate) fn mint_access_token(&self, email: &str) -> String {
        let token = format!("ya29.sim-{}", uuid::Uuid::new_v4().simple());
        let expires_at = Instant::now() + self.inner.config.access_token_ttl;
        self.state().access_tokens.insert(
            token.clone(),
            IssuedToken {
                email: email.to_owned(),
                expires_at,
            },
        );
        token
    }

    /// The e-mail of the account a valid, unexpired access token belongs to.
    pub(crate) fn account_for_access_token(&self, token: &str) -> Option<String> {
        let state = self.state();
        let issued = state.access_tokens.get(token)?;
        (issued.expires_at > Instant::now()).then(|| issued.email.clone())
    }

    pub(crate) fn account_for_refresh_token(&self, refresh_token: &str) -> RefreshOutcome {
        let state = self.state();
        match state
            .accounts
            .iter()
            .find(|e| e.account.refresh_token == refresh_token)
        {
            Some(entry) if entry.revoked => RefreshOutcome::Revoked {
                email: entry.account.email.clone(),
            },
            Some(entry) => RefreshOutcome::Granted {
                email: entry.account.email.clone(),
            },
            None => RefreshOutcome::Unknown,
        }
    }

    /// The account a consent screen approves as: `login_hint` if given, else the first.
    pub(crate) fn account_for_login(&self, login_hint: Option<&str>) -> Option<SimAccount> {
        let state = self.state();
        let mut usable = state.accounts.iter().filter(|e| !e.revoked);
        match login_hint {
            Some(hint) => usable.find(|e| e.account.email == hint),
            None => usable.next(),
        }
        .map(|e| e.account.clone())
    }

    pub(crate) fn store_auth_code(&self, code: AuthCode) -> String {
        let id = format!("4/0Sim{}", uuid::Uuid::new_v4().simple());
        self.state().auth_codes.insert(id.clone(), code);
        id
    }

    /// Redeems (and so uses up) an authorization code.
    pub(crate) fn take_auth_code(&self, code: &str) -> Option<AuthCode> {
        self.state().auth_codes.remove(code)
    }

    /// Peeks at a code without using it up (to name its account in the capture).
    pub(crate) fn auth_code_account(&self, code: &str) -> Option<String> {
        self.state().auth_codes.get(code).map(|c| c.email.clone())
    }

    pub(crate) fn has_api_key(&self, key: &str) -> bool {
        self.state().api_keys.contains(key)
    }

    /// The Cloud Code models this account may use.
    pub(crate) fn models_for(&self, email: &str) -> Vec<SimModel> {
        let state = self.state();
        let tier = account_tier(&state, email);
        state
            .models
            .iter()
            .filter(|m| m.is_for(email, &tier))
            .cloned()
            .collect()
    }

    /// What a Cloud Code request from this account for model `id` finds.
    pub(crate) fn lookup_model(&self, email: &str, id: &str) -> ModelLookup {
        let state = self.state();
        let tier = account_tier(&state, email);
        if let Some(model) = state.models.iter().find(|m| m.id == id) {
            return if model.is_for(email, &tier) {
                ModelLookup::Live(model.clone())
            } else {
                ModelLookup::NotFound
            };
        }
        match state.retired.iter().find(|r| r.id == id) {
            Some(retired) if retired.notice => {
                let replacement = retired.replacement.as_deref().map(|new| {
                    state
                        .models
                        .iter()
                        .find(|m| m.id == new)
                        .map_or_else(|| new.to_owned(), |m| m.display_name.clone())
                });
                ModelLookup::Notice(match replacement {
                    Some(new) => format!(
                        "{} is no longer available. Please switch to {new} in the latest version of Antigravity.",
                        retired.display_name
                    ),
                    None => format!("{} is no longer available.", retired.display_name),
                })
            }
            _ => ModelLookup::NotFound,
        }
    }

    pub(crate) fn retirements(&self) -> Vec<Retirement> {
        self.state().retired.clone()
    }

    /// The gate that refuses a request with this `User-Agent`, if any.
    pub(crate) fn refusing_gate(&self, user_agent: &str) -> Option<ClientGate> {
        self.state()
            .client_gates
            .iter()
            .find(|g| g.refuses(user_agent))
            .cloned()
    }

    pub(crate) fn gemini_api_model(&self, id: &str) -> Option<SimModel> {
        self.state()
            .gemini_api_models
            .iter()
            .find(|m| m.id == id)
            .cloned()
    }

    pub(crate) fn remaining_fraction(&self, email: &str, model: &str) -> f64 {
        self.state()
            .accounts
            .iter()
            .find(|e| e.account.email == email)
            .and_then(|e| e.quota.get(model).copied())
            .unwrap_or(DEFAULT_REMAINING_FRACTION)
    }

    pub(crate) fn start_onboarding(&self, email: &str, project: String) -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.state().operations.insert(
            id.clone(),
            Operation {
                email: email.to_owned(),
                project,
                polls: 0,
            },
        );
        id
    }

    pub(crate) fn validation_url(&self, email: &str) -> Option<String> {
        self.state()
            .accounts
            .iter()
            .find(|e| e.account.email == email)
            .and_then(|e| e.validation_url.clone())
    }

    /// Whether a new onboarding operation is done at once (no polls configured).
    pub(crate) fn onboarding_is_immediate(&self) -> bool {
        self.state().onboarding_polls == 0
    }

    /// One poll of an onboarding operation: done from the configured poll on
    /// ([`Sim::set_onboarding_polls`]), at which point the account gets the project.
    pub(crate) fn poll_operation(&self, id: &str, email: &str) -> OperationPoll {
        let mut state = self.state();
        let polls_until_done = state.onboarding_polls;
        let Some(operation) = state.operations.get_mut(id) else {
            return OperationPoll::NotFound;
        };
        if operation.email != email {
            return OperationPoll::NotFound;
        }
        operation.polls += 1;
        if operation.polls < polls_until_done {
            return OperationPoll::Pending;
        }
        let project = operation.project.clone();
        if let Some(entry) = state.accounts.iter_mut().find(|e| e.account.email == email) {
            entry.account.project = Some(project.clone());
        }
        OperationPoll::Done { project }
    }
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// A sim served on loopback; stops on [`RunningSim::shutdown`] or when dropped.
#[derive(Debug)]
pub struct RunningSim {
    /// The sim (shared state: script faults and read captures through it).
    pub sim: Sim,
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

impl RunningSim {
    /// `http://127.0.0.1:PORT`, with no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving (open connections are closed once their answer is done).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

impl std::ops::Deref for RunningSim {
    type Target = Sim;

    fn deref(&self) -> &Sim {
        &self.sim
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Replaces the model with the same id, or appends it.
fn upsert(models: &mut Vec<SimModel>, model: SimModel) {
    match models.iter_mut().find(|m| m.id == model.id) {
        Some(existing) => *existing = model,
        None => models.push(model),
    }
}

/// The tier of an account (empty for an unknown one).
fn account_tier(state: &State, email: &str) -> String {
    state
        .accounts
        .iter()
        .find(|e| e.account.email == email)
        .map(|e| e.account.tier.clone())
        .unwrap_or_default()
}

/// A uniform draw in [0, 1) from a xorshift64* state (never 0).
fn next_random(state: &mut u64) -> f64 {
    let mut x = if *state == 0 {
        0x9E37_79B9_7F4A_7C15
    } else {
        *state
    };
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    let out = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
    (out >> 11) as f64 / (1u64 << 53) as f64
}
