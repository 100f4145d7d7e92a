#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The Google client against the simulated Google.

use std::time::Duration;

use agm_google::{CallAuth, ErrorClass, GoogleClient, GoogleConfig, UpstreamError};
use agm_sim::{Fault, RunningSim, Sim, SimMethod};
use agm_wire::cloudcode::CloudCodeRequest;
use agm_wire::gemini::{Content, GenerateContentRequest, Part};
use futures_util::StreamExt;

fn config(endpoints: Vec<String>, base: &str) -> GoogleConfig {
    GoogleConfig {
        code_assist_endpoints: endpoints,
        oauth_auth_url: format!("{base}/o/oauth2/v2/auth"),
        oauth_token_url: format!("{base}/token"),
        userinfo_url: format!("{base}/oauth2/v2/userinfo"),
        gemini_api_base: base.to_owned(),
        oauth_client_id: "client".into(),
        oauth_client_secret: "secret".into(),
        user_agent: GoogleConfig::antigravity_user_agent("1.15.8"),
        setup_user_agent: "setup-ua".into(),
        connect_timeout: Duration::from_secs(2),
        setup_timeout: Duration::from_secs(5),
    }
}

async fn setup() -> (RunningSim, GoogleClient) {
    let sim = Sim::demo().start().await.unwrap();
    let base = sim.base_url();
    let client = GoogleClient::new(config(vec![base.clone()], &base)).unwrap();
    (sim, client)
}

fn envelope(project: &str, text: &str) -> CloudCodeRequest {
    CloudCodeRequest {
        project: project.into(),
        model: "gemini-3-flash".into(),
        request_id: Some("agent-test".into()),
        user_agent: Some("antigravity".into()),
        request_type: Some("agent".into()),
        request: GenerateContentRequest {
            contents: vec![Content::new("user", vec![Part::text(text)])],
            ..GenerateContentRequest::default()
        },
    }
}

#[tokio::test]
async fn refresh_userinfo_and_discovery() {
    let (sim, google) = setup().await;
    let grant = google.refresh("demo-refresh-alice").await.unwrap();
    assert!(grant.access_token.starts_with("ya29."));
    assert!(grant.expires_in > Duration::from_secs(60));
    let me = google.user_info(&grant.access_token).await.unwrap();
    assert_eq!(me.email, "alice@demo.agm");
    let load = google
        .load_code_assist(&grant.access_token, None)
        .await
        .unwrap();
    assert_eq!(
        load.cloudaicompanion_project.unwrap().id(),
        "demo-project-alice"
    );
    let sent = sim.requests();
    let load_req = sent
        .iter()
        .find(|r| r.method == SimMethod::LoadCodeAssist)
        .unwrap();
    assert_eq!(load_req.body["metadata"]["ideType"], "ANTIGRAVITY");
    assert_eq!(load_req.header("user-agent"), Some("setup-ua"));
}

#[tokio::test]
async fn dead_refresh_token_is_invalid_grant() {
    let (_sim, google) = setup().await;
    let err = google.refresh("not-a-token").await.unwrap_err();
    assert!(matches!(err, UpstreamError::InvalidGrant { .. }), "{err:?}");
    assert!(
        !err.to_string().contains("not-a-token"),
        "the token is never in an error"
    );
}

#[tokio::test]
async fn generate_sends_the_envelope_and_headers() {
    let (sim, google) = setup().await;
    let token = google
        .refresh("demo-refresh-bob")
        .await
        .unwrap()
        .access_token;
    let answer = google
        .generate(
            CallAuth::bearer(&token),
            &envelope("demo-project-bob", "hi there"),
        )
        .await
        .unwrap();
    let text: String = answer
        .response
        .parts()
        .iter()
        .filter_map(|p| p.text.clone())
        .collect();
    assert_eq!(text, "Simulated gemini-3-flash reply to: hi there");
    let req = sim
        .requests()
        .into_iter()
        .find(|r| r.method == SimMethod::GenerateContent)
        .unwrap();
    assert_eq!(req.header("x-goog-user-project"), Some("demo-project-bob"));
    assert!(
        req.header("user-agent")
            .unwrap()
            .starts_with("antigravity/1.15.8 ")
    );
    assert_eq!(req.body["project"], "demo-project-bob");
}

#[tokio::test]
async fn stream_yields_chunks_then_ends() {
    let (_sim, google) = setup().await;
    let token = google
        .refresh("demo-refresh-bob")
        .await
        .unwrap()
        .access_token;
    let stream = google
        .stream(
            CallAuth::bearer(&token),
            &envelope("demo-project-bob", "stream me"),
        )
        .await
        .unwrap();
    let chunks: Vec<_> = stream.collect().await;
    assert_eq!(chunks.len(), 3);
    let text: String = chunks
        .iter()
        .flat_map(|c| c.as_ref().unwrap().response.parts().to_vec())
        .filter_map(|p| p.text)
        .collect();
    assert_eq!(text, "Simulated gemini-3-flash reply to: stream me");
    let last = chunks.last().unwrap().as_ref().unwrap();
    assert_eq!(last.response.finish_reason(), Some("STOP"));
}

