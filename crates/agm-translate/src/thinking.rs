//! Thinking signatures: which model family made them, what to do with them across
//! turns and model switches, and how the caller's signature cache plugs in.
//!
//! A signature is only valid for the model family (and conversation) that made it.
//! The translator asks a [`SignatureStore`] (the pool's TTL'd cache, kept by the
//! caller) whether a signature a client sends back was made by the family it is about
//! to call; when it was not, the thinking goes upstream as plain text (Claude) or is
//! left out (Gemini, which does not read old thoughts). Every signature the upstream
//! hands out is reported back as a [`SeenSignature`] for the caller to store.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// The signature Gemini accepts on a function call whose real signature is lost
/// (documented by Google for histories built without one).
pub const SKIP_SIGNATURE_VALIDATOR: &str = "skip_thought_signature_validator";

/// A family of upstream models that share a signature format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelFamily {
    /// Anthropic models served by Cloud Code (`claude-*`).
    Claude,
    /// Google's models (`gemini-*`).
    Gemini,
    /// Anything else (`gpt-oss-*`, …).
    Other,
}

impl ModelFamily {
    /// The family of an upstream model id.
    pub fn of(upstream_model: &str) -> ModelFamily {
        let model = upstream_model
            .strip_prefix("models/")
            .unwrap_or(upstream_model)
            .to_ascii_lowercase();
        if model.contains("claude") {
            ModelFamily::Claude
        } else if model.contains("gemini") {
            ModelFamily::Gemini
        } else {
            ModelFamily::Other
        }
    }
}

/// What the caller's signature cache knows. Keys are the session id of the request
/// and the signature as the client sent it; implementations should compare
/// signatures by [`signature_bytes`], as clients re-encode them.
pub trait SignatureStore {
    /// The family of the model that produced `signature` in this conversation, when
    /// known.
    fn family_of(&self, session_id: &str, signature: &str) -> Option<ModelFamily>;

    /// The signature that came with tool call `tool_use_id`, for clients that dropped
    /// it (Gemini needs it back on the function call).
    fn for_tool_use(&self, session_id: &str, tool_use_id: &str) -> Option<String>;
}

/// A signature the upstream produced, to be remembered by the caller (keyed by the
/// request's session id and the upstream model's family).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenSignature {
    /// The signature as sent to the client.
    pub signature: String,
    /// The tool call it came with, when it came on a function call.
    pub tool_use_id: Option<String>,
}

/// The bytes a signature encodes, whether the client sent it in standard or URL-safe
/// base64, padded or not; `None` when it is not base64 at all.
pub fn signature_bytes(signature: &str) -> Option<Vec<u8>> {
    let trimmed = signature.trim().trim_end_matches('=');
    if trimmed.contains(['-', '_']) {
        URL_SAFE_NO_PAD.decode(trimmed).ok()
    } else {
        STANDARD_NO_PAD.decode(trimmed).ok()
    }
}

/// The signature in standard base64 for the upstream: URL-safe input is re-encoded,
/// anything else is passed on unchanged.
pub fn upstream_signature(signature: &str) -> String {
    if signature.contains(['-', '_'])
        && let Some(bytes) = signature_bytes(signature)
    {
        return STANDARD.encode(bytes);
    }
    signature.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        assert_eq!(
            ModelFamily::of("claude-sonnet-4-5-thinking"),
            ModelFamily::Claude
        );
        assert_eq!(
            ModelFamily::of("models/gemini-3-flash"),
            ModelFamily::Gemini
        );
        assert_eq!(ModelFamily::of("gpt-oss-120b-medium"), ModelFamily::Other);
    }

    #[test]
    fn signatures_compare_by_bytes() {
        let standard = STANDARD.encode([0xfb, 0xff, 0x01]);
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfb, 0xff, 0x01]);
        assert_ne!(standard, url_safe);
        assert_eq!(signature_bytes(&standard), signature_bytes(&url_safe));
        assert_eq!(upstream_signature(&url_safe), standard);
        assert_eq!(upstream_signature(&standard), standard);
        assert_eq!(signature_bytes("not base64!"), None);
        assert_eq!(upstream_signature("not_base64!"), "not_base64!");
    }
}
