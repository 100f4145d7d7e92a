//! The console's pages, rendered on the server with minijinja from templates embedded
//! in the binary, plus its one script and style sheet (no CDN, no build step). The
//! pages fill and refresh their tables from the admin API (`console.js`).

use std::net::IpAddr;

use axum::Form;
use axum::extract::{Extension, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::{Environment, context};
use serde::Deserialize;

use super::auth::{Refused, SESSION_TTL, Session};
use super::{LANG_COOKIE, SESSION_COOKIE, SignedIn, check_mutation, client_ip, cookie, i18n};
use crate::app::SharedState;

/// Every template, by name.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("accounts.html", include_str!("templates/accounts.html")),
    ("account.html", include_str!("templates/account.html")),
    ("keys.html", include_str!("templates/keys.html")),
    ("logs.html", include_str!("templates/logs.html")),
    ("audit.html", include_str!("templates/audit.html")),
    ("models.html", include_str!("templates/models.html")),
    ("settings.html", include_str!("templates/settings.html")),
    ("usage.html", include_str!("templates/usage.html")),
    ("oauth.html", include_str!("templates/oauth.html")),
];
pub const SCRIPT: &str = include_str!("assets/console.js");
pub const STYLE: &str = include_str!("assets/console.css");

/// The templates, parsed once at start.
pub struct Pages {
    env: Environment<'static>,
}

impl Default for Pages {
    fn default() -> Self {
        Pages::new()
    }
}

impl Pages {
    pub fn new() -> Pages {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "a console template does not parse");
            }
        }
        Pages { env }
    }

    /// Renders one template (a 500 with a logged reason if it fails).
    pub fn render_template(&self, name: &str, ctx: minijinja::Value) -> Response {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => Html(html).into_response(),
            Err(e) => {
                tracing::error!(template = name, error = %e, "cannot render a console page");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the console page failed; see the server log",
                )
                    .into_response()
            }
        }
    }
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    lang: Option<String>,
    token: Option<String>,
}

#[derive(serde::Serialize)]
struct Lang {
    tag: &'static str,
    name: &'static str,
}

fn langs() -> Vec<Lang> {
    i18n::CATALOGUES
        .iter()
        .map(|(tag, name, _)| Lang { tag, name })
        .collect()
}

/// The page's language, and the cookie to set when `?lang=` chose it.
fn language(
    state: &SharedState,
    headers: &HeaderMap,
    query: &PageQuery,
) -> (&'static str, Option<HeaderValue>) {
    let asked = query.lang.as_deref().and_then(i18n::supported);
    let lang = i18n::choose(
        query.lang.as_deref(),
        cookie(headers, LANG_COOKIE),
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
        &state.console.language(),
    );
    let set = asked.and_then(|tag| {
        HeaderValue::from_str(&format!(
            "{LANG_COOKIE}={tag}; Path=/; Max-Age=31536000; SameSite=Strict"
        ))
        .ok()
    });
    (lang, set)
}

fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// Renders one signed-in page.
fn page(
    state: &SharedState,
    headers: &HeaderMap,
    query: &PageQuery,
    signed_in: &SignedIn,
    name: &'static str,
    title_key: &str,
    extra: minijinja::Value,
) -> Response {
    let (lang, set_cookie) = language(state, headers, query);
    let t = i18n::catalogue(lang);
    let title = t.get(title_key).cloned().unwrap_or_default();
    let ctx = context! {
        t => t,
        lang => lang,
        langs => langs(),
        page => name,
        title => title,
        csrf => signed_in.csrf,
        ..extra
    };
    let mut response = state
        .console
        .pages
        .render_template(&format!("{name}.html"), ctx);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    with_cookie(response, set_cookie)
}

macro_rules! simple_page {
    ($fn:ident, $name:literal, $title:literal) => {
        pub async fn $fn(
            State(state): State<SharedState>,
            headers: HeaderMap,
            Query(query): Query<PageQuery>,
            Extension(signed_in): Extension<SignedIn>,
        ) -> Response {
            page(
                &state,
                &headers,
                &query,
                &signed_in,
                $name,
                $title,
                context! {},
            )
        }
    };
}

simple_page!(overview, "overview", "nav_overview");
simple_page!(accounts, "accounts", "nav_accounts");
simple_page!(logs, "logs", "nav_logs");
simple_page!(audit, "audit", "nav_audit");
simple_page!(models, "models", "nav_models");
simple_page!(usage, "usage", "nav_usage");

/// `/ui/accounts/{id}`: one account, its quota, recent requests and audit entries
/// (filled by the script from the admin API).
pub async fn account(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
    Extension(signed_in): Extension<SignedIn>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let extra = context! { account_id => id };
    page(
        &state,
        &headers,
        &query,
        &signed_in,
        "account",
        "account_title",
        extra,
    )
}

pub async fn keys(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
    Extension(signed_in): Extension<SignedIn>,
) -> Response {
    let extra = context! { gemini_keys => state.gemini_keys.get().len() };
    page(
        &state, &headers, &query, &signed_in, "keys", "nav_keys", extra,
    )
}

