//! The web console: pages at `/ui/` and the JSON admin API under `/api/` that the
//! pages (and scripts) use. Both sit behind the console's own sign-in ([`auth`]),
//! never a client key, and every mutation passes [`check_mutation`]: a loopback (or IP
//! literal) `Host`, a same-origin `Origin` (or `Sec-Fetch-Site: same-origin`), and the
//! session's CSRF token in `x-agm-csrf`. See docs/SECURITY.md, "The web console".

pub mod accounts;
pub mod add;
pub mod api;
pub mod auth;
pub mod i18n;
pub mod logs;
pub mod pages;
pub mod settings;
pub mod usage;

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, delete, get, post};
use serde_json::json;

use crate::app::SharedState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "agm_session";
/// The language cookie's name (set by `?lang=`).
pub const LANG_COOKIE: &str = "agm_lang";
/// The header that carries the CSRF token on every mutation.
pub const CSRF_HEADER: &str = "x-agm-csrf";

/// The console's state, one per server (in `AppState::console`).
pub struct Console {
    pub auth: auth::Auth,
    pub pages: pages::Pages,
    /// The configured language (`[server] language`), the last choice before English;
    /// the Settings page can change it.
    language: std::sync::RwLock<String>,
    /// Google sign-ins started from the Accounts page, waiting for their redirect.
    pub sign_ins: add::SignIns,
    /// The settings the console changes, and the config file it writes them to.
    pub settings: settings::Settings,
    /// `[server] console_hosts`: names it answers to behind a reverse proxy.
    hosts: Vec<String>,
}

impl Console {
    pub fn new(config: &crate::config::Config, shared: crate::state::Shared) -> Console {
        Console {
            auth: auth::Auth::new(
                config.server.bind.is_loopback(),
                config.server.admin_password.clone(),
                shared,
            ),
            pages: pages::Pages::new(),
            language: std::sync::RwLock::new(config.server.language.as_str().to_owned()),
            sign_ins: add::SignIns::default(),
            settings: settings::Settings::new(config),
            hosts: config
                .server
                .console_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
        }
    }

    /// `[server] console_hosts`.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The configured language (`[server] language`, as changed in the console).
    pub fn language(&self) -> String {
        self.language
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn set_language(&self, tag: &str) {
        *self
            .language
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = tag.to_owned();
    }

    /// The sign-in link to print at start (`http://127.0.0.1:8045/ui/login?token=…`),
    /// once; none on a non-loopback bind (the admin password signs in there).
    pub fn startup_link(&self, addr: SocketAddr) -> Option<String> {
        self.auth
            .take_startup_token()
            .map(|token| login_link(addr, &token))
    }
}

/// `http://ADDR/ui/login?token=TOKEN`, with an unspecified address shown as loopback.
pub fn login_link(addr: SocketAddr, token: &str) -> String {
    let host = match addr.ip() {
        ip if ip.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
        ip => ip,
    };
    format!(
        "http://{}/ui/login?token={token}",
        SocketAddr::new(host, addr.port())
    )
}

/// The console's routes, merged into the app by `app::router`.
pub fn router(state: SharedState) -> Router<SharedState> {
    let signed_in = Router::new()
        .route("/api/session", get(api::session))
        .route("/api/accounts", get(api::accounts))
        .route("/api/accounts/sign-in", post(add::start))
        // An account file of up to 16 MiB, as JSON text inside the JSON body.
        .route(
            "/api/accounts/import",
            post(add::import).layer(axum::extract::DefaultBodyLimit::max(add::IMPORT_BODY_MAX)),
        )
        .route(
            "/api/accounts/clear-cooldowns",
            post(accounts::clear_all_cooldowns),
        )
        .route("/api/accounts/export", post(accounts::export))
        .route(
            "/api/accounts/{id}",
            get(accounts::account).delete(api::remove_account),
        )
        .route(
            "/api/accounts/{id}/clear-cooldowns",
            post(accounts::clear_cooldowns),
        )
        .route("/api/accounts/{id}/quota", post(accounts::recheck_quota))
        .route("/api/accounts/{id}/enable", post(api::enable_account))
        .route("/api/accounts/{id}/disable", post(api::disable_account))
        .route("/api/keys", get(api::keys).post(api::create_key))
        .route(
            "/api/keys/{id}",
            delete(api::revoke_key).patch(api::set_key_limits),
        )
        .route("/api/models", get(api::models))
        .route("/api/logs", get(logs::logs))
        .route("/api/logs/{id}", get(logs::request))
        .route("/api/audit", get(logs::audit))
        .route(
            "/api/safe-mode",
            get(api::safe_mode).post(api::change_safe_mode),
        )
        .route("/api/usage", get(usage::usage))
        .route("/api/health", get(api::health))
        .route(
            "/api/settings",
            get(api::settings).post(api::change_settings),
        )
        .route("/api/updates", get(api::updates))
        .route("/api/updates/dismiss", post(api::dismiss_update))
        .route("/api/{*rest}", get(api::unknown).post(api::unknown))
        .route("/ui/", get(pages::overview))
        .route("/ui/accounts", get(pages::accounts))
        .route("/ui/accounts/{id}", get(pages::account))
        .route("/ui/keys", get(pages::keys))
        .route("/ui/logs", get(pages::logs))
        .route("/ui/audit", get(pages::audit))
        .route("/ui/models", get(pages::models))
        .route("/ui/settings", get(pages::settings))
        .route("/ui/usage", get(pages::usage))
        .route("/ui/logout", post(pages::logout))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_session,
        ));
    Router::new()
        .route("/", any(root))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/login", get(pages::login_page).post(pages::login_form))
        // Reached by Google's redirect, which carries no session cookie (see `add`).
        .route(add::CALLBACK_PATH, get(add::callback))
        .route("/ui/assets/console.js", get(pages::script))
        .route("/ui/assets/console.css", get(pages::style))
        .merge(signed_in)
        .route_layer(middleware::from_fn(pages::client_addr))
        .route_layer(middleware::from_fn_with_state(state, check_host))
}

