//! Gemini stream chunks → Responses API stream events.
//!
//! [`StreamTranscoder`] is fed one upstream chunk at a time and answers with the
//! events to send, numbered by `sequence_number`, in OpenAI's order:
//!
//! ```text
//! response.created, response.in_progress
//! per output item:
//!   reasoning:     output_item.added, (reasoning_summary_part.added,
//!                  reasoning_summary_text.delta*, reasoning_summary_text.done,
//!                  reasoning_summary_part.done)?, output_item.done
//!   message:       output_item.added, content_part.added, output_text.delta*,
//!                  output_text.done, content_part.done, output_item.done
//!   function_call: output_item.added, function_call_arguments.delta,
//!                  function_call_arguments.done, output_item.done
//!   custom_tool_call: output_item.added, custom_tool_call_input.delta,
//!                  custom_tool_call_input.done, output_item.done
//! response.completed | response.incomplete        (or response.failed)
//! ```
//!
//! Thought parts become a reasoning item whose summary is the whole thought (when the
//! client sees thoughts) and whose `encrypted_content` is the upstream thought
//! signature, which the client sends back in the next request. A signature Gemini
//! puts on a function call gets a reasoning item of its own just before the call, so
//! that it finds its call again. Text parts become a message item, each function
//! call a function_call item (`call_id` minted when Gemini gives none), or a
//! custom_tool_call item when it calls one of the request's custom tools
//! ([`ResponseContext::custom_tools`]), its `input` argument being the raw input. A
//! call of a tool the client declared in a namespace tool names the tool and, in
//! `namespace`, its namespace (`{"name": "spawn_agent", "namespace":
//! "multi_agent_v1"}`), as Codex expects.
//!
//! Nothing is emitted until the first part with content arrives, so a caller that
//! holds the client's 200 until the first event can still retry on another account
//! when the upstream sends nothing ([`StreamTranscoder::is_empty_answer`]).

use agm_wire::gemini::{FunctionCall, GenerateContentResponse, Part};
use agm_wire::openai::responses::{
    EventKind, IncompleteDetails, InputTokensDetails, ItemStatus, OutputContent, OutputItem,
    OutputTokensDetails, Response, ResponseError, Status, StreamEvent, SummaryText, Usage,
};

use crate::common::openai_tools::custom_input;
use crate::common::response::{Finish, TokenCounts, UpstreamState, client_args};
use crate::common::{StreamFault, Transcoder};
use crate::openai_responses::response::ResponseContext;
use crate::sse::{KEEPALIVE_COMMENT, sse_frame};
use crate::thinking::SeenSignature;

/// The item being streamed.
#[derive(Debug)]
enum OpenItem {
    Message {
        index: usize,
        id: String,
        text: String,
    },
    Reasoning {
        index: usize,
        id: String,
        /// The thought text sent so far (its summary part is open when non-empty).
        text: String,
        signature: Option<String>,
    },
}

/// The state machine turning one upstream stream into Responses events.
#[derive(Debug)]
pub struct StreamTranscoder {
    ctx: ResponseContext,
    upstream: UpstreamState,
    /// `resp_…`, fixed by the first event.
    id: String,
    next_sequence: u64,
    started: bool,
    done: bool,
    /// The finished output items.
    output: Vec<OutputItem>,
    open: Option<OpenItem>,
    signatures: Vec<SeenSignature>,
}

impl StreamTranscoder {
    /// A transcoder for one answer.
    pub fn new(ctx: ResponseContext) -> StreamTranscoder {
        StreamTranscoder {
            upstream: UpstreamState::new(&ctx.id_seed),
            ctx,
            id: String::new(),
            next_sequence: 0,
            started: false,
            done: false,
            output: Vec::new(),
            open: None,
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
            self.part(part, &mut out);
        }
        out
    }

    /// True while the upstream has sent nothing worth answering with: no text,
    /// thought, signature or tool call, and no finish reason or block that explains
    /// why. Check it when the upstream stream ends, before
    /// [`StreamTranscoder::finish`], to retry instead of sending an empty answer.
    pub fn is_empty_answer(&self) -> bool {
        self.upstream.is_empty_answer()
    }

