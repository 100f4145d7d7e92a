//! Gemini stream chunks → Chat Completions chunks.
//!
//! [`StreamTranscoder`] is fed one upstream chunk at a time and answers with the
//! chunks to send, in OpenAI's order:
//!
//! ```text
//! {delta: {role: "assistant", content: ""}}
//! {delta: {content | reasoning_content | tool_calls: [{index, id, type, function}]}}*
//! {delta: {}, finish_reason}
//! {choices: [], usage}          (only with stream_options.include_usage)
//! [DONE]
//! ```
//!
//! Thought parts become `reasoning_content` deltas (when thinking is on), text parts
//! `content` deltas, and each function call one `tool_calls` delta carrying its
//! `index` (in call order), id, name and whole arguments; a call of one of the
//! request's custom tools is a `type: "custom"` delta with `custom: {name, input}`
//! instead ([`ResponseContext::custom_tools`]). A call's thought signature rides along
//! as `extra_content.google.thought_signature`, Google's own convention for OpenAI
//! clients.
//!
//! Nothing is emitted until the first part with content arrives, so a caller that
//! holds the client's 200 until the first chunk can still retry on another account
//! when the upstream sends nothing ([`StreamTranscoder::is_empty_answer`]).
//!
//! The request's `stop` sequences are enforced here ([`crate::common::stop`]): text
//! that could be the start of one is held back until it is known not to be; a match
//! cuts the text before it and ends the answer at once (`finish_reason: "stop"`). The
//! transcoder is then [`finished`](Transcoder::finished) and the caller should drop the
//! upstream stream.

use agm_wire::gemini::{GenerateContentResponse, Part};
use agm_wire::openai::ErrorBody;
use agm_wire::openai::chat::{
    ChatCompletionChunk, ChatRole, ChunkChoice, ChunkDelta, CompletionTokensDetails,
    CustomToolCallDelta, FinishReason, FunctionCallDelta, PromptTokensDetails, StreamEvent,
    ToolCallDelta, Usage,
};
use serde_json::json;

use crate::common::openai_tools::custom_input;
use crate::common::response::{Finish, TokenCounts, UpstreamState, client_args};
use crate::common::stop::StopScanner;
use crate::common::{StreamFault, Transcoder};
use crate::openai_chat::response::ResponseContext;
use crate::sse::{KEEPALIVE_COMMENT, sse_frame};
use crate::thinking::SeenSignature;

/// The state machine turning one upstream stream into Chat Completions chunks.
#[derive(Debug)]
pub struct StreamTranscoder {
    ctx: ResponseContext,
    upstream: UpstreamState,
    /// `chatcmpl-…`, fixed by the first chunk.
    id: String,
    started: bool,
    done: bool,
    /// The `index` of the next tool call.
    next_call: u32,
    /// Whether answer text was sent (a stop note then starts on a new paragraph).
    wrote_text: bool,
    signatures: Vec<SeenSignature>,
    stops: StopScanner,
}

impl StreamTranscoder {
    /// A transcoder for one answer.
    pub fn new(ctx: ResponseContext) -> StreamTranscoder {
        StreamTranscoder {
            upstream: UpstreamState::new(&ctx.id_seed),
            stops: StopScanner::new(ctx.stop_sequences.iter().map(String::as_str)),
            ctx,
            id: String::new(),
            started: false,
            done: false,
            next_call: 0,
            wrote_text: false,
            signatures: Vec::new(),
        }
    }

