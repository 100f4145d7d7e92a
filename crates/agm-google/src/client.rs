//! The HTTP client for Google's OAuth and Cloud Code Assist endpoints.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agm_translate::sse::SseParser;
use agm_wire::cloudcode::{
    AvailableModels, ClientMetadata, CloudCodeRequest, CloudCodeResponse, CountTokensInner,
    CountTokensRequest, LoadCodeAssistRequest, LoadCodeAssistResponse, OnboardUserRequest,
    Operation, QuotaRequest, QuotaSummary,
};
use agm_wire::gemini::{Content, CountTokensResponse};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, RETRY_AFTER, USER_AGENT};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::classify::UpstreamError;

/// Where Google is and how agm introduces itself. Every address is configurable so
/// that tests point them at the simulated Google on loopback.
#[derive(Debug, Clone)]
pub struct GoogleConfig {
    pub code_assist_endpoints: Vec<String>,
    /// Google's consent page, where a sign-in starts (`oauth::authorize_url`).
    pub oauth_auth_url: String,
    pub oauth_token_url: String,
    pub userinfo_url: String,
    pub gemini_api_base: String,
    pub oauth_client_id: String,
    pub oauth_client_secret: String,
    /// `User-Agent` of generation calls: `antigravity/<version> <os>/<arch>`.
    pub user_agent: String,
    /// `User-Agent` of setup calls (loadCodeAssist, onboardUser, quota).
    pub setup_user_agent: String,
    pub connect_timeout: Duration,
    /// Bound on setup calls (the project-id timeout).
    pub setup_timeout: Duration,
}

impl GoogleConfig {
    /// The generation `User-Agent` for an Antigravity `version` on this machine.
    pub fn antigravity_user_agent(version: &str) -> String {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        format!("antigravity/{version} {}/{arch}", std::env::consts::OS)
    }
}

/// A fresh access token.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub access_token: String,
    pub expires_in: Duration,
    /// Google sometimes rotates the refresh token; keep the new one.
    pub refresh_token: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UserInfo {
    pub email: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// A stream of parsed SSE chunks of type `T`, each one `data:` line of Google's answer.
pub(crate) type SseStream<T> = Pin<Box<dyn Stream<Item = Result<T, UpstreamError>> + Send>>;

/// Upstream stream chunks, each one `data:` line of Google's SSE answer.
pub type ChunkStream = SseStream<CloudCodeResponse>;

/// How a generation call authenticates, and which endpoints it may use.
#[derive(Clone, Copy)]
pub struct CallAuth<'a> {
    pub access_token: &'a str,
    /// Send `X-Goog-User-Project` with the envelope's project (the default). Some
    /// accounts get 403s because of it; those are called without it (docs/PROTOCOL.md §2).
    pub project_header: bool,
    /// The circuit breaker for this account's calls, if any.
    pub gate: Option<&'a dyn EndpointGate>,
    /// Send in the Code Assist style (an organisation-licence account of the
    /// `code-assist` pool) instead of Antigravity's.
    pub code_assist: Option<CodeAssistStyle<'a>>,
}

/// The Code Assist header style (docs/PROTOCOL.md §2 "Pools"): gemini-cli's `User-Agent`,
/// the production endpoint only. The caller leaves `requestType`, `userAgent` and
/// `requestId` out of the envelope.
#[derive(Debug, Clone, Copy)]
pub struct CodeAssistStyle<'a> {
    pub endpoint: &'a str,
    /// `GeminiCLI/<version>/<model> (<os>; <arch>)`, see [`CodeAssistStyle::user_agent`].
    pub user_agent: &'a str,
}

