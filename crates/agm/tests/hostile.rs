#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The hostile-input suite (issue 10): the real `agm serve` binary against the
//! simulated Google on loopback, attacked the way an attacker or an unlucky user would:
//! CR/LF in model names, slowloris headers and bodies, idle connections past the
//! connection cap, the last client key revoked, foreign `Host`/`Origin` values and
//! non-JSON content types on a keyless gateway, huge bodies (RSS measured), a damaged
//! sealed token, client errors that would name pool accounts, a stalled Gemini stream,
//! the audit and request log, two servers on one data dir, and fuzzed model names.
//!
//! Run it alone with `cargo test -p agm --test hostile`.

mod common;
#[path = "hostile/harness.rs"]
mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agm_sim::{Fault, Sim, SimConfig, SimMethod, SimModel};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use harness::{
    Api, DOMAIN, Ending, Env, Rng, client, contains, database, error_shape, free_port, open_fds,
    percent_encode, raw_request, rss_bytes, stderr, stdout, wait_closed,
};

const MIB: u64 = 1024 * 1024;

fn gemini_body(text: &str) -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": text}]}]})
}

fn anthropic_body(model: &str, text: &str) -> Value {
    json!({"model": model, "max_tokens": 32, "messages": [{"role": "user", "content": text}]})
}

