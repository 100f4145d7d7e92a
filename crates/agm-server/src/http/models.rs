//! `GET /v1/models` and `GET /v1/models/{id}`: one body that the `openai`, `anthropic`
//! and `google-genai` SDKs' `models.list()` / `retrieve()` all read (OpenAI and
//! Anthropic read `data`, google-genai reads `models`), and the Gemini API's own
//! `GET /v1beta/models`.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::app::SharedState;
use crate::http::error::{ApiError, ApiKind, ErrorKind};
use crate::routing::catalogue::{Listed, listing};

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

/// One model in every SDK's shape at once, with agm's own facts under `agm`: the
/// accounts offered it, or, for an alias, the model it resolves to now.
fn entry(listed: &Listed) -> Value {
    let id = listed.id.as_str();
    let name = listed
        .display_name
        .clone()
        .unwrap_or_else(|| display_name(id));
    json!({
        "id": id,
        "object": "model",
        "created": CREATED,
        "owned_by": "agm",
        "type": "model",
        "display_name": name,
        "created_at": CREATED_AT,
        "name": format!("models/{id}"),
        "displayName": name,
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
        "agm": agm_facts(listed),
    })
}

fn agm_facts(listed: &Listed) -> Value {
    match &listed.resolves_to {
        Some(target) => json!({"alias_of": target}),
        None => json!({"accounts": listed.accounts}),
    }
}

fn gemini_entry(listed: &Listed) -> Value {
    let id = listed.id.as_str();
    json!({
        "name": format!("models/{id}"),
        "displayName": listed.display_name.clone().unwrap_or_else(|| display_name(id)),
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
        "agm": agm_facts(listed),
    })
}

/// `GET /v1/models`: what the pool can serve now, and the client names that resolve
/// to it (the living catalogue; the built-in table before the first fetch).
pub async fn list(State(state): State<SharedState>) -> Response {
    let listed = visible(&state);
    let data: Vec<Value> = listed.iter().map(entry).collect();
    axum::Json(json!({
        "object": "list",
        "data": data,
        "has_more": false,
        "first_id": listed.first().map(|l| &l.id),
        "last_id": listed.last().map(|l| &l.id),
        "models": data,
    }))
    .into_response()
}

/// The listing, without the models the request's client key may not use.
fn visible(state: &SharedState) -> Vec<Listed> {
    listing(state)
        .into_iter()
        .filter(|l| {
            crate::http::key_policy::key_may_use(&l.id, l.resolves_to.as_deref().unwrap_or(&l.id))
        })
        .collect()
}

/// `GET /v1/models/{id}`: a listed model, or any name that resolves to one.
pub async fn get_one(State(state): State<SharedState>, Path(id): Path<String>) -> Response {
    match find(&state, ApiKind::OpenAi, &id) {
        Ok(listed) => axum::Json(entry(&listed)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /v1beta/models`.
pub async fn gemini_list(State(state): State<SharedState>) -> Response {
    let models: Vec<Value> = visible(&state).iter().map(gemini_entry).collect();
    axum::Json(json!({ "models": models })).into_response()
}

/// `GET /v1beta/models/{id}`.
pub async fn gemini_get(State(state): State<SharedState>, Path(id): Path<String>) -> Response {
    match find(&state, ApiKind::Google, &id) {
        Ok(listed) => axum::Json(gemini_entry(&listed)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The listed entry for `id`, or, for a name that resolves to an offered model, an
/// alias entry; else the 404 that names the closest models.
fn find(state: &SharedState, api: ApiKind, id: &str) -> Result<Listed, ApiError> {
    let id = id.strip_prefix("models/").unwrap_or(id);
    let listed = listing(state);
    if let Some(found) = listed.into_iter().find(|l| l.id == id) {
        return Ok(found);
    }
    if state.accounts.catalogue.get().is_empty() {
        return Err(ApiError::new(
            api,
            ErrorKind::NotFound,
            format!(
                "model {} not found; available: {}",
                agm_translate::edge::shown(id),
                state.models.get().listed().join(", ")
            ),
        ));
    }
    let resolved = crate::routing::catalogue::resolve(state, api, id)?;
    Ok(Listed {
        id: id.to_owned(),
        display_name: None,
        accounts: Vec::new(),
        resolves_to: Some(resolved.model),
    })
}