impl CodeAssistStyle<'_> {
    /// gemini-cli's `User-Agent` for `version` and `model` on this machine (Node's
    /// platform and arch names).
    pub fn user_agent(version: &str, model: &str) -> String {
        let os = match std::env::consts::OS {
            "macos" => "darwin",
            "windows" => "win32",
            other => other,
        };
        let arch = match std::env::consts::ARCH {
            "x86_64" => "x64",
            "aarch64" => "arm64",
            other => other,
        };
        format!("GeminiCLI/{version}/{model} ({os}; {arch})")
    }
}

impl std::fmt::Debug for CallAuth<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallAuth")
            .field("access_token", &"<redacted>")
            .field("project_header", &self.project_header)
            .field("gate", &self.gate.is_some())
            .field("code_assist", &self.code_assist)
            .finish()
    }
}

impl<'a> CallAuth<'a> {
    pub fn bearer(access_token: &'a str) -> CallAuth<'a> {
        CallAuth {
            access_token,
            project_header: true,
            gate: None,
            code_assist: None,
        }
    }
}

/// Decides which Code Assist endpoints one call may use and hears how each went: the
/// server's circuit breaker (one per endpoint and account) sits behind it.
pub trait EndpointGate: Send + Sync {
    /// Whether `endpoint` may be called now (a closed circuit, or a half-open one with
    /// a probe slot free).
    fn allow(&self, endpoint: &str) -> bool;
    /// How a call to an allowed `endpoint` went: `Ok` when Google answered (even with
    /// an error that is not the endpoint's fault), `Err` with the failure otherwise.
    fn record(&self, endpoint: &str, outcome: Result<(), &UpstreamError>);
}

/// One shared client (a connection pool per host); cheap to clone.
#[derive(Clone)]
pub struct GoogleClient {
    /// Setup calls (OAuth, discovery, quota, countTokens) and the first of the
    /// generation clients.
    pub(crate) http: reqwest::Client,
    generation: Arc<Generation>,
    pub(crate) config: Arc<GoogleConfig>,
}

/// What generation calls use: the clients they take turns on, and the generation
/// URLs of the configured endpoints, parsed once.
///
/// Over HTTP/2 (Google's endpoints offer it through TLS ALPN) one client multiplexes
/// every request to a host on one connection, and Google's front ends allow about 100
/// concurrent streams per connection; past that, hyper queues new requests on the
/// client side instead of opening another connection (RFC 9113 §9.1). An answer can
/// stream for minutes, so each client here is one more connection, and 100 more
/// concurrent generations, per host (docs/BENCHMARKS.md, "HTTP/2 connections").
struct Generation {
    clients: Vec<reqwest::Client>,
    next: AtomicUsize,
    urls: Vec<EndpointUrls>,
}

/// `{base}/v1internal:generateContent` and `…:streamGenerateContent?alt=sse` of one
/// endpoint, as text (for errors) and parsed (for reqwest, which would otherwise
/// parse the text again for every request).
struct EndpointUrls {
    base: String,
    generate: (String, reqwest::Url),
    stream: (String, reqwest::Url),
}

const GENERATE: &str = "v1internal:generateContent";
const STREAM: &str = "v1internal:streamGenerateContent?alt=sse";

impl EndpointUrls {
    fn parse(base: &str) -> Option<EndpointUrls> {
        let base = base.trim_end_matches('/');
        let url = |method: &str| {
            let text = format!("{base}/{method}");
            reqwest::Url::parse(&text).ok().map(|url| (text, url))
        };
        Some(EndpointUrls {
            base: base.to_owned(),
            generate: url(GENERATE)?,
            stream: url(STREAM)?,
        })
    }
}

#[derive(Deserialize)]
struct RawTokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl GoogleClient {
    /// A client with one connection per upstream host for generation calls. Fails only
    /// when the TLS backend cannot start.
    pub fn new(config: GoogleConfig) -> Result<GoogleClient, reqwest::Error> {
        GoogleClient::with_connections(config, 1)
    }

