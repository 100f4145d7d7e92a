//! Google sign-in from the terminal: the installed-app flow with PKCE (docs/PROTOCOL.md §1).
//!
//! agm listens on `http://localhost:<port>/oauth-callback` for Google's redirect and, when
//! it can, opens the consent page in a browser. Without a browser (`--no-browser`, or
//! none could be started) it prints the URL and also reads the pasted redirect URL, or
//! the bare code, from stdin: the way to sign in for a headless box over SSH. Whichever
//! answer comes first wins; `state` is checked on both paths, and the wait is bounded.
//! The caller races the whole sign-in against [`cancel_signal`] (Ctrl-C).

use std::collections::HashMap;
use std::io::BufRead;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use agm_google::oauth::{Pkce, authorize_url, code_from_redirect, random_state};
use agm_google::{GoogleClient, TokenGrant};
use anyhow::{Context, bail};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::output;

/// The redirect path Google sends the browser back to.
pub const CALLBACK_PATH: &str = "/oauth-callback";

/// How a sign-in runs.
#[derive(Debug, Clone)]
pub struct SignInOptions {
    /// Try to open a browser; if false, or if none opens, read the pasted answer.
    pub open_browser: bool,
    /// The longest wait for the answer.
    pub timeout: Duration,
    /// Port for the redirect listener; 0 picks a free one.
    pub port: u16,
    /// Pre-selects this account on Google's page.
    pub login_hint: Option<String>,
}

/// A completed sign-in: the tokens and the refresh token to keep.
#[derive(Debug)]
pub struct SignedIn {
    pub grant: TokenGrant,
    pub refresh_token: String,
}

/// The shortest pasted text taken for a bare code.
const MIN_CODE_LEN: usize = 20;

/// What came back from Google, through the browser or the paste: a code or a refusal.
type Answer = Result<String, String>;

/// Runs the sign-in and exchanges the code for tokens.
pub async fn sign_in(google: &GoogleClient, options: &SignInOptions) -> anyhow::Result<SignedIn> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, options.port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on 127.0.0.1:{} for Google's redirect; choose another --port",
                options.port
            )
        })?;
    let port = listener.local_addr()?.port();
    // Browsers may resolve localhost to ::1 first; listen there too when we can.
    let listener_v6 = TcpListener::bind((Ipv6Addr::LOCALHOST, port)).await.ok();
    let redirect_uri = format!("http://localhost:{port}{CALLBACK_PATH}");
    let pkce = Pkce::generate();
    let state = random_state();
    let url = authorize_url(
        google.config(),
        &redirect_uri,
        &state,
        &pkce.challenge,
        options.login_hint.as_deref(),
    );

    let (answers, mut answered) = mpsc::unbounded_channel::<Answer>();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = spawn_callback_server(listener, listener_v6, state.clone(), answers, stopped);

    let opened = options.open_browser && open_browser(&url).await;
    let mut pasted = if opened {
        output::note(&format!(
            "Opening Google sign-in in your browser. If it does not open, visit:\n\n  {url}\n"
        ));
        output::note(&format!(
            "Waiting for the sign-in (up to {}; Ctrl-C cancels)...",
            humantime::format_duration(options.timeout)
        ));
        None
    } else {
        if options.open_browser {
            output::note("No browser could be opened here.");
        }
        output::note(&format!(
            "Open this address in a browser, on this machine or any other, and sign in:\n\n  {url}\n"
        ));
        output::note(&format!(
            "Google then sends the browser to {redirect_uri}?... On another machine that page \
             fails to load, which is expected: copy its address from the address bar and paste \
             it here (or just the value of code=). Waiting up to {}; Ctrl-C cancels.",
            humantime::format_duration(options.timeout)
        ));
        output::prompt("Paste the address here: ");
        Some(read_stdin_lines())
    };

    let prompting = pasted.is_some();
    let deadline = tokio::time::sleep(options.timeout);
    tokio::pin!(deadline);
    let answer = loop {
        tokio::select! {
            Some(answer) = answered.recv() => break answer,
            Some(line) = recv_line(&mut pasted) => match parse_pasted(&line, &state) {
                Some(answer) => break answer,
                None if line.trim().is_empty() => output::prompt("Paste the address here: "),
                None => {
                    output::note("That is neither the address the browser ended on nor a code.");
                    output::prompt("Paste the address here: ");
                }
            },
            () = &mut deadline => {
                let _ = stop.send(());
                end_prompt(prompting);
                bail!(
                    "no sign-in within {}; nothing was saved. Run `agm accounts add` again \
                     (with --no-browser to paste the answer from another machine)",
                    humantime::format_duration(options.timeout)
                );
            }
        }
    };
    // Let the browser get its page, then stop listening.
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;

    let code = match answer {
        Ok(code) => code,
        Err(reason) => bail!("{reason}"),
    };
    output::note("Signed in; checking the account with Google...");
    let grant = google
        .exchange_code(&code, &redirect_uri, &pkce.verifier)
        .await
        .map_err(|e| anyhow::anyhow!("the sign-in failed: {e}"))?;
    let Some(refresh_token) = grant.refresh_token.clone() else {
        bail!(
            "Google sent no refresh token; remove agm's access at https://myaccount.google.com/permissions and run `agm accounts add` again"
        );
    };
    Ok(SignedIn {
        grant,
        refresh_token,
    })
}

#[derive(Clone)]
struct CallbackState {
    state: String,
    answers: mpsc::UnboundedSender<Answer>,
}

