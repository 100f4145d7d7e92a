//! Google's Cloud Code Assist API (`v1internal`): the generation envelope, project
//! discovery, quota, and Google's error shape.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::gemini::{GenerateContentRequest, GenerateContentResponse};

/// The envelope around a Gemini request for `:generateContent` and
/// `:streamGenerateContent`. `R` is the request itself or a reference to it: the
/// gateway wraps `&GenerateContentRequest`, so that each attempt of a request (another
/// account, a retry) serializes the translated request without copying it first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudCodeRequest<R = GenerateContentRequest> {
    pub project: String,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_type: Option<String>,
    pub request: R,
}

/// A generation answer, and every `data:` line of a stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudCodeResponse {
    #[serde(default)]
    pub response: GenerateContentResponse,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// `:countTokens` takes only the model and the contents (a `project` is a 400).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CountTokensRequest {
    pub request: CountTokensInner,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CountTokensInner {
    /// `models/<id>`.
    pub model: String,
    pub contents: Vec<crate::gemini::Content>,
}

/// Client metadata sent with setup calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientMetadata {
    pub ide_type: String,
    pub platform: String,
    pub plugin_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duet_project: Option<String>,
}

impl Default for ClientMetadata {
    fn default() -> Self {
        ClientMetadata {
            ide_type: "ANTIGRAVITY".into(),
            platform: "PLATFORM_UNSPECIFIED".into(),
            plugin_type: "GEMINI".into(),
            duet_project: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadCodeAssistRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudaicompanion_project: Option<String>,
    pub metadata: ClientMetadata,
}

/// `cloudaicompanionProject` comes as a string or as `{ "id": ... }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ProjectRef {
    Id(String),
    Object {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
}

impl ProjectRef {
    pub fn id(&self) -> &str {
        match self {
            ProjectRef::Id(id) | ProjectRef::Object { id, .. } => id,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tier {
    #[serde(default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_default: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_defined_cloudaicompanion_project: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IneligibleTier {
    #[serde(default)]
    pub reason_code: String,
    #[serde(default)]
    pub reason_message: String,
    #[serde(default)]
    pub tier_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_url: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadCodeAssistResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudaicompanion_project: Option<ProjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_tier: Option<Tier>,
    #[serde(default)]
    pub allowed_tiers: Vec<Tier>,
    #[serde(default)]
    pub ineligible_tiers: Vec<IneligibleTier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_tier: Option<Tier>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnboardUserRequest {
    pub tier_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudaicompanion_project: Option<String>,
    pub metadata: ClientMetadata,
}

/// A long-running operation (`onboardUser`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub done: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<OnboardUserResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnboardUserResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudaicompanion_project: Option<ProjectRef>,
}

/// `:fetchAvailableModels` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AvailableModels {
    #[serde(default)]
    pub models: std::collections::BTreeMap<String, ModelInfo>,
    #[serde(default)]
    pub deprecated_model_ids: std::collections::BTreeMap<String, DeprecatedModel>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supports_thinking: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supports_images: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_info: Option<QuotaInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_fraction: Option<f64>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_time: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeprecatedModel {
    #[serde(default)]
    pub new_model_id: String,
}

/// The body of `:fetchAvailableModels` and `:retrieveUserQuotaSummary`:
/// `{"project": <id>}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QuotaRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

/// `:retrieveUserQuotaSummary` answer: groups of quota buckets (a 5-hour and a
/// weekly window).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaSummary {
    #[serde(default)]
    pub groups: Vec<QuotaGroup>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaGroup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(default)]
    pub buckets: Vec<QuotaBucket>,
}

/// One quota window. Like every proto3 JSON answer, a `remainingFraction` of 0 is
/// left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaBucket {
    #[serde(default)]
    pub bucket_id: String,
    /// E.g. `5h`, `weekly`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_fraction: Option<f64>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_time: Option<String>,
}

/// Google's error body: `{"error": {"code", "message", "status", "details"}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GoogleErrorBody {
    pub error: GoogleError,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GoogleError {
    #[serde(default)]
    pub code: u16,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Value>,
}

impl GoogleError {
    /// The `reason` of the first `ErrorInfo` detail, e.g. `RATE_LIMIT_EXCEEDED`.
    pub fn reason(&self) -> Option<&str> {
        self.details
            .iter()
            .filter(|d| {
                d.get("@type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.ends_with("google.rpc.ErrorInfo"))
            })
            .find_map(|d| d.get("reason").and_then(Value::as_str))
    }

    /// A metadata value of the first `ErrorInfo` detail (e.g. `quotaResetDelay`).
    pub fn error_info_metadata(&self, key: &str) -> Option<&str> {
        self.details
            .iter()
            .filter(|d| {
                d.get("@type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.ends_with("google.rpc.ErrorInfo"))
            })
            .find_map(|d| d.get("metadata")?.get(key)?.as_str())
    }

    /// `RetryInfo.retryDelay`, e.g. `"0.539477544s"`.
    pub fn retry_delay(&self) -> Option<&str> {
        self.details
            .iter()
            .filter(|d| {
                d.get("@type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
            })
            .find_map(|d| d.get("retryDelay").and_then(Value::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_borrowed_request_serializes_like_an_owned_one() {
        let request: GenerateContentRequest = serde_json::from_value(serde_json::json!({
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "generationConfig": {"maxOutputTokens": 10},
            "sessionId": "sess-1",
        }))
        .unwrap();
        let owned = CloudCodeRequest {
            project: "p".into(),
            model: "m".into(),
            request_id: Some("agent-1".into()),
            user_agent: Some("antigravity".into()),
            request_type: Some("agent".into()),
            request: request.clone(),
        };
        let borrowed = CloudCodeRequest {
            project: owned.project.clone(),
            model: owned.model.clone(),
            request_id: owned.request_id.clone(),
            user_agent: owned.user_agent.clone(),
            request_type: owned.request_type.clone(),
            request: &request,
        };
        assert_eq!(
            serde_json::to_string(&owned).unwrap(),
            serde_json::to_string(&borrowed).unwrap()
        );
    }

    #[test]
    fn quota_summary_reads_googles_shape() {
        let answer = r#"{"groups":[{"groupId":"default","buckets":[
            {"bucketId":"five-hour","window":"5h","remainingFraction":0.25,"resetTime":"2026-01-01T05:00:00Z"},
            {"bucketId":"weekly","window":"weekly","resetTime":"2026-01-08T00:00:00Z"}]}]}"#;
        let summary: QuotaSummary = serde_json::from_str(answer).unwrap();
        let buckets = &summary.groups[0].buckets;
        assert_eq!(summary.groups[0].group_id.as_deref(), Some("default"));
        assert_eq!(buckets[0].bucket_id, "five-hour");
        assert_eq!(buckets[0].remaining_fraction, Some(0.25));
        assert_eq!(buckets[1].window.as_deref(), Some("weekly"));
        assert_eq!(buckets[1].remaining_fraction, None);
        assert_eq!(
            serde_json::to_value(QuotaRequest {
                project: Some("p".into())
            })
            .unwrap(),
            serde_json::json!({"project": "p"})
        );
    }
}
