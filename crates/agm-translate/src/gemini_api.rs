//! The Gemini API (as the google-genai SDKs speak it) passed through the Cloud Code
//! envelope with as little change as possible: the request already is a Gemini
//! request, so only what Cloud Code or the upstream model needs is touched.

use agm_wire::gemini::{GenerateContentRequest, GenerateContentResponse, Part};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use thiserror::Error;

use crate::common::{StreamFault, Transcoder};
use crate::edge::{self, ModelNameError, check_model_name};
use crate::schema::clean_parameters;
use crate::thinking::{SeenSignature, signature_bytes};

/// The Gemini methods agm serves.
pub const ACTIONS: [&str; 3] = ["generateContent", "streamGenerateContent", "countTokens"];

/// Why a Gemini path (what follows `/v1beta/models/`) is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PathError {
    /// Not `<model>:<action>` (no `:`, an empty model, or a `/` in the model after the
    /// optional `models/` prefix): not a Gemini method at all. HTTP 404.
    #[error(
        "no Gemini method at models/{shown}: expected models/<model>:generateContent, :streamGenerateContent or :countTokens"
    )]
    NotAMethod {
        /// The path, escaped and cut (see [`edge::shown`]).
        shown: String,
    },
    /// `<model>:<action>` with an action agm does not serve. HTTP 404.
    #[error(
        "the Gemini method {shown} is not served; agm serves generateContent, streamGenerateContent and countTokens"
    )]
    UnknownAction {
        /// The action, escaped and cut (see [`edge::shown`]).
        shown: String,
    },
    /// A served method with an invalid model name. HTTP 400 (`INVALID_ARGUMENT`).
    #[error(transparent)]
    InvalidModel(#[from] ModelNameError),
}

impl PathError {
    /// Whether the answer is a 404 (the path names no method agm serves) rather than a
    /// 400 (a served method, but an invalid model name).
    pub fn is_not_found(&self) -> bool {
        !matches!(self, PathError::InvalidModel(_))
    }
}

/// `gemini-2.5-flash:generateContent` → (`gemini-2.5-flash`, `generateContent`); an
/// optional `models/` prefix is dropped. The model is checked with
/// [`check_model_name`] and the action is one of [`ACTIONS`].
pub fn parse_model_path(path: &str) -> Result<(&str, &str), PathError> {
    let not_a_method = || PathError::NotAMethod {
        shown: edge::shown(path),
    };
    let (model, action) = path.rsplit_once(':').ok_or_else(not_a_method)?;
    let model = model.strip_prefix("models/").unwrap_or(model);
    if model.is_empty() || model.contains('/') {
        return Err(not_a_method());
    }
    if !ACTIONS.contains(&action) {
        return Err(PathError::UnknownAction {
            shown: edge::shown(action),
        });
    }
    Ok((check_model_name(model)?, action))
}

/// [`parse_model_path`] when only success matters: `None` for anything that is not
/// `<model>:<action>` with a valid model name and a served action.
pub fn split_model_action(path: &str) -> Option<(&str, &str)> {
    parse_model_path(path).ok()
}

/// Prepares a client's Gemini request for the upstream:
/// - thought signatures re-encoded in standard base64 (google-genai re-sends them
///   URL-safe, which the upstream rejects);
/// - function parameter schemas through the schema cleaner (clients write full JSON
///   Schema here too);
/// - Gemini 3's first function call of each model turn signed (the documented dummy
///   when the client dropped the signature);
/// - `sessionId` set so that Cloud Code keeps its prompt cache per conversation.
pub fn prepare_request(
    request: &mut GenerateContentRequest,
    session_id: &str,
    upstream_model: &str,
) {
    let parts = request
        .contents
        .iter_mut()
        .flat_map(|c| c.parts.iter_mut())
        .chain(
            request
                .system_instruction
                .iter_mut()
                .flat_map(|c| c.parts.iter_mut()),
        );
    for part in parts {
        normalize_signature(part);
    }
    for declaration in request
        .tools
        .iter_mut()
        .flat_map(|t| t.function_declarations.iter_mut())
    {
        if let Some(schema) = declaration.parameters.as_ref() {
            declaration.parameters = Some(clean_parameters(schema));
        }
    }
    // A client that dropped Gemini 3's call signature gets the documented dummy, as
    // the other APIs' translations do.
    if crate::thinking::needs_function_call_signatures(upstream_model) {
        crate::thinking::sign_first_function_calls(&mut request.contents);
    }
    if request.session_id.is_none() {
        request.session_id = Some(session_id.to_owned());
    }
}

