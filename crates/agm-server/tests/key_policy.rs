#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Per-client-key policy at the edge: each limit refuses in the calling API's own error
//! shape, before any upstream call, counted in this process or in the real Redis at
//! 127.0.0.1:6379 (two servers sharing it share the limit).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use agm_server::app::AppState;
use agm_server::http::key_policy::KeyLimits;
use agm_sim::{Fault, FaultAction, ScriptedReply, SimMethod};
use agm_store::KeyPolicy;
use common::{Harness, serve_state, start, start_shaped};
use serde_json::{Value, json};

/// The Redis the tests share (this machine kind and CI start one there), or
/// `AGM_TEST_REDIS_URL`, as the cluster tests read it.
fn redis_url() -> String {
    std::env::var("AGM_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The three API shapes: (path, body, where the message is).
#[derive(Clone, Copy)]
enum Api {
    Anthropic,
    OpenAi,
    Gemini,
}

const APIS: [Api; 3] = [Api::Anthropic, Api::OpenAi, Api::Gemini];

impl Api {
    fn path(self) -> &'static str {
        match self {
            Api::Anthropic => "/v1/messages",
            Api::OpenAi => "/v1/chat/completions",
            Api::Gemini => "/v1beta/models/gemini-2.5-flash:generateContent",
        }
    }

    fn body(self) -> Value {
        match self {
            Api::Anthropic => json!({"model": "gemini-2.5-flash", "max_tokens": 50,
                "messages": [{"role": "user", "content": "hi"}]}),
            Api::OpenAi => json!({"model": "gemini-2.5-flash",
                "messages": [{"role": "user", "content": "hi"}]}),
            Api::Gemini => json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
        }
    }

    /// The error message, checked to be in this API's shape.
    fn message(self, body: &Value) -> String {
        let message = match self {
            Api::Anthropic => {
                assert_eq!(body["type"], "error", "{body}");
                &body["error"]["message"]
            }
            Api::OpenAi => {
                assert!(body["error"]["type"].is_string(), "{body}");
                &body["error"]["message"]
            }
            Api::Gemini => {
                assert!(body["error"]["code"].is_number(), "{body}");
                assert!(body["error"]["status"].is_string(), "{body}");
                &body["error"]["message"]
            }
        };
        message.as_str().unwrap().to_owned()
    }
}

async fn send(url: &str, secret: &str, api: Api) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}{}", api.path()))
        .header("x-api-key", secret)
        .header("authorization", format!("Bearer {secret}"))
        .header("x-goog-api-key", secret)
        .json(&api.body())
        .send()
        .await
        .unwrap()
}

/// A 429 in `api`'s shape whose message has `says`; returns its Retry-After.
async fn refused(response: reqwest::Response, api: Api, status: u16, says: &str) -> Option<u64> {
    assert_eq!(response.status(), status);
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    let body: Value = response.json().await.unwrap();
    let message = api.message(&body);
    assert!(message.contains(says), "{message}");
    retry
}

async fn key(h: &Harness, policy: KeyPolicy) -> (String, String) {
    let (key, secret) = h
        .state
        .store
        .create_client_key_with("ci", &policy)
        .await
        .unwrap();
    (key.id, secret)
}

fn generations(h: &Harness) -> usize {
    h.sim.count(SimMethod::GenerateContent)
}

/// `allowed` requests of `api` with `secret` through `urls` (in turn) are served, the
/// next is a 429 saying `says` before any upstream call; returns its Retry-After.
async fn over_limit(
    h: &Harness,
    urls: &[&str],
    secret: &str,
    api: Api,
    allowed: usize,
    says: &str,
) -> u64 {
    for i in 0..allowed {
        let url = urls[i % urls.len()];
        assert_eq!(send(url, secret, api).await.status(), 200, "request {i}");
    }
    let calls = generations(h);
    let url = urls[allowed % urls.len()];
    let retry = refused(send(url, secret, api).await, api, 429, says)
        .await
        .unwrap();
    assert_eq!(generations(h), calls, "refused before any upstream call");
    retry
}

#[tokio::test]
async fn requests_per_minute_in_every_shape() {
    for api in APIS {
        let h = start().await;
        let policy = KeyPolicy {
            rpm: Some(2),
            ..KeyPolicy::default()
        };
        let (_, secret) = key(&h, policy).await;
        let says = "key 'ci' is over its 2 requests per minute; retry after ";
        let retry = over_limit(&h, &[&h.url], &secret, api, 2, says).await;
        assert!((1..=60).contains(&retry), "{retry}");
    }
}