    /// A client whose generation calls take turns on `connections` HTTP clients, each
    /// with its own connection pool: over HTTP/2, `connections` connections per host
    /// (see [`Generation`]). Setup calls use the first. At least one.
    pub fn with_connections(
        config: GoogleConfig,
        connections: usize,
    ) -> Result<GoogleClient, reqwest::Error> {
        let clients = (0..connections.max(1))
            .map(|_| http_client(&config))
            .collect::<Result<Vec<_>, _>>()?;
        let urls = config
            .code_assist_endpoints
            .iter()
            .filter_map(|base| EndpointUrls::parse(base))
            .collect();
        Ok(GoogleClient {
            http: clients[0].clone(),
            generation: Arc::new(Generation {
                clients,
                next: AtomicUsize::new(0),
                urls,
            }),
            config: Arc::new(config),
        })
    }

    /// How many HTTP clients generation calls take turns on.
    pub fn connections(&self) -> usize {
        self.generation.clients.len()
    }

    /// The HTTP client for the next generation call (round robin).
    pub(crate) fn generation_http(&self) -> &reqwest::Client {
        let clients = &self.generation.clients;
        if clients.len() == 1 {
            return &clients[0];
        }
        let turn = self.generation.next.fetch_add(1, Ordering::Relaxed);
        &clients[turn % clients.len()]
    }

    pub fn config(&self) -> &GoogleConfig {
        &self.config
    }

