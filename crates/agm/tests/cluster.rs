#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]
//! Cluster mode end to end (issue 15, item 5): three real `agm serve` replicas sharing
//! one PostgreSQL (`[storage] backend = "postgres"`, a schema of this test's own) and
//! one Redis (`[cluster] redis_url`, a key prefix of this test's own), behind a small
//! round-robin TCP front, in front of the simulated Google. It proves that a 429 seen
//! by one replica is honoured by the others, that a conversation keeps its account on
//! every replica, that concurrent requests needing a token refresh cause one refresh
//! per account, that safe mode turned on (and off) from the CLI or from one replica's
//! console is followed by all within 2 s,
//! that background jobs run once per cluster, that a replica killed with `kill -9` in
//! the middle of streams costs the client only a retry (and the leadership moves), and
//! that a circuit breaker opened on one replica is open on the others, and that a
//! thinking signature reaches every replica, even one started later.
//!
//! PostgreSQL at `AGM_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/
//! test`) and Redis at `AGM_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`) must
//! answer, unless `AGM_TEST_NO_POSTGRES=1` or `AGM_TEST_NO_REDIS=1` skips the test.

mod common;
#[path = "hostile/harness.rs"]
mod harness;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agm_sim::{Fault, RunningSim, Sim, SimConfig, SimMethod};
use futures_util::StreamExt as _;
use harness::Server;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

const NAMES: [&str; 3] = ["ann", "bea", "cat"];

/// The shared services, and what this test owns in them.
struct Cluster {
    sim: RunningSim,
    /// Every replica's `AGM_*` settings (cluster mode, the sim, short waits).
    settings: Vec<(String, String)>,
    homes: Vec<tempfile::TempDir>,
    /// The server's URL, without this test's schema.
    pg_base: String,
    schema: String,
    redis: redis::Client,
    prefix: String,
}

impl Cluster {
    fn home(&self, i: usize) -> (PathBuf, PathBuf) {
        let home = self.homes[i].path().to_path_buf();
        let data = home.join("data");
        (home, data)
    }

    fn command(&self, i: usize, args: &[&str]) -> tokio::process::Command {
        let (home, data) = self.home(i);
        let mut cmd = common::isolated(&harness::agm_bin(), &home, &data);
        common::at_sim(&mut cmd, &self.sim.base_url());
        cmd.args(args);
        for (k, v) in &self.settings {
            cmd.env(k, v);
        }
        cmd
    }

    async fn agm_ok(&self, args: &[&str]) -> String {
        let out = tokio::time::timeout(Duration::from_secs(30), self.command(0, args).output())
            .await
            .expect("the CLI finishes")
            .unwrap();
        assert!(
            out.status.success(),
            "`agm {}`: {}{}",
            args.join(" "),
            common::stdout(&out),
            common::stderr(&out)
        );
        common::stdout(&out)
    }

    /// Starts replica `i` (its own home and data dir) and waits until it is ready.
    async fn replica(&self, i: usize) -> Server {
        let port = harness::free_port();
        let (home, _) = self.home(i);
        let log_path = home.join("serve.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = self
            .command(i, &["serve", "--port", &port.to_string()])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            url: format!("http://127.0.0.1:{port}"),
            log_path,
        };
        server.wait_healthy(true).await;
        server
    }

    /// `agm doctor`'s output (it exits 1 when a check fails elsewhere: not ours).
    async fn doctor(&self) -> String {
        let out = self.command(0, &["doctor"]).output().await.unwrap();
        common::stdout(&out) + &common::stderr(&out)
    }

    /// Imports the sim's accounts into the shared store.
    async fn import_accounts(&self) {
        for name in NAMES {
            let token = format!("hostile-refresh-{name}");
            self.agm_ok(&["accounts", "import", "--refresh-token", &token])
                .await;
        }
    }

    /// Signs in to `replica`'s console with a link from `agm console`.
    async fn console(&self, replica: &Server) -> ConsoleSession {
        let printed = self.agm_ok(&["console"]).await;
        let token = printed
            .split("token=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no sign-in link: {printed}"));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let response = http
            .get(format!("{}/ui/login?token={token}", replica.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{}", replica.log_tail());
        let cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next())
            .find(|v| v.starts_with("agm_session="))
            .expect("a session cookie")
            .to_owned();
        let session: Value = http
            .get(format!("{}/api/session", replica.url))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ConsoleSession {
            http,
            url: replica.url.clone(),
            cookie,
            csrf: session["csrf"].as_str().unwrap().to_owned(),
        }
    }

