//! The invariants of context scaling (`agm_translate::context`), over random agent
//! conversations: tool calls with results drawn from a small pool (so that some repeat),
//! large outputs, images, thinking with signatures.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use agm_translate::context::{
    self, Mode, Policy, apply_summary, protected_from, scale, summary_span,
};
use agm_translate::tokens::estimate;
use agm_wire::gemini::{
    Blob, Content, FunctionCall, FunctionDeclaration, FunctionResponse, GenerateContentRequest,
    Part, Tool,
};
use proptest::prelude::*;
use serde_json::json;

/// One exchange of an agent conversation.
#[derive(Debug, Clone)]
struct Exchange {
    /// The user's words (`None`: the exchange continues a tool loop).
    user: Option<String>,
    /// A thought before the call, with a signature.
    thought: Option<String>,
    /// Which tool result of the pool the call returns.
    result: usize,
    /// An image of the pool with the result.
    image: Option<usize>,
}

fn pool_result(i: usize) -> String {
    let sizes = [40, 700, 3000, 9000, 20_000];
    let line = format!("line {i}: fn handler() {{ read(config); }} // é\n");
    line.repeat(sizes[i % sizes.len()] / line.len() + 1)
}

fn pool_image(i: usize) -> Blob {
    Blob {
        mime_type: "image/png".into(),
        data: format!("iVBORw0KGgo{i}").repeat(200),
    }
}

fn exchange() -> impl Strategy<Value = Exchange> {
    (
        proptest::option::weighted(0.4, "[a-z ]{1,40}"),
        proptest::option::weighted(0.5, "[a-z ]{1,300}"),
        0usize..8,
        proptest::option::weighted(0.15, 0usize..3),
    )
        .prop_map(|(user, thought, result, image)| Exchange {
            user,
            thought,
            result,
            image,
        })
}

fn conversation(exchanges: &[Exchange]) -> GenerateContentRequest {
    let mut contents = vec![Content::new("user", vec![Part::text("start the task")])];
    for (n, x) in exchanges.iter().enumerate() {
        let id = format!("call_{n}");
        let mut model = Vec::new();
        if let Some(thought) = &x.thought {
            model.push(Part {
                text: Some(thought.clone()),
                thought: Some(true),
                thought_signature: Some(format!("sig{n}")),
                ..Part::default()
            });
        }
        model.push(Part {
            function_call: Some(FunctionCall {
                id: Some(id.clone()),
                name: "read_file".into(),
                args: json!({"path": format!("src/f{}.rs", x.result)}),
            }),
            thought_signature: (n % 3 == 0).then(|| format!("callsig{n}")),
            ..Part::default()
        });
        contents.push(Content::new("model", model));
        let mut user = vec![Part {
            function_response: Some(FunctionResponse {
                id: Some(id),
                name: "read_file".into(),
                response: json!({"output": pool_result(x.result)}),
            }),
            ..Part::default()
        }];
        if let Some(image) = x.image {
            user.push(Part {
                inline_data: Some(pool_image(image)),
                ..Part::default()
            });
        }
        contents.push(Content::new("user", user));
        if let Some(words) = &x.user {
            contents.push(Content::new("model", vec![Part::text("done")]));
            contents.push(Content::new("user", vec![Part::text(words.clone())]));
        }
    }
    GenerateContentRequest {
        contents,
        system_instruction: Some(Content::new(
            "user",
            vec![Part::text("You are a coding agent. ".repeat(50))],
        )),
        tools: vec![Tool {
            function_declarations: vec![FunctionDeclaration {
                name: "read_file".into(),
                description: "Reads a file".into(),
                parameters: Some(json!({"type": "object"})),
            }],
            ..Tool::default()
        }],
        ..GenerateContentRequest::default()
    }
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        prop_oneof![Just(Mode::Standard), Just(Mode::Aggressive)],
        100u64..200_000,
        0usize..10,
    )
        .prop_map(|(mode, limit, keep_turns)| Policy {
            mode,
            limit,
            keep_turns,
        })
}

