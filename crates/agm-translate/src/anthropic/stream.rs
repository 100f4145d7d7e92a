//! Gemini stream chunks → Anthropic stream events.
//!
//! [`StreamTranscoder`] is fed one upstream chunk at a time and answers with the
//! events to send, in Anthropic's exact order:
//!
//! ```text
//! message_start
//! (content_block_start, content_block_delta*, content_block_stop)*
//! message_delta {stop_reason, stop_sequence, usage}
//! message_stop
//! ```
//!
//! Thought parts become a `thinking` block (`thinking_delta`s, then one
//! `signature_delta` before its stop), text parts a `text` block, and each function
//! call a `tool_use` block (started with empty input, then one `input_json_delta` with
//! the whole arguments). A new block starts whenever the kind changes.
//!
//! `message_start` goes out with the first part with content, after the chunk that
//! carried it was read: its `usage` has Google's prompt count (`input_tokens` without
//! the cached part, which is `cache_read_input_tokens`) when a chunk so far carried
//! `usageMetadata`, as Google's streams do from the first chunk, else the local
//! estimate of the request ([`ResponseContext::estimated_input_tokens`]), as
//! Anthropic's `message_start` carries the input count. `message_delta` has the final
//! numbers.
//!
//! Nothing is emitted until the first part with content arrives, so a caller that
//! holds the client's 200 until the first event can still retry on another account
//! when the upstream sends nothing ([`StreamTranscoder::is_empty_answer`]).
//!
//! The request's stop sequences are enforced here ([`crate::common::stop`]): answer
//! text that could be the start of one is held back until it is known not to be; a
//! match cuts the text before it and ends the message at once (`stop_reason:
//! "stop_sequence"`, `stop_sequence: "<matched>"`). The transcoder is then
//! [`finished`](Transcoder::finished) and the caller should drop the upstream stream.

use agm_wire::anthropic::{
    ContentBlock, Delta, ErrorDetail, ErrorKind, MessageDelta, MessageDeltaUsage, MessagesResponse,
    StopReason, StreamEvent, Usage,
};
use agm_wire::gemini::{GenerateContentResponse, Part};
use serde_json::{Map, Value};

use crate::anthropic::response::ResponseContext;
use crate::common::response::{Finish, TokenCounts, UpstreamState, client_args};
use crate::common::stop::StopScanner;
use crate::common::{StreamFault, Transcoder};
use crate::sse::sse_frame;
use crate::thinking::SeenSignature;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Text,
    Thinking,
}

#[derive(Debug)]
struct OpenBlock {
    index: usize,
    kind: BlockKind,
    /// A thinking block's signature, sent just before its stop.
    signature: Option<String>,
}

