//! The HTTP edge of the client API routes: what a request must be before agm spends
//! anything on it (docs/SECURITY.md has the threat model).
//!
//! - A keyless gateway answers only requests that a web page cannot forge: a loopback
//!   `Host` (no DNS rebinding), no foreign `Origin` (no CSRF), and JSON bodies only (a
//!   page's "simple" cross-site POST cannot send `application/json`).
//! - Bodies are read here, whole, within `server.body_timeout`, up to `server.max_body`,
//!   and charged to one budget shared by every request (`server.max_inflight_body`), so
//!   that many large requests at once cannot exhaust memory. A body with more JSON
//!   containers than any real agent request has is refused before it is parsed (parsed
//!   structures cost many times the bytes they came from).
//! - After translation, every request is held to `server.max_messages` and
//!   `server.max_tools` ([`check_counts`]).

use std::sync::Arc;
use std::time::Duration;

use agm_wire::gemini::GenerateContentRequest;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::app::{SharedState, api_of_path};
use crate::http::error::{ApiError, ApiKind, ErrorKind};
use crate::http::listener::BodyPending;

/// The most JSON objects and arrays one request body may hold. A long agent session
/// with large tool schemas has tens of thousands; a body with hundreds of thousands of
/// tiny messages is an attack on memory (each parsed value costs ~50× its bytes).
pub const MAX_JSON_CONTAINERS: usize = 400_000;
/// What one parsed JSON container is charged against the in-flight budget, in bytes.
const CONTAINER_COST: u64 = 128;
/// How long a request waits for room in the in-flight budget before a 503.
const BUDGET_WAIT: Duration = Duration::from_secs(2);

/// The shared budget of request bytes held at once.
pub struct BodyBudget {
    semaphore: Arc<Semaphore>,
    total: u32,
}

impl BodyBudget {
    /// A budget of `bytes` (counted in KiB inside, so any size fits a permit count).
    pub fn new(bytes: u64) -> BodyBudget {
        let total = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX >> 4);
        BodyBudget {
            semaphore: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }

    /// Bytes of the budget free right now (metrics, tests).
    pub fn available_bytes(&self) -> u64 {
        self.semaphore.available_permits() as u64 * 1024
    }

    /// Takes `bytes` more (capped at the whole budget, so one request always fits),
    /// waiting until `deadline` at most.
    async fn take(
        &self,
        bytes: u64,
        deadline: Instant,
        held: &mut Option<OwnedSemaphorePermit>,
    ) -> Result<(), ()> {
        let already = held.as_ref().map_or(0, |p| p.num_permits() as u64);
        let want = u64::from(self.total)
            .saturating_sub(already)
            .min(bytes.div_ceil(1024));
        if want == 0 {
            return Ok(());
        }
        let want = u32::try_from(want).unwrap_or(u32::MAX);
        let permit = match Arc::clone(&self.semaphore).try_acquire_many_owned(want) {
            Ok(permit) => permit,
            Err(_) => tokio::time::timeout_at(
                deadline,
                Arc::clone(&self.semaphore).acquire_many_owned(want),
            )
            .await
            .map_err(|_| ())?
            .map_err(|_| ())?,
        };
        match held {
            Some(p) => p.merge(permit),
            None => *held = Some(permit),
        }
        Ok(())
    }
}

/// Whether `host` (a `Host` header value, port included or not) names this machine's
/// loopback interface.
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [::1]:8045
        match rest.split_once(']') {
            Some((inside, "")) => inside,
            Some((inside, port)) if port.strip_prefix(':').is_some_and(is_port) => inside,
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        }
    };
    let name = name.trim_end_matches('.');
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

/// Whether an `Origin` header names a page served from this machine's loopback.
pub fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    !rest.contains('/') && !rest.contains('@') && is_loopback_host(rest)
}

/// `application/json` or `application/<something>+json`, parameters allowed.
pub fn is_json_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype
                .get(subtype.len().saturating_sub(5)..)
                .is_some_and(|s| s.eq_ignore_ascii_case("+json")))
}

/// The rules for a gateway that takes requests without client keys; see the module docs.
pub fn check_keyless(api: ApiKind, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    let header = |name: header::HeaderName| headers.get(name).map(HeaderValue::as_bytes);
    if let Some(host) = header(header::HOST) {
        let host = String::from_utf8_lossy(host);
        if !is_loopback_host(&host) {
            return Err(ApiError::new(
                api,
                ErrorKind::PermissionDenied,
                format!(
                    "this gateway has no client keys, so it answers only requests addressed to localhost, 127.0.0.1 or [::1]; this one was for {:?}. To serve other host names, create a key with `agm keys create` and send it",
                    cut(&host)
                ),
            ));
        }
    }
    if let Some(origin) = header(header::ORIGIN) {
        let origin = String::from_utf8_lossy(origin);
        if !is_loopback_origin(&origin) {
            return Err(ApiError::new(
                api,
                ErrorKind::PermissionDenied,
                format!(
                    "requests from web pages are refused (Origin: {:?}): a page in your browser must not use your accounts. Clients that are not browsers send no Origin; to allow a browser client, create a key with `agm keys create` and send it",
                    cut(&origin)
                ),
            ));
        }
    }
    if method == Method::POST {
        let content_type = header(header::CONTENT_TYPE).map(String::from_utf8_lossy);
        if !content_type.as_deref().is_some_and(is_json_content_type) {
            return Err(ApiError::new(
                api,
                ErrorKind::UnsupportedMediaType,
                format!(
                    "send the body as JSON with Content-Type: application/json (got {})",
                    content_type.map_or_else(
                        || "no Content-Type".to_owned(),
                        |c| format!("{:?}", cut(&c))
                    )
                ),
            ));
        }
    }
    Ok(())
}