/// The (call id, signature) of every call and the id of every result, in order.
fn pairs(request: &GenerateContentRequest) -> (Vec<(String, Option<String>)>, Vec<String>) {
    let parts = request.contents.iter().flat_map(|c| &c.parts);
    let calls = parts
        .clone()
        .filter_map(|p| {
            let call = p.function_call.as_ref()?;
            Some((call.id.clone()?, p.thought_signature.clone()))
        })
        .collect();
    let results = parts
        .filter_map(|p| p.function_response.as_ref()?.id.clone())
        .collect();
    (calls, results)
}

/// Every thought part, in order.
fn thoughts(contents: &[Content]) -> Vec<&Part> {
    contents
        .iter()
        .flat_map(|c| &c.parts)
        .filter(|p| p.is_thought())
        .collect()
}

fn bytes(request: &GenerateContentRequest) -> usize {
    serde_json::to_vec(request).unwrap().len()
}

/// A fake summarizer: a short line naming how many messages it read.
fn fake_summary(contents: &[Content]) -> String {
    format!("The agent read {} messages of files.", contents.len())
}

/// Scales as the server does: steps 1–3, then (aggressive, still above the target) a
/// summary.
fn scale_fully(request: &mut GenerateContentRequest, policy: &Policy) -> bool {
    let mut changed = scale(request, policy, estimate(request)).is_some();
    if policy.mode == Mode::Aggressive
        && estimate(request) > policy.target()
        && let Some(span) = summary_span(request, policy.keep_turns)
    {
        let summary = fake_summary(&request.contents[..span.end]);
        changed |= apply_summary(request, &span, &summary).is_some();
    }
    changed
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn steps_one_to_three_keep_the_invariants(
        exchanges in proptest::collection::vec(exchange(), 1..30),
        policy in policy(),
    ) {
        let original = conversation(&exchanges);
        let body = serde_json::to_vec(&original).unwrap().len();
        prop_assert!(estimate(&original) <= context::upper_bound(&original, body));
        let mut scaled = original.clone();
        let report = scale(&mut scaled, &policy, estimate(&original));
        let Some(report) = report else {
            prop_assert_eq!(&scaled, &original);
            return Ok(());
        };
        prop_assert_eq!(report.after, estimate(&scaled));
        prop_assert!(report.after <= report.before);
        prop_assert!(bytes(&scaled) <= bytes(&original));
        // The system instruction, the tools and the protected end stay.
        prop_assert_eq!(&scaled.system_instruction, &original.system_instruction);
        prop_assert_eq!(&scaled.tools, &original.tools);
        let aged = original.contents.len().saturating_sub(policy.keep_turns);
        prop_assert_eq!(&scaled.contents[aged..], &original.contents[aged..]);
        // The current turn keeps its thinking (with the signatures).
        let keep = protected_from(&original.contents, policy.keep_turns);
        prop_assert!(keep <= aged);
        prop_assert_eq!(thoughts(&scaled.contents[keep..]), thoughts(&original.contents[keep..]));
        // Every call (with its signature) and every result is still there, in order.
        prop_assert_eq!(pairs(&scaled), pairs(&original));
        prop_assert_eq!(scaled.contents.len(), original.contents.len());
        prop_assert!(scaled.contents.iter().all(|c| !c.parts.is_empty()));
        // Idempotent.
        let mut again = scaled.clone();
        let _ = scale(&mut again, &policy, estimate(&scaled));
        prop_assert_eq!(&again, &scaled);
    }

    #[test]
    fn a_summary_keeps_the_pairs_and_the_end_and_is_made_once(
        exchanges in proptest::collection::vec(exchange(), 1..40),
        policy in policy(),
    ) {
        let original = conversation(&exchanges);
        let mut scaled = original.clone();
        if !scale_fully(&mut scaled, &policy) {
            prop_assert_eq!(&scaled, &original);
            return Ok(());
        }
        prop_assert!(estimate(&scaled) <= estimate(&original));
        prop_assert!(bytes(&scaled) <= bytes(&original));
        prop_assert_eq!(&scaled.system_instruction, &original.system_instruction);
        let keep = policy.keep_turns.min(scaled.contents.len());
        prop_assert_eq!(
            &scaled.contents[scaled.contents.len() - keep..],
            &original.contents[original.contents.len() - keep..]
        );
        // Each call kept has its result kept, and each result kept its call.
        let (calls, results) = pairs(&scaled);
        let call_ids: Vec<&String> = calls.iter().map(|(id, _)| id).collect();
        let (_, all_results) = pairs(&original);
        for id in &results {
            prop_assert!(call_ids.contains(&id), "result {id} lost its call");
        }
        for id in &call_ids {
            prop_assert_eq!(
                results.contains(id),
                all_results.contains(id),
                "call {} lost its result", id
            );
        }
        // A summary turn is a user turn, followed by a model turn.
        if context::is_summary(&scaled.contents[0]) {
            prop_assert_eq!(scaled.contents[1].role.as_deref(), Some("model"));
        }
        let mut again = scaled.clone();
        let _ = scale_fully(&mut again, &policy);
        prop_assert_eq!(&again, &scaled);
    }

    #[test]
    fn off_or_below_the_target_changes_nothing(
        exchanges in proptest::collection::vec(exchange(), 1..20),
        keep_turns in 0usize..10,
    ) {
        let original = conversation(&exchanges);
        let mut request = original.clone();
        let off = Policy { mode: Mode::Off, limit: 1, keep_turns };
        prop_assert!(!off.triggers(u64::MAX - 1));
        prop_assert_eq!(scale(&mut request, &off, estimate(&original)), None);
        let roomy = Policy { mode: Mode::Standard, limit: estimate(&original) * 2, keep_turns };
        prop_assert_eq!(scale(&mut request, &roomy, estimate(&original)), None);
        prop_assert_eq!(
            serde_json::to_vec(&request).unwrap(),
            serde_json::to_vec(&original).unwrap()
        );
    }
}

