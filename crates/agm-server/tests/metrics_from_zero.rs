#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every counter and gauge without labels is exported from start-up (issue 14, item 8):
//! a dashboard or a `rate()` alert sees a series from the first scrape, before the
//! first event. Its own test binary, so no other test has touched the recorder.

mod common;

#[tokio::test]
async fn the_first_scrape_has_every_unlabeled_series() {
    let h = common::start().await;
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
}
