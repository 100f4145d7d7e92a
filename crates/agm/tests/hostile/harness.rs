#![allow(dead_code)] // shared by hostile.rs and restart.rs: each uses a part
//! The pieces the hostile-input suite shares: a simulated Google, a data dir with
//! imported accounts, the real `agm serve` on a free loopback port, and a raw HTTP/1.1
//! client for requests reqwest will not send (a foreign `Host`, half a header block).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use agm_sim::{RunningSim, Sim, SimAccount};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// The e-mail domain of every account in this suite: no client-facing text may hold it.
pub const DOMAIN: &str = "hostile.agm";

/// A sim account of this suite: `<name>@hostile.agm`, refresh token `hostile-refresh-<name>`.
pub fn sim_account(name: &str) -> SimAccount {
    SimAccount::new(
        &format!("{name}@{DOMAIN}"),
        &format!("hostile-refresh-{name}"),
        Some(&format!("hostile-project-{name}")),
        "g1-pro-tier",
    )
}

/// The binary under test: `agm` of this build, or `AGM_HOSTILE_BIN` (to show that the
/// suite fails against an older build).
pub fn agm_bin() -> PathBuf {
    std::env::var_os("AGM_HOSTILE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_agm")))
}

/// One user of agm: a home with its own data dir, and the simulated Google.
pub struct Env {
    pub home: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub sim: RunningSim,
    /// `AGM_*` settings for every command, on top of the Google addresses.
    pub settings: Vec<(String, String)>,
}

impl Env {
    /// Starts `sim` (with `accounts` added) and makes an empty data dir.
    pub async fn new(sim: Sim, accounts: &[&str]) -> Env {
        for name in accounts {
            sim.add_account(sim_account(name));
        }
        let sim = sim.start().await.expect("the sim starts");
        let home = tempfile::tempdir().unwrap();
        let data_dir = home.path().join("data");
        Env {
            home,
            data_dir,
            sim,
            settings: vec![
                // Nothing in this suite may wait a minute for an account.
                ("AGM_ROUTING__MAX_WAIT".into(), "\"2s\"".into()),
                ("AGM_ROUTING__QUOTA_REFRESH".into(), "\"0s\"".into()),
            ],
        }
    }

    /// Adds (or replaces) one `AGM_*` setting; the value is TOML (`"\"1s\""`, `64`).
    pub fn set(&mut self, key: &str, toml_value: &str) {
        self.settings.retain(|(k, _)| k != key);
        self.settings.push((key.to_owned(), toml_value.to_owned()));
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = crate::common::isolated(&agm_bin(), self.home.path(), &self.data_dir);
        crate::common::at_sim(&mut cmd, &self.sim.base_url());
        cmd.args(args);
        for (key, value) in &self.settings {
            cmd.env(key, value);
        }
        cmd
    }

    /// Runs one CLI command to its end (at most 60 s).
    pub async fn agm(&self, args: &[&str]) -> Output {
        tokio::time::timeout(Duration::from_secs(60), self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("`agm {}` did not finish within 60 s", args.join(" ")))
            .unwrap()
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    pub async fn agm_ok(&self, args: &[&str]) -> String {
        let out = self.agm(args).await;
        assert!(
            out.status.success(),
            "`agm {}` failed ({:?}): {}{}",
            args.join(" "),
            out.status.code(),
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// Imports the sim account `name` into the antigravity pool.
    pub async fn import(&self, name: &str) {
        let token = format!("hostile-refresh-{name}");
        self.agm_ok(&["accounts", "import", "--refresh-token", &token])
            .await;
    }

    /// Imports the sim account `name` into the `code-assist` pool (through an agm export
    /// file, the only way the CLI sets a pool).
    pub async fn import_code_assist(&self, name: &str) {
        let file = self.home.path().join(format!("{name}-code-assist.json"));
        let export = json!({
            "version": 1,
            "exported_at": "2026-01-01T00:00:00Z",
            "accounts": [{
                "id": "00000000",
                "email": format!("{name}@{DOMAIN}"),
                "pool": "code-assist",
                "refresh_token": format!("hostile-refresh-{name}"),
                "state": "active",
            }],
        });
        std::fs::write(&file, export.to_string()).unwrap();
        self.agm_ok(&["accounts", "import", "--file", file.to_str().unwrap()])
            .await;
    }

    /// `agm accounts list --json`.
    pub async fn accounts(&self) -> Vec<Value> {
        let text = self.agm_ok(&["accounts", "list", "--json"]).await;
        serde_json::from_str::<Value>(&text)
            .unwrap_or_else(|e| panic!("accounts list --json is not JSON ({e}): {text}"))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The store id of `<name>@hostile.agm`.
    pub async fn account_id(&self, name: &str) -> String {
        let email = format!("{name}@{DOMAIN}");
        self.accounts()
            .await
            .into_iter()
            .find(|a| a["email"] == email.as_str())
            .and_then(|a| a["id"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("{email} is not listed"))
    }

    /// Every byte of every file in the data dir (the database, its WAL, the key file).
    pub fn data_dir_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(&self.data_dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                all.extend(std::fs::read(path).unwrap_or_default());
            }
        }
        all
    }

    /// Starts `agm serve` on a free loopback port and waits for `/healthz`, and for a
    /// 200 from `/readyz` when `ready` is set.
    pub async fn serve(&self, ready: bool) -> Server {
        let mut server = self.spawn_serve(free_port()).await;
        server.wait_healthy(ready).await;
        server
    }

    /// Starts `agm serve --port <port>` without waiting; its stderr goes to a log file.
    pub async fn spawn_serve(&self, port: u16) -> Server {
        let log_path = self.home.path().join(format!("serve-{port}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = self
            .command(&["serve", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("agm serve starts");
        Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            url: format!("http://127.0.0.1:{port}"),
            log_path,
        }
    }
}

/// A running `agm serve`.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub url: String,
    pub log_path: PathBuf,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id().expect("agm serve is running")
    }

    /// The last lines agm serve logged, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(30);
        format!(
            "--- agm serve log (last {} lines) ---\n{}",
            lines.len() - start,
            lines[start..].join("\n")
        )
    }

    pub async fn wait_healthy(&mut self, ready: bool) {
        let http = client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "agm serve exited ({status}) before answering /healthz\n{}",
                    self.log_tail()
                );
            }
            if let Ok(r) = http.get(format!("{}/healthz", self.url)).send().await
                && r.status() == 200
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "agm serve did not answer /healthz within 30 s\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !ready {
            return;
        }
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(r) = http.get(format!("{}/readyz", self.url)).send().await {
                if r.status() == 200 {
                    return;
                }
                last = r.text().await.unwrap_or_default();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "agm serve did not become ready within 30 s: {last}\n{}",
            self.log_tail()
        );
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub async fn stop(mut self) {
        self.child.kill().await.ok();
    }

    /// Stops it as a service manager does (SIGTERM) and waits for it to exit (at most
    /// 20 s); returns its exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("agm serve exits within 20 s of SIGTERM")
            .expect("agm serve's exit status")
    }
}

