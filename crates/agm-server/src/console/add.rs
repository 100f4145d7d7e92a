//! Adding an account from the console: Google sign-in started from the browser, with
//! Google's redirect coming back to agm itself (`/ui/oauth/callback`), or a refresh
//! token pasted into a form. Both check the account with Google before anything is
//! saved, as `agm accounts add` and `agm accounts import` do (`ops::verify`), then set
//! up its Cloud Code project and audit it.
//!
//! The callback needs no session cookie: a redirect from Google is a cross-site
//! navigation, which never carries the SameSite=Strict cookie. It is bound to a
//! sign-in a signed-in session started instead, by its `state` (random, single use,
//! ten minutes at most) and its PKCE verifier, which never leaves agm.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use agm_google::oauth::{Pkce, authorize_url, code_from_redirect, random_state, state_matches};
use agm_store::{AccountState, AuditKind, Pool};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ConsoleError, i18n};
use crate::app::SharedState;
use crate::ops::verify::{self, Saved, SetUp, Verified};
use crate::state::audit::append_audit;

/// Where Google sends the browser back to.
pub const CALLBACK_PATH: &str = "/ui/oauth/callback";
/// How long a started sign-in waits for its answer.
const SIGN_IN_TTL: Duration = Duration::from_secs(600);
/// Sign-ins waiting at once; the oldest is dropped past this.
const MAX_PENDING: usize = 16;

struct Pending {
    state: String,
    verifier: String,
    redirect_uri: String,
    started: Instant,
}

/// The sign-ins started in the console and not answered yet.
#[derive(Default)]
pub struct SignIns {
    pending: Mutex<Vec<Pending>>,
}

impl SignIns {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn start(&self, state: String, verifier: String, redirect_uri: String) {
        let mut pending = self.lock();
        pending.retain(|p| p.started.elapsed() < SIGN_IN_TTL);
        if pending.len() >= MAX_PENDING {
            pending.remove(0);
        }
        pending.push(Pending {
            state,
            verifier,
            redirect_uri,
            started: Instant::now(),
        });
    }

    /// Takes the sign-in `state` names (once), if it is still waiting.
    fn take(&self, state: &str) -> Option<Pending> {
        let mut pending = self.lock();
        pending.retain(|p| p.started.elapsed() < SIGN_IN_TTL);
        let index = pending
            .iter()
            .position(|p| state_matches(&p.state, state))?;
        Some(pending.remove(index))
    }
}

#[derive(Deserialize, Default)]
pub struct SignInBody {
    /// Pre-selects this account on Google's page.
    #[serde(default)]
    email: Option<String>,
}

/// `POST /api/accounts/sign-in` (`{"email": ...}` optional): starts a Google sign-in
/// and answers `{"url": ...}`, Google's consent page, whose redirect comes back to
/// `http://<this console's host>/ui/oauth/callback`.
pub async fn start(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Option<Json<SignInBody>>,
) -> Result<Json<Value>, ConsoleError> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            ConsoleError::new(
                StatusCode::BAD_REQUEST,
                "the request has no Host: the redirect address cannot be built",
            )
        })?;
    let redirect_uri = format!("http://{host}{CALLBACK_PATH}");
    let pkce = Pkce::generate();
    let sign_in_state = random_state();
    let hint = body
        .and_then(|Json(b)| b.email)
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty());
    let url = authorize_url(
        state.google.config(),
        &redirect_uri,
        &sign_in_state,
        &pkce.challenge,
        hint.as_deref(),
    );
    state
        .console
        .sign_ins
        .start(sign_in_state, pkce.verifier, redirect_uri.clone());
    Ok(Json(json!({"url": url, "redirect_uri": redirect_uri})))
}

