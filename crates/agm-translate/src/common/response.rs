//! Reading an upstream answer: what every stream transcoder tracks, the token counts,
//! and why an answer ended.

use agm_wire::gemini::{GenerateContentResponse, UsageMetadata};
use serde_json::{Map, Value};

use crate::tools::ToolIdMinter;

/// Google's token counts of an answer. Gemini counts the cached prompt inside the
/// prompt, and the thoughts apart from the answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCounts {
    /// The whole prompt, cached part included.
    pub prompt: u64,
    /// The part of the prompt read from Google's cache.
    pub cached: u64,
    /// The answer, thoughts excluded.
    pub answer: u64,
    /// The thoughts.
    pub thoughts: u64,
}

impl TokenCounts {
    /// The counts of `usageMetadata` (all zero without one).
    pub fn of(meta: Option<&UsageMetadata>) -> TokenCounts {
        meta.map_or_else(TokenCounts::default, |m| TokenCounts {
            prompt: m.prompt_token_count,
            cached: m.cached_content_token_count.min(m.prompt_token_count),
            answer: m.candidates_token_count,
            thoughts: m.thoughts_token_count,
        })
    }

    /// The prompt without its cached part (Anthropic's `input_tokens`).
    pub fn uncached_prompt(&self) -> u64 {
        self.prompt.saturating_sub(self.cached)
    }

    /// Everything generated, thoughts included (what OpenAI and Anthropic call output).
    pub fn output(&self) -> u64 {
        self.answer.saturating_add(self.thoughts)
    }

    /// Prompt and output.
    pub fn total(&self) -> u64 {
        self.prompt.saturating_add(self.output())
    }
}

/// Why an answer ended, in the terms the client APIs share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The model finished (or the reason is unknown).
    Stop,
    /// The model finished by calling tools.
    ToolCalls,
    /// The output token limit cut it (`MAX_TOKENS`).
    Length,
    /// A Google filter stopped it, or blocked the prompt.
    ContentFilter,
}

/// What a transcoder tracks of the upstream stream, whatever the client's format:
/// the finish reason, a blocked prompt, the last usage, the upstream `responseId`,
/// whether anything worth answering came, and the id minter.
#[derive(Debug)]
pub(crate) struct UpstreamState {
    seed: String,
    /// Made at the first use, from the seed and the upstream `responseId`.
    ids: Option<ToolIdMinter>,
    pub finish_reason: Option<String>,
    pub blocked: Option<String>,
    pub usage: Option<UsageMetadata>,
    pub response_id: Option<String>,
    /// Set by the transcoder when it passes content on to the client.
    pub saw_content: bool,
    /// Set by the transcoder when it passes a tool call on.
    pub saw_tool_call: bool,
}

impl UpstreamState {
    /// The state at the start of a stream; `seed` (unique per request) seeds the ids.
    pub fn new(seed: &str) -> UpstreamState {
        UpstreamState {
            seed: seed.to_owned(),
            ids: None,
            finish_reason: None,
            blocked: None,
            usage: None,
            response_id: None,
            saw_content: false,
            saw_tool_call: false,
        }
    }

