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
//! Nothing is emitted until the first part with content arrives, so a caller that
//! holds the client's 200 until the first event can still retry on another account
//! when the upstream sends nothing ([`StreamTranscoder::is_empty_answer`]).

use agm_wire::anthropic::{
    ContentBlock, Delta, ErrorDetail, ErrorKind, MessageDelta, MessageDeltaUsage, MessagesResponse,
    StopReason, StreamEvent, Usage,
};
use agm_wire::gemini::{GenerateContentResponse, Part, UsageMetadata};
use serde_json::{Map, Value};

use crate::anthropic::response::ResponseContext;
use crate::sse::sse_frame;
use crate::thinking::SeenSignature;
use crate::tools::ToolIdMinter;

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
    /// Made at the first use, from the seed and the upstream `responseId`.
    ids: Option<ToolIdMinter>,
    started: bool,
    done: bool,
    open: Option<OpenBlock>,
    next_index: usize,
    saw_content: bool,
    saw_tool_use: bool,
    finish_reason: Option<String>,
    blocked: Option<String>,
    usage: Option<UsageMetadata>,
    response_id: Option<String>,
    signatures: Vec<SeenSignature>,
}

impl StreamTranscoder {
    /// A transcoder for one answer.
    pub fn new(ctx: ResponseContext) -> StreamTranscoder {
        StreamTranscoder {
            ids: None,
            ctx,
            started: false,
            done: false,
            open: None,
            next_index: 0,
            saw_content: false,
            saw_tool_use: false,
            finish_reason: None,
            blocked: None,
            usage: None,
            response_id: None,
            signatures: Vec::new(),
        }
    }

    /// Takes the next upstream chunk; returns the events it completes.
    pub fn push(&mut self, chunk: &GenerateContentResponse) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
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
        for part in chunk.parts() {
            self.part(part, &mut out);
        }
        out
    }

    /// True while the upstream has sent nothing worth answering with: no text, thought
    /// or tool call, and no finish reason or block that explains why. Check it when
    /// the upstream stream ends, before [`StreamTranscoder::finish`], to retry instead
    /// of sending an empty answer.
    pub fn is_empty_answer(&self) -> bool {
        !self.saw_content
            && self.blocked.is_none()
            && self
                .finish_reason
                .as_deref()
                .is_none_or(|r| r == "STOP" || r == "FINISH_REASON_UNSPECIFIED")
    }

    /// Ends the answer: closes the open block, then `message_delta` (stop reason and
    /// usage) and `message_stop`. Returns nothing after `finish` or `fail`.
    pub fn finish(&mut self) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        self.start(&mut out);
        if let Some(note) = self.stop_note() {
            self.text(&note, &mut out);
        }
        self.close(&mut out);
        let stop_reason = match self.finish_reason.as_deref() {
            Some("MAX_TOKENS") => StopReason::MaxTokens,
            None | Some("STOP" | "FINISH_REASON_UNSPECIFIED") if self.saw_tool_use => {
                StopReason::ToolUse
            }
            _ => StopReason::EndTurn,
        };
        let usage = self.usage();
        out.push(StreamEvent::MessageDelta {
            delta: MessageDelta {
                stop_reason: Some(stop_reason),
                stop_sequence: None,
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
        out
    }

    /// Ends the answer with an `api_error` event, closing nothing: that is how
    /// Anthropic breaks off a stream.
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

    /// The usage so far, in Anthropic's terms.
    pub fn usage(&self) -> Usage {
        usage(self.usage.as_ref())
    }

    fn minter(&mut self) -> &mut ToolIdMinter {
        let (seed, response_id) = (&self.ctx.id_seed, &self.response_id);
        self.ids.get_or_insert_with(|| {
            ToolIdMinter::new(format!(
                "{seed}\u{0}{}",
                response_id.as_deref().unwrap_or_default()
            ))
        })
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
            self.close(out);
            self.start(out);
            let id = call
                .id
                .clone()
                .filter(|id| is_usable_id(id))
                .unwrap_or_else(|| self.minter().next_tool_id());
            let args = match &call.args {
                Value::Null => Value::Object(Map::new()),
                args => args.clone(),
            };
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
            self.saw_content = true;
            self.saw_tool_use = true;
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
                self.saw_content = true;
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
            self.text(text, out);
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
        self.saw_content = true;
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
        let response_id = self.response_id.clone();
        let id = self.minter().message_id(response_id.as_deref());
        let mut message = MessagesResponse::new(id, self.ctx.model.clone());
        message.usage = Usage {
            output_tokens: 0,
            ..self.usage()
        };
        out.push(StreamEvent::MessageStart { message });
    }

    /// A line telling the client why Google cut the answer short, when it did.
    fn stop_note(&self) -> Option<String> {
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
        let sep = if self.is_open(BlockKind::Text) {
            "\n\n"
        } else {
            ""
        };
        Some(format!(
            "{sep}[agm: Google stopped the answer: {why} ({reason}).]"
        ))
    }
}

/// Gemini usage → Anthropic usage: input excludes the cached prompt, output includes
/// the thoughts.
pub(crate) fn usage(meta: Option<&UsageMetadata>) -> Usage {
    let Some(meta) = meta else {
        return Usage::default();
    };
    Usage {
        input_tokens: meta
            .prompt_token_count
            .saturating_sub(meta.cached_content_token_count),
        output_tokens: meta
            .candidates_token_count
            .saturating_add(meta.thoughts_token_count),
        cache_creation_input_tokens: Some(0),
        cache_read_input_tokens: Some(meta.cached_content_token_count),
    }
}

/// Anthropic accepts tool-use ids made of `[A-Za-z0-9_-]`.
fn is_usable_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
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
