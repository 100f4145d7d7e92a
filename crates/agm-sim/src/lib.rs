//! `agm-sim`: a simulated Google for agm's tests, `agm demo` and benchmarks.
//!
//! It answers every Google endpoint agm talks to, on one host:
//!
//! | path | what |
//! | --- | --- |
//! | `POST /token` | OAuth token endpoint: `refresh_token` and PKCE `authorization_code` grants |
//! | `GET /o/oauth2/v2/auth` | consent screen, auto-approved (as `login_hint`, else the first account) with a 302 to `redirect_uri?state&code` |
//! | `GET /oauth2/v2/userinfo` | `{id, email, verified_email, name}` for the bearer token |
//! | `POST /v1internal:loadCodeAssist`, `:onboardUser`, `GET /v1internal/operations/<id>` | project discovery and onboarding |
//! | `POST /v1internal:fetchAvailableModels`, `:retrieveUserQuotaSummary` | quota |
//! | `POST /v1internal:generateContent`, `:streamGenerateContent[?alt=sse]`, `:countTokens` | generation, validated like Google |
//! | `/v1beta/models...` and `/v1/models...` | the official Gemini API, keyed by `x-goog-api-key` or `?key=` |
//!
//! An account's setup answers are set per test: [`Sim::set_project`] (`None`: it needs
//! onboarding), [`Sim::set_onboarding_polls`] (how many operation polls onboarding
//! takes), [`Sim::require_validation`] (`VALIDATION_REQUIRED` with a URL) and
//! [`Sim::set_quota`] (a model's remaining fraction).
//!
//! Requests are checked with the sim's own code over `serde_json::Value`, the way
//! Google reads them (unknown field names, Gemini's schema subset, roles, tool names,
//! function-call pairing, limits), and refused in Google's error shapes, so that a
//! gateway bug shows up as the 400 the real service would give. A valid generation
//! request gets a deterministic answer, `Simulated <model> reply to: <last user
//! text>`, cut by `stopSequences` and `maxOutputTokens` (finish `MAX_TOKENS`), with
//! a signed thought part first when `thinkingConfig.includeThoughts` is set. Streams
//! split that text into [`SimConfig::stream_chunks`] SSE chunks (`data: <json>\r\n\r\n`),
//! finish reason and usage on the last one; without `?alt=sse` a stream answers the
//! REST form, one JSON array of the chunks.
//!
//! A request in JSON mode (`responseMimeType: application/json`) is answered with JSON
//! that fits its `responseSchema`/`responseJsonSchema` (module `json_mode`).
//!
//! The model catalogs change while the sim runs, as Google's do: [`Sim::add_model`]
//! (a [`SimModel`] may be [only for](SimModel::only_for) some tiers or accounts, or
//! [need a newer client](SimModel::requires_client_version)), [`Sim::retire_model`]
//! (listed under `deprecatedModelIds`, 404 for generation),
//! [`Sim::retire_model_with_notice`], [`Sim::remove_model`]. [`Sim::require_client_version`]
//! refuses an old `antigravity/<v>` or `GeminiCLI/<v>` client the way Google does: a 200
//! whose reply is the refusal ([`ANTIGRAVITY_UNSUPPORTED`]); docs/TESTING.md has the
//! sources.
//!
//! # Scripting faults
//!
//! A test queues [`Fault`]s on the sim; each one filters on method, account and model
//! (unset filters match anything) and hits `times` matching requests (`usize::MAX`:
//! forever). Faults are tried in queue order and the first matching one with `times`
//! left is used.
//!
//! * [`FaultAction::Status`] and [`FaultAction::Delay`] act as soon as the request is
//!   captured, before authentication and validation: a scripted 429 or 503 is served
//!   whatever the request looks like, and a delay is followed by the normal answer.
//! * [`FaultAction::EmptyBody`], [`FaultAction::BreakStreamAfter`] and
//!   [`FaultAction::Reply`] replace a *successful* answer, so only a request that
//!   passes authentication and validation uses them up. `Reply` applies to the
//!   generation methods only.
//!
//! ```no_run
//! use agm_sim::{Fault, ScriptedReply, Sim, SimMethod};
//! # async fn demo() -> std::io::Result<()> {
//! let sim = Sim::demo().start().await?;
//! // The next two generations for alice are rate-limited, then answers resume.
//! sim.script(Fault::rate_limited(SimMethod::StreamGenerateContent, "1.5s")
//!     .for_account("alice@demo.agm")
//!     .times(2));
//! // After that, one generation answers with a tool call.
//! sim.script(Fault::reply(
//!     SimMethod::StreamGenerateContent,
//!     ScriptedReply::function_call("read_file", serde_json::json!({"path": "a.rs"}), "call-1"),
//! ));
//! // ... point the gateway at sim.base_url() and run it ...
//! assert_eq!(sim.count(SimMethod::StreamGenerateContent), 3);
//! # Ok(()) }
//! ```
//!
//! Every request, rejected ones included, is recorded as a [`CapturedRequest`]
//! (method, path with query, lower-cased headers, parsed body, account) before
//! anything else happens; read them with [`Sim::requests`] and [`Sim::count`].
//! [`SimConfig::latency`] is added before every answer.

mod answer;
mod capture;
mod clock;
mod code_assist;
mod config;
mod error;
mod fault;
mod gemini_api;
mod generate;
mod http;
mod json_mode;
mod oauth;
mod route;
mod sim;
mod validate;

pub use capture::{CapturedRequest, SimMethod};
pub use config::{
    ANTIGRAVITY_UNSUPPORTED, ClientGate, GEMINI_CLI_UNSUPPORTED, GateForm, ModelSpec, SimAccount,
    SimConfig, SimModel,
};
pub use fault::{Fault, FaultAction, ScriptedReply, parse_go_duration};
pub use sim::{RunningSim, Sim};

/// The S256 PKCE challenge of a verifier: BASE64URL-NOPAD(SHA-256(verifier)).
/// Handy for tests that drive the authorize → token exchange by hand.
pub fn pkce_challenge(verifier: &str) -> String {
    oauth::pkce_challenge(verifier)
}
