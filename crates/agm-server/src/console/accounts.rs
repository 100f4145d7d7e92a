//! Account actions in the admin API beyond enable/disable/remove (`api`) and adding
//! (`add`): one account, clearing cooldowns, re-checking quota now, and exporting the
//! account file `agm accounts export` writes. Every action is audited; the routes sit
//! behind the console's session and CSRF checks like every other change.

use agm_store::{AuditKind, rfc3339};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ConsoleError;
use super::api::{account_json, audit_account, find_account};
use crate::app::SharedState;
use crate::ops::account_files::ExportFile;
use crate::state::audit::append_audit;

type ApiResult = Result<Json<Value>, ConsoleError>;

/// `GET /api/accounts/{id}` (an id or an e-mail): one account, as the list shows it.
pub async fn account(State(state): State<SharedState>, Path(id): Path<String>) -> ApiResult {
    let account = find_account(&state, &id).await?;
    let info = state
        .store
        .list_account_infos()
        .await
        .map_err(ConsoleError::internal)?
        .into_iter()
        .find(|i| i.id == account.id)
        .ok_or_else(|| ConsoleError::new(StatusCode::NOT_FOUND, format!("no account {id:?}")))?;
    Ok(Json(account_json(&state, &info).await))
}

/// Clears cooldowns as `agm accounts clear-cooldowns` does (the stored ones and a
/// request every server sharing the state follows), and in this server at once.
async fn clear(state: &SharedState, account: Option<&str>) -> Result<usize, ConsoleError> {
    crate::state::cooldowns::request_clear(&state.shared, account)
        .await
        .map_err(ConsoleError::internal)?;
    let cooldowns = &state.accounts.cooldowns;
    Ok(match account {
        Some(id) => cooldowns.clear_account(id),
        None => {
            let n = cooldowns.list(std::time::Instant::now()).len();
            cooldowns.clear_all();
            n
        }
    })
}

/// `POST /api/accounts/{id}/clear-cooldowns`.
pub async fn clear_cooldowns(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> ApiResult {
    let account = find_account(&state, &id).await?;
    let cleared = clear(&state, Some(&account.id)).await?;
    audit_account(
        &state,
        &account.email,
        &format!("cooldowns cleared with the console ({cleared} running)"),
    )
    .await;
    Ok(Json(json!({"id": account.id, "cleared": cleared})))
}

/// `POST /api/accounts/clear-cooldowns`: every account's.
pub async fn clear_all_cooldowns(State(state): State<SharedState>) -> ApiResult {
    let cleared = clear(&state, None).await?;
    append_audit(
        &state.store,
        AuditKind::Account,
        "all accounts",
        &format!("every cooldown cleared with the console ({cleared} running)"),
    )
    .await;
    Ok(Json(json!({"cleared": cleared})))
}

/// `POST /api/accounts/{id}/quota`: asks Google for the account's quota and models
/// now (as the background refresh does), stores them and answers the account.
pub async fn recheck_quota(State(state): State<SharedState>, Path(id): Path<String>) -> ApiResult {
    let account = find_account(&state, &id).await?;
    if !account.state.is_active() {
        return Err(ConsoleError::new(
            StatusCode::CONFLICT,
            format!(
                "{} is {}: enable it first, then re-check its quota",
                account.email,
                account.state.name()
            ),
        ));
    }
    // The pool's view first: it may not hold the account yet (never loaded since the
    // start, or enabled a moment ago), and a lease is taken from it.
    state
        .accounts
        .reload()
        .await
        .map_err(ConsoleError::internal)?;
    let result = crate::routing::catalogue::Refresher::new(&state)
        .refresh(&account.id)
        .await;
    let outcome = match &result {
        Ok(()) => "quota re-checked with the console".to_owned(),
        Err(e) => format!("quota re-check with the console failed: {e}"),
    };
    audit_account(&state, &account.email, &outcome).await;
    if let Err(e) = result {
        return Err(ConsoleError::new(
            StatusCode::BAD_GATEWAY,
            format!("Google did not give {}'s quota: {e}", account.email),
        ));
    }
    self::account(State(state), Path(account.id)).await
}

#[derive(Deserialize, Default)]
pub struct ExportBody {
    /// The admin said yes to a file holding refresh tokens.
    #[serde(default)]
    confirm: bool,
    /// Only these accounts (ids or e-mails); default every one.
    #[serde(default)]
    accounts: Option<Vec<String>>,
}

/// `POST /api/accounts/export` with `{"confirm": true}` (and `"accounts": [ids]` for
/// some): the file `agm accounts export` writes, refresh tokens included, as a
/// download to the signed-in admin only (a POST with the session's CSRF token, never
/// cached), and audited.
pub async fn export(
    State(state): State<SharedState>,
    body: Option<Json<ExportBody>>,
) -> Result<Response, ConsoleError> {
    let Json(body) = body.unwrap_or_default();
    if !body.confirm {
        return Err(ConsoleError::new(
            StatusCode::BAD_REQUEST,
            "the export holds every refresh token it names: anyone with the file can use those accounts. Send {\"confirm\": true} to export",
        ));
    }
    let all = state
        .store
        .list_accounts()
        .await
        .map_err(ConsoleError::internal)?;
    let accounts = match &body.accounts {
        None => all,
        Some(wanted) => {
            let mut chosen = Vec::new();
            for name in wanted {
                let account = find_account(&state, name).await?;
                if let Some(a) = all.iter().find(|a| a.id == account.id) {
                    chosen.push(a.clone());
                }
            }
            chosen
        }
    };
    let now = time::OffsetDateTime::now_utc();
    let file = ExportFile::new(&accounts, now);
    let emails: Vec<&str> = accounts.iter().map(|a| a.email.as_str()).collect();
    append_audit(
        &state.store,
        AuditKind::Account,
        if accounts.len() == 1 {
            emails[0]
        } else {
            "accounts"
        },
        &format!(
            "exported with the console, refresh tokens included: {}",
            emails.join(", ")
        ),
    )
    .await;
    let name = format!(
        "agm-accounts-{}.json",
        rfc3339(now)
            .replace(':', "")
            .split('.')
            .next()
            .unwrap_or("export")
    );
    let mut response = Json(file).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}
