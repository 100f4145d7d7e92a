//! The one axum handler behind every route: read and capture the request, apply
//! latency and early faults, dispatch, then apply answer-shaping faults.

use axum::Router;
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::answer::Answer;
use crate::capture::{CapturedRequest, SimMethod, model_of};
use crate::error::GoogleError;
use crate::fault::FaultAction;
use crate::route::{GeminiCall, Route};
use crate::sim::{RefreshOutcome, Sim};
use crate::{code_assist, gemini_api, generate, oauth};

/// Largest body read (inline images make generation bodies big).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// What a handler returns: the answer, or an error answer.
pub(crate) type Outcome = Result<Answer, Answer>;

pub(crate) fn router(sim: Sim) -> Router {
    Router::new().fallback(handle).with_state(sim)
}

/// A request as the handlers see it.
pub(crate) struct Ctx {
    pub sim: Sim,
    pub route: Route,
    pub method: SimMethod,
    /// The path, without the query.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Value,
    /// The account the bearer token (or refresh token / code) belongs to.
    pub account: Option<String>,
    /// The model the request names, if any.
    pub model: Option<String>,
}

impl Ctx {
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The signed-in account, or Google's 401.
    pub fn require_account(&self) -> Result<&str, GoogleError> {
        self.account
            .as_deref()
            .ok_or_else(GoogleError::unauthenticated)
    }

    /// Whether a stream was asked for as SSE (`?alt=sse`).
    pub fn wants_sse(&self) -> bool {
        self.query("alt") == Some("sse")
    }

    /// Takes an answer-shaping fault (`EmptyBody`, `BreakStreamAfter`, `Reply`) for
    /// this request, once it has passed validation.
    pub fn take_answer_fault(&self) -> Option<FaultAction> {
        self.sim.take_fault(
            self.method,
            self.account.as_deref(),
            self.model.as_deref(),
            false,
        )
    }
}

async fn handle(State(sim): State<Sim>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let route = Route::parse(&parts.method, parts.uri.path());
    let method = route.method();
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let query = parts.uri.query().map(parse_form).unwrap_or_default();
    let bytes = to_bytes(body, MAX_BODY).await;
    let body = match &bytes {
        Ok(bytes) => parse_body(&parts.headers, bytes, method == SimMethod::Token),
        Err(_) => Value::Null,
    };
    let account = resolve_account(&sim, method, &parts.headers, &body);
    let model = model_of(method, &path, &body);
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    tracing::debug!(?method, %path, ?account, "agm-sim request");
    sim.capture(CapturedRequest {
        method,
        path,
        headers,
        body: body.clone(),
        account: account.clone(),
    });

    let latency = sim.config().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if bytes.is_err() {
        return Answer::from(GoogleError::new(
            413,
            "INVALID_ARGUMENT",
            "Request payload size exceeds the limit.",
        ))
        .into_response();
    }
    match sim.take_fault(method, account.as_deref(), model.as_deref(), true) {
        Some(FaultAction::Status {
            status,
            body,
            headers,
        }) => {
            return Answer::Json {
                status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                body,
                headers,
            }
            .into_response();
        }
        Some(FaultAction::Delay(delay)) => tokio::time::sleep(delay).await,
        _ => {}
    }

    let ctx = Ctx {
        sim,
        route,
        method,
        path: parts.uri.path().to_owned(),
        query,
        headers: parts.headers,
        body,
        account,
        model,
    };
    let answer = dispatch(&ctx).unwrap_or_else(|error| error);
    let streamed = matches!(answer, Answer::Stream { .. });
    let response = shape(&ctx, answer).into_response();
    if streamed && response.status().is_success() {
        watch_for_abandon(response, ctx.sim.clone())
    } else {
        response
    }
}

