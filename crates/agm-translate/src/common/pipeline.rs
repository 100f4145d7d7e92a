//! The steps every client API's translation ends with, written once.
//!
//! Each API's `to_gemini` reads its own wire format into a [`Draft`]: the session id,
//! the tool-name map, the system parts and contents of the history, the tools and the
//! tool choice, the sampling, output limit and format the client set, the thinking it
//! asked for, whether its tool choice forces a call, and its stop sequences. Then
//! [`Draft::finish`] applies what does not depend on the client's API:
//!
//! 1. **Thinking off.** Anthropic refuses thinking with a forced tool choice, and in a
//!    tool loop whose assistant turn does not start with a signed thought: on Claude
//!    such requests go without thinking, with [`Translated::thinking_off`] saying why
//!    and a note for the log.
//! 2. **Gemini 3's call signatures.** The first function call of each model turn gets
//!    the documented stand-in when its signature is lost.
//! 3. **Sampling.** Claude takes no seed and no penalties, and with thinking on only
//!    the default sampling.
//! 4. **Budget.** `maxOutputTokens` counts the thinking too: it is raised to leave room
//!    for the answer when it does not exceed the budget; the thinking configuration is
//!    set.
//! 5. **The request.** The `GenerateContentRequest` with `sessionId`, and what the
//!    answer's translation needs ([`Translated`]).
//!
//! Also here: the checks on the output limit and the answer format that more than one
//! API makes ([`output_limit`], [`AnswerFormat`]).

use agm_wire::gemini::{
    Content, GenerateContentRequest, GenerationConfig, Part, ThinkingConfig, Tool, ToolConfig,
};
use serde_json::Value;

use crate::common::request::{Translated, system_instruction};
use crate::error::TranslateError;
use crate::schema::clean_schema;
use crate::thinking::{
    ModelFamily, ThinkingOff, claude_thinking_sampling, last_tool_turn_has_signed_thinking,
    leave_room_for_answer, needs_function_call_signatures, sign_first_function_calls,
};
use crate::tools::ToolNameMap;

/// The thinking a client asked for, as Gemini's `thinkingConfig`, and the budget it
/// sets (`None`: the model's own, or a Gemini 3 level).
pub(crate) type ThinkingAsked = (ThinkingConfig, Option<u32>);

/// A request as one API's translation read it, before the shared steps.
#[derive(Debug)]
pub(crate) struct Draft<'a> {
    pub upstream_model: &'a str,
    pub family: ModelFamily,
    pub session_id: String,
    pub tool_names: ToolNameMap,
    /// The system instruction's parts (empty texts are dropped).
    pub system: Vec<Part>,
    pub contents: Vec<Content>,
    pub tools: Vec<Tool>,
    pub tool_config: Option<ToolConfig>,
    /// Sampling, the output limit and the answer format, as the client set them.
    pub generation_config: GenerationConfig,
    /// The thinking the client asked for.
    pub thinking: Option<ThinkingAsked>,
    /// The client's tool choice forces a call.
    pub forced_call: bool,
    /// Whether thoughts go to the client when thinking stays on (the Responses API
    /// shows them only with a summary, or on Claude).
    pub show_thoughts: bool,
    pub stop_sequences: Vec<String>,
    pub notes: Vec<String>,
}

impl Draft<'_> {
    /// Applies the shared steps (see the module docs) and builds the request.
    pub fn finish(self) -> Translated {
        let Draft {
            upstream_model,
            family,
            session_id,
            tool_names,
            system,
            mut contents,
            tools,
            tool_config,
            mut generation_config,
            mut thinking,
            forced_call,
            show_thoughts,
            stop_sequences,
            mut notes,
        } = self;

        let thinking_off = (family == ModelFamily::Claude && thinking.is_some())
            .then(|| thinking_off(forced_call, &contents))
            .flatten();
        if let Some(reason) = thinking_off {
            thinking = None;
            notes.push(reason.to_string());
        }
        if needs_function_call_signatures(upstream_model) {
            sign_first_function_calls(&mut contents);
        }
        let shown = show_thoughts
            && thinking
                .as_ref()
                .is_some_and(|(config, _)| config.include_thoughts == Some(true));
        sampling(&mut generation_config, family, thinking);

        Translated {
            request: GenerateContentRequest {
                contents,
                system_instruction: system_instruction(system),
                tools,
                tool_config,
                generation_config: Some(generation_config),
                safety_settings: Vec::new(),
                session_id: Some(session_id.clone()),
            },
            tool_names,
            session_id,
            thinking: shown,
            thinking_off,
            stop_sequences,
            notes,
        }
    }
}

