//! Google's errors, classified once (docs/PROTOCOL.md §3) so that callers match on an enum
//! instead of re-parsing strings.

use std::time::Duration;

use agm_wire::cloudcode::{GoogleError, GoogleErrorBody};

use agm_wire::duration::parse_go_duration;

/// A failed call to Google.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// Connection refused, reset, DNS, TLS, or a timeout: nothing usable came back.
    #[error("cannot reach {endpoint}: {message}")]
    Network { endpoint: String, message: String },
    /// Google answered with an error status.
    #[error("{endpoint} answered {status}: {}", .error.message)]
    Status {
        endpoint: String,
        status: u16,
        error: GoogleError,
        retry_after: Option<Duration>,
    },
    /// OAuth refused the refresh token (`invalid_grant`): it is dead until re-auth.
    #[error("the refresh token was refused ({description}); sign in again")]
    InvalidGrant { description: String },
    /// Google answered 200 with something we cannot read.
    #[error("{endpoint} sent an unreadable answer: {message}")]
    Decode { endpoint: String, message: String },
    /// Every endpoint's circuit breaker is open for this account: nothing was sent.
    #[error(
        "every Code Assist endpoint's circuit is open for this account (last: {endpoint}); not calling it until the breaker's timeout has passed"
    )]
    CircuitOpen { endpoint: String },
    /// agm could not build the request (a header value the HTTP client refuses, and the
    /// like): nothing was sent, so it says nothing about Google, the endpoint or the
    /// account. Never retried, never counted by a breaker.
    #[error("agm could not build the request to {endpoint}: {message}")]
    Local { endpoint: String, message: String },
}

/// What an upstream failure means for routing and for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorClass {
    /// A short per-minute limit: wait briefly or switch account.
    RateLimited { delay: Option<Duration> },
    /// The account's quota for this model is gone until the reset.
    QuotaExhausted { delay: Option<Duration> },
    /// Google is out of capacity; not the account's fault.
    CapacityExhausted { delay: Option<Duration> },
    /// 5xx from Google.
    ServerError,
    /// 401: token expired or revoked.
    Unauthorized,
    /// The user must verify the account at `url`.
    ValidationRequired { url: Option<String> },
    /// Project or licence problem (SUBSCRIPTION_REQUIRED, IAM_PERMISSION_DENIED, …).
    ProjectProblem,
    /// Disabled for a Terms of Service violation.
    Banned,
    /// 404: model or endpoint not there.
    NotFound,
    /// A thought signature was refused.
    SignatureInvalid,
    /// The prompt does not fit the model's context.
    PromptTooLong,
    /// Another 400: the request itself is wrong.
    InvalidArgument,
    /// Other 4xx.
    Other,
    /// No answer at all.
    Network,
    /// The refresh token is dead.
    InvalidGrant,
    /// The official Gemini API refused the API key: missing (403 "unregistered
    /// callers"), not valid (400 `API_KEY_INVALID`), expired, blocked or leaked.
    InvalidApiKey,
    /// An unreadable 200.
    Decode,
    /// agm's own failure to build the request: nothing reached Google.
    Local,
    /// Google refuses the client version agm reports (the `antigravity/<version>` or
    /// `GeminiCLI/<version>` User-Agent): "This version of Antigravity is no longer
    /// supported", "Your current version of Antigravity is out of date". The same for
    /// every account: not the account's fault, and no other account helps. The fix is
    /// `[google] antigravity_version` (or `gemini_cli_version`).
    ClientOutdated,
}

/// Delays above this mean the quota is gone, not a per-minute limit.
const QUOTA_DELAY: Duration = Duration::from_secs(5 * 60);

