//! What the sim records about every request it receives.

use serde_json::Value;

/// The Google endpoint a request was addressed to.
///
/// Used to count and filter captured requests and to aim scripted faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SimMethod {
    /// `POST /token` (OAuth token endpoint: refresh or code exchange).
    Token,
    /// `GET /oauth2/v2/userinfo`.
    UserInfo,
    /// `GET /o/oauth2/v2/auth` (the consent screen, auto-approved).
    Authorize,
    /// `POST /v1internal:loadCodeAssist`.
    LoadCodeAssist,
    /// `POST /v1internal:onboardUser`.
    OnboardUser,
    /// `GET /v1internal/operations/<id>` (a long-running onboarding operation).
    GetOperation,
    /// `POST /v1internal:fetchAvailableModels`.
    FetchAvailableModels,
    /// `POST /v1internal:retrieveUserQuotaSummary`.
    RetrieveUserQuotaSummary,
    /// `POST /v1internal:generateContent`.
    GenerateContent,
    /// `POST /v1internal:streamGenerateContent` (SSE with `?alt=sse`, else a JSON array).
    StreamGenerateContent,
    /// `POST /v1internal:countTokens`.
    CountTokens,
    /// `POST /v1beta/models/{m}:generateContent` (official Gemini API, also under `/v1/`).
    GeminiGenerateContent,
    /// `POST /v1beta/models/{m}:streamGenerateContent` (official Gemini API).
    GeminiStreamGenerateContent,
    /// `POST /v1beta/models/{m}:countTokens` (official Gemini API).
    GeminiCountTokens,
    /// `GET /v1beta/models` and `GET /v1beta/models/{m}` (official Gemini API).
    GeminiListModels,
    /// Any path the sim does not serve (answered with a 404 in Google's error shape).
    Unknown,
}

impl SimMethod {
    /// True for the four methods that generate content; only these take a
    /// [`FaultAction::Reply`](crate::FaultAction::Reply).
    pub fn is_generation(self) -> bool {
        matches!(
            self,
            SimMethod::GenerateContent
                | SimMethod::StreamGenerateContent
                | SimMethod::GeminiGenerateContent
                | SimMethod::GeminiStreamGenerateContent
        )
    }

    /// True for the streaming generation methods.
    pub fn is_stream(self) -> bool {
        matches!(
            self,
            SimMethod::StreamGenerateContent | SimMethod::GeminiStreamGenerateContent
        )
    }
}

/// One request as the sim received it, recorded before any validation or fault.
#[derive(Clone, Debug, PartialEq)]
pub struct CapturedRequest {
    /// Which endpoint it was addressed to.
    pub method: SimMethod,
    /// The path with its query string, e.g. `/v1internal:streamGenerateContent?alt=sse`.
    pub path: String,
    /// All headers in arrival order, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The parsed body: JSON as sent, a form body as an object of strings,
    /// `Null` if there was none, a `String` holding the raw text if it did not parse.
    pub body: serde_json::Value,
    /// The account's e-mail, resolved from the bearer token (or, for the token
    /// endpoint, from the refresh token or authorization code).
    pub account: Option<String>,
}

impl CapturedRequest {
    /// The first value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `model` the request named, if any: the envelope's `model`, the
    /// official API path's model, or countTokens' `request.model` without `models/`.
    pub fn model(&self) -> Option<String> {
        model_of(self.method, &self.path, &self.body)
    }
}

/// The model a request is about, used for fault matching and [`CapturedRequest::model`].
pub(crate) fn model_of(method: SimMethod, path: &str, body: &Value) -> Option<String> {
    match method {
        SimMethod::GenerateContent | SimMethod::StreamGenerateContent => {
            body.get("model").and_then(Value::as_str).map(str::to_owned)
        }
        SimMethod::CountTokens => body
            .get("request")
            .and_then(|r| r.get("model"))
            .and_then(Value::as_str)
            .map(|m| m.strip_prefix("models/").unwrap_or(m).to_owned()),
        SimMethod::GeminiGenerateContent
        | SimMethod::GeminiStreamGenerateContent
        | SimMethod::GeminiCountTokens => {
            let path = path.split('?').next().unwrap_or(path);
            let rest = path.split_once("/models/")?.1;
            let (model, _) = rest.rsplit_once(':')?;
            Some(model.to_owned())
        }
        _ => None,
    }
}
