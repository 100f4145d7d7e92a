//! Context scaling over long synthetic agent sessions (docs/BENCHMARKS.md, "Context
//! scaling"): for each session and each mode (off, standard, aggressive with a fake
//! summarizer), every request of the session is scaled as the server would, and the
//! report gives the tokens sent upstream and the share of requests still over the
//! model's window. Then criterion times the size check made on every request and the
//! scaling of a long request.
//!
//! `cargo bench -p agm-translate --bench context` (prints the tables as Markdown).

#![allow(clippy::expect_used, clippy::print_stdout)] // a benchmark: its report is its output

use std::hint::black_box;

use agm_translate::context::{self, Known, Mode, Policy};
use agm_translate::tokens::estimate;
use agm_wire::gemini::{
    Content, FunctionCall, FunctionDeclaration, FunctionResponse, GenerateContentRequest, Part,
    Tool,
};
use criterion::{Criterion, criterion_group};
use serde_json::json;

/// Claude's window, which the sessions are sent to.
const WINDOW: u64 = 200_000;
const KEEP_TURNS: usize = 6;

/// A small deterministic generator (xorshift64*), so every run sends the same sessions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A synthetic agent session: who the agent is, and its turns as the client resends
/// them on every request.
struct Session {
    name: &'static str,
    steps: usize,
    /// Files in the repository the agent reads (some again and again).
    files: usize,
    /// Largest file and command output, in bytes.
    max_output: u64,
    /// A user message every this many tool calls.
    user_every: usize,
    seed: u64,
}

fn text_of(rng: &mut Rng, label: &str, bytes: u64) -> String {
    let line = format!(
        "{label}: let value = compute(input, {});\n",
        rng.below(1000)
    );
    line.repeat(usize::try_from(bytes).unwrap_or(1) / line.len() + 1)
}

/// Every request of a session: the request after each tool result or user message.
fn requests(session: &Session) -> Vec<GenerateContentRequest> {
    let mut rng = Rng(session.seed);
    let files: Vec<String> = (0..session.files)
        .map(|i| {
            let size = 2_000 + rng.below(session.max_output);
            text_of(&mut rng, &format!("src/file_{i}.rs"), size)
        })
        .collect();
    let mut contents = vec![Content::new(
        "user",
        vec![Part::text(
            "Refactor the storage layer and keep the tests green.",
        )],
    )];
    let mut out = Vec::with_capacity(session.steps);
    for step in 0..session.steps {
        let id = format!("call_{step}");
        // Reads favour a few files (an agent rereads what it edits); a third of the
        // calls run commands with fresh output.
        let (name, args, output) = if rng.below(3) == 0 {
            let size = 500 + rng.below(session.max_output);
            (
                "run",
                json!({"command": "cargo test"}),
                text_of(&mut rng, &format!("test output {step}"), size),
            )
        } else {
            let hot = rng.below(4) != 0;
            let file = if hot {
                rng.below(4)
            } else {
                rng.below(session.files as u64)
            };
            let file = usize::try_from(file).unwrap_or(0);
            (
                "read_file",
                json!({"path": format!("src/file_{file}.rs")}),
                files[file].clone(),
            )
        };
        let thought = "Let me look at how the store is opened and which tests cover it. "
            .repeat(5 + usize::try_from(rng.below(20)).unwrap_or(0));
        contents.push(Content::new(
            "model",
            vec![
                Part {
                    text: Some(thought),
                    thought: Some(true),
                    thought_signature: Some(format!("sig-{step}").repeat(20)),
                    ..Part::default()
                },
                Part {
                    function_call: Some(FunctionCall {
                        id: Some(id.clone()),
                        name: name.into(),
                        args,
                    }),
                    ..Part::default()
                },
            ],
        ));
        contents.push(Content::new(
            "user",
            vec![Part {
                function_response: Some(FunctionResponse {
                    id: Some(id),
                    name: name.into(),
                    response: json!({"output": output}),
                }),
                ..Part::default()
            }],
        ));
        if step % session.user_every == session.user_every - 1 {
            contents.push(Content::new(
                "model",
                vec![Part::text("Done with this part; the tests pass.")],
            ));
            contents.push(Content::new(
                "user",
                vec![Part::text(format!(
                    "Good. Now step {step}: the next module."
                ))],
            ));
        }
        out.push(request_of(contents.clone()));
    }
    out
}

fn request_of(contents: Vec<Content>) -> GenerateContentRequest {
    GenerateContentRequest {
        contents,
        system_instruction: Some(Content::new(
            "user",
            vec![Part::text(
                "You are a coding agent working in a repository. ".repeat(80),
            )],
        )),
        tools: ["read_file", "run", "edit", "grep"]
            .iter()
            .map(|name| Tool {
                function_declarations: vec![FunctionDeclaration {
                    name: (*name).into(),
                    description: format!("{name}: a tool of the agent"),
                    parameters: Some(
                        json!({"type": "object", "properties": {"path": {"type": "string"}}}),
                    ),
                }],
                ..Tool::default()
            })
            .collect(),
        ..GenerateContentRequest::default()
    }
}