    /// Trades a refresh token for an access token. `invalid_grant` is its own error:
    /// the account needs a new sign-in.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenGrant, UpstreamError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", self.config.oauth_client_id.as_str()),
            ("client_secret", self.config.oauth_client_secret.as_str()),
        ];
        self.token_call(&form).await
    }

    /// `POST` to the token URL with `form`. Google's OAuth errors come back as
    /// `InvalidGrant` (for `invalid_grant`) or as a `Status` carrying the error and its
    /// description.
    pub(crate) async fn token_call(
        &self,
        form: &[(&str, &str)],
    ) -> Result<TokenGrant, UpstreamError> {
        let url = &self.config.oauth_token_url;
        let response = self
            .http
            .post(url)
            .header(USER_AGENT, &self.config.setup_user_agent)
            .form(form)
            .timeout(self.config.setup_timeout)
            .send()
            .await
            .map_err(|e| network(url, &e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| network(url, &e))?;
        if !status.is_success() {
            if let Ok(err) = serde_json::from_slice::<OAuthError>(&body) {
                if err.error == "invalid_grant" {
                    return Err(UpstreamError::InvalidGrant {
                        description: err.error_description.unwrap_or(err.error),
                    });
                }
                let message = match err.error_description {
                    Some(d) => format!("{}: {d}", err.error),
                    None => err.error,
                };
                return Err(UpstreamError::Status {
                    endpoint: url.clone(),
                    status: status.as_u16(),
                    error: agm_wire::cloudcode::GoogleError {
                        code: status.as_u16(),
                        message,
                        status: String::new(),
                        details: Vec::new(),
                    },
                    retry_after: None,
                });
            }
            return Err(UpstreamError::from_status(
                url,
                status.as_u16(),
                &body,
                None,
            ));
        }
        let raw: RawTokenResponse = decode(url, &body)?;
        Ok(TokenGrant {
            access_token: raw.access_token,
            expires_in: Duration::from_secs(raw.expires_in.unwrap_or(3599)),
            refresh_token: raw.refresh_token.filter(|t| !t.is_empty()),
        })
    }

    /// The signed-in user's e-mail.
    pub async fn user_info(&self, access_token: &str) -> Result<UserInfo, UpstreamError> {
        let url = &self.config.userinfo_url;
        let request = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .header(USER_AGENT, &self.config.setup_user_agent)
            .timeout(self.config.setup_timeout);
        let body = send(url, request).await?;
        decode(url, &body)
    }

    /// `loadCodeAssist`: the account's project and tier. Tries the endpoints in order.
    pub async fn load_code_assist(
        &self,
        access_token: &str,
        duet_project: Option<&str>,
    ) -> Result<LoadCodeAssistResponse, UpstreamError> {
        let body = LoadCodeAssistRequest {
            cloudaicompanion_project: duet_project.map(str::to_owned),
            metadata: ClientMetadata {
                duet_project: duet_project.map(str::to_owned),
                ..ClientMetadata::default()
            },
        };
        self.with_endpoints(None, |base| {
            let url = format!("{base}/v1internal:loadCodeAssist");
            let request = self
                .http
                .post(&url)
                .bearer_auth(access_token)
                .header(USER_AGENT, &self.config.setup_user_agent)
                .json(&body)
                .timeout(self.config.setup_timeout);
            async move {
                let bytes = send(&url, request).await?;
                decode(&url, &bytes)
            }
        })
        .await
    }

    /// `onboardUser`: asks Google to give the account a project on `tier_id`. The free
    /// and legacy tiers take no `project`; the standard tier takes the user's own.
    /// Answers a long-running operation, often not `done` yet (see
    /// [`GoogleClient::get_operation`]).
    pub async fn onboard_user(
        &self,
        access_token: &str,
        tier_id: &str,
        project: Option<&str>,
    ) -> Result<Operation, UpstreamError> {
        let body = OnboardUserRequest {
            tier_id: tier_id.to_owned(),
            cloudaicompanion_project: project.map(str::to_owned),
            metadata: ClientMetadata {
                duet_project: project.map(str::to_owned),
                ..ClientMetadata::default()
            },
        };
        self.setup_post(access_token, "onboardUser", &body).await
    }

    /// Reads a long-running operation by its `name` (`operations/<id>`):
    /// `GET {base}/v1internal/{name}`.
    pub async fn get_operation(
        &self,
        access_token: &str,
        name: &str,
    ) -> Result<Operation, UpstreamError> {
        let name = name.trim_start_matches('/');
        self.with_endpoints(None, |base| {
            let url = format!("{base}/v1internal/{name}");
            let request = self
                .http
                .get(&url)
                .bearer_auth(access_token)
                .header(USER_AGENT, &self.config.setup_user_agent)
                .timeout(self.config.setup_timeout);
            async move {
                let bytes = send(&url, request).await?;
                decode(&url, &bytes)
            }
        })
        .await
    }

    /// `fetchAvailableModels`: the models the account may use in `project`, each with
    /// its quota (remaining fraction, reset time), and the deprecated model ids.
    pub async fn fetch_available_models(
        &self,
        access_token: &str,
        project: &str,
    ) -> Result<AvailableModels, UpstreamError> {
        let body = QuotaRequest {
            project: Some(project.to_owned()),
        };
        self.setup_post(access_token, "fetchAvailableModels", &body)
            .await
    }

    /// `retrieveUserQuotaSummary`: the account's quota windows (5-hour, weekly).
    /// Not every account or endpoint answers it: a 403, 404 or 501 is `Ok(None)`.
    pub async fn retrieve_user_quota_summary(
        &self,
        access_token: &str,
        project: &str,
    ) -> Result<Option<QuotaSummary>, UpstreamError> {
        let body = QuotaRequest {
            project: Some(project.to_owned()),
        };
        match self
            .setup_post(access_token, "retrieveUserQuotaSummary", &body)
            .await
        {
            Ok(summary) => Ok(Some(summary)),
            Err(err) if matches!(err.status(), Some(403 | 404 | 501)) => {
                tracing::debug!(error = %err, "no quota summary for this account");
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// A setup `POST {base}/v1internal:{method}` (setup `User-Agent`, setup timeout),
    /// with endpoint fallback.
    async fn setup_post<B, T>(
        &self,
        access_token: &str,
        method: &str,
        body: &B,
    ) -> Result<T, UpstreamError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        self.with_endpoints(None, |base| {
            let url = format!("{base}/v1internal:{method}");
            let request = self
                .http
                .post(&url)
                .bearer_auth(access_token)
                .header(USER_AGENT, &self.config.setup_user_agent)
                .json(body)
                .timeout(self.config.setup_timeout);
            async move {
                let bytes = send(&url, request).await?;
                decode(&url, &bytes)
            }
        })
        .await
    }

    /// `generateContent`, with endpoint fallback. An empty 200 comes back as an answer
    /// with no candidates.
    pub async fn generate<R: Serialize>(
        &self,
        auth: CallAuth<'_>,
        body: &CloudCodeRequest<R>,
    ) -> Result<CloudCodeResponse, UpstreamError> {
        self.generation_endpoints(auth, |base| {
            let (url, parsed) = self.generation_url(base, GENERATE);
            let request = self.generation_request(&url, parsed, auth, body);
            async move {
                let bytes = send(&url, request).await?;
                if bytes.iter().all(u8::is_ascii_whitespace) {
                    // Google sometimes answers 200 with nothing: an empty answer, which
                    // the caller retries rather than passing on.
                    return Ok(CloudCodeResponse::default());
                }
                decode(&url, &bytes)
            }
        })
        .await
    }

    /// `streamGenerateContent?alt=sse`, with endpoint fallback until one answers 200.
    /// The returned stream yields one item per upstream `data:` line; empty lines are
    /// skipped, a broken connection ends it with an error item.
    pub async fn stream<R: Serialize>(
        &self,
        auth: CallAuth<'_>,
        body: &CloudCodeRequest<R>,
    ) -> Result<ChunkStream, UpstreamError> {
        self.generation_endpoints(auth, |base| {
            let (url, parsed) = self.generation_url(base, STREAM);
            let request = self.generation_request(&url, parsed, auth, body);
            open_sse(url, request)
        })
        .await
    }

    /// `countTokens`: an honest count from Google.
    pub async fn count_tokens(
        &self,
        access_token: &str,
        model: &str,
        contents: Vec<Content>,
    ) -> Result<u64, UpstreamError> {
        let body = CountTokensRequest {
            request: CountTokensInner {
                model: format!("models/{model}"),
                contents,
            },
        };
        let answer: CountTokensResponse = self
            .with_endpoints(None, |base| {
                let url = format!("{base}/v1internal:countTokens");
                let request = self
                    .http
                    .post(&url)
                    .bearer_auth(access_token)
                    .header(USER_AGENT, &self.config.user_agent)
                    .json(&body);
                async move {
                    let bytes = send(&url, request).await?;
                    decode(&url, &bytes)
                }
            })
            .await?;
        Ok(answer.total_tokens)
    }

    /// `{base}/{method}` as text, and parsed when `base` is a configured endpoint.
    fn generation_url(&self, base: &str, method: &str) -> (String, Option<reqwest::Url>) {
        let base = base.trim_end_matches('/');
        match self.generation.urls.iter().find(|u| u.base == base) {
            Some(urls) => {
                let (text, url) = if method == GENERATE {
                    &urls.generate
                } else {
                    &urls.stream
                };
                (text.clone(), Some(url.clone()))
            }
            None => (format!("{base}/{method}"), None),
        }
    }

    fn generation_request<R: Serialize>(
        &self,
        url: &str,
        parsed: Option<reqwest::Url>,
        auth: CallAuth<'_>,
        body: &CloudCodeRequest<R>,
    ) -> reqwest::RequestBuilder {
        let http = self.generation_http();
        let request = match parsed {
            Some(parsed) => http.post(parsed),
            None => http.post(url),
        };
        let mut request = request
            .header(AUTHORIZATION, format!("Bearer {}", auth.access_token))
            .header(CONTENT_TYPE, "application/json")
            .header(
                USER_AGENT,
                auth.code_assist
                    .map_or(self.config.user_agent.as_str(), |style| style.user_agent),
            )
            .json(body);
        if auth.project_header && !body.project.is_empty() {
            request = request.header("x-goog-user-project", &body.project);
        }
        if body.model.starts_with("claude") && body.model.contains("thinking") {
            request = request.header("anthropic-beta", "interleaved-thinking-2025-05-14");
        }
        request
    }

    /// Runs `call` against each Code Assist endpoint in order, moving on only when the
    /// failure is one the next endpoint may not share (docs/PROTOCOL.md §2).
    async fn with_endpoints<T, F, Fut>(
        &self,
        gate: Option<&dyn EndpointGate>,
        call: F,
    ) -> Result<T, UpstreamError>
    where
        F: FnMut(&str) -> Fut,
        Fut: Future<Output = Result<T, UpstreamError>>,
    {
        self.with_these_endpoints(&self.config.code_assist_endpoints, gate, call)
            .await
    }

    /// The generation endpoints of a call: the configured list, or the Code Assist
    /// style's one endpoint.
    async fn generation_endpoints<T, F, Fut>(
        &self,
        auth: CallAuth<'_>,
        call: F,
    ) -> Result<T, UpstreamError>
    where
        F: FnMut(&str) -> Fut,
        Fut: Future<Output = Result<T, UpstreamError>>,
    {
        match auth.code_assist {
            Some(style) => {
                self.with_these_endpoints(&[style.endpoint.to_owned()], auth.gate, call)
                    .await
            }
            None => self.with_endpoints(auth.gate, call).await,
        }
    }

    async fn with_these_endpoints<T, F, Fut>(
        &self,
        endpoints: &[String],
        gate: Option<&dyn EndpointGate>,
        mut call: F,
    ) -> Result<T, UpstreamError>
    where
        F: FnMut(&str) -> Fut,
        Fut: Future<Output = Result<T, UpstreamError>>,
    {
        let mut last = None;
        for base in endpoints {
            let base = base.trim_end_matches('/');
            if let Some(gate) = gate
                && !gate.allow(base)
            {
                tracing::debug!(endpoint = %base, "circuit open; skipping the endpoint");
                if last.is_none() {
                    last = Some(UpstreamError::CircuitOpen {
                        endpoint: base.to_owned(),
                    });
                }
                continue;
            }
            let result = call(base).await;
            // A request agm could not build never reached the endpoint: its breaker
            // hears nothing, neither a failure nor a success.
            if let Some(gate) = gate
                && !matches!(result, Err(UpstreamError::Local { .. }))
            {
                gate.record(
                    base,
                    match &result {
                        Err(err) if err.breaks_circuit() => Err(err),
                        _ => Ok(()),
                    },
                );
            }
            match result {
                Ok(value) => return Ok(value),
                Err(err) if err.tries_next_endpoint() => {
                    tracing::debug!(endpoint = %base, error = %err, "trying the next endpoint");
                    last = Some(err);
                }
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| UpstreamError::Network {
            endpoint: "google.code_assist_endpoints".into(),
            message: "no endpoint configured".into(),
        }))
    }
}

/// One HTTP client: a connection pool per host, HTTP/2 where the server offers it.
fn http_client(config: &GoogleConfig) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(config.connect_timeout)
        .tcp_nodelay(true)
        .tcp_keepalive(Duration::from_secs(60))
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(64)
        // HTTP/2 pings find a dead connection (a NAT that forgot it, a half-open
        // socket) before a request waits on it; only while requests are open.
        .http2_keep_alive_interval(Duration::from_secs(30))
        .http2_keep_alive_timeout(Duration::from_secs(20))
        .build()
}

pub(crate) async fn send(
    url: &str,
    request: reqwest::RequestBuilder,
) -> Result<Bytes, UpstreamError> {
    let response = request.send().await.map_err(|e| network(url, &e))?;
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let body = response.bytes().await.map_err(|e| network(url, &e))?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(UpstreamError::from_status(
            url,
            status.as_u16(),
            &body,
            retry_after,
        ))
    }
}