fn chat_body(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// POSTs JSON and returns the status and the whole body (bounded by the client's 20 s).
async fn post(http: &reqwest::Client, url: &str, body: &Value) -> (u16, String) {
    let response = http
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// The generation calls the sim has seen since its captures were last cleared.
fn generation_calls(env: &Env) -> Vec<agm_sim::CapturedRequest> {
    env.sim
        .requests()
        .into_iter()
        .filter(|r| r.method.is_generation())
        .collect()
}

/// Lines of `/metrics` for breakers that are not closed.
async fn open_breakers(url: &str) -> Vec<String> {
    let text = client()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("circuit_breaker_state"))
        .filter(|l| l.rsplit(' ').next().is_some_and(|v| v.trim() != "0"))
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------------
// Item 1: a CR/LF in a model name must not shut off the pool.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crlf_in_a_model_name_is_refused_and_the_pool_keeps_serving() {
    let mut env = Env::new(Sim::new(SimConfig::default()), &["ann", "cas"]).await;
    // The code-assist pool first: its User-Agent carries the model name (the bug).
    env.set(
        "AGM_ROUTING__GEMINI_POOL_ORDER",
        r#"["code-assist", "antigravity"]"#,
    );
    env.import("ann").await;
    env.import_code_assist("cas").await;
    let server = env.serve(true).await;
    let http = client();
    env.sim.clear_requests();

    let url = &server.url;
    let gemini = gemini_body("hello");
    let bad: Vec<(Api, String, Value, &str)> = vec![
        (
            Api::Google,
            format!("{url}/v1beta/models/gemini-2.5-flash%0D%0AX-Evil:%201:generateContent"),
            gemini.clone(),
            "gemini-2.5-flash\\r\\nX-Evil: 1",
        ),
        (
            Api::Google,
            format!("{url}/v1beta/models/gemini-2.5-flash%0A:streamGenerateContent?alt=sse"),
            gemini.clone(),
            "gemini-2.5-flash\\n",
        ),
        (
            Api::Anthropic,
            format!("{url}/v1/messages"),
            anthropic_body("gemini-2.5-flash\n", "hello"),
            "gemini-2.5-flash\\n",
        ),
        (
            Api::Anthropic,
            format!("{url}/v1/messages"),
            {
                let mut b = anthropic_body("gemini-2.5-flash\r\nX-Evil: 1", "hello");
                b["stream"] = json!(true);
                b
            },
            "gemini-2.5-flash\\r\\nX-Evil: 1",
        ),
        (
            Api::OpenAi,
            format!("{url}/v1/chat/completions"),
            chat_body("gemini-2.5-flash\n", "hello"),
            "gemini-2.5-flash\\n",
        ),
        (
            Api::OpenAi,
            format!("{url}/v1/responses"),
            json!({"model": "gemini-2.5-flash\r\n", "input": "hello"}),
            "gemini-2.5-flash\\r\\n",
        ),
    ];
    // Every problem is collected, so that one run shows the refusal and the pool.
    let mut failures = Vec::new();
    for (api, url, body, escaped) in &bad {
        let context = format!("{api:?} {url} with a CR/LF model");
        let (status, text) = post(&http, url, body).await;
        if status != 400 {
            failures.push(format!(
                "{context}: a model name with CR/LF must be a 400 before any upstream call, got {status}: {text}"
            ));
            continue;
        }
        let (message, kind) = error_shape(*api, &text, &context);
        let want = match api {
            Api::Google => "INVALID_ARGUMENT",
            _ => "invalid_request_error",
        };
        assert_eq!(kind, want, "{context}: error type: {text}");
        assert!(
            message.contains(escaped),
            "{context}: the message shows the name escaped ({escaped}): {message}"
        );
        assert!(
            !message.contains('\r') && !message.contains('\n'),
            "{context}: the message holds a raw CR/LF: {message:?}"
        );
    }
    let calls = generation_calls(&env);
    if !calls.is_empty() {
        failures.push(format!(
            "the sim saw {} generation call(s) for bad model names (models {:?})",
            calls.len(),
            calls.iter().map(|c| c.model()).collect::<Vec<_>>()
        ));
    }

    // No breaker counted them.
    let open = open_breakers(url).await;
    if !open.is_empty() {
        failures.push(format!(
            "breakers opened by the CR/LF requests (GET /metrics): {open:?}"
        ));
    }

    // Right after, valid requests for the same model are all served.
    for i in 0..10 {
        let (api_url, body) = match i % 3 {
            0 => (
                format!("{url}/v1beta/models/gemini-2.5-flash:generateContent"),
                gemini_body(&format!("valid {i}")),
            ),
            1 => (
                format!("{url}/v1/messages"),
                anthropic_body("gemini-2.5-flash", &format!("valid {i}")),
            ),
            _ => (
                format!("{url}/v1/chat/completions"),
                chat_body("gemini-2.5-flash", &format!("valid {i}")),
            ),
        };
        let (status, text) = post(&http, &api_url, &body).await;
        if status != 200 {
            failures.push(format!(
                "after the CR/LF requests, a valid request failed (the pool was shut off?): {api_url}: {status} {text}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n"),
        server.log_tail()
    );
    let open = open_breakers(url).await;
    assert!(open.is_empty(), "breakers not closed: {open:?}");
    server.stop().await;
}

// ---------------------------------------------------------------------------------
// Item 2: header, body and idle timeouts; the connection cap.
// ---------------------------------------------------------------------------------

const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
const BODY_TIMEOUT: Duration = Duration::from_secs(2);
const IDLE_TIMEOUT: Duration = Duration::from_secs(2);
const SLACK: Duration = Duration::from_secs(1);

/// Opens a connection and sends `bytes`; returns it and when the write finished.
async fn open_with(addr: std::net::SocketAddr, bytes: &[u8]) -> (TcpStream, Instant) {
    let mut stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .expect("connect within 5 s")
        .expect("connect");
    if !bytes.is_empty() {
        stream.write_all(bytes).await.expect("write");
    }
    (stream, Instant::now())
}

const HALF_HEADER: &[u8] =
    b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Slow: ";
const ENDLESS_BODY_HEAD: &[u8] = b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"mod\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_slow_bodies_and_idle_connections_are_closed() {
    let mut env = Env::new(Sim::new(SimConfig::default()), &["ann"]).await;
    env.set("AGM_SERVER__HEADER_TIMEOUT", "\"1s\"");
    env.set("AGM_SERVER__BODY_TIMEOUT", "\"2s\"");
    env.set("AGM_SERVER__IDLE_TIMEOUT", "\"2s\"");
    env.set("AGM_SERVER__MAX_CONNECTIONS", "512");
    env.import("ann").await;
    let mut server = env.serve(true).await;
    let addr = server.addr;

    // (a) 200 connections send half a header block and stop.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..200 {
        tasks.spawn(async move {
            let (mut stream, since) = open_with(addr, HALF_HEADER).await;
            wait_closed(&mut stream, since, HEADER_TIMEOUT + SLACK).await
        });
    }
    let mut open = 0;
    while let Some(ending) = tasks.join_next().await {
        if ending.unwrap() == Ending::Open {
            open += 1;
        }
    }
    assert_eq!(
        open,
        0,
        "{open} of 200 half-header connections were still open {:?} after their last byte (header_timeout 1s)\n{}",
        HEADER_TIMEOUT + SLACK,
        server.log_tail()
    );

    // (b) 50 chunked POSTs whose body never ends: half stall, half trickle a byte
    // every 300 ms (a per-read timeout alone would never fire on those).
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        tasks.spawn(async move {
            let (stream, since) = open_with(addr, ENDLESS_BODY_HEAD).await;
            let limit = BODY_TIMEOUT + SLACK;
            if i % 2 == 0 {
                let mut stream = stream;
                return (i, wait_closed(&mut stream, since, limit).await);
            }
            let (mut read, mut write) = stream.into_split();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            let mut tick = tokio::time::interval(Duration::from_millis(300));
            loop {
                let left = limit.saturating_sub(since.elapsed());
                if left.is_zero() {
                    return (i, Ending::Open);
                }
                tokio::select! {
                    r = read.read(&mut buf) => match r {
                        Ok(0) | Err(_) => {
                            return (i, Ending::Closed(
                                since.elapsed(),
                                String::from_utf8_lossy(&seen).into_owned(),
                            ));
                        }
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    },
                    _ = tick.tick() => {
                        // A failed write means the server is gone; the read sees it.
                        let _ = write.write_all(b"1\r\na\r\n").await;
                    }
                    _ = tokio::time::sleep(left) => return (i, Ending::Open),
                }
            }
        });
    }
    let mut problems = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (i, ending) = done.unwrap();
        let kind = if i % 2 == 0 { "stalled" } else { "trickling" };
        match ending {
            Ending::Open => problems.push(format!(
                "{kind} body {i}: still open after body_timeout 2s + 1s"
            )),
            Ending::Closed(_, seen) if !seen.is_empty() && !seen.starts_with("HTTP/1.1 408") => {
                problems.push(format!(
                    "{kind} body {i}: answered other than 408: {}",
                    seen.lines().next().unwrap_or("")
                ));
            }
            Ending::Closed(..) => {}
        }
    }
    assert!(
        problems.is_empty(),
        "endless request bodies were not cut off:\n{}\n{}",
        problems.join("\n"),
        server.log_tail()
    );

    // (d) An idle keep-alive connection is closed after idle_timeout.
    let (mut stream, _) = open_with(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n",
    )
    .await;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let read_deadline = Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&got).contains("\"status\"") {
        let n = tokio::time::timeout_at(read_deadline.into(), stream.read(&mut buf))
            .await
            .expect("/healthz answers on a keep-alive connection within 5 s")
            .unwrap();
        assert!(
            n > 0,
            "closed before /healthz answered: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    let idle_since = Instant::now();
    let ending = wait_closed(&mut stream, idle_since, IDLE_TIMEOUT + SLACK).await;
    assert!(
        matches!(ending, Ending::Closed(..)),
        "an idle keep-alive connection was still open {:?} after its answer (idle_timeout 2s)",
        IDLE_TIMEOUT + SLACK
    );

    // The server is fine afterwards.
    let health = client()
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(server.alive(), "agm serve died\n{}", server.log_tail());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_healthz_still_answers() {
    const CAP: usize = 64;
    const OPENED: usize = 150;
    let mut env = Env::new(Sim::new(SimConfig::default()), &["ann"]).await;
    // Long timeouts: only the cap may close these connections here.
    env.set("AGM_SERVER__HEADER_TIMEOUT", "\"30s\"");
    env.set("AGM_SERVER__BODY_TIMEOUT", "\"30s\"");
    env.set("AGM_SERVER__IDLE_TIMEOUT", "\"30s\"");
    env.set("AGM_SERVER__MAX_CONNECTIONS", &CAP.to_string());
    env.import("ann").await;
    let mut server = env.serve(true).await;
    let addr = server.addr;
    let pid = server.pid();
    let fds_before = open_fds(pid).expect("/proc/<pid>/fd is readable");

    // 150 connections: silent, half a header block, or a body that never ends.
    let started = Instant::now();
    let mut streams = Vec::new();
    for i in 0..OPENED {
        let bytes: &[u8] = match i % 3 {
            0 => b"",
            1 => HALF_HEADER,
            _ => ENDLESS_BODY_HEAD,
        };
        streams.push(open_with(addr, bytes).await.0);
    }
    let watch_until = Instant::now() + Duration::from_secs(4);
    let mut tasks = tokio::task::JoinSet::new();
    for mut stream in streams {
        tasks.spawn(async move {
            let since = Instant::now();
            wait_closed(&mut stream, since, watch_until - since).await
        });
    }

    // /healthz on new connections, while the slow ones hold the cap.
    for attempt in 0..3 {
        let asked = Instant::now();
        let answer = raw_request(
            addr,
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1",
            b"",
            Duration::from_secs(2),
        )
        .await;
        match answer {
            Ok(r) if r.status == 200 => {}
            other => panic!(
                "/healthz (attempt {attempt}, {:?} after opening {OPENED} slow connections) did not answer 200 within 2 s at max_connections {CAP}: {other:?}\n{}",
                asked - started,
                server.log_tail()
            ),
        }
    }
    let fds_during = open_fds(pid).unwrap_or(0);

    let mut closed = 0;
    while let Some(ending) = tasks.join_next().await {
        if matches!(ending.unwrap(), Ending::Closed(..)) {
            closed += 1;
        }
    }
    eprintln!(
        "connection cap: {closed} of {OPENED} slow connections closed by the server; fds {fds_before} before, {fds_during} during"
    );
    assert!(
        closed >= OPENED - CAP,
        "only {closed} of {OPENED} slow connections were closed at max_connections {CAP} (at least {} must be)",
        OPENED - CAP
    );
    assert!(
        fds_during <= fds_before + CAP + 8,
        "agm serve holds {fds_during} fds ({fds_before} before the slow connections) at max_connections {CAP}"
    );
    assert!(server.alive(), "agm serve died\n{}", server.log_tail());
    let ok = client()
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    server.stop().await;
}

// ---------------------------------------------------------------------------------
// Item 3: revoking the last client key does not open the gateway.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_last_key_keeps_the_gateway_closed() {
    let env = Env::new(Sim::new(SimConfig::default()), &["ann"]).await;
    env.import("ann").await;
    let created: Value =
        serde_json::from_str(&env.agm_ok(&["keys", "create", "--json"]).await).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let server = env.serve(true).await;
    let http = client();
    let url = format!("{}/v1/chat/completions", server.url);
    let body = chat_body("gemini-3-flash", "hello");
    let send = |key: Option<String>| {
        let mut request = http.post(&url).json(&body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        async move {
            let r = request.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    };
    assert_eq!(send(Some(secret.clone())).await.0, 200, "the key works");
    let (status, text) = send(None).await;
    assert_eq!(status, 401, "no key: {text}");

    let out = env.agm(&["keys", "revoke", &id]).await;
    assert!(out.status.success(), "revoke: {}", stderr(&out));
    let said = format!("{}{}", stdout(&out), stderr(&out)).to_lowercase();

    // Without a key: 401 at once and past the server's 2 s key cache. With the revoked
    // key: 401 once the cache has expired.
    let revoked_at = Instant::now();
    while revoked_at.elapsed() < Duration::from_millis(3500) {
        let past_cache = revoked_at.elapsed() > Duration::from_millis(2500);
        for key in [None, Some(secret.clone())] {
            if key.is_some() && !past_cache {
                continue;
            }
            let (status, text) = send(key.clone()).await;
            assert_eq!(
                status,
                401,
                "after revoking the last key, a request {} got {status}: {text}",
                if key.is_some() {
                    "with the revoked key"
                } else {
                    "without a key"
                }
            );
            error_shape(Api::OpenAi, &text, "401 after revoke");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    assert!(
        said.contains("last") && said.contains("agm keys create"),
        "`agm keys revoke` of the last key warns that every client is now refused until `agm keys create`: {said}"
    );

    // A restart keeps requiring keys: the store still holds the (revoked) key row.
    server.stop().await;
    let server = env.serve(false).await;
    let url = format!("{}/v1/chat/completions", server.url);
    let r = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(
        r.status(),
        401,
        "after a restart with only a revoked key, a request without a key is refused"
    );

    // `agm keys purge` deletes the revoked rows: a loopback gateway is keyless again.
    let out = env.agm(&["keys", "purge"]).await;
    assert!(
        out.status.success(),
        "agm keys purge: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let until = Instant::now() + Duration::from_secs(4);
    let mut last = 0;
    while Instant::now() < until {
        last = http
            .post(&url)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if last == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        last, 200,
        "after `agm keys purge` left no key rows, the loopback gateway serves without keys"
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------
// Item 4: the Origin/Host/Content-Type matrix of a keyless loopback gateway.
// ---------------------------------------------------------------------------------

struct Case {
    name: &'static str,
    path: &'static str,
    host: Option<String>,
    origin: Option<&'static str>,
    content_type: Option<&'static str>,
    key: Option<String>,
    want: u16,
}

async fn run_case(addr: std::net::SocketAddr, case: &Case) -> (u16, String) {
    let body = if case.path.starts_with("/v1beta") {
        gemini_body("matrix")
    } else if case.path == "/v1/messages" {
        anthropic_body("gemini-3-flash", "matrix")
    } else if case.path == "/v1/responses" {
        json!({"model": "gemini-3-flash", "input": "matrix"})
    } else {
        chat_body("gemini-3-flash", "matrix")
    };
    let mut head = format!("POST {} HTTP/1.1", case.path);
    if let Some(host) = &case.host {
        head.push_str(&format!("\r\nHost: {host}"));
    }
    if let Some(origin) = case.origin {
        head.push_str(&format!("\r\nOrigin: {origin}"));
    }
    if let Some(ct) = case.content_type {
        head.push_str(&format!("\r\nContent-Type: {ct}"));
    }
    if let Some(key) = &case.key {
        head.push_str(&format!(
            "\r\nAuthorization: Bearer {key}\r\nx-api-key: {key}"
        ));
    }
    let answer = raw_request(
        addr,
        &head,
        body.to_string().as_bytes(),
        Duration::from_secs(20),
    )
    .await
    .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    (answer.status, answer.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_gateway_refuses_foreign_hosts_origins_and_content_types() {
    let env = Env::new(Sim::new(SimConfig::default()), &["ann"]).await;
    env.import("ann").await;
    let server = env.serve(true).await;
    let addr = server.addr;
    let port = addr.port();
    let local = Some(format!("127.0.0.1:{port}"));
    let json_ct = Some("application/json");
    let chat = "/v1/chat/completions";
    let case = |name, host: Option<String>, origin, content_type, want| Case {
        name,
        path: chat,
        host,
        origin,
        content_type,
        key: None,
        want,
    };
    let mut cases = vec![
        case("loopback host, JSON", local.clone(), None, json_ct, 200),
        case(
            "Host localhost:port",
            Some(format!("localhost:{port}")),
            None,
            json_ct,
            200,
        ),
        case(
            "Host [::1]:port",
            Some(format!("[::1]:{port}")),
            None,
            json_ct,
            200,
        ),
        case(
            "Host 127.0.0.2",
            Some("127.0.0.2".into()),
            None,
            json_ct,
            200,
        ),
        case("no Host", None, None, json_ct, 200),
        case(
            "Host rebind.evil.example",
            Some("rebind.evil.example".into()),
            None,
            json_ct,
            403,
        ),
        case(
            "Host rebind.evil.example:port",
            Some(format!("rebind.evil.example:{port}")),
            None,
            json_ct,
            403,
        ),
        case(
            "Host localhost.evil.example",
            Some("localhost.evil.example".into()),
            None,
            json_ct,
            403,
        ),
        case(
            "Host 127.0.0.1.evil.example",
            Some("127.0.0.1.evil.example".into()),
            None,
            json_ct,
            403,
        ),
        case(
            "Origin https://evil.example",
            local.clone(),
            Some("https://evil.example"),
            json_ct,
            403,
        ),
        case("Origin null", local.clone(), Some("null"), json_ct, 403),
        case(
            "Origin http://localhost.evil.example",
            local.clone(),
            Some("http://localhost.evil.example"),
            json_ct,
            403,
        ),
        case(
            "Origin http://localhost:3000",
            local.clone(),
            Some("http://localhost:3000"),
            json_ct,
            200,
        ),
        case(
            "Origin http://127.0.0.1:5173",
            local.clone(),
            Some("http://127.0.0.1:5173"),
            json_ct,
            200,
        ),
        case(
            "Content-Type text/plain",
            local.clone(),
            None,
            Some("text/plain"),
            415,
        ),
        case(
            "Content-Type form",
            local.clone(),
            None,
            Some("application/x-www-form-urlencoded"),
            415,
        ),
        case(
            "Content-Type multipart",
            local.clone(),
            None,
            Some("multipart/form-data; boundary=x"),
            415,
        ),
        case("no Content-Type", local.clone(), None, None, 415),
        case(
            "application/json; charset=utf-8",
            local.clone(),
            None,
            Some("application/json; charset=utf-8"),
            200,
        ),
        case(
            "application/vnd.test+json",
            local.clone(),
            None,
            Some("application/vnd.test+json"),
            200,
        ),
    ];
    for (path, name) in [
        ("/v1/messages", "Anthropic, foreign Host"),
        (
            "/v1beta/models/gemini-3-flash:generateContent",
            "Gemini, foreign Host",
        ),
        ("/v1/responses", "Responses, foreign Host"),
    ] {
        cases.push(Case {
            name,
            path,
            host: Some("rebind.evil.example".into()),
            origin: None,
            content_type: json_ct,
            key: None,
            want: 403,
        });
    }
    cases.push(Case {
        name: "Gemini, foreign Origin",
        path: "/v1beta/models/gemini-3-flash:generateContent",
        host: local.clone(),
        origin: Some("https://evil.example"),
        content_type: json_ct,
        key: None,
        want: 403,
    });
    cases.push(Case {
        name: "Anthropic, text/plain",
        path: "/v1/messages",
        host: local.clone(),
        origin: None,
        content_type: Some("text/plain"),
        key: None,
        want: 415,
    });

    let mut wrong = Vec::new();
    for case in &cases {
        let (status, body) = run_case(addr, case).await;
        if status != case.want {
            wrong.push(format!(
                "{}: want {}, got {status}: {}",
                case.name,
                case.want,
                body.chars().take(300).collect::<String>()
            ));
            continue;
        }
        if status == 403 || status == 415 {
            let api = match case.path {
                "/v1/messages" => Api::Anthropic,
                p if p.starts_with("/v1beta") => Api::Google,
                _ => Api::OpenAi,
            };
            let (message, kind) = error_shape(api, &body, case.name);
            if status == 403 {
                let want_kind = match api {
                    Api::Anthropic => "permission_error",
                    Api::Google => "PERMISSION_DENIED",
                    Api::OpenAi => "permission",
                };
                assert!(
                    kind.contains(want_kind),
                    "{}: error type {kind}, want {want_kind}: {body}",
                    case.name
                );
                assert!(
                    message.contains("key"),
                    "{}: the 403 says to create a key: {message}",
                    case.name
                );
                if let Some(host) = case.host.as_deref().filter(|h| h.contains("evil")) {
                    let bare = host.split(':').next().unwrap();
                    assert!(
                        message.contains(bare),
                        "{}: the 403 names the host {bare}: {message}",
                        case.name
                    );
                }
            }
        }
    }
    // The issue's exact request: every hostile part at once.
    let combo = Case {
        name: "text/plain + evil Origin + rebind Host (the issue's request)",
        path: chat,
        host: Some("rebind.evil.example".into()),
        origin: Some("https://evil.example"),
        content_type: Some("text/plain"),
        key: None,
        want: 403,
    };
    let (status, body) = run_case(addr, &combo).await;
    if status != 403 && status != 415 {
        wrong.push(format!(
            "{}: want 403 or 415, got {status}: {body}",
            combo.name
        ));
    }
    // Probes are not subject to the rules.
    for probe in ["/healthz", "/readyz"] {
        let r = raw_request(
            addr,
            &format!("GET {probe} HTTP/1.1\r\nHost: rebind.evil.example\r\nOrigin: null"),
            b"",
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        if r.status != 200 {
            wrong.push(format!(
                "{probe} with a foreign Host: want 200, got {}",
                r.status
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "the keyless gateway's Host/Origin/Content-Type rules:\n{}",
        wrong.join("\n")
    );

    // With a key (created while the server runs), foreign pages are no threat: the
    // key is what they cannot have.
    let created: Value =
        serde_json::from_str(&env.agm_ok(&["keys", "create", "--json"]).await).unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let keyed = |name, origin, want, key: Option<String>| Case {
        name,
        path: chat,
        host: Some("rebind.evil.example".into()),
        origin,
        content_type: json_ct,
        key,
        want,
    };
    // Wait out the key cache: without a key, 401.
    let until = Instant::now() + Duration::from_secs(4);
    let mut status = 0;
    while Instant::now() < until {
        status = run_case(
            addr,
            &keyed("no key", None, 401, None).with_host(local.clone()),
        )
        .await
        .0;
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, 401, "a key exists now: requests need one");
    for case in [
        keyed(
            "keyed: foreign Host and Origin",
            Some("https://evil.example"),
            200,
            Some(secret.clone()),
        ),
        keyed(
            "keyed: Origin null",
            Some("null"),
            200,
            Some(secret.clone()),
        ),
        keyed("keyed: foreign Host, no key", None, 401, None),
    ] {
        let (status, body) = run_case(addr, &case).await;
        assert_eq!(status, case.want, "{}: {body}", case.name);
    }
    server.stop().await;
}

impl Case {
    fn with_host(mut self, host: Option<String>) -> Case {
        self.host = host;
        self
    }
}

// ---------------------------------------------------------------------------------
// Item 5: memory under concurrent large bodies.
// ---------------------------------------------------------------------------------

/// A ~`size` byte JSON body: `prefix`, then `item` repeated, then `suffix`.
fn repeated(prefix: &str, item: &str, last: &str, suffix: &str, size: usize) -> (Vec<u8>, usize) {
    let count = size / item.len();
    let mut body = Vec::with_capacity(size + 256);
    body.extend_from_slice(prefix.as_bytes());
    for _ in 0..count {
        body.extend_from_slice(item.as_bytes());
    }
    body.extend_from_slice(last.as_bytes());
    body.extend_from_slice(suffix.as_bytes());
    (body, count + 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_under_concurrent_huge_bodies() {
    let sim = Sim::new(SimConfig::default());
    // A context large enough for the legitimate 8 MB prompt.
    sim.set_models(
        SimModel::code_assist_defaults()
            .into_iter()
            .map(|mut m| {
                m.max_tokens = 16_000_000;
                m
            })
            .collect(),
    );
    let env = Env::new(sim, &["ann"]).await;
    env.import("ann").await;
    let server = env.serve(true).await;
    let pid = server.pid();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    // Warm up, then the baseline.
    let (status, _) = post(
        &http,
        &format!("{}/v1/messages", server.url),
        &anthropic_body("gemini-3-flash", "warm up"),
    )
    .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline = rss_bytes(pid).expect("VmRSS of agm serve");

    const SIZE: usize = 19 * 1024 * 1024;
    let msg = r#"{"role":"user","content":"hi"},"#;
    let last = r#"{"role":"user","content":"hi"}"#;
    let bodies = vec![
        (
            Api::Anthropic,
            "/v1/messages",
            repeated(
                r#"{"model":"gemini-3-flash","max_tokens":16,"messages":["#,
                msg,
                last,
                "]}",
                SIZE,
            ),
        ),
        (
            Api::OpenAi,
            "/v1/chat/completions",
            repeated(
                r#"{"model":"gemini-3-flash","messages":["#,
                msg,
                last,
                "]}",
                SIZE,
            ),
        ),
        (
            Api::OpenAi,
            "/v1/responses",
            repeated(
                r#"{"model":"gemini-3-flash","input":["#,
                msg,
                last,
                "]}",
                SIZE,
            ),
        ),
        (
            Api::Google,
            "/v1beta/models/gemini-3-flash:generateContent",
            repeated(
                r#"{"contents":["#,
                r#"{"role":"user","parts":[{"text":"hi"}]},"#,
                r#"{"role":"user","parts":[{"text":"hi"}]}"#,
                "]}",
                SIZE,
            ),
        ),
    ];

    let peak = Arc::new(AtomicU64::new(baseline));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Some(rss) = rss_bytes(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (api, path, (body, count)) in bodies {
        let http = http.clone();
        let url = format!("{}{path}", server.url);
        tasks.spawn(async move {
            let response = http
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            let outcome = match response {
                Ok(r) => Ok((r.status().as_u16(), r.text().await.unwrap_or_default())),
                Err(e) => Err(e.to_string()),
            };
            (api, path, count, outcome)
        });
    }
    let mut problems = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (api, path, count, outcome) = done.unwrap();
        match outcome {
            // 400 (too many messages) or 413 (the body's structure is over the
            // limit before it is parsed): either way a clear 4xx naming the limit.
            Ok((400 | 413, text)) => {
                let (message, _) = error_shape(api, &text, path);
                let lower = message.to_lowercase();
                if !["10000", "10,000", "10 000", "max_messages"]
                    .iter()
                    .any(|w| lower.contains(w))
                {
                    problems.push(format!(
                        "{path} ({count} messages): the 400 does not name the limit: {message}"
                    ));
                }
            }
            Ok((status, text)) => problems.push(format!(
                "{path} ({count} messages): want a 400/413 naming the message limit, got {status}: {}",
                text.chars().take(300).collect::<String>()
            )),
            Err(e) => problems.push(format!("{path}: no answer: {e}")),
        }
    }
    let took = started.elapsed();
    // RSS after: back under baseline + 100 MB within 3 s.
    let mut after = u64::MAX;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        after = rss_bytes(pid).unwrap_or(u64::MAX);
        if after <= baseline + 100 * MIB {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let peak = peak.load(Ordering::Relaxed);
    eprintln!(
        "memory: baseline {} MiB, peak {} MiB (+{} MiB) during 4 × 19 MiB bodies ({took:.1?}), {} MiB after",
        baseline / MIB,
        peak / MIB,
        peak.saturating_sub(baseline) / MIB,
        after / MIB
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        peak <= baseline + 400 * MIB,
        "peak RSS {} MiB exceeds baseline {} MiB + 400 MiB",
        peak / MIB,
        baseline / MIB
    );
    assert!(
        after <= baseline + 100 * MIB,
        "RSS {} MiB 3 s after the large bodies is over baseline {} MiB + 100 MiB: memory is not returned",
        after / MIB,
        baseline / MIB
    );

    // A legitimate 8 MB request (a few messages, big text) still works.
    let big = "lorem ipsum dolor sit amet ".repeat(8 * 1024 * 1024 / 27 / 3);
    let body = json!({"model": "gemini-3-flash", "max_tokens": 16, "messages": [
        {"role": "user", "content": big},
        {"role": "assistant", "content": "noted"},
        {"role": "user", "content": format!("{big} again")},
        {"role": "assistant", "content": "noted again"},
        {"role": "user", "content": format!("{big} and the question")},
    ]});
    let size = body.to_string().len();
    let (status, text) = post(&http, &format!("{}/v1/messages", server.url), &body).await;
    assert_eq!(
        status,
        200,
        "a legitimate {} MiB request: {}",
        size as u64 / MIB,
        text.chars().take(300).collect::<String>()
    );
    let after_big = rss_bytes(pid).unwrap_or(0);
    eprintln!(
        "memory: {} MiB after one legitimate {} MiB request",
        after_big / MIB,
        size as u64 / MIB
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_tool_and_body_limits_are_clear_client_errors() {
    let env = Env::new(Sim::new(SimConfig::default()), &["ann"]).await;
    env.import("ann").await;
    let server = env.serve(true).await;
    let http = client();
    let url = &server.url;
    env.sim.clear_requests();
    let many: Vec<Value> = (0..10_001)
        .map(|_| json!({"role": "user", "content": "hi"}))
        .collect();
    let tools: Vec<Value> = (0..1_001)
        .map(|i| json!({"name": format!("tool_{i}"), "description": "t", "input_schema": {"type": "object"}}))
        .collect();
    let declarations: Vec<Value> = (0..1_001)
        .map(|i| json!({"name": format!("tool_{i}"), "description": "t"}))
        .collect();
    let cases = [
        (
            Api::Anthropic,
            "/v1/messages",
            json!({"model": "gemini-3-flash", "max_tokens": 16, "messages": many}),
            "10000",
        ),
        (
            Api::OpenAi,
            "/v1/chat/completions",
            json!({"model": "gemini-3-flash", "messages": many}),
            "10000",
        ),
        (
            Api::Google,
            "/v1beta/models/gemini-3-flash:generateContent",
            json!({"contents": (0..10_001)
                .map(|_| json!({"role": "user", "parts": [{"text": "hi"}]}))
                .collect::<Vec<_>>()}),
            "10000",
        ),
        (
            Api::Anthropic,
            "/v1/messages",
            json!({"model": "gemini-3-flash", "max_tokens": 16, "tools": tools,
                   "messages": [{"role": "user", "content": "hi"}]}),
            "1000",
        ),
        (
            Api::Google,
            "/v1beta/models/gemini-3-flash:generateContent",
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                   "tools": [{"functionDeclarations": declarations}]}),
            "1000",
        ),
    ];
    let mut wrong = Vec::new();
    for (api, path, body, limit) in &cases {
        let what = if *limit == "1000" {
            "tools"
        } else {
            "messages"
        };
        let (status, text) = post(&http, &format!("{url}{path}"), body).await;
        if status != 400 {
            wrong.push(format!(
                "{path}: one over the {what} limit ({limit}) must be a 400, got {status}: {}",
                text.chars().take(200).collect::<String>()
            ));
            continue;
        }
        let (message, kind) = error_shape(*api, &text, path);
        if !message.replace([',', ' ', '_'], "").contains(limit) {
            wrong.push(format!(
                "{path}: the 400 does not name the {what} limit {limit}: {message}"
            ));
        }
        if kind != "invalid_request_error" && kind != "INVALID_ARGUMENT" {
            wrong.push(format!("{path}: error type {kind}: {text}"));
        }
    }
    let calls = generation_calls(&env).len();
    if calls > 0 {
        wrong.push(format!(
            "{calls} request(s) over the limits reached the sim"
        ));
    }
    assert!(
        wrong.is_empty(),
        "server.max_messages / max_tools:\n{}",
        wrong.join("\n")
    );

    // Over max_body (32 MiB by default): 413 in the client's shape.
    let filler = "x".repeat(33 * 1024 * 1024);
    for (api, path) in [
        (Api::Anthropic, "/v1/messages"),
        (Api::OpenAi, "/v1/chat/completions"),
        (Api::Google, "/v1beta/models/gemini-3-flash:generateContent"),
    ] {
        let body = if api == Api::Google {
            gemini_body(&filler)
        } else {
            anthropic_body("gemini-3-flash", &filler)
        };
        let response = http.post(format!("{url}{path}")).json(&body).send().await;
        // The server may answer before it has read the whole body and close: a
        // connection error on the client's side of the upload is then acceptable.
        if let Ok(response) = response {
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            assert_eq!(status, 413, "{path}: a 33 MiB body: {text}");
            error_shape(api, &text, path);
        }
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------
// Item 6: one damaged account does not take the gateway down.
// ---------------------------------------------------------------------------------

/// Changes one base64 character inside the sealed ciphertext: still well-formed,
/// no longer decryptable.
fn damage(sealed: &str) -> String {
    let mut chars: Vec<char> = sealed.chars().collect();
    let at = chars.len() - 10;
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_account_is_disabled_and_the_others_serve() {
    let env = Env::new(Sim::new(SimConfig::default()), &["ann", "bob"]).await;
    env.import("ann").await;
    env.import("bob").await;
    let ann_id = env.account_id("ann").await;
    {
        let conn = rusqlite::Connection::open(database(&env.data_dir)).unwrap();
        let email = format!("ann@{DOMAIN}");
        let sealed: String = conn
            .query_row(
                "SELECT refresh_token FROM accounts WHERE email = ?1",
                [&email],
                |r| r.get(0),
            )
            .unwrap();
        let changed = conn
            .execute(
                "UPDATE accounts SET refresh_token = ?1 WHERE email = ?2",
                [&damage(&sealed), &email],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }
    let server = env.serve(false).await;
    let http = client();
    let home = env.home.path().to_string_lossy().into_owned();
    let check_readyz = |status: u16, text: &str| {
        assert!(
            !text.contains('@') && !text.contains(&home) && !text.contains("secret.key"),
            "/readyz ({status}) leaks an e-mail or a path: {text}"
        );
    };
    let r = http
        .get(format!("{}/readyz", server.url))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    check_readyz(status, &r.text().await.unwrap());

    env.sim.clear_requests();
    let url = &server.url;
    let mut failures = Vec::new();
    for i in 0..6 {
        let (path, body) = match i % 3 {
            0 => (
                "/v1/messages".to_owned(),
                anthropic_body("gemini-3-flash", &format!("damaged {i}")),
            ),
            1 => (
                "/v1/chat/completions".to_owned(),
                chat_body("gemini-3-flash", &format!("damaged {i}")),
            ),
            _ => (
                "/v1beta/models/gemini-3-flash:generateContent".to_owned(),
                gemini_body(&format!("damaged {i}")),
            ),
        };
        let (status, text) = post(&http, &format!("{url}{path}"), &body).await;
        if status != 200 {
            failures.push(format!("{path}: {status} {text}"));
        }
        for leak in ["@", home.as_str(), "secret.key"] {
            assert!(
                !text.contains(leak),
                "{path}: the answer holds {leak:?}: {text}"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "with ann's sealed token damaged, requests must be served by bob:\n{}\n{}",
        failures.join("\n"),
        server.log_tail()
    );
    let accounts_used: Vec<Option<String>> = generation_calls(&env)
        .into_iter()
        .map(|r| r.account)
        .collect();
    assert!(
        accounts_used
            .iter()
            .all(|a| a.as_deref() == Some(&format!("bob@{DOMAIN}"))),
        "generation calls came from {accounts_used:?}; only bob can serve"
    );

    let r = http
        .get(format!("{}/readyz", server.url))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    check_readyz(status, &text);
    assert_eq!(status, 200, "bob is fine, so the gateway is ready: {text}");

    let accounts = env.accounts().await;
    let ann = accounts
        .iter()
        .find(|a| a["id"] == ann_id.as_str())
        .unwrap_or_else(|| panic!("ann is still listed: {accounts:?}"));
    assert_eq!(
        ann["state"], "disabled",
        "the damaged account is disabled: {ann}"
    );
    assert!(
        ann["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "with a reason: {ann}"
    );

    let audit: Value = serde_json::from_str(
        &env.agm_ok(&["audit", "--json", "--kind", "account", "--limit", "100"])
            .await,
    )
    .unwrap();
    let rows = audit.as_array().cloned().unwrap_or_default();
    let found = rows.iter().any(|row| {
        let text = format!("{} {}", row["subject"], row["detail"]).to_lowercase();
        ["decrypt", "seal", "damaged", "unreadable", "cannot be read"]
            .iter()
            .any(|w| text.contains(w))
    });
    assert!(
        found,
        "`agm audit` has an `account` entry for the undecryptable account: {rows:#?}"
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------
// Item 7: client error bodies never name pool accounts.
// ---------------------------------------------------------------------------------

/// Sends one request per client API (streaming and not) and returns each answer.
async fn every_api(http: &reqwest::Client, url: &str, tag: &str) -> Vec<(String, u16, String)> {
    let mut out = Vec::new();
    let mut stream_anthropic = anthropic_body("gemini-3-flash", tag);
    stream_anthropic["stream"] = json!(true);
    let mut stream_chat = chat_body("gemini-3-flash", tag);
    stream_chat["stream"] = json!(true);
    let requests = [
        ("/v1/messages", anthropic_body("gemini-3-flash", tag)),
        ("/v1/messages", stream_anthropic),
        ("/v1/chat/completions", chat_body("gemini-3-flash", tag)),
        ("/v1/chat/completions", stream_chat),
        (
            "/v1/responses",
            json!({"model": "gemini-3-flash", "input": tag}),
        ),
        (
            "/v1beta/models/gemini-3-flash:generateContent",
            gemini_body(tag),
        ),
        (
            "/v1beta/models/gemini-3-flash:streamGenerateContent?alt=sse",
            gemini_body(tag),
        ),
    ];
    for (path, body) in requests {
        let (status, text) = post(http, &format!("{url}{path}"), &body).await;
        out.push((path.to_owned(), status, text));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_never_name_pool_accounts() {
    let env = Env::new(Sim::new(SimConfig::default()), &["ann", "bob"]).await;
    env.import("ann").await;
    env.import("bob").await;
    env.agm_ok(&[
        "accounts",
        "disable",
        &format!("bob@{DOMAIN}"),
        "--reason",
        "hostile test",
    ])
    .await;
    let server = env.serve(true).await;
    let http = client();
    let mut answers = Vec::new();

    // Ann needs verification; bob is disabled.
    for method in [SimMethod::GenerateContent, SimMethod::StreamGenerateContent] {
        env.sim.script(
            Fault::validation_required(method, "https://accounts.google.com/verify-hostile")
                .for_account(&format!("ann@{DOMAIN}"))
                .always(),
        );
    }
    answers.extend(every_api(&http, &server.url, "verification").await);

    // Ann's refresh token is revoked (invalid_grant) and her access token expires.
    env.sim.clear_faults();
    env.sim.revoke_refresh_token(&format!("ann@{DOMAIN}"));
    env.sim.expire_access_tokens();
    answers.extend(every_api(&http, &server.url, "signed out").await);
    // And once more, now that every account is out of service.
    answers.extend(every_api(&http, &server.url, "none left").await);

    let mut leaks = Vec::new();
    let mut errors = 0;
    for (path, status, text) in &answers {
        if *status != 200 || text.contains("error") {
            errors += 1;
        }
        for needle in [format!("@{DOMAIN}"), "ann@".into(), "bob@".into()] {
            if text.contains(&needle) {
                leaks.push(format!("{path} ({status}) names {needle}: {text}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "client error bodies name pool accounts:\n{}",
        leaks.join("\n")
    );
    assert!(
        errors * 10 >= answers.len() * 9,
        "the scenario must make requests fail (only {errors} of {} did): {answers:#?}",
        answers.len()
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------
// Item 8: every stream ends at request_timeout, the Gemini alt=sse one included.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_streams_end_at_the_request_timeout() {
    // Three chunks with 30 s between them: the first, then a stall.
    let sim = Sim::new(SimConfig {
        stream_chunks: 3,
        stream_chunk_delay: Duration::from_secs(30),
        ..SimConfig::default()
    });
    let mut env = Env::new(sim, &["ann"]).await;
    env.set("AGM_SERVER__REQUEST_TIMEOUT", "\"3s\"");
    env.import("ann").await;
    let server = env.serve(true).await;
    const BOUND: Duration = Duration::from_millis(4500);

    let mut anthropic = anthropic_body("gemini-3-flash", "stall");
    anthropic["stream"] = json!(true);
    let mut chat = chat_body("gemini-3-flash", "stall");
    chat["stream"] = json!(true);
    let cases = [
        (
            "Gemini alt=sse",
            "/v1beta/models/gemini-3-flash:streamGenerateContent?alt=sse",
            gemini_body("stall"),
        ),
        (
            "Gemini JSON array",
            "/v1beta/models/gemini-3-flash:streamGenerateContent",
            gemini_body("stall"),
        ),
        ("Anthropic (control)", "/v1/messages", anthropic),
        ("OpenAI chat (control)", "/v1/chat/completions", chat),
    ];
    let mut tasks = tokio::task::JoinSet::new();
    for (name, path, body) in cases {
        let url = format!("{}{path}", server.url);
        tasks.spawn(async move {
            let http = reqwest::Client::new();
            let started = Instant::now();
            let mut response =
                tokio::time::timeout(Duration::from_secs(10), http.post(&url).json(&body).send())
                    .await
                    .unwrap_or_else(|_| panic!("{name}: no answer head within 10 s"))
                    .unwrap();
            let status = response.status().as_u16();
            let mut text = String::new();
            let mut first_chunk = None;
            let ended = loop {
                match tokio::time::timeout_at(
                    (started + Duration::from_secs(10)).into(),
                    response.chunk(),
                )
                .await
                {
                    Err(_) => break None,
                    Ok(Ok(Some(bytes))) => {
                        first_chunk.get_or_insert(started.elapsed());
                        text.push_str(&String::from_utf8_lossy(&bytes));
                    }
                    Ok(Ok(None)) | Ok(Err(_)) => break Some(started.elapsed()),
                }
            };
            (name, status, first_chunk, ended, text)
        });
    }
    let mut problems = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (name, status, first, ended, text) = done.unwrap();
        eprintln!("stall: {name}: status {status}, first chunk {first:?}, ended {ended:?}");
        // The JSON-array form may be collected before its head is sent: then the
        // deadline shows as a clean 504 in Google's shape, in time.
        if name == "Gemini JSON array" && status == 504 {
            let (_, kind) = error_shape(Api::Google, &text, name);
            assert_eq!(kind, "DEADLINE_EXCEEDED", "{name}: {text}");
            if ended.is_none_or(|t| t > BOUND) {
                problems.push(format!("{name}: a 504 after {ended:?}, past 3s + 1.5 s"));
            }
            continue;
        }
        if status != 200 {
            problems.push(format!("{name}: status {status}: {text}"));
            continue;
        }
        if !text.contains("Simulated") {
            problems.push(format!(
                "{name}: the first chunk never reached the client: {text}"
            ));
        }
        match ended {
            None => problems.push(format!(
                "{name}: still open after 10 s (request_timeout 3s): {text}"
            )),
            Some(t) if t > BOUND => problems.push(format!(
                "{name}: ended after {t:?}, past request_timeout 3s + 1.5 s"
            )),
            Some(_) if !text.to_lowercase().contains("error") => problems.push(format!(
                "{name}: ended at the deadline without an error event: {text}"
            )),
            Some(_) => {}
        }
    }
    assert!(
        problems.is_empty(),
        "streams with a stalled upstream:\n{}",
        problems.join("\n")
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------
// Item 9: the audit and the request log.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_log_has_a_row_per_request_and_no_prompts() {
    const MARKER: &str = "hostile-prompt-marker-7f3a9c";
    let env = Env::new(Sim::new(SimConfig::default()), &["ann"]).await;
    env.import("ann").await;
    let ann_id = env.account_id("ann").await;
    let server = env.serve(true).await;
    let http = client();
    let url = &server.url;
    let requests = [
        (
            "/v1/messages",
            anthropic_body("gemini-3-flash", &format!("{MARKER} one")),
        ),
        (
            "/v1/chat/completions",
            chat_body("gemini-3-flash", &format!("{MARKER} two")),
        ),
        (
            "/v1/responses",
            json!({"model": "gemini-3-flash", "input": format!("{MARKER} three")}),
        ),
        (
            "/v1beta/models/gemini-3-flash:generateContent",
            gemini_body(&format!("{MARKER} four")),
        ),
    ];
    for (path, body) in &requests {
        let (status, text) = post(&http, &format!("{url}{path}"), body).await;
        assert_eq!(status, 200, "{path}: {text}");
    }

    // The log is written in batches within about a second.
    let until = Instant::now() + Duration::from_secs(4);
    let mut rows = Vec::new();
    let mut last_output = String::new();
    while Instant::now() < until {
        let out = env.agm(&["logs", "--json", "--limit", "50"]).await;
        last_output = format!("{}{}", stdout(&out), stderr(&out));
        if out.status.success()
            && let Ok(Value::Array(listed)) = serde_json::from_str::<Value>(&stdout(&out))
        {
            rows = listed;
            if rows.len() >= requests.len() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        rows.len(),
        requests.len(),
        "`agm logs --json` lists one row per request: {last_output}"
    );
    for row in &rows {
        for key in ["status", "attempts", "latency_ms", "account_id"] {
            assert!(
                row.get(key).is_some_and(|v| !v.is_null()),
                "request log row without {key}: {row}"
            );
        }
        // The tokens Google (the sim) counted, never left at 0.
        for key in ["input_tokens", "output_tokens"] {
            assert!(
                row[key].as_u64().is_some_and(|n| n > 0),
                "request log row without {key}: {row}"
            );
        }
        assert!(
            ["route", "path"]
                .iter()
                .any(|k| row[k].as_str().is_some_and(|s| !s.is_empty())),
            "request log row without a route: {row}"
        );
        assert!(
            ["client_model", "model"]
                .iter()
                .any(|k| row[k] == "gemini-3-flash"),
            "request log row without the client model: {row}"
        );
        assert_eq!(row["status"], 200, "{row}");
        assert_eq!(row["account_id"], ann_id.as_str(), "{row}");
        assert!(row["attempts"].as_u64().is_some_and(|n| n >= 1), "{row}");
        assert!(
            !row.to_string().contains(MARKER),
            "the request log holds the prompt: {row}"
        );
    }
    assert!(
        !contains(&env.data_dir_bytes(), MARKER),
        "the data dir (agm.db, its WAL) holds prompt text"
    );

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_and_account_changes_are_audited() {
    let env = Env::new(Sim::new(SimConfig::default()), &["ann"]).await;
    env.import("ann").await;
    let ann_id = env.account_id("ann").await;
    let server = env.serve(true).await;

    // Key creation and revocation are audited.
    let created: Value =
        serde_json::from_str(&env.agm_ok(&["keys", "create", "--json"]).await).unwrap();
    let id = created["id"].as_str().unwrap();
    env.agm_ok(&["keys", "revoke", id]).await;
    let audit: Value =
        serde_json::from_str(&env.agm_ok(&["audit", "--json", "--kind", "key"]).await).unwrap();
    let keys = audit.as_array().cloned().unwrap_or_default();
    assert!(
        keys.len() >= 2,
        "`agm keys create` and `agm keys revoke` each write a `key` audit entry: {keys:#?}"
    );
    let secret = created["secret"].as_str().unwrap();
    assert!(
        !audit.to_string().contains(secret),
        "the audit holds a key's secret"
    );

    // CLI disable and enable are audited as `account` entries.
    let count_account = || async {
        let audit: Value = serde_json::from_str(
            &env.agm_ok(&["audit", "--json", "--kind", "account", "--limit", "200"])
                .await,
        )
        .unwrap();
        audit.as_array().map_or(0, Vec::len)
    };
    let before = count_account().await;
    env.agm_ok(&["accounts", "disable", &ann_id]).await;
    env.agm_ok(&["accounts", "enable", &ann_id]).await;
    let after = count_account().await;
    assert!(
        after >= before + 2,
        "`agm accounts disable` and `enable` each write an `account` audit entry ({before} before, {after} after)"
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------
// Item 10: two servers cannot share one data dir.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_data_dir_exits() {
    let env = Env::new(Sim::new(SimConfig::default()), &["ann"]).await;
    env.import("ann").await;
    let mut first = env.serve(true).await;
    let mut second = env.spawn_serve(free_port()).await;
    let status = tokio::time::timeout(Duration::from_secs(10), second.child.wait())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "a second agm serve on the same data dir was still running after 10 s\n{}",
                second.log_tail()
            )
        })
        .unwrap();
    let log = std::fs::read_to_string(&second.log_path).unwrap_or_default();
    assert_eq!(status.code(), Some(1), "exit 1: {log}");
    assert!(
        log.contains("another agm serve"),
        "the second server says another agm serve uses the data dir: {log}"
    );
    assert!(
        first.alive(),
        "the first server keeps running\n{}",
        first.log_tail()
    );
    // Other commands still work beside the running server.
    assert_eq!(env.accounts().await.len(), 1);
    let r = client()
        .get(format!("{}/readyz", first.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    first.stop().await;
}

// ---------------------------------------------------------------------------------
// Fuzzed model names and paths against the binary.
// ---------------------------------------------------------------------------------

/// A random model name: 1–300 bytes of letters, controls, `%0d%0a`, unicode...
fn fuzz_name(rng: &mut Rng) -> Vec<u8> {
    const PIECES: &[&str] = &[
        "\r",
        "\n",
        "\0",
        "\t",
        "%0d%0a",
        "%0D%0A",
        "%00",
        " ",
        ":",
        "/",
        "?",
        "#",
        "\"",
        "\\",
        "..",
        "models/",
        "é",
        "模型",
        "\u{202e}",
        "🦀",
        "\u{7f}",
        "X-Evil: 1",
        "gemini-2.5-flash",
        "@",
        "+",
        "{",
        "}",
        "%",
        "'",
        "<",
        ">",
    ];
    let target = 1 + rng.below(300);
    let mut out = Vec::new();
    if rng.below(3) == 0 {
        out.extend_from_slice(b"gemini-2.5-flash");
    }
    while out.len() < target {
        match rng.below(4) {
            0 | 1 => {
                let c = b"abcdefghijklmnopqrstuvwxyz0123456789-._"[rng.below(39)];
                out.push(c);
            }
            2 => out.extend_from_slice(PIECES[rng.below(PIECES.len())].as_bytes()),
            _ => out.push(rng.below(256) as u8),
        }
    }
    out.truncate(target.max(1));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_model_names_never_break_the_gateway() {
    const NAMES: usize = 300;
    const CONCURRENCY: usize = 8;
    let mut env = Env::new(Sim::new(SimConfig::default()), &["ann", "cas"]).await;
    // A code-assist account first in the pool order: its User-Agent carries the model.
    env.set(
        "AGM_ROUTING__GEMINI_POOL_ORDER",
        r#"["code-assist", "antigravity"]"#,
    );
    env.import("ann").await;
    env.import_code_assist("cas").await;
    let server = env.serve(true).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut rng = Rng::new(0x00ad_5eed);
    let methods = [
        ":generateContent",
        ":streamGenerateContent?alt=sse",
        ":streamGenerateContent",
        ":countTokens",
        "",
        ":bogus",
    ];
    let mut jobs = Vec::new();
    for i in 0..NAMES {
        let name = fuzz_name(&mut rng);
        let method = methods[rng.below(methods.len())];
        let prefix = if rng.below(4) == 0 { "models%2F" } else { "" };
        jobs.push((
            format!(
                "{}/v1beta/models/{prefix}{}{method}",
                server.url,
                percent_encode(&name)
            ),
            gemini_body("fuzz"),
        ));
        let text_name = String::from_utf8_lossy(&name).into_owned();
        let (path, body) = match i % 3 {
            0 => ("/v1/messages", anthropic_body(&text_name, "fuzz")),
            1 => ("/v1/chat/completions", chat_body(&text_name, "fuzz")),
            _ => (
                "/v1/responses",
                json!({"model": text_name, "input": "fuzz"}),
            ),
        };
        jobs.push((format!("{}{path}", server.url), body));
    }
    let started = Instant::now();
    let mut problems = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut jobs = jobs.into_iter();
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < CONCURRENCY {
            let Some((url, body)) = jobs.next() else {
                break;
            };
            let http = http.clone();
            running.spawn(async move {
                let outcome = match http.post(&url).json(&body).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        match r.text().await {
                            Ok(text) => Ok((status, text)),
                            Err(e) => Err(format!("{status}, body: {e}")),
                        }
                    }
                    Err(e) => Err(e.to_string()),
                };
                (url, body["model"].clone(), outcome)
            });
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        let (url, model, outcome) = done.unwrap();
        match outcome {
            Ok((status, text)) => {
                *statuses.entry(status).or_default() += 1;
                if status >= 500 {
                    problems.push(format!(
                        "{status} for {url} model {model}: {}",
                        text.chars().take(200).collect::<String>()
                    ));
                }
            }
            Err(e) => problems.push(format!("no answer for {url} model {model}: {e}")),
        }
    }
    eprintln!(
        "fuzz: {} requests in {:.1?}, statuses {statuses:?}",
        NAMES * 2,
        started.elapsed()
    );
    assert!(
        problems.is_empty(),
        "{} fuzzed requests broke the rules (5xx or no answer within 10 s):\n{}",
        problems.len(),
        problems
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );

    let (status, text) = post(
        &http,
        &format!("{}/v1/messages", server.url),
        &anthropic_body("gemini-2.5-flash", "after the fuzz"),
    )
    .await;
    assert_eq!(status, 200, "a valid request after the fuzz: {text}");
    let (status, text) = post(
        &http,
        &format!(
            "{}/v1beta/models/gemini-2.5-flash:generateContent",
            server.url
        ),
        &gemini_body("after the fuzz"),
    )
    .await;
    assert_eq!(status, 200, "a valid Gemini request after the fuzz: {text}");
    let open = open_breakers(&server.url).await;
    assert!(
        open.is_empty(),
        "breakers not closed after the fuzz: {open:?}"
    );
    server.stop().await;
}