    /// The store ids of the sim's accounts, by e-mail.
    async fn account_ids(&self) -> Vec<(String, String)> {
        let text = self.agm_ok(&["accounts", "list", "--json"]).await;
        let list: Value = serde_json::from_str(&text).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["email"].as_str().unwrap().to_owned(),
                    a["id"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

/// Whatever happened (a failed assertion too), the test's schema and keys go: on a
/// thread of its own, as Drop cannot await.
impl Drop for Cluster {
    fn drop(&mut self) {
        let (base, schema) = (self.pg_base.clone(), self.schema.clone());
        let (redis, prefix) = (self.redis.clone(), self.prefix.clone());
        let cleaned = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(pg) = connect_postgres(&base).await {
                    let _ = pg
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .await;
                }
                if let Ok(mut conn) = redis.get_multiplexed_async_connection().await {
                    let keys: Vec<String> = redis::cmd("KEYS")
                        .arg(format!("{prefix}*"))
                        .query_async(&mut conn)
                        .await
                        .unwrap_or_default();
                    if !keys.is_empty() {
                        let _: Result<i64, _> =
                            redis::cmd("DEL").arg(&keys).query_async(&mut conn).await;
                    }
                }
            });
        });
        let _ = cleaned.join();
    }
}

/// A round-robin TCP front: each connection goes to the next replica that accepts it
/// (a dead one is skipped, as a load balancer's health check would).
struct Front {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Front {
    async fn start(backends: Vec<SocketAddr>) -> Front {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let next = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let first = next.fetch_add(1, Ordering::Relaxed);
                let backends = backends.clone();
                tokio::spawn(async move {
                    for k in 0..backends.len() {
                        let backend = backends[(first + k) % backends.len()];
                        if let Ok(mut outbound) = TcpStream::connect(backend).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            return;
                        }
                    }
                });
            }
        });
        Front { addr, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A client that opens a new connection for every request, so the front spreads them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

fn message(model: &str, text: &str) -> Value {
    json!({"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": text}]})
}

