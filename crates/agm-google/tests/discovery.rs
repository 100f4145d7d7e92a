#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Project discovery against the simulated Google: found projects, onboarding with
//! polls, the errors that need the user, and the PRD's retry table. Every wait goes
//! through an injected sleep that records instead of sleeping.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agm_google::{
    AttemptOutcome, DiscoveredProject, DiscoveryError, DiscoveryPolicy, DiscoveryRequest,
    DiscoveryStats, ErrorClass, GoogleClient, GoogleConfig, ProjectDiscovery, SetupCall,
};
use agm_sim::{Fault, RunningSim, Sim, SimAccount, SimMethod};

const ALICE: &str = "alice@demo.agm";
const BOB: &str = "bob@demo.agm";
const VALIDATION_URL: &str = "https://accounts.google.com/signin/continue?sarp=1&verify=alice";

fn config(base: &str, setup_timeout: Duration) -> GoogleConfig {
    GoogleConfig {
        code_assist_endpoints: vec![base.to_owned()],
        oauth_auth_url: format!("{base}/o/oauth2/v2/auth"),
        oauth_token_url: format!("{base}/token"),
        userinfo_url: format!("{base}/oauth2/v2/userinfo"),
        gemini_api_base: base.to_owned(),
        oauth_client_id: "client".into(),
        oauth_client_secret: "secret".into(),
        user_agent: GoogleConfig::antigravity_user_agent("1.15.8"),
        setup_user_agent: "setup-ua".into(),
        connect_timeout: Duration::from_secs(2),
        setup_timeout,
    }
}

/// The sim, a client, and what discovery waited for.
struct Fixture {
    sim: RunningSim,
    google: GoogleClient,
    stats: DiscoveryStats,
    sleeps: Arc<Mutex<Vec<Duration>>>,
    discovery: ProjectDiscovery,
}

impl Fixture {
    async fn start() -> Fixture {
        Fixture::with_timeout(Duration::from_secs(5)).await
    }

    async fn with_timeout(setup_timeout: Duration) -> Fixture {
        let sim = Sim::demo().start().await.unwrap();
        let google = GoogleClient::new(config(&sim.base_url(), setup_timeout)).unwrap();
        Fixture {
            sim,
            google,
            stats: DiscoveryStats::default(),
            sleeps: Arc::default(),
            discovery: ProjectDiscovery::default(),
        }
    }

    async fn discover(&self, email: &str) -> Result<DiscoveredProject, DiscoveryError> {
        self.discover_with(email, None).await
    }

    async fn discover_with(
        &self,
        email: &str,
        duet_project: Option<&str>,
    ) -> Result<DiscoveredProject, DiscoveryError> {
        let token = self.sim.issue_access_token(email).unwrap();
        self.discover_token(email, &token, duet_project).await
    }

    async fn discover_token(
        &self,
        email: &str,
        token: &str,
        duet_project: Option<&str>,
    ) -> Result<DiscoveredProject, DiscoveryError> {
        let sleeps = Arc::clone(&self.sleeps);
        let sleep = move |wait: Duration| {
            sleeps.lock().unwrap().push(wait);
            std::future::ready(())
        };
        let request = DiscoveryRequest {
            account: email,
            access_token: token,
            duet_project,
        };
        self.discovery
            .discover(&self.google, request, &self.stats, sleep)
            .await
    }

    fn sleeps(&self) -> Vec<Duration> {
        self.sleeps.lock().unwrap().clone()
    }

    fn count(&self, method: SimMethod) -> usize {
        self.sim.count(method)
    }
}

fn secs(values: &[u64]) -> Vec<Duration> {
    values.iter().copied().map(Duration::from_secs).collect()
}