#[tokio::test]
async fn generation_calls_take_turns_on_several_connections() {
    let sim = Sim::demo().start().await.unwrap();
    let base = sim.base_url();
    // A trailing slash on the endpoint: the parsed URLs are looked up by the bare base.
    let google =
        GoogleClient::with_connections(config(vec![format!("{base}/")], &base), 3).unwrap();
    assert_eq!(google.connections(), 3);
    assert_eq!(
        GoogleClient::new(config(vec![base.clone()], &base))
            .unwrap()
            .connections(),
        1
    );
    let token = google
        .refresh("demo-refresh-bob")
        .await
        .unwrap()
        .access_token;
    // Borrowed or owned, the envelope is the same request.
    let owned = envelope("demo-project-bob", "turns");
    let borrowed = CloudCodeRequest {
        project: owned.project.clone(),
        model: owned.model.clone(),
        request_id: owned.request_id.clone(),
        user_agent: owned.user_agent.clone(),
        request_type: owned.request_type.clone(),
        request: &owned.request,
    };
    for i in 0..6 {
        let answer = if i % 2 == 0 {
            google.generate(CallAuth::bearer(&token), &owned).await
        } else {
            google.generate(CallAuth::bearer(&token), &borrowed).await
        };
        assert!(answer.unwrap().response.parts()[0].text.is_some());
        let chunks: Vec<_> = google
            .stream(CallAuth::bearer(&token), &borrowed)
            .await
            .unwrap()
            .collect()
            .await;
        assert!(chunks.iter().all(Result::is_ok));
    }
    let bodies: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == SimMethod::GenerateContent)
        .map(|r| r.body)
        .collect();
    assert_eq!(bodies.len(), 6);
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test]
async fn broken_stream_ends_with_an_error_item() {
    let (sim, google) = setup().await;
    sim.script(Fault::break_stream_after(
        SimMethod::StreamGenerateContent,
        1,
    ));
    let token = google
        .refresh("demo-refresh-bob")
        .await
        .unwrap()
        .access_token;
    let stream = google
        .stream(CallAuth::bearer(&token), &envelope("demo-project-bob", "x"))
        .await
        .unwrap();
    let chunks: Vec<_> = stream.collect().await;
    assert!(chunks[0].is_ok());
    let last = chunks.last().unwrap().as_ref().unwrap_err();
    assert_eq!(last.class(0), ErrorClass::Network, "{last}");
}

#[tokio::test]
async fn falls_back_to_the_next_endpoint() {
    let sim = Sim::demo().start().await.unwrap();
    let base = sim.base_url();
    // A closed port first, then a host answering 503, then the sim.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let unavailable = Sim::demo().start().await.unwrap();
    unavailable.script(
        Fault::status(SimMethod::GenerateContent, 503, "UNAVAILABLE", "try later").always(),
    );
    let google = GoogleClient::new(config(
        vec![closed, unavailable.base_url(), base.clone()],
        &base,
    ))
    .unwrap();
    let token = google
        .refresh("demo-refresh-bob")
        .await
        .unwrap()
        .access_token;
    let answer = google
        .generate(
            CallAuth::bearer(&token),
            &envelope("demo-project-bob", "fallback"),
        )
        .await
        .unwrap();
    assert!(!answer.response.parts().is_empty());
    assert_eq!(unavailable.count(SimMethod::GenerateContent), 1);
    assert_eq!(sim.count(SimMethod::GenerateContent), 1);
}

