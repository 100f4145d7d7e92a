#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The three chat-style APIs end their translation with the same steps
//! (`common::pipeline`): for equivalent requests they must agree on the sampling, the
//! thinking budget and the room left for the answer, on Gemini 3's call signatures,
//! and on when Claude goes without thinking (and why). Each case is one request
//! written in each API's own words.

use agm_translate::anthropic::Messages;
use agm_translate::common::{ChatApi, RequestOptions, ThinkingOff, Translated};
use agm_translate::openai_chat::ChatCompletions;
use agm_translate::openai_responses::Responses;
use agm_translate::thinking::SKIP_SIGNATURE_VALIDATOR;
use agm_wire::gemini::{GenerationConfig, ThinkingConfig};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

fn translate<A: ChatApi>(body: &Value, model: &str) -> Translated {
    let request: A::Request = serde_json::from_value(body.clone()).unwrap();
    A::to_gemini(&request, model, &RequestOptions::default()).unwrap()
}

/// One request in the three APIs' words, for one upstream model.
struct Case {
    name: &'static str,
    model: &'static str,
    anthropic: Value,
    chat: Value,
    responses: Value,
}

impl Case {
    /// The translations, named by API.
    fn translate(&self) -> [(&'static str, Translated); 3] {
        [
            (
                "anthropic",
                translate::<Messages>(&self.anthropic, self.model),
            ),
            ("chat", translate::<ChatCompletions>(&self.chat, self.model)),
            (
                "responses",
                translate::<Responses>(&self.responses, self.model),
            ),
        ]
    }
}

fn config(t: &Translated) -> GenerationConfig {
    t.request.generation_config.clone().unwrap()
}

/// A user turn, a call of `lookup` with no signature, and its result.
fn tool_loop() -> (Value, Value, Value) {
    let anthropic = json!([
        {"role": "user", "content": "look it up"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_1", "name": "lookup", "input": {"q": "x"}}
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "found"}
        ]}
    ]);
    let chat = json!([
        {"role": "user", "content": "look it up"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "found"}
    ]);
    let responses = json!([
        {"role": "user", "content": "look it up"},
        {"type": "function_call", "call_id": "call_1", "name": "lookup",
         "arguments": "{\"q\":\"x\"}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "found"}
    ]);
    (anthropic, chat, responses)
}

fn lookup_tools() -> (Value, Value, Value) {
    let schema = json!({"type": "object", "properties": {"q": {"type": "string"}}});
    (
        json!([{"name": "lookup", "description": "find", "input_schema": schema}]),
        json!([{"type": "function", "function": {"name": "lookup", "description": "find", "parameters": schema}}]),
        json!([{"type": "function", "name": "lookup", "description": "find", "parameters": schema}]),
    )
}

/// Thinking at `budget` (Anthropic) or `effort` (OpenAI), with sampling the client set
/// and a small output limit.
fn thinking_case(name: &'static str, model: &'static str, budget: u32, effort: &str) -> Case {
    Case {
        name,
        model,
        anthropic: json!({
            "model": "m", "max_tokens": 1000, "temperature": 0.5, "top_p": 0.9,
            "thinking": {"type": "enabled", "budget_tokens": budget},
            "messages": [{"role": "user", "content": "hi"}]
        }),
        chat: json!({
            "model": "m", "max_completion_tokens": 1000, "temperature": 0.5, "top_p": 0.9,
            "reasoning_effort": effort,
            "messages": [{"role": "user", "content": "hi"}]
        }),
        responses: json!({
            "model": "m", "max_output_tokens": 1000, "temperature": 0.5, "top_p": 0.9,
            "reasoning": {"effort": effort, "summary": "auto"},
            "input": "hi"
        }),
    }
}