#[tokio::test]
async fn an_account_with_a_project_is_done_in_one_call() {
    let f = Fixture::start().await;
    let found = f.discover(ALICE).await.unwrap();
    assert_eq!(
        found,
        DiscoveredProject {
            project_id: "demo-project-alice".into(),
            tier_id: Some("g1-pro-tier".into()),
            tier_name: Some("Google AI Pro".into()),
            paid_tier_id: Some("g1-pro-tier".into()),
            onboarded: false,
        }
    );
    assert_eq!(f.count(SimMethod::LoadCodeAssist), 1);
    assert_eq!(f.count(SimMethod::OnboardUser), 0);
    assert!(f.sleeps().is_empty());
    let attempts = f.stats.attempts();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].account, ALICE);
    assert_eq!(attempts[0].call, SetupCall::LoadCodeAssist);
    assert_eq!(attempts[0].outcome, AttemptOutcome::Ok);
}

#[tokio::test]
async fn a_free_account_without_a_project_is_onboarded_and_polled() {
    let f = Fixture::start().await;
    f.sim.set_project(BOB, None);
    f.sim.set_onboarding_polls(3);
    let found = f.discover(BOB).await.unwrap();
    assert!(found.onboarded);
    assert!(found.project_id.starts_with("sim-onboarded-"), "{found:?}");
    assert_eq!(
        f.sim.account(BOB).unwrap().project.as_deref(),
        Some(found.project_id.as_str())
    );
    assert_eq!(found.tier_id.as_deref(), Some("free-tier"));
    assert_eq!(f.count(SimMethod::LoadCodeAssist), 1);
    assert_eq!(f.count(SimMethod::OnboardUser), 1);
    assert_eq!(f.count(SimMethod::GetOperation), 3);
    assert_eq!(
        f.sleeps(),
        secs(&[1, 1, 1]),
        "one poll interval before each poll"
    );

    let onboard = f
        .sim
        .requests()
        .into_iter()
        .find(|r| r.method == SimMethod::OnboardUser)
        .unwrap();
    assert_eq!(onboard.body["tierId"], "free-tier");
    assert!(
        onboard.body.get("cloudaicompanionProject").is_none(),
        "the free tier gets no project from us: {}",
        onboard.body
    );
    assert_eq!(onboard.header("user-agent"), Some("setup-ua"));
    let polls: Vec<_> = f
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method == SimMethod::GetOperation)
        .collect();
    assert!(
        polls
            .iter()
            .all(|r| r.path.starts_with("/v1internal/operations/"))
    );

    let calls: Vec<SetupCall> = f.stats.attempts().iter().map(|a| a.call).collect();
    assert_eq!(
        calls,
        [
            SetupCall::LoadCodeAssist,
            SetupCall::OnboardUser,
            SetupCall::GetOperation,
            SetupCall::GetOperation,
            SetupCall::GetOperation,
        ]
    );
}

#[tokio::test]
async fn an_operation_done_at_once_needs_no_poll() {
    let f = Fixture::start().await;
    f.sim.set_project(BOB, None);
    f.sim.set_onboarding_polls(0);
    let found = f.discover(BOB).await.unwrap();
    assert!(found.onboarded);
    assert_eq!(
        f.sim.account(BOB).unwrap().project,
        Some(found.project_id.clone())
    );
    assert_eq!(f.count(SimMethod::GetOperation), 0);
    assert!(f.sleeps().is_empty());
}

#[tokio::test]
async fn polling_is_bounded() {
    let f = Fixture::start().await;
    f.sim.set_project(BOB, None);
    f.sim.set_onboarding_polls(1000);
    let err = f.discover(BOB).await.unwrap_err();
    let DiscoveryError::OnboardingTimedOut { polls, operation } = &err else {
        panic!("expected OnboardingTimedOut, got {err:?}");
    };
    assert_eq!(*polls, 10);
    assert!(operation.starts_with("operations/"));
    assert_eq!(f.count(SimMethod::GetOperation), 10);
    assert_eq!(f.sleeps(), secs(&[1; 10]));
    assert!(
        f.sim.account(BOB).unwrap().project.is_none(),
        "no project invented"
    );
    assert!(!err.is_safe_mode_signal());
}

