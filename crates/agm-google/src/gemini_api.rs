//! The official Gemini API with an API key (docs/PROTOCOL.md §2 "Pools"): the sanctioned,
//! paid path and the safe-mode target.
//!
//! `{gemini_api_base}/v1beta/models/{m}:generateContent`, `:streamGenerateContent?alt=sse`,
//! `:countTokens` and `GET /v1beta/models`, authenticated with the `x-goog-api-key`
//! header. The key never goes into a URL (where logs and error messages would show it)
//! and is scrubbed from every error this module returns. Bodies are the plain
//! `GenerateContentRequest`, without the Cloud Code envelope and without Cloud-Code-only
//! fields (`sessionId`); answers are plain `GenerateContentResponse`s.
//!
//! Errors classify like Code Assist ones ([`UpstreamError::class`]); a missing, wrong,
//! expired or blocked key is [`ErrorClass::InvalidApiKey`](crate::ErrorClass::InvalidApiKey).
//! There is no endpoint fallback: the official API has one base URL.

use std::borrow::Cow;

use agm_wire::gemini::{
    Content, CountTokensResponse, GenerateContentRequest, GenerateContentResponse,
    GenerationConfig, SafetySetting, Tool, ToolConfig,
};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::classify::UpstreamError;
use crate::client::{GoogleClient, SseStream, decode, open_sse, send};

/// Official-API stream chunks, each one `data:` line of the SSE answer.
pub type OfficialChunkStream = SseStream<GenerateContentResponse>;

/// The header the official API reads the key from.
const API_KEY_HEADER: &str = "x-goog-api-key";

/// Upper bound on `models.list` pages followed (1000 models a page).
const MAX_MODEL_PAGES: usize = 20;

#[derive(Serialize)]
struct OfficialCountTokens<'a> {
    contents: &'a [Content],
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModelList {
    #[serde(default)]
    models: Vec<ModelEntry>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct ModelEntry {
    name: String,
}

impl GoogleClient {
    /// `POST {base}/v1beta/models/{model}:generateContent` with an API key. An empty 200
    /// comes back as an answer with no candidates, as for Code Assist.
    pub async fn official_generate(
        &self,
        api_key: &str,
        model: &str,
        request: &GenerateContentRequest,
    ) -> Result<GenerateContentResponse, UpstreamError> {
        let url = self.official_model_url(model, "generateContent");
        let call = async {
            let builder = self
                .official_post(&url, api_key)?
                .json(&official_body(request));
            let bytes = send(&url, builder).await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(GenerateContentResponse::default());
            }
            decode(&url, &bytes)
        };
        call.await.map_err(|e| redact(e, api_key))
    }

    /// `POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse` with an API key.
    /// Errors before the 200 come back as `Err`; after it, the stream yields one item per
    /// `data:` line (empty lines skipped) and ends with an error item if the connection
    /// breaks.
    pub async fn official_stream(
        &self,
        api_key: &str,
        model: &str,
        request: &GenerateContentRequest,
    ) -> Result<OfficialChunkStream, UpstreamError> {
        let url = format!(
            "{}?alt=sse",
            self.official_model_url(model, "streamGenerateContent")
        );
        let call = async {
            let builder = self
                .official_post(&url, api_key)?
                .json(&official_body(request));
            open_sse(url.clone(), builder).await
        };
        call.await.map_err(|e| redact(e, api_key))
    }

    /// `POST {base}/v1beta/models/{model}:countTokens` with `{"contents": [...]}`.
    pub async fn official_count_tokens(
        &self,
        api_key: &str,
        model: &str,
        contents: &[Content],
    ) -> Result<u64, UpstreamError> {
        let url = self.official_model_url(model, "countTokens");
        let call = async {
            let builder = self
                .official_post(&url, api_key)?
                .json(&OfficialCountTokens { contents })
                .timeout(self.config.setup_timeout);
            let bytes = send(&url, builder).await?;
            decode::<CountTokensResponse>(&url, &bytes)
        };
        let answer = call.await.map_err(|e| redact(e, api_key))?;
        Ok(answer.total_tokens)
    }

    /// `GET {base}/v1beta/models`: the model ids the key may use, without the `models/`
    /// prefix, in Google's order. Follows `nextPageToken` (bounded).
    pub async fn official_list_models(&self, api_key: &str) -> Result<Vec<String>, UpstreamError> {
        let url = format!("{}/v1beta/models", self.official_base());
        let call = async {
            let mut names = Vec::new();
            let mut page_token: Option<String> = None;
            for _ in 0..MAX_MODEL_PAGES {
                let mut builder = with_key(self.http.get(&url), &url, api_key)?
                    .query(&[("pageSize", "1000")])
                    .timeout(self.config.setup_timeout);
                if let Some(token) = &page_token {
                    builder = builder.query(&[("pageToken", token.as_str())]);
                }
                let bytes = send(&url, builder).await?;
                let page: ModelList = decode(&url, &bytes)?;
                names.extend(page.models.into_iter().map(|m| {
                    m.name
                        .strip_prefix("models/")
                        .map_or_else(|| m.name.clone(), str::to_owned)
                }));
                match page.next_page_token.filter(|t| !t.is_empty()) {
                    Some(token) => page_token = Some(token),
                    None => break,
                }
            }
            Ok(names)
        };
        call.await.map_err(|e| redact(e, api_key))
    }

    fn official_base(&self) -> &str {
        self.config.gemini_api_base.trim_end_matches('/')
    }

    /// `{base}/v1beta/models/{model}:{method}`; `model` may carry a `models/` prefix and
    /// is percent-encoded so that it cannot change the path.
    fn official_model_url(&self, model: &str, method: &str) -> String {
        let model = model.strip_prefix("models/").unwrap_or(model);
        format!(
            "{}/v1beta/models/{}:{method}",
            self.official_base(),
            encode_segment(model)
        )
    }

    fn official_post(
        &self,
        url: &str,
        api_key: &str,
    ) -> Result<reqwest::RequestBuilder, UpstreamError> {
        Ok(with_key(self.generation_http().post(url), url, api_key)?
            .header(CONTENT_TYPE, "application/json"))
    }
}

