//! The official Gemini API (`/v1beta/...` and `/v1/...`), keyed by `x-goog-api-key`
//! or `?key=`: plain `GenerateContentRequest` bodies, answers without the envelope.

use serde_json::{Value, json};

use crate::answer::Answer;
use crate::code_assist::count;
use crate::config::SimModel;
use crate::error::GoogleError;
use crate::generate::respond;
use crate::http::{Ctx, Outcome};
use crate::validate::{self, Flavor};

/// The real API's answers: no key is a 403, a wrong key a 400.
fn check_key(ctx: &Ctx) -> Result<(), GoogleError> {
    let key = ctx.header("x-goog-api-key").or_else(|| ctx.query("key"));
    match key {
        None => Err(GoogleError::new(
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers without established identity). \
             Please use API Key or other form of API consumer identity to call this API.",
        )),
        Some(key) if ctx.sim.has_api_key(key) => Ok(()),
        Some(_) => {
            let mut error =
                GoogleError::invalid_argument("API key not valid. Please pass a valid API key.");
            error.details.push(json!({
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": { "service": "generativelanguage.googleapis.com" },
            }));
            Err(error)
        }
    }
}

fn find_model(
    ctx: &Ctx,
    version: &str,
    model: &str,
    method: &str,
) -> Result<SimModel, GoogleError> {
    let id = model.strip_prefix("models/").unwrap_or(model);
    ctx.sim.gemini_api_model(id).ok_or_else(|| {
        GoogleError::not_found(format!(
            "models/{id} is not found for API version {version}, or is not supported for \
             {method}. Call ListModels to see the list of available models and their supported methods."
        ))
    })
}

/// `:generateContent` and `:streamGenerateContent`.
pub(crate) fn generate(ctx: &Ctx, version: &str, model: &str, stream: bool) -> Outcome {
    check_key(ctx)?;
    validate::gemini_request(&ctx.body)?;
    let method = if stream {
        "streamGenerateContent"
    } else {
        "generateContent"
    };
    let model = find_model(ctx, version, model, method)?;
    validate::generate_semantics(&ctx.body, Flavor::GeminiApi, &model)?;
    Ok(respond(ctx, &model.id, &ctx.body, stream, false))
}

/// `:countTokens`.
pub(crate) fn count_tokens(ctx: &Ctx, version: &str, model: &str) -> Outcome {
    check_key(ctx)?;
    let contents = validate::gemini_count_tokens(&ctx.body)?;
    find_model(ctx, version, model, "countTokens")?;
    Ok(Answer::ok(json!({ "totalTokens": count(contents) })))
}

fn describe(model: &SimModel) -> Value {
    json!({
        "name": format!("models/{}", model.id),
        "version": "001",
        "displayName": model.display_name,
        "description": format!("{} (simulated)", model.display_name),
        "inputTokenLimit": model.max_tokens,
        "outputTokenLimit": model.max_output_tokens,
        "supportedGenerationMethods": ["generateContent", "countTokens", "streamGenerateContent"],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
        "thinking": model.supports_thinking,
    })
}

/// `GET /v1beta/models`.
pub(crate) fn list_models(ctx: &Ctx) -> Outcome {
    check_key(ctx)?;
    let models: Vec<Value> = ctx.sim.gemini_api_models().iter().map(describe).collect();
    Ok(Answer::ok(json!({ "models": models })))
}

/// `GET /v1beta/models/{model}`.
pub(crate) fn get_model(ctx: &Ctx, version: &str, model: &str) -> Outcome {
    check_key(ctx)?;
    let model = find_model(ctx, version, model, "generateContent")?;
    Ok(Answer::ok(describe(&model)))
}
