//! Error answers in Google's shapes: the API error `{"error":{"code","message","status"}}`
//! and OAuth's `{"error","error_description"}`.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::answer::Answer;

/// One field violation of a 400, as listed in a `google.rpc.BadRequest` detail.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Violation {
    pub field: String,
    pub description: String,
}

/// An error in Google's API shape.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GoogleError {
    pub code: u16,
    pub status: &'static str,
    pub message: String,
    pub details: Vec<Value>,
    pub headers: Vec<(String, String)>,
    /// The legacy `errors` list some Google answers still carry
    /// (`[{"message", "domain", "reason"}]`); empty: left out.
    pub errors: Vec<Value>,
}

impl GoogleError {
    pub fn new(code: u16, status: &'static str, message: impl Into<String>) -> Self {
        GoogleError {
            code,
            status,
            message: message.into(),
            details: Vec::new(),
            headers: Vec::new(),
            errors: Vec::new(),
        }
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        GoogleError::new(400, "INVALID_ARGUMENT", message)
    }

    /// A 400 listing field violations: the message is their descriptions, one a line.
    pub fn bad_request(violations: Vec<Violation>) -> Self {
        let message = violations
            .iter()
            .map(|v| v.description.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let field_violations: Vec<Value> = violations
            .iter()
            .map(|v| json!({ "field": v.field, "description": v.description }))
            .collect();
        let mut error = GoogleError::invalid_argument(message);
        error.details.push(json!({
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": field_violations,
        }));
        error
    }

    pub fn unauthenticated() -> Self {
        let mut error = GoogleError::new(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, \
             login cookie or other valid authentication credential. See \
             https://developers.google.com/identity/sign-in/web/devconsole-project.",
        );
        error.details.push(json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "ACCESS_TOKEN_TYPE_UNSUPPORTED",
            "metadata": { "service": "cloudcode-pa.googleapis.com" },
        }));
        error.headers.push((
            "www-authenticate".to_owned(),
            "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"".to_owned(),
        ));
        error
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        GoogleError::new(404, "NOT_FOUND", message)
    }

    /// Cloud Code's 404 for a model it does not serve to this account (unknown,
    /// withdrawn, or not for its tier), as Google sends it:
    /// `{"error":{"code":404,"message":"Requested entity was not found.","errors":
    /// [{"message":…,"domain":"global","reason":"notFound"}],"status":"NOT_FOUND"}}`.
    pub fn model_not_found() -> Self {
        let message = "Requested entity was not found.";
        let mut error = GoogleError::not_found(message);
        error.errors.push(json!({
            "message": message,
            "domain": "global",
            "reason": "notFound",
        }));
        error
    }

    /// The 403 of an account its user must verify at `url`.
    pub fn validation_required(url: &str) -> Self {
        let mut error = GoogleError::new(
            403,
            "PERMISSION_DENIED",
            format!("Verify your account to continue. Visit {url}"),
        );
        error.details.push(json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "VALIDATION_REQUIRED",
            "domain": "cloudcode-pa.googleapis.com",
            "metadata": { "validationUrl": url },
        }));
        error
    }

    pub fn project_denied(project: &str) -> Self {
        let mut error = GoogleError::new(
            403,
            "PERMISSION_DENIED",
            format!("Permission denied on resource project {project}."),
        );
        error.details.push(json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "CONSUMER_INVALID",
            "domain": "googleapis.com",
            "metadata": {
                "consumer": format!("projects/{project}"),
                "service": "cloudcode-pa.googleapis.com",
            },
        }));
        error
    }

    pub fn body(&self) -> Value {
        let mut error = json!({
            "code": self.code,
            "message": self.message,
            "status": self.status,
        });
        if !self.errors.is_empty() {
            error["errors"] = Value::Array(self.errors.clone());
        }
        if !self.details.is_empty() {
            error["details"] = Value::Array(self.details.clone());
        }
        json!({ "error": error })
    }
}

impl From<GoogleError> for Answer {
    fn from(error: GoogleError) -> Self {
        Answer::Json {
            status: StatusCode::from_u16(error.code).unwrap_or(StatusCode::BAD_REQUEST),
            body: error.body(),
            headers: error.headers,
        }
    }
}

/// An OAuth token-endpoint error, always a 400 in the sim.
pub(crate) struct OAuthError {
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            error,
            description: description.into(),
        }
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        OAuthError::new("invalid_grant", description)
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        OAuthError::new("invalid_request", description)
    }
}

impl From<OAuthError> for Answer {
    fn from(error: OAuthError) -> Self {
        let status = if error.error == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        Answer::Json {
            status,
            body: json!({ "error": error.error, "error_description": error.description }),
            headers: Vec::new(),
        }
    }
}
