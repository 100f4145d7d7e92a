#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every counter and gauge without labels is exported from start-up (issue 14, item 8):
//! a dashboard or a `rate()` alert sees a series from the first scrape, before the
//! first event. Its own test binary, so no other test has touched the recorder.

mod common;

#[tokio::test]
async fn the_first_scrape_has_every_unlabeled_series_then_accounts_by_state_and_the_daily_cap() {
    let h = common::start_with(|c| c.safe_mode.daily_request_cap = 250).await;
    let text = h.get_text("/metrics").await;
    for name in [
        "safe_mode_activations_total 0",
        "agm_account_switches_total 0",
        "agm_connections_refused_total 0",
        "agm_request_log_dropped_total 0",
        "agm_upstream_client_outdated 0",
        "safe_mode_active 0",
    ] {
        assert!(
            text.lines().any(|l| l == name),
            "{name:?} is missing from the first scrape:\n{text}"
        );
    }

    // Accounts by state, read at scrape time: the runbooks look for disabled and
    // blocked accounts here.
    let accounts = h.state.store.list_account_infos().await.unwrap();
    assert!(accounts.len() >= 2, "the harness signs in two accounts");
    h.state
        .store
        .set_account_state(
            &accounts[0].id,
            agm_store::AccountState::Disabled {
                reason: "test".into(),
            },
        )
        .await
        .unwrap();
    let text = h.get_text("/metrics").await;
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} is missing:\n{text}"))
            .to_owned()
    };
    assert_eq!(
        line("agm_accounts{state=\"disabled\"}"),
        "agm_accounts{state=\"disabled\"} 1"
    );
    assert_eq!(
        line("agm_accounts{state=\"blocked\"}"),
        "agm_accounts{state=\"blocked\"} 0"
    );
    assert_eq!(
        line("agm_accounts{state=\"active\"}"),
        format!("agm_accounts{{state=\"active\"}} {}", accounts.len() - 1)
    );
    assert_eq!(
        line("agm_official_daily_request_cap "),
        "agm_official_daily_request_cap 250"
    );
    assert_eq!(
        line("agm_official_daily_requests "),
        "agm_official_daily_requests 0"
    );
    assert_eq!(
        line("agm_official_daily_cap_refusals_total "),
        "agm_official_daily_cap_refusals_total 0"
    );
}