/// `/`: browsers go to the console; API clients get the JSON 404 as before.
async fn root(request: Request) -> Response {
    let wants_html = request.method() == Method::GET
        && request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"));
    if wants_html {
        Redirect::to("/ui/").into_response()
    } else {
        crate::app::not_found(request).await
    }
}

/// An admin API error: `{"error":{"message":...}}` with a fitting status.
#[derive(Debug)]
pub struct ConsoleError {
    pub status: StatusCode,
    pub message: String,
}

impl ConsoleError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ConsoleError {
        ConsoleError {
            status,
            message: message.into(),
        }
    }

    pub fn internal(e: impl std::fmt::Display) -> ConsoleError {
        ConsoleError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the store failed: {e}"),
        )
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({"error": {"message": self.message}})),
        )
            .into_response()
    }
}

/// A cookie's value from the `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// The client's address, when the listener recorded it.
pub fn client_ip(request_extensions: &axum::http::Extensions) -> Option<IpAddr> {
    request_extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Whether a `Host` may reach the console: a loopback name, any IP literal, or a name
/// listed in `[server] console_hosts` (`extra`, lowercase). Any other DNS name is
/// refused: a DNS-rebinding page sends its own name.
pub fn host_allowed(host: &str, extra: &[String]) -> bool {
    if crate::http::edge::is_loopback_host(host) || listed(host, extra) {
        return true;
    }
    name_of(host).parse::<IpAddr>().is_ok()
}

/// `host` without its port (and an IPv6 literal without its brackets).
fn name_of(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(inside, _)| inside)
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    }
}

/// Whether `host` (with or without a port) is one of `extra`: an entry with a port
/// matches that port only, one without matches any.
fn listed(host: &str, extra: &[String]) -> bool {
    let host = host.to_ascii_lowercase();
    extra
        .iter()
        .any(|entry| *entry == host || *entry == name_of(&host))
}

async fn check_host(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !host.is_empty() && !host_allowed(host, state.console.hosts()) {
        return ConsoleError::new(
            StatusCode::FORBIDDEN,
            format!(
                "the console answers only requests addressed to localhost, an IP address or a name in [server] console_hosts; this one was for {:?}",
                host.chars().take(100).collect::<String>()
            ),
        )
        .into_response();
    }
    next.run(request).await
}

/// The rules for a request that changes something (any method but GET and HEAD): the
/// page it came from is this console (`Origin` equal to `http(s)://<Host>`, or no
/// `Origin` and `Sec-Fetch-Site: same-origin`), and it carries the session's CSRF
/// token in `x-agm-csrf` (`csrf` is `None` for the sign-in form, which has no session
/// yet). Behind a reverse proxy that rewrites `Host`, an `Origin` naming one of
/// `[server] console_hosts` (`extra`) is the console's own too.
pub fn check_mutation(
    headers: &HeaderMap,
    csrf: Option<&str>,
    extra: &[String],
) -> Result<(), ConsoleError> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = get("host").unwrap_or("");
    let same_origin = match get("origin") {
        Some(origin) => {
            let authority = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            match authority {
                Some(authority) => {
                    (!host.is_empty() && authority == host)
                        || (!authority.contains('/') && listed(authority, extra))
                }
                None => false,
            }
        }
        None => get("sec-fetch-site") == Some("same-origin"),
    };
    if !same_origin {
        return Err(ConsoleError::new(
            StatusCode::FORBIDDEN,
            "refused: a change to agm must come from the console's own page (the Origin is another site, or missing)",
        ));
    }
    if let Some(expected) = csrf {
        let presented = get(CSRF_HEADER).unwrap_or("");
        if !crate::app::constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
            return Err(ConsoleError::new(
                StatusCode::FORBIDDEN,
                "refused: the CSRF token (x-agm-csrf) is missing or wrong; reload the console",
            ));
        }
    }
    Ok(())
}

