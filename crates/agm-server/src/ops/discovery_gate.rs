//! The validation gate (`agm validate project-id`): runs project discovery on N accounts
//! every interval for a duration and judges the result: GO when more than 90 % of the
//! discoveries succeed, else NO-GO. Stops early (with a partial report) when told to.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use agm_google::{
    AttemptOutcome, DiscoveryAttempt, DiscoveryRequest, DiscoveryStats, DiscoverySummary,
    ErrorClass, GoogleClient, ProjectDiscovery, SetupCall, UpstreamError, error_class_name,
};
use serde::Serialize;
use time::OffsetDateTime;
use tokio::time::{Instant, MissedTickBehavior};

/// The success rate above which the gate says GO.
pub const GO_THRESHOLD: f64 = 0.90;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct GateSettings {
    pub accounts: usize,
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

/// An account the gate runs discovery on.
pub struct GateAccount {
    pub email: String,
    pub refresh_token: String,
}

/// Where the gate is, after each round.
#[derive(Debug, Clone, Copy)]
pub struct GateProgress {
    pub round: u64,
    pub attempts: u64,
    pub successes: u64,
    pub elapsed: Duration,
    pub duration: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    #[serde(rename = "GO")]
    Go,
    #[serde(rename = "NO-GO")]
    NoGo,
}

impl Verdict {
    pub fn of(success_rate: f64, attempts: u64) -> Verdict {
        if attempts > 0 && success_rate > GO_THRESHOLD {
            Verdict::Go
        } else {
            Verdict::NoGo
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Go => "GO",
            Verdict::NoGo => "NO-GO",
        }
    }
}

/// One discovery the gate ran.
#[derive(Debug, Clone, Serialize)]
pub struct GateAttempt {
    pub round: u64,
    pub account: String,
    /// Milliseconds since the gate started.
    pub at_ms: u64,
    pub latency_ms: f64,
    /// `None` on success, else the error class.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GateReport {
    pub settings: GateSettings,
    pub accounts: Vec<String>,
    pub started_at: String,
    pub ended_at: String,
    /// True when the gate was stopped before its duration was up.
    pub interrupted: bool,
    pub rounds: u64,
    pub summary: DiscoverySummary,
    /// Discoveries that ended with the account locked out: rate-limited, quota gone,
    /// or waiting for its user to verify it.
    pub lockouts: u64,
    pub verdict: Verdict,
    pub attempts: Vec<GateAttempt>,
}

struct TokenState {
    email: String,
    refresh_token: String,
    access_token: Option<(String, Instant)>,
}

/// Runs the gate until `settings.duration` is up or `stop` resolves.
pub async fn run_gate(
    google: &GoogleClient,
    accounts: Vec<GateAccount>,
    settings: GateSettings,
    stop: impl Future<Output = ()>,
    mut on_progress: impl FnMut(&GateProgress),
) -> GateReport {
    let started_at = agm_store::now_rfc3339();
    let start = Instant::now();
    let stats = DiscoveryStats::default();
    let inner_stats = DiscoveryStats::default();
    let discovery = ProjectDiscovery::default();
    let mut states: Vec<TokenState> = accounts
        .into_iter()
        .take(settings.accounts)
        .map(|a| TokenState {
            email: a.email,
            refresh_token: a.refresh_token,
            access_token: None,
        })
        .collect();
    let mut attempts = Vec::new();
    let mut lockouts = 0;
    let mut rounds = 0;
    let mut interrupted = false;
    let mut ticker = tokio::time::interval(settings.interval.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tokio::pin!(stop);

    loop {
        tokio::select! {
            () = &mut stop => { interrupted = true; break; }
            _ = ticker.tick() => {}
        }
        if start.elapsed() >= settings.duration && rounds > 0 {
            break;
        }
        rounds += 1;
        for account in &mut states {
            let began = Instant::now();
            let result = tokio::select! {
                () = &mut stop => { interrupted = true; break; }
                r = discover_once(google, &discovery, &inner_stats, account) => r,
            };
            let latency = began.elapsed();
            let class = result.err();
            if class.as_ref().is_some_and(is_lockout) {
                lockouts += 1;
            }
            let error = class.as_ref().map(|c| error_class_name(c).to_owned());
            stats.record(DiscoveryAttempt {
                at_unix_ms: OffsetDateTime::now_utc().unix_timestamp() * 1000,
                account: account.email.clone(),
                call: SetupCall::LoadCodeAssist,
                latency,
                outcome: match &class {
                    None => AttemptOutcome::Ok,
                    Some(c) => AttemptOutcome::Failed(error_class_name(c)),
                },
            });
            attempts.push(GateAttempt {
                round: rounds,
                account: account.email.clone(),
                at_ms: u64::try_from(began.duration_since(start).as_millis()).unwrap_or(u64::MAX),
                latency_ms: latency.as_secs_f64() * 1000.0,
                error,
            });
        }
        let summary = stats.summary();
        on_progress(&GateProgress {
            round: rounds,
            attempts: summary.attempts,
            successes: summary.successes,
            elapsed: start.elapsed(),
            duration: settings.duration,
        });
        if interrupted {
            break;
        }
    }

    let summary = stats.summary();
    GateReport {
        verdict: Verdict::of(summary.success_rate, summary.attempts),
        settings,
        accounts: states.into_iter().map(|s| s.email).collect(),
        started_at,
        ended_at: agm_store::now_rfc3339(),
        interrupted,
        rounds,
        summary,
        lockouts,
        attempts,
    }
}

/// One discovery for one account, with a fresh access token; the error class on failure.
async fn discover_once(
    google: &GoogleClient,
    discovery: &ProjectDiscovery,
    stats: &DiscoveryStats,
    account: &mut TokenState,
) -> Result<(), ErrorClass> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let token = match &account.access_token {
        Some((token, expires)) if *expires > Instant::now() => token.clone(),
        _ => {
            let grant = google
                .refresh(&account.refresh_token)
                .await
                .map_err(|e: UpstreamError| e.class(now))?;
            // Refresh a minute early.
            let expires = Instant::now() + grant.expires_in.saturating_sub(Duration::from_secs(60));
            account.access_token = Some((grant.access_token.clone(), expires));
            grant.access_token
        }
    };
    let request = DiscoveryRequest {
        account: &account.email,
        access_token: &token,
        duet_project: None,
    };
    match discovery
        .discover(google, request, stats, tokio::time::sleep)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            if matches!(e.class(), Some(ErrorClass::Unauthorized)) {
                account.access_token = None;
            }
            Err(match e.class() {
                Some(class) => class.clone(),
                None if e.needs_the_user() => ErrorClass::ValidationRequired { url: None },
                None => ErrorClass::Other,
            })
        }
    }
}