    /// Notes the usage, response id, finish reason and prompt block of a chunk.
    pub fn observe(&mut self, chunk: &GenerateContentResponse) {
        if let Some(usage) = chunk.usage_metadata {
            self.usage = Some(usage);
        }
        if self.response_id.is_none() {
            self.response_id.clone_from(&chunk.response_id);
        }
        if let Some(reason) = chunk.finish_reason().filter(|r| !r.is_empty()) {
            self.finish_reason = Some(reason.to_owned());
        }
        if let Some(reason) = chunk
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.get("blockReason"))
            .and_then(Value::as_str)
        {
            self.blocked = Some(reason.to_owned());
        }
    }

    /// True while the upstream has sent nothing worth answering with: no content,
    /// and no finish reason or block that explains why.
    pub fn is_empty_answer(&self) -> bool {
        !self.saw_content
            && self.blocked.is_none()
            && self
                .finish_reason
                .as_deref()
                .is_none_or(|r| r == "STOP" || r == "FINISH_REASON_UNSPECIFIED")
    }

    /// The id minter of this answer.
    pub fn minter(&mut self) -> &mut ToolIdMinter {
        let (seed, response_id) = (&self.seed, &self.response_id);
        self.ids.get_or_insert_with(|| {
            ToolIdMinter::new(format!(
                "{seed}\u{0}{}",
                response_id.as_deref().unwrap_or_default()
            ))
        })
    }

    /// The upstream call id when the client may see it as is, else a minted one
    /// (`toolu_…` for Anthropic, `call_…` for OpenAI).
    pub fn call_id(&mut self, upstream: Option<&str>, openai: bool) -> String {
        match upstream.filter(|id| is_usable_id(id)) {
            Some(id) => id.to_owned(),
            None if openai => self.minter().next_call_id(),
            None => self.minter().next_tool_id(),
        }
    }

    /// The token counts so far.
    pub fn tokens(&self) -> TokenCounts {
        TokenCounts::of(self.usage.as_ref())
    }

    /// Why the answer ended.
    pub fn finish(&self) -> Finish {
        if self.blocked.is_some() {
            return Finish::ContentFilter;
        }
        match self.finish_reason.as_deref() {
            Some("MAX_TOKENS") => Finish::Length,
            Some(
                "SAFETY" | "IMAGE_SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT"
                | "SPII",
            ) => Finish::ContentFilter,
            None | Some("STOP" | "FINISH_REASON_UNSPECIFIED") if self.saw_tool_call => {
                Finish::ToolCalls
            }
            _ => Finish::Stop,
        }
    }

    /// A line telling the client why Google cut the answer short, when it did;
    /// `after_text` puts a blank line before it.
    pub fn stop_note(&self, after_text: bool) -> Option<String> {
        if let Some(reason) = &self.blocked {
            return Some(format!(
                "[agm: Google blocked the prompt ({reason}); nothing was generated.]"
            ));
        }
        let reason = self.finish_reason.as_deref()?;
        let why = match reason {
            "STOP" | "MAX_TOKENS" | "FINISH_REASON_UNSPECIFIED" => return None,
            "SAFETY" | "IMAGE_SAFETY" => "its safety filter",
            "RECITATION" => "its recitation (copyright) filter",
            "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" => "its content filter",
            "MALFORMED_FUNCTION_CALL" | "UNEXPECTED_TOOL_CALL" => "an invalid tool call",
            _ => "an unexpected reason",
        };
        let sep = if after_text { "\n\n" } else { "" };
        Some(format!(
            "{sep}[agm: Google stopped the answer: {why} ({reason}).]"
        ))
    }
}

/// Tool-call ids clients accept as they are: `[A-Za-z0-9_-]`, at most 128 bytes.
pub(crate) fn is_usable_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A function call's `args` as the client sees them: an object (`{}` for none).
pub(crate) fn client_args(args: &Value) -> Value {
    match args {
        Value::Null => Value::Object(Map::new()),
        args => args.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chunk(value: Value) -> GenerateContentResponse {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn token_counts_follow_google() {
        let meta = UsageMetadata {
            prompt_token_count: 100,
            candidates_token_count: 10,
            thoughts_token_count: 5,
            cached_content_token_count: 60,
            total_token_count: 115,
        };
        let counts = TokenCounts::of(Some(&meta));
        assert_eq!(counts.uncached_prompt(), 40);
        assert_eq!(counts.output(), 15);
        assert_eq!(counts.total(), 115);
        assert_eq!(TokenCounts::of(None), TokenCounts::default());
    }

    #[test]
    fn finish_kinds() {
        let mut state = UpstreamState::new("s");
        assert!(state.is_empty_answer());
        assert_eq!(state.finish(), Finish::Stop);
        state.saw_tool_call = true;
        assert_eq!(state.finish(), Finish::ToolCalls);
        state.observe(&chunk(
            json!({"candidates": [{"finishReason": "MAX_TOKENS"}]}),
        ));
        assert_eq!(state.finish(), Finish::Length);
        assert!(!state.is_empty_answer());
        state.observe(&chunk(
            json!({"candidates": [{"finishReason": "RECITATION"}]}),
        ));
        assert_eq!(state.finish(), Finish::ContentFilter);
        assert_eq!(
            state.stop_note(true).as_deref(),
            Some(
                "\n\n[agm: Google stopped the answer: its recitation (copyright) filter (RECITATION).]"
            )
        );
        let mut blocked = UpstreamState::new("s");
        blocked.observe(&chunk(json!({"promptFeedback": {"blockReason": "OTHER"}})));
        assert_eq!(blocked.finish(), Finish::ContentFilter);
        assert!(!blocked.is_empty_answer());
    }

    #[test]
    fn call_ids_are_kept_or_minted() {
        let mut state = UpstreamState::new("s");
        assert_eq!(state.call_id(Some("call_9"), true), "call_9");
        assert!(state.call_id(Some("bad id"), true).starts_with("call_"));
        assert!(state.call_id(None, false).starts_with("toolu_"));
    }
}