/// The signed-in session of a request, put in its extensions by [`require_session`].
#[derive(Clone)]
pub struct SignedIn {
    pub id: String,
    pub csrf: String,
}

async fn require_session(
    State(state): State<SharedState>,
    mut request: Request,
    next: Next,
) -> Response {
    let is_api = request.uri().path().starts_with("/api/");
    let session = cookie(request.headers(), SESSION_COOKIE)
        .and_then(|id| Some((id.to_owned(), state.console.auth.session(id)?)));
    let Some((id, session)) = session else {
        if is_api {
            return ConsoleError::new(
                StatusCode::UNAUTHORIZED,
                "sign in to the console first: open the link `agm serve` printed, or run `agm console` (a client API key does not open the console)",
            )
            .into_response();
        }
        return Redirect::to("/ui/login").into_response();
    };
    if !matches!(*request.method(), Method::GET | Method::HEAD)
        && let Err(e) = check_mutation(
            request.headers(),
            Some(&session.csrf),
            state.console.hosts(),
        )
    {
        tracing::warn!(route = %request.uri().path(), reason = %e.message, "console: refused a change");
        return e.into_response();
    }
    request.extensions_mut().insert(SignedIn {
        id,
        csrf: session.csrf,
    });
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn hosts_loopback_or_addresses_only() {
        assert!(host_allowed("127.0.0.1:8045", &[]));
        assert!(host_allowed("localhost:8045", &[]));
        assert!(host_allowed("[::1]:8045", &[]));
        assert!(host_allowed("192.168.1.5:8045", &[]));
        assert!(!host_allowed("evil.example:8045", &[]));
        assert!(!host_allowed("rebind.attacker.net", &[]));
    }

    #[test]
    fn console_hosts_are_let_in_by_name_and_port() {
        let extra = vec![
            "agm.example.com".to_owned(),
            "ops.example.com:8443".to_owned(),
        ];
        assert!(host_allowed("agm.example.com", &extra));
        assert!(
            host_allowed("AGM.example.com:443", &extra),
            "any port, any case"
        );
        assert!(host_allowed("ops.example.com:8443", &extra));
        assert!(
            !host_allowed("ops.example.com:9000", &extra),
            "only its port"
        );
        assert!(!host_allowed("evil.example.com", &extra));
        assert!(!host_allowed("agm.example.com.evil.net", &extra));
        // Behind a proxy that passes Host as the backend's address.
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("127.0.0.1:8045"));
        h.insert(
            "origin",
            HeaderValue::from_static("https://agm.example.com"),
        );
        assert!(check_mutation(&h, None, &extra).is_ok());
        assert!(check_mutation(&h, None, &[]).is_err(), "not listed");
        h.insert(
            "origin",
            HeaderValue::from_static("https://agm.example.com.evil.net"),
        );
        assert!(check_mutation(&h, None, &extra).is_err());
        h.insert("origin", HeaderValue::from_static("null"));
        assert!(check_mutation(&h, None, &extra).is_err());
    }

    #[test]
    fn mutations_need_the_same_origin_and_the_token() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("127.0.0.1:8045"));
        assert!(
            check_mutation(&h, None, &[]).is_err(),
            "no Origin, no fetch metadata"
        );
        h.insert("origin", HeaderValue::from_static("http://evil.example"));
        assert!(check_mutation(&h, None, &[]).is_err());
        h.insert("origin", HeaderValue::from_static("http://127.0.0.1:8045"));
        assert!(check_mutation(&h, None, &[]).is_ok());
        assert!(
            check_mutation(&h, Some("t0k3n"), &[]).is_err(),
            "no CSRF header"
        );
        h.insert(CSRF_HEADER, HeaderValue::from_static("t0k3n"));
        assert!(check_mutation(&h, Some("t0k3n"), &[]).is_ok());
        h.remove("origin");
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(check_mutation(&h, Some("t0k3n"), &[]).is_err());
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(check_mutation(&h, Some("t0k3n"), &[]).is_ok());
    }

    #[test]
    fn cookies_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            "cookie",
            HeaderValue::from_static("a=1; agm_session=abc; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn links_name_loopback_for_an_unspecified_bind() {
        let addr: SocketAddr = "0.0.0.0:8045".parse().unwrap();
        assert_eq!(
            login_link(addr, "t"),
            "http://127.0.0.1:8045/ui/login?token=t"
        );
    }
}
