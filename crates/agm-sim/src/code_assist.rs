//! Cloud Code Assist setup and quota calls: `loadCodeAssist`, `onboardUser` and its
//! operation, `fetchAvailableModels`, `retrieveUserQuotaSummary`, and `countTokens`.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::answer::Answer;
use crate::clock;
use crate::config::tier_name;
use crate::error::{GoogleError, Violation};
use crate::generate::estimate_tokens;
use crate::http::{Ctx, Outcome};
use crate::sim::{ModelLookup, OperationPoll};
use crate::validate;

const FIVE_HOURS: Duration = Duration::from_secs(5 * 3600);
const ONE_WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

/// Checks a setup call's body: an object (or nothing) with only the given keys, each
/// a string or, for `metadata`, an object of strings.
fn setup_body<'a>(ctx: &'a Ctx, allowed: &[&str]) -> Result<&'a Map<String, Value>, GoogleError> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    let object = match &ctx.body {
        Value::Object(object) => object,
        Value::Null => EMPTY.get_or_init(Map::new),
        _ => {
            return Err(GoogleError::invalid_argument(
                "Invalid JSON payload received. Unexpected token.",
            ));
        }
    };
    let mut violations = Vec::new();
    for key in object.keys() {
        if !allowed.contains(&key.as_str()) {
            violations.push(Violation {
                field: String::new(),
                description: format!(
                    "Invalid JSON payload received. Unknown name \"{key}\": Cannot find field."
                ),
            });
        }
    }
    if violations.is_empty() {
        Ok(object)
    } else {
        Err(GoogleError::bad_request(violations))
    }
}

fn string_field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    match object.get(name) {
        Some(Value::String(text)) => Some(text),
        // Some answers and requests carry `{ "id": ... }` instead of a string.
        Some(Value::Object(inner)) => inner.get("id").and_then(Value::as_str),
        _ => None,
    }
}

/// `POST /v1internal:loadCodeAssist`.
pub(crate) fn load_code_assist(ctx: &Ctx) -> Outcome {
    let email = ctx.require_account()?;
    setup_body(ctx, &["metadata", "cloudaicompanionProject", "mode"])?;
    let Some(account) = ctx.sim.account(email) else {
        return Err(GoogleError::unauthenticated().into());
    };
    if let Some(url) = ctx.sim.validation_url(email) {
        // Google's answer for an account its user must verify: no project, no current
        // tier, and the reason with the URL among the ineligible tiers.
        return Ok(Answer::ok(json!({
            "allowedTiers": [],
            "ineligibleTiers": [{
                "reasonCode": "VALIDATION_REQUIRED",
                "reasonMessage": "Verify your account to continue.",
                "tierId": account.tier,
                "tierName": tier_name(&account.tier),
                "validationUrl": url,
            }],
            "gcpManaged": false,
        })));
    }
    let user_project = account.tier == "standard-tier";
    let tier = json!({
        "id": account.tier,
        "name": tier_name(&account.tier),
        "description": format!("{} (simulated)", tier_name(&account.tier)),
        "userDefinedCloudaicompanionProject": user_project,
    });
    let mut allowed = tier.clone();
    allowed["isDefault"] = json!(true);
    let mut answer = json!({
        "currentTier": tier,
        "allowedTiers": [allowed],
        "gcpManaged": false,
        "manageSubscriptionUri": "https://accounts.google.com/AccountChooser",
    });
    if let Some(project) = account.project {
        answer["cloudaicompanionProject"] = json!(project);
    }
    if account.tier.starts_with("g1-") {
        answer["paidTier"] = json!({ "id": account.tier, "name": tier_name(&account.tier) });
    }
    Ok(Answer::ok(answer))
}

/// `POST /v1internal:onboardUser`.
pub(crate) fn onboard_user(ctx: &Ctx) -> Outcome {
    let email = ctx.require_account()?;
    let body = setup_body(ctx, &["tierId", "metadata", "cloudaicompanionProject"])?;
    let Some(account) = ctx.sim.account(email) else {
        return Err(GoogleError::unauthenticated().into());
    };
    if let Some(url) = ctx.sim.validation_url(email) {
        return Err(GoogleError::validation_required(&url).into());
    }
    let Some(tier_id) = string_field(body, "tierId") else {
        return Err(GoogleError::invalid_argument(
            "* OnboardUserRequest.tier_id: tierId is required\n",
        )
        .into());
    };
    if tier_id != account.tier {
        return Err(GoogleError::invalid_argument(format!(
            "Tier {tier_id} is not allowed for this user (allowed: {}).",
            account.tier
        ))
        .into());
    }
    let requested = string_field(body, "cloudaicompanionProject");
    let project = match (account.tier.as_str(), requested) {
        ("standard-tier", None) => {
            return Err(GoogleError::invalid_argument(
                "The standard tier needs the user's Google Cloud project in cloudaicompanionProject.",
            )
            .into());
        }
        ("standard-tier", Some(project)) => project.to_owned(),
        (_, Some(_)) => {
            return Err(GoogleError::invalid_argument(
                "This tier does not take a user-defined project: send no cloudaicompanionProject.",
            )
            .into());
        }
        (_, None) => account.project.unwrap_or_else(|| {
            let id = uuid::Uuid::new_v4().simple().to_string();
            format!("sim-onboarded-{}", id.get(..8).unwrap_or(&id))
        }),
    };
    let id = ctx.sim.start_onboarding(email, project);
    if ctx.sim.onboarding_is_immediate() {
        return operation_answer(ctx.sim.poll_operation(&id, email), &id);
    }
    Ok(Answer::ok(
        json!({ "name": format!("operations/{id}"), "done": false }),
    ))
}