    /// Takes the next upstream chunk; returns the events it completes.
    pub fn push(&mut self, chunk: &GenerateContentResponse) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        self.upstream.observe(chunk);
        for part in chunk.parts() {
            if self.done {
                break;
            }
            self.part(part, &mut out);
        }
        out
    }

    /// True while the upstream has sent nothing worth answering with: no text, thought
    /// or tool call, and no finish reason or block that explains why. Check it when
    /// the upstream stream ends, before [`StreamTranscoder::finish`], to retry instead
    /// of sending an empty answer.
    pub fn is_empty_answer(&self) -> bool {
        self.upstream.is_empty_answer()
    }

    /// Ends the answer: held-back text, the chunk with the finish reason, the usage
    /// chunk when the client asked for it, and `[DONE]`. Returns nothing after
    /// `finish` or `fail`, or once a stop sequence ended the answer.
    pub fn finish(&mut self) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        self.flush_text(&mut out);
        self.end(false, &mut out);
        out
    }

    /// Ends the answer, because the upstream ended or because the text reached a stop
    /// sequence (`stopped`).
    fn end(&mut self, stopped: bool, out: &mut Vec<StreamEvent>) {
        self.start(out);
        if !stopped && let Some(note) = self.upstream.stop_note(self.wrote_text) {
            self.delta(
                ChunkDelta {
                    content: Some(note),
                    ..ChunkDelta::default()
                },
                out,
            );
        }
        let finish_reason = match self.upstream.finish() {
            _ if stopped => FinishReason::Stop,
            Finish::Stop => FinishReason::Stop,
            Finish::ToolCalls => FinishReason::ToolCalls,
            Finish::Length => FinishReason::Length,
            Finish::ContentFilter => FinishReason::ContentFilter,
        };
        let mut last = self.chunk(ChunkDelta::default());
        if let Some(choice) = last.choices.first_mut() {
            choice.finish_reason = Some(finish_reason);
        }
        out.push(StreamEvent::Chunk(last));
        if self.ctx.include_usage {
            let mut usage = self.chunk(ChunkDelta::default());
            usage.choices.clear();
            usage.usage = Some(Some(self.usage()));
            out.push(StreamEvent::Chunk(usage));
        }
        out.push(StreamEvent::Done);
        self.done = true;
    }

    /// Ends the answer with an error (`server_error`), as OpenAI breaks off a
    /// stream: no finish chunk and no `[DONE]`. Held-back text (a possible start of a
    /// stop sequence) is dropped.
    pub fn fail(&mut self, message: impl Into<String>) -> Vec<StreamEvent> {
        self.fail_with("server_error", message)
    }

    /// Like [`StreamTranscoder::fail`], with the error `type` chosen by the caller
    /// (`rate_limit_error` when Google is out of capacity, …).
    pub fn fail_with(&mut self, kind: &str, message: impl Into<String>) -> Vec<StreamEvent> {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        vec![StreamEvent::Error(ErrorBody::new(kind, message))]
    }

    /// Every signature the upstream sent so far, for the caller's signature cache.
    pub fn signatures(&self) -> &[SeenSignature] {
        &self.signatures
    }

    /// The usage so far, in OpenAI's terms.
    pub fn usage(&self) -> Usage {
        usage(self.upstream.tokens())
    }

    fn part(&mut self, part: &Part, out: &mut Vec<StreamEvent>) {
        let signature = part.thought_signature.clone().filter(|s| !s.is_empty());
        if let Some(call) = &part.function_call {
            self.flush_text(out);
            self.start(out);
            let id = self.upstream.call_id(call.id.as_deref(), true);
            let index = self.next_call;
            self.next_call += 1;
            let name = Some(self.ctx.tool_names.to_client(&call.name).to_owned());
            let namespace = self
                .ctx
                .tool_names
                .namespace_of(&call.name)
                .map(str::to_owned);
            let mut delta = ToolCallDelta {
                index,
                id: Some(id.clone()),
                extra_content: signature
                    .as_ref()
                    .map(|s| json!({"google": {"thought_signature": s}})),
                ..ToolCallDelta::default()
            };
            if self.ctx.custom_tools.contains(&call.name) {
                delta.kind = Some("custom".to_owned());
                delta.custom = Some(CustomToolCallDelta {
                    name,
                    namespace,
                    input: Some(custom_input(&call.args)),
                });
            } else {
                delta.kind = Some("function".to_owned());
                delta.function = Some(FunctionCallDelta {
                    name,
                    namespace,
                    arguments: Some(client_args(&call.args).to_string()),
                });
            }
            self.delta(
                ChunkDelta {
                    tool_calls: vec![delta],
                    ..ChunkDelta::default()
                },
                out,
            );
            self.upstream.saw_content = true;
            self.upstream.saw_tool_call = true;
            if let Some(signature) = signature {
                self.signatures.push(SeenSignature {
                    signature,
                    tool_use_id: Some(id),
                });
            }
            return;
        }
        if let Some(signature) = signature {
            self.signatures.push(SeenSignature {
                signature,
                tool_use_id: None,
            });
        }
        let text = part.text.as_deref().unwrap_or_default();
        if text.is_empty() {
            return;
        }
        if part.is_thought() {
            if self.ctx.thinking {
                // Text before a shown thought ends there: no stop sequence spans it.
                self.flush_text(out);
                self.start(out);
                self.delta(
                    ChunkDelta {
                        reasoning_content: Some(text.to_owned()),
                        ..ChunkDelta::default()
                    },
                    out,
                );
                self.upstream.saw_content = true;
            }
            return;
        }
        let scan = self.stops.push(text);
        if !scan.text.is_empty() {
            self.text(scan.text, out);
        }
        if scan.stop.is_some() {
            // A legitimate answer, even when the sequence came first.
            self.upstream.saw_content = true;
            self.end(true, out);
        }
    }

    /// Sends answer text.
    fn text(&mut self, text: String, out: &mut Vec<StreamEvent>) {
        self.start(out);
        self.delta(
            ChunkDelta {
                content: Some(text),
                ..ChunkDelta::default()
            },
            out,
        );
        self.upstream.saw_content = true;
        self.wrote_text = true;
    }

    /// Sends the text held back as a possible start of a stop sequence: the text
    /// ended without completing one.
    fn flush_text(&mut self, out: &mut Vec<StreamEvent>) {
        let held = self.stops.flush();
        if !held.is_empty() {
            self.text(held, out);
        }
    }

    fn delta(&self, delta: ChunkDelta, out: &mut Vec<StreamEvent>) {
        out.push(StreamEvent::Chunk(self.chunk(delta)));
    }

    fn chunk(&self, delta: ChunkDelta) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created: self.ctx.created,
            model: self.ctx.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason: None,
            }],
            usage: self.ctx.include_usage.then_some(None),
            system_fingerprint: None,
        }
    }

    fn start(&mut self, out: &mut Vec<StreamEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        let response_id = self.upstream.response_id.clone();
        self.id = self
            .upstream
            .minter()
            .answer_id("chatcmpl-", response_id.as_deref());
        self.delta(
            ChunkDelta {
                role: Some(ChatRole::Assistant),
                content: Some(String::new()),
                ..ChunkDelta::default()
            },
            out,
        );
    }
}