#[tokio::test]
async fn the_daily_request_budget_in_every_shape() {
    for api in APIS {
        let h = start().await;
        let policy = KeyPolicy {
            daily_requests: Some(3),
            ..KeyPolicy::default()
        };
        let (_, secret) = key(&h, policy).await;
        let says = "key 'ci' has used its daily budget of 3 requests (UTC day); retry after ";
        let retry = over_limit(&h, &[&h.url], &secret, api, 3, says).await;
        assert!(retry > 0 && retry <= 86_400, "{retry}");
    }
}

/// Waits until the store holds `n` request-log rows; returns the newest first.
async fn logged(h: &Harness, n: usize) -> Vec<agm_store::RequestLogRecord> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let rows = h.state.store.list_request_log(None, 100).await.unwrap();
        if rows.len() >= n {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "{} rows logged, not {n}",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_refusal_is_logged_with_the_key() {
    let h = start().await;
    let (id, secret) = key(
        &h,
        KeyPolicy {
            daily_requests: Some(1),
            ..KeyPolicy::default()
        },
    )
    .await;
    assert_eq!(send(&h.url, &secret, Api::Anthropic).await.status(), 200);
    let retry = refused(
        send(&h.url, &secret, Api::Anthropic).await,
        Api::Anthropic,
        429,
        "key 'ci' has used its daily budget of 1 requests (UTC day); retry after ",
    )
    .await
    .unwrap();
    assert!(retry > 0 && retry <= 86_400, "{retry}");
    let rows = logged(&h, 2).await;
    let refused = &rows[0].entry;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.key_id.as_deref(), Some(id.as_str()));
    assert_eq!(refused.error_class.as_deref(), Some("key-limit"));
    // And counted by key name.
    let metrics = h.get_text("/metrics").await;
    let line = |parts: &[&str]| {
        metrics
            .lines()
            .any(|l| parts.iter().all(|p| l.contains(p)) && !l.ends_with(" 0"))
    };
    assert!(
        line(&[
            "agm_key_rejections_total{",
            "key=\"ci\"",
            "limit=\"daily_requests\""
        ]),
        "{metrics}"
    );
    assert!(
        line(&["agm_key_requests_total{", "key=\"ci\"", "status=\"429\""]),
        "{metrics}"
    );
    assert!(
        line(&["agm_key_requests_total{", "key=\"ci\"", "status=\"200\""]),
        "{metrics}"
    );
    assert!(
        line(&["agm_key_tokens_total{", "key=\"ci\"", "direction=\"out\""]),
        "{metrics}"
    );
}

/// Every generation answers with 110 tokens (80 in, 30 out).
fn hundred_and_ten_tokens(h: &Harness) {
    h.sim.script(
        Fault::reply(
            SimMethod::GenerateContent,
            ScriptedReply::text("ok").with_usage(json!({
                "promptTokenCount": 80, "candidatesTokenCount": 30, "totalTokenCount": 110
            })),
        )
        .always(),
    );
}

/// With a budget of 200 tokens, answers of 110 tokens through `urls`: two are served
/// (the second crosses the budget), the third is refused once their tokens are counted
/// (when each answer has ended).
async fn token_budget(h: &Harness, urls: &[&str], api: Api) {
    hundred_and_ten_tokens(h);
    let policy = KeyPolicy {
        daily_tokens: Some(200),
        ..KeyPolicy::default()
    };
    let (_, secret) = key(h, policy).await;
    let says = "key 'ci' has used its daily budget of 200 tokens (UTC day); retry after ";
    for (i, url) in urls.iter().cycle().take(2).enumerate() {
        assert_eq!(send(url, &secret, api).await.status(), 200, "request {i}");
        // Its tokens count once its answer has ended, as its request-log row is
        // written (the row comes after the count, and is written in batches).
        logged(h, i + 1).await;
    }
    let url = urls[2 % urls.len()];
    refused(send(url, &secret, api).await, api, 429, says).await;
}

#[tokio::test]
async fn the_daily_token_budget_counts_what_google_reported_in_every_shape() {
    for api in APIS {
        let h = start().await;
        token_budget(&h, &[&h.url], api).await;
    }
}