pub use crate::common::{stderr, stdout};

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A reqwest client with a bound on every call.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A client API, for the shape of its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Anthropic,
    OpenAi,
    Google,
}

/// Checks `body` is an error in `api`'s shape; returns its message (and type/status).
pub fn error_shape(api: Api, body: &str, context: &str) -> (String, String) {
    let value: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{context}: the error body is not JSON ({e}): {body}"));
    let message = value["error"]["message"].as_str().unwrap_or("").to_owned();
    match api {
        Api::Anthropic => {
            assert_eq!(
                value["type"], "error",
                "{context}: not Anthropic's error shape {{\"type\":\"error\",...}}: {body}"
            );
            let kind = value["error"]["type"]
                .as_str()
                .unwrap_or_else(|| panic!("{context}: Anthropic error without error.type: {body}"));
            (message, kind.to_owned())
        }
        Api::OpenAi => {
            assert!(
                value["error"].is_object() && value.get("type").is_none(),
                "{context}: not OpenAI's error shape {{\"error\":{{...}}}}: {body}"
            );
            let kind = value["error"]["type"]
                .as_str()
                .or_else(|| value["error"]["code"].as_str())
                .unwrap_or_else(|| panic!("{context}: OpenAI error without error.type: {body}"));
            (message, kind.to_owned())
        }
        Api::Google => {
            assert!(
                value["error"]["code"].is_u64(),
                "{context}: not Google's error shape {{\"error\":{{\"code\",\"status\"}}}}: {body}"
            );
            let status = value["error"]["status"]
                .as_str()
                .unwrap_or_else(|| panic!("{context}: Google error without error.status: {body}"));
            (message, status.to_owned())
        }
    }
}

/// An answer read off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub body: String,
}

/// Sends `head` (the request line and headers, without the blank line) and `body` on a
/// new connection with `Connection: close`, and reads the whole answer (at most `limit`).
pub async fn raw_request(
    addr: SocketAddr,
    head: &str,
    body: &[u8],
    limit: Duration,
) -> Result<RawResponse, String> {
    let work = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut request = format!(
            "{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            head.trim_end(),
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        stream
            .write_all(&request)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut bytes = Vec::new();
        stream
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| format!("read: {e}"))?;
        parse_response(&bytes)
    };
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| format!("no whole answer within {limit:?}"))?
}

/// Parses one HTTP/1.1 answer (a `Content-Length` or chunked body, or up to EOF).
pub fn parse_response(bytes: &[u8]) -> Result<RawResponse, String> {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no header block in {:?}", String::from_utf8_lossy(bytes)))?;
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let rest = &bytes[end + 4..];
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Ok(RawResponse {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..line_end]);
        let Ok(size) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
        else {
            break;
        };
        rest = &rest[line_end + 2..];
        if size == 0 || rest.len() < size {
            out.extend_from_slice(&rest[..size.min(rest.len())]);
            break;
        }
        out.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or_default();
    }
    out
}

/// How a connection the client stopped talking on ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// The server closed it (EOF or reset), after this long, having sent these bytes.
    Closed(Duration, String),
    /// Still open when the client stopped waiting.
    Open,
}

/// Waits up to `limit` (from `since`) for the server to close `stream`; whatever it
/// sends meanwhile is kept.
pub async fn wait_closed(stream: &mut TcpStream, since: Instant, limit: Duration) -> Ending {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(since.elapsed());
        if left.is_zero() {
            return Ending::Open;
        }
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return Ending::Open,
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Ending::Closed(
                    since.elapsed(),
                    String::from_utf8_lossy(&seen).into_owned(),
                );
            }
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// A small seeded random source (xorshift64*), so the fuzz cases are the same every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Percent-encodes every byte that is not an unreserved URL character.
pub fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// VmRSS of a process, in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// How many file descriptors a process has open.
pub fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// The path of the store's database in a data dir.
pub fn database(data_dir: &Path) -> PathBuf {
    data_dir.join("agm.db")
}