/// The request as the official API takes it: every field of `GenerateContentRequest`
/// in its order and with its rules, except the Cloud-Code-only `sessionId`. Borrowed,
/// so that no attempt copies the request.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OfficialBody<'a> {
    contents: &'a [Content],
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<&'a Content>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tools: &'a [Tool],
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<&'a ToolConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation_config: Option<&'a GenerationConfig>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    safety_settings: &'a [SafetySetting],
}

fn official_body(request: &GenerateContentRequest) -> OfficialBody<'_> {
    // Exhaustive: a field added to the request stops this from compiling until it is
    // added above (or left out on purpose, like `session_id`).
    let GenerateContentRequest {
        contents,
        system_instruction,
        tools,
        tool_config,
        generation_config,
        safety_settings,
        session_id: _,
    } = request;
    OfficialBody {
        contents,
        system_instruction: system_instruction.as_ref(),
        tools,
        tool_config: tool_config.as_ref(),
        generation_config: generation_config.as_ref(),
        safety_settings,
    }
}

/// The key as a header value, marked sensitive (kept out of `Debug` output); `None`
/// for an empty key, which is then not sent at all (Google answers that with its 403
/// for unregistered callers). A key that cannot be a header value is refused here,
/// classified as a key problem, without repeating it.
fn api_key_value(url: &str, api_key: &str) -> Result<Option<HeaderValue>, UpstreamError> {
    let key = api_key.trim();
    if key.is_empty() {
        return Ok(None);
    }
    let mut value = HeaderValue::from_str(key).map_err(|_| {
        UpstreamError::from_status(
            url,
            400,
            br#"{"error":{"code":400,"status":"INVALID_ARGUMENT","message":"API key not valid: it holds characters that cannot be sent in an HTTP header."}}"#,
            None,
        )
    })?;
    value.set_sensitive(true);
    Ok(Some(value))
}