/// `GET /ui/oauth/callback?state=…&code=…`: Google's answer. Exchanges the code,
/// checks and saves the account, and shows the outcome with a link back.
pub async fn callback(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let again = "start the sign-in again from the console's Accounts page";
    let outcome = async {
        let sent = params.get("state").map(String::as_str).unwrap_or("");
        let pending = state.console.sign_ins.take(sent).ok_or_else(|| {
            format!(
                "this answer belongs to no sign-in waiting here (too old, already used, or started elsewhere); nothing was saved: {again}"
            )
        })?;
        let code =
            code_from_redirect(&params, &pending.state, again).map_err(|e| e.to_string())?;
        let grant = state
            .google
            .exchange_code(&code, &pending.redirect_uri, &pending.verifier)
            .await
            .map_err(|e| format!("the sign-in failed: {e}"))?;
        let Some(refresh_token) = grant.refresh_token.clone() else {
            return Err(
                "Google sent no refresh token; remove agm's access at https://myaccount.google.com/permissions and sign in again".to_owned(),
            );
        };
        let verified = verify::from_grant(&state.google, grant, &refresh_token, None)
            .await
            .map_err(|reason| format!("not added: {reason}"))?;
        save(&state, verified, "added").await
    }
    .await;
    let lang = i18n::choose(
        None,
        super::cookie(&headers, super::LANG_COOKIE),
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
        &state.console.language(),
    );
    let (status, ok, text) = match &outcome {
        Ok(answer) => (
            StatusCode::OK,
            true,
            answer["summary"].as_str().unwrap_or_default().to_owned(),
        ),
        Err(reason) => {
            tracing::warn!(reason = %reason, "console: a Google sign-in failed");
            (StatusCode::BAD_REQUEST, false, reason.clone())
        }
    };
    let ctx = context! { t => i18n::catalogue(lang), lang => lang, ok => ok, text => text };
    let mut response = state.console.pages.render_template("oauth.html", ctx);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The code and state are in this page's address: never send them on as a Referer.
    response
        .headers_mut()
        .insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

#[derive(Deserialize)]
pub struct ImportBody {
    #[serde(default)]
    refresh_token: Option<String>,
    /// The e-mail the token must belong to, if given.
    #[serde(default)]
    email: Option<String>,
    /// The text of an account file (any format `agm accounts import --file` reads).
    #[serde(default)]
    file: Option<String>,
}

/// The largest account file the console takes (as the CLI's limit).
const IMPORT_FILE_MAX: usize = 16 * 1024 * 1024;
/// The largest import body: the file as a JSON string, escaped.
pub const IMPORT_BODY_MAX: usize = 2 * IMPORT_FILE_MAX + 4096;

/// `POST /api/accounts/import` with `{"refresh_token": ..., "email": ...}` (as `agm
/// accounts import --refresh-token`) or `{"file": "<the file's text>"}` (as `agm
/// accounts import --file`: agm's export, gemini-cli's oauth_creds.json, Antigravity
/// Manager's files, a list): each account checked with Google, then saved.
pub async fn import(
    State(state): State<SharedState>,
    Json(body): Json<ImportBody>,
) -> Result<Json<Value>, ConsoleError> {
    match (&body.refresh_token, body.file) {
        (Some(_), Some(_)) => Err(ConsoleError::new(
            StatusCode::BAD_REQUEST,
            "give a refresh_token or a file, not both",
        )),
        (None, None) => Err(ConsoleError::new(
            StatusCode::BAD_REQUEST,
            "give {\"refresh_token\": ...} or {\"file\": \"<an account file's text>\"}",
        )),
        (None, Some(file)) => import_file(&state, &file).await.map(Json),
        (Some(token), None) => import_token(&state, token, body.email.as_deref()).await,
    }
}

async fn import_file(state: &SharedState, text: &str) -> Result<Value, ConsoleError> {
    use crate::ops::account_files::{self, ImportError};
    if text.len() > IMPORT_FILE_MAX {
        return Err(ConsoleError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the file is over 16 MiB: no account file is that large",
        ));
    }
    let file = account_files::parse(text).map_err(|reason| {
        ConsoleError::new(
            StatusCode::BAD_REQUEST,
            format!("cannot import the file: {reason}"),
        )
    })?;
    let mut imported = Vec::new();
    let mut refused = Vec::new();
    for (index, entry) in file.entries.into_iter().enumerate() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(bad) => {
                refused.push(json!({"label": bad.label, "reason": bad.reason}));
                continue;
            }
        };
        let label = entry.label(index);
        match account_files::import_entry(&state.google, &state.store, entry).await {
            Ok(saved) => imported.push(finish(state, saved, "imported").await),
            Err(ImportError::Store(e)) => return Err(ConsoleError::internal(e)),
            Err(reason) => refused.push(json!({"label": label, "reason": reason.to_string()})),
        }
    }
    let summary = format!(
        "{}: {} imported, {} refused",
        file.format.describe(),
        imported.len(),
        refused.len()
    );
    Ok(json!({
        "format": file.format.describe(),
        "imported": imported,
        "refused": refused,
        "summary": summary,
    }))
}

