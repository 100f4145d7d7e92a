//! Session ids: one stable id per conversation, across requests and restarts, so that
//! sticky routing and the signature cache find the conversation again.

use agm_wire::anthropic::{ContentBlock, MessageContent, MessagesRequest, Role};
use sha2::{Digest, Sha256};

use crate::tools::hex;

/// The session id of an Anthropic request: derived from `metadata.user_id` when the
/// client sent one (Claude Code's is per session), else from the text of the first
/// user message. Always `sess-` and 32 hex digits; the raw inputs never leave.
pub fn session_id(req: &MessagesRequest) -> String {
    if let Some(user_id) = req
        .metadata
        .as_ref()
        .and_then(|m| m.user_id.as_deref())
        .filter(|u| !u.is_empty())
    {
        return hashed_id("user_id", user_id);
    }
    let first_user_text = req
        .messages
        .iter()
        .find(|m| m.role == Role::User)
        .map(|m| message_text(&m.content))
        .unwrap_or_default();
    hashed_id("first_user_message", &first_user_text)
}

/// The session id of an OpenAI request (Chat Completions or Responses): derived from
/// the client's conversation key (`prompt_cache_key`; Codex sends its conversation id)
/// when it sent one, else from the text of the first user message.
pub fn openai_session_id(conversation_key: Option<&str>, first_user_text: &str) -> String {
    match conversation_key.filter(|k| !k.is_empty()) {
        Some(key) => hashed_id("conversation_key", key),
        None => hashed_id("first_user_message", first_user_text),
    }
}

/// A session id from any conversation key (for the other client APIs).
pub fn hashed_id(kind: &str, key: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(kind.as_bytes());
    hasher.update([0]);
    hasher.update(key.as_bytes());
    format!("sess-{}", hex(&hasher.finalize()[..16]))
}

fn message_text(content: &MessageContent) -> String {
    match content {
        MessageContent::Text(text) => text.clone(),
        MessageContent::Blocks(blocks) => {
            let mut out = String::new();
            for block in blocks {
                if let ContentBlock::Text { text, .. } = block {
                    if !out.is_empty() {
                        out.push('\n');
                    }
                    out.push_str(text);
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agm_wire::anthropic::{Message, Metadata};

    fn request(messages: Vec<Message>, user_id: Option<&str>) -> MessagesRequest {
        MessagesRequest {
            model: "m".into(),
            max_tokens: 10,
            messages,
            metadata: user_id.map(|u| Metadata {
                user_id: Some(u.into()),
            }),
            ..MessagesRequest::default()
        }
    }

    fn user(text: &str) -> Message {
        Message {
            role: Role::User,
            content: MessageContent::Blocks(vec![ContentBlock::text(text)]),
        }
    }

    fn assistant(text: &str) -> Message {
        Message {
            role: Role::Assistant,
            content: MessageContent::Text(text.into()),
        }
    }

    #[test]
    fn the_same_conversation_keeps_its_id() {
        let first = request(vec![user("fix the bug")], None);
        let later = request(
            vec![user("fix the bug"), assistant("done"), user("thanks")],
            None,
        );
        assert_eq!(session_id(&first), session_id(&later));
        assert_ne!(
            session_id(&first),
            session_id(&request(vec![user("other")], None))
        );
        let id = session_id(&first);
        assert!(id.starts_with("sess-") && id.len() == 37, "{id}");
        // A string and a single text block are the same conversation.
        let plain = request(
            vec![Message {
                role: Role::User,
                content: MessageContent::Text("fix the bug".into()),
            }],
            None,
        );
        assert_eq!(session_id(&plain), id);
    }

    #[test]
    fn user_id_wins_when_present() {
        let a = request(vec![user("x")], Some("user_1_session_a"));
        let b = request(vec![user("y")], Some("user_1_session_a"));
        assert_eq!(session_id(&a), session_id(&b));
        assert_ne!(session_id(&a), session_id(&request(vec![user("x")], None)));
    }
}
