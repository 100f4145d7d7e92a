#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `Fault::sometimes`: a random fault mix, the same on every run with the same seed.

use agm_sim::{Fault, Sim, SimConfig, SimMethod};

/// How many of `n` requests the 50 % fault hits, with this seed.
async fn hits(seed: u64, n: usize) -> usize {
    let sim = Sim::demo_with(SimConfig {
        seed,
        ..SimConfig::default()
    })
    .start()
    .await
    .unwrap();
    sim.script(
        Fault::status(SimMethod::GenerateContent, 503, "UNAVAILABLE", "chaos")
            .sometimes(0.5)
            .always(),
    );
    let http = reqwest::Client::new();
    let mut hit = 0;
    for _ in 0..n {
        // No token: a request the fault misses gets the sim's 401.
        let status = http
            .post(format!("{}/v1internal:generateContent", sim.base_url()))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap()
            .status();
        match status.as_u16() {
            503 => hit += 1,
            401 => {}
            other => panic!("unexpected {other}"),
        }
    }
    hit
}

#[tokio::test]
async fn a_sometimes_fault_hits_about_its_share_and_repeats_with_its_seed() {
    let first = hits(7, 200).await;
    assert!((60..=140).contains(&first), "{first} of 200");
    assert_eq!(hits(7, 200).await, first, "same seed, same mix");
    assert_ne!(hits(8, 200).await, first, "another seed, another mix");
}