/// With a key limited to one request at a time, a slow request sent to `first` makes
/// one sent to `second` meanwhile a 429; once it has ended, `second` serves again.
async fn one_at_a_time(h: &Harness, first: &str, second: &str, api: Api) {
    h.sim.script(Fault::new(
        SimMethod::GenerateContent,
        FaultAction::Delay(Duration::from_millis(800)),
    ));
    let (_, secret) = key(
        h,
        KeyPolicy {
            concurrency: Some(1),
            daily_tokens: Some(1_000_000),
            ..KeyPolicy::default()
        },
    )
    .await;
    let before = generations(h);
    let slow = {
        let (url, secret) = (first.to_owned(), secret.clone());
        tokio::spawn(async move { send(&url, &secret, api).await.status() })
    };
    // In flight once Google (the sim, which then waits) has it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while generations(h) == before {
        assert!(
            Instant::now() < deadline,
            "the slow request never reached the sim"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    refused(
        send(second, &secret, api).await,
        api,
        429,
        "key 'ci' already has 1 requests in flight",
    )
    .await;
    assert_eq!(slow.await.unwrap(), 200);
    // The release reaches Redis just after the answer.
    let deadline = Instant::now() + Duration::from_secs(5);
    while send(second, &secret, api).await.status() != 200 {
        assert!(Instant::now() < deadline, "the slot was never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn concurrency_counts_a_request_until_its_answer_ends_in_every_shape() {
    for api in APIS {
        let h = start().await;
        one_at_a_time(&h, &h.url, &h.url, api).await;
    }
}

/// A key with `policy` is refused with `status` and `says` in every API's shape,
/// before any upstream call. Returns the server and the key's secret.
async fn refused_everywhere(policy: KeyPolicy, status: u16, says: &str) -> (Harness, String) {
    let h = start().await;
    let (_, secret) = key(&h, policy).await;
    for api in APIS {
        refused(send(&h.url, &secret, api).await, api, status, says).await;
    }
    assert_eq!(generations(&h), 0);
    (h, secret)
}

#[tokio::test]
async fn an_expired_key_is_refused_with_401_in_every_shape() {
    let policy = KeyPolicy {
        expires_at: Some(time::OffsetDateTime::now_utc() - time::Duration::hours(1)),
        ..KeyPolicy::default()
    };
    refused_everywhere(policy, 401, "key 'ci' expired at ").await;
}

#[tokio::test]
async fn models_outside_the_allow_list_are_refused_with_403() {
    let policy = KeyPolicy {
        models: vec!["claude-*".into()],
        ..KeyPolicy::default()
    };
    let (h, secret) = refused_everywhere(
        policy,
        403,
        "key 'ci' may not use model 'gemini-2.5-flash'; it may use: claude-*",
    )
    .await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi"}]});
    let allowed = h.post_with_key("/v1/messages", &secret, &body).await;
    assert_eq!(allowed.status(), 200);
    // The model lists show the key only what it may use.
    for path in ["/v1/models", "/v1beta/models"] {
        let listed = h.get_json_with_key(path, &secret).await;
        let names: Vec<&str> = listed["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        assert!(!names.is_empty(), "{listed}");
        assert!(
            names.iter().all(|n| n.starts_with("models/claude-")),
            "{path}: {names:?}"
        );
    }
}

/// A limit the key had not reached stays open: a key without limits is never counted.
#[tokio::test]
async fn keys_without_limits_are_not_counted() {
    let h = start().await;
    let (_, secret) = key(&h, KeyPolicy::default()).await;
    for _ in 0..5 {
        assert_eq!(send(&h.url, &secret, Api::OpenAi).await.status(), 200);
    }
}

/// Redis keys under a prefix of this test's own, deleted at the end.
struct RedisPrefix(String);

impl RedisPrefix {
    fn new() -> RedisPrefix {
        RedisPrefix(format!("agm-test-{}", uuid::Uuid::new_v4().simple()))
    }

    fn limits(&self) -> KeyLimits {
        KeyLimits::redis(&redis_url(), &self.0).unwrap()
    }

    async fn clean(&self) {
        let client = redis::Client::open(redis_url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.0))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
}

/// A second server on the same store and config as `h`, counting with `limits`.
async fn replica(h: &Harness, limits: KeyLimits) -> String {
    let state = AppState::new(h.state.config.clone(), h.state.store.clone())
        .unwrap()
        .with_key_limits(limits);
    serve_state(Arc::new(state)).await
}

/// A server counting with `limits`.
async fn counting_with(limits: KeyLimits) -> Harness {
    start_shaped(Default::default(), |_| {}, |s| s.with_key_limits(limits)).await
}

/// Two servers on one store, sharing Redis under `prefix`; the second's URL.
async fn sharing_redis(prefix: &RedisPrefix) -> (Harness, String) {
    let h = counting_with(prefix.limits()).await;
    let other = replica(&h, prefix.limits()).await;
    (h, other)
}

#[tokio::test]
async fn two_servers_sharing_redis_share_a_keys_requests_per_minute() {
    let prefix = RedisPrefix::new();
    let (h, other) = sharing_redis(&prefix).await;
    let policy = KeyPolicy {
        rpm: Some(3),
        ..KeyPolicy::default()
    };
    let (_, secret) = key(&h, policy).await;
    let says = "key 'ci' is over its 3 requests per minute";
    over_limit(&h, &[&h.url, &other], &secret, Api::Anthropic, 3, says).await;
    // Refused on both.
    refused(
        send(&h.url, &secret, Api::Gemini).await,
        Api::Gemini,
        429,
        says,
    )
    .await;
    prefix.clean().await;
}

#[tokio::test]
async fn two_servers_sharing_redis_share_a_keys_daily_budgets() {
    let prefix = RedisPrefix::new();
    let (h, other) = sharing_redis(&prefix).await;
    let policy = KeyPolicy {
        daily_requests: Some(3),
        ..KeyPolicy::default()
    };
    let (_, secret) = key(&h, policy).await;
    let says = "key 'ci' has used its daily budget of 3 requests (UTC day)";
    over_limit(&h, &[&h.url, &other], &secret, Api::OpenAi, 3, says).await;
    prefix.clean().await;

    let prefix = RedisPrefix::new();
    let (h, other) = sharing_redis(&prefix).await;
    token_budget(&h, &[&h.url, &other], Api::Gemini).await;
    prefix.clean().await;
}

#[tokio::test]
async fn concurrency_leases_are_shared_through_redis() {
    let prefix = RedisPrefix::new();
    let (h, other) = sharing_redis(&prefix).await;
    one_at_a_time(&h, &h.url, &other, Api::OpenAi).await;
    prefix.clean().await;
}

/// A replica that died mid-request leaves its lease in Redis: it holds the slot only
/// until it expires (leases are renewed while their request runs, never after).
#[tokio::test]
async fn a_dead_replicas_lease_expires() {
    let prefix = RedisPrefix::new();
    let h = counting_with(prefix.limits()).await;
    let policy = KeyPolicy {
        concurrency: Some(1),
        ..KeyPolicy::default()
    };
    let (id, secret) = key(&h, policy).await;
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("ZADD")
        .arg(format!("{}:key:{id}:leases", prefix.0))
        .arg(i64::try_from(now_ms).unwrap() + 2_000)
        .arg("a-dead-replicas-request")
        .query_async(&mut conn)
        .await
        .unwrap();
    refused(
        send(&h.url, &secret, Api::Anthropic).await,
        Api::Anthropic,
        429,
        "already has 1 requests in flight",
    )
    .await;
    let expired =
        std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(now_ms).unwrap() + 2_100);
    if let Ok(wait) = expired.duration_since(std::time::SystemTime::now()) {
        tokio::time::sleep(wait).await;
    }
    assert_eq!(send(&h.url, &secret, Api::Anthropic).await.status(), 200);
    prefix.clean().await;
}

#[tokio::test]
async fn without_redis_each_server_enforces_the_limits_itself() {
    let h = counting_with(KeyLimits::redis("redis://127.0.0.1:1", "agm-test").unwrap()).await;
    let (_, secret) = key(
        &h,
        KeyPolicy {
            rpm: Some(1),
            ..KeyPolicy::default()
        },
    )
    .await;
    assert_eq!(send(&h.url, &secret, Api::Gemini).await.status(), 200);
    refused(
        send(&h.url, &secret, Api::Gemini).await,
        Api::Gemini,
        429,
        "key 'ci' is over its 1 requests per minute",
    )
    .await;
}