fn big_loop(n: usize) -> GenerateContentRequest {
    let exchanges: Vec<Exchange> = (0..n)
        .map(|i| Exchange {
            user: (i % 4 == 3).then(|| format!("next step {i}")),
            thought: Some("thinking about the file ".repeat(20)),
            result: [3, 4, 3, 2][i % 4],
            image: (i % 5 == 0).then_some(1),
        })
        .collect();
    conversation(&exchanges)
}

#[test]
fn each_step_does_what_it_says() {
    let original = big_loop(24);
    let before = estimate(&original);
    let policy = Policy {
        mode: Mode::Standard,
        limit: before / 40,
        keep_turns: 4,
    };
    let mut scaled = original.clone();
    let report = scale(&mut scaled, &policy, before).unwrap();
    assert!(report.deduplicated > 0, "{report:?}");
    assert!(report.cut > 0, "{report:?}");
    assert!(report.thoughts_dropped > 0, "{report:?}");
    assert_eq!(report.before, before);
    assert!(report.cut_tokens() > before * 3 / 4, "{report:?}");
    assert_eq!(
        report.header(Mode::Standard),
        format!("standard; cut={} tokens", report.cut_tokens())
    );
    let texts: Vec<String> = scaled
        .contents
        .iter()
        .flat_map(|c| &c.parts)
        .filter_map(|p| {
            p.text
                .clone()
                .or_else(|| Some(p.function_response.as_ref()?.response.to_string()))
        })
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("[agm: the same tool result as in message "))
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("[agm: the same attachment as in message "))
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("of this old tool result cut]"))
    );
    // The first copy of a repeated result stays whole until it is cut.
    let keep = protected_from(&original.contents, 4);
    assert_eq!(scaled.contents[keep..], original.contents[keep..]);
}

#[test]
fn steps_stop_once_the_request_fits() {
    let original = big_loop(24);
    let before = estimate(&original);
    // Only just above the target: de-duplicating is enough, results stay whole.
    let policy = Policy {
        mode: Mode::Standard,
        limit: before * 10 / 8 - 10,
        keep_turns: 4,
    };
    let mut scaled = original.clone();
    let report = scale(&mut scaled, &policy, before).unwrap();
    assert!(report.deduplicated > 0);
    assert_eq!((report.cut, report.thoughts_dropped), (0, 0), "{report:?}");
}