#[tokio::test]
async fn the_standard_tier_needs_a_configured_project() {
    let f = Fixture::start().await;
    f.sim.add_account(SimAccount::new(
        "carol@demo.agm",
        "demo-refresh-carol",
        None,
        "standard-tier",
    ));
    let err = f.discover("carol@demo.agm").await.unwrap_err();
    assert!(
        matches!(&err, DiscoveryError::ProjectRequired { tier_id } if tier_id == "standard-tier"),
        "{err:?}"
    );
    assert!(err.needs_the_user());
    assert!(
        err.to_string().contains("needs a Google Cloud project"),
        "{err}"
    );
    assert_eq!(f.count(SimMethod::OnboardUser), 0);

    // With the user's project configured, onboarding sends it and Google keeps it.
    let found = f
        .discover_with("carol@demo.agm", Some("carol-gcp-project"))
        .await
        .unwrap();
    assert_eq!(found.project_id, "carol-gcp-project");
    assert!(found.onboarded);
    let onboard = f
        .sim
        .requests()
        .into_iter()
        .find(|r| r.method == SimMethod::OnboardUser)
        .unwrap();
    assert_eq!(onboard.body["tierId"], "standard-tier");
    assert_eq!(onboard.body["cloudaicompanionProject"], "carol-gcp-project");
}

#[tokio::test]
async fn validation_required_in_the_answer_surfaces_the_url_without_retry() {
    let f = Fixture::start().await;
    f.sim.require_validation(ALICE, Some(VALIDATION_URL));
    let err = f.discover(ALICE).await.unwrap_err();
    let DiscoveryError::ValidationRequired { url, .. } = &err else {
        panic!("expected ValidationRequired, got {err:?}");
    };
    assert_eq!(url.as_deref(), Some(VALIDATION_URL));
    assert!(err.to_string().contains(VALIDATION_URL), "{err}");
    assert!(err.needs_the_user());
    assert!(!err.is_safe_mode_signal());
    assert_eq!(f.count(SimMethod::LoadCodeAssist), 1);
    assert_eq!(f.count(SimMethod::OnboardUser), 0);
    assert!(f.sleeps().is_empty());
}

#[tokio::test]
async fn validation_required_as_a_403_surfaces_the_url_without_retry() {
    let f = Fixture::start().await;
    f.sim
        .script(Fault::validation_required(SimMethod::LoadCodeAssist, VALIDATION_URL).always());
    let err = f.discover(ALICE).await.unwrap_err();
    let DiscoveryError::ValidationRequired { url, .. } = &err else {
        panic!("expected ValidationRequired, got {err:?}");
    };
    assert_eq!(url.as_deref(), Some(VALIDATION_URL));
    assert!(!err.is_safe_mode_signal());
    assert_eq!(f.count(SimMethod::LoadCodeAssist), 1);
    assert!(f.sleeps().is_empty());
    assert_eq!(
        f.stats.summary().errors_by_class.get("validation_required"),
        Some(&1)
    );
}