fn is_lockout(class: &ErrorClass) -> bool {
    matches!(
        class,
        ErrorClass::RateLimited { .. }
            | ErrorClass::QuotaExhausted { .. }
            | ErrorClass::ValidationRequired { .. }
    )
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "–".into(),
        |d| format!("{:.1} ms", d.as_secs_f64() * 1000.0),
    )
}

impl GateReport {
    /// The lines every format shares, and the terminal prints.
    pub fn summary_lines(&self) -> Vec<String> {
        let s = &self.summary;
        let mut lines = vec![
            format!(
                "{}: {} of {} discoveries succeeded ({:.1} %){}",
                self.verdict.as_str(),
                s.successes,
                s.attempts,
                s.success_rate * 100.0,
                if self.interrupted {
                    ", stopped early"
                } else {
                    ""
                }
            ),
            format!(
                "latency p50 {}, p95 {}, p99 {}",
                ms(s.p50),
                ms(s.p95),
                ms(s.p99)
            ),
            format!("lockouts: {}", self.lockouts),
        ];
        if !s.errors_by_class.is_empty() {
            let errors: Vec<String> = s
                .errors_by_class
                .iter()
                .map(|(class, n)| format!("{class} {n}"))
                .collect();
            lines.push(format!("errors: {}", errors.join(", ")));
        }
        lines
    }