/// At most 100 characters of a client's value, for an error message.
fn cut(value: &str) -> String {
    let mut out: String = value.chars().take(100).collect();
    if out.len() < value.len() {
        out.push('…');
    }
    out
}

/// Counts the JSON objects and arrays in `bytes`, stopping past `limit` (cheap: one
/// pass, no allocation; strings are skipped with their escapes).
pub fn json_containers(bytes: &[u8], limit: usize) -> usize {
    let mut count = 0;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b'{' || b == b'[' {
            count += 1;
            if count > limit {
                break;
            }
        }
    }
    count
}

/// Middleware on the client API routes, after the key check: reads the body whole
/// within the limits above and hands it on; the budget is held until the response
/// (headers, for a stream) is ready.
pub async fn read_body(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    let api = api_of_path(request.uri().path());
    let pending = request.extensions().get::<BodyPending>().cloned();
    let (parts, body) = request.into_parts();
    let result = collect(&state, api, &parts.headers, body).await;
    if let Some(pending) = &pending {
        pending.arrived();
    }
    match result {
        Ok((bytes, permit)) => {
            let response = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            drop(permit);
            response
        }
        Err(error) => {
            let close = matches!(
                error.kind,
                ErrorKind::RequestTimeout | ErrorKind::PayloadTooLarge
            );
            let mut response = error.into_response();
            if close {
                // The rest of the body is not read: the connection cannot be reused.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
    }
}

async fn collect(
    state: &SharedState,
    api: ApiKind,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), ApiError> {
    let server = &state.config.server;
    let max = server.max_body.as_u64();
    let too_large = || {
        ApiError::new(
            api,
            ErrorKind::PayloadTooLarge,
            format!(
                "the request body is larger than server.max_body ({}) allows",
                server.max_body
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let started = Instant::now();
    let body_deadline = started + server.body_timeout;
    let budget_deadline = started + BUDGET_WAIT;
    let busy = || {
        metrics::counter!("agm_body_budget_refusals_total").increment(1);
        ApiError {
            retry_after: Some(Duration::from_secs(1)),
            ..ApiError::new(
                api,
                ErrorKind::Overloaded,
                format!(
                    "the gateway is busy reading other large requests (server.max_inflight_body = {}); retry in a moment",
                    server.max_inflight_body
                ),
            )
        }
    };
    let mut permit = None;
    if let Some(n) = declared {
        state
            .body_budget
            .take(n, budget_deadline, &mut permit)
            .await
            .map_err(|()| busy())?;
    }
    let capacity = usize::try_from(declared.unwrap_or(0).min(1 << 20)).unwrap_or(0);
    let mut buffer = BytesMut::with_capacity(capacity);
    let mut body = body;
    loop {
        let frame = match tokio::time::timeout_at(body_deadline, body.frame()).await {
            Err(_) => {
                return Err(ApiError::new(
                    api,
                    ErrorKind::RequestTimeout,
                    format!(
                        "the request body did not arrive within server.body_timeout ({})",
                        humantime::format_duration(server.body_timeout)
                    ),
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(ApiError::invalid(
                    api,
                    format!("cannot read the request body: {e}"),
                ));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buffer.len() as u64 + data.len() as u64 > max {
            return Err(too_large());
        }
        if declared.is_none() {
            state
                .body_budget
                .take(data.len() as u64, budget_deadline, &mut permit)
                .await
                .map_err(|()| busy())?;
        }
        buffer.extend_from_slice(&data);
    }
    let containers = json_containers(&buffer, MAX_JSON_CONTAINERS);
    if containers > MAX_JSON_CONTAINERS {
        return Err(ApiError::new(
            api,
            ErrorKind::PayloadTooLarge,
            format!(
                "the request body holds more than {MAX_JSON_CONTAINERS} JSON objects and arrays; agm takes at most server.max_messages = {} messages and server.max_tools = {} tools",
                server.max_messages, server.max_tools
            ),
        ));
    }
    // What parsing will cost, charged before it happens.
    state
        .body_budget
        .take(
            containers as u64 * CONTAINER_COST,
            budget_deadline,
            &mut permit,
        )
        .await
        .map_err(|()| busy())?;
    Ok((buffer.freeze(), permit))
}

/// `server.max_messages` and `server.max_tools`, on the request as it goes upstream
/// (the Gemini API's requests; the chat APIs are also checked as the client sent them).
pub fn check_counts(
    api: ApiKind,
    request: &GenerateContentRequest,
    server: &crate::config::ServerSection,
) -> Result<(), ApiError> {
    let tools: usize = request
        .tools
        .iter()
        .map(|t| t.function_declarations.len())
        .sum();
    check_limits(api, request.contents.len(), tools, server)
}

/// `server.max_messages` and `server.max_tools` for `messages` and `tools`.
pub fn check_limits(
    api: ApiKind,
    messages: usize,
    tools: usize,
    server: &crate::config::ServerSection,
) -> Result<(), ApiError> {
    if messages > server.max_messages {
        return Err(ApiError::invalid(
            api,
            format!(
                "the request has {messages} messages; this gateway takes at most {} (server.max_messages): compact the conversation",
                server.max_messages
            ),
        ));
    }
    if tools > server.max_tools {
        return Err(ApiError::invalid(
            api,
            format!(
                "the request declares {tools} tools; this gateway takes at most {} (server.max_tools)",
                server.max_tools
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "localhost:8045",
            "LOCALHOST.",
            "127.0.0.1",
            "127.0.0.1:8045",
            "127.1.2.3:1",
            "[::1]",
            "[::1]:8045",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "rebind.evil.example",
            "evil.example:8045",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "10.0.0.1",
            "0.0.0.0:8045",
            "[::1]x",
            "[::2]:80",
            "localhost:80x",
            "localhost:",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn loopback_origins() {
        for origin in [
            "http://localhost:3000",
            "https://127.0.0.1",
            "http://[::1]:8045",
        ] {
            assert!(is_loopback_origin(origin), "{origin}");
        }
        for origin in [
            "null",
            "https://evil.example",
            "http://localhost.evil.example",
            "http://localhost@evil.example",
            "file://",
            "http://localhost/x",
        ] {
            assert!(!is_loopback_origin(origin), "{origin}");
        }
    }

    #[test]
    fn json_content_types() {
        for ct in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/vnd.api+json",
        ] {
            assert!(is_json_content_type(ct), "{ct}");
        }
        for ct in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "json",
            "",
            "application/jsonx",
        ] {
            assert!(!is_json_content_type(ct), "{ct}");
        }
    }

    #[test]
    fn keyless_rules() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8045"));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert!(check_keyless(ApiKind::OpenAi, &Method::POST, &h).is_ok());
        let mut forged = h.clone();
        forged.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        let e = check_keyless(ApiKind::OpenAi, &Method::POST, &forged).unwrap_err();
        assert_eq!(e.kind, ErrorKind::PermissionDenied);
        let mut rebound = h.clone();
        rebound.insert(
            header::HOST,
            HeaderValue::from_static("rebind.evil.example"),
        );
        let e = check_keyless(ApiKind::Anthropic, &Method::POST, &rebound).unwrap_err();
        assert_eq!(e.kind, ErrorKind::PermissionDenied);
        assert!(e.message.contains("rebind.evil.example"), "{}", e.message);
        let mut plain = h.clone();
        plain.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let e = check_keyless(ApiKind::Google, &Method::POST, &plain).unwrap_err();
        assert_eq!(e.kind, ErrorKind::UnsupportedMediaType);
        // A GET needs no body type.
        assert!(check_keyless(ApiKind::OpenAi, &Method::GET, &plain).is_ok());
    }

    #[test]
    fn counts_containers_outside_strings() {
        assert_eq!(json_containers(br#"{"a":[1,{"b":"{[\"["}]}"#, 100), 3);
        assert_eq!(json_containers(b"[[[[[", 3), 4, "stops past the limit");
        let attack = format!(
            "{{\"messages\":[{}]}}",
            vec![r#"{"role":"user","content":"x"}"#; 1000].join(",")
        );
        assert_eq!(json_containers(attack.as_bytes(), usize::MAX), 1002);
    }

    #[tokio::test]
    async fn the_budget_is_shared_and_returned() {
        let budget = BodyBudget::new(10 * 1024);
        let deadline = Instant::now() + Duration::from_millis(50);
        let mut a = None;
        budget.take(8 * 1024, deadline, &mut a).await.unwrap();
        let mut b = None;
        assert!(
            budget.take(4 * 1024, deadline, &mut b).await.is_err(),
            "over the budget: waits, then gives up"
        );
        drop(a);
        budget
            .take(4 * 1024, Instant::now() + Duration::from_millis(50), &mut b)
            .await
            .unwrap();
        // One request larger than the whole budget still fits, alone.
        drop(b);
        let mut c = None;
        budget
            .take(1 << 30, Instant::now() + Duration::from_millis(50), &mut c)
            .await
            .unwrap();
        assert_eq!(budget.available_bytes(), 0);
    }
}