    /// Ends the answer: closes the open item, then `response.completed` (or
    /// `response.incomplete` when the token limit or a filter cut it). Returns nothing
    /// after `finish` or `fail`.
    pub fn finish(&mut self) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        self.start(&mut out);
        let after_text = matches!(self.open, Some(OpenItem::Message { .. }));
        if let Some(note) = self.upstream.stop_note(after_text) {
            self.text(&note, &mut out);
        }
        let (status, incomplete) = match self.upstream.finish() {
            Finish::Stop | Finish::ToolCalls => (Status::Completed, None),
            Finish::Length => (Status::Incomplete, Some("max_output_tokens")),
            Finish::ContentFilter => (Status::Incomplete, Some("content_filter")),
        };
        let item_status = if status == Status::Completed {
            ItemStatus::Completed
        } else {
            ItemStatus::Incomplete
        };
        self.close(item_status, &mut out);
        let mut response = self.snapshot(status);
        response.incomplete_details = incomplete.map(|reason| IncompleteDetails {
            reason: reason.to_owned(),
        });
        let kind = match status {
            Status::Incomplete => EventKind::Incomplete { response },
            _ => EventKind::Completed { response },
        };
        self.emit(kind, &mut out);
        self.done = true;
        out
    }

    /// Ends the answer with `response.failed` (`server_error`), leaving the open item
    /// unfinished, as OpenAI breaks off a stream.
    pub fn fail(&mut self, message: impl Into<String>) -> Vec<StreamEvent> {
        self.fail_with("server_error", message)
    }

    /// Like [`StreamTranscoder::fail`], with the error `code` chosen by the caller
    /// (Codex reads `rate_limit_exceeded`, `insufficient_quota` and
    /// `context_length_exceeded`).
    pub fn fail_with(&mut self, code: &str, message: impl Into<String>) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        self.start(&mut out);
        let mut response = self.snapshot(Status::Failed);
        response.error = Some(ResponseError {
            code: code.to_owned(),
            message: message.into(),
        });
        self.emit(EventKind::Failed { response }, &mut out);
        self.done = true;
        out
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
            if let Some(signature) = &signature {
                // The signature of this model turn: it belongs to the reasoning item
                // just before the call, which is made when there is none.
                match &mut self.open {
                    Some(OpenItem::Reasoning {
                        signature: open @ None,
                        ..
                    }) => *open = Some(signature.clone()),
                    _ => {
                        self.open_reasoning(out);
                        if let Some(OpenItem::Reasoning {
                            signature: open, ..
                        }) = &mut self.open
                        {
                            *open = Some(signature.clone());
                        }
                    }
                }
            }
            self.close(ItemStatus::Completed, out);
            self.start(out);
            let call_id = self.upstream.call_id(call.id.as_deref(), true);
            let done = if self.ctx.custom_tools.contains(&call.name) {
                self.custom_tool_call(call, call_id.clone(), out)
            } else {
                self.function_call(call, call_id.clone(), out)
            };
            let output_index = self.output.len();
            self.emit(
                EventKind::OutputItemDone {
                    output_index,
                    item: done.clone(),
                },
                out,
            );
            self.output.push(done);
            self.upstream.saw_content = true;
            self.upstream.saw_tool_call = true;
            if let Some(signature) = signature {
                self.signatures.push(SeenSignature {
                    signature,
                    tool_use_id: Some(call_id),
                });
            }
            return;
        }
        if let Some(signature) = &signature {
            self.signatures.push(SeenSignature {
                signature: signature.clone(),
                tool_use_id: None,
            });
        }
        let text = part.text.as_deref().unwrap_or_default();
        if part.is_thought() {
            let shown = self.ctx.thinking && !text.is_empty();
            if shown || signature.is_some() {
                if !matches!(self.open, Some(OpenItem::Reasoning { .. })) {
                    self.open_reasoning(out);
                }
                if shown {
                    self.thought(text, out);
                }
                if let (
                    Some(signature),
                    Some(OpenItem::Reasoning {
                        signature: open, ..
                    }),
                ) = (signature, &mut self.open)
                {
                    *open = Some(signature);
                }
            }
            return;
        }
        // A signature on the first answer part after the thoughts closes them.
        if let (
            Some(signature),
            Some(OpenItem::Reasoning {
                signature: open @ None,
                ..
            }),
        ) = (signature, &mut self.open)
        {
            *open = Some(signature);
        }
        if !text.is_empty() {
            self.text(text, out);
        }
    }

    /// Opens a reasoning item (closing any other).
    fn open_reasoning(&mut self, out: &mut Vec<StreamEvent>) {
        self.close(ItemStatus::Completed, out);
        self.start(out);
        let index = self.output.len();
        let id = self.upstream.minter().next_id("rs");
        self.emit(
            EventKind::OutputItemAdded {
                output_index: index,
                item: OutputItem::Reasoning {
                    id: id.clone(),
                    summary: Vec::new(),
                    encrypted_content: None,
                    status: None,
                },
            },
            out,
        );
        self.open = Some(OpenItem::Reasoning {
            index,
            id,
            text: String::new(),
            signature: None,
        });
        self.upstream.saw_content = true;
    }

    /// Adds thought text to the open reasoning item.
    fn thought(&mut self, more: &str, out: &mut Vec<StreamEvent>) {
        let Some(OpenItem::Reasoning {
            index, id, text, ..
        }) = &mut self.open
        else {
            return;
        };
        let (output_index, item_id) = (*index, id.clone());
        let opens_part = text.is_empty();
        text.push_str(more);
        if opens_part {
            self.emit(
                EventKind::ReasoningSummaryPartAdded {
                    item_id: item_id.clone(),
                    output_index,
                    summary_index: 0,
                    part: SummaryText::new(""),
                },
                out,
            );
        }
        self.emit(
            EventKind::ReasoningSummaryTextDelta {
                item_id,
                output_index,
                summary_index: 0,
                delta: more.to_owned(),
            },
            out,
        );
    }

    /// Adds answer text, opening a message item when none is open.
    fn text(&mut self, more: &str, out: &mut Vec<StreamEvent>) {
        if !matches!(self.open, Some(OpenItem::Message { .. })) {
            self.close(ItemStatus::Completed, out);
            self.start(out);
            let index = self.output.len();
            let id = self.upstream.minter().next_id("msg");
            self.emit(
                EventKind::OutputItemAdded {
                    output_index: index,
                    item: OutputItem::Message {
                        id: id.clone(),
                        role: "assistant".to_owned(),
                        status: ItemStatus::InProgress,
                        content: Vec::new(),
                    },
                },
                out,
            );
            self.emit(
                EventKind::ContentPartAdded {
                    item_id: id.clone(),
                    output_index: index,
                    content_index: 0,
                    part: OutputContent::text(""),
                },
                out,
            );
            self.open = Some(OpenItem::Message {
                index,
                id,
                text: String::new(),
            });
        }
        if let Some(OpenItem::Message { index, id, text }) = &mut self.open {
            text.push_str(more);
            let (output_index, item_id) = (*index, id.clone());
            self.emit(
                EventKind::OutputTextDelta {
                    item_id,
                    output_index,
                    content_index: 0,
                    delta: more.to_owned(),
                    logprobs: Vec::new(),
                },
                out,
            );
        }
        self.upstream.saw_content = true;
    }

    /// The namespace of the tool a call is for, when the client declared it in a
    /// namespace tool: the call goes back with it and the tool's own name.
    fn namespace(&self, call: &FunctionCall) -> Option<String> {
        self.ctx
            .tool_names
            .namespace_of(&call.name)
            .map(str::to_owned)
    }

    /// Emits the events of a function_call item up to its arguments; returns the
    /// finished item.
    fn function_call(
        &mut self,
        call: &FunctionCall,
        call_id: String,
        out: &mut Vec<StreamEvent>,
    ) -> OutputItem {
        let id = self.upstream.minter().next_id("fc");
        let name = self.ctx.tool_names.to_client(&call.name).to_owned();
        let namespace = self.namespace(call);
        let arguments = client_args(&call.args).to_string();
        let output_index = self.output.len();
        let item = |arguments: String, status| OutputItem::FunctionCall {
            id: id.clone(),
            call_id: call_id.clone(),
            name: name.clone(),
            namespace: namespace.clone(),
            arguments,
            status,
        };
        self.emit(
            EventKind::OutputItemAdded {
                output_index,
                item: item(String::new(), ItemStatus::InProgress),
            },
            out,
        );
        self.emit(
            EventKind::FunctionCallArgumentsDelta {
                item_id: id.clone(),
                output_index,
                delta: arguments.clone(),
            },
            out,
        );
        self.emit(
            EventKind::FunctionCallArgumentsDone {
                item_id: id.clone(),
                output_index,
                name: Some(name.clone()),
                arguments: arguments.clone(),
            },
            out,
        );
        item(arguments, ItemStatus::Completed)
    }

    /// Emits the events of a custom_tool_call item up to its input (sent whole, as
    /// one delta); returns the finished item.
    fn custom_tool_call(
        &mut self,
        call: &FunctionCall,
        call_id: String,
        out: &mut Vec<StreamEvent>,
    ) -> OutputItem {
        let id = self.upstream.minter().next_id("ctc");
        let name = self.ctx.tool_names.to_client(&call.name).to_owned();
        let namespace = self.namespace(call);
        let input = custom_input(&call.args);
        let output_index = self.output.len();
        let item = |input: String, status| OutputItem::CustomToolCall {
            id: id.clone(),
            call_id: call_id.clone(),
            name: name.clone(),
            namespace: namespace.clone(),
            input,
            status,
        };
        self.emit(
            EventKind::OutputItemAdded {
                output_index,
                item: item(String::new(), ItemStatus::InProgress),
            },
            out,
        );
        self.emit(
            EventKind::CustomToolCallInputDelta {
                item_id: id.clone(),
                output_index,
                delta: input.clone(),
            },
            out,
        );
        self.emit(
            EventKind::CustomToolCallInputDone {
                item_id: id.clone(),
                output_index,
                input: input.clone(),
            },
            out,
        );
        item(input, ItemStatus::Completed)
    }

    /// Finishes the open item, if any.
    fn close(&mut self, status: ItemStatus, out: &mut Vec<StreamEvent>) {
        let item = match self.open.take() {
            None => return,
            Some(OpenItem::Message { index, id, text }) => {
                self.emit(
                    EventKind::OutputTextDone {
                        item_id: id.clone(),
                        output_index: index,
                        content_index: 0,
                        text: text.clone(),
                        logprobs: Vec::new(),
                    },
                    out,
                );
                self.emit(
                    EventKind::ContentPartDone {
                        item_id: id.clone(),
                        output_index: index,
                        content_index: 0,
                        part: OutputContent::text(text.clone()),
                    },
                    out,
                );
                OutputItem::Message {
                    id,
                    role: "assistant".to_owned(),
                    status,
                    content: vec![OutputContent::text(text)],
                }
            }
            Some(OpenItem::Reasoning {
                index,
                id,
                text,
                signature,
            }) => {
                let mut summary = Vec::new();
                if !text.is_empty() {
                    self.emit(
                        EventKind::ReasoningSummaryTextDone {
                            item_id: id.clone(),
                            output_index: index,
                            summary_index: 0,
                            text: text.clone(),
                        },
                        out,
                    );
                    self.emit(
                        EventKind::ReasoningSummaryPartDone {
                            item_id: id.clone(),
                            output_index: index,
                            summary_index: 0,
                            part: SummaryText::new(text.clone()),
                        },
                        out,
                    );
                    summary.push(SummaryText::new(text));
                }
                OutputItem::Reasoning {
                    id,
                    summary,
                    encrypted_content: signature,
                    status: None,
                }
            }
        };
        let output_index = self.output.len();
        self.emit(
            EventKind::OutputItemDone {
                output_index,
                item: item.clone(),
            },
            out,
        );
        self.output.push(item);
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
            .answer_id("resp_", response_id.as_deref());
        let response = self.snapshot(Status::InProgress);
        self.emit(
            EventKind::Created {
                response: response.clone(),
            },
            out,
        );
        self.emit(EventKind::InProgress { response }, out);
    }

    /// The response as it stands: the finished items, and the usage once it ends.
    fn snapshot(&self, status: Status) -> Response {
        let mut response = self.ctx.template.clone();
        response.id.clone_from(&self.id);
        response.created_at = self.ctx.created_at;
        response.status = status;
        response.output.clone_from(&self.output);
        if status != Status::InProgress {
            response.usage = Some(self.usage());
        }
        response
    }

    fn emit(&mut self, kind: EventKind, out: &mut Vec<StreamEvent>) {
        out.push(StreamEvent {
            sequence_number: self.next_sequence,
            kind,
        });
        self.next_sequence += 1;
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

/// Gemini's counts in OpenAI's terms: input includes the cached tokens, output the
/// reasoning tokens.
pub(crate) fn usage(tokens: TokenCounts) -> Usage {
    Usage {
        input_tokens: tokens.prompt,
        input_tokens_details: InputTokensDetails {
            cached_tokens: tokens.cached,
        },
        output_tokens: tokens.output(),
        output_tokens_details: OutputTokensDetails {
            reasoning_tokens: tokens.thoughts,
        },
        total_tokens: tokens.total(),
    }
}

/// One event as an SSE frame: `event: <type>\ndata: <json>\n\n`.
pub fn to_sse(event: &StreamEvent) -> String {
    let data = serde_json::to_string(event).unwrap_or_else(|e| {
        format!(
            r#"{{"type":"error","sequence_number":{},"code":"server_error","message":"agm could not encode an event: {e}","param":null}}"#,
            event.sequence_number
        )
    });
    sse_frame(Some(event.event_type()), &data)
}