async fn ask(http: &reqwest::Client, base: &str, body: &Value) -> (u16, String) {
    let response = http
        .post(format!("{base}/v1/messages"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// A replica's `/readyz` body.
async fn readyz(http: &reqwest::Client, url: &str) -> Value {
    http.get(format!("{url}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until every replica's `x-agm-safe-mode` header (on `/readyz`) says `want`;
/// fails when one has not within 2 s.
async fn all_follow_safe_mode(http: &reqwest::Client, replicas: &[Server], want: &str, what: &str) {
    let started = Instant::now();
    for r in replicas {
        loop {
            let response = http.get(format!("{}/readyz", r.url)).send().await.unwrap();
            if response
                .headers()
                .get("x-agm-safe-mode")
                .is_some_and(|v| v == want)
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{} did not follow {what} (safe mode {want}) within 2 s\n{}",
                r.url,
                r.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A web-console session on one replica, signed in as a person does: `agm console`
/// mints a sign-in link (in the shared store), the browser opens it on that replica.
struct ConsoleSession {
    http: reqwest::Client,
    url: String,
    cookie: String,
    csrf: String,
}

impl ConsoleSession {
    /// A `POST` as the console's own page sends it.
    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .header("cookie", &self.cookie)
            .header("origin", &self.url)
            .header("x-agm-csrf", &self.csrf)
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

/// The accounts (e-mails) the sim saw generation calls for, oldest first.
fn generate_accounts(sim: &RunningSim) -> Vec<String> {
    sim.requests()
        .into_iter()
        .filter(|r| {
            matches!(
                r.method,
                SimMethod::GenerateContent | SimMethod::StreamGenerateContent
            )
        })
        .filter_map(|r| r.account)
        .collect()
}

async fn connect_postgres(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The shared services, or `None` (the test skipped) where asked to.
/// The shared services, with Redis at `redis_url` (default: the machine's).
async fn set_up(redis_url: Option<String>) -> Option<Cluster> {
    let pg_base = std::env::var("AGM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".to_owned());
    let redis_url = redis_url.unwrap_or_else(|| {
        std::env::var("AGM_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    });
    let skip = |var: &str| std::env::var(var).as_deref() == Ok("1");
    let postgres = match connect_postgres(&pg_base).await {
        Ok(c) => c,
        Err(e) if skip("AGM_TEST_NO_POSTGRES") => {
            eprintln!("skipped: PostgreSQL at {pg_base} does not answer ({e})");
            return None;
        }
        Err(e) => panic!(
            "PostgreSQL at {pg_base} does not answer ({e}): start it, point AGM_TEST_POSTGRES_URL at one, or set AGM_TEST_NO_POSTGRES=1 to skip"
        ),
    };
    let redis = redis::Client::open(redis_url.as_str()).unwrap();
    match redis.get_multiplexed_async_connection().await {
        Ok(_) => {}
        Err(e) if skip("AGM_TEST_NO_REDIS") => {
            eprintln!("skipped: Redis at {redis_url} does not answer ({e})");
            return None;
        }
        Err(e) => panic!(
            "Redis at {redis_url} does not answer ({e}): start it, point AGM_TEST_REDIS_URL at one, or set AGM_TEST_NO_REDIS=1 to skip"
        ),
    }
    let tag = format!("{:016x}", rand::random::<u64>());
    let schema = format!("agm_cluster_{tag}");
    postgres
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let sep = if pg_base.contains('?') { '&' } else { '?' };
    let pg_url = format!("{pg_base}{sep}options=-c%20search_path%3D{schema}");
    let prefix = format!("agm-test-{tag}:");
    // 32 random bytes in base64, as `openssl rand -base64 32` prints: every replica's
    // AGM_SEAL_KEY.
    let seal_key = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
    };
    let sim = Sim::new(SimConfig::default());
    for name in NAMES {
        sim.add_account(harness::sim_account(name));
    }
    let sim = sim.start().await.unwrap();
    let settings = vec![
        ("AGM_STORAGE__BACKEND".into(), "postgres".into()),
        ("AGM_STORAGE__POSTGRES_URL".into(), pg_url),
        ("AGM_SEAL_KEY".into(), seal_key),
        ("AGM_CLUSTER__REDIS_URL".into(), redis_url),
        ("AGM_CLUSTER__KEY_PREFIX".into(), prefix.clone()),
        ("AGM_ROUTING__MAX_WAIT".into(), "\"2s\"".into()),
        ("AGM_ROUTING__QUOTA_REFRESH".into(), "\"2s\"".into()),
        ("AGM_CIRCUIT_BREAKER__FAILURE_THRESHOLD".into(), "2".into()),
    ];
    Some(Cluster {
        sim,
        settings,
        homes: (0..4).map(|_| tempfile::tempdir().unwrap()).collect(),
        pg_base,
        schema,
        redis,
        prefix,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_share_one_pool() {
    let Some(cluster) = set_up(None).await else {
        return;
    };
    cluster.import_accounts().await;
    let mut replicas = vec![
        cluster.replica(0).await,
        cluster.replica(1).await,
        cluster.replica(2).await,
    ];
    let logs = |replicas: &[Server]| {
        replicas
            .iter()
            .map(Server::log_tail)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let http = client();
    // Every replica answers on its own, and says it is in a cluster with Redis up.
    for r in &replicas {
        let ready = readyz(&http, &r.url).await;
        assert_eq!(ready["cluster"]["redis"], "up", "{ready}");
    }

    // 1. A conversation keeps its account on every replica. Replica 0 serves another
    // conversation first, so that its choice for this one differs from what a fresh
    // replica would choose on its own.
    let model = "gemini-2.5-flash";
    let (status, _) = ask(&http, &replicas[0].url, &message(model, "another talk")).await;
    assert_eq!(status, 200);
    let first_turn = json!({"role": "user", "content": "a sticky conversation"});
    let mut history = vec![first_turn];
    let mut accounts = Vec::new();
    for (turn, r) in replicas.iter().enumerate() {
        cluster.sim.clear_requests();
        let body = json!({"model": model, "max_tokens": 64, "messages": history});
        let (status, text) = ask(&http, &r.url, &body).await;
        assert_eq!(status, 200, "turn {turn}: {text}");
        accounts.push(generate_accounts(&cluster.sim).pop().unwrap());
        history.push(json!({"role": "assistant", "content": "ok"}));
        history.push(json!({"role": "user", "content": format!("turn {}", turn + 2)}));
    }
    assert!(
        accounts.iter().all(|a| *a == accounts[0]),
        "the conversation moved between accounts across replicas: {accounts:?}\n{}",
        logs(&replicas)
    );

    // 1b. A thinking conversation's signature, handed out by one replica, is replayed
    // by another (not sent up as text).
    let thinking = |history: &[Value]| {
        json!({"model": "claude-sonnet-4-5-thinking", "max_tokens": 4096,
               "thinking": {"type": "enabled", "budget_tokens": 2048}, "messages": history})
    };
    let question = json!({"role": "user", "content": "Think about the cluster"});
    let first: Value = http
        .post(format!("{}/v1/messages", replicas[1].url))
        .json(&thinking(std::slice::from_ref(&question)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let signature = first["content"][0]["signature"]
        .as_str()
        .unwrap_or_else(|| panic!("no signature: {first}"))
        .to_owned();
    let second_turn = thinking(&[
        question,
        json!({"role": "assistant", "content": first["content"]}),
        json!({"role": "user", "content": "And now?"}),
    ]);
    // Sends the second turn to `url`; the signature must go up as a signature.
    let replays = |url: String| {
        let (http, body, sim, signature) = (
            http.clone(),
            second_turn.clone(),
            &cluster.sim,
            signature.clone(),
        );
        async move {
            sim.clear_requests();
            let response = http
                .post(format!("{url}/v1/messages"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(response.headers().get("x-agm-thinking").is_none());
            assert_eq!(response.status(), 200);
            let sent = sim
                .requests()
                .into_iter()
                .rev()
                .find(|r| r.method == SimMethod::GenerateContent)
                .unwrap();
            assert_eq!(
                sent.body["request"]["contents"][1]["parts"][0]["thoughtSignature"],
                signature.as_str(),
                "the signature went up as text: {url} did not know it"
            );
        }
    };
    replays(replicas[2].url.clone()).await;

    // 2. A 429 seen by one replica is honoured by all: no second call to that account
    // for that model inside its cooldown, whichever replica the next requests reach.
    let front = Front::start(replicas.iter().map(|r| r.addr).collect()).await;
    let model = "gemini-3-flash";
    cluster.sim.clear_requests();
    cluster
        .sim
        .script(Fault::rate_limited(SimMethod::GenerateContent, "60s").times(1));
    let (status, text) = ask(&http, &front.url(), &message(model, "limited 0")).await;
    assert_eq!(status, 200, "{text}");
    let limited = generate_accounts(&cluster.sim)[0].clone();
    for i in 1..=9 {
        let (status, text) = ask(
            &http,
            &front.url(),
            &message(model, &format!("limited {i}")),
        )
        .await;
        assert_eq!(status, 200, "{text}");
    }
    let calls = generate_accounts(&cluster.sim);
    assert_eq!(
        calls.iter().filter(|a| **a == limited).count(),
        1,
        "{limited} was called again inside its cooldown: {calls:?}\n{}",
        logs(&replicas)
    );

    // 2b. `agm accounts clear-cooldowns` clears it everywhere, in Redis too: the
    // account serves that model again.
    cluster.agm_ok(&["accounts", "clear-cooldowns"]).await;
    let mut conn = cluster
        .redis
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}cooldown:*", cluster.prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        if keys.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cooldowns left in Redis: {keys:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every replica follows the CLI's request within 2 s (each one's own cooldowns, as
    // its metrics read them, are gone).
    let deadline = Instant::now() + Duration::from_secs(2);
    for replica in &replicas {
        while !metrics_of(&http, &replica.url)
            .await
            .lines()
            .any(|l| l == "agm_cooldowns_active 0")
        {
            assert!(
                Instant::now() < deadline,
                "{} still has cooldowns 2 s after clear-cooldowns",
                replica.url
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    cluster.sim.clear_requests();
    for i in 0..9 {
        let (status, text) = ask(
            &http,
            &front.url(),
            &message(model, &format!("cleared {i}")),
        )
        .await;
        assert_eq!(status, 200, "{text}");
    }
    let calls = generate_accounts(&cluster.sim);
    assert!(
        calls.contains(&limited),
        "{limited} still cooling down after clear-cooldowns: {calls:?}"
    );

    // 3. Ten concurrent requests needing a token refresh (Google dropped every access
    // token) cause one refresh per account in the whole cluster.
    cluster.sim.expire_access_tokens();
    cluster.sim.clear_requests();
    let model = "claude-sonnet-4-5";
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (http, url) = (http.clone(), front.url());
        tasks.push(tokio::spawn(async move {
            ask(&http, &url, &message(model, &format!("refresh {i}"))).await
        }));
    }
    for task in tasks {
        let (status, text) = task.await.unwrap();
        assert_eq!(status, 200, "{text}\n{}", logs(&replicas));
    }
    let refreshes: Vec<String> = cluster
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method == SimMethod::Token)
        .filter_map(|r| r.account)
        .collect();
    for name in NAMES {
        let email = format!("{name}@{}", harness::DOMAIN);
        let n = refreshes.iter().filter(|a| **a == email).count();
        assert!(
            n <= 1,
            "{email} was refreshed {n} times: {refreshes:?}\n{}",
            logs(&replicas)
        );
    }
    assert!(!refreshes.is_empty(), "no refresh at all");

    // 4. Safe mode turned on (and off) from the CLI, or from one replica's console, is
    // followed by every replica within 2 s, timed from when the change is stored.
    for (action, want) in [("enable", "on"), ("disable", "off")] {
        cluster.agm_ok(&["safe-mode", action]).await;
        all_follow_safe_mode(&http, &replicas, want, &format!("`agm safe-mode {action}`")).await;
    }
    // The console's change is announced on the event channel too, so that the others
    // read it at once rather than at their next poll of the store.
    let mut pubsub = cluster.redis.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(format!("{}events", cluster.prefix))
        .await
        .unwrap();
    let mut events = pubsub.into_on_message();
    let console = cluster.console(&replicas[1]).await;
    for (action, want) in [("enable", "on"), ("disable", "off")] {
        let response = console
            .post(
                "/api/safe-mode",
                &json!({"action": action, "note": "from the console"}),
            )
            .await;
        let status = response.status();
        let answer = response.text().await.unwrap();
        assert_eq!(status, 200, "console {action}: {answer}");
        let what = format!("the console's {action} on {}", replicas[1].url);
        all_follow_safe_mode(&http, &replicas, want, &what).await;
        let announced = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(message) = events.next().await {
                let text: String = message.get_payload().unwrap();
                let envelope: Value = serde_json::from_str(&text).unwrap();
                if envelope["event"]["kind"] == "safe_mode" {
                    return;
                }
            }
        })
        .await;
        assert!(announced.is_ok(), "{what} was not announced to the others");
    }
    drop(events);

    // agm doctor sees the cluster: Redis answers, and one replica leads.
    let doctor = cluster.doctor().await;
    assert!(
        doctor.contains("Redis at 127.0.0.1:") && doctor.contains("leads the background jobs"),
        "{doctor}"
    );

    // 5. Background jobs run once per cluster: with a quota refresh every 2 s and three
    // accounts, a quiet 5 s sees at most one fetch per account and interval (three
    // replicas each refreshing would make three times as many).
    let ids = cluster.account_ids().await;
    assert_eq!(ids.len(), 3);
    cluster.sim.clear_requests();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let fetches = cluster.sim.count(SimMethod::FetchAvailableModels);
    assert!(
        (1..=12).contains(&fetches),
        "{fetches} quota fetches in 5 s for 3 accounts every 2 s\n{}",
        logs(&replicas)
    );

    // 6. kill -9 of the leader in the middle of streams: every client gets its answer
    // through the front, retrying once where its replica died; another replica leads.
    let leader = {
        let mut found = None;
        for (i, r) in replicas.iter().enumerate() {
            let ready = readyz(&http, &r.url).await;
            if ready["cluster"]["leader"] == true {
                found = Some(i);
            }
        }
        found.expect("one replica leads")
    };
    cluster.sim.script(
        Fault::delay(
            SimMethod::StreamGenerateContent,
            Duration::from_millis(1500),
        )
        .times(6),
    );
    let mut streams = Vec::new();
    for i in 0..6 {
        let (http, url) = (http.clone(), front.url());
        streams.push(tokio::spawn(async move {
            let mut body = message("gemini-3-flash", &format!("stream {i}"));
            body["stream"] = json!(true);
            for attempt in 0..3 {
                let sent = http
                    .post(format!("{url}/v1/messages"))
                    .json(&body)
                    .send()
                    .await;
                if let Ok(response) = sent
                    && response.status() == 200
                    && let Ok(text) = response.text().await
                    && text.contains("message_stop")
                {
                    return (attempt, text);
                }
            }
            panic!("stream {i} got no complete answer in 3 tries");
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    replicas[leader].child.start_kill().unwrap();
    let mut retried = 0;
    for stream in streams {
        let (attempt, text) = stream.await.unwrap();
        assert!(text.contains("Simulated"), "{text}");
        retried += usize::from(attempt > 0);
    }
    assert!(retried > 0, "no stream was cut by the kill");
    let dead = replicas.remove(leader);
    drop(dead);
    let deadline = Instant::now() + Duration::from_secs(15);
    'lead: loop {
        for r in &replicas {
            let ready = readyz(&http, &r.url).await;
            if ready["cluster"]["leader"] == true {
                break 'lead;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no replica took the lead after the leader died\n{}",
            logs(&replicas)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // PostgreSQL is intact: the accounts, active, with their tokens readable.
    let after = cluster.agm_ok(&["accounts", "list", "--json"]).await;
    let after: Value = serde_json::from_str(&after).unwrap();
    assert_eq!(after.as_array().unwrap().len(), 3, "{after}");
    assert!(
        after
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["state"] == "active"),
        "{after}"
    );
    let (status, text) = ask(&http, &front.url(), &message("gemini-3-flash", "after")).await;
    assert_eq!(status, 200, "{text}");

    // 7. A circuit breaker that opens on one replica is open on the others: Google's
    // 500s for one account on replica A open its circuit there (threshold 2), and
    // replica B reports the same circuit open.
    let (a, b) = (&replicas[0], &replicas[1]);
    let bea = format!("bea@{}", harness::DOMAIN);
    cluster.sim.script(
        Fault::status(SimMethod::GenerateContent, 500, "INTERNAL", "boom")
            .for_account(&bea)
            .times(2),
    );
    let open_on = |metrics: &str| -> Vec<String> {
        metrics
            .lines()
            .filter(|l| l.starts_with("circuit_breaker_state{") && l.ends_with(" 2"))
            .map(str::to_owned)
            .collect()
    };
    let mut opened = Vec::new();
    for i in 0..12 {
        let (status, text) = ask(
            &http,
            &a.url,
            &message("gemini-2.5-pro", &format!("boom {i}")),
        )
        .await;
        assert_eq!(status, 200, "{text}");
        opened = open_on(&metrics_of(&http, &a.url).await);
        if !opened.is_empty() {
            break;
        }
    }
    assert_eq!(opened.len(), 1, "no circuit opened on A\n{}", a.log_tail());
    let deadline = Instant::now() + Duration::from_secs(2);
    while !open_on(&metrics_of(&http, &b.url).await).contains(&opened[0]) {
        assert!(
            Instant::now() < deadline,
            "B does not have A's open circuit {}\n{}",
            opened[0],
            b.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 8. A replica that starts after the signature was announced finds it in Redis on
    // its first miss.
    let late = cluster.replica(3).await;
    replays(late.url.clone()).await;
    late.stop().await;

    for r in replicas {
        r.stop().await;
    }
}

/// A Redis of this test's own (`redis-server` on a free port, nothing saved), to take
/// away and bring back.
struct PrivateRedis {
    port: u16,
    child: Option<tokio::process::Child>,
}

impl PrivateRedis {
    async fn start(port: u16) -> Option<PrivateRedis> {
        let spawned = tokio::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if std::env::var("AGM_TEST_NO_REDIS").as_deref() == Ok("1") => {
                eprintln!("skipped: cannot run redis-server ({e})");
                return None;
            }
            Err(e) => panic!(
                "cannot run redis-server ({e}): install Redis (apt-get install redis-server), or set AGM_TEST_NO_REDIS=1 to skip"
            ),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(PrivateRedis {
            port,
            child: Some(child),
        })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }
}

async fn wait_for(what: &str, replica: &Server, http: &reqwest::Client, redis: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = http
            .get(format!("{}/readyz", replica.url))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let ready: Value = response.json().await.unwrap();
        if ready["cluster"]["redis"] == redis {
            assert_eq!(status, 200, "{what}: {ready}");
            return ready;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: /readyz did not say redis {redis} within 10 s: {ready}\n{}",
            replica.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Google answers `replica`'s next request for `model` with a 429 (a minute long); the
/// request itself succeeds on another account. The account that was limited.
async fn limit_one(
    cluster: &Cluster,
    http: &reqwest::Client,
    replica: &Server,
    model: &str,
) -> String {
    cluster.sim.clear_requests();
    cluster
        .sim
        .script(Fault::rate_limited(SimMethod::GenerateContent, "60s").times(1));
    let (status, text) = ask(http, &replica.url, &message(model, "limited")).await;
    assert_eq!(status, 200, "{text}\n{}", replica.log_tail());
    generate_accounts(&cluster.sim)[0].clone()
}

/// Six requests to `replica` for `model` succeed without calling `limited`, which
/// another replica saw limited (`when`).
async fn avoids(
    cluster: &Cluster,
    http: &reqwest::Client,
    replica: &Server,
    model: &str,
    limited: &str,
    when: &str,
) {
    cluster.sim.clear_requests();
    for i in 0..6 {
        let (status, text) = ask(http, &replica.url, &message(model, &format!("after {i}"))).await;
        assert_eq!(status, 200, "{text}");
    }
    let calls = generate_accounts(&cluster.sim);
    assert!(
        !calls.iter().any(|c| c == limited),
        "{} called {limited}, which {when}: {calls:?}\n{}",
        replica.url,
        replica.log_tail()
    );
}

/// A replica's `/metrics` text.
async fn metrics_of(http: &reqwest::Client, url: &str) -> String {
    http.get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A replica's `agm_cluster_redis_up` gauge.
async fn redis_up_gauge(http: &reqwest::Client, replica: &Server) -> String {
    let metrics = metrics_of(http, &replica.url).await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("agm_cluster_redis_up "))
        .unwrap_or_else(|| panic!("no agm_cluster_redis_up in {metrics}"))
        .to_owned()
}

/// Which replicas say they lead, by index.
async fn leaders(http: &reqwest::Client, replicas: &[&Server]) -> Vec<usize> {
    let mut found = Vec::new();
    for (i, r) in replicas.iter().enumerate() {
        if readyz(http, &r.url).await["cluster"]["leader"] == true {
            found.push(i);
        }
    }
    found
}

/// Pauses (`-STOP`) or resumes (`-CONT`) a replica's process.
fn signal(replica: &Server, which: &str) {
    let pid = replica.child.id().expect("the replica runs").to_string();
    let status = std::process::Command::new("kill")
        .args([which, &pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill {which} {pid}");
}

/// Waits until one replica leads (never two), for at most 5 s; its index.
async fn one_leads(http: &reqwest::Client, replicas: &[&Server], when: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = leaders(http, replicas).await;
        assert!(now.len() <= 1, "two replicas lead {when}");
        if let [one] = now[..] {
            return one;
        }
        assert!(
            Instant::now() < deadline,
            "no replica leads {when} (5 s)\n{}",
            replicas[0].log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Redis goes away under every replica at once (the cluster's own `redis-server` is
/// killed) and comes back empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_that_lose_redis_serve_on_and_catch_up() {
    let port = harness::free_port();
    let Some(mut redis) = PrivateRedis::start(port).await else {
        return;
    };
    let Some(cluster) = set_up(Some(redis.url())).await else {
        return;
    };
    cluster.import_accounts().await;
    let (a, b) = (cluster.replica(0).await, cluster.replica(1).await);
    let both = [&a, &b];
    let http = client();
    for r in both {
        wait_for("at start", r, &http, "up").await;
    }
    one_leads(&http, &both, "at start").await;

    // Redis goes away: every replica says so, stays ready, and serves.
    redis.kill().await;
    let killed = Instant::now();
    for r in both {
        wait_for("Redis gone", r, &http, "degraded").await;
        assert_eq!(redis_up_gauge(&http, r).await, "0");
    }
    let doctor = cluster.doctor().await;
    assert!(
        doctor.contains(&format!("Redis at 127.0.0.1:{port} does not answer")),
        "{doctor}"
    );
    let model = "gemini-3-flash";
    let limited = limit_one(&cluster, &http, &a, model).await;
    let (status, text) = ask(&http, &b.url, &message(model, "B while degraded")).await;
    assert_eq!(status, 200, "{text}\n{}", b.log_tail());
    for r in both {
        assert!(
            r.log_tail().matches("lost Redis").count() == 1,
            "the loss is logged once\n{}",
            r.log_tail()
        );
    }

    // The background jobs without Redis: the replica that led keeps its lease until it
    // runs out (10 s after its last renewal) and the others cannot take it, so never
    // two lead at once; then none leads, and the cluster's jobs (here the quota
    // refresh, every 2 s) pause until Redis returns.
    let mut led = Vec::new();
    loop {
        let now = leaders(&http, &both).await;
        assert!(now.len() <= 1, "two replicas lead without Redis");
        if now.is_empty() {
            break;
        }
        led.extend(now);
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "the lease did not run out without Redis\n{}",
            a.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    led.dedup();
    assert!(led.len() <= 1, "the lead moved without Redis: {led:?}");
    let fetches = cluster.sim.count(SimMethod::FetchAvailableModels);
    let bound = 3 * (killed.elapsed().as_secs() as usize / 2 + 2);
    assert!(
        fetches <= bound,
        "{fetches} quota fetches for 3 accounts every 2 s: more than one replica refreshed"
    );
    cluster.sim.clear_requests();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        cluster.sim.count(SimMethod::FetchAvailableModels),
        0,
        "a quota refresh ran with no replica leading"
    );

    // Redis returns (empty): every replica says so, one leads again, A publishes the
    // cooldown it saw meanwhile, and B honours it.
    let mut redis = PrivateRedis::start(port).await.unwrap();
    for r in both {
        wait_for("Redis back", r, &http, "up").await;
        assert_eq!(redis_up_gauge(&http, r).await, "1");
    }
    one_leads(&http, &both, "after Redis returned").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    loop {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}cooldown:*", cluster.prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "A did not publish its cooldown when Redis returned\n{}",
            a.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    avoids(
        &cluster,
        &http,
        &b,
        model,
        &limited,
        "A saw limited while Redis was gone",
    )
    .await;

    // Shared state works again: a 429 B sees now is honoured by A.
    let model = "gemini-2.5-flash";
    let limited = limit_one(&cluster, &http, &b, model).await;
    avoids(
        &cluster,
        &http,
        &a,
        model,
        &limited,
        "B saw limited after Redis returned",
    )
    .await;

    // A short outage, and the leader is slow to see Redis return (paused meanwhile):
    // its lease has not run out, so the other replica must not take the (empty)
    // Redis's free lease meanwhile, or both would run the cluster's jobs.
    let leader = one_leads(&http, &both, "before the short outage").await;
    let (slow, other) = (both[leader], both[1 - leader]);
    redis.kill().await;
    for r in both {
        wait_for("Redis gone again", r, &http, "degraded").await;
    }
    signal(slow, "-STOP");
    let _redis = PrivateRedis::start(port).await.unwrap();
    wait_for("Redis back again", other, &http, "up").await;
    let back = Instant::now();
    while back.elapsed() < Duration::from_secs(3) {
        if readyz(&http, &other.url).await["cluster"]["leader"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(slow, "-CONT");
    let back = Instant::now();
    while back.elapsed() < Duration::from_secs(3) {
        let now = leaders(&http, &both).await;
        assert!(
            now.len() <= 1,
            "two replicas lead after a short Redis outage\n{}\n{}",
            slow.log_tail(),
            other.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    one_leads(&http, &both, "after the short outage").await;
    a.stop().await;
    b.stop().await;
}
