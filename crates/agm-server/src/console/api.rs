//! The admin JSON API under `/api/`: what the console's pages show and do, for scripts
//! too. Same checks and messages as the CLI; every change is audited as the CLI's is
//! (with "with the console" where the CLI says which command).

use std::collections::BTreeMap;
use std::time::Instant;

use agm_store::{AccountState, AuditKind, ClientKey};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ConsoleError, SignedIn};
use crate::app::SharedState;
use crate::http::key_policy::PolicyChange;
use crate::routing::safe_mode::{Command, apply, config_of};
use crate::state::audit::append_audit;

type ApiResult = Result<Json<Value>, ConsoleError>;

use agm_store::rfc3339;

/// `GET /api/session`: the CSRF token a script sends as `x-agm-csrf`.
pub async fn session(Extension(signed_in): Extension<SignedIn>) -> Json<Value> {
    Json(json!({"csrf": signed_in.csrf}))
}

/// `GET /api/<unknown>`.
pub async fn unknown(uri: axum::http::Uri) -> ConsoleError {
    ConsoleError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no admin API route {}; see docs/ARCHITECTURE.md (the console) for the list",
            uri.path()
        ),
    )
}

/// `GET /api/accounts`: each account (never a token) with its quota, cooldowns and
/// open circuits.
pub async fn accounts(State(state): State<SharedState>) -> ApiResult {
    let infos = state
        .store
        .list_account_infos()
        .await
        .map_err(ConsoleError::internal)?;
    let mut out = Vec::new();
    for info in &infos {
        out.push(account_json(&state, info).await);
    }
    Ok(Json(json!({"accounts": out})))
}

/// One account as the admin API shows it (never a token): its tier, pool, project,
/// state with its reason and verification link, stored quota per model and window,
/// running cooldowns and open circuits.
pub async fn account_json(state: &SharedState, info: &agm_store::AccountInfo) -> Value {
    let now = Instant::now();
    let cooldowns = state.accounts.cooldowns.list(now);
    let breakers = state.accounts.breakers.snapshot(now);
    let quota = crate::state::quota::load(&state.shared, &info.id)
        .await
        .ok()
        .flatten()
        .map(|q| {
            json!({
                "fetched_at": rfc3339(q.fetched_at),
                "models": q.models.iter().map(|m| json!({
                    "model": m.model,
                    "display_name": m.display_name,
                    "remaining_fraction": m.remaining_fraction,
                    "reset_time": m.reset_time.map(rfc3339),
                })).collect::<Vec<_>>(),
                "windows": q.buckets.iter().map(|b| json!({
                    "bucket": b.bucket_id,
                    "window": b.window,
                    "remaining_fraction": b.remaining_fraction,
                    "reset_time": b.reset_time.map(rfc3339),
                })).collect::<Vec<_>>(),
            })
        });
    let (reason, url) = match &info.state {
        AccountState::Active => (None, None),
        AccountState::Disabled { reason } => (Some(reason.clone()), None),
        AccountState::Blocked { reason, url } => (Some(reason.clone()), url.clone()),
    };
    json!({
        "id": info.id,
        "email": info.email,
        "pool": info.pool.to_string(),
        "tier": info.tier,
        "project": info.project_id,
        "state": info.state.name(),
        "reason": reason,
        "verify_url": url,
        "quota": quota,
        "cooldowns": cooldowns.iter().filter(|c| c.account == info.id).collect::<Vec<_>>(),
        "open_circuits": breakers.iter().filter(|b| b.account == info.id).collect::<Vec<_>>(),
        "created_at": rfc3339(info.created_at),
    })
}

pub async fn find_account(
    state: &SharedState,
    id: &str,
) -> Result<agm_store::Account, ConsoleError> {
    state
        .store
        .get_account(id)
        .await
        .map_err(ConsoleError::internal)?
        .ok_or_else(|| {
            ConsoleError::new(
                StatusCode::NOT_FOUND,
                format!("no account {id:?} (`agm accounts list` shows the ids and e-mails)"),
            )
        })
}

