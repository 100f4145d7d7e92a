#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Stop sequences enforced by agm: Anthropic's `stop_reason: "stop_sequence"` with the
//! matched `stop_sequence`, and Chat Completions' `finish_reason: "stop"`, with the
//! text cut before the match, whether the match sits in one chunk or across several,
//! and never inside thoughts. Run with `UPDATE_GOLDEN=1` to rewrite the expected files
//! after an intended change, and review the diff.

mod common;

use agm_translate::common::Transcoder;
use agm_translate::{anthropic, openai_chat};
use agm_wire::anthropic::{ContentBlock, Delta, StopReason, StreamEvent};
use agm_wire::gemini::GenerateContentResponse;
use agm_wire::openai::chat::{self, FinishReason};
use common::Fixtures;
use proptest::prelude::*;
use serde_json::{Value, json};

const FIXTURES: Fixtures = Fixtures("stop_sequences");

fn anthropic_ctx(stops: &[&str]) -> anthropic::ResponseContext {
    let mut ctx = anthropic::ResponseContext::new("claude-sonnet-4-5", Default::default());
    ctx.id_seed = "seed".into();
    ctx.stop_sequences = stops.iter().map(|s| (*s).to_owned()).collect();
    ctx
}

fn chat_ctx(stops: &[&str]) -> openai_chat::ResponseContext {
    openai_chat::ResponseContext {
        model: "gpt-4o".into(),
        thinking: true,
        id_seed: "seed".into(),
        created: 42,
        stop_sequences: stops.iter().map(|s| (*s).to_owned()).collect(),
        ..openai_chat::ResponseContext::default()
    }
}

fn parts(parts: Value) -> GenerateContentResponse {
    serde_json::from_value(json!({"candidates": [{"content": {"role": "model", "parts": parts}}]}))
        .unwrap()
}

fn texts(texts: &[&str]) -> Vec<GenerateContentResponse> {
    texts
        .iter()
        .map(|t| parts(json!([{ "text": t }])))
        .collect()
}

fn stop() -> GenerateContentResponse {
    serde_json::from_value(json!({"candidates": [{"finishReason": "STOP"}]})).unwrap()
}

/// Runs upstream chunks and the end of the stream through an Anthropic transcoder.
fn anthropic_events(
    stops: &[&str],
    chunks: &[GenerateContentResponse],
) -> (Vec<StreamEvent>, bool) {
    let mut t = anthropic::StreamTranscoder::new(anthropic_ctx(stops));
    let mut events: Vec<StreamEvent> = chunks.iter().flat_map(|c| t.push(c)).collect();
    let ended_early = t.finished();
    events.extend(t.push(&stop()));
    events.extend(t.finish());
    (events, ended_early)
}

/// The text deltas, in order.
fn anthropic_text(events: &[StreamEvent]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ContentBlockDelta {
                delta: Delta::TextDelta { text },
                ..
            } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn types(events: &[StreamEvent]) -> Vec<&'static str> {
    events.iter().map(StreamEvent::event_type).collect()
}

