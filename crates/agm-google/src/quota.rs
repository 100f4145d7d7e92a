//! An account's quota as Google reports it (docs/PROTOCOL.md §2 "Quota"):
//! `fetchAvailableModels` (per model: remaining fraction, reset time; deprecated model
//! ids) and, where Google answers it, `retrieveUserQuotaSummary` (5-hour and weekly
//! windows), turned into one [`QuotaSnapshot`] that the server stores as JSON.

use std::collections::BTreeMap;

use agm_wire::cloudcode::{AvailableModels, QuotaInfo, QuotaSummary};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::classify::UpstreamError;
use crate::client::GoogleClient;

/// An account's quota at `fetched_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaSnapshot {
    #[serde(with = "time::serde::rfc3339")]
    pub fetched_at: OffsetDateTime,
    /// The account's tier, when the caller knows it (from discovery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier_id: Option<String>,
    /// Every model the account may use, by id.
    pub models: Vec<ModelQuota>,
    /// Whether `retrieveUserQuotaSummary` answered (if not, `buckets` is empty).
    pub summary_answered: bool,
    #[serde(default)]
    pub buckets: Vec<QuotaWindow>,
    /// Deprecated model id → the id that replaces it, for the model map.
    #[serde(default)]
    pub deprecated: BTreeMap<String, String>,
}

/// One model's quota.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelQuota {
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// 0.0–1.0; `None` when Google reported no quota for the model. Google leaves a
    /// fraction of 0 out, so a quota with no fraction is 0 (exhausted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_fraction: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub reset_time: Option<OffsetDateTime>,
    /// The model's context window in tokens (`maxTokens`), when Google reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
}

/// One window of the quota summary (e.g. `5h`, `weekly`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaWindow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    pub bucket_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// 0.0–1.0; a bucket with no fraction is 0, as for models.
    pub remaining_fraction: f64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub reset_time: Option<OffsetDateTime>,
}

impl QuotaSnapshot {
    /// The snapshot of Google's answers fetched at `fetched_at`. `summary` is `None`
    /// when `retrieveUserQuotaSummary` did not answer.
    pub fn from_answers(
        available: &AvailableModels,
        summary: Option<&QuotaSummary>,
        fetched_at: OffsetDateTime,
    ) -> QuotaSnapshot {
        let models = available
            .models
            .iter()
            .map(|(id, info)| ModelQuota {
                model: id.clone(),
                display_name: info.display_name.clone(),
                remaining_fraction: info.quota_info.as_ref().map(fraction),
                reset_time: info
                    .quota_info
                    .as_ref()
                    .and_then(|q| parse_time(q.reset_time.as_deref())),
                max_tokens: info.max_tokens,
            })
            .collect();
        let buckets = summary
            .map(|s| {
                s.groups
                    .iter()
                    .flat_map(|group| {
                        group.buckets.iter().map(|bucket| QuotaWindow {
                            group_id: group.group_id.clone(),
                            bucket_id: bucket.bucket_id.clone(),
                            window: bucket.window.clone(),
                            remaining_fraction: bucket.remaining_fraction.unwrap_or(0.0),
                            reset_time: parse_time(bucket.reset_time.as_deref()),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let deprecated = available
            .deprecated_model_ids
            .iter()
            .filter(|(_, new)| !new.new_model_id.is_empty())
            .map(|(old, new)| (old.clone(), new.new_model_id.clone()))
            .collect();
        QuotaSnapshot {
            fetched_at,
            tier_id: None,
            models,
            summary_answered: summary.is_some(),
            buckets,
            deprecated,
        }
    }

    /// The same snapshot, naming the account's tier.
    pub fn with_tier(mut self, tier_id: Option<String>) -> QuotaSnapshot {
        self.tier_id = tier_id;
        self
    }

    /// The quota of one model.
    pub fn model(&self, model: &str) -> Option<&ModelQuota> {
        self.models.iter().find(|m| m.model == model)
    }

    /// The models whose quota is used up, with when it comes back.
    pub fn exhausted(&self) -> impl Iterator<Item = &ModelQuota> {
        self.models
            .iter()
            .filter(|m| m.remaining_fraction.is_some_and(|f| f <= 0.0))
    }
}

impl GoogleClient {
    /// Fetches the account's quota: `fetchAvailableModels`, then
    /// `retrieveUserQuotaSummary` where Google answers it. A failed summary does not
    /// lose the models: it is logged and the snapshot says it was not answered.
    pub async fn quota_snapshot(
        &self,
        access_token: &str,
        project: &str,
        fetched_at: OffsetDateTime,
    ) -> Result<QuotaSnapshot, UpstreamError> {
        let models = self.fetch_available_models(access_token, project).await?;
        let summary = match self
            .retrieve_user_quota_summary(access_token, project)
            .await
        {
            Ok(summary) => summary,
            Err(error) => {
                tracing::warn!(%error, "the quota summary failed; keeping the per-model quota");
                None
            }
        };
        Ok(QuotaSnapshot::from_answers(
            &models,
            summary.as_ref(),
            fetched_at,
        ))
    }
}

/// A model's remaining fraction: Google omits a fraction of 0.
fn fraction(quota: &QuotaInfo) -> f64 {
    quota.remaining_fraction.unwrap_or(0.0)
}

fn parse_time(text: Option<&str>) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text?.trim(), &Rfc3339).ok()
}