pub(crate) fn decode<T: DeserializeOwned>(url: &str, body: &[u8]) -> Result<T, UpstreamError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(UpstreamError::Decode {
            endpoint: url.to_owned(),
            message: "empty body".into(),
        });
    }
    serde_json::from_slice(body).map_err(|e| UpstreamError::Decode {
        endpoint: url.to_owned(),
        message: e.to_string(),
    })
}

pub(crate) fn network(url: &str, err: &reqwest::Error) -> UpstreamError {
    if err.is_builder() {
        // Nothing was sent: a value (a header, the URL) the HTTP client refuses.
        return UpstreamError::Local {
            endpoint: url.to_owned(),
            message: err.to_string(),
        };
    }
    let message = if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        "connection failed".to_owned()
    } else {
        // reqwest's Display names the URL; ours already does.
        err.to_string()
    };
    UpstreamError::Network {
        endpoint: url.to_owned(),
        message,
    }
}

pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Sends a streaming request and, on a 200, parses its body as SSE chunks of `T`; any
/// other status becomes the classified error (with `Retry-After`, if sent).
pub(crate) async fn open_sse<T>(
    url: String,
    request: reqwest::RequestBuilder,
) -> Result<SseStream<T>, UpstreamError>
where
    T: DeserializeOwned + Send + 'static,
{
    let response = request.send().await.map_err(|e| network(&url, &e))?;
    let status = response.status();
    if !status.is_success() {
        let retry_after = retry_after(response.headers());
        let body = response.bytes().await.unwrap_or_default();
        return Err(UpstreamError::from_status(
            &url,
            status.as_u16(),
            &body,
            retry_after,
        ));
    }
    Ok(sse_chunks(url, response.bytes_stream()))
}