/// Why Claude must go without thinking, if it must: with a forced tool choice, or in
/// a tool loop whose turn has no signature agm knows.
fn thinking_off(forced_call: bool, contents: &[Content]) -> Option<ThinkingOff> {
    if forced_call {
        Some(ThinkingOff::ForcedToolChoice)
    } else if !last_tool_turn_has_signed_thinking(contents) {
        Some(ThinkingOff::UnsignedToolLoop)
    } else {
        None
    }
}

/// What the model family takes of the client's sampling, and the thinking with the
/// room it needs.
fn sampling(config: &mut GenerationConfig, family: ModelFamily, thinking: Option<ThinkingAsked>) {
    if family == ModelFamily::Claude {
        // Anthropic's models have no seed or penalties.
        config.seed = None;
        config.presence_penalty = None;
        config.frequency_penalty = None;
    }
    let Some((thinking, budget)) = thinking else {
        return;
    };
    if family == ModelFamily::Claude {
        claude_thinking_sampling(config);
    }
    if let Some(budget) = budget {
        leave_room_for_answer(config, budget);
    }
    config.thinking_config = Some(thinking);
}

/// Whether a `toolConfig` forces a call (mode `ANY`).
pub(crate) fn forces_a_call(config: Option<&ToolConfig>) -> bool {
    config
        .and_then(|c| c.function_calling_config.as_ref())
        .is_some_and(|c| c.mode == "ANY")
}

/// The client's output limit as `maxOutputTokens`: 0 is refused, naming `field`.
pub(crate) fn output_limit(field: &str, max: Option<u32>) -> Result<Option<u32>, TranslateError> {
    if max == Some(0) {
        return Err(TranslateError::invalid(field, "must be at least 1"));
    }
    Ok(max)
}