/// Counts the stream as abandoned if its body is dropped before it ended.
fn watch_for_abandon(response: Response, sim: Sim) -> Response {
    struct Watched {
        inner: axum::body::BodyDataStream,
        sim: Sim,
        ended: bool,
    }
    impl futures_util::Stream for Watched {
        type Item = Result<bytes::Bytes, axum::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            let item = std::pin::Pin::new(&mut self.inner).poll_next(cx);
            if matches!(item, std::task::Poll::Ready(None | Some(Err(_)))) {
                self.ended = true;
            }
            item
        }
    }
    impl Drop for Watched {
        fn drop(&mut self) {
            if !self.ended {
                self.sim.record_abandoned_stream();
            }
        }
    }
    let (parts, body) = response.into_parts();
    let watched = Watched {
        inner: body.into_data_stream(),
        sim,
        ended: false,
    };
    Response::from_parts(parts, axum::body::Body::from_stream(watched))
}

fn dispatch(ctx: &Ctx) -> Outcome {
    match &ctx.route {
        Route::Token => oauth::token(ctx),
        Route::Authorize => oauth::authorize(ctx),
        Route::UserInfo => oauth::userinfo(ctx),
        Route::LoadCodeAssist => code_assist::load_code_assist(ctx),
        Route::OnboardUser => code_assist::onboard_user(ctx),
        Route::GetOperation(id) => code_assist::get_operation(ctx, id),
        Route::FetchAvailableModels => code_assist::fetch_available_models(ctx),
        Route::RetrieveUserQuotaSummary => code_assist::retrieve_user_quota_summary(ctx),
        Route::GenerateContent => generate::cloud_code(ctx, false),
        Route::StreamGenerateContent => generate::cloud_code(ctx, true),
        Route::CountTokens => code_assist::count_tokens(ctx),
        Route::Gemini { version, call } => match call {
            GeminiCall::Generate(model) => gemini_api::generate(ctx, version, model, false),
            GeminiCall::Stream(model) => gemini_api::generate(ctx, version, model, true),
            GeminiCall::CountTokens(model) => gemini_api::count_tokens(ctx, version, model),
            GeminiCall::List => gemini_api::list_models(ctx),
            GeminiCall::Get(model) => gemini_api::get_model(ctx, version, model),
        },
        Route::Unknown => Err(GoogleError::not_found(format!(
            "The requested URL {} was not found on this server.",
            ctx.path
        ))
        .into()),
    }
}

/// Applies an `EmptyBody` / `BreakStreamAfter` fault to a successful non-generation
/// answer (generation handlers take their own faults, `Reply` included).
fn shape(ctx: &Ctx, answer: Answer) -> Answer {
    if ctx.method.is_generation() || !answer.is_success() {
        return answer;
    }
    match ctx.take_answer_fault() {
        Some(FaultAction::EmptyBody) => answer.emptied(),
        Some(FaultAction::BreakStreamAfter(chunks)) => answer.broken_after(chunks),
        _ => answer,
    }
}

fn resolve_account(
    sim: &Sim,
    method: SimMethod,
    headers: &HeaderMap,
    body: &Value,
) -> Option<String> {
    if method == SimMethod::Token {
        let field = |name: &str| body.get(name).and_then(Value::as_str);
        return match field("grant_type") {
            Some("refresh_token") => match sim.account_for_refresh_token(field("refresh_token")?) {
                RefreshOutcome::Granted { email } | RefreshOutcome::Revoked { email } => {
                    Some(email)
                }
                RefreshOutcome::Unknown => None,
            },
            Some("authorization_code") => sim.auth_code_account(field("code")?),
            _ => None,
        };
    }
    let token = bearer(headers)?;
    sim.account_for_access_token(token)
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Parses `a=1&b=2` (percent- and plus-decoded) into pairs.
pub(crate) fn parse_form(text: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn parse_body(headers: &HeaderMap, bytes: &[u8], token_endpoint: bool) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let looks_like_json = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{' || *b == b'[');
    let is_form = content_type.starts_with("application/x-www-form-urlencoded")
        || (token_endpoint && !looks_like_json);
    if is_form {
        let text = String::from_utf8_lossy(bytes);
        let object: Map<String, Value> = parse_form(&text)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        return Value::Object(object);
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}