async fn import_token(
    state: &SharedState,
    token: &str,
    email: Option<&str>,
) -> Result<Json<Value>, ConsoleError> {
    let email = email.map(str::trim).filter(|e| !e.is_empty());
    let verified = verify::from_refresh_token(&state.google, token, email)
        .await
        .map_err(|reason| {
            ConsoleError::new(
                StatusCode::BAD_REQUEST,
                format!("not imported: {reason}; nothing was saved"),
            )
        })?;
    save(state, verified, "imported")
        .await
        .map(Json)
        .map_err(|e| ConsoleError::new(StatusCode::INTERNAL_SERVER_ERROR, e))
}

/// Saves a checked account in the Antigravity pool, then [`finish`]es it.
async fn save(state: &SharedState, verified: Verified, created: &str) -> Result<Value, String> {
    let saved = verify::save(&state.store, verified, Pool::Antigravity, None)
        .await
        .map_err(|e| format!("the store failed: {e}"))?;
    Ok(finish(state, saved, created).await)
}

/// Audits a saved account, sets up its project now (as the CLI does) and answers what
/// happened.
async fn finish(state: &SharedState, saved: Saved, created: &str) -> Value {
    let Saved {
        mut account,
        created: is_new,
    } = saved;
    let verb = if is_new { created } else { "updated" };
    append_audit(
        &state.store,
        AuditKind::Account,
        &account.email,
        &format!("{verb} with the console (pool {})", account.pool),
    )
    .await;
    let setup =
        verify::set_up_project(&state.store, &state.google, &state.config, &mut account).await;
    let mut summary = format!("{verb} {}", account.email);
    if let Some(project) = &account.project_id {
        summary.push_str(&format!(" (project {project}"));
        if let Some(tier) = &account.tier {
            summary.push_str(&format!(", tier {tier}"));
        }
        summary.push(')');
    }
    let note = match (&setup, &account.state) {
        (_, AccountState::Blocked { reason, url }) => Some(match url {
            Some(url) => format!("blocked: {reason}: open {url}"),
            None => format!("blocked: {reason}"),
        }),
        (SetUp::Deferred { reason }, _) => Some(format!(
            "the Cloud Code project could not be set up now ({reason}); the gateway tries again when the account is first used"
        )),
        _ => None,
    };
    if let Some(note) = &note {
        summary.push_str(&format!("; {note}"));
    }
    // Its quota (and the models it serves) now, so that the Accounts page shows its
    // bars at once rather than after the next background refresh.
    if let Err(e) = state.accounts.reload().await {
        tracing::warn!(error = %e, "could not reload the account pool");
    }
    if account.state.is_active()
        && let Err(reason) = crate::routing::catalogue::Refresher::new(state)
            .refresh(&account.id)
            .await
    {
        tracing::debug!(account = %account.email, %reason, "no quota for a new account yet");
    }
    json!({
        "id": account.id,
        "email": account.email,
        "created": is_new,
        "project": account.project_id,
        "tier": account.tier,
        "state": account.state.name(),
        "summary": summary,
    })
}