#[test]
fn a_match_inside_one_chunk_ends_the_message_there() {
    let mut t = anthropic::StreamTranscoder::new(anthropic_ctx(&["\n\nHuman:"]));
    let events = t.push(&parts(json!([
        {"text": "Hello.\n\nHuman: more"},
        {"functionCall": {"name": "f", "args": {}}}
    ])));
    assert!(t.finished(), "the caller may drop the upstream stream now");
    assert_eq!(
        types(&events),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(anthropic_text(&events), ["Hello."]);
    let StreamEvent::MessageDelta { delta, .. } = &events[4] else {
        panic!("message_delta expected");
    };
    assert_eq!(delta.stop_reason, Some(StopReason::StopSequence));
    assert_eq!(delta.stop_sequence.as_deref(), Some("\n\nHuman:"));
    assert!(t.push(&texts(&["late"])[0]).is_empty());
    assert!(t.finish().is_empty());
}

#[test]
fn a_match_split_across_chunks_is_caught_and_never_leaks() {
    let (events, ended_early) = anthropic_events(&["STOP!"], &texts(&["one ST", "O", "P! two"]));
    assert!(ended_early);
    assert_eq!(anthropic_text(&events), ["one "]);
    let message = anthropic::assemble(&events);
    assert_eq!(message.stop_reason, Some(StopReason::StopSequence));
    assert_eq!(message.stop_sequence.as_deref(), Some("STOP!"));
    assert_eq!(message.content, vec![ContentBlock::text("one ")]);
}

#[test]
fn no_match_sends_everything_held_back_and_ends_the_turn() {
    let (events, ended_early) = anthropic_events(&["STOP!"], &texts(&["one ST", "OP two ST"]));
    assert!(!ended_early);
    assert_eq!(anthropic_text(&events), ["one ", "STOP two ", "ST"]);
    let message = anthropic::assemble(&events);
    assert_eq!(message.stop_reason, Some(StopReason::EndTurn));
    assert_eq!(message.stop_sequence, None);
    assert_eq!(message.content, vec![ContentBlock::text("one STOP two ST")]);
}

#[test]
fn the_earliest_of_several_sequences_wins() {
    let (events, _) = anthropic_events(&["world", "lo", "xyz"], &texts(&["hel", "lo world"]));
    let message = anthropic::assemble(&events);
    assert_eq!(message.content, vec![ContentBlock::text("hel")]);
    assert_eq!(message.stop_sequence.as_deref(), Some("lo"));
}

#[test]
fn thoughts_never_match_and_a_tool_call_releases_held_text() {
    let (events, ended_early) = anthropic_events(
        &["END"],
        &[
            parts(json!([{"text": "I will say END later.", "thought": true}])),
            parts(json!([{"text": "Calling E"}])),
            parts(json!([{"functionCall": {"name": "f", "args": {"q": 1}, "id": "call_1"}}])),
        ],
    );
    assert!(!ended_early);
    let message = anthropic::assemble(&events);
    assert_eq!(message.stop_reason, Some(StopReason::ToolUse));
    assert_eq!(message.stop_sequence, None);
    assert!(
        matches!(&message.content[0], ContentBlock::Thinking { thinking, .. } if thinking == "I will say END later.")
    );
    assert_eq!(message.content[1], ContentBlock::text("Calling E"));
    assert!(matches!(&message.content[2], ContentBlock::ToolUse { id, .. } if id == "call_1"));
}

#[test]
fn a_match_before_any_text_is_an_empty_answer_with_the_reason() {
    let mut t = anthropic::StreamTranscoder::new(anthropic_ctx(&["Human:"]));
    let events = t.push(&texts(&["Human: hi"])[0]);
    assert!(!t.is_empty_answer());
    assert_eq!(
        types(&events),
        ["message_start", "message_delta", "message_stop"]
    );
    assert_eq!(
        anthropic::assemble(&events).stop_sequence.as_deref(),
        Some("Human:")
    );
}

#[test]
fn whole_answers_are_cut_the_same_way() {
    let response = parts(json!([
        {"text": "a thought with END", "thought": true},
        {"text": "Answer. END ignored"}
    ]));
    let message = anthropic::from_gemini(&response, &anthropic_ctx(&["END"]));
    assert_eq!(message.stop_reason, Some(StopReason::StopSequence));
    assert_eq!(message.stop_sequence.as_deref(), Some("END"));
    assert_eq!(message.content[1], ContentBlock::text("Answer. "));

    let completion = openai_chat::from_gemini(&response, &chat_ctx(&["END"]));
    let choice = &completion.choices[0];
    assert_eq!(choice.finish_reason, Some(FinishReason::Stop));
    assert_eq!(choice.message.content.as_deref(), Some("Answer. "));
    assert_eq!(
        choice.message.reasoning_content.as_deref(),
        Some("a thought with END")
    );
}

/// Runs upstream chunks and the end of the stream through a Chat transcoder.
fn chat_events(stops: &[&str], chunks: &[GenerateContentResponse]) -> Vec<chat::StreamEvent> {
    let mut t = openai_chat::StreamTranscoder::new(chat_ctx(stops));
    let mut events: Vec<chat::StreamEvent> = chunks.iter().flat_map(|c| t.push(c)).collect();
    events.extend(t.finish());
    events
}

#[test]
fn chat_streams_stop_with_finish_reason_stop() {
    let mut t = openai_chat::StreamTranscoder::new(chat_ctx(&["<END>"]));
    let mut events = t.push(&texts(&["Done <E"])[0]);
    assert!(!t.finished());
    events.extend(t.push(&parts(json!([
        {"text": "ND> more"},
        {"functionCall": {"name": "f", "args": {}}}
    ]))));
    assert!(t.finished());
    assert_eq!(events.last(), Some(&chat::StreamEvent::Done));
    assert!(t.finish().is_empty());
    let completion = openai_chat::assemble(&events);
    let choice = &completion.choices[0];
    assert_eq!(choice.finish_reason, Some(FinishReason::Stop));
    assert_eq!(choice.message.content.as_deref(), Some("Done "));
    assert!(choice.message.tool_calls.is_empty());
    // Without a match, the held-back text comes out before the end.
    let completion = openai_chat::assemble(&chat_events(&["<END>"], &texts(&["Done <E", "N"])));
    assert_eq!(
        completion.choices[0].message.content.as_deref(),
        Some("Done <EN")
    );
}

/// The fixture stream: a thought that contains the stop sequence, the answer with the
/// sequence split across two chunks, then a tool call and more text that must never
/// reach the client.
fn fixture_events<E>(
    cuts: &[&[u8]],
    mut push: impl FnMut(&GenerateContentResponse) -> Vec<E>,
) -> Vec<E> {
    common::feed(cuts, |r| push(r))
}

fn anthropic_fixture(chunks: &[&[u8]]) -> Vec<StreamEvent> {
    let mut t = anthropic::StreamTranscoder::new(anthropic_ctx(&["\n\nHuman:", "never"]));
    let mut events = fixture_events(chunks, |r| t.push(r));
    assert!(t.finished());
    events.extend(t.finish());
    events
}

fn chat_fixture(chunks: &[&[u8]]) -> Vec<chat::StreamEvent> {
    let mut ctx = chat_ctx(&["\n\nHuman:", "never"]);
    ctx.include_usage = true;
    let mut t = openai_chat::StreamTranscoder::new(ctx);
    let mut events = fixture_events(chunks, |r| t.push(r));
    assert!(t.finished());
    events.extend(t.finish());
    events
}

#[test]
fn golden_stream_with_a_split_stop_sequence() {
    let bytes = FIXTURES.bytes("gemini_stream.sse");
    let events = anthropic_fixture(&[&bytes]);
    FIXTURES.assert_golden(
        "gemini_stream.anthropic.json",
        &serde_json::to_value(&events).unwrap(),
    );
    let message = anthropic::assemble(&events);
    assert_eq!(message.stop_reason, Some(StopReason::StopSequence));
    assert_eq!(message.stop_sequence.as_deref(), Some("\n\nHuman:"));
    assert!(
        matches!(&message.content[0], ContentBlock::Thinking { thinking, .. } if thinking.contains("\n\nHuman:")),
        "the thought keeps the sequence: it does not count"
    );
    assert_eq!(
        message.content[1],
        ContentBlock::text("Assistant: Sure, here is the plan.\nFirst, read the file.")
    );
    assert_eq!(message.content.len(), 2, "no tool call after the stop");

    let chat_events = chat_fixture(&[&bytes]);
    let chunks: Vec<Value> = chat_events.iter().map(common::chat_event_json).collect();
    FIXTURES.assert_golden("gemini_stream.chat.json", &Value::Array(chunks));
    let completion = openai_chat::assemble(&chat_events);
    assert_eq!(
        completion.choices[0].finish_reason,
        Some(FinishReason::Stop)
    );
    assert_eq!(
        completion.choices[0].message.content.as_deref(),
        Some("Assistant: Sure, here is the plan.\nFirst, read the file.")
    );
    assert!(completion.choices[0].message.tool_calls.is_empty());
}

proptest! {
    /// Any cutting of the upstream bytes gives the same events.
    #[test]
    fn any_chunking_of_the_upstream_bytes_gives_the_same_events(
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..40)
    ) {
        let bytes = FIXTURES.bytes("gemini_stream.sse");
        let chunks = common::cut(&bytes, &cuts);
        prop_assert_eq!(anthropic_fixture(&chunks), anthropic_fixture(&[&bytes]));
        prop_assert_eq!(chat_fixture(&chunks), chat_fixture(&[&bytes]));
    }

    /// However the upstream splits the text into parts and chunks, the client gets the
    /// same message, and no text delta holds any of a matched sequence.
    #[test]
    fn any_split_of_the_text_gives_the_same_message(
        pieces in proptest::collection::vec("[ab\n ]{0,6}", 0..6),
        stops in proptest::collection::vec("[ab\n]{1,3}", 1..3),
    ) {
        let stops: Vec<&str> = stops.iter().map(String::as_str).collect();
        let text = pieces.concat();
        let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let (whole, _) = anthropic_events(&stops, &texts(&[&text]));
        let (split, _) = anthropic_events(&stops, &texts(&pieces));
        let message = anthropic::assemble(&whole);
        prop_assert_eq!(anthropic::assemble(&split), message.clone());
        let sent: String = anthropic_text(&split).concat();
        prop_assert!(text.starts_with(&sent));
        match &message.stop_sequence {
            Some(stop) => {
                prop_assert_eq!(message.stop_reason, Some(StopReason::StopSequence));
                prop_assert!(text[sent.len()..].starts_with(stop.as_str()));
            }
            None => prop_assert_eq!(&sent, &text),
        }
        let chat_whole = openai_chat::assemble(&chat_events(&stops, &texts(&[&text])));
        let chat_split = openai_chat::assemble(&chat_events(&stops, &texts(&pieces)));
        prop_assert_eq!(
            chat_split.choices[0].message.content.clone().unwrap_or_default(),
            sent
        );
        prop_assert_eq!(chat_split, chat_whole);
    }
}