#[test]
fn sampling_and_budget_agree_across_the_apis() {
    // (case, expected generation config)
    let table = [
        (
            // Claude with thinking: only the default sampling, room for the answer.
            thinking_case(
                "claude thinking",
                "claude-sonnet-4-5-thinking",
                8192,
                "medium",
            ),
            GenerationConfig {
                // The limit (1000) is under the budget: budget + max(limit, 1024).
                max_output_tokens: Some(8192 + 1024),
                thinking_config: Some(ThinkingConfig {
                    include_thoughts: Some(true),
                    thinking_budget: Some(8192),
                    thinking_level: None,
                }),
                ..GenerationConfig::default()
            },
        ),
        (
            // Gemini keeps the client's sampling.
            thinking_case("gemini thinking", "gemini-2.5-pro", 24_576, "high"),
            GenerationConfig {
                temperature: Some(0.5),
                top_p: Some(0.9),
                max_output_tokens: Some(24_576 + 1024),
                thinking_config: Some(ThinkingConfig {
                    include_thoughts: Some(true),
                    thinking_budget: Some(24_576),
                    thinking_level: None,
                }),
                ..GenerationConfig::default()
            },
        ),
        (
            // A limit above the budget is kept; Claude's minimum budget applies.
            Case {
                name: "claude minimum budget",
                model: "claude-opus-4-5-thinking",
                anthropic: json!({
                    "model": "m", "max_tokens": 4000, "temperature": 1.0, "top_p": 0.97,
                    "thinking": {"type": "enabled", "budget_tokens": 100},
                    "messages": [{"role": "user", "content": "hi"}]
                }),
                chat: json!({
                    "model": "m", "max_tokens": 4000, "temperature": 1.0, "top_p": 0.97,
                    "reasoning_effort": "minimal",
                    "messages": [{"role": "user", "content": "hi"}]
                }),
                responses: json!({
                    "model": "m", "max_output_tokens": 4000, "temperature": 1.0, "top_p": 0.97,
                    "reasoning": {"effort": "minimal"},
                    "input": "hi"
                }),
            },
            GenerationConfig {
                temperature: Some(1.0),
                top_p: Some(0.97),
                max_output_tokens: Some(4000),
                thinking_config: Some(ThinkingConfig {
                    include_thoughts: Some(true),
                    thinking_budget: Some(1024),
                    thinking_level: None,
                }),
                ..GenerationConfig::default()
            },
        ),
        (
            // No thinking asked for: the sampling as the client set it.
            Case {
                name: "no thinking",
                model: "claude-sonnet-4-5",
                anthropic: json!({
                    "model": "m", "max_tokens": 300, "temperature": 0.2, "top_p": 0.5,
                    "messages": [{"role": "user", "content": "hi"}]
                }),
                chat: json!({
                    "model": "m", "max_tokens": 300, "temperature": 0.2, "top_p": 0.5,
                    "messages": [{"role": "user", "content": "hi"}]
                }),
                responses: json!({
                    "model": "m", "max_output_tokens": 300, "temperature": 0.2, "top_p": 0.5,
                    "input": "hi"
                }),
            },
            GenerationConfig {
                temperature: Some(0.2),
                top_p: Some(0.5),
                max_output_tokens: Some(300),
                ..GenerationConfig::default()
            },
        ),
    ];
    for (case, expected) in table {
        for (api, t) in case.translate() {
            assert_eq!(config(&t), expected, "{}: {api}", case.name);
            let thinks = expected.thinking_config.is_some();
            assert_eq!(t.thinking, thinks, "{}: {api} shows thoughts", case.name);
            assert_eq!(t.thinking_off, None, "{}: {api}", case.name);
        }
    }
}

#[test]
fn gemini_3_signs_the_first_call_of_each_model_turn_in_every_api() {
    let (anthropic, chat, responses) = tool_loop();
    let case = Case {
        name: "gemini 3 tool loop",
        model: "gemini-3-pro-high",
        anthropic: json!({"model": "m", "max_tokens": 100, "messages": anthropic}),
        chat: json!({"model": "m", "messages": chat}),
        responses: json!({"model": "m", "input": responses}),
    };
    for (api, t) in case.translate() {
        let model_turn = &t.request.contents[1];
        assert_eq!(model_turn.role.as_deref(), Some("model"), "{api}");
        let call = &model_turn.parts[0];
        assert!(call.function_call.is_some(), "{api}: {call:?}");
        assert_eq!(
            call.thought_signature.as_deref(),
            Some(SKIP_SIGNATURE_VALIDATOR),
            "{api}"
        );
    }
    let older = Case {
        model: "gemini-2.5-pro",
        ..case
    };
    for (api, t) in older.translate() {
        assert_eq!(
            t.request.contents[1].parts[0].thought_signature, None,
            "{api}"
        );
    }
}

#[test]
fn claude_goes_without_thinking_for_the_same_reasons_in_every_api() {
    let (tools_a, tools_c, tools_r) = lookup_tools();
    let forced = Case {
        name: "forced tool choice",
        model: "claude-sonnet-4-5-thinking",
        anthropic: json!({
            "model": "m", "max_tokens": 1000, "tools": tools_a, "tool_choice": {"type": "any"},
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "messages": [{"role": "user", "content": "hi"}]
        }),
        chat: json!({
            "model": "m", "max_tokens": 1000, "tools": tools_c, "tool_choice": "required",
            "reasoning_effort": "low",
            "messages": [{"role": "user", "content": "hi"}]
        }),
        responses: json!({
            "model": "m", "max_output_tokens": 1000, "tools": tools_r, "tool_choice": "required",
            "reasoning": {"effort": "low"},
            "input": "hi"
        }),
    };
    let (loop_a, loop_c, loop_r) = tool_loop();
    let (tools_a, tools_c, tools_r) = lookup_tools();
    let unsigned = Case {
        name: "unsigned tool loop",
        model: "claude-sonnet-4-5-thinking",
        anthropic: json!({
            "model": "m", "max_tokens": 1000, "tools": tools_a,
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "messages": loop_a
        }),
        chat: json!({
            "model": "m", "max_tokens": 1000, "tools": tools_c, "reasoning_effort": "low",
            "messages": loop_c
        }),
        responses: json!({
            "model": "m", "max_output_tokens": 1000, "tools": tools_r,
            "reasoning": {"effort": "low"}, "input": loop_r
        }),
    };
    for (case, reason, note) in [
        (
            forced,
            ThinkingOff::ForcedToolChoice,
            "thinking turned off: Claude refuses thinking with a forced tool choice",
        ),
        (
            unsigned,
            ThinkingOff::UnsignedToolLoop,
            "thinking turned off: the tool loop's assistant turn carries no thinking signature agm knows (dropped, or from another model)",
        ),
    ] {
        for (api, t) in case.translate() {
            assert_eq!(t.thinking_off, Some(reason), "{}: {api}", case.name);
            assert!(!t.thinking, "{}: {api}", case.name);
            assert_eq!(t.notes, [note], "{}: {api}", case.name);
            let config = config(&t);
            assert_eq!(config.thinking_config, None, "{}: {api}", case.name);
            assert_eq!(config.max_output_tokens, Some(1000), "{}: {api}", case.name);
        }
    }
}