/// Whether a 400 or 403 is the official Gemini API refusing its API key: an
/// `API_KEY_*` reason (`API_KEY_INVALID`, `API_KEY_EXPIRED`, `API_KEY_SERVICE_BLOCKED`,
/// …), "API key not valid" / "expired" / "reported as leaked", or the 403 for a call
/// without a key ("unregistered callers"). `message` is lower-cased.
/// Google's words for a client version it no longer serves (seen since January 2026:
/// "This version of Antigravity is no longer supported. Please update to receive the
/// latest features!", and "Your current version of Antigravity is out of date. Please
/// visit … to download and install the latest version"). `message` is lower-cased.
pub fn client_outdated(message: &str) -> bool {
    // About the client's own version ("this version", "version of Antigravity", "your
    // current version"), not an API version ("not found for API version v1beta").
    let own_version = message.contains("this version")
        || message.contains("version of")
        || message.contains("current version");
    own_version
        && (message.contains("no longer supported")
            || message.contains("out of date")
            || message.contains("please upgrade")
            || message.contains("please update"))
}

/// Google's refusals that arrive as a *successful* answer: the refusal is the model's
/// whole reply (one text part; no finish reason, no usage), which clients then print
/// as the assistant's answer. Two are known (docs/TESTING.md has the sources):
/// - the client version ("This version of Antigravity is no longer supported…", "Gemini
///   3.1 Pro is not available on this version. Please upgrade…"): `ClientOutdated`;
/// - a withdrawn model ("Gemini 3 Pro is no longer available. Please switch to Gemini
///   3.1 Pro…"): `NotFound`, so the catalogue is fetched again and the name resolves
///   to what the account is offered now.
///
/// Returns the error to treat the answer as, or `None` for a real answer.
/// `endpoint` names where it came from, and is only called for a refusal (this runs
/// on every answer).
pub fn refusal_in_answer(
    endpoint: impl FnOnce() -> String,
    answer: &agm_wire::gemini::GenerateContentResponse,
) -> Option<UpstreamError> {
    if answer.finish_reason().is_some() || answer.usage_metadata.is_some() {
        return None;
    }
    let parts = answer.parts();
    let [part] = parts else {
        return None;
    };
    let text = part.text.as_deref()?;
    if text.len() > 400 {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    let status = if client_outdated(&lower) {
        400
    } else if lower.contains("no longer available")
        && (lower.contains("switch to") || lower.contains("latest version"))
    {
        404
    } else {
        return None;
    };
    Some(UpstreamError::Status {
        endpoint: endpoint(),
        status,
        error: GoogleError {
            code: status,
            message: text.to_owned(),
            status: if status == 404 {
                "NOT_FOUND".into()
            } else {
                "FAILED_PRECONDITION".into()
            },
            details: Vec::new(),
        },
        retry_after: None,
    })
}

fn api_key_refused(reason: &str, message: &str) -> bool {
    reason.starts_with("API_KEY_")
        || message.contains("api key not valid")
        || message.contains("api key expired")
        || message.contains("api key was reported as leaked")
        || message.contains("unregistered callers")
}

impl UpstreamError {
    /// Builds the error for a non-success answer, reading Google's body when it is one.
    pub fn from_status(
        endpoint: &str,
        status: u16,
        body: &[u8],
        retry_after: Option<Duration>,
    ) -> UpstreamError {
        let error = serde_json::from_slice::<GoogleErrorBody>(body)
            .map(|b| b.error)
            .unwrap_or_else(|_| GoogleError {
                code: status,
                message: String::from_utf8_lossy(body).chars().take(500).collect(),
                status: String::new(),
                details: Vec::new(),
            });
        UpstreamError::Status {
            endpoint: endpoint.to_owned(),
            status,
            error,
            retry_after,
        }
    }

    /// The HTTP status, for `Status` errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            UpstreamError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Google's message, or ours.
    pub fn message(&self) -> String {
        match self {
            UpstreamError::Status { error, .. } => error.message.clone(),
            other => other.to_string(),
        }
    }

    /// The delay Google asked for: `RetryInfo.retryDelay`, then
    /// `quotaResetDelay`, `quotaResetTimeStamp` (relative to `now_unix`), "reset after X"
    /// in the message, then `Retry-After`. First found wins.
    pub fn delay(&self, now_unix: i64) -> Option<Duration> {
        let UpstreamError::Status {
            error, retry_after, ..
        } = self
        else {
            return None;
        };
        error
            .retry_delay()
            .and_then(parse_go_duration)
            .or_else(|| {
                error
                    .error_info_metadata("quotaResetDelay")
                    .and_then(parse_go_duration)
            })
            .or_else(|| {
                let stamp = error.error_info_metadata("quotaResetTimeStamp")?;
                let at = time::OffsetDateTime::parse(
                    stamp,
                    &time::format_description::well_known::Rfc3339,
                )
                .ok()?;
                let secs = at.unix_timestamp() - now_unix;
                Some(Duration::from_secs(u64::try_from(secs.max(0)).unwrap_or(0)))
            })
            .or_else(|| {
                let lower = error.message.to_ascii_lowercase();
                let at = lower.find("reset after ")? + "reset after ".len();
                let word = error.message[at..]
                    .split(|c: char| c.is_whitespace() || c == ',')
                    .next()?
                    .trim_end_matches('.');
                parse_go_duration(word)
            })
            .or(*retry_after)
    }

    /// What this failure means (see docs/PROTOCOL.md §3).
    pub fn class(&self, now_unix: i64) -> ErrorClass {
        let (status, error) = match self {
            UpstreamError::Network { .. } | UpstreamError::CircuitOpen { .. } => {
                return ErrorClass::Network;
            }
            UpstreamError::InvalidGrant { .. } => return ErrorClass::InvalidGrant,
            UpstreamError::Decode { .. } => return ErrorClass::Decode,
            UpstreamError::Local { .. } => return ErrorClass::Local,
            UpstreamError::Status { status, error, .. } => (*status, error),
        };
        let reason = error.reason().unwrap_or_default();
        let message = error.message.to_ascii_lowercase();
        let delay = self.delay(now_unix);
        if (400..500).contains(&status) && client_outdated(&message) {
            return ErrorClass::ClientOutdated;
        }
        match status {
            429 | 503 | 529
                if reason == "MODEL_CAPACITY_EXHAUSTED"
                    || (message.contains("capacity") && !message.contains("your capacity")) =>
            {
                ErrorClass::CapacityExhausted { delay }
            }
            429 => {
                let per_day = message.contains("perday") || message.contains("per day");
                if reason == "QUOTA_EXHAUSTED" || per_day || delay.is_some_and(|d| d > QUOTA_DELAY)
                {
                    ErrorClass::QuotaExhausted { delay }
                } else {
                    ErrorClass::RateLimited { delay }
                }
            }
            401 => ErrorClass::Unauthorized,
            403 if reason == "VALIDATION_REQUIRED" || message.contains("verify your account") => {
                ErrorClass::ValidationRequired {
                    url: error
                        .error_info_metadata("validationUrl")
                        .map(str::to_owned),
                }
            }
            403 if message.contains("terms of service") => ErrorClass::Banned,
            400 | 403 if api_key_refused(reason, &message) => ErrorClass::InvalidApiKey,
            403 => ErrorClass::ProjectProblem,
            404 => ErrorClass::NotFound,
            400 if message.contains("signature") => ErrorClass::SignatureInvalid,
            400 if message.contains("prompt is too long")
                || message.contains("exceeds the maximum number of tokens") =>
            {
                ErrorClass::PromptTooLong
            }
            400 => ErrorClass::InvalidArgument,
            500..=599 => ErrorClass::ServerError,
            _ => ErrorClass::Other,
        }
    }

    /// Whether this failure counts against the endpoint's circuit breaker: no answer,
    /// a 5xx, or an unreadable 200. Rate limits, quota, auth and other 4xx say nothing
    /// about whether the endpoint works.
    pub fn breaks_circuit(&self) -> bool {
        match self {
            UpstreamError::Network { .. } | UpstreamError::Decode { .. } => true,
            UpstreamError::Status { status, .. } => *status >= 500,
            UpstreamError::InvalidGrant { .. }
            | UpstreamError::CircuitOpen { .. }
            | UpstreamError::Local { .. } => false,
        }
    }

    /// Whether the next Code Assist endpoint should be tried: network errors, 404, 408,
    /// 429 from that host, and 5xx (docs/PROTOCOL.md §2).
    pub fn tries_next_endpoint(&self) -> bool {
        match self {
            UpstreamError::Network { .. } => true,
            UpstreamError::Status { status, .. } => {
                matches!(status, 404 | 408 | 429) || *status >= 500
            }
            UpstreamError::InvalidGrant { .. }
            | UpstreamError::Decode { .. }
            | UpstreamError::CircuitOpen { .. }
            | UpstreamError::Local { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE_LIMIT: &str = r#"{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
      "message": "You have exhausted your capacity on this model. Your quota will reset after 1h16m0s.",
      "details": [
       {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED",
        "domain": "cloudcode-pa.googleapis.com",
        "metadata": {"model": "gemini-3-flash", "quotaResetDelay": "539.477544ms",
                     "quotaResetTimeStamp": "2025-10-20T19:14:08Z"}},
       {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.539477544s"}]}}"#;

    #[test]
    fn an_outdated_client_version_is_its_own_class() {
        for (status, message) in [
            (
                400,
                "This version of Antigravity is no longer supported. Please update to receive the latest features!",
            ),
            (
                403,
                "This version of Antigravity is no longer supported. Please upgrade to receive the latest features.",
            ),
            (
                404,
                "Your current version of Antigravity is out of date. Please visit https://antigravity.google/download to download and install the latest version.",
            ),
        ] {
            let body = format!(r#"{{"error":{{"code":{status},"message":"{message}"}}}}"#);
            let e = UpstreamError::from_status("h", status, body.as_bytes(), None);
            assert_eq!(e.class(0), ErrorClass::ClientOutdated, "{status} {message}");
            assert!(!e.breaks_circuit());
        }
        // Not every mention of a version is about the client's.
        let api_version = UpstreamError::from_status(
            "h",
            404,
            br#"{"error":{"code":404,"message":"models/claude-sonnet-4-5 is not found for API version v1beta, or is not supported for generateContent."}}"#,
            None,
        );
        assert_eq!(api_version.class(0), ErrorClass::NotFound);
        let other = UpstreamError::from_status(
            "h",
            400,
            br#"{"error":{"code":400,"message":"Invalid value at 'request.model'"}}"#,
            None,
        );
        assert_eq!(other.class(0), ErrorClass::InvalidArgument);
        let server = UpstreamError::from_status(
            "h",
            503,
            br#"{"error":{"code":503,"message":"This version is no longer supported"}}"#,
            None,
        );
        assert_eq!(
            server.class(0),
            ErrorClass::ServerError,
            "5xx stay server errors"
        );
    }

    #[test]
    fn retry_info_wins() {
        let e = UpstreamError::from_status(
            "h",
            429,
            RATE_LIMIT.as_bytes(),
            Some(Duration::from_secs(9)),
        );
        assert_eq!(e.delay(0), Some(Duration::from_secs_f64(0.539477544)));
        assert_eq!(
            e.class(0),
            ErrorClass::RateLimited {
                delay: Some(Duration::from_secs_f64(0.539477544))
            }
        );
    }

    #[test]
    fn message_delay_then_retry_after() {
        let body = r#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","message":"Quota will reset after 1h16m0.667s."}}"#;
        let e = UpstreamError::from_status("h", 429, body.as_bytes(), None);
        assert_eq!(e.delay(0), Some(Duration::from_secs_f64(4560.667)));
        assert!(matches!(e.class(0), ErrorClass::QuotaExhausted { .. }));
        let bare = UpstreamError::from_status("h", 429, b"{}", Some(Duration::from_secs(3)));
        assert_eq!(bare.delay(0), Some(Duration::from_secs(3)));
        assert!(matches!(bare.class(0), ErrorClass::RateLimited { .. }));
    }

    #[test]
    fn reset_timestamp_relative_to_now() {
        let body = r#"{"error":{"code":429,"message":"x","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"QUOTA_EXHAUSTED","metadata":{"quotaResetTimeStamp":"1970-01-01T00:01:40Z"}}]}}"#;
        let e = UpstreamError::from_status("h", 429, body.as_bytes(), None);
        assert_eq!(e.delay(40), Some(Duration::from_secs(60)));
        assert!(matches!(e.class(40), ErrorClass::QuotaExhausted { .. }));
    }

    #[test]
    fn classes() {
        let class = |status: u16, body: &str| {
            UpstreamError::from_status("h", status, body.as_bytes(), None).class(0)
        };
        assert_eq!(class(401, "{}"), ErrorClass::Unauthorized);
        assert_eq!(class(500, "oops"), ErrorClass::ServerError);
        assert_eq!(class(404, "{}"), ErrorClass::NotFound);
        assert_eq!(
            class(
                503,
                r#"{"error":{"code":503,"message":"No capacity available for model","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"MODEL_CAPACITY_EXHAUSTED"}]}}"#
            ),
            ErrorClass::CapacityExhausted { delay: None }
        );
        assert_eq!(
            class(
                403,
                r#"{"error":{"code":403,"message":"Please verify your account","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"VALIDATION_REQUIRED","metadata":{"validationUrl":"https://v"}}]}}"#
            ),
            ErrorClass::ValidationRequired {
                url: Some("https://v".into())
            }
        );
        assert_eq!(
            class(
                403,
                r#"{"error":{"code":403,"message":"This service has been disabled for violation of Terms of Service."}}"#
            ),
            ErrorClass::Banned
        );
        assert_eq!(
            class(
                403,
                r#"{"error":{"code":403,"message":"Permission denied on resource project p"}}"#
            ),
            ErrorClass::ProjectProblem
        );
        assert_eq!(
            class(
                400,
                r#"{"error":{"code":400,"message":"Invalid `signature` in `thinking` block"}}"#
            ),
            ErrorClass::SignatureInvalid
        );
        assert_eq!(
            class(
                400,
                r#"{"error":{"code":400,"message":"Prompt is too long"}}"#
            ),
            ErrorClass::PromptTooLong
        );
        assert_eq!(
            class(
                400,
                r#"{"error":{"code":400,"message":"Invalid JSON payload received. Unknown name \"x\""}}"#
            ),
            ErrorClass::InvalidArgument
        );
    }

    #[test]
    fn api_key_refusals() {
        let class = |status: u16, body: &str| {
            UpstreamError::from_status("h", status, body.as_bytes(), None).class(0)
        };
        let invalid = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#;
        assert_eq!(class(400, invalid), ErrorClass::InvalidApiKey);
        assert_eq!(
            class(
                400,
                r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key."}}"#
            ),
            ErrorClass::InvalidApiKey
        );
        assert_eq!(
            class(
                403,
                r#"{"error":{"code":403,"message":"Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.","status":"PERMISSION_DENIED"}}"#
            ),
            ErrorClass::InvalidApiKey
        );
        assert_eq!(
            class(
                403,
                r#"{"error":{"code":403,"message":"Requests are blocked.","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_SERVICE_BLOCKED"}]}}"#
            ),
            ErrorClass::InvalidApiKey
        );
        // Unchanged: other 400s and 403s keep their classes.
        assert_eq!(
            class(400, r#"{"error":{"code":400,"message":"Bad field"}}"#),
            ErrorClass::InvalidArgument
        );
        assert_eq!(
            class(
                403,
                r#"{"error":{"code":403,"message":"Permission denied"}}"#
            ),
            ErrorClass::ProjectProblem
        );
    }

    #[test]
    fn endpoint_fallback_rule() {
        let status = |s: u16| UpstreamError::from_status("h", s, b"{}", None).tries_next_endpoint();
        assert!(status(404) && status(408) && status(429) && status(500) && status(503));
        assert!(!status(400) && !status(401) && !status(403));
        assert!(
            UpstreamError::Network {
                endpoint: "h".into(),
                message: "refused".into()
            }
            .tries_next_endpoint()
        );
    }
}