/// Adds the key header, when there is a key.
fn with_key(
    builder: reqwest::RequestBuilder,
    url: &str,
    api_key: &str,
) -> Result<reqwest::RequestBuilder, UpstreamError> {
    Ok(match api_key_value(url, api_key)? {
        Some(value) => builder.header(API_KEY_HEADER, value),
        None => builder,
    })
}

/// Removes every occurrence of the key from an error (its message and endpoint), in
/// case an answer or a transport error repeats it.
fn redact(err: UpstreamError, api_key: &str) -> UpstreamError {
    let key = api_key.trim();
    if key.is_empty() {
        return err;
    }
    let scrub = |text: &mut String| {
        if text.contains(key) {
            *text = text.replace(key, "[redacted]");
        }
    };
    let mut err = err;
    match &mut err {
        UpstreamError::Network { endpoint, message }
        | UpstreamError::Decode { endpoint, message }
        | UpstreamError::Local { endpoint, message } => {
            scrub(endpoint);
            scrub(message);
        }
        UpstreamError::CircuitOpen { endpoint } => scrub(endpoint),
        UpstreamError::Status {
            endpoint, error, ..
        } => {
            scrub(endpoint);
            scrub(&mut error.message);
        }
        UpstreamError::InvalidGrant { description } => scrub(description),
    }
    err
}

/// Percent-encodes everything but RFC 3986 unreserved characters (and a `.` or `..`
/// segment whole), so that a model name stays one path segment.
fn encode_segment(segment: &str) -> Cow<'_, str> {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    let dots = segment == "." || segment == "..";
    if !dots && segment.bytes().all(unreserved) {
        return Cow::Borrowed(segment);
    }
    let mut out = String::with_capacity(segment.len() * 3);
    for b in segment.bytes() {
        if unreserved(b) && !dots {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cannot_escape_the_path() {
        assert_eq!(encode_segment("gemini-2.5-flash"), "gemini-2.5-flash");
        assert_eq!(encode_segment(".."), "%2E%2E");
        assert_eq!(encode_segment("x.y/z"), "x.y%2Fz");
        assert_eq!(encode_segment("a/b?c"), "a%2Fb%3Fc");
    }

    #[test]
    fn session_id_is_stripped() {
        let request = GenerateContentRequest {
            session_id: Some("s".into()),
            ..GenerateContentRequest::default()
        };
        let body = serde_json::to_value(official_body(&request)).unwrap_or_default();
        assert!(body.get("sessionId").is_none(), "{body}");
        assert!(body.get("contents").is_some());
    }

    #[test]
    fn the_official_body_is_the_request_without_its_session_id_byte_for_byte() {
        let full: GenerateContentRequest = serde_json::from_value(serde_json::json!({
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "systemInstruction": {"parts": [{"text": "be terse"}]},
            "tools": [{"functionDeclarations": [{"name": "f", "description": "d"}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
            "generationConfig": {"maxOutputTokens": 10, "temperature": 0.5},
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"}],
            "sessionId": "sess-1",
        }))
        .unwrap();
        assert!(full.safety_settings.len() == 1 && full.tool_config.is_some());
        for request in [full, GenerateContentRequest::default()] {
            let plain = GenerateContentRequest {
                session_id: None,
                ..request.clone()
            };
            assert_eq!(
                serde_json::to_string(&official_body(&request)).unwrap(),
                serde_json::to_string(&plain).unwrap()
            );
        }
    }

    #[test]
    fn keys_are_scrubbed() {
        let err = UpstreamError::from_status(
            "https://h/v1beta/models/m:generateContent",
            400,
            br#"{"error":{"code":400,"message":"bad key AIzaSECRET"}}"#,
            None,
        );
        let err = redact(err, "AIzaSECRET");
        assert!(!err.to_string().contains("AIzaSECRET"), "{err}");
        assert!(matches!(api_key_value("u", "  "), Ok(None)));
        let bad = api_key_value("u", "bad\nkey").unwrap_err();
        assert!(!bad.to_string().contains("bad\nkey"));
        assert_eq!(bad.class(0), crate::ErrorClass::InvalidApiKey);
    }
}