pub async fn settings(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
    Extension(signed_in): Extension<SignedIn>,
) -> Response {
    let current = state.console.settings.current();
    let masked = super::api::masked_config(&current);
    let text = serde_json::to_string_pretty(&masked).unwrap_or_default();
    let restart_keys: Vec<&str> = super::settings::EDITABLE
        .iter()
        .filter(|(_, applies)| *applies == super::settings::Applies::Restart)
        .map(|(key, _)| *key)
        .collect();
    let pending: Vec<String> = state.console.settings.pending().into_keys().collect();
    let extra = context! {
        settings => text,
        cfg => minijinja::Value::from_serialize(&masked),
        restart_keys => restart_keys,
        pending => pending,
        writable => state.console.settings.has_file(),
        scheduling => current.routing.scheduling.name(),
        quota_threshold => current.routing.quota_threshold,
        retention => humantime::format_duration(current.logging.request_log_retention).to_string(),
        language => current.server.language.as_str(),
    };
    page(
        &state,
        &headers,
        &query,
        &signed_in,
        "settings",
        "nav_settings",
        extra,
    )
}

fn login_response(
    state: &SharedState,
    headers: &HeaderMap,
    query: &PageQuery,
    status: StatusCode,
    error: Option<&str>,
    has_password: bool,
) -> Response {
    let (lang, set_cookie) = language(state, headers, query);
    let ctx = context! {
        t => i18n::catalogue(lang),
        lang => lang,
        langs => langs(),
        error => error,
        loopback => state.console.auth.loopback(),
        has_password => has_password,
    };
    let mut response = state.console.pages.render_template("login.html", ctx);
    *response.status_mut() = status;
    with_cookie(response, set_cookie)
}

/// The answer to a sign-in: a session cookie and a redirect to the console, or the
/// sign-in page with why (429 with `retry-after` when rate-limited).
async fn signed_in_or_refused(
    state: &SharedState,
    headers: &HeaderMap,
    query: &PageQuery,
    result: Result<(String, Session), Refused>,
) -> Response {
    match result {
        Ok((id, _)) => {
            let cookie = format!(
                "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
                SESSION_TTL.as_secs()
            );
            let mut response = Redirect::to("/ui/").into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
        Err(refused) => {
            let has_password = state.console.auth.has_password().await;
            let (status, message, retry) = match refused {
                Refused::TooMany(wait) => (
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "too many failed sign-ins from this address; try again in {} s",
                        wait.as_secs()
                    ),
                    Some(wait.as_secs()),
                ),
                Refused::Invalid(why) => (StatusCode::UNAUTHORIZED, why.to_owned(), None),
            };
            tracing::warn!(reason = %message, "console: sign-in refused");
            let mut response =
                login_response(state, headers, query, status, Some(&message), has_password);
            if let Some(secs) = retry
                && let Ok(v) = HeaderValue::from_str(&secs.to_string())
            {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            response
        }
    }
}

/// `GET /ui/login[?token=…]`: signs in with a link's token, or shows the sign-in page.
pub async fn login_page(
    State(state): State<SharedState>,
    Extension(client): Extension<ClientAddr>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Response {
    match query.token.as_deref().filter(|t| !t.is_empty()) {
        Some(token) => {
            let result = state.console.auth.sign_in_with_token(client.0, token).await;
            signed_in_or_refused(&state, &headers, &query, result).await
        }
        None => {
            let has_password = state.console.auth.has_password().await;
            login_response(&state, &headers, &query, StatusCode::OK, None, has_password)
        }
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
}

/// `POST /ui/login` (the form): a token or the admin password. Same-origin only (no
/// login CSRF).
pub async fn login_form(
    State(state): State<SharedState>,
    Extension(client): Extension<ClientAddr>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Err(e) = check_mutation(&headers, None, state.console.hosts()) {
        return e.into_response();
    }
    let result = if !form.password.is_empty() {
        state
            .console
            .auth
            .sign_in_with_password(client.0, &form.password)
            .await
    } else {
        state
            .console
            .auth
            .sign_in_with_token(client.0, &form.token)
            .await
    };
    signed_in_or_refused(&state, &headers, &query, result).await
}

/// The client's address (when known), for the sign-in rate limit.
#[derive(Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

/// Puts [`ClientAddr`] in the request's extensions.
pub async fn client_addr(mut request: Request, next: axum::middleware::Next) -> Response {
    let ip = client_ip(request.extensions());
    request.extensions_mut().insert(ClientAddr(ip));
    next.run(request).await
}

/// `POST /ui/logout`.
pub async fn logout(
    State(state): State<SharedState>,
    Extension(signed_in): Extension<SignedIn>,
) -> Response {
    state.console.auth.sign_out(&signed_in.id);
    let mut response = axum::Json(serde_json::json!({"signed_out": true})).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("agm_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

pub async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source).unwrap();
        }
        let t = i18n::catalogue("zh-TW");
        for name in [
            "overview", "accounts", "account", "keys", "logs", "audit", "models", "settings",
        ] {
            let html = env
                .get_template(&format!("{name}.html"))
                .unwrap()
                .render(context! {
                    t => t, lang => "zh-TW", langs => langs(), page => name,
                    title => "x", csrf => "c", gemini_keys => 1, settings => "{}",
                    cfg => minijinja::Value::from_serialize(
                        crate::console::api::masked_config(&crate::config::Config::default())
                    ),
                    restart_keys => vec!["warmup.enabled"], pending => Vec::<String>::new(),
                })
                .unwrap();
            assert!(html.contains("帳號"), "{name}");
        }
        let login = env
            .get_template("login.html")
            .unwrap()
            .render(context! { t => t, lang => "zh-TW", langs => langs(), loopback => true, has_password => false, error => "<b>" })
            .unwrap();
        assert!(login.contains("&lt;b&gt;"), "escaped");
    }
}