/// What one mode did over a session.
#[derive(Default)]
struct Outcome {
    requests: usize,
    tokens_in: u64,
    tokens_sent: u64,
    over_window: usize,
    scaled: usize,
    summaries_made: usize,
    largest: u64,
}

/// A fake summarizer: about 1,500 characters naming what it read (a small model's
/// summary is of that order).
fn fake_summary(contents: &[Content]) -> String {
    format!(
        "The agent worked through {} messages: it read the storage files, ran the tests, \
         fixed two failures and moved on. {}",
        contents.len(),
        "Files touched: src/file_0.rs, src/file_1.rs, src/file_2.rs. ".repeat(20)
    )
}

fn run(session: &Session, mode: Mode) -> Outcome {
    let policy = Policy {
        mode,
        limit: WINDOW,
        keep_turns: KEEP_TURNS,
    };
    let mut summaries: Vec<Known> = Vec::new();
    let mut outcome = Outcome::default();
    for mut request in requests(session) {
        let before = estimate(&request);
        let mut changed = context::scale(&mut request, &policy, before).is_some();
        // As the server does: the summaries the conversation has, then a new one.
        if mode == Mode::Aggressive && estimate(&request) > policy.target() {
            changed |= context::apply_known(&mut request, KEEP_TURNS, &summaries).is_some();
        }
        if mode == Mode::Aggressive
            && estimate(&request) > policy.target()
            && let Some(span) = context::summary_span(&request, KEEP_TURNS)
        {
            let text = fake_summary(&request.contents[..span.end]);
            outcome.summaries_made += 1;
            changed |= context::apply_summary(&mut request, &span, &text).is_some();
            summaries.push(Known { span, text });
        }
        let after = estimate(&request);
        outcome.requests += 1;
        outcome.tokens_in += before;
        outcome.tokens_sent += after;
        outcome.over_window += usize::from(after > WINDOW);
        outcome.scaled += usize::from(changed);
        outcome.largest = outcome.largest.max(after);
    }
    outcome
}

const SESSIONS: [Session; 4] = [
    Session {
        name: "300 steps, outputs ≤ 20 KB",
        steps: 300,
        files: 40,
        max_output: 20_000,
        user_every: 10,
        seed: 7,
    },
    Session {
        name: "500 steps, outputs ≤ 40 KB",
        steps: 500,
        files: 60,
        max_output: 40_000,
        user_every: 8,
        seed: 11,
    },
    Session {
        name: "800 steps, outputs ≤ 8 KB",
        steps: 800,
        files: 80,
        max_output: 8_000,
        user_every: 12,
        seed: 13,
    },
    // One prompt, then an autonomous tool loop: all of it is the current turn, whose
    // thinking (signatures) stays and which no summary may replace.
    Session {
        name: "400 steps in one tool loop, outputs ≤ 20 KB",
        steps: 400,
        files: 40,
        max_output: 20_000,
        user_every: usize::MAX,
        seed: 17,
    },
];

fn report() {
    println!(
        "| session | mode | requests | tokens asked (M) | tokens sent (M) | sent / asked | over the window | scaled | summaries made | largest sent |"
    );
    println!("| --- | --- | --: | --: | --: | --: | --: | --: | --: | --: |");
    for session in &SESSIONS {
        for mode in [Mode::Off, Mode::Standard, Mode::Aggressive] {
            let o = run(session, mode);
            let m = |t: u64| t as f64 / 1e6;
            println!(
                "| {} | {} | {} | {:.1} | {:.1} | {:.0}% | {:.1}% | {} | {} | {} |",
                session.name,
                mode.as_str(),
                o.requests,
                m(o.tokens_in),
                m(o.tokens_sent),
                100.0 * o.tokens_sent as f64 / o.tokens_in as f64,
                100.0 * o.over_window as f64 / o.requests as f64,
                o.scaled,
                o.summaries_made,
                o.largest,
            );
        }
    }
}

/// The time of the check made on every request (an estimate and a comparison), and of
/// scaling the last request of a session.
fn bench_check(c: &mut Criterion) {
    let session = &SESSIONS[0];
    let all = requests(session);
    let policy = Policy {
        mode: Mode::Standard,
        limit: WINDOW,
        keep_turns: KEEP_TURNS,
    };
    let small = &all[20];
    let last = all.last().expect("requests");
    let bytes = |r: &GenerateContentRequest| serde_json::to_vec(r).expect("json").len();
    let mut group = c.benchmark_group("context_scaling");
    group.bench_function(format!("check_{}B", bytes(small)), |b| {
        b.iter(|| policy.triggers(estimate(black_box(small))))
    });
    group.bench_function(format!("check_{}B", bytes(last)), |b| {
        b.iter(|| policy.triggers(estimate(black_box(last))))
    });
    group.bench_function(format!("scale_{}B", bytes(last)), |b| {
        b.iter_batched(
            || last.clone(),
            |mut r| {
                let before = estimate(&r);
                context::scale(&mut r, &policy, before)
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_check);

fn main() {
    report();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
