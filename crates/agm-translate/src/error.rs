//! The one error type of this crate.

use thiserror::Error;

/// A client request that cannot be translated. Every variant maps to Anthropic's
/// `invalid_request_error` (HTTP 400), OpenAI's `invalid_request_error`, and so on,
/// with the error's `Display` text as the message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TranslateError {
    /// The request breaks a rule of the client's API (missing field, bad value).
    #[error("{field}: {message}")]
    Invalid {
        /// Path of the offending field, e.g. `messages.2.content.0`.
        field: String,
        message: String,
    },
    /// The request is valid but asks for something Google's models cannot do.
    #[error("{field}: {message} (not supported by agm)")]
    Unsupported {
        /// Path of the offending field.
        field: String,
        message: String,
    },
}

impl TranslateError {
    /// An [`TranslateError::Invalid`] error.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> TranslateError {
        TranslateError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// An [`TranslateError::Unsupported`] error.
    pub fn unsupported(field: impl Into<String>, message: impl Into<String>) -> TranslateError {
        TranslateError::Unsupported {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Path of the offending field, e.g. `messages.2.content.0`.
    pub fn field(&self) -> &str {
        match self {
            TranslateError::Invalid { field, .. } | TranslateError::Unsupported { field, .. } => {
                field
            }
        }
    }
}
