#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The console's key limits (`/api/keys`) and its Usage page (`/api/usage`, JSON and
//! CSV, and `/ui/usage`) against the sim.

mod common;

use std::time::{Duration, Instant};

use common::console::sign_in;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn keys_are_created_with_limits_and_their_limits_changed() {
    let h = common::start().await;
    let console = sign_in(&h).await;
    let (status, created) = console
        .send(
            Method::POST,
            "/api/keys",
            Some(
                json!({"name": "ci", "limits": {"models": "gemini-*", "rpm": 60,
                "daily_tokens": 5000, "expires": "2027-01-01"}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(
        created["limits"],
        json!({"models": ["gemini-*"], "rpm": 60, "concurrency": null, "daily_tokens": 5000,
            "daily_requests": null, "expires_at": "2027-01-01T00:00:00Z"})
    );
    let id = created["id"].as_str().unwrap().to_owned();

    // Only the limits given change; 0 and never clear.
    let (status, changed) = console
        .send(
            Method::PATCH,
            &format!("/api/keys/{id}"),
            Some(json!({"limits": {"rpm": 0, "concurrency": 3, "expires": "never"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    let listed = console.get("/api/keys").await;
    let key = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        key["limits"],
        json!({"models": ["gemini-*"], "rpm": null, "concurrency": 3, "daily_tokens": 5000,
            "daily_requests": null, "expires_at": null})
    );
    assert_eq!(key["limits_text"], "gemini-*; 3 at once; 5000 tokens/day");
    let stored = h.state.store.list_client_keys().await.unwrap();
    assert_eq!(stored[0].policy.concurrency, Some(3));

    // Wrong values are 400s that say why; unknown keys 404.
    for (body, says) in [
        (json!({"limits": {"expires": "soon"}}), "2027-01-01"),
        (json!({"limits": {"models": "a b"}}), "model pattern"),
        (json!({"limits": {"rmp": 1}}), "rmp"),
    ] {
        let (status, answer) = console
            .send(Method::PATCH, &format!("/api/keys/{id}"), Some(body))
            .await;
        assert!(status.is_client_error(), "{answer}");
        assert!(answer.to_string().contains(says), "{answer}");
    }
    let (status, _) = console
        .send(
            Method::PATCH,
            "/api/keys/00000000",
            Some(json!({"limits": {"rpm": 1}})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let audit = console.get("/api/audit?limit=20").await.to_string();
    assert!(
        audit.contains("limits set to gemini-*; 3 at once"),
        "{audit}"
    );
}

/// Requests through the gateway, counted per key on `/api/usage`, as JSON and CSV.
#[tokio::test]
async fn usage_counts_requests_per_key_and_downloads_as_csv() {
    let h = common::start().await;
    let console = sign_in(&h).await;
    let (key, secret) = h.state.store.create_client_key("laptop").await.unwrap();
    for _ in 0..3 {
        let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}]});
        let response = h.post_with_key("/v1/messages", &secret, &body).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let usage = loop {
        let usage = console
            .get("/api/usage?since=1h&bucket=all&group=key")
            .await;
        if usage["rows"][0]["requests"] == 3 {
            break usage;
        }
        assert!(Instant::now() < deadline, "not counted: {usage}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let row = &usage["rows"][0];
    assert_eq!(row["group"], key.id.as_str(), "{usage}");
    assert_eq!(row["name"], "laptop");
    assert_eq!(row["successes"], 3);
    assert!(row["input_tokens"].as_u64().unwrap() > 0, "{usage}");
    assert!(row["output_tokens"].as_u64().unwrap() > 0, "{usage}");
    assert_eq!(usage["bucket"], "all");

    // The request log names the key and shows the tokens, in the list and in a detail.
    let logged = console.get("/api/logs?limit=1").await;
    let last = &logged["requests"][0];
    assert_eq!(last["key_id"], key.id.as_str(), "{logged}");
    assert_eq!(last["key_name"], "laptop", "{logged}");
    assert!(last["output_tokens"].as_u64().unwrap() > 0, "{logged}");
    let detail = console
        .get(&format!("/api/logs/{}", last["id"].as_i64().unwrap()))
        .await;
    assert_eq!(detail["request"]["key_name"], "laptop", "{detail}");

    let by_day = console.get("/api/usage").await;
    assert_eq!(by_day["bucket"], "day");
    assert_eq!(by_day["rows"][0]["requests"], 3);
    assert_eq!(by_day["rows"][0]["group"], Value::Null);

    let csv = console
        .request(
            Method::GET,
            "/api/usage?format=csv&group=key&bucket=all&since=1h",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        csv.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("agm-usage.csv")
    );
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "start,group,name,requests,successes,errors,input_tokens,output_tokens,p50_ms,p95_ms,p99_ms,overhead_avg_ms"
    );
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[1].contains(&format!(",{},laptop,3,3,0,", key.id)),
        "{text}"
    );

    // The overview's last hour: per minute, with agm's own time.
    let minutes = console.get("/api/usage?since=1h&bucket=minute").await;
    assert_eq!(minutes["bucket"], "minute", "{minutes}");
    let rows = minutes["rows"].as_array().unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| r["requests"].as_u64().unwrap())
            .sum::<u64>(),
        3,
        "{minutes}"
    );
    assert!(
        rows[0]["overhead_avg_ms"].as_f64().unwrap() > 0.0,
        "{minutes}"
    );
    let (status, answer) = console
        .send(Method::GET, "/api/usage?since=2d&bucket=minute", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer.to_string().contains("at most 24 hours"), "{answer}");

    let (status, answer) = console
        .send(Method::GET, "/api/usage?group=user", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer.to_string().contains("account"), "{answer}");

    // The page, with its nav link, in every language.
    for lang in ["en", "zh-CN", "zh-TW", "vi"] {
        let page = console
            .request(Method::GET, &format!("/ui/usage?lang={lang}"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        assert!(html.contains("id=\"usage-chart\""), "{html}");
        assert!(html.contains("href=\"/ui/usage\""), "{html}");
        assert!(html.contains("format=csv"), "{html}");
    }
}

/// Signed out, usage is not served: a client key does not open it.
#[tokio::test]
async fn usage_needs_the_console_sign_in() {
    let h = common::start().await;
    let (_, secret) = h.state.store.create_client_key("laptop").await.unwrap();
    let response = h
        .http
        .get(format!("{}/api/usage", h.url))
        .header("x-api-key", &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