fn spawn_callback_server(
    listener: TcpListener,
    listener_v6: Option<TcpListener>,
    state: String,
    answers: mpsc::UnboundedSender<Answer>,
    stopped: oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<()> {
    let app = Router::new()
        .route(CALLBACK_PATH, get(callback))
        .with_state(CallbackState { state, answers });
    let (stop_all, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut servers = Vec::new();
    for listener in std::iter::once(listener).chain(listener_v6) {
        let mut stop = stop_all.subscribe();
        let serve = axum::serve(listener, app.clone()).with_graceful_shutdown(async move {
            let _ = stop.recv().await;
        });
        servers.push(tokio::spawn(async move {
            let _ = serve.await;
        }));
    }
    tokio::spawn(async move {
        let _ = stopped.await;
        let _ = stop_all.send(());
        for server in servers {
            let _ = server.await;
        }
    })
}

async fn callback(
    State(callback): State<CallbackState>,
    Query(params): Query<HashMap<String, String>>,
) -> (StatusCode, Html<String>) {
    let answer = read_redirect(&params, &callback.state);
    let page = match &answer {
        Ok(_) => (
            StatusCode::OK,
            page(
                "Signed in",
                "agm has the sign-in. You can close this tab and go back to the terminal.",
            ),
        ),
        Err(reason) => (StatusCode::BAD_REQUEST, page("Sign-in failed", reason)),
    };
    let _ = callback.answers.send(answer);
    page
}

fn page(title: &str, text: &str) -> Html<String> {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    Html(format!(
        "<!doctype html><meta charset=\"utf-8\"><title>agm: {}</title>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\">\
         <h1>{}</h1><p>{}</p></body>",
        escape(title),
        escape(title),
        escape(text)
    ))
}

/// The code from a redirect's query, once `error` and `state` are checked.
fn read_redirect(params: &HashMap<String, String>, expected_state: &str) -> Answer {
    code_from_redirect(params, expected_state, "run `agm accounts add` again")
        .map_err(|e| e.to_string())
}

/// A pasted redirect URL (or its query) or a bare code; `None` if it is neither.
fn parse_pasted(line: &str, expected_state: &str) -> Option<Answer> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    if line.contains("code=") || line.contains("error=") {
        let query = line.split_once('?').map_or(line, |(_, q)| q);
        let query = query.split_once('#').map_or(query, |(q, _)| q);
        let params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        return Some(read_redirect(&params, expected_state));
    }
    // A bare code (Google's look like `4/0AVG...`, 60-odd characters), perhaps still
    // URL-encoded (`4%2F0A...`) if copied out of the address. Anything shorter, or with
    // other characters, is a slip of the paste rather than a code.
    let looks_like_code = line.len() >= MIN_CODE_LEN
        && line
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./~%".contains(&b));
    if !looks_like_code {
        return None;
    }
    let decoded = form_urlencoded::parse(format!("code={line}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())?;
    Some(Ok(decoded))
}

/// Ends the pending "Paste the address here: " line before an error is printed.
fn end_prompt(prompting: bool) {
    if prompting {
        output::note("");
    }
}

/// Lines from stdin, read on a plain thread: a blocked read must not keep the runtime
/// from shutting down once the browser has answered.
fn read_stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next pasted line; pending forever when there is no paste (or stdin ended).
async fn recv_line(pasted: &mut Option<mpsc::UnboundedReceiver<String>>) -> Option<String> {
    match pasted {
        Some(rx) => match rx.recv().await {
            Some(line) => Some(line),
            None => {
                *pasted = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

/// Resolves on Ctrl-C (or SIGTERM). The handlers are installed when this is called,
/// not when it is first awaited: call it before printing what the user reacts to.
pub fn cancel_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {},
                () = wait(terminate) => {},
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Opens `url` in the desktop's browser; false when there is no desktop or it failed.
async fn open_browser(url: &str) -> bool {
    let Some((program, args)) = browser_opener() else {
        return false;
    };
    let status = tokio::process::Command::new(program)
        .args(args)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    match tokio::time::timeout(Duration::from_secs(10), status).await {
        Ok(Ok(status)) => status.success(),
        Ok(Err(_)) => false,
        // Still running: it has most likely handed the URL to a browser.
        Err(_) => true,
    }
}

fn browser_opener() -> Option<(&'static str, &'static [&'static str])> {
    if cfg!(target_os = "macos") {
        return Some(("open", &[]));
    }
    if cfg!(windows) {
        return Some(("rundll32", &["url.dll,FileProtocolHandler"]));
    }
    let desktop = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    desktop.then_some(("xdg-open", &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_addresses_and_codes() {
        let ok = |s: &str| parse_pasted(s, "st-1");
        assert_eq!(
            ok("http://localhost:1234/oauth-callback?state=st-1&code=4%2F0Abc&scope=openid"),
            Some(Ok("4/0Abc".into()))
        );
        assert_eq!(ok("  ?code=4/0Abc&state=st-1  "), Some(Ok("4/0Abc".into())));
        let code = "4/0AVGzR1Bxyz-_abcdefghijklmnop";
        assert_eq!(ok(code), Some(Ok(code.into())));
        assert_eq!(ok(&code.replace('/', "%2F")), Some(Ok(code.into())));
        assert_eq!(ok("garbage"), None, "too short for a code");
        assert_eq!(ok(""), None);
        assert_eq!(ok("https://example.com/"), None);
        assert_eq!(ok("not a code"), None);
        let wrong = ok("http://localhost:1/oauth-callback?state=other&code=c").unwrap();
        assert!(wrong.unwrap_err().contains("state differs"));
        let missing = ok("http://localhost:1/oauth-callback?code=c").unwrap();
        assert!(missing.unwrap_err().contains("state differs"));
        let denied =
            ok("http://localhost:1/oauth-callback?error=access_denied&state=st-1").unwrap();
        assert!(denied.unwrap_err().contains("access_denied"));
    }
}
