//! `GET /v1/models` and `GET /v1/models/{id}`: one body that the `openai`, `anthropic`
//! and `google-genai` SDKs' `models.list()` / `retrieve()` all read (OpenAI and
//! Anthropic read `data`, google-genai reads `models`), and the Gemini API's own
//! `GET /v1beta/models`.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::app::SharedState;
use crate::error::{ApiError, ApiKind, ErrorKind};

/// A fixed date for `created`: the catalog is agm's, not a model release history.
const CREATED_AT: &str = "2025-01-01T00:00:00Z";
const CREATED: i64 = 1_735_689_600;

fn display_name(id: &str) -> String {
    id.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One model in every SDK's shape at once.
fn entry(id: &str) -> Value {
    json!({
        "id": id,
        "object": "model",
        "created": CREATED,
        "owned_by": "agm",
        "type": "model",
        "display_name": display_name(id),
        "created_at": CREATED_AT,
        "name": format!("models/{id}"),
        "displayName": display_name(id),
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
    })
}

fn gemini_entry(id: &str) -> Value {
    json!({
        "name": format!("models/{id}"),
        "displayName": display_name(id),
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
    })
}

/// `GET /v1/models`.
pub async fn list(State(state): State<SharedState>) -> Response {
    let ids = state.models.listed();
    let data: Vec<Value> = ids.iter().map(|id| entry(id)).collect();
    axum::Json(json!({
        "object": "list",
        "data": data,
        "has_more": false,
        "first_id": ids.first(),
        "last_id": ids.last(),
        "models": data,
    }))
    .into_response()
}

/// `GET /v1/models/{id}`.
pub async fn get_one(State(state): State<SharedState>, Path(id): Path<String>) -> Response {
    let id = id.strip_prefix("models/").unwrap_or(&id);
    if state.models.listed().contains(&id) {
        axum::Json(entry(id)).into_response()
    } else {
        unknown(&state, ApiKind::OpenAi, id).into_response()
    }
}

/// `GET /v1beta/models`.
pub async fn gemini_list(State(state): State<SharedState>) -> Response {
    let models: Vec<Value> = state
        .models
        .listed()
        .into_iter()
        .map(gemini_entry)
        .collect();
    axum::Json(json!({ "models": models })).into_response()
}

/// `GET /v1beta/models/{id}`.
pub async fn gemini_get(State(state): State<SharedState>, Path(id): Path<String>) -> Response {
    let id = id.strip_prefix("models/").unwrap_or(&id);
    if state.models.listed().contains(&id) {
        axum::Json(gemini_entry(id)).into_response()
    } else {
        unknown(&state, ApiKind::Google, id).into_response()
    }
}

/// The 404 for a model agm does not know, listing the ones it does.
pub fn unknown(state: &SharedState, api: ApiKind, id: &str) -> ApiError {
    ApiError::new(
        api,
        ErrorKind::NotFound,
        format!(
            "model {id} not found; available: {}",
            state.models.listed().join(", ")
        ),
    )
}