impl Transcoder for StreamTranscoder {
    fn on_chunk(&mut self, chunk: &GenerateContentResponse) -> Vec<String> {
        self.push(chunk).iter().map(to_sse).collect()
    }

    fn on_end(&mut self) -> Vec<String> {
        self.finish().iter().map(to_sse).collect()
    }

    fn on_fault(&mut self, fault: &StreamFault) -> Vec<String> {
        self.fail(fault.to_string()).iter().map(to_sse).collect()
    }

    fn finished(&self) -> bool {
        self.done
    }

    fn signatures(&self) -> &[SeenSignature] {
        &self.signatures
    }

    fn keepalive(&self) -> Option<String> {
        Some(KEEPALIVE_COMMENT.to_owned())
    }
}

/// Gemini's counts in OpenAI's terms: the prompt includes the cached tokens, the
/// completion includes the reasoning tokens.
pub(crate) fn usage(tokens: TokenCounts) -> Usage {
    Usage {
        prompt_tokens: tokens.prompt,
        completion_tokens: tokens.output(),
        total_tokens: tokens.total(),
        prompt_tokens_details: Some(PromptTokensDetails {
            cached_tokens: tokens.cached,
        }),
        completion_tokens_details: Some(CompletionTokensDetails {
            reasoning_tokens: tokens.thoughts,
        }),
    }
}

/// One event as an SSE frame: `data: <json>\n\n`, or `data: [DONE]\n\n`.
pub fn to_sse(event: &StreamEvent) -> String {
    let data = match event {
        StreamEvent::Chunk(chunk) => serde_json::to_string(chunk),
        StreamEvent::Error(error) => serde_json::to_string(error),
        StreamEvent::Done => return sse_frame(None, "[DONE]"),
    };
    let data = data.unwrap_or_else(|e| {
        format!(
            r#"{{"error":{{"message":"agm could not encode a chunk: {e}","type":"server_error","param":null,"code":null}}}}"#
        )
    });
    sse_frame(None, &data)
}
