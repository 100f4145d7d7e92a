#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]
//! The shared harness: the axum app on loopback against the simulated Google.

pub mod console;

use std::sync::Arc;

use agm_server::app::{AppState, SharedState, bind, serve};
use agm_server::config::Config;
use agm_sim::{RunningSim, Sim, SimConfig};
use agm_store::{NewAccount, Store};
use serde_json::Value;

pub struct Harness {
    pub sim: RunningSim,
    pub url: String,
    pub state: SharedState,
    pub http: reqwest::Client,
}

pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Harness {
    start_sim_with(SimConfig::default(), configure).await
}

pub async fn start_sim_with(sim_config: SimConfig, configure: impl FnOnce(&mut Config)) -> Harness {
    start_shaped(sim_config, configure, |state| state).await
}

/// Like [`start_sim_with`], with a last say on the state before it serves (settings
/// only tests change, e.g. `AppState::with_client_key_ttl`).
pub async fn start_shaped(
    sim_config: SimConfig,
    configure: impl FnOnce(&mut Config),
    shape: impl FnOnce(AppState) -> AppState,
) -> Harness {
    let sim = Sim::demo_with(sim_config).start().await.unwrap();
    let mut config = Config::default();
    config.google.all_at(&sim.base_url());
    config.server.port = 0;
    // No test asks the real releases URL; tests/updates.rs turns the check on.
    config.updates.check = false;
    configure(&mut config);
    let store = Store::open_in_memory().await.unwrap();
    for account in sim.accounts() {
        store
            .upsert_account(NewAccount::antigravity(
                account.email.clone(),
                account.refresh_token.clone(),
            ))
            .await
            .unwrap();
    }
    let state = Arc::new(shape(AppState::new(config, store).unwrap()));
    let url = serve_state(state.clone()).await;
    Harness {
        sim,
        url,
        state,
        http: reqwest::Client::new(),
    }
}

/// A harness whose first Code Assist endpoint is a second sim that fails every
/// generation with a 500 (and setup calls with a 503, so they move on), the second the
/// working sim; round-robin scheduling. Returns the broken sim too (keep it alive).
pub async fn start_with_a_broken_first_endpoint() -> (Harness, RunningSim) {
    use agm_sim::{Fault, SimMethod};
    let broken = Sim::demo().start().await.unwrap();
    broken.script(Fault::status(SimMethod::GenerateContent, 500, "INTERNAL", "boom").always());
    broken.script(Fault::status(SimMethod::LoadCodeAssist, 503, "UNAVAILABLE", "down").always());
    let broken_url = broken.base_url();
    let h = start_with(|c| {
        let good = c.google.code_assist_endpoints[0].clone();
        c.google.code_assist_endpoints = vec![broken_url, good];
        c.routing.scheduling = agm_pool::selection::Scheduling::RoundRobin;
    })
    .await;
    (h, broken)
}

pub async fn start() -> Harness {
    start_with(|_| {}).await
}

impl Harness {
    pub async fn post(&self, body: &Value) -> reqwest::Response {
        self.post_to("/v1/messages", body).await
    }

    /// The stored account with this e-mail.
    pub async fn account(&self, email: &str) -> agm_store::Account {
        self.state.store.get_account(email).await.unwrap().unwrap()
    }

    /// `GET path`, its body as text.
    pub async fn get_text(&self, path: &str) -> String {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `GET path`, its body as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        serde_json::from_str(&self.get_text(path).await).unwrap()
    }

    /// `GET path` with a client key, its body as JSON.
    pub async fn get_json_with_key(&self, path: &str, secret: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .header("x-api-key", secret)
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    }

    /// `POST path` with a client key.
    pub async fn post_with_key(&self, path: &str, secret: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .header("x-api-key", secret)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_to(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

/// (event name, data) pairs of an SSE body.
pub fn sse_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| {
            let mut event = String::new();
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (event, serde_json::from_str(&data).unwrap())
        })
        .collect()
}

/// Serves `state` on a free loopback port until the test ends; returns its base URL.
pub async fn serve_state(state: SharedState) -> String {
    let listener = bind(&state).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, state, std::future::pending()));
    url
}