fn normalize_signature(part: &mut Part) {
    let Some(signature) = part.thought_signature.as_deref() else {
        return;
    };
    if let Some(bytes) = signature_bytes(signature) {
        part.thought_signature = Some(STANDARD.encode(bytes));
    }
}

/// A stable id for a Gemini API conversation: a hash of its first user text.
pub fn session_id(request: &GenerateContentRequest) -> String {
    let first_text = request
        .contents
        .iter()
        .find(|c| c.role.as_deref() != Some("model"))
        .and_then(|c| c.parts.iter().find_map(|p| p.text.as_deref()))
        .unwrap_or_default();
    crate::session::hashed_id("first_user_message", first_text)
}

/// A Gemini API client's stream: each upstream chunk as it came, unwrapped from the
/// Cloud Code envelope, as `data: <json>` frames. A broken stream (or one past its
/// deadline) ends with an error object, as Google's own API does. There are no
/// keep-alives and no signatures to remember: the client keeps its own.
#[derive(Debug, Default)]
pub struct Passthrough {
    done: bool,
}

impl Passthrough {
    /// A passthrough for one stream.
    pub fn new() -> Passthrough {
        Passthrough::default()
    }
}

fn data_frame(json: &str) -> String {
    format!("data: {json}\r\n\r\n")
}

impl Transcoder for Passthrough {
    fn on_chunk(&mut self, chunk: &GenerateContentResponse) -> Vec<String> {
        let json = serde_json::to_string(chunk).unwrap_or_else(|_| "{}".into());
        vec![data_frame(&json)]
    }

    fn on_end(&mut self) -> Vec<String> {
        self.done = true;
        Vec::new()
    }

    fn on_fault(&mut self, fault: &StreamFault) -> Vec<String> {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        let (code, status) = match fault {
            StreamFault::Broken(_) => (502, "UNAVAILABLE"),
            StreamFault::Deadline => (504, "DEADLINE_EXCEEDED"),
        };
        let error =
            json!({"error": {"code": code, "message": fault.to_string(), "status": status}});
        vec![data_frame(&error.to_string())]
    }

    fn finished(&self) -> bool {
        self.done
    }

    fn signatures(&self) -> &[SeenSignature] {
        &[]
    }

    fn keepalive(&self) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agm_wire::gemini::{Content, FunctionDeclaration, Tool};
    use serde_json::json;

    #[test]
    fn splits_paths() {
        assert_eq!(
            split_model_action("gemini-2.5-flash:generateContent"),
            Some(("gemini-2.5-flash", "generateContent"))
        );
        assert_eq!(
            split_model_action("models/gemini-3-pro:streamGenerateContent"),
            Some(("gemini-3-pro", "streamGenerateContent"))
        );
        assert_eq!(split_model_action("gemini-2.5-flash"), None);
        assert_eq!(split_model_action(":generateContent"), None);
        assert_eq!(split_model_action("a/b:generateContent"), None);
        assert_eq!(split_model_action("x:deleteEverything"), None);
        assert_eq!(
            split_model_action("gemini-2.5-flash\n:generateContent"),
            None
        );
    }

