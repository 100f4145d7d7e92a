//! `POST /v1/chat/completions` (OpenAI Chat Completions) and `POST /v1/responses`
//! (OpenAI Responses, as Codex CLI uses it).

use agm_translate::openai_chat::ChatCompletions;
use agm_translate::openai_responses::Responses;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::Response;

use crate::app::SharedState;
use crate::http::conversation::{self, Conversation};
use crate::http::error::ApiKind;

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(state): State<SharedState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    conversation::serve::<ChatCompletions>(&state, body).await
}

/// `POST /v1/responses`.
pub async fn responses(
    State(state): State<SharedState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    conversation::serve::<Responses>(&state, body).await
}

impl Conversation for ChatCompletions {
    const API: ApiKind = ApiKind::OpenAi;
}

impl Conversation for Responses {
    const API: ApiKind = ApiKind::OpenAi;
}