    fn per_account(&self) -> BTreeMap<&str, (u64, u64)> {
        let mut out: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for a in &self.attempts {
            let entry = out.entry(a.account.as_str()).or_default();
            entry.0 += 1;
            if a.error.is_none() {
                entry.1 += 1;
            }
        }
        out
    }

    /// The report as Markdown, with a text sparkline of latencies.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let s = &self.summary;
        let _ = writeln!(
            out,
            "# Project-ID validation gate: {}\n",
            self.verdict.as_str()
        );
        let _ = writeln!(
            out,
            "{} accounts, every {} for {}; {} → {}{}.\n",
            self.accounts.len(),
            humantime::format_duration(self.settings.interval),
            humantime::format_duration(self.settings.duration),
            self.started_at,
            self.ended_at,
            if self.interrupted {
                " (stopped early: partial report)"
            } else {
                ""
            }
        );
        let _ = writeln!(out, "| measure | value |\n| --- | --- |");
        let _ = writeln!(out, "| attempts | {} |", s.attempts);
        let _ = writeln!(out, "| successes | {} |", s.successes);
        let _ = writeln!(
            out,
            "| success rate | {:.1} % (GO above {:.0} %) |",
            s.success_rate * 100.0,
            GO_THRESHOLD * 100.0
        );
        let _ = writeln!(
            out,
            "| latency p50 / p95 / p99 | {} / {} / {} |",
            ms(s.p50),
            ms(s.p95),
            ms(s.p99)
        );
        let _ = writeln!(out, "| lockouts | {} |", self.lockouts);
        let _ = writeln!(out, "| rounds | {} |", self.rounds);
        if !s.errors_by_class.is_empty() {
            let _ = writeln!(
                out,
                "\n## Errors by class\n\n| class | count |\n| --- | --- |"
            );
            for (class, n) in &s.errors_by_class {
                let _ = writeln!(out, "| {class} | {n} |");
            }
        }
        let _ = writeln!(
            out,
            "\n## Per account\n\n| account | attempts | successes |\n| --- | --- | --- |"
        );
        for (account, (n, ok)) in self.per_account() {
            let _ = writeln!(out, "| {account} | {n} | {ok} |");
        }
        let _ = writeln!(
            out,
            "\n## Latency over time\n\n```\n{}\n```",
            sparkline(&self.attempts)
        );
        out
    }

    /// The report as a self-contained HTML page with an SVG latency chart.
    pub fn to_html(&self) -> String {
        let s = &self.summary;
        let mut rows = String::new();
        for line in self.summary_lines() {
            let _ = write!(rows, "<li>{}</li>", escape(&line));
        }
        let mut errors = String::new();
        for (class, n) in &s.errors_by_class {
            let _ = write!(errors, "<tr><td>{}</td><td>{n}</td></tr>", escape(class));
        }
        let mut accounts = String::new();
        for (account, (n, ok)) in self.per_account() {
            let _ = write!(
                accounts,
                "<tr><td>{}</td><td>{n}</td><td>{ok}</td></tr>",
                escape(account)
            );
        }
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>agm validation gate: {verdict}</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2rem .6rem}}.go{{color:#070}}.nogo{{color:#a00}}</style></head><body>\
<h1 class=\"{class}\">Project-ID validation gate: {verdict}</h1>\
<p>{n} accounts, every {interval} for {duration}; {start} → {end}{partial}.</p><ul>{rows}</ul>\
<h2>Latency over time</h2>{chart}\
<h2>Per account</h2><table><tr><th>account</th><th>attempts</th><th>successes</th></tr>{accounts}</table>\
<h2>Errors by class</h2><table><tr><th>class</th><th>count</th></tr>{errors}</table></body></html>\n",
            verdict = self.verdict.as_str(),
            class = if self.verdict == Verdict::Go {
                "go"
            } else {
                "nogo"
            },
            n = self.accounts.len(),
            interval = humantime::format_duration(self.settings.interval),
            duration = humantime::format_duration(self.settings.duration),
            start = escape(&self.started_at),
            end = escape(&self.ended_at),
            partial = if self.interrupted {
                " (stopped early: partial report)"
            } else {
                ""
            },
            chart = svg_chart(&self.attempts),
        )
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Latencies as ▁▂▃▄▅▆▇█, failures as ✗, at most 120 columns (averaged buckets).
fn sparkline(attempts: &[GateAttempt]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    if attempts.is_empty() {
        return "(no attempts)".into();
    }
    let max = attempts
        .iter()
        .map(|a| a.latency_ms)
        .fold(0.0_f64, f64::max)
        .max(0.001);
    let per_column = attempts.len().div_ceil(120);
    let mut line = String::new();
    for bucket in attempts.chunks(per_column) {
        if bucket.iter().any(|a| a.error.is_some()) {
            line.push('✗');
            continue;
        }
        let mean = bucket.iter().map(|a| a.latency_ms).sum::<f64>() / bucket.len() as f64;
        let level = ((mean / max) * 7.0).round().clamp(0.0, 7.0) as usize;
        line.push(BARS[level]);
    }
    format!("{line}\nmax {max:.1} ms; ✗ marks a failed discovery")
}

/// An SVG scatter of latency (y) against time (x); failures in red.
fn svg_chart(attempts: &[GateAttempt]) -> String {
    const W: f64 = 800.0;
    const H: f64 = 240.0;
    if attempts.is_empty() {
        return "<p>(no attempts)</p>".into();
    }
    let max_t = attempts.iter().map(|a| a.at_ms).max().unwrap_or(1).max(1) as f64;
    let max_l = attempts
        .iter()
        .map(|a| a.latency_ms)
        .fold(0.0_f64, f64::max)
        .max(0.001);
    let mut dots = String::new();
    for a in attempts {
        let x = 40.0 + (a.at_ms as f64 / max_t) * (W - 60.0);
        let y = H - 30.0 - (a.latency_ms / max_l) * (H - 50.0);
        let color = if a.error.is_some() { "#c00" } else { "#06c" };
        let _ = write!(
            dots,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.5\" fill=\"{color}\"/>"
        );
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"discovery latency over time\">\
<line x1=\"40\" y1=\"{base}\" x2=\"{W}\" y2=\"{base}\" stroke=\"#888\"/><line x1=\"40\" y1=\"10\" x2=\"40\" y2=\"{base}\" stroke=\"#888\"/>\
<text x=\"2\" y=\"20\" font-size=\"11\">{max_l:.0} ms</text><text x=\"2\" y=\"{base}\" font-size=\"11\">0</text>\
<text x=\"{tx}\" y=\"{ty}\" font-size=\"11\">{secs:.0} s</text>{dots}</svg>",
        base = H - 30.0,
        tx = W - 40.0,
        ty = H - 12.0,
        secs = max_t / 1000.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_threshold_is_strictly_above_ninety_percent() {
        assert_eq!(Verdict::of(0.91, 100), Verdict::Go);
        assert_eq!(Verdict::of(0.90, 100), Verdict::NoGo);
        assert_eq!(
            Verdict::of(1.0, 0),
            Verdict::NoGo,
            "no attempts is no evidence"
        );
    }

    #[test]
    fn sparkline_marks_failures() {
        let attempt = |latency_ms: f64, error: Option<&str>| GateAttempt {
            round: 1,
            account: "a".into(),
            at_ms: 0,
            latency_ms,
            error: error.map(Into::into),
        };
        let line = sparkline(&[
            attempt(0.5, None),
            attempt(8.0, None),
            attempt(2.0, Some("server_error")),
        ]);
        assert!(line.starts_with("▁█✗"), "{line}");
    }
}