#[test]
fn the_current_tool_loop_keeps_its_thinking_and_signatures() {
    // One user question, then a long tool loop: all of it is the current turn.
    let exchanges: Vec<Exchange> = (0..12)
        .map(|_| Exchange {
            user: None,
            thought: Some("hmm ".repeat(100)),
            result: 4,
            image: None,
        })
        .collect();
    let original = conversation(&exchanges);
    assert_eq!(protected_from(&original.contents, 2), 0);
    let policy = Policy {
        mode: Mode::Aggressive,
        limit: 100,
        keep_turns: 2,
    };
    let mut scaled = original.clone();
    let report = scale(&mut scaled, &policy, estimate(&original)).unwrap();
    // Its tool results are de-duplicated and cut (they carry no signature), its
    // thinking and calls stay, and nothing of it is summarized.
    assert!(report.deduplicated > 0 && report.cut > 0, "{report:?}");
    assert_eq!(report.thoughts_dropped, 0);
    assert_eq!(thoughts(&scaled.contents), thoughts(&original.contents));
    assert_eq!(pairs(&scaled), pairs(&original));
    let aged = original.contents.len() - 2;
    assert!(scaled.contents[aged..] == original.contents[aged..]);
    assert_eq!(summary_span(&scaled, 2), None);
}

#[test]
fn a_summary_replaces_the_oldest_turns_with_one_user_turn() {
    let original = big_loop(24);
    let span = summary_span(&original, 4).unwrap();
    assert_eq!(original.contents[span.end].role.as_deref(), Some("model"));
    let mut request = original.clone();
    let report = apply_summary(&mut request, &span, "they read files").unwrap();
    assert_eq!(report.summarized, span.end);
    assert!(context::is_summary(&request.contents[0]));
    assert_eq!(
        request.contents.len(),
        original.contents.len() - span.end + 1
    );
    // The digest is of the span's messages only.
    let mut longer = original.clone();
    longer
        .contents
        .push(Content::new("model", vec![Part::text("more")]));
    longer
        .contents
        .push(Content::new("user", vec![Part::text("go on")]));
    let same = summary_span(&longer, 6).unwrap();
    assert_eq!(same.end, span.end);
    assert_eq!(same.digest, span.digest);
    // A summary longer than what it replaces is not used.
    let mut request = original.clone();
    assert_eq!(
        apply_summary(&mut request, &span, &"x".repeat(10_000_000)),
        None
    );
    assert_eq!(request, original);
    // The summarizer's request reads the span as text.
    let asked = context::summary_request(&original.contents[..span.end]);
    let text = asked.contents[0].parts[0].text.as_deref().unwrap();
    assert!(text.starts_with("### message 1 (user)\nstart the task"));
    assert!(text.contains("(calls read_file with"));
    assert!(asked.system_instruction.is_some());
}

#[test]
fn a_grown_conversation_keeps_its_summary() {
    let original = big_loop(24);
    let span = summary_span(&original, 4).unwrap();
    let known = [context::Known {
        span: span.clone(),
        text: "they read files".into(),
    }];
    let mut summarized = original.clone();
    apply_summary(&mut summarized, &span, "they read files").unwrap();

    // The next request: the same history and two more exchanges.
    let mut grown = big_loop(26);
    assert_eq!(grown.contents[..span.end], original.contents[..span.end]);
    let report = context::apply_known(&mut grown, 4, &known).unwrap();
    assert_eq!(report.summarized, span.end);
    assert_eq!(grown.contents[0], summarized.contents[0]);
    assert_eq!(
        grown.contents[1..summarized.contents.len()],
        summarized.contents[1..]
    );

    // Another conversation (a different start) does not take it.
    let mut other = big_loop(24);
    other.contents[0] = Content::new("user", vec![Part::text("another task")]);
    assert_eq!(context::apply_known(&mut other, 4, &known), None);
    // Nor does a request where that span reaches into the protected end.
    let mut short = original.clone();
    assert_eq!(
        context::apply_known(&mut short, original.contents.len(), &known),
        None
    );
}