pub async fn audit_account(state: &SharedState, email: &str, detail: &str) {
    append_audit(&state.store, AuditKind::Account, email, detail).await;
}

/// `POST /api/accounts/{id}/enable`.
pub async fn enable_account(State(state): State<SharedState>, Path(id): Path<String>) -> ApiResult {
    let account = find_account(&state, &id).await?;
    state
        .store
        .set_account_state(&account.id, AccountState::Active)
        .await
        .map_err(ConsoleError::internal)?;
    audit_account(&state, &account.email, "enabled with the console").await;
    Ok(Json(json!({"id": account.id, "state": "active"})))
}

#[derive(Deserialize, Default)]
pub struct DisableBody {
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /api/accounts/{id}/disable` with an optional `{"reason": "..."}`.
pub async fn disable_account(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    body: Option<Json<DisableBody>>,
) -> ApiResult {
    let account = find_account(&state, &id).await?;
    let reason = body
        .and_then(|Json(b)| b.reason)
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "disabled by the user".to_owned());
    state
        .store
        .set_account_state(
            &account.id,
            AccountState::Disabled {
                reason: reason.clone(),
            },
        )
        .await
        .map_err(ConsoleError::internal)?;
    state.accounts.selector.unbind_account(&account.id);
    audit_account(
        &state,
        &account.email,
        &format!("disabled with the console: {reason}"),
    )
    .await;
    Ok(Json(
        json!({"id": account.id, "state": "disabled", "reason": reason}),
    ))
}

/// `DELETE /api/accounts/{id}`.
pub async fn remove_account(State(state): State<SharedState>, Path(id): Path<String>) -> ApiResult {
    let account = find_account(&state, &id).await?;
    if !state
        .store
        .remove_account(&account.id)
        .await
        .map_err(ConsoleError::internal)?
    {
        return Err(ConsoleError::new(
            StatusCode::NOT_FOUND,
            format!("no account {id:?} (`agm accounts list` shows the ids and e-mails)"),
        ));
    }
    audit_account(&state, &account.email, "removed with the console").await;
    Ok(Json(json!({"id": account.id, "removed": true})))
}

fn listed_key(k: &ClientKey) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "prefix": k.prefix,
        "created_at": rfc3339(k.created_at),
        "last_used_at": k.last_used_at.map(rfc3339),
        "revoked_at": k.revoked_at.map(rfc3339),
        "limits": {
            "models": k.policy.models,
            "rpm": k.policy.rpm,
            "concurrency": k.policy.concurrency,
            "daily_tokens": k.policy.daily_tokens,
            "daily_requests": k.policy.daily_requests,
            "expires_at": k.policy.expires_at.map(rfc3339),
        },
        "limits_text": crate::http::key_policy::describe(&k.policy),
    })
}

/// A `key` audit entry, as `agm keys` writes it.
async fn audit_key(state: &SharedState, key: &ClientKey, done: &str) {
    let detail = format!("{done}: name {:?}, prefix {}", key.name, key.prefix);
    append_audit(&state.store, AuditKind::Key, &key.id, &detail).await;
}

/// `GET /api/keys`: the client keys (never a secret).
pub async fn keys(State(state): State<SharedState>) -> ApiResult {
    let keys = state
        .store
        .list_client_keys()
        .await
        .map_err(ConsoleError::internal)?;
    Ok(Json(
        json!({"keys": keys.iter().map(listed_key).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyBody {
    #[serde(default)]
    name: String,
    /// As `agm keys create` takes them (`{"rpm": 60, "expires": "30d", ...}`).
    #[serde(default)]
    limits: PolicyChange,
}

async fn client_keys(state: &SharedState) -> Result<Vec<ClientKey>, ConsoleError> {
    state
        .store
        .list_client_keys()
        .await
        .map_err(ConsoleError::internal)
}

/// A JSON body, or a 400 in the admin API's shape that says what is wrong with it.
fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ConsoleError> {
    body.map(|Json(body)| body)
        .map_err(|e| ConsoleError::new(StatusCode::BAD_REQUEST, e.body_text()))
}

/// The limits a change gives `policy`, or a 400 that says what is wrong.
fn changed_limits(
    change: &PolicyChange,
    policy: agm_store::KeyPolicy,
) -> Result<agm_store::KeyPolicy, ConsoleError> {
    change
        .apply(policy, time::OffsetDateTime::now_utc())
        .map_err(|e| ConsoleError::new(StatusCode::BAD_REQUEST, e))
}

/// `POST /api/keys` with `{"name": "...", "limits": {...}}`: the secret is in this
/// answer only.
pub async fn create_key(
    State(state): State<SharedState>,
    body: Result<Json<CreateKeyBody>, JsonRejection>,
) -> ApiResult {
    let body = json_body(body)?;
    let name = body.name.trim();
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ConsoleError::new(
            StatusCode::BAD_REQUEST,
            "a key's name is at most 100 characters, with no control characters",
        ));
    }
    let policy = changed_limits(&body.limits, agm_store::KeyPolicy::default())?;
    let (key, secret) = state
        .store
        .create_client_key_with(name, &policy)
        .await
        .map_err(ConsoleError::internal)?;
    audit_key(&state, &key, &crate::http::key_policy::created(&key.policy)).await;
    let mut out = listed_key(&key);
    out["secret"] = json!(secret);
    out["note"] = json!(
        "This is the only time its secret is shown: store it now. Clients send it as x-api-key or Authorization: Bearer; from now on the gateway refuses requests without a valid key."
    );
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetLimitsBody {
    limits: PolicyChange,
}

/// `PATCH /api/keys/{id}` with `{"limits": {...}}`: changes the limits given, as
/// `agm keys set` does (0 clears a number, `never` the expiry, `*` the models).
pub async fn set_key_limits(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    body: Result<Json<SetLimitsBody>, JsonRejection>,
) -> ApiResult {
    let body = json_body(body)?;
    let id = id.trim();
    let keys = client_keys(&state).await?;
    let not_found = || {
        ConsoleError::new(
            StatusCode::NOT_FOUND,
            format!("no client key {id:?} (`agm keys list` shows the ids)"),
        )
    };
    let key = keys.iter().find(|k| k.id == id).ok_or_else(not_found)?;
    let policy = changed_limits(&body.limits, key.policy.clone())?;
    if !state
        .store
        .set_client_key_policy(id, &policy)
        .await
        .map_err(ConsoleError::internal)?
    {
        return Err(not_found());
    }
    let limits = crate::http::key_policy::describe(&policy);
    audit_key(
        &state,
        key,
        &format!("limits set to {limits} with the console"),
    )
    .await;
    let key = agm_store::ClientKey {
        policy,
        ..key.clone()
    };
    Ok(Json(listed_key(&key)))
}

/// `DELETE /api/keys/{id}`: revokes; says so when it was the last active key.
pub async fn revoke_key(State(state): State<SharedState>, Path(id): Path<String>) -> ApiResult {
    let id = id.trim();
    let keys = client_keys(&state).await?;
    if !state
        .store
        .revoke_client_key(id)
        .await
        .map_err(ConsoleError::internal)?
    {
        return Err(ConsoleError::new(
            StatusCode::NOT_FOUND,
            format!("no active client key {id:?} (`agm keys list` shows the ids)"),
        ));
    }
    if let Some(key) = keys.iter().find(|k| k.id == id) {
        audit_key(&state, key, "revoked").await;
    }
    let last = !keys.iter().any(|k| k.id != id && k.is_active());
    let warning = last.then_some(
        "that was the last active client key: the gateway now refuses every client until you create one \
         (once a gateway has had keys it keeps requiring them; `agm keys purge` deletes the revoked ones)",
    );
    Ok(Json(json!({"id": id, "revoked": true, "warning": warning})))
}

/// `GET /api/models`: the catalogue, with the client names that resolve to each model.
pub async fn models(State(state): State<SharedState>) -> Json<Value> {
    let mut aliases: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut models = Vec::new();
    for listed in crate::routing::catalogue::listing(&state) {
        match listed.resolves_to {
            Some(target) => aliases.entry(target).or_default().push(listed.id),
            None => models.push(listed),
        }
    }
    let out: Vec<Value> = models
        .into_iter()
        .map(|m| {
            json!({
                "id": m.id,
                "display_name": m.display_name,
                "accounts": m.accounts,
                "aliases": aliases.remove(&m.id).unwrap_or_default(),
            })
        })
        .collect();
    Json(json!({"models": out}))
}

fn safe_mode_json(state: &SharedState) -> Value {
    json!({
        "status": state.safe_mode.status(),
        "manual": state.safe_mode.is_manual(),
        "gemini_api_keys": state.gemini_keys.get().len(),
    })
}

/// `GET /api/safe-mode`: what the running server does now.
pub async fn safe_mode(State(state): State<SharedState>) -> Json<Value> {
    Json(safe_mode_json(&state))
}

#[derive(Deserialize)]
pub struct SafeModeBody {
    action: String,
    #[serde(default)]
    note: Option<String>,
}

/// "Retry Now": probes the Antigravity path at once instead of at the next hourly
/// retry — each active account's project discovery runs again (its cached project
/// forgotten) until one succeeds, which turns an automatic safe mode off. A safe mode
/// turned on by hand is turned off by hand: there the button disables it.
async fn retry_now(state: &SharedState) -> ApiResult {
    if !state.safe_mode.is_active() {
        return Ok(Json(safe_mode_json(state)));
    }
    if state.safe_mode.is_manual() || !state.config.routing.enable_antigravity {
        return Err(ConsoleError::new(
            StatusCode::CONFLICT,
            if state.config.routing.enable_antigravity {
                "safe mode was turned on by hand: turn it off (action \"disable\") to use Antigravity again"
            } else {
                "the Antigravity path is turned off (ENABLE_ANTIGRAVITY_AUTH=false / [routing] enable_antigravity): nothing to probe"
            },
        ));
    }
    let accounts = state.accounts.active_accounts().await.unwrap_or_default();
    let mut last_error = "no active account to probe with (`agm accounts add`)".to_owned();
    for (id, _) in &accounts {
        state.accounts.invalidate_project(id);
        match state.accounts.lease_for(id).await {
            Ok(_) => break,
            Err(e) => last_error = format!("account {id}: {e}"),
        }
    }
    let mut answer = safe_mode_json(state);
    if state.safe_mode.is_active() {
        answer["warning"] = json!(format!("Antigravity still fails: {last_error}"));
        answer["probe"] = json!({ "ok": false, "error": last_error });
    } else {
        answer["probe"] = json!({ "ok": true });
    }
    Ok(Json(answer))
}

/// `POST /api/safe-mode` with `{"action": "enable"|"disable"|"reset-all"|"retry"}` (and
/// a `note` for enable): as `agm safe-mode`, applied to this server at once; `retry`
/// probes Antigravity now ([`retry_now`]).
pub async fn change_safe_mode(
    State(state): State<SharedState>,
    Json(body): Json<SafeModeBody>,
) -> ApiResult {
    if body.action == "retry" {
        return retry_now(&state).await;
    }
    let command = match body.action.as_str() {
        "enable" => Command::Enable { note: body.note },
        "disable" => Command::Disable,
        "reset-all" => Command::ResetAll,
        other => {
            return Err(ConsoleError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown action {:?}: use enable, disable, reset-all or retry",
                    other.chars().take(40).collect::<String>()
                ),
            ));
        }
    };
    apply(
        config_of(&state.console.settings.current()),
        &state.store,
        &state.shared,
        command,
        crate::routing::safe_mode::Origin::Console,
    )
    .await
    .map_err(ConsoleError::internal)?;
    // The server follows the stored state now rather than within a second; a
    // reset-all also clears its breakers and cooldowns, as the background sync does.
    if state
        .safe_mode
        .sync()
        .await
        .map_err(ConsoleError::internal)?
    {
        state.accounts.breakers.reset_all(Instant::now());
        state.accounts.cooldowns.clear_all();
        if let Some(cluster) = &state.cluster {
            cluster.clear_cooldowns(None).await;
        }
    }
    // The other replicas read it now rather than within their next second.
    if let Some(cluster) = &state.cluster {
        cluster.publish(crate::cluster::Event::SafeMode).await;
    }
    Ok(Json(safe_mode_json(&state)))
}

/// `GET /api/health`: what `/readyz` says, plus the pool's health.
pub async fn health(State(state): State<SharedState>) -> ApiResult {
    let now = Instant::now();
    let infos = state
        .store
        .list_account_infos()
        .await
        .map_err(ConsoleError::internal)?;
    let mut by_state: BTreeMap<&str, usize> = BTreeMap::new();
    let mut verification = Vec::new();
    for info in &infos {
        *by_state.entry(info.state.name()).or_default() += 1;
        if let AccountState::Blocked { reason, url } = &info.state {
            verification.push(json!({
                "id": info.id,
                "email": info.email,
                "reason": reason,
                "url": url,
            }));
        }
    }
    let active = by_state.get("active").copied().unwrap_or(0);
    let safe_mode = state.safe_mode.status();
    let keys = state.gemini_keys.get().len();
    let signatures = state.signatures.stats();
    let ready = if safe_mode.active {
        keys > 0
    } else {
        active > 0 || keys > 0
    };
    Ok(Json(json!({
        "status": if ready { "ready" } else { "not_ready" },
        "version": env!("CARGO_PKG_VERSION"),
        "upstream": if safe_mode.active || active == 0 { "gemini-api" } else { "antigravity" },
        "accounts": by_state,
        "gemini_api_keys": keys,
        "safe_mode": safe_mode,
        "client_version_refused": state.version_drift.current(),
        "needs_verification": verification,
        "cooldowns": state.accounts.cooldowns.list(now),
        "open_circuits": state.accounts.breakers.snapshot(now),
        "sticky_sessions": state.accounts.selector.live_sessions(now),
        "signature_cache": {
            "entries": signatures.entries,
            "hit_rate": signatures.hit_rate(),
        },
        "discovery": state.accounts.discovery_stats.summary(),
        "scheduling": state.accounts.selector.config().scheduling.name(),
    })))
}

/// `GET /api/updates`: the last update check (`[updates]`), whether its release is
/// newer than this build, and whether its notice was dismissed (`show` is the banner).
pub async fn updates(State(state): State<SharedState>) -> ApiResult {
    crate::ops::updates::status(&state.shared, &state.config.updates)
        .await
        .map(Json)
        .map_err(ConsoleError::internal)
}

#[derive(Deserialize, Default)]
pub struct DismissBody {
    /// The version whose notice to hide; default: the newest one checked.
    version: Option<String>,
}

/// `POST /api/updates/dismiss`: hides the notice of one version (a newer release shows
/// again).
pub async fn dismiss_update(
    State(state): State<SharedState>,
    body: Option<Json<DismissBody>>,
) -> ApiResult {
    let Json(body) = body.unwrap_or_default();
    let version = match body.version.filter(|v| !v.trim().is_empty()) {
        Some(v) => v.trim().to_owned(),
        None => crate::ops::updates::load(&state.shared)
            .await
            .map_err(ConsoleError::internal)?
            .map(|l| l.version)
            .ok_or_else(|| {
                ConsoleError::new(
                    StatusCode::BAD_REQUEST,
                    "no update check yet: nothing to dismiss (`agm update check` checks now)",
                )
            })?,
    };
    crate::ops::updates::dismiss(&state.shared, &version)
        .await
        .map_err(ConsoleError::internal)?;
    updates(State(state)).await
}

/// `GET /api/settings`: the config in force (with the console's changes), every
/// secret masked, the settings `POST /api/settings` changes, and whether there is a
/// config file to write them to.
pub async fn settings(State(state): State<SharedState>) -> Json<Value> {
    Json(json!({
        "config": masked_config(&state.console.settings.current()),
        "editable": super::settings::editable_json(),
        "pending_restart": state.console.settings.pending(),
        "writable": state.console.settings.has_file(),
    }))
}

#[derive(Deserialize)]
pub struct SettingsBody {
    changes: serde_json::Map<String, Value>,
}

/// `POST /api/settings` with `{"changes": {"routing.scheduling": "balance", ...}}`:
/// validated as the config is at load, written to the config file (its comments
/// stay), applied to this server at once, and audited.
pub async fn change_settings(
    State(state): State<SharedState>,
    Json(body): Json<SettingsBody>,
) -> ApiResult {
    let (config, keys) = state.console.settings.change(&body.changes).await?;
    let mut selection = state.accounts.selector.config();
    selection.scheduling = config.routing.scheduling;
    selection.quota_threshold = config.routing.quota_threshold;
    state.accounts.selector.set_config(selection);
    state.console.set_language(config.server.language.as_str());
    state.models.set_user_map(&config.models.map);
    state.daily_cap.set_cap(config.safe_mode.daily_request_cap);
    state.safe_mode.set_config(config_of(&config));
    state.context.set(config.context.clone());
    state
        .gemini_keys
        .set(config.safe_mode.gemini_api_keys.clone());
    let pending = state.console.settings.pending();
    // What the file now says (secrets masked): for a change that waits for a restart,
    // that is not yet what the server does.
    let value = masked_config(&config);
    let value = {
        let mut value = value;
        for (key, shown) in &pending {
            if let Some(slot) = value.pointer_mut(&format!("/{}", key.replace('.', "/"))) {
                *slot = shown.clone();
            }
        }
        value
    };
    let changed: Vec<String> = keys
        .iter()
        .map(|key| {
            let pointer = format!("/{}", key.replace('.', "/"));
            let shown = value.pointer(&pointer).cloned().unwrap_or(Value::Null);
            format!("{key} = {shown}")
        })
        .collect();
    append_audit(
        &state.store,
        AuditKind::Settings,
        "config",
        &format!("changed with the console: {}", changed.join(", ")),
    )
    .await;
    let restart: Vec<&String> = keys
        .iter()
        .filter(|k| pending.contains_key(k.as_str()))
        .collect();
    Ok(Json(json!({
        "changed": keys,
        "applied": restart.is_empty(),
        "restart_required": restart,
        "pending_restart": pending,
        "config": masked_config(&config),
    })))
}

/// The config as JSON with every secret replaced by `****` (or left empty when unset).
pub fn masked_config(config: &crate::config::Config) -> Value {
    let mut value = serde_json::to_value(config).unwrap_or_default();
    let mask = |v: &mut Value| match v {
        Value::String(s) if !s.is_empty() => *s = "****".to_owned(),
        Value::Array(items) => {
            for item in items {
                *item = json!("****");
            }
        }
        _ => {}
    };
    // The Gemini API keys as their first and last four characters: enough to tell
    // them apart and to remove one, never enough to use one.
    if let Some(Value::Array(items)) = value.pointer_mut("/safe_mode/gemini_api_keys") {
        for item in items {
            *item = json!(super::settings::mask(item.as_str().unwrap_or_default()));
        }
    }
    for path in [
        "/server/api_keys",
        "/server/admin_password",
        "/google/oauth_client_secret",
        "/storage/postgres_url",
        "/cluster/redis_url",
    ] {
        if let Some(v) = value.pointer_mut(path) {
            mask(v);
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_view_masks_every_secret() {
        let mut config = crate::config::Config::default();
        config.server.api_keys = vec!["agm-secret-key-1234567890".into()];
        config.server.admin_password = "hunter2-hunter2".into();
        config.safe_mode.gemini_api_keys = vec!["AIzaSECRET".into()];
        config.storage.postgres_url = "postgres://u:pw@h/db".into();
        let text = masked_config(&config).to_string();
        for secret in ["agm-secret", "hunter2", "AIzaSECRET", "pw@h"] {
            assert!(!text.contains(secret), "{secret} shown in {text}");
        }
    }
}