/// `GET /v1internal/operations/<id>`.
pub(crate) fn get_operation(ctx: &Ctx, id: &str) -> Outcome {
    let email = ctx.require_account()?;
    operation_answer(ctx.sim.poll_operation(id, email), id)
}

/// An operation in Google's shape, done with the onboarding answer or still pending.
fn operation_answer(poll: OperationPoll, id: &str) -> Outcome {
    let name = format!("operations/{id}");
    match poll {
        OperationPoll::NotFound => {
            Err(GoogleError::not_found("Requested entity was not found.").into())
        }
        OperationPoll::Pending => Ok(Answer::ok(json!({ "name": name, "done": false }))),
        OperationPoll::Done { project } => Ok(Answer::ok(json!({
            "name": name,
            "done": true,
            "response": {
                "@type": "type.googleapis.com/google.internal.cloud.code.v1internal.OnboardUserResponse",
                "cloudaicompanionProject": { "id": project, "name": project },
            },
        }))),
    }
}

/// The project a quota call names must be the account's own.
fn check_project(ctx: &Ctx, email: &str, body: &Map<String, Value>) -> Result<(), GoogleError> {
    if let Some(project) = string_field(body, "project") {
        let own = ctx.sim.account(email).and_then(|a| a.project);
        if own.as_deref() != Some(project) {
            return Err(GoogleError::project_denied(project));
        }
    }
    Ok(())
}

/// `POST /v1internal:fetchAvailableModels`: the models this account may use now
/// (not those [for](crate::SimModel::only_for) other tiers or accounts), and the
/// retired ones that have a replacement under `deprecatedModelIds`. Like Google's
/// proto3 JSON, a quota at 0 omits `remainingFraction`.
pub(crate) fn fetch_available_models(ctx: &Ctx) -> Outcome {
    let email = ctx.require_account()?;
    let body = setup_body(ctx, &["project"])?;
    check_project(ctx, email, body)?;
    let reset = clock::rfc3339_after(FIVE_HOURS);
    let models = ctx.sim.models_for(email);
    let mut catalog = Map::new();
    for model in &models {
        let fraction = ctx.sim.remaining_fraction(email, &model.id);
        let mut quota = json!({ "resetTime": reset });
        if fraction > 0.0 {
            quota["remainingFraction"] = json!(fraction);
        }
        catalog.insert(
            model.id.clone(),
            json!({
                "displayName": model.display_name,
                "model": model.id,
                "maxTokens": model.max_tokens,
                "maxOutputTokens": model.max_output_tokens,
                "supportsThinking": model.supports_thinking,
                "supportsImages": model.supports_images,
                "quotaInfo": quota,
            }),
        );
    }
    let mut deprecated = Map::new();
    for retired in ctx.sim.retirements() {
        if let Some(new) = retired.replacement
            && !catalog.contains_key(&retired.id)
        {
            deprecated.insert(retired.id, json!({ "newModelId": new }));
        }
    }
    Ok(Answer::ok(
        json!({ "models": catalog, "deprecatedModelIds": deprecated }),
    ))
}

/// `POST /v1internal:retrieveUserQuotaSummary`: a 5-hour and a weekly bucket, each
/// at the account's lowest per-model fraction.
pub(crate) fn retrieve_user_quota_summary(ctx: &Ctx) -> Outcome {
    let email = ctx.require_account()?;
    let body = setup_body(ctx, &["project", "metadata"])?;
    check_project(ctx, email, body)?;
    let fraction = ctx
        .sim
        .models()
        .iter()
        .map(|m| ctx.sim.remaining_fraction(email, &m.id))
        .fold(1.0_f64, f64::min);
    let bucket = |id: &str, window: &str, reset: Duration| {
        let mut bucket = json!({
            "bucketId": id,
            "window": window,
            "resetTime": clock::rfc3339_after(reset),
        });
        if fraction > 0.0 {
            bucket["remainingFraction"] = json!(fraction);
        }
        bucket
    };
    Ok(Answer::ok(json!({ "groups": [{
        "groupId": "default",
        "buckets": [
            bucket("five-hour", "5h", FIVE_HOURS),
            bucket("weekly", "weekly", ONE_WEEK),
        ],
    }]})))
}

/// `POST /v1internal:countTokens`: exactly `{"request":{"model":"models/<m>","contents"}}`.
pub(crate) fn count_tokens(ctx: &Ctx) -> Outcome {
    ctx.require_account()?;
    let (model, contents) = validate::cloud_count_tokens(&ctx.body)?;
    let Some(model) = model.filter(|m| !m.is_empty()) else {
        return Err(GoogleError::invalid_argument(
            "* CountTokensRequest.model: model is required\n",
        )
        .into());
    };
    if !matches!(
        ctx.sim.lookup_model(ctx.require_account()?, model),
        ModelLookup::Live(_)
    ) {
        return Err(GoogleError::model_not_found().into());
    }
    validate::count_tokens_contents(contents)?;
    Ok(Answer::ok(json!({ "totalTokens": count(contents) })))
}

/// chars/4 of the contents' JSON, at least 1.
pub(crate) fn count(contents: &Value) -> u64 {
    estimate_tokens(&contents.to_string()).max(1)
}