    #[test]
    fn parses_paths_strictly() {
        assert_eq!(
            parse_model_path("models/x:generateContent"),
            Ok(("x", "generateContent"))
        );
        assert_eq!(
            parse_model_path("o3:countTokens"),
            Ok(("o3", "countTokens"))
        );
        assert_eq!(
            parse_model_path("claude-sonnet-4-5@20250929:streamGenerateContent"),
            Ok(("claude-sonnet-4-5@20250929", "streamGenerateContent"))
        );
        // The model may hold a colon; the action is after the last one.
        assert_eq!(
            parse_model_path("a:b:countTokens"),
            Ok(("a:b", "countTokens"))
        );
        for not_found in [
            "",
            "::",
            ":generateContent",
            "models/:generateContent",
            "gemini-2.5-flash",
            "a/b:generateContent",
            "models/a/b:generateContent",
            "x:deleteEverything",
            "x:",
            "x:generateContent\n",
        ] {
            let err = parse_model_path(not_found).unwrap_err();
            assert!(err.is_not_found(), "{not_found:?}: {err}");
        }
        for invalid in [
            "gemini-2.5-flash\r\nX-Evil: 1:generateContent",
            "gemini-2.5-flash%0D%0AX-Evil: 1:generateContent",
            "gemini\0:generateContent",
            "gémini:countTokens",
            "..:generateContent",
        ] {
            let err = parse_model_path(invalid).unwrap_err();
            assert!(
                matches!(err, PathError::InvalidModel(_)),
                "{invalid:?}: {err}"
            );
            assert!(!err.is_not_found());
        }
        assert_eq!(
            parse_model_path("gemini-2.5-flash\r\nX-Evil: 1:generateContent")
                .unwrap_err()
                .to_string(),
            r#"the model name "gemini-2.5-flash\r\nX-Evil: 1" is not valid: use at most 128 of the characters A-Z a-z 0-9 . _ - : @ / +"#
        );
        let err = parse_model_path("x\u{1b}[2J:run").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the Gemini method run is not served; agm serves generateContent, streamGenerateContent and countTokens"
        );
        let err = parse_model_path("x\u{1b}[2J").unwrap_err();
        assert!(!err.to_string().chars().any(char::is_control), "{err}");
    }

    #[test]
    fn signatures_become_standard_base64() {
        let bytes = [0xfb_u8, 0xff, 0xfe, 0x01];
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        assert!(url_safe.contains(['-', '_']));
        let mut request = GenerateContentRequest {
            contents: vec![Content::new(
                "model",
                vec![Part {
                    text: Some("t".into()),
                    thought_signature: Some(url_safe),
                    ..Part::default()
                }],
            )],
            ..GenerateContentRequest::default()
        };
        prepare_request(&mut request, "s1", "gemini-2.5-flash");
        assert_eq!(
            request.contents[0].parts[0].thought_signature.as_deref(),
            Some(STANDARD.encode(bytes).as_str())
        );
        assert_eq!(request.session_id.as_deref(), Some("s1"));
    }

    #[test]
    fn schemas_are_cleaned() {
        let mut request = GenerateContentRequest {
            contents: vec![Content::new("user", vec![Part::text("hi")])],
            tools: vec![Tool {
                function_declarations: vec![FunctionDeclaration {
                    name: "f".into(),
                    description: String::new(),
                    parameters: Some(json!({
                        "type": "object",
                        "additionalProperties": false,
                        "$schema": "http://json-schema.org/draft-07/schema#",
                        "properties": {"a": {"type": "string"}}
                    })),
                }],
                ..Tool::default()
            }],
            ..GenerateContentRequest::default()
        };
        prepare_request(&mut request, "s", "gemini-2.5-flash");
        let cleaned = request.tools[0].function_declarations[0]
            .parameters
            .as_ref()
            .unwrap();
        assert!(cleaned.get("additionalProperties").is_none());
        assert!(cleaned.get("$schema").is_none());
        assert_eq!(cleaned["properties"]["a"]["type"], "string");
    }

    #[test]
    fn session_is_stable_per_conversation() {
        let req = |first: &str, second: &str| GenerateContentRequest {
            contents: vec![
                Content::new("user", vec![Part::text(first)]),
                Content::new("model", vec![Part::text("answer")]),
                Content::new("user", vec![Part::text(second)]),
            ],
            ..GenerateContentRequest::default()
        };
        assert_eq!(session_id(&req("a", "b")), session_id(&req("a", "c")));
        assert_ne!(session_id(&req("a", "b")), session_id(&req("x", "b")));
    }
}