struct SseState<S, T> {
    url: String,
    body: S,
    parser: SseParser,
    ready: VecDeque<Result<T, UpstreamError>>,
    done: bool,
}

/// Turns an SSE body into one item per non-empty `data:` line (`[DONE]` skipped), each
/// decoded as `T`; a broken connection ends the stream with a `Network` error item.
fn sse_chunks<T, S>(url: String, body: S) -> SseStream<T>
where
    T: DeserializeOwned + Send + 'static,
    S: Stream<Item = Result<Bytes, reqwest::Error>> + Send + Unpin + 'static,
{
    let state = SseState {
        url,
        body,
        parser: SseParser::default(),
        ready: VecDeque::new(),
        done: false,
    };
    Box::pin(futures_util::stream::unfold(
        state,
        |mut state| async move {
            loop {
                if let Some(item) = state.ready.pop_front() {
                    return Some((item, state));
                }
                if state.done {
                    return None;
                }
                match state.body.next().await {
                    Some(Ok(bytes)) => {
                        let events = state.parser.push(&bytes);
                        queue(&mut state.ready, &state.url, events);
                    }
                    Some(Err(e)) => {
                        state.done = true;
                        state.ready.push_back(Err(UpstreamError::Network {
                            endpoint: state.url.clone(),
                            message: format!("the stream broke: {}", error_chain(&e)),
                        }));
                    }
                    None => {
                        state.done = true;
                        let events = state.parser.finish();
                        queue(&mut state.ready, &state.url, events);
                    }
                }
            }
        },
    ))
}

fn queue<T: DeserializeOwned>(
    ready: &mut VecDeque<Result<T, UpstreamError>>,
    url: &str,
    events: Vec<agm_translate::sse::SseEvent>,
) {
    for event in events {
        let data = event.data.trim();
        if data.is_empty() || data == "[DONE]" {
            continue;
        }
        ready.push_back(
            serde_json::from_str(data).map_err(|e| UpstreamError::Decode {
                endpoint: url.to_owned(),
                message: e.to_string(),
            }),
        );
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
