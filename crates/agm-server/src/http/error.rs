//! Every failure a client can see, and how it is written in each client API's own
//! error shape (CONTRACT.md §HTTP).

use std::time::Duration;

use agm_google::UpstreamError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The API a client spoke, which decides the shape of its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKind {
    Anthropic,
    OpenAi,
    Google,
    /// Routes of agm's own (health, admin, unknown paths).
    Agm,
}

/// What went wrong, in the user's words; rendered by [`ApiError::into_response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: the request is wrong.
    InvalidRequest,
    /// 401: missing or unknown client key.
    Authentication,
    /// 403: a keyless gateway refuses a request from a web page or a foreign host name.
    PermissionDenied,
    /// 404: unknown model or route.
    NotFound,
    /// 408: the body did not arrive within `server.body_timeout`.
    RequestTimeout,
    /// 415: a keyless gateway takes JSON bodies only.
    UnsupportedMediaType,
    /// 413: body over `server.max_body`.
    PayloadTooLarge,
    /// 429: every account is rate-limited.
    RateLimited,
    /// 529 for Anthropic, 503 elsewhere: Google is out of capacity.
    Overloaded,
    /// 503: nothing can serve this request (no account, account needs the user).
    Unavailable,
    /// 502: Google failed or sent something unusable.
    UpstreamFailed,
    /// 504: the request took longer than `server.request_timeout`.
    Timeout,
    /// 500: a bug in agm.
    Internal,
}

impl ErrorKind {
    /// A short name, for the request log's `error_class`.
    pub fn name(&self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid-request",
            ErrorKind::Authentication => "authentication",
            ErrorKind::PermissionDenied => "permission-denied",
            ErrorKind::NotFound => "not-found",
            ErrorKind::RequestTimeout => "body-timeout",
            ErrorKind::UnsupportedMediaType => "unsupported-media-type",
            ErrorKind::PayloadTooLarge => "too-large",
            ErrorKind::RateLimited => "rate-limited",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::UpstreamFailed => "upstream-failed",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Internal => "internal",
        }
    }
}