#[tokio::test]
async fn client_errors_do_not_fall_back() {
    let sim = Sim::demo().start().await.unwrap();
    let second = Sim::demo().start().await.unwrap();
    let base = sim.base_url();
    let google = GoogleClient::new(config(vec![base.clone(), second.base_url()], &base)).unwrap();
    let token = google
        .refresh("demo-refresh-bob")
        .await
        .unwrap()
        .access_token;
    // The wrong project: a 403 that the next endpoint would answer the same way.
    let err = google
        .generate(
            CallAuth::bearer(&token),
            &envelope("someone-elses-project", "x"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert_eq!(err.class(0), ErrorClass::ProjectProblem);
    assert_eq!(second.count(SimMethod::GenerateContent), 0);
}

#[tokio::test]
async fn rate_limit_delay_is_read() {
    let (sim, google) = setup().await;
    sim.script(Fault::rate_limited(SimMethod::GenerateContent, "1.5s"));
    let token = google
        .refresh("demo-refresh-bob")
        .await
        .unwrap()
        .access_token;
    let err = google
        .generate(CallAuth::bearer(&token), &envelope("demo-project-bob", "x"))
        .await
        .unwrap_err();
    assert_eq!(
        err.class(0),
        ErrorClass::RateLimited {
            delay: Some(Duration::from_millis(1500))
        }
    );
}

#[tokio::test]
async fn count_tokens_is_honest() {
    let (sim, google) = setup().await;
    let token = google
        .refresh("demo-refresh-bob")
        .await
        .unwrap()
        .access_token;
    let n = google
        .count_tokens(
            &token,
            "gemini-3-flash",
            vec![Content::new("user", vec![Part::text("a".repeat(400))])],
        )
        .await
        .unwrap();
    assert!((90..=110).contains(&n), "{n}");
    let req = sim
        .requests()
        .into_iter()
        .find(|r| r.method == SimMethod::CountTokens)
        .unwrap();
    assert!(req.body.get("project").is_none());
    assert_eq!(req.body["request"]["model"], "models/gemini-3-flash");
}

/// A gate that refuses the endpoints named and writes down every outcome.
#[derive(Default)]
struct RecordingGate {
    refuse: Vec<String>,
    outcomes: std::sync::Mutex<Vec<(String, bool)>>,
}

impl agm_google::EndpointGate for RecordingGate {
    fn allow(&self, endpoint: &str) -> bool {
        !self.refuse.iter().any(|e| e == endpoint)
    }
    fn record(&self, endpoint: &str, outcome: Result<(), &UpstreamError>) {
        self.outcomes
            .lock()
            .unwrap()
            .push((endpoint.to_owned(), outcome.is_ok()));
    }
}

#[tokio::test]
async fn the_gate_skips_open_circuits_and_hears_each_outcome() {
    let sim = Sim::demo().start().await.unwrap();
    let failing = Sim::demo().start().await.unwrap();
    failing.script(Fault::status(SimMethod::GenerateContent, 500, "INTERNAL", "boom").always());
    let refused = Sim::demo().start().await.unwrap();
    let base = sim.base_url();
    let google = GoogleClient::new(config(
        vec![refused.base_url(), failing.base_url(), base.clone()],
        &base,
    ))
    .unwrap();
    let token = google
        .refresh("demo-refresh-bob")
        .await
        .unwrap()
        .access_token;
    let gate = RecordingGate {
        refuse: vec![refused.base_url()],
        ..RecordingGate::default()
    };
    let auth = CallAuth {
        gate: Some(&gate),
        ..CallAuth::bearer(&token)
    };
    google
        .generate(auth, &envelope("demo-project-bob", "gated"))
        .await
        .unwrap();
    assert_eq!(
        refused.count(SimMethod::GenerateContent),
        0,
        "open: not called"
    );
    assert_eq!(
        *gate.outcomes.lock().unwrap(),
        vec![(failing.base_url(), false), (base.clone(), true)]
    );

    // Every circuit open: nothing is sent, and the error says why.
    let closed_all = RecordingGate {
        refuse: vec![refused.base_url(), failing.base_url(), base.clone()],
        ..RecordingGate::default()
    };
    let err = google
        .generate(
            CallAuth {
                gate: Some(&closed_all),
                ..CallAuth::bearer(&token)
            },
            &envelope("demo-project-bob", "gated"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::CircuitOpen { .. }), "{err:?}");
    assert_eq!(sim.count(SimMethod::GenerateContent), 1);
}

/// A request agm cannot build (a CR/LF in the code-assist `User-Agent`, which carries
/// the model name) is agm's own failure: nothing is sent, no endpoint is tried after
/// it, and no breaker hears of it. Before, it was a "network" failure that opened
/// every account's circuits.
#[tokio::test]
async fn a_request_agm_cannot_build_is_local_and_blames_no_endpoint() {
    let sim = Sim::demo().start().await.unwrap();
    let second = Sim::demo().start().await.unwrap();
    let google = GoogleClient::new(config(
        vec![sim.base_url(), second.base_url()],
        &sim.base_url(),
    ))
    .unwrap();
    let token = google
        .refresh("demo-refresh-bob")
        .await
        .unwrap()
        .access_token;
    let gate = RecordingGate::default();
    let user_agent = "GeminiCLI/0.21.0/gemini-2.5-flash\r\nX-Evil: 1 (linux; x64)";
    let endpoint = sim.base_url();
    let auth = CallAuth {
        gate: Some(&gate),
        code_assist: Some(agm_google::CodeAssistStyle {
            endpoint: &endpoint,
            user_agent,
        }),
        ..CallAuth::bearer(&token)
    };
    let err = google
        .generate(auth, &envelope("demo-project-bob", "hi"))
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Local { .. }), "{err:?}");
    assert_eq!(err.class(0), agm_google::ErrorClass::Local);
    assert!(!err.breaks_circuit() && !err.tries_next_endpoint());
    assert!(
        gate.outcomes.lock().unwrap().is_empty(),
        "the breaker hears nothing: the endpoint was never reached"
    );
    assert_eq!(sim.count(SimMethod::GenerateContent), 0, "nothing was sent");
    assert_eq!(second.count(SimMethod::GenerateContent), 0);
}