#[tokio::test]
async fn fault_500_twice_then_success_takes_three_calls() {
    let f = Fixture::start().await;
    f.sim.script(
        Fault::status(SimMethod::LoadCodeAssist, 500, "INTERNAL", "Internal error").times(2),
    );
    let found = f.discover(ALICE).await.unwrap();
    assert_eq!(found.project_id, "demo-project-alice");
    assert_eq!(f.count(SimMethod::LoadCodeAssist), 3);
    assert_eq!(f.sleeps(), secs(&[1, 2]));

    let summary = f.stats.summary();
    assert_eq!(summary.attempts, 3);
    assert_eq!(summary.successes, 1);
    assert!((summary.success_rate - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(summary.errors_by_class.get("server_error"), Some(&2));
    assert!(summary.p50.is_some() && summary.p99 >= summary.p50);
}

#[tokio::test]
async fn fault_500_five_times_gives_up_after_four_calls() {
    let f = Fixture::start().await;
    f.sim.script(
        Fault::status(SimMethod::LoadCodeAssist, 500, "INTERNAL", "Internal error").times(5),
    );
    let err = f.discover(ALICE).await.unwrap_err();
    assert!(
        matches!(
            &err,
            DiscoveryError::GaveUp {
                call: SetupCall::LoadCodeAssist,
                attempts: 4,
                class: ErrorClass::ServerError,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_safe_mode_signal());
    assert_eq!(f.count(SimMethod::LoadCodeAssist), 4);
    assert_eq!(f.sleeps(), secs(&[1, 2, 4]));
    assert_eq!(f.stats.summary().successes, 0);
}

#[tokio::test]
async fn fault_429_backs_off_exponentially() {
    let f = Fixture::start().await;
    f.sim
        .script(Fault::rate_limited(SimMethod::LoadCodeAssist, "42s").times(3));
    let found = f.discover(ALICE).await.unwrap();
    assert_eq!(found.project_id, "demo-project-alice");
    assert_eq!(f.count(SimMethod::LoadCodeAssist), 4);
    assert_eq!(f.sleeps(), secs(&[1, 2, 4]));
    assert_eq!(
        f.stats.summary().errors_by_class.get("rate_limited"),
        Some(&3)
    );
}

#[tokio::test]
async fn fault_429_forever_gives_up() {
    let f = Fixture::start().await;
    f.sim
        .script(Fault::rate_limited(SimMethod::LoadCodeAssist, "42s").always());
    let err = f.discover(ALICE).await.unwrap_err();
    assert!(
        matches!(
            &err,
            DiscoveryError::GaveUp {
                attempts: 4,
                class: ErrorClass::RateLimited { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(f.count(SimMethod::LoadCodeAssist), 4);
    assert_eq!(f.sleeps(), secs(&[1, 2, 4]));
}

#[tokio::test]
async fn a_timeout_is_retried_twice() {
    let f = Fixture::with_timeout(Duration::from_millis(300)).await;
    f.sim
        .script(Fault::delay(SimMethod::LoadCodeAssist, Duration::from_secs(3)).times(2));
    let found = f.discover(ALICE).await.unwrap();
    assert_eq!(found.project_id, "demo-project-alice");
    assert_eq!(f.count(SimMethod::LoadCodeAssist), 3);
    assert_eq!(f.sleeps(), secs(&[1, 2]));
    assert_eq!(f.stats.summary().errors_by_class.get("network"), Some(&2));
}

#[tokio::test]
async fn a_timeout_every_time_gives_up_after_three_calls() {
    let f = Fixture::with_timeout(Duration::from_millis(300)).await;
    f.sim
        .script(Fault::delay(SimMethod::LoadCodeAssist, Duration::from_secs(3)).always());
    let err = f.discover(ALICE).await.unwrap_err();
    assert!(
        matches!(
            &err,
            DiscoveryError::GaveUp {
                attempts: 3,
                class: ErrorClass::Network,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(f.count(SimMethod::LoadCodeAssist), 3);
}

#[tokio::test]
async fn fault_403_is_a_safe_mode_signal_without_retry() {
    let f = Fixture::start().await;
    f.sim.script(
        Fault::status(
            SimMethod::LoadCodeAssist,
            403,
            "PERMISSION_DENIED",
            "The caller does not have permission",
        )
        .always(),
    );
    let err = f.discover(ALICE).await.unwrap_err();
    assert!(err.is_safe_mode_signal(), "{err:?}");
    assert_eq!(err.class(), Some(&ErrorClass::ProjectProblem));
    assert_eq!(err.upstream().and_then(|e| e.status()), Some(403));
    assert_eq!(f.count(SimMethod::LoadCodeAssist), 1);
    assert!(f.sleeps().is_empty());
}

#[tokio::test]
async fn fault_404_is_a_safe_mode_signal_without_retry() {
    let f = Fixture::start().await;
    f.sim.script(
        Fault::status(
            SimMethod::LoadCodeAssist,
            404,
            "NOT_FOUND",
            "Requested entity was not found.",
        )
        .always(),
    );
    let err = f.discover(ALICE).await.unwrap_err();
    assert!(err.is_safe_mode_signal(), "{err:?}");
    assert_eq!(err.class(), Some(&ErrorClass::NotFound));
    assert_eq!(f.count(SimMethod::LoadCodeAssist), 1);
}

#[tokio::test]
async fn an_expired_token_is_not_retried_here() {
    let f = Fixture::start().await;
    let err = f
        .discover_token(ALICE, "ya29.not-a-token", None)
        .await
        .unwrap_err();
    assert_eq!(err.class(), Some(&ErrorClass::Unauthorized), "{err:?}");
    assert!(!err.is_safe_mode_signal());
    assert_eq!(f.count(SimMethod::LoadCodeAssist), 1);
    assert!(
        f.stats
            .attempts()
            .iter()
            .all(|a| !a.account.contains("ya29")),
        "no token in telemetry"
    );
}

#[tokio::test]
async fn onboarding_calls_are_retried_too() {
    let f = Fixture::start().await;
    f.sim.set_project(BOB, None);
    f.sim.set_onboarding_polls(2);
    f.sim
        .script(Fault::status(SimMethod::OnboardUser, 503, "UNAVAILABLE", "try later").times(1));
    f.sim
        .script(Fault::status(SimMethod::GetOperation, 500, "INTERNAL", "oops").times(1));
    let found = f.discover(BOB).await.unwrap();
    assert!(found.onboarded);
    assert_eq!(f.count(SimMethod::OnboardUser), 2);
    // Two polls to be done, plus the one that failed.
    assert_eq!(f.count(SimMethod::GetOperation), 3);
    // Backoff after the 503, poll interval, backoff after the 500, poll interval.
    assert_eq!(f.sleeps(), secs(&[1, 1, 1, 1]));
    let summary = f.stats.summary_of(SetupCall::GetOperation);
    assert_eq!((summary.attempts, summary.successes), (3, 2));
}

#[tokio::test]
async fn validation_required_while_onboarding_is_not_retried() {
    let f = Fixture::start().await;
    f.sim.set_project(BOB, None);
    f.sim
        .script(Fault::validation_required(SimMethod::OnboardUser, VALIDATION_URL).always());
    let err = f.discover(BOB).await.unwrap_err();
    assert!(
        matches!(&err, DiscoveryError::ValidationRequired { url: Some(u), .. } if u == VALIDATION_URL),
        "{err:?}"
    );
    assert_eq!(f.count(SimMethod::OnboardUser), 1);
}

#[tokio::test]
async fn a_custom_policy_bounds_retries_and_waits() {
    let mut f = Fixture::start().await;
    f.discovery = ProjectDiscovery::new(DiscoveryPolicy {
        server_error_retries: 1,
        backoff: Duration::from_millis(250),
        ..DiscoveryPolicy::default()
    });
    f.sim.script(
        Fault::status(SimMethod::LoadCodeAssist, 502, "UNAVAILABLE", "bad gateway").always(),
    );
    let err = f.discover(ALICE).await.unwrap_err();
    assert!(
        matches!(&err, DiscoveryError::GaveUp { attempts: 2, .. }),
        "{err:?}"
    );
    assert_eq!(f.sleeps(), vec![Duration::from_millis(250)]);
}

#[tokio::test]
async fn discovery_runs_on_a_spawned_task_with_tokio_sleep() {
    let f = Fixture::start().await;
    f.sim
        .script(Fault::status(SimMethod::LoadCodeAssist, 500, "INTERNAL", "oops").times(1));
    let google = f.google.clone();
    let token = f.sim.issue_access_token(ALICE).unwrap();
    let stats = Arc::new(DiscoveryStats::default());
    let task_stats = Arc::clone(&stats);
    let policy = DiscoveryPolicy {
        backoff: Duration::from_millis(1),
        ..DiscoveryPolicy::default()
    };
    let found = tokio::spawn(async move {
        let request = DiscoveryRequest {
            account: ALICE,
            access_token: &token,
            duet_project: None,
        };
        ProjectDiscovery::new(policy)
            .discover(&google, request, &task_stats, tokio::time::sleep)
            .await
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(found.project_id, "demo-project-alice");
    assert_eq!(stats.summary().attempts, 2);
}