/// The state machine turning one upstream stream into Anthropic events.
#[derive(Debug)]
pub struct StreamTranscoder {
    ctx: ResponseContext,
    upstream: UpstreamState,
    started: bool,
    done: bool,
    open: Option<OpenBlock>,
    next_index: usize,
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
            started: false,
            done: false,
            open: None,
            next_index: 0,
            signatures: Vec::new(),
        }
    }

    /// Takes the next upstream chunk; returns the events it completes (the whole end
    /// of the message when a stop sequence matched).
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

    /// Ends the answer: passes on held-back text, closes the open block, then
    /// `message_delta` (stop reason and usage) and `message_stop`. Returns nothing
    /// after `finish` or `fail`, or once a stop sequence ended the answer.
    pub fn finish(&mut self) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        self.flush_text(&mut out);
        self.end(None, &mut out);
        out
    }

    /// Ends the message, because the upstream ended (`stop_sequence` is `None`) or
    /// because the text reached `stop_sequence`.
    fn end(&mut self, stop_sequence: Option<String>, out: &mut Vec<StreamEvent>) {
        self.start(out);
        if stop_sequence.is_none()
            && let Some(note) = self.upstream.stop_note(self.is_open(BlockKind::Text))
        {
            self.text(&note, out);
        }
        self.close(out);
        let stop_reason = match (&stop_sequence, self.upstream.finish()) {
            (Some(_), _) => StopReason::StopSequence,
            (None, Finish::Length) => StopReason::MaxTokens,
            (None, Finish::ToolCalls) => StopReason::ToolUse,
            (None, Finish::Stop | Finish::ContentFilter) => StopReason::EndTurn,
        };
        let usage = self.usage();
        out.push(StreamEvent::MessageDelta {
            delta: MessageDelta {
                stop_reason: Some(stop_reason),
                stop_sequence,
            },
            usage: MessageDeltaUsage {
                output_tokens: usage.output_tokens,
                input_tokens: Some(usage.input_tokens),
                cache_creation_input_tokens: usage.cache_creation_input_tokens,
                cache_read_input_tokens: usage.cache_read_input_tokens,
            },
        });
        out.push(StreamEvent::MessageStop);
        self.done = true;
    }

    /// Ends the answer with an `api_error` event, closing nothing: that is how
    /// Anthropic breaks off a stream. Held-back text (a possible start of a stop
    /// sequence) is dropped.
    pub fn fail(&mut self, message: impl Into<String>) -> Vec<StreamEvent> {
        self.fail_with(ErrorKind::ApiError, message)
    }

    /// Like [`StreamTranscoder::fail`], with the error type chosen by the caller
    /// (`overloaded_error` when Google is out of capacity).
    pub fn fail_with(&mut self, kind: ErrorKind, message: impl Into<String>) -> Vec<StreamEvent> {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        vec![StreamEvent::Error {
            error: ErrorDetail {
                kind,
                message: message.into(),
            },
        }]
    }

    /// Every signature the upstream sent so far, for the caller's signature cache.
    pub fn signatures(&self) -> &[SeenSignature] {
        &self.signatures
    }

    /// The usage so far, in Anthropic's terms. Until Google has counted the prompt,
    /// the input is the local estimate ([`ResponseContext::estimated_input_tokens`]).
    pub fn usage(&self) -> Usage {
        let tokens = self
            .upstream
            .usage
            .is_some()
            .then(|| self.upstream.tokens());
        match tokens {
            Some(tokens) if tokens.prompt > 0 => usage(Some(tokens)),
            tokens => Usage {
                input_tokens: self.ctx.estimated_input_tokens,
                cache_creation_input_tokens: Some(0),
                cache_read_input_tokens: Some(0),
                ..usage(tokens)
            },
        }
    }

    fn part(&mut self, part: &Part, out: &mut Vec<StreamEvent>) {
        let signature = part.thought_signature.clone().filter(|s| !s.is_empty());
        if let Some(call) = &part.function_call {
            // Gemini puts the turn's signature on its first function call: it belongs
            // to the thinking block just before, if one is open.
            if let (Some(sig), Some(open)) = (&signature, &mut self.open)
                && open.kind == BlockKind::Thinking
                && open.signature.is_none()
            {
                open.signature = Some(sig.clone());
            }
            self.flush_text(out);
            self.close(out);
            self.start(out);
            let id = self.upstream.call_id(call.id.as_deref(), false);
            let args = client_args(&call.args);
            let index = self.next_index;
            self.next_index += 1;
            out.push(StreamEvent::ContentBlockStart {
                index,
                content_block: ContentBlock::ToolUse {
                    id: id.clone(),
                    name: self.ctx.tool_names.to_client(&call.name).to_owned(),
                    input: Value::Object(Map::new()),
                },
            });
            out.push(StreamEvent::ContentBlockDelta {
                index,
                delta: Delta::InputJsonDelta {
                    partial_json: args.to_string(),
                },
            });
            out.push(StreamEvent::ContentBlockStop { index });
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
        if let Some(sig) = &signature {
            self.signatures.push(SeenSignature {
                signature: sig.clone(),
                tool_use_id: None,
            });
        }
        let text = part.text.as_deref().unwrap_or_default();
        if part.is_thought() {
            if !self.ctx.thinking {
                return;
            }
            if !text.is_empty() {
                // Text before a shown thought ends there: no stop sequence spans it.
                self.flush_text(out);
            }
            if !text.is_empty() && !self.is_open(BlockKind::Thinking) {
                self.open_block(BlockKind::Thinking, out);
            }
            if let Some(open) = &mut self.open
                && open.kind == BlockKind::Thinking
            {
                if !text.is_empty() {
                    out.push(StreamEvent::ContentBlockDelta {
                        index: open.index,
                        delta: Delta::ThinkingDelta {
                            thinking: text.to_owned(),
                        },
                    });
                }
                if signature.is_some() {
                    open.signature = signature;
                }
                self.upstream.saw_content = true;
            }
            return;
        }
        // A signature on the first answer part after the thoughts closes them.
        if let (Some(sig), Some(open)) = (signature, &mut self.open)
            && open.kind == BlockKind::Thinking
            && open.signature.is_none()
        {
            open.signature = Some(sig);
        }
        if !text.is_empty() {
            let scan = self.stops.push(text);
            if !scan.text.is_empty() {
                self.text(&scan.text, out);
            }
            if let Some(stop) = scan.stop {
                // A legitimate answer, even when the sequence came first.
                self.upstream.saw_content = true;
                self.end(Some(stop), out);
            }
        }
    }

    /// Passes on the text held back as a possible start of a stop sequence: the text
    /// ended without completing one.
    fn flush_text(&mut self, out: &mut Vec<StreamEvent>) {
        let held = self.stops.flush();
        if !held.is_empty() {
            self.text(&held, out);
        }
    }

    fn text(&mut self, text: &str, out: &mut Vec<StreamEvent>) {
        if !self.is_open(BlockKind::Text) {
            self.open_block(BlockKind::Text, out);
        }
        if let Some(open) = &self.open {
            out.push(StreamEvent::ContentBlockDelta {
                index: open.index,
                delta: Delta::TextDelta {
                    text: text.to_owned(),
                },
            });
        }
        self.upstream.saw_content = true;
    }

    fn is_open(&self, kind: BlockKind) -> bool {
        self.open.as_ref().is_some_and(|o| o.kind == kind)
    }

    fn open_block(&mut self, kind: BlockKind, out: &mut Vec<StreamEvent>) {
        self.close(out);
        self.start(out);
        let index = self.next_index;
        self.next_index += 1;
        let content_block = match kind {
            BlockKind::Text => ContentBlock::text(""),
            BlockKind::Thinking => ContentBlock::Thinking {
                thinking: String::new(),
                signature: String::new(),
            },
        };
        out.push(StreamEvent::ContentBlockStart {
            index,
            content_block,
        });
        self.open = Some(OpenBlock {
            index,
            kind,
            signature: None,
        });
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(open) = self.open.take() {
            if let Some(signature) = open.signature {
                out.push(StreamEvent::ContentBlockDelta {
                    index: open.index,
                    delta: Delta::SignatureDelta { signature },
                });
            }
            out.push(StreamEvent::ContentBlockStop { index: open.index });
        }
    }

    fn start(&mut self, out: &mut Vec<StreamEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        let response_id = self.upstream.response_id.clone();
        let id = self.upstream.minter().message_id(response_id.as_deref());
        let mut message = MessagesResponse::new(id, self.ctx.model.clone());
        message.usage = Usage {
            output_tokens: 0,
            ..self.usage()
        };
        out.push(StreamEvent::MessageStart { message });
    }
}

