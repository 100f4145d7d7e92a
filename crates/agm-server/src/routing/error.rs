//! What the router answers when it cannot serve a request: [`RouteError`], the
//! failure in the user's words plus what callers act on (the class of Google's last
//! failure and whose it was, or that no account could serve at all). It carries no
//! client API: the HTTP edge renders it in each API's own shape with
//! [`RouteError::into_api`].

use std::time::Duration;

use agm_google::{ErrorClass, UpstreamError};

use crate::http::error::{ApiError, ApiKind, ErrorKind};

/// Google's last failure in a request, and the account (store id) or API-key label
/// it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastUpstream {
    pub class: ErrorClass,
    pub account: String,
}

/// Why the router could not serve a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteError {
    pub kind: ErrorKind,
    pub message: String,
    pub retry_after: Option<Duration>,
    /// Google's last failure, when the request ended on one.
    pub upstream: Option<LastUpstream>,
    /// No account could serve at all (none set up, none usable): the router may answer
    /// from the official Gemini API instead, or try the next pool.
    pub no_account: bool,
}

/// A client error found while preparing the call (the request's counts, say): the
/// router passes it through unchanged.
impl From<ApiError> for RouteError {
    fn from(e: ApiError) -> RouteError {
        RouteError {
            retry_after: e.retry_after,
            ..RouteError::new(e.kind, e.message)
        }
    }
}

impl RouteError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> RouteError {
        RouteError {
            kind,
            message: message.into(),
            retry_after: None,
            upstream: None,
            no_account: false,
        }
    }

    /// The class of Google's last failure, if the request ended on one.
    pub fn class(&self) -> Option<&ErrorClass> {
        self.upstream.as_ref().map(|u| &u.class)
    }

    /// Whether the pool was out of capacity for this request: rate-limited, overloaded
    /// or without a usable account — the next pool may still serve it.
    pub fn pool_exhausted(&self) -> bool {
        self.no_account || matches!(self.kind, ErrorKind::RateLimited | ErrorKind::Overloaded)
    }

    /// The error in the client's API, as the HTTP edge returns it.
    pub fn into_api(self, api: ApiKind) -> ApiError {
        ApiError {
            retry_after: self.retry_after,
            ..ApiError::new(api, self.kind, self.message)
        }
    }

    /// An upstream failure in words the client can act on. `account` is the account's
    /// store id (never its e-mail) or the API key's label.
    pub fn from_upstream(err: &UpstreamError, model: &str, account: &str) -> RouteError {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let google = err.message();
        let class = err.class(now);
        let (kind, message, retry_after) = match class.clone() {
            ErrorClass::RateLimited { delay } => (
                ErrorKind::RateLimited,
                format!(
                    "{model} is rate-limited on account {account}; retry after the delay. Google said: {google}"
                ),
                delay,
            ),
            ErrorClass::QuotaExhausted { delay } => (
                ErrorKind::RateLimited,
                format!(
                    "the quota for {model} is used up on account {account} until it resets. Google said: {google}"
                ),
                delay,
            ),
            ErrorClass::CapacityExhausted { delay } => (
                ErrorKind::Overloaded,
                format!(
                    "Google has no capacity for {model} right now; retry shortly. Google said: {google}"
                ),
                delay,
            ),
            ErrorClass::ServerError | ErrorClass::Other => (
                ErrorKind::UpstreamFailed,
                format!(
                    "Google's Cloud Code API failed ({}): {google}",
                    err.status().unwrap_or(0)
                ),
                None,
            ),
            ErrorClass::Network => (
                ErrorKind::UpstreamFailed,
                format!("cannot reach Google's Cloud Code API: {err}"),
                None,
            ),
            ErrorClass::ClientOutdated => (
                ErrorKind::UpstreamFailed,
                format!("Google refused the client version agm reports: {google}"),
                None,
            ),
            ErrorClass::Local => (
                ErrorKind::Internal,
                format!("agm could not build the request to Google, so nothing was sent: {err}"),
                None,
            ),
            ErrorClass::Decode => (
                ErrorKind::UpstreamFailed,
                format!("Google's Cloud Code API sent an answer agm cannot read: {err}"),
                None,
            ),
            ErrorClass::Unauthorized | ErrorClass::InvalidGrant => (
                ErrorKind::Unavailable,
                format!(
                    "account {account} is signed out ({google}); sign in again with `agm accounts add`"
                ),
                None,
            ),
            ErrorClass::InvalidApiKey => (
                ErrorKind::Unavailable,
                format!(
                    "the Gemini API key was refused: check safe_mode.gemini_api_keys / GEMINI_API_KEY (Google said: {google})"
                ),
                None,
            ),
            ErrorClass::ValidationRequired { url } => (
                ErrorKind::Unavailable,
                format!(
                    "account {account} needs verification: open {}",
                    url.as_deref()
                        .unwrap_or("the link Google sent to the account")
                ),
                None,
            ),
            ErrorClass::ProjectProblem => (
                ErrorKind::Unavailable,
                format!("account {account} cannot use its Cloud Code project: {google}"),
                None,
            ),
            ErrorClass::Banned => (
                ErrorKind::Unavailable,
                format!("account {account} was disabled by Google: {google}"),
                None,
            ),
            ErrorClass::NotFound => (
                ErrorKind::NotFound,
                format!("model {model} is not available upstream: {google}"),
                None,
            ),
            ErrorClass::PromptTooLong => (
                ErrorKind::InvalidRequest,
                format!("prompt is too long for {model}: {google}"),
                None,
            ),
            ErrorClass::SignatureInvalid | ErrorClass::InvalidArgument => (
                ErrorKind::InvalidRequest,
                format!("Google rejected the request for {model}: {google}"),
                None,
            ),
        };
        RouteError {
            kind,
            message,
            retry_after,
            upstream: Some(LastUpstream {
                class,
                account: account.to_owned(),
            }),
            no_account: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_failure_keeps_its_class_and_account_for_the_caller() {
        let err = UpstreamError::Network {
            endpoint: "https://cloudcode".into(),
            message: "connection reset".into(),
        };
        let route = RouteError::from_upstream(&err, "gemini-9", "acc-1");
        assert_eq!(route.kind, ErrorKind::UpstreamFailed);
        assert!(matches!(route.class(), Some(ErrorClass::Network)));
        assert_eq!(
            route.upstream.as_ref().map(|u| u.account.as_str()),
            Some("acc-1")
        );
        let api = route.into_api(ApiKind::OpenAi);
        assert_eq!(api.kind, ErrorKind::UpstreamFailed);
        assert!(api.message.contains("connection reset"), "{}", api.message);
    }

    #[test]
    fn exhausted_means_limited_overloaded_or_no_account() {
        assert!(RouteError::new(ErrorKind::RateLimited, "x").pool_exhausted());
        assert!(RouteError::new(ErrorKind::Overloaded, "x").pool_exhausted());
        assert!(!RouteError::new(ErrorKind::UpstreamFailed, "x").pool_exhausted());
        let none = RouteError {
            no_account: true,
            ..RouteError::new(ErrorKind::Unavailable, "x")
        };
        assert!(none.pool_exhausted());
    }
}