/// The answer format an OpenAI client asked for (`response_format`, `text.format`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum AnswerFormat<'a> {
    Text,
    JsonObject,
    /// JSON following the schema, when there is one.
    JsonSchema(Option<&'a Value>),
    /// A type OpenAI does not define: refused.
    Other(&'a Value),
}

impl AnswerFormat<'_> {
    /// Sets the answer's MIME type and schema; `field` names the client's `type`
    /// field when the format is refused.
    pub fn apply(self, config: &mut GenerationConfig, field: &str) -> Result<(), TranslateError> {
        match self {
            AnswerFormat::Text => {}
            AnswerFormat::JsonObject => {
                config.response_mime_type = Some("application/json".to_owned());
            }
            AnswerFormat::JsonSchema(schema) => {
                config.response_mime_type = Some("application/json".to_owned());
                config.response_schema = schema.map(clean_schema);
            }
            AnswerFormat::Other(value) => {
                let kind = value.get("type").and_then(Value::as_str).unwrap_or("?");
                return Err(TranslateError::invalid(
                    field,
                    format!("must be \"text\", \"json_object\" or \"json_schema\", not \"{kind}\""),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thinking::SKIP_SIGNATURE_VALIDATOR;
    use agm_wire::gemini::FunctionResponse;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    fn draft(model: &str) -> Draft<'_> {
        Draft {
            upstream_model: model,
            family: ModelFamily::of(model),
            session_id: "session".to_owned(),
            tool_names: ToolNameMap::new(),
            system: vec![Part::text("be brief"), Part::text("")],
            contents: vec![Content::new("user", vec![Part::text("hi")])],
            tools: Vec::new(),
            tool_config: None,
            generation_config: GenerationConfig {
                temperature: Some(0.5),
                top_p: Some(0.9),
                top_k: Some(40),
                max_output_tokens: Some(1000),
                seed: Some(7),
                presence_penalty: Some(0.1),
                frequency_penalty: Some(0.2),
                ..GenerationConfig::default()
            },
            thinking: None,
            forced_call: false,
            show_thoughts: true,
            stop_sequences: vec!["END".to_owned()],
            notes: Vec::new(),
        }
    }

    fn budget(tokens: u32) -> Option<ThinkingAsked> {
        Some((
            ThinkingConfig {
                include_thoughts: Some(true),
                thinking_budget: Some(i64::from(tokens)),
                thinking_level: None,
            },
            Some(tokens),
        ))
    }

    /// A model turn that calls `f` without a signature, and its result.
    fn unsigned_tool_loop() -> Vec<Content> {
        let call = crate::common::request::function_call_part(
            Some("call_1"),
            "f".to_owned(),
            json!({}),
            None,
        );
        let result = Part {
            function_response: Some(FunctionResponse {
                id: Some("call_1".to_owned()),
                name: "f".to_owned(),
                response: json!({"output": "ok"}),
            }),
            ..Part::default()
        };
        vec![
            Content::new("user", vec![Part::text("hi")]),
            Content::new("model", vec![call]),
            Content::new("user", vec![result]),
        ]
    }

    #[test]
    fn the_request_carries_the_session_and_the_system_instruction() {
        let t = draft("gemini-2.5-flash").finish();
        assert_eq!(t.request.session_id.as_deref(), Some("session"));
        assert_eq!(t.session_id, "session");
        assert_eq!(
            t.request.system_instruction,
            Some(Content::new("user", vec![Part::text("be brief")]))
        );
        assert_eq!(t.stop_sequences, ["END"]);
        assert_eq!(t.thinking_off, None);
        assert!(!t.thinking);
        let config = t.request.generation_config.unwrap();
        assert_eq!(
            (
                config.seed,
                config.presence_penalty,
                config.frequency_penalty
            ),
            (Some(7), Some(0.1), Some(0.2)),
            "Gemini keeps the seed and penalties"
        );
    }

    #[test]
    fn claude_drops_seed_and_penalties_and_with_thinking_the_sampling() {
        let t = draft("claude-sonnet-4-5").finish();
        let config = t.request.generation_config.unwrap();
        assert_eq!(
            (
                config.seed,
                config.presence_penalty,
                config.frequency_penalty
            ),
            (None, None, None)
        );
        assert_eq!(
            (config.temperature, config.top_p, config.top_k),
            (Some(0.5), Some(0.9), Some(40)),
            "without thinking the sampling stays"
        );

        let mut thinking = draft("claude-sonnet-4-5-thinking");
        thinking.thinking = budget(4096);
        let t = thinking.finish();
        assert!(t.thinking);
        let config = t.request.generation_config.unwrap();
        assert_eq!(
            (config.temperature, config.top_p, config.top_k),
            (None, None, None)
        );
        assert_eq!(config.max_output_tokens, Some(4096 + 1024));
        assert_eq!(
            config.thinking_config.and_then(|c| c.thinking_budget),
            Some(4096)
        );
    }

    #[test]
    fn gemini_keeps_its_sampling_with_thinking() {
        let mut d = draft("gemini-2.5-pro");
        d.thinking = budget(512);
        let config = d.finish().request.generation_config.unwrap();
        assert_eq!(
            (config.temperature, config.top_p, config.top_k),
            (Some(0.5), Some(0.9), Some(40))
        );
        assert_eq!(
            config.max_output_tokens,
            Some(1000),
            "above the budget: kept"
        );
    }

    #[test]
    fn claude_goes_without_thinking_with_a_forced_call_or_an_unsigned_tool_loop() {
        let mut forced = draft("claude-opus-4-5-thinking");
        forced.thinking = budget(2048);
        forced.forced_call = true;
        let t = forced.finish();
        assert_eq!(t.thinking_off, Some(ThinkingOff::ForcedToolChoice));
        assert!(!t.thinking);
        assert_eq!(
            t.notes,
            ["thinking turned off: Claude refuses thinking with a forced tool choice"]
        );
        let config = t.request.generation_config.unwrap();
        assert_eq!(config.thinking_config, None);
        assert_eq!(
            config.max_output_tokens,
            Some(1000),
            "no budget to make room for"
        );

        let mut unsigned = draft("claude-opus-4-5-thinking");
        unsigned.thinking = budget(2048);
        unsigned.contents = unsigned_tool_loop();
        let t = unsigned.finish();
        assert_eq!(t.thinking_off, Some(ThinkingOff::UnsignedToolLoop));
        assert!(t.notes[0].starts_with("thinking turned off: the tool loop"));

        // Gemini reads no old thoughts: the same loop keeps its thinking.
        let mut gemini = draft("gemini-2.5-pro");
        gemini.thinking = budget(2048);
        gemini.forced_call = true;
        gemini.contents = unsigned_tool_loop();
        let t = gemini.finish();
        assert_eq!(t.thinking_off, None);
        assert!(t.thinking);
        assert!(t.notes.is_empty());

        // Without thinking asked for, nothing was turned off.
        let mut plain = draft("claude-opus-4-5-thinking");
        plain.forced_call = true;
        assert_eq!(plain.finish().thinking_off, None);
    }

    #[test]
    fn gemini_3_signs_the_first_call_of_each_model_turn() {
        let mut d = draft("gemini-3-pro-high");
        d.contents = unsigned_tool_loop();
        let t = d.finish();
        assert_eq!(
            t.request.contents[1].parts[0].thought_signature.as_deref(),
            Some(SKIP_SIGNATURE_VALIDATOR)
        );
        let mut d = draft("gemini-2.5-pro");
        d.contents = unsigned_tool_loop();
        assert_eq!(
            d.finish().request.contents[1].parts[0].thought_signature,
            None
        );
    }

    #[test]
    fn thoughts_reach_the_client_only_when_shown_and_included() {
        let mut hidden = draft("gemini-2.5-pro");
        hidden.thinking = budget(512);
        hidden.show_thoughts = false;
        let t = hidden.finish();
        assert!(!t.thinking);
        assert!(
            t.request
                .generation_config
                .and_then(|c| c.thinking_config)
                .is_some(),
            "the model still thinks"
        );
        let mut excluded = draft("gemini-2.5-flash");
        excluded.thinking = Some((
            ThinkingConfig {
                include_thoughts: Some(false),
                thinking_budget: Some(0),
                thinking_level: None,
            },
            Some(0),
        ));
        assert!(!excluded.finish().thinking);
    }

    #[test]
    fn limits_and_formats_are_checked() {
        assert_eq!(output_limit("max_tokens", Some(5)), Ok(Some(5)));
        assert_eq!(output_limit("max_tokens", None), Ok(None));
        assert_eq!(
            output_limit("max_output_tokens", Some(0))
                .unwrap_err()
                .to_string(),
            "max_output_tokens: must be at least 1"
        );
        let mut config = GenerationConfig::default();
        let schema = json!({"type": "object", "additionalProperties": false});
        AnswerFormat::JsonSchema(Some(&schema))
            .apply(&mut config, "text.format.type")
            .unwrap();
        assert_eq!(
            config.response_mime_type.as_deref(),
            Some("application/json")
        );
        assert_eq!(config.response_schema, Some(clean_schema(&schema)));
        let other = json!({"type": "yaml"});
        let err = AnswerFormat::Other(&other)
            .apply(&mut config, "response_format.type")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "response_format.type: must be \"text\", \"json_object\" or \"json_schema\", not \"yaml\""
        );
        assert!(forces_a_call(Some(&ToolConfig {
            function_calling_config: Some(agm_wire::gemini::FunctionCallingConfig {
                mode: "ANY".to_owned(),
                allowed_function_names: Vec::new(),
            }),
        })));
        assert!(!forces_a_call(None));
    }
}