/// Put on an error response, for the request log.
#[derive(Debug, Clone, Copy)]
pub struct ErrorName(pub &'static str);

/// On a 4xx response other than 429: why the request was refused, for the log line
/// `telemetry::track` writes about it (with the route and the client).
#[derive(Debug, Clone)]
pub struct Refusal(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub api: ApiKind,
    pub kind: ErrorKind,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(api: ApiKind, kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            api,
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn invalid(api: ApiKind, message: impl Into<String>) -> ApiError {
        ApiError::new(api, ErrorKind::InvalidRequest, message)
    }

    /// Translates an upstream failure into what the client should read and do.
    pub fn from_upstream(
        api: ApiKind,
        err: &UpstreamError,
        model: &str,
        account: &str,
    ) -> ApiError {
        crate::routing::error::RouteError::from_upstream(err, model, account).into_api(api)
    }

    pub fn status(&self) -> StatusCode {
        match self.kind {
            ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Authentication => StatusCode::UNAUTHORIZED,
            ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Overloaded if self.api == ApiKind::Anthropic => {
                StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
            }
            ErrorKind::Overloaded | ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::UpstreamFailed => StatusCode::BAD_GATEWAY,
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Anthropic's `error.type` for this error.
    pub fn anthropic_type(&self) -> &'static str {
        match self.kind {
            ErrorKind::InvalidRequest
            | ErrorKind::RequestTimeout
            | ErrorKind::UnsupportedMediaType => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::PermissionDenied => "permission_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::PayloadTooLarge => "request_too_large",
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::Overloaded | ErrorKind::Unavailable => "overloaded_error",
            ErrorKind::UpstreamFailed | ErrorKind::Timeout | ErrorKind::Internal => "api_error",
        }
    }

    fn google_status(&self) -> &'static str {
        match self.kind {
            ErrorKind::InvalidRequest
            | ErrorKind::PayloadTooLarge
            | ErrorKind::UnsupportedMediaType => "INVALID_ARGUMENT",
            ErrorKind::Authentication => "UNAUTHENTICATED",
            ErrorKind::PermissionDenied => "PERMISSION_DENIED",
            ErrorKind::RequestTimeout => "DEADLINE_EXCEEDED",
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::RateLimited => "RESOURCE_EXHAUSTED",
            ErrorKind::Overloaded | ErrorKind::Unavailable | ErrorKind::UpstreamFailed => {
                "UNAVAILABLE"
            }
            ErrorKind::Timeout => "DEADLINE_EXCEEDED",
            ErrorKind::Internal => "INTERNAL",
        }
    }

    fn openai_type(&self) -> &'static str {
        match self.kind {
            ErrorKind::InvalidRequest
            | ErrorKind::PayloadTooLarge
            | ErrorKind::NotFound
            | ErrorKind::RequestTimeout
            | ErrorKind::UnsupportedMediaType => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::PermissionDenied => "permission_error",
            ErrorKind::RateLimited => "rate_limit_exceeded",
            _ => "api_error",
        }
    }

    /// The body in the client API's own shape.
    pub fn body(&self) -> serde_json::Value {
        match self.api {
            ApiKind::Anthropic => json!({
                "type": "error",
                "error": {"type": self.anthropic_type(), "message": self.message},
            }),
            ApiKind::OpenAi => json!({
                "error": {"message": self.message, "type": self.openai_type(), "param": null, "code": null},
            }),
            ApiKind::Google | ApiKind::Agm => json!({
                "error": {"code": self.status().as_u16(), "message": self.message, "status": self.google_status()},
            }),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        response
            .extensions_mut()
            .insert(ErrorName(self.kind.name()));
        let status = response.status();
        if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
            response
                .extensions_mut()
                .insert(Refusal(self.message.clone()));
        }
        if let Some(delay) = self.retry_after {
            let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_shape_and_status() {
        let e = ApiError::invalid(ApiKind::Anthropic, "messages: missing");
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            e.body(),
            json!({"type":"error","error":{"type":"invalid_request_error","message":"messages: missing"}})
        );
        let o = ApiError::new(ApiKind::Anthropic, ErrorKind::Overloaded, "busy");
        assert_eq!(o.status().as_u16(), 529);
        assert_eq!(o.body()["error"]["type"], "overloaded_error");
    }

    #[test]
    fn refusals_carry_their_reason_for_the_log() {
        let refused = ApiError::invalid(ApiKind::OpenAi, "tools.3.type: \"x\" tools cannot run")
            .into_response();
        assert_eq!(
            refused.extensions().get::<Refusal>().map(|r| r.0.as_str()),
            Some("tools.3.type: \"x\" tools cannot run")
        );
        let busy = ApiError::new(ApiKind::Anthropic, ErrorKind::Overloaded, "busy").into_response();
        assert!(busy.extensions().get::<Refusal>().is_none());
        let limited =
            ApiError::new(ApiKind::Anthropic, ErrorKind::RateLimited, "slow").into_response();
        assert!(limited.extensions().get::<Refusal>().is_none());
    }

    #[test]
    fn rate_limit_carries_retry_after() {
        let body = r#"{"error":{"code":429,"message":"slow down","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"2.5s"}]}}"#;
        let up = UpstreamError::from_status("h", 429, body.as_bytes(), None);
        let e = ApiError::from_upstream(ApiKind::Anthropic, &up, "gemini-3-flash", "a@b.c");
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            e.message.contains("a@b.c") && e.message.contains("slow down"),
            "{}",
            e.message
        );
        let response = e.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn other_shapes() {
        let e = ApiError::new(ApiKind::OpenAi, ErrorKind::Authentication, "bad key");
        assert_eq!(e.body()["error"]["type"], "authentication_error");
        let g = ApiError::new(ApiKind::Google, ErrorKind::NotFound, "no such model");
        assert_eq!(
            g.body(),
            json!({"error":{"code":404,"message":"no such model","status":"NOT_FOUND"}})
        );
    }
}