impl Transcoder for StreamTranscoder {
    fn on_chunk(&mut self, chunk: &GenerateContentResponse) -> Vec<String> {
        let mut frames = Vec::new();
        for event in self.push(chunk) {
            let is_start = matches!(event, StreamEvent::MessageStart { .. });
            frames.push(to_sse(&event));
            if is_start {
                // Anthropic sends a ping right after message_start.
                frames.push(to_sse(&StreamEvent::Ping));
            }
        }
        frames
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
        Some(to_sse(&StreamEvent::Ping))
    }
}

/// Gemini usage → Anthropic usage: input excludes the cached prompt, output includes
/// the thoughts.
fn usage(tokens: Option<TokenCounts>) -> Usage {
    let Some(tokens) = tokens else {
        return Usage::default();
    };
    Usage {
        input_tokens: tokens.uncached_prompt(),
        output_tokens: tokens.output(),
        cache_creation_input_tokens: Some(0),
        cache_read_input_tokens: Some(tokens.cached),
    }
}

/// One event as an SSE frame: `event: <type>\ndata: <json>\n\n`.
pub fn to_sse(event: &StreamEvent) -> String {
    let data = serde_json::to_string(event).unwrap_or_else(|e| {
        format!(
            r#"{{"type":"error","error":{{"type":"api_error","message":"agm could not encode an event: {e}"}}}}"#
        )
    });
    sse_frame(Some(event.event_type()), &data)
}
