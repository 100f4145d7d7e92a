#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The shipped Grafana dashboard and Prometheus alerts only name metrics agm exports:
//! every PromQL expression in `deploy/` is read, its metric names are picked out, and
//! each must appear in `/metrics` after a run that exercises what they measure.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use agm_sim::{Fault, SimMethod};
use common::start_with;
use serde_json::{Value, json};

fn repo_file(path: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every `expr` in the dashboard's panels (rows included).
fn dashboard_exprs() -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    if k == "expr" {
                        out.push(v.as_str().unwrap().to_owned());
                    } else {
                        walk(v, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let dashboard: Value =
        serde_json::from_str(&repo_file("deploy/grafana/agm-dashboard.json")).unwrap();
    let mut out = Vec::new();
    walk(&dashboard, &mut out);
    out
}

/// Every `expr:` of the alerting rules.
fn alert_exprs() -> Vec<String> {
    repo_file("deploy/prometheus/alerts.yml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .map(|e| e.trim().to_owned())
        .collect()
}

const PROMQL_WORDS: &[&str] = &[
    "sum",
    "rate",
    "increase",
    "clamp_min",
    "max",
    "min",
    "avg",
    "count",
    "or",
    "and",
    "unless",
    "vector",
    "histogram_quantile",
    "by",
    "without",
    "on",
    "ignoring",
];

/// The metric names an expression reads: identifiers outside label matchers, ranges,
/// `by (...)` lists and strings, that are not PromQL functions or keywords.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut skip_group = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '{' | '[' | '"' => {
                let close = match c {
                    '{' => '}',
                    '[' => ']',
                    _ => '"',
                };
                i += 1;
                while i < chars.len() && chars[i] != close {
                    i += 1;
                }
                i += 1;
            }
            '(' if skip_group => {
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                skip_group = false;
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let preceded_by_number =
                    i > 0 && (chars[i - 1].is_ascii_digit() || chars[i - 1] == '.');
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if word == "by" || word == "without" {
                    skip_group = true;
                } else if !preceded_by_number && !PROMQL_WORDS.contains(&word.as_str()) {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

#[test]
fn the_promql_reader_finds_metric_names_only() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le) (rate(agm_x_bucket{status=~"2.."}[5m]))) / clamp_min(y_total, 1e-9) or vector(0)"#,
    );
    assert_eq!(
        names,
        BTreeSet::from(["agm_x_bucket".into(), "y_total".into()])
    );
}

#[tokio::test]
async fn every_metric_the_dashboard_and_alerts_name_is_exported() {
    let exprs: Vec<String> = dashboard_exprs().into_iter().chain(alert_exprs()).collect();
    assert!(
        exprs.len() >= 15,
        "the dashboard and the alerts have expressions: {exprs:?}"
    );
    // The four PRD signals are all there.
    for needed in [
        "project_id_fetch_success_total",
        "safe_mode_active",
        "circuit_breaker_state",
        "api_call_success_total",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(needed)),
            "{needed} has a panel"
        );
    }

    // Exercise what the metrics measure: safe mode turning on (with an API key), and a
    // broken endpoint opening breakers while a rate limit moves a request to another
    // account.
    let refused = start_with(|c| {
        c.safe_mode.auto_activate_threshold = 2;
        c.safe_mode.gemini_api_keys = vec!["demo-gemini-key".into()];
    })
    .await;
    refused
        .sim
        .script(Fault::status(SimMethod::LoadCodeAssist, 403, "PERMISSION_DENIED", "no").always());
    let ask = |text: &str| {
        json!({"model": "gemini-3-flash", "max_tokens": 32,
               "messages": [{"role": "user", "content": text}]})
    };
    assert_eq!(refused.post(&ask("a")).await.status(), 200);

    let (h, _broken) = common::start_with_a_broken_first_endpoint().await;
    // Sent with a client key that may use Gemini models only: requests, tokens and
    // refusals by key.
    let policy = agm_store::KeyPolicy {
        models: vec!["gemini-*".into()],
        ..agm_store::KeyPolicy::default()
    };
    let (_, secret) = h
        .state
        .store
        .create_client_key_with("dashboard", &policy)
        .await
        .unwrap();
    h.sim
        .script(Fault::quota_exhausted(SimMethod::GenerateContent, "1h").times(1));
    for i in 0..8 {
        let response = h
            .post_with_key("/v1/messages", &secret, &ask(&format!("b{i}")))
            .await;
        assert_eq!(response.status(), 200);
        // Its tokens count when the answer has been read.
        response.text().await.unwrap();
    }
    // A model the key may not use: a refusal by key.
    let claude = json!({"model": "claude-sonnet-4-5", "max_tokens": 32,
        "messages": [{"role": "user", "content": "c"}]});
    let refused = h.post_with_key("/v1/messages", &secret, &claude).await;
    assert_eq!(refused.status(), 403);

    let text = h.get_text("/metrics").await;
    let exported: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect();
    let mut missing = Vec::new();
    for expr in &exprs {
        for name in metric_names(expr) {
            if !exported.contains(&name) {
                missing.push(format!("{name} (in `{expr}`)"));
            }
        }
    }
    assert!(missing.is_empty(), "not exported: {missing:#?}\n\n{text}");
}
